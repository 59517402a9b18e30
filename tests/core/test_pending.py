# Pending tables (meter/pending.py, docs/pending-tables.md): PED writes and
# reads of pending copies, BT04, BP12-BP15, events 28/29, activation at the
# exact second, persistence of the staged images. Dual runtime.
import tou_util as u
from osgp_meter import access, events, pending, clock

MAK = access.ROLE_MAK
T0 = u.utc(2026, 11, 26, 12, 0, 0)
BT04 = 4
BT06 = 6            # Utility Information: 80 config bytes, no side effects
P06 = 4096 + 6
BT54 = 54
P54 = 4096 + 54
ET03 = 2048 + 3


def bare(t0=T0):
    m = u.bare(t0)
    pending.attach(m)
    return m


def ms(m, t):
    return m.physical_ms(t)


def pw(m, tid, offset, ped, data, t=None, role=MAK, limits=None):
    """0x4F to `tid` at meter second t: count = PED + data."""
    body = bytes(ped) + bytes(data)
    n = len(body)
    req = bytes((0x4F, tid >> 8, tid & 0xFF, offset >> 16, (offset >> 8) & 0xFF, offset & 0xFF,
                 n >> 8, n & 0xFF)) + body
    return m.execute(req, role, limits or u.big(), ms(m, T0 if t is None else t))


def fw(m, tid, ped, data, t=None, role=MAK):
    body = bytes(ped) + bytes(data)
    n = len(body)
    req = bytes((0x40, tid >> 8, tid & 0xFF, n >> 8, n & 0xFF)) + body
    return m.execute(req, role, u.big(), ms(m, T0 if t is None else t))


def pr(m, tid, offset, count, t=None, role=MAK, limits=None):
    req = bytes((0x3F, tid >> 8, tid & 0xFF, offset >> 16, (offset >> 8) & 0xFF, offset & 0xFF,
                 count >> 8, count & 0xFF))
    return m.execute(req, role, limits or u.big(), ms(m, T0 if t is None else t))


def full_read(m, tid, t=None, role=MAK):
    return m.execute(bytes((0x30, tid >> 8, tid & 0xFF)), role, u.big(), ms(m, T0 if t is None else t))


def bt04(m):
    """(std bitmap, mfg bitmap, last activation STIME, n, [(ped, word)])."""
    b = m.store.get(BT04)
    ns, nm, cap = m.store.field(0, 13, 1), m.store.field(0, 14, 1), m.store.field(0, 18, 1)
    at = ns + nm
    recs = []
    for i in range(b[at + 5]):
        r = b[at + 6 + 8 * i:at + 14 + 8 * i]
        recs.append((bytes(r[0:6]), r[6] | r[7] << 8))
    return bytes(b[0:ns]), bytes(b[ns:at]), bytes(b[at:at + 5]), b[at + 5], recs


def evs(m, *which):
    return [(e[0], e[3], e[4]) for e in events.entries(m) if e[3] in which]


def unchanged(m):
    return (m.store.snapshot(), m.pending.nv_get(), m.subsystems)


# -- the reference's example and the byte layout ---------------------------------

def test_reference_example_4_bytes_from_offset_3_is_offset_3_count_10():
    m = bare()
    ped = pending.ped_absolute(T0 + 3600)
    # write 4 bytes at table offset 3: offset 3 (not shifted), count 4 + 6
    req = bytes.fromhex("4F 1006 000003 000A") + ped + b"WXYZ"
    assert req[6:8] == b"\x00\x0a" and req[3:6] == b"\x00\x00\x03"
    assert m.execute(req, MAK, u.big(), ms(m, T0)) == b"\x00"
    rsp = m.execute(bytes.fromhex("3F 1006 000003 000A"), MAK, u.big(), ms(m, T0))
    assert rsp == b"\x00\x00\x0a" + ped + b"WXYZ"
    # the live table is untouched until activation
    assert m.store.read(BT06, 3, 4) == bytes(4)


