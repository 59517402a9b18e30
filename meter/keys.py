# The meter's keys, by role, with usage counters.
#
# MEP: MAK (advanced) and MBK (basic), 16 bytes each (20-byte fields, first
# 16 used); the server tries MAK first [MEP p.12-13]. Optical: MK, PK, RK,
# 20-byte passwords of the C12.18 Security service [OPT p.13]. PLC: a unicast
# and a broadcast key, 96-bit OMA keys, each with a usage counter that the
# head end watches (ET11.82/.86; threshold ET04.123) [MEP ET04/ET11].
# Digest objects are built on first use and kept, since building one costs
# more than a request.
#
# Key changes (EP15 / EP24 / EP25), the key wrap and the key-usage events
# are in keychange.py (loaded on first use), a Firmware's wiring in
# keywire.py; the ring's non-volatile form is below (docs/key-management.md).
from . import access
from .digest import OmaDigest
from . import cipher

KEY_LENGTHS = {
    access.ROLE_MAK: 16, access.ROLE_MBK: 16,
    access.ROLE_MK: 20, access.ROLE_PK: 20, access.ROLE_RK: 20,
    access.ROLE_PLC: 12, access.ROLE_BCAST: 12,
}


class KeyRing:
    __slots__ = ("keys", "usage", "on_change", "_digests", "_bases", "_enc")

    def __init__(self, keys=None):
        self.keys = {}
        self.usage = {}
        self.on_change = None         # fn(role) after set(): the firmware follows
        self._digests = None
        self._bases = None
        self._enc = None
        if keys:
            for role, key in keys.items():
                self.set(role, key)

    def set(self, role, key):
        """Install a key (bytes); None removes it. Lengths are checked."""
        if key is None:
            self.keys.pop(role, None)
        else:
            want = KEY_LENGTHS.get(role)
            if want is None:
                raise ValueError("no key for role 0x%02X" % role)
            if role in (access.ROLE_MK, access.ROLE_PK, access.ROLE_RK) and len(key) < want:
                key = bytes(key) + bytes(want - len(key))   # passwords are zero-padded
            if len(key) == 20 and want == 16:
                key = key[:16]
            if len(key) != want:
                raise ValueError("key for %s must be %d bytes" % (access.role_name(role), want))
            self.keys[role] = bytes(key)
        self.usage[role] = 0
        self._digests = None
        self._bases = None
        self._enc = None
        if self.on_change is not None:
            self.on_change(role)

    def get(self, role):
        return self.keys.get(role)

    def digest(self, role):
        """The OmaDigest for a MEP or PLC key, or None when not installed."""
        d = self._digests
        if d is None:
            d = self._digests = {}
        got = d.get(role)
        if got is None:
            key = self.keys.get(role)
            if key is None:
                return None
            got = d[role] = OmaDigest(key)
        return got

    def mep_base(self, role):
        """The MEP RC4 base key (mep_EncryptKey) of MAK or MBK [MEP App. B]."""
        b = self._bases
        if b is None:
            b = self._bases = {}
        got = b.get(role)
        if got is None:
            key = self.keys.get(role)
            if key is None:
                return None
            got = b[role] = cipher.mep_base_key(key)
        return got

    def note_use(self, role):
        """Count one use of a key (the PLC keys' usage counters)."""
        self.usage[role] = self.usage.get(role, 0) + 1
        return self.usage[role]

    def optical_passwords(self):
        """(role, password) pairs for the C12.18 Security service."""
        out = []
        for role in (access.ROLE_MK, access.ROLE_PK, access.ROLE_RK):
            key = self.keys.get(role)
            if key is not None:
                out.append((role, key))
        return out

    # -- non-volatile form (the "keys" nv_part) ---------------------------------
    def encode(self):
        """version 1 | {role UINT8 | length UINT8 | key} per key, roles in
        ascending order. Usage counters are not here: their home is ET11.82 /
        .86 (a non-volatile table), so a request does not rewrite this part."""
        e = self._enc
        if e is None:
            out = bytearray(b"\x01")
            for role in sorted(self.keys):
                k = self.keys[role]
                out += bytes((role, len(k))) + k
            e = self._enc = bytes(out)
        return e

    def load(self, data):
        """Take an encode() image (the whole ring: roles it lacks go). False,
        and nothing changed, when it is not a valid image. Usage counters and
        on_change are left alone: this is a restore, not a key change."""
        try:
            if not data or data[0] != 1:
                return False
            got = {}
            i = 1
            while i < len(data):
                role, n = data[i], data[i + 1]
                key = bytes(data[i + 2:i + 2 + n])
                if KEY_LENGTHS.get(role) != n or len(key) != n:
                    return False
                got[role] = key
                i += 2 + n
        except IndexError:
            return False
        self.keys = got
        self._digests = None
        self._bases = None
        self._enc = None
        return True


# -- key changes: EP15 / EP24 / EP25 (EMULATOR PROFILE, docs/key-management.md) ----
# The procedures, the KW-RC4 wrap and the key-usage events are in
# keychange.py, imported on first use; a Firmware's wiring (meter.keys, the
# "keys" nv_part, the usage counters' reset) is in keywire.py. What stays
# here is the ring, the numbers and the AES hook.

EP15 = 2048 + 15
EP24 = 2048 + 24
EP25 = 2048 + 25

# procedure number -> (roles by key_id, new-key length)
CHANGES = {
    EP15: ((access.ROLE_PLC, access.ROLE_BCAST), 12),
    EP24: ((access.ROLE_MBK, access.ROLE_MAK), 16),
    EP25: ((access.ROLE_MK, access.ROLE_PK, access.ROLE_RK), 20),
}

# AES mode (ET04.127 = 2): the AES suite's unwrap, fn(meter, number, key_id,
# target_role, caller_role, blob) -> new key bytes, or None when its check
# fails (result 5). Without one, key changes in AES mode answer 3.
_aes_unwrap = None


def set_aes_unwrap(fn):
    """Install the key unwrap of the AES suite (None removes it)."""
    global _aes_unwrap
    _aes_unwrap = fn


def wrap(kek, number, key_id, new_key):
    """wrapped new key | check (8) (keychange.wrap)."""
    from . import keychange
    return keychange.wrap(kek, number, key_id, new_key)


def unwrap(kek, number, key_id, blob):
    """The new key from wrapped | check, or None (keychange.unwrap)."""
    from . import keychange
    return keychange.unwrap(kek, number, key_id, blob)


def change_params(kek, number, key_id, new_key):
    """The parameter block of a key change: key_id | wrapped | check."""
    return bytes((key_id,)) + wrap(kek, number, key_id, new_key)
