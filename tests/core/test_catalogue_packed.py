# catalogue.Packed: the generated catalogue (one bytes constant per mapping,
# meter/catalogue_data.py) read as the mappings the core used to get as
# dicts. Dual runtime, bare asserts.
from osgp_meter import catalogue as cat
from osgp_meter import catalogue_data as cd

ET = 2048


def test_tables_mapping_protocol():
    T = cd.TABLES
    keys = list(T)
    assert len(keys) == len(T) == 110
    assert keys == sorted(keys)
    assert list(T.keys()) == keys
    for tid, entry in T.items():
        assert tid in T
        assert T[tid] == entry == T.get(tid)
        size, read, write, flags, default = entry
        assert isinstance(size, int) or isinstance(size, bytes)
        assert 0 <= read <= 0xFF and 0 <= write <= 0xFF and 0 <= flags <= 0x07
        assert default is None or (isinstance(default, bytes) and len(default) > 0)
    assert len(list(T.values())) == len(T)


def test_absent_keys():
    T = cd.TABLES
    present = set(T)
    for tid in list(range(-2, 300)) + list(range(ET - 2, ET + 300)) + [4096, 4096 + 1, 4096 + ET + 4, 0xFFFF, 1 << 20]:
        if tid in present:
            continue
        assert tid not in T
        assert T.get(tid) is None
        assert T.get(tid, 7) == 7
        try:
            T[tid]
            assert False, tid
        except KeyError:
            pass


def test_known_entries():
    T = cd.TABLES
    assert T[0][0] == 79 and T[0][1] == 0xFF and T[0][4][:4] == b"\x02*\x88E"
    assert T[2][4] is None
    # 11 + BT71.5:2 * (12 + BT71.3), byte-coded RPN
    assert T[74][0] == b"\x01\x00\x00\x0b\x02\x00G\x00\x05\x02\x01\x00\x00\x0c\x02\x00G\x00\x03\x01+*+"
    assert T[ET + 99][3] & 0x04                  # outside the seed inventory
    assert cat.dimension_tables(T) >= {0, 21, 61}


def test_recent_entries_stay_right():
    # the two-entry memo: alternating and repeated keys give the same answers
    T = cd.TABLES
    want = {tid: T[tid] for tid in (1, ET + 4, 0, 74)}
    for tid in (1, 1, ET + 4, 1, ET + 4, 0, 74, 1, 74, 74, ET + 4, 5000, 1):
        if tid in want:
            assert T.get(tid) == want[tid]
        else:
            assert T.get(tid) is None and tid not in T


def test_procedures_and_events():
    P = cd.PROCEDURES
    assert len(P) == len(list(P)) == 62
    assert P[0] == (0x29, 0x00) and P[ET + 1] == (0x6B, 0x03)
    assert 16 not in P and P.get(ET + 200) is None
    for n, (call, flags) in P.items():
        assert bool(flags & 0x02) == (n >= ET)
    E = cd.EVENTS
    assert len(E) == 96
    assert E[1] == 0x01 and E[2] == 0x00 and E[ET + 4] == 0x03
    assert 0 not in E and E.get(ET + 95) is None
    assert sum(1 for f in E.values() if f & 0x02) == 46