def test_ped_codecs():
    t = u.utc(2026, 12, 1, 0, 0, 0)
    assert pending.ped_absolute(t) == bytes.fromhex("00 1A 0C 01 00 00")
    assert pending.ped_absolute(t + 59, pending.FLAG_SELF_READ) == bytes.fromhex("10 1A 0C 01 00 00")
    assert pending.due_of(pending.ped_absolute(t), T0) == t
    assert pending.due_of(pending.ped_absolute(T0 - 600), T0) == T0      # past: at receipt
    assert pending.due_of(pending.ped_relative(1, 2, 3, 4, 5), T0) == T0 + 604800 + 2 * 86400 + 3 * 3600 + 245
    assert pending.due_of(pending.ped_procedure(b"abcde"), T0) is None
    assert pending.due_of(bytes(6), T0) == -1                             # the empty PED
    assert pending.due_of(bytes.fromhex("00 1A 0D 01 00 00"), T0) == -1   # month 13
    assert pending.due_of(bytes.fromhex("03 00 00 00 00 00"), T0) == -1   # no such code
    assert pending.due_of(bytes.fromhex("41 00 00 00 00 01"), T0) == -1   # reserved bit 6


def test_full_write_and_full_read_carry_the_ped():
    m = bare()
    ped = pending.ped_relative(minutes=5)
    assert fw(m, P06, ped, b"hello") == b"\x00"
    rsp = full_read(m, P06)
    size = m.store.size(BT06)
    assert rsp[0] == 0 and (rsp[1] << 8 | rsp[2]) == size + 6
    assert rsp[3:9] == ped and rsp[9:14] == b"hello" and rsp[14:] == bytes(size - 5)


def test_reading_a_pending_copy_with_nothing_pending_gives_the_empty_ped_and_the_live_table():
    m = bare()
    m.store.write(BT06, 0, b"live")
    assert pr(m, P06, 0, 10) == b"\x00\x00\x0a" + bytes(6) + b"live"


# -- activation -----------------------------------------------------------------

def test_absolute_ped_activates_at_its_exact_second_on_a_bare_core():
    m = bare()
    assert m.subsystems == ()                  # nothing pending: no subsystem
    at = T0 + 3600
    assert pw(m, P06, 0, pending.ped_absolute(at), b"NEW") == b"\x00"
    assert m.subsystems == (m.pending,)
    assert m.advance(ms(m, at - 1)) == ms(m, at)   # the driver is told when
    assert m.store.read(BT06, 0, 3) == bytes(3)
    m.advance(ms(m, at + 7))                   # woken late: still stamped `at`
    assert m.store.read(BT06, 0, 3) == b"NEW"
    assert evs(m, 28) == [(at, 28, BT06)]
    std, mfg, last, n, recs = bt04(m)
    assert last == clock.encode_stime(at) and std == bytes(len(std))
    assert n == 1 and recs == [(pending.ped_absolute(at), BT06)]      # bit 12 clear
    assert m.subsystems == () and m.pending.entries == []


def test_relative_ped_counts_from_receipt():
    m = bare()
    t1 = T0 + 100
    assert pw(m, P06, 10, pending.ped_relative(hours=1, seconds=30), b"R", t1) == b"\x00"
    m.advance(ms(m, t1 + 3629))
    assert m.store.read(BT06, 10, 1) == b"\x00"
    m.advance(ms(m, t1 + 3630))
    assert m.store.read(BT06, 10, 1) == b"R"
    assert evs(m, 28)[0][0] == t1 + 3630


def test_a_read_after_the_time_sees_the_activated_table():
    m = bare()
    at = T0 + 60
    pw(m, P06, 0, pending.ped_absolute(at), b"Z")
    rsp = m.execute(bytes.fromhex("3F 0006 000000 0001"), MAK, u.big(), ms(m, at))
    assert rsp == b"\x00\x00\x01Z"


def test_partial_writes_with_the_same_ped_accumulate_into_one_image():
    m = bare()
    ped = pending.ped_absolute(T0 + 600)
    assert pw(m, P06, 0, ped, b"abc") == b"\x00"
    assert pw(m, P06, 70, ped, b"xyz") == b"\x00"
    assert pw(m, P06, 2, ped, b"CD") == b"\x00"       # overlaps and extends the first
    assert len(m.pending.entries) == 1
    assert m.pending.entries[0].segs == [[0, bytearray(b"abCD")], [70, bytearray(b"xyz")]]
    assert pr(m, P06, 0, 6 + 80)[9:] == b"abCD" + bytes(66) + b"xyz" + bytes(7)
    m.advance(ms(m, T0 + 600))
    assert m.store.read(BT06, 0, 80) == b"abCD" + bytes(66) + b"xyz" + bytes(7)
    assert len(evs(m, 28)) == 1


