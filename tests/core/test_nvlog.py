# The non-volatile log (docs/persistence.md): the record codec (framing, CRC,
# torn and corrupt records), the table store's dirty tracking, and commits
# that restore into a fresh firmware exactly what the live one holds.
from osgp_meter import nvlog as N
from osgp_meter import crc as C
from osgp_meter import persist
from osgp_meter import catalogue as cat
from osgp_meter.firmware import Firmware

T0 = 1_700_000_000_000
ET04 = 2048 + 4


class Reader:
    """A file's read(n) over bytes (MicroPython's io.BytesIO would do too)."""

    def __init__(self, b):
        self.b = b
        self.i = 0

    def read(self, n):
        out = self.b[self.i:self.i + n]
        self.i += len(out)
        return out


def sample_payload():
    return (N.table_entry(2052, 139, 103, b"\x01\x02\x03\x04") + N.reset_entry(7)
            + N.part_entry("keys", b"abc") + N.part_entry("empty", b""))


def test_crc32_check_value_and_fallback_agree():
    assert N.crc32(b"123456789") == 0xCBF43926
    saved = C._crc32
    C._crc32 = None
    try:
        assert N.crc32(b"123456789") == 0xCBF43926
        assert N.crc32(b"6789", N.crc32(b"12345")) == 0xCBF43926
    finally:
        C._crc32 = saved


def test_record_bytes_are_as_documented():
    r = N.record(N.K_COMMIT, 0x01020304, N.reset_entry(0x0804))
    assert r[:12] == b"NV\x01\x01\x04\x03\x02\x01\x03\x00\x00\x00"
    assert r[12:15] == b"\x02\x04\x08"
    c = N.crc32(r[:15])
    assert r[15:] == bytes((c & 255, (c >> 8) & 255, (c >> 16) & 255, c >> 24))


def test_round_trip_of_every_entry_kind():
    p = sample_payload()
    r = N.record(N.K_SNAPSHOT, 7, p)
    kind, seq, payload, end = N.check(r)
    assert (kind, seq, end) == (N.K_SNAPSHOT, 7, len(r))
    assert bytes(payload) == p
    assert N.entries(payload) == [(N.E_TABLE, 2052, 139, 103, b"\x01\x02\x03\x04"),
                                  (N.E_RESET, 7, 0, 0, b""),
                                  (N.E_PART, "keys", 0, 0, b"abc"),
                                  (N.E_PART, "empty", 0, 0, b"")]


def test_every_torn_record_is_ignored():
    r = N.record(N.K_COMMIT, 1, sample_payload())
    for n in range(len(r)):
        assert N.check(r[:n]) is None
        assert N.read(Reader(r[:n])) is None


def test_every_flipped_bit_is_caught():
    r = N.record(N.K_COMMIT, 1, sample_payload())
    for i in range(len(r)):
        for bit in (0x01, 0x80):
            bad = bytearray(r)
            bad[i] ^= bit
            assert N.check(bad) is None, (i, bit)


def test_scan_stops_at_the_torn_tail():
    a = N.record(N.K_COMMIT, 1, N.reset_entry(1))
    b = N.record(N.K_COMMIT, 2, N.part_entry("x", b"12"))
    log = a + b + b[:9]
    got = N.scan(log)
    assert [(k, s, e) for k, s, _, e in got] == [(1, 1, len(a)), (1, 2, len(a) + len(b))]
    f = Reader(log)
    assert N.read(f)[1] == 1
    assert N.read(f)[1] == 2
    assert N.read(f) is None


def test_malformed_payload_is_a_clear_error():
    for bad in (b"\x09", b"\x01\x00", N.table_entry(1, 4, 2, b"abc"), b"\x03\x05ab",
                N.part_entry("x", b"abc")[:-1]):
        try:
            N.entries(bad)
        except ValueError:
            pass
        else:
            assert False, bad


def test_garbage_is_not_a_header():
    assert N.header(b"\x00" * 12) is None
    assert N.header(b"NV\x03\x01" + bytes(8)) is None          # unknown kind
    assert N.header(b"NV\x01\x02" + bytes(8)) is None          # unknown version
    assert N.header(b"NV\x01\x01" + bytes(4) + b"\xff\xff\xff\xff") is None


# -- dirty tracking and commits ----------------------------------------------------

