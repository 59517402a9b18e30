# The small crypto interface of the core: the RC4 backend registry and the
# OSGP key schedules (MEP port and PLC), plus the ISO/IEC 14908-1
# authentication transform.
#
# Source tags (see reference/osgp-application.md 6.3 and
# reference/lontalk-transport-security.md 4.2b/4.3):
#   [MEP] documented in the OSGP MEP Client Developer's Guide, App. B.
#   [F5]  reconstruction (course exercise after Jovanovic & Neves), NOT checked
#         against the ETSI text: (?) until someone holding TS 104 001 confirms.
#   [DX]  the 14908-1 transform as the LON Stack DX implements it.
#
# RC4 backend: the core only ever calls new_rc4(key), which returns an object
# with crypt(data) -> bytes that continues its keystream. The default is the
# pure-Python rc4.RC4; a host may register a faster factory (CPython:
# osgp_host.crypto_backend.install()). Every factory must give the same bytes.
#
# AES security mode (ET04.127 = 2, docs/security-modes.md): the same pattern
# for AES-128-CCM (new_aes_ccm, set_aes_backend). The AES code itself
# (aes.py, ccm.py, aes_mode.py) is imported only when a meter first needs it,
# so a meter in RC4 mode never loads its tables; what stays here is the
# backend registry and the ET04.127 write rules.
from .rc4 import RC4
from .digest import OmaDigest

_rc4_factory = None   # None: the pure-Python default
_aes_factory = None   # None: the pure-Python ccm.AesCcm


def set_rc4_backend(factory=None):
    """Register factory(key) -> object with crypt(data) -> bytes (continuing
    the keystream); None restores the pure-Python default. Returns the
    previous factory (None for the default)."""
    global _rc4_factory
    old = _rc4_factory
    _rc4_factory = factory
    return old


def get_rc4_backend():
    """The factory in use (rc4.RC4 when none is registered)."""
    return _rc4_factory or RC4


def new_rc4(key):
    """An RC4 cipher keyed with key, from the registered backend."""
    f = _rc4_factory
    if f is None:
        return RC4(key)
    return f(key)


def _xor8(base_key, digest):
    # base key with its first 8 bytes XOR the 8-byte digest
    if len(digest) != 8:
        raise ValueError("digest must be 8 bytes")
    if len(base_key) != 16:
        raise ValueError("base key must be 16 bytes")
    return bytes([base_key[i] ^ digest[i] for i in range(8)]) + bytes(base_key[8:])


# ---- MEP port, RC4 mode [MEP App. B] (documented) -------------------------

MEP_CONST_KEY = bytes((0x38, 0x8B, 0x8F, 0xBC, 0x36, 0xA8, 0x55, 0x85,
                       0x87, 0xAF, 0xC9, 0x0F, 0xB2, 0x3A, 0x3B, 0x99))


def mep_base_key(mep_key):
    """mep_EncryptKey = RC4 keystream (keyed by the MEP key, MAK or MBK) XOR
    the constant key [MEP App. B]. Key fields may be 20 bytes; the first 16
    are used [MEP p.12-13]. MAK 01 x 16 -> 3E 83 81 B2 ... BC 1A (our own
    computation, not printed in the guide)."""
    if len(mep_key) < 16:
        raise ValueError("MEP key must be 16 bytes")
    return new_rc4(bytes(mep_key[:16])).crypt(MEP_CONST_KEY)


def mep_key(base_key, digest):
    """Per-request RC4 key: base key, first 8 bytes XOR the request digest
    [MEP App. B]."""
    return _xor8(base_key, digest)


def mep_cipher(base_key, digest):
    """The RC4 object of one MEP exchange [MEP App. B]: crypt() it first over
    the request from its code through the sequence number (the digest is over
    the plaintext; length and digest stay clear), then, continued, over the
    response (0x0C answers encrypted, 0x0B plain)."""
    return new_rc4(_xor8(base_key, digest))


# ---- ISO/IEC 14908-1 authentication transform [DX lcs_tsa.c Encrypt] -------

def auth_transform(key, challenge, apdu, oma_addr=None, empty_pass=False):
    """The 14908-1 challenge/response value: the OMA-digest step function
    with the state started at the 8-byte challenge, the message processed
    from its LAST byte to its first, zero-padded to whole passes [DX].
    Classic mode: key = the 6-byte domain authentication key (6 key bytes per
    pass). OMA mode: key = domain-0 key || domain-1 key (12 bytes, 18 key
    bytes per pass) and oma_addr = the 9-byte OMA address that prefixes the
    APDU [DX lcs_eia709_1.h OmaAddress].
    An empty message runs no pass in [DX] (a `while` loop) but one pass in the
    [F5] reconstruction (a do-while), which the PLC key schedule relies on:
    empty_pass selects the latter. Only empty messages differ."""
    if len(key) != 6 and len(key) != 12:
        raise ValueError("14908-1 key must be 6 (classic) or 12 (OMA) bytes")
    if oma_addr is not None:
        if len(oma_addr) != 9:
            raise ValueError("OMA address must be 9 bytes")
        apdu = bytes(oma_addr) + bytes(apdu)
    return OmaDigest(key).transform(challenge, bytes(reversed(apdu)), empty_pass)