def test_a_different_ped_replaces_the_pending_copy():
    m = bare()
    pw(m, P06, 0, pending.ped_absolute(T0 + 600), b"old")
    assert pw(m, P06, 5, pending.ped_absolute(T0 + 1200), b"new") == b"\x00"
    assert evs(m, 29) == [(T0, 29, BT06)]
    m.advance(ms(m, T0 + 1200))
    assert m.store.read(BT06, 0, 8) == bytes(5) + b"new"
    assert evs(m, 28) == [(T0 + 1200, 28, BT06)]


def test_unwritten_bytes_keep_the_live_values_at_activation():
    m = bare()
    m.store.write(BT06, 0, b"0123456789")
    pw(m, P06, 3, pending.ped_absolute(T0 + 60), b"ab")
    m.store.write(BT06, 8, b"!!")          # changed after staging: kept
    m.advance(ms(m, T0 + 60))
    assert m.store.read(BT06, 0, 10) == b"012ab567!!"


def test_bt04_bitmaps_records_and_an_extended_table():
    m = bare()
    ped = pending.ped_procedure(b"T1")
    assert pw(m, P06, 0, ped, b"x") == b"\x00"
    assert pw(m, 4096 + ET03, 0, ped, b"EMU") == b"\x00"
    std, mfg, last, n, recs = bt04(m)
    assert std[0] == 0x40 and mfg[0] == 0x08          # BT06 bit 6, ET03 bit 3
    assert last == bytes(5) and n == 2
    # UINT16: bits 0-11 the table ID (an ET keeps its 2048), bit 12 still pending
    assert recs == [(ped, 0x1006), (ped, 0x1803)]
    assert m.subsystems == ()                         # code 2 waits for a procedure


def test_capacity_bt00_18_full_answers_0x04_and_changes_nothing():
    m = bare()
    cap = m.store.field(0, 18, 1)
    assert cap == 4
    ped = pending.ped_procedure()
    for tid in (6, 5, 53, 2048 + 3):
        assert pw(m, 4096 + tid, 0, ped, b"\x01") == b"\x00", tid
    before = unchanged(m)
    assert pw(m, 4096 + 2048 + 97, 0, ped, b"\x01") == b"\x04"
    assert unchanged(m) == before
    assert pw(m, P06, 1, ped, b"\x02") == b"\x00"     # a table already pending: fine


def test_activated_records_make_room_for_new_pending_tables():
    m = bare()
    for i, tid in enumerate((6, 5, 53, 2048 + 3)):
        pw(m, 4096 + tid, 0, pending.ped_absolute(T0 + 60 * (i + 1)), b"\x01")
    m.advance(ms(m, T0 + 120))                         # two activated
    n, recs = bt04(m)[3], bt04(m)[4]
    assert n == 4 and [w & 0x1000 for p, w in recs] == [0, 0, 0x1000, 0x1000]
    ped = pending.ped_procedure()
    assert pw(m, 4096 + 2048 + 97, 0, ped, b"\x01", T0 + 120) == b"\x00"
    assert pw(m, 4096 + 2048 + 80, 0, ped, b"\x01", T0 + 120) == b"\x00"
    n, recs = bt04(m)[3], bt04(m)[4]
    assert n == 4 and all(w & 0x1000 for p, w in recs)


# -- refusals: every response code, and nothing changes ----------------------------

