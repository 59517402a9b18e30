# Block-cipher modes over any AES-ECB block function enc(block16) -> bytes16
# (meter/aes.py on a board, OpenSSL's ECB in a test): CCM and CMAC.
#
#   CCM       NIST SP 800-38C / RFC 3610: CBC-MAC over B0 | AAD | message,
#             then CTR from counter 1, the tag masked with counter block 0.
#             Nonce 7..13 bytes (L = 15 - len(nonce)), tag 4..16 bytes (even).
#   CMAC      NIST SP 800-38B / RFC 4493: the AES mode's key derivation and
#             key wrap (meter/aes_mode.py)
#
# Only the forward cipher is ever needed (CTR decrypts by encrypting).
# Checked against SP 800-38C Appendix C, RFC 3610 packet vectors and RFC 4493
# (tests/core/test_aes.py), and against `cryptography` (AESCCM, CMAC) on
# random inputs (tests/test_aes_vectors.py). Imported only by a meter in AES
# mode.
from . import aes


def _xor(a, b):
    """a XOR b, both the same length (a 16-byte block or a final part)."""
    n = len(a)
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(n, "big")


def _eq(a, b):
    # compare without stopping at the first difference
    if len(a) != len(b):
        return False
    d = 0
    for i in range(len(a)):
        d |= a[i] ^ b[i]
    return d == 0


# -- CCM -----------------------------------------------------------------------

def _check(nonce, tag_len):
    if not 7 <= len(nonce) <= 13:
        raise ValueError("CCM nonce must be 7..13 bytes")
    if tag_len < 4 or tag_len > 16 or tag_len & 1:
        raise ValueError("CCM tag must be 4, 6, ..., 16 bytes")


def _mac(enc, nonce, aad, msg, tag_len):
    """The CBC-MAC T (tag_len bytes, before masking) [SP 800-38C A.2, 6.1]."""
    q = 15 - len(nonce)
    n = len(msg)
    if q < 4 and n >> (8 * q):
        raise ValueError("message too long for this nonce")
    flags = (0x40 if aad else 0) | (((tag_len - 2) // 2) << 3) | (q - 1)
    x = enc(bytes((flags,)) + bytes(nonce) + n.to_bytes(q, "big"))
    if aad:
        a = len(aad)
        if a < 0xFF00:
            head = a.to_bytes(2, "big")
        else:
            head = b"\xff\xfe" + a.to_bytes(4, "big")
        x = _cbc(enc, x, head + bytes(aad))
    if msg:
        x = _cbc(enc, x, msg)
    return x[:tag_len]


def _cbc(enc, x, data):
    # CBC-MAC chaining over data, zero-padded to whole blocks
    n = len(data)
    for i in range(0, n, 16):
        b = data[i:i + 16]
        if len(b) < 16:
            b = b + bytes(16 - len(b))
        x = enc(_xor(x, b))
    return x


def _ctr(enc, nonce, data, start):
    """data XOR the key stream from counter `start` [SP 800-38C A.3]."""
    q = 15 - len(nonce)
    prefix = bytes((q - 1,)) + bytes(nonce)
    out = []
    i = start
    for off in range(0, len(data), 16):
        part = data[off:off + 16]
        s = enc(prefix + i.to_bytes(q, "big"))
        out.append(_xor(part, s[:len(part)]))
        i += 1
    return b"".join(out)


def encrypt(enc, nonce, msg, aad=b"", tag_len=8):
    """CCM generation-encryption: ciphertext | tag (len(msg) + tag_len bytes)."""
    _check(nonce, tag_len)
    msg = bytes(msg)
    t = _mac(enc, nonce, aad, msg, tag_len)
    return _ctr(enc, nonce, msg, 1) + _ctr(enc, nonce, t, 0)


def decrypt(enc, nonce, data, aad=b"", tag_len=8):
    """CCM decryption-verification of ciphertext | tag: the message, or None
    when the tag does not verify (nothing of the message is returned then)."""
    _check(nonce, tag_len)
    data = bytes(data)
    if len(data) < tag_len:
        return None
    n = len(data) - tag_len
    msg = _ctr(enc, nonce, data[:n], 1)
    t = _ctr(enc, nonce, data[n:], 0)
    if not _eq(_mac(enc, nonce, aad, msg, tag_len), t):
        return None
    return msg


class AesCcm:
    """AES-128-CCM with a fixed tag length, pure Python: the default backend
    of cipher.new_aes_ccm. encrypt(nonce, data, aad) -> ciphertext | tag;
    decrypt(nonce, data, aad) -> plaintext or None (the interface the
    `cryptography` backend in tools/crypto_backend.py also offers)."""

    __slots__ = ("enc", "tag_len")

    def __init__(self, key, tag_len=8):
        self.enc = aes.encryptor(bytes(key))
        self.tag_len = tag_len

    def encrypt(self, nonce, data, aad=b""):
        return encrypt(self.enc, nonce, data, aad, self.tag_len)

    def decrypt(self, nonce, data, aad=b""):
        return decrypt(self.enc, nonce, data, aad, self.tag_len)


# -- CMAC ----------------------------------------------------------------------

_M128 = (1 << 128) - 1


def _dbl(block):
    v = int.from_bytes(block, "big") << 1
    if v >> 128:
        v = (v & _M128) ^ 0x87
    return v.to_bytes(16, "big")


def cmac(enc, msg):
    """AES-CMAC of msg (16 bytes) [SP 800-38B 6.2, RFC 4493]."""
    k1 = _dbl(enc(bytes(16)))
    msg = bytes(msg)
    n = len(msg)
    if n and n % 16 == 0:
        last = _xor(msg[n - 16:], k1)
        body = msg[:n - 16]
    else:
        cut = n - n % 16
        part = msg[cut:] + b"\x80"
        last = _xor(part + bytes(16 - len(part)), _dbl(k1))
        body = msg[:cut]
    x = _cbc(enc, bytes(16), body)
    return enc(_xor(x, last))


def cmac_prf(key, msg):
    """AES-CMAC-PRF-128 [RFC 4615]: CMAC under a key of any length; one that
    is not 16 bytes is first reduced to AES-CMAC(0^128, key)."""
    key = bytes(key)
    if len(key) != 16:
        key = cmac(aes.encryptor(bytes(16)), key)
    return cmac(aes.encryptor(key), msg)
