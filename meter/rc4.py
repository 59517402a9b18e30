# RC4 (ARC4), pure Python: key scheduling (KSA) and the keystream generator
# (PRGA), no keystream bytes dropped, as OSGP uses it [MEP App. B] [F5].
#
# The cipher object is stateful: crypt() continues the keystream, because the
# MEP response is encrypted by continuing the request's RC4 state [MEP App. B].
# Encryption and decryption are the same operation.
#
# This is the portable default. On CPython tools/crypto_backend.py registers a
# faster one (the `cryptography` package) through cipher.set_rc4_backend().
import sys

# The permutation lives in a list on CPython (list indexing is the fastest
# path there) and in a bytearray on MicroPython (as fast there, 1/4 the RAM).
_PERM = bytearray if sys.implementation.name == "micropython" else list


class RC4:
    """RC4 keyed with key (1..256 bytes); crypt() continues the keystream."""

    __slots__ = ("_s", "_i", "_j")

    def __init__(self, key):
        k = len(key)
        if k < 1 or k > 256:
            raise ValueError("RC4 key must be 1..256 bytes")
        s = _PERM(range(256))
        kk = key * (256 // k + 1)
        j = 0
        for i in range(256):
            si = s[i]
            j = (j + si + kk[i]) & 255
            s[i] = s[j]
            s[j] = si
        self._s = s
        self._i = 0
        self._j = 0

    def crypt(self, data):
        """XOR data with the next len(data) keystream bytes; returns bytes."""
        s = self._s
        i = self._i
        j = self._j
        out = bytearray(len(data))
        n = 0
        for b in data:
            i = (i + 1) & 255
            si = s[i]
            j = (j + si) & 255
            sj = s[j]
            s[i] = sj
            s[j] = si
            out[n] = b ^ s[(si + sj) & 255]
            n += 1
        self._i = i
        self._j = j
        return bytes(out)

    def keystream(self, n):
        """The next n keystream bytes."""
        return self.crypt(bytes(n))