def test_refused_pending_requests_answer_their_code_and_change_nothing():
    m = bare()
    pw(m, P06, 0, pending.ped_absolute(T0 + 60), b"keep")
    before = unchanged(m)
    ped = pending.ped_absolute(T0 + 600)
    small = u.big().__class__("small", 20, 20, 0x1234)
    cases = [
        (pw(m, 4096 + 0, 0, ped, b"x"), b"\x05"),          # BT00: read-only, no pending copy
        (pw(m, 4096 + 7, 0, ped, b"x"), b"\x05"),          # BT07: not staged
        (pw(m, 4096 + 9, 0, ped, b"x"), b"\x05"),          # no BT09 in the catalogue
        (pw(m, P06, 0, ped, b"x", role=access.ROLE_RK), b"\x03"),
        (pw(m, P06, 0, ped, b"x" * 15, limits=small), b"\x04"),   # 21 > 20 incl. PED
        (pw(m, P06, 80, ped, b"x"), b"\x05"),              # offset past the table
        (pw(m, P06, 0, bytes(6), b"x"), b"\x05"),          # the empty PED
        (pw(m, P06, 0, bytes.fromhex("00 1A 02 1E 00 00"), b"x"), b"\x05"),   # 30 February
        (pw(m, P06, 0, bytes.fromhex("07 00 00 00 00 00"), b"x"), b"\x05"),   # code 7
        (pw(m, P06, 0, b"\x00\x1a", b""), b"\x01"),        # count 2: no whole PED
        (m.execute(bytes.fromhex("4F 1006 000000 0008 00"), MAK, u.big(), ms(m, T0)), b"\x01"),
        (pr(m, P06, 0, 5), b"\x01"),                        # a read too short for the PED
        (pr(m, P06, 0, 30, limits=small), b"\x04"),
        (pr(m, P06, 0, 10, role=access.ROLE_NONE), b"\x03"),
        (full_read(m, 4096 + 4), b"\x05"),                 # BT04 is status: no pending copy
        (full_read(m, 4096 + 2048 + 99), b"\x05"),        # ET99: read-only
        (full_read(m, 4096 + 2048 + 98), b"\x05"),        # no ET98 in the catalogue
    ]
    for got, want in cases:
        assert got == want, (got, want)
    assert unchanged(m) == before


def test_without_pending_tables_the_pending_copies_answer_0x02():
    m = u.bare(T0)
    assert m.pending is None
    assert pw(m, P06, 0, pending.ped_absolute(T0 + 60), b"x") == b"\x02"
    assert pr(m, P06, 0, 10) == b"\x02"
    assert full_read(m, P06) == b"\x02"
    assert fw(m, P06, pending.ped_absolute(T0 + 60), b"x") == b"\x02"
    for psn, number in enumerate((12, 13, 14, 15)):
        assert u.call(m, number, psn + 1, b"", T0) == 6     # unrecognized procedure


def test_bt00_18_zero_means_no_pending_tables():
    m = bare()
    m.store.write(0, 18, b"\x00")
    assert pw(m, P06, 0, pending.ped_absolute(T0 + 60), b"x") == b"\x02"


# -- procedures -----------------------------------------------------------------

def test_bp13_activates_by_ped_and_bp12_activates_all():
    m = bare()
    a, b = pending.ped_procedure(b"A"), pending.ped_procedure(b"B")
    pw(m, P06, 0, a, b"AA")
    pw(m, 4096 + 5, 0, b, b"\x12")
    assert u.call(m, 13, 1, b + b"\x00", T0) == 2         # 7 bytes: invalid parameter
    assert u.call(m, 13, 2, pending.ped_procedure(b"C"), T0) == 1    # no match
    assert u.call(m, 13, 3, a, T0 + 5) == 0
    assert m.store.read(BT06, 0, 2) == b"AA" and m.store.read(5, 0, 1) == b"\x00"
    assert u.call(m, 12, 4, b"\x01", T0 + 6) == 2         # BP12 takes no parameters
    assert u.call(m, 12, 5, b"", T0 + 9) == 0
    assert m.store.read(5, 0, 1) == b"\x12"
    assert evs(m, 28) == [(T0 + 5, 28, BT06), (T0 + 9, 28, 5)]
    assert bt04(m)[2] == clock.encode_stime(T0 + 9)
    assert u.call(m, 12, 6, b"", T0 + 10) == 0            # nothing pending: done


def test_bp14_clears_all_and_bp15_clears_by_ped():
    m = bare()
    a, b = pending.ped_absolute(T0 + 600), pending.ped_procedure(b"B")
    pw(m, P06, 0, a, b"AA")
    pw(m, 4096 + 5, 0, b, b"\x12")
    pw(m, 4096 + 53, 0, b, b"\x01")
    assert u.call(m, 15, 1, b"", T0) == 2
    assert u.call(m, 15, 2, pending.ped_procedure(b"X"), T0) == 1
    assert u.call(m, 15, 3, b, T0 + 1) == 0
    assert [e.tid for e in m.pending.entries] == [BT06]
    assert evs(m, 29) == [(T0 + 1, 29, 5), (T0 + 1, 29, 53)]
    assert u.call(m, 14, 4, b"\x00", T0 + 2) == 2
    assert u.call(m, 14, 5, b"", T0 + 2) == 0
    assert m.pending.entries == [] and m.subsystems == ()
    m.advance(ms(m, T0 + 700))
    assert m.store.read(BT06, 0, 2) == bytes(2) and evs(m, 28) == []
    assert bt04(m)[3] == 0


