# Key changes: EP15 / EP24 / EP25, the KW-RC4 key wrap and the key-usage
# events (EMULATOR PROFILE, docs/key-management.md). Imported on first use
# (a key change, a usage threshold): keys.py holds the ring, the hooks and
# the constants a meter needs at boot.
#
# params = key_id UINT8 | wrapped new key (12 / 16 / 20 bytes) | check (8)
# The wrap ("KW-RC4"), built from the suite's own parts so a key never
# travels in clear, whether or not the request itself is encrypted:
#   KEK    the key being replaced; when that key is not installed, the key
#          that authenticated the request. D = its first 16 bytes (20-byte
#          optical passwords), else all of it (12 or 16 bytes).
#   check  = OMA digest under D of  EP number (UINT16 LE) | key_id | new key
#   base   = RC4 keyed with D over the MEP constant key (= the MEP base key
#            mep_EncryptKey when D is a MEP key [MEP App. B])
#   wrapped = RC4(base with its first 8 bytes XOR check) over the new key
# The meter decrypts with the check it was given, recomputes the check and
# compares: a synthetic IV, so the same KEK never encrypts two different
# keys under one RC4 key. Results: 0 done; 2 invalid parameter (short,
# unknown key_id); 3 conflicts with setup (no key ring, AES mode without the
# AES wrap, no KEK at all); 5 no authorization (the check does not verify:
# the caller does not hold the KEK; or the broadcast key asks for another key
# than itself). The new key takes effect for the NEXT request: the answer to
# the change itself is digested (and encrypted) under the old key.

from . import access
from . import cipher
from . import keys as K
from . import keywire as W
from .digest import OmaDigest

EE31 = 2048 + 31              # Password Table Written (arg: the key's role bit)
EE33 = 2048 + 33              # Key Usage Threshold Reached
ET04 = 2048 + 4
ET04_MAX_KEY_USE = 123
ET04_SECURITY_MODE = 127
MODE_AES = 2
USER_PLC = 0xFFFE


def _wrap_rc4(kek, number, key_id, new_key):
    d = bytes(kek[:16]) if len(kek) > 16 else bytes(kek)
    check = OmaDigest(d).digest(bytes((number & 0xFF, number >> 8, key_id)) + bytes(new_key))
    base = cipher.new_rc4(d).crypt(cipher.MEP_CONST_KEY)
    return check, cipher.new_rc4(cipher.mep_key(base, check))


def wrap(kek, number, key_id, new_key):
    """wrapped new key | check (8): the bytes after key_id in the params."""
    check, rc4 = _wrap_rc4(kek, number, key_id, new_key)
    return rc4.crypt(bytes(new_key)) + check


def unwrap(kek, number, key_id, blob):
    """The new key from wrapped | check, or None when the check fails."""
    blob = bytes(blob)
    if len(blob) < 9:
        return None
    wrapped, check = blob[:-8], blob[-8:]
    d = bytes(kek[:16]) if len(kek) > 16 else bytes(kek)
    base = cipher.new_rc4(d).crypt(cipher.MEP_CONST_KEY)
    new = cipher.new_rc4(cipher.mep_key(base, check)).crypt(wrapped)
    if OmaDigest(d).digest(bytes((number & 0xFF, number >> 8, key_id)) + new) != check:
        return None
    return new


def change_params(kek, number, key_id, new_key):
    """The whole parameter block a head end writes after the PSN."""
    return bytes((key_id,)) + wrap(kek, number, key_id, new_key)


def change_key(meter, number, params, role):
    roles, n = K.CHANGES[number]
    if len(params) < 1 + n + 8 or params[0] >= len(roles):
        return 2, b""
    key_id = params[0]
    target = roles[key_id]
    ring = meter.keys
    if ring is None:
        return 3, b""
    if role == access.ROLE_BCAST and target != access.ROLE_BCAST:
        return 5, b""
    blob = bytes(params[1:1 + n + 8])
    if meter.store.field(ET04, ET04_SECURITY_MODE, 1) == MODE_AES:
        if K._aes_unwrap is None:
            return 3, b""
        new = K._aes_unwrap(meter, number, key_id, target, role, blob)
    else:
        kek = ring.get(target)
        if kek is None:
            kek = ring.get(role)
        if kek is None:
            return 3, b""
        new = unwrap(kek, number, key_id, blob)
    if new is None:
        return 5, b""
    try:
        ring.set(target, new)
    except ValueError:
        return 2, b""
    from . import events
    events.log(meter, EE31, target)
    events.alarm(meter, 8, 1, True)          # BT03 8.1 password table written
    return 0, b""


# -- key usage: events, the BT03 8.2 alarm, counters reset on change --------------

def usage_event(meter, role, used, limit, now):
    """plc_osgp.on_key_usage: EE33 at 80 % and at 100 % of ET04.123 (arg:
    key ID 0 unicast / 1 broadcast | percent << 8), BT03 8.2 key expiration
    pending from 80 % until the key is changed."""
    from . import events
    kid = 1 if role == access.ROLE_BCAST else 0
    pct = 100 if used >= limit else 80
    events.log(meter, EE33, kid | (pct << 8), USER_PLC, meter.utc(now))
    events.alarm(meter, 8, 2, True)


def _expiring(meter, ring):
    limit = meter.store.field(ET04, ET04_MAX_KEY_USE, 4)
    if not limit:
        return False
    store = meter.store
    for role in W.USAGE_FIELDS:             # the counters' home, ET11.82 / .86
        if store.field(W.ET11, W.USAGE_FIELDS[role], 4) >= (4 * limit + 4) // 5:
            return True
    return False


def usage_changed(meter, ring):
    """After a PLC key change: BT03 8.2 down when no PLC key is at 80 %."""
    if not _expiring(meter, ring):
        from . import events
        events.alarm(meter, 8, 2, False)