# ---- PLC, RC4 mode: reconstruction [F5] (?) -------------------------------
# Base key = T(c1) || T(c2), T = the classic 14908 transform with the start
# state c over an empty message but run for exactly one pass of 48 zero steps
# (auth_transform(..., empty_pass=True); the [DX] transform would run none
# for an empty message, leaving T(c) = c), keyed with the first
# 6 bytes of the 12-byte OMA key (?: [F5] passes the whole key and reads only
# bytes 0..5). Per message: RC4 key = base key, first 8 bytes XOR the OMA
# digest of the plaintext; plain RC4 over the plaintext; the digest travels in
# clear after the ciphertext, so the receiver derives the key from it,
# decrypts and then verifies the digest. Self-computed vector (DF x 12):
# base key C3 3E F2 FF B0 AA AE 76 ED 03 9A D0 80 4D 67 AA.

PLC_C1 = bytes((0x81, 0x3F, 0x52, 0x9A, 0x7B, 0xE3, 0x89, 0xBA))
PLC_C2 = bytes((0x72, 0xB0, 0x91, 0x8D, 0x44, 0x05, 0xAA, 0x57))


def plc_base_key(oma_key):
    """16-byte PLC RC4 base key from the 12-byte OMA key [F5] (?)."""
    if len(oma_key) != 12:
        raise ValueError("PLC OMA key must be 12 bytes")
    t = OmaDigest(bytes(oma_key[:6]))
    return t.transform(PLC_C1, b"", True) + t.transform(PLC_C2, b"", True)


def plc_key(base_key, digest):
    """Per-message RC4 key: base key, first 8 bytes XOR the digest [F5] (?)."""
    return _xor8(base_key, digest)


def plc_encrypt(base_key, plaintext, digest):
    """RC4 ciphertext of plaintext under plc_key(base_key, digest), where
    digest is the OMA digest of the plaintext [F5] (?)."""
    return new_rc4(_xor8(base_key, digest)).crypt(plaintext)


def plc_decrypt(base_key, ciphertext, digest):
    """Inverse of plc_encrypt, digest taken from the received trailer; the
    caller then recomputes the digest of the result and compares [F5] (?)."""
    return new_rc4(_xor8(base_key, digest)).crypt(ciphertext)


# ---- AES security mode: backend and ET04.127 rules (docs/security-modes.md) --

AES_TAG = 8                  # the profile's CCM tag length (bytes)


def set_aes_backend(factory=None):
    """Register factory(key, tag_len) -> object with encrypt(nonce, data, aad)
    -> ciphertext | tag and decrypt(nonce, data, aad) -> plaintext or None
    (AES-128-CCM); None restores the pure-Python default. Returns the
    previous factory."""
    global _aes_factory
    old = _aes_factory
    _aes_factory = factory
    return old


def new_aes_ccm(key, tag_len=AES_TAG):
    """AES-128-CCM keyed with the 16-byte `key`, from the registered backend."""
    f = _aes_factory
    if f is None:
        from .ccm import AesCcm
        return AesCcm(key, tag_len)
    return f(key, tag_len)


def aes_unwrap_key(meter, number, key_id, target, role, blob):
    """keys.set_aes_unwrap's function: the new key of an EP15/EP24/EP25 key
    change in AES mode, or None (aes_mode.keys_unwrap; imported on use)."""
    from . import aes_mode
    return aes_mode.keys_unwrap(meter, number, key_id, target, role, blob)


ET04 = 2048 + 4
ET04_SECURITY_MODE = 127
MODE_RC4 = 0
MODE_AES = 2


def guard_security_mode(meter):
    """Make ET04 writes follow the ET04.127 rules (meter.hook_write, in
    front of any ET04 hook already there): a write that changes ET04.127
    is judged by aes_mode.mode_write."""
    hooks = meter.write_hooks
    prev = hooks.get(ET04) if hooks else None

    def hook(m, tid, offset, data, role, limits, now):
        i = ET04_SECURITY_MODE - offset
        if 0 <= i < len(data) and data[i] != m.store.field(ET04, ET04_SECURITY_MODE, 1):
            from . import aes_mode      # the rules; not the AES tables
            refused = aes_mode.mode_write(m, data[i], role, limits)
            if refused is not None:
                return refused
        if prev is not None:
            return prev(m, tid, offset, data, role, limits, now)
        return None
    meter.hook_write(ET04, hook)
