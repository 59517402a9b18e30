# Key levels: lengths per role, password padding, usage counters, cached
# digest objects and MEP base keys.
from osgp_meter import access as A
from osgp_meter.keys import KeyRing


def raises(fn, *args):
    try:
        fn(*args)
    except ValueError:
        return True
    return False


def test_lengths_are_checked_per_role():
    ring = KeyRing()
    assert raises(ring.set, A.ROLE_MAK, bytes(12))
    assert raises(ring.set, A.ROLE_PLC, bytes(16))
    assert raises(ring.set, A.ROLE_NONE, bytes(16))
    ring.set(A.ROLE_MAK, bytes(20))             # 20-byte field: first 16 used [MEP p.12]
    assert ring.get(A.ROLE_MAK) == bytes(16)


def test_optical_passwords_are_zero_padded_to_20():
    ring = KeyRing({A.ROLE_RK: b"READONLY", A.ROLE_MK: b"M" * 20})
    assert ring.optical_passwords() == [(A.ROLE_MK, b"M" * 20), (A.ROLE_RK, b"READONLY" + bytes(12))]


def test_usage_counters_count_and_reset_on_key_change():
    ring = KeyRing({A.ROLE_PLC: bytes(12), A.ROLE_BCAST: bytes(12)})
    for _ in range(3):
        ring.note_use(A.ROLE_PLC)
    ring.note_use(A.ROLE_BCAST)
    assert ring.usage[A.ROLE_PLC] == 3 and ring.usage[A.ROLE_BCAST] == 1
    ring.set(A.ROLE_PLC, bytes([1] * 12))
    assert ring.usage[A.ROLE_PLC] == 0 and ring.usage[A.ROLE_BCAST] == 1


def test_digest_and_base_key_follow_the_installed_key():
    ring = KeyRing({A.ROLE_MAK: bytes([1] * 16)})
    d = ring.digest(A.ROLE_MAK)
    assert ring.digest(A.ROLE_MAK) is d
    assert d.digest(bytes.fromhex("3F 00 17 00 00 00 00 2C 01 02 03 04")) == bytes.fromhex("74 86 1F 6D 76 58 DD 56")
    assert ring.mep_base(A.ROLE_MAK) == bytes.fromhex("3E 83 81 B2 2E 88 7C AC BE 9C 80 58 D4 4C BC 1A")
    assert ring.digest(A.ROLE_MBK) is None and ring.mep_base(A.ROLE_MBK) is None
    ring.set(A.ROLE_MAK, bytes(16))
    assert ring.digest(A.ROLE_MAK) is not d