def fw():
    return Firmware({"keys": {}, "clock": T0 // 1000, "mep_secure": False}, T0)


def nv_state(f):
    s = f.meter.store
    out = {}
    for tid, w in s.written.items():
        if s.tables[tid][cat.T_FLAGS] & cat.F_NV:
            out[tid] = bytes(w)
    return out, persist.meta_bytes(f)


def test_store_tracks_written_ranges_only_when_asked():
    f = fw()
    s = f.meter.store
    assert s.dirty is None
    s.write(ET04, 10, b"ab")
    assert s.dirty is None
    s.dirty = {}
    s.write(ET04, 10, b"ab")
    s.write(ET04, 20, b"c")
    s.write(ET04, 5, b"xy")
    assert s.dirty == {ET04: [5, 21]}
    s.write(ET04, 100, b"far")              # a second range: a log's header and its entry
    s.write(ET04, 60, b"x")
    assert s.dirty == {ET04: [5, 21, 100, 103, 60, 61]}
    s.write(ET04, 30, b"y" * 30)            # joins the ranges it nearly touches
    assert s.dirty[ET04][0:2] == [5, 60]     # (overlaps are joined at the commit)
    s.reset(ET04)
    assert s.dirty[ET04] == [-1, 0]
    s.write(ET04, 1, b"z")
    assert s.dirty[ET04] == [-1, 2]     # committed as: reset, then the whole table


def test_a_log_header_and_its_new_entry_are_committed_apart():
    f = fw()
    log = []
    persist.attach(f, log.append)
    f.nv.loaded()
    f.meter.store.write(ET04, 0, b"\x01")
    f.meter.store.write(ET04, 120, b"\x02\x03")
    f.commit()
    assert [(e[3], e[4]) for e in N.entries(log[0])] == [(0, b"\x01"), (120, b"\x02\x03")]


def test_commit_carries_only_the_changed_bytes():
    f = fw()
    log = []
    persist.attach(f, log.append)
    f.nv.loaded()
    assert f.commit() == 0 and log == []
    f.meter.store.write(ET04, 50, b"\x11\x22")
    n = f.commit()
    assert n == len(log[0]) and n == 17               # one table entry of 2 bytes
    assert N.entries(log[0]) == [(N.E_TABLE, ET04, f.meter.store.size(ET04), 50, b"\x11\x22")]
    assert f.commit() == 0


def test_commits_replayed_into_a_fresh_firmware_give_the_same_state():
    live = fw()
    log = []
    persist.attach(live, log.append)
    snap = live.nv.snapshot()
    live.nv.loaded()
    s = live.meter.store
    s.write(ET04, 0, b"\x01" * 8)
    live.commit()
    s.write(2049, 2, b"\x05\x06")       # ET01
    live.meter.last_psn = 9
    live.mep.seq = 123456
    live.commit()
    s.reset(ET04)
    s.write(2049, 0, b"\x07")
    live.commit()
    live.meter.clock_offset = -5000
    live.commit()
    back = fw()
    persist.attach(back, None)
    back.nv.apply(snap, True)
    for p in log:
        back.nv.apply(p)
    back.nv.loaded()
    assert nv_state(back) == nv_state(live)
    assert back.mep.seq == 123456 and back.meter.last_psn == 9
    assert back.meter.clock_offset == -5000


def test_nv_parts_are_committed_when_their_bytes_change():
    live = fw()
    box = {"v": b"one"}
    live.meter.nv_part("thing", lambda: box["v"], None)
    log = []
    persist.attach(live, log.append)
    live.nv.loaded()
    assert live.commit() == 0
    box["v"] = b"two!"
    assert live.commit() > 0
    assert N.entries(log[-1]) == [(N.E_PART, "thing", 0, 0, b"two!")]
    assert live.commit() == 0
    back = fw()
    got = []
    back.meter.nv_part("thing", None, got.append)
    persist.attach(back, None)
    back.nv.apply(log[-1])
    assert got == [b"two!"]


def test_a_part_nobody_registered_survives_compaction_and_is_adopted_later():
    f = fw()
    persist.attach(f, None)
    f.nv.apply(N.part_entry("later", b"saved"))
    f.nv.loaded()
    assert N.part_entry("later", b"saved") in f.nv.snapshot()
    got = []
    f.meter.nv_part("later", lambda: b"saved", got.append)
    f.nv.adopt()
    assert got == [b"saved"]


def test_snapshot_resets_tables_it_does_not_hold():
    f = fw()
    f.meter.store.write(ET04, 0, b"\x09")
    persist.attach(f, None)
    f.nv.apply(N.part_entry(persist.META, persist.meta_bytes(f)), True)
    assert ET04 not in f.meter.store.written


def test_a_malformed_payload_changes_nothing():
    f = fw()
    persist.attach(f, None)
    before = f.meter.store.snapshot()
    try:
        f.nv.apply(N.table_entry(ET04, 139, 0, b"\x01") + b"\x07")
    except ValueError:
        pass
    else:
        assert False
    assert f.meter.store.snapshot() == before


def test_cold_start_is_committed_as_resets():
    f = fw()
    f.meter.store.write(ET04, 0, b"\x09")
    log = []
    persist.attach(f, log.append)
    f.nv.loaded()
    f.meter.store.clear()
    f.commit()
    assert (N.E_RESET, ET04, 0, 0, b"") in N.entries(log[0])


def test_a_part_registered_after_the_load_gets_its_bytes_at_registration():
    f = fw()
    persist.attach(f, None)
    f.nv.apply(N.part_entry("late", b"saved"))
    f.nv.loaded()
    got = []
    f.meter.nv_part("late", lambda: b"saved", got.append)   # as a feature's attach does
    assert got == [b"saved"]
    assert "late" in f.meter.nv_parts and f.nv.orphans == {}
    assert f.commit() == 0                 # what it holds is what was saved
