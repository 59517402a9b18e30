# The meter's keys, by role, with usage counters.
#
# MEP: MAK (advanced) and MBK (basic), 16 bytes each (20-byte fields, first
# 16 used); the server tries MAK first [MEP p.12-13]. Optical: MK, PK, RK,
# 20-byte passwords of the C12.18 Security service [OPT p.13]. PLC: a unicast
# and a broadcast key, 96-bit OMA keys, each with a usage counter that the
# head end watches (ET11.82/.86; threshold ET04.123) [MEP ET04/ET11].
# Digest objects are built on first use and kept, since building one costs
# more than a request.
from . import access
from .digest import OmaDigest
from . import cipher

KEY_LENGTHS = {
    access.ROLE_MAK: 16, access.ROLE_MBK: 16,
    access.ROLE_MK: 20, access.ROLE_PK: 20, access.ROLE_RK: 20,
    access.ROLE_PLC: 12, access.ROLE_BCAST: 12,
}


class KeyRing:
    __slots__ = ("keys", "usage", "_digests", "_bases")

    def __init__(self, keys=None):
        self.keys = {}
        self.usage = {}
        self._digests = None
        self._bases = None
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