def test_self_read_and_demand_reset_before_activation_without_metering():
    m = bare()
    at = T0 + 60
    pw(m, P06, 0, pending.ped_absolute(at, pending.FLAG_SELF_READ | pending.FLAG_DEMAND_RESET), b"S")
    m.advance(ms(m, at))
    # tables only (no metrology subsystem): self-read (21), demand reset (20), then 28
    assert [e[1] for e in evs(m, 20, 21, 28)] == [21, 20, 28]
    assert all(e[0] == at for e in evs(m, 20, 21, 28))


# -- time: clock set, outages --------------------------------------------------------

def test_a_clock_jump_over_the_time_activates_at_the_new_time():
    m = bare()
    pw(m, P06, 0, pending.ped_absolute(T0 + 600), b"J")
    now = ms(m, T0 + 10)
    m.set_utc(T0 + 3600, now)
    m.advance(now)
    assert m.store.read(BT06, 0, 1) == b"J"
    assert evs(m, 28)[0][0] == T0 + 3600


def test_an_outage_over_the_time_activates_at_restoration():
    m = bare()
    pw(m, P06, 0, pending.ped_absolute(T0 + 600), b"P")
    m.set_power(False, ms(m, T0 + 100))
    assert m.advance(ms(m, T0 + 700)) is None
    assert m.store.read(BT06, 0, 1) == b"\x00"
    m.set_power(True, ms(m, T0 + 900))
    m.advance(ms(m, T0 + 900))
    assert evs(m, 28)[0][0] == T0 + 900


# -- TOU calendars ------------------------------------------------------------------

def _calendar(tier=1):
    return u.build(switches=[(0, 0, 0, 0), (tier, 8, 0, 0)], seasons=[[0] * u.DIMS.day_len], cal_id=99)


def test_a_pending_calendar_is_checked_when_staged_and_activates_into_tou():
    good = _calendar(1)
    ped = pending.ped_absolute(T0 + 3600)
    bad = bytearray(good)
    at = 3 * (u.DIMS.nonrec + u.DIMS.rec + 1)
    w = 1 | (25 << 11)
    bad[at:at + 3] = bytes((w & 0xFF, w >> 8, 0))         # a tier switch at 25:00
    m2 = u.meter(T0)
    pending.attach(m2)
    # in pieces of 69 data bytes, as over PLC (75 with the PED)
    refused = None
    for off in range(0, len(bad), 69):
        r = pw(m2, P54, off, ped, bad[off:off + 69])
        if r != b"\x00":
            refused = (off, r)
            break
    assert refused is not None and refused[1] == b"\x05" and refused[0] <= at < refused[0] + 69
    before = unchanged(m2)
    assert pw(m2, P54, refused[0], ped, bad[refused[0]:refused[0] + 69]) == b"\x05"
    assert unchanged(m2) == before
    m3 = u.meter(T0)
    pending.attach(m3)
    for off in range(0, len(good), 69):
        assert pw(m3, P54, off, ped, good[off:off + 69]) == b"\x00"
    assert m3.subsystems[0] is m3.pending                 # before TOU at the same second
    m3.advance(ms(m3, T0 + 3600))
    assert bytes(m3.store.get(BT54)) == bytes(good)
    assert m3.tou.cal.cal_id == 99
    assert evs(m3, 28) == [(T0 + 3600, 28, BT54)]


def test_a_calendar_that_no_longer_passes_its_checks_is_dropped_with_event_29():
    m = u.meter(T0)
    pending.attach(m)
    cal3 = _calendar(3)
    ped = pending.ped_procedure(b"C")
    for off in range(0, len(cal3), 69):
        assert pw(m, P54, off, ped, cal3[off:off + 69]) == b"\x00"
    live = bytes(m.store.get(BT54))
    m.store.write(21, 7, b"\x02")                        # now only two tiers (BT21.7)
    assert u.call(m, 13, 1, ped, T0 + 5) == 3            # BP13: conflict, nothing changes
    assert len(m.pending.entries) == 1
    m.pending.entries[0].due = T0 + 60                    # and automatically: dropped
    m.pending._sync(m)
    m.advance(ms(m, T0 + 60))
    assert bytes(m.store.get(BT54)) == live
    assert evs(m, 28) == [] and evs(m, 29) == [(T0 + 60, 29, BT54)]
    assert m.pending.entries == []


# -- persistence ----------------------------------------------------------------------

