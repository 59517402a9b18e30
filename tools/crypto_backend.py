"""CPython accelerator for the core's RC4 and AES-CCM: the `cryptography` package.

The portable core (osgp_meter.cipher) encrypts through a registered factory
``factory(key) -> object with crypt(data) -> bytes`` whose keystream continues
from call to call (the MEP response continues the request's RC4 state). This
module supplies such a factory on top of OpenSSL through `cryptography` and
registers it with :func:`install`. Both backends give the same bytes; the
tests in tests/test_crypto_backend.py hold them to it.

ARC4 moved to ``cryptography.hazmat.decrepit`` (cryptography >= 43); older
versions have it in ``cryptography.hazmat.primitives.ciphers.algorithms``.
`cryptography` accepts only key sizes of 5, 7, 8, 10, 16, 20, 24 and 32 bytes;
for any other length the factory falls back to the pure-Python RC4 (OSGP only
uses 16-byte RC4 keys, so in practice that never happens).

AES security mode (docs/security-modes.md): ``aes_ccm_factory(key, tag_len)``
gives AES-128-CCM through OpenSSL (``AESCCM``) with the core's interface
(``decrypt`` answers None instead of raising ``InvalidTag``);
:func:`install` registers it next to the RC4 factory
(``osgp_meter.cipher.set_aes_backend``). tests/test_aes_vectors.py holds it
to the pure-Python CCM over meter/aes.py, byte for byte.
"""
try:
    from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
except ImportError:  # pragma: no cover - cryptography < 43
    from cryptography.hazmat.primitives.ciphers.algorithms import ARC4
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from osgp_meter import cipher as _cipher
from osgp_meter.rc4 import RC4 as PurePythonRC4

__all__ = ["CryptographyRC4", "rc4_factory", "CryptographyAesCcm", "aes_ccm_factory",
           "install", "uninstall", "KEY_SIZES"]

#: RC4 key lengths (bytes) that `cryptography` accepts.
KEY_SIZES = frozenset(bits // 8 for bits in ARC4.key_sizes)


class CryptographyRC4:
    """RC4 through OpenSSL; one continuing encryptor per object."""

    __slots__ = ("_update",)

    def __init__(self, key):
        self._update = Cipher(ARC4(bytes(key)), mode=None).encryptor().update

    def crypt(self, data):
        """XOR data with the next len(data) keystream bytes; returns bytes."""
        return self._update(data)


def rc4_factory(key):
    """An RC4 object for key: OpenSSL when it takes the key size, else pure Python."""
    if len(key) in KEY_SIZES:
        return CryptographyRC4(key)
    return PurePythonRC4(key)


class CryptographyAesCcm:
    """AES-128-CCM through OpenSSL, with the interface of osgp_meter.ccm.AesCcm."""

    __slots__ = ("_ccm",)

    def __init__(self, key, tag_len=8):
        self._ccm = AESCCM(bytes(key), tag_length=tag_len)

    def encrypt(self, nonce, data, aad=b""):
        """ciphertext | tag."""
        return self._ccm.encrypt(bytes(nonce), bytes(data), bytes(aad) or None)

    def decrypt(self, nonce, data, aad=b""):
        """The plaintext, or None when the tag does not verify."""
        try:
            return self._ccm.decrypt(bytes(nonce), bytes(data), bytes(aad) or None)
        except InvalidTag:
            return None


def aes_ccm_factory(key, tag_len=8):
    """cipher.set_aes_backend's factory: AES-128-CCM through OpenSSL."""
    return CryptographyAesCcm(key, tag_len)


def install():
    """Make the core encrypt through `cryptography` (RC4 and AES-CCM); returns
    the previous RC4 factory."""
    _cipher.set_aes_backend(aes_ccm_factory)
    return _cipher.set_rc4_backend(rc4_factory)


def uninstall():
    """Back to the core's pure-Python RC4 and AES-CCM."""
    _cipher.set_rc4_backend(None)
    _cipher.set_aes_backend(None)