def test_nv_part_round_trips_and_a_restarted_meter_activates_on_time():
    m = bare()
    assert "pending" in m.nv_parts
    get, put = m.nv_parts["pending"]
    assert get() == b"\x01\x00"
    at = T0 + 7200
    pw(m, P06, 0, pending.ped_absolute(at), b"abc")
    pw(m, P06, 40, pending.ped_absolute(at), b"xy")
    pw(m, 4096 + 5, 0, pending.ped_procedure(b"P"), b"\x07")
    raw = get()
    saved = m.store.snapshot()
    # a new meter process: the NV tables and the part come back, the clock goes on
    r = u.bare(T0 + 3600)
    pending.attach(r)
    for tid in saved:
        r.store.write(tid, 0, saved[tid])
    r.nv_parts["pending"][1](raw)
    assert r.nv_parts["pending"][0]() == raw
    assert r.subsystems == (r.pending,)
    assert pr(r, P06, 0, 16, T0 + 3600) == pr(m, P06, 0, 16, T0 + 3600)
    assert r.advance(ms(r, T0 + 3601)) == ms(r, at)
    r.advance(ms(r, at))
    assert r.store.read(BT06, 0, 42) == b"abc" + bytes(37) + b"xy"
    assert evs(r, 28) == [(at, 28, BT06)]
    assert [e.tid for e in r.pending.entries] == [5]


def test_nv_put_refuses_bad_bytes_and_keeps_its_state():
    m = bare()
    pw(m, P06, 0, pending.ped_procedure(), b"q")
    raw = m.pending.nv_get()
    for bad in (b"\x02\x00", raw[:-1], raw + b"\x00", b"\x01\x01" + bytes(5)):
        try:
            m.pending.nv_put(bad)
            assert False, bad
        except ValueError:
            pass
        assert m.pending.nv_get() == raw
    m.pending.nv_put(b"")
    assert m.pending.entries == [] and m.subsystems == ()


# -- the stand-in Firmware attaches (meter/pending_lazy.py) ---------------------------

def test_firmware_stand_in_loads_the_feature_on_first_use():
    from osgp_meter import pending_lazy
    m = u.bare(T0)
    lazy = pending_lazy.attach(m)
    assert m.pending is lazy and m.pending.entries == () and m.subsystems == ()
    assert m.nv_parts["pending"][0]() == b"\x01\x00"
    m.nv_parts["pending"][1](b"\x01\x00")               # restoring "nothing": stays light
    assert m.pending is lazy
    assert u.call(m, 14, 1, b"", T0) == 0               # BP14 with nothing pending
    assert u.call(m, 13, 2, pending.ped_procedure(), T0) == 1
    m2 = u.bare(T0)
    pending_lazy.attach(m2)
    assert pw(m2, P06, 0, pending.ped_absolute(T0 + 60), b"L") == b"\x00"
    assert isinstance(m2.pending, pending.Pending)
    saved = m2.nv_parts["pending"][0]()
    assert saved == m2.pending.nv_get() != b"\x01\x00"
    m2.advance(ms(m2, T0 + 60))
    assert m2.store.read(BT06, 0, 1) == b"L"
    m3 = u.bare(T0)
    pending_lazy.attach(m3)
    assert pr(m3, P06, 0, 7) == b"\x00\x00\x07" + bytes(7)
    m4 = u.bare(T0)
    pending_lazy.attach(m4)
    m4.nv_parts["pending"][1](saved)                     # a saved state loads the feature
    assert isinstance(m4.pending, pending.Pending) and m4.pending.nv_get() == saved


def test_self_read_and_demand_reset_before_activation_with_metrology():
    import metrology_util as mu
    m = mu.make()
    pending.attach(m)
    t0 = mu.T0 // 1000
    at = t0 + 3600
    ped = pending.ped_absolute(at, pending.FLAG_SELF_READ | pending.FLAG_DEMAND_RESET)
    assert pw(m, P06, 0, ped, b"M", t0) == b"\x00"
    assert m.subsystems[0] is m.pending and m.metrology in m.subsystems
    m.advance(ms(m, at + 30))
    got = evs(m, 20, 21, 28)
    assert [e[1] for e in got] == [21, 20, 28] and all(e[0] == at for e in got)
    assert m.store.read(26, 1, 1) == b"\x01"           # one self-read recorded in BT26
    assert m.store.read(BT06, 0, 1) == b"M"
