# TOU and the clock procedures: EP16, BP10 (events 3/4), EP05 manual
# tiers, a calendar written by the head end, power cuts, cost of a year.
# Dual-runtime: plain asserts, no fixtures.
from osgp_meter import tou
from tou_util import H, Metrology, bare, big, build, call, log, meter, read, run_until, utc
from osgp_meter import access as A


def test_ep16_moves_the_clock_by_a_delta_and_logs_old_then_new():
    t = utc(2026, 1, 5, 12)
    m = meter(t)
    assert call(m, tou.EP16, 1, (3600).to_bytes(4, "little"), t) == 0
    assert m.t == t + H
    assert log(m) == [(t, 0x1234, 3, 0), (t + H, 0x1234, 4, 0)]
    t2 = t + 10                                          # 10 s of driver time later
    assert call(m, tou.EP16, 2, (-7200 & 0xFFFFFFFF).to_bytes(4, "little"), t2 + H) == 0
    assert m.t == t2 - H
    assert log(m)[2:] == [(t2 + H, 0x1234, 3, 0), (t2 - H, 0x1234, 4, 0)]
    # outside 2000-2099 or short: result 2, nothing moves, nothing logged
    offset = m.clock_offset
    far = (100 * 366 * 86400).to_bytes(4, "little")
    assert call(m, tou.EP16, 3, far, t2 - H) == 2
    assert call(m, tou.EP16, 4, b"\x01\x00", t2 - H) == 2
    assert m.clock_offset == offset and len(log(m)) == 4


def test_ep16_refuses_to_leave_the_century():
    m = meter(utc(2099, 12, 31, 23))
    assert call(m, tou.EP16, 1, (3599).to_bytes(4, "little"), m.t) == 0
    assert call(m, tou.EP16, 2, (1).to_bytes(4, "little"), m.t) == 2
    m = meter(utc(2000, 1, 1, 0, 0, 30))
    assert call(m, tou.EP16, 1, (-31 & 0xFFFFFFFF).to_bytes(4, "little"), m.t) == 2
    assert call(m, tou.EP16, 2, (-30 & 0xFFFFFFFF).to_bytes(4, "little"), m.t) == 0
    assert m.t == utc(2000, 1, 1)


def test_bp10_logs_the_time_change_and_jumps_over_switches_quietly():
    t = utc(2026, 1, 5, 5)                               # Monday 06:00 CET, tier 0
    m = meter(t)
    # to Thursday 13:00 CET: six switches passed, one tier event
    assert call(m, 10, 1, bytes((3, 26, 1, 8, 12, 0, 0)), t) == 0
    new = utc(2026, 1, 8, 12)
    assert m.tou.tier(m, new) == 1
    assert read(m, 55, new)[7] & 7 == 1
    assert log(m) == [(t, 0x1234, 3, 0), (new, 0x1234, 4, 0), (new, 0xFFFF, 27, 1)]
    # back to Sunday: tier 0 again, and the next wake-up is Monday 06:00 UTC
    call(m, 10, 2, bytes((3, 26, 1, 4, 12, 0, 0)), new)
    back = utc(2026, 1, 4, 12)
    assert log(m)[3:] == [(new, 0x1234, 3, 0), (back, 0x1234, 4, 0), (back, 0xFFFF, 27, 0)]
    assert m.advance(m.physical_ms(back)) == m.physical_ms(utc(2026, 1, 5, 6))


def test_a_jump_over_a_season_date_changes_the_season_once():
    m = meter(utc(2026, 3, 1))
    fake = m.metrology = Metrology()
    t = utc(2026, 3, 1)
    call(m, tou.EP16, 1, (60 * 86400).to_bytes(4, "little"), t)
    new = t + 60 * 86400
    run_until(m, new)
    evs = [(e[0], e[2], e[3]) for e in log(m)]
    assert evs == [(t, 3, 0), (new, 4, 0), (new, 22, 0), (new, 24, 1)], evs
    assert fake.calls == [("season", new, 1)]


def test_ep05_manual_tier():
    t = utc(2026, 1, 5, 8)                               # Monday 09:00 CET, tier 1
    m = meter(t)
    # hold tier 3: the 23:00 switch does not move it
    assert call(m, tou.EP05, 1, b"\x03\x02", t) == 0
    assert read(m, 55, t)[7] == 0x83 and log(m) == [(t, 0x1234, 27, 3)]
    run_until(m, utc(2026, 1, 6, 12))
    assert m.tou.tier(m, m.t) == 3 and len(log(m)) == 1
    # back to the calendar
    t = m.t
    assert call(m, tou.EP05, 2, b"\x00\x00", t) == 0
    assert m.tou.tier(m, t) == 1 and read(m, 55, t)[7] == 0x01
    # hold-off for 30 minutes
    assert call(m, tou.EP05, 3, b"\x02\x01\x1e\x00", t) == 0
    assert read(m, 55, t)[7] == 0x42
    assert m.advance(m.physical_ms(t)) == m.physical_ms(t + 1800)
    run_until(m, t + 1800)
    assert m.tou.tier(m, m.t) == 1 and log(m)[-1] == (t + 1800, 0xFFFF, 27, 1)
    # override until the calendar's next switch (22:00 UTC)
    assert call(m, tou.EP05, 4, b"\x00\x03", m.t) == 0
    assert m.tou.tier(m, m.t) == 0 and read(m, 55, m.t)[7] == 0xC0
    run_until(m, utc(2026, 1, 6, 22))
    assert read(m, 55, m.t)[7] == 0x00
    run_until(m, utc(2026, 1, 7, 6))
    assert m.tou.tier(m, m.t) == 1
    # bad parameters change nothing
    before = m.store.read(55, 0, 9)
    n = len(log(m))
    psn = 10
    for bad in (b"\x04\x02", b"\x01\x04", b"\x01\x01\x00\x00", b"\x01"):
        psn += 1
        assert call(m, tou.EP05, psn, bad, m.t) == 2
    assert m.store.read(55, 0, 9) == before and len(log(m)) == n
    assert m.tou.drive == 0 and m.tou.tier(m, m.t) == 1


def test_meter_without_tou_still_takes_ep16_and_logs_nothing():
    t = utc(2026, 1, 5)
    m = bare(t)
    assert call(m, tou.EP16, 1, (60).to_bytes(4, "little"), t) == 0
    assert m.t == t + 60 and log(m) == []
    assert call(m, tou.EP05, 2, b"\x01\x02", t + 60) == 3
    assert m.tou is None and m.live(52, m.physical_ms(t))[6] == 0x11


def test_a_calendar_written_by_the_head_end_takes_effect():
    t = utc(2026, 1, 5, 8)                               # tier 1 under the default
    m = meter(t)
    data = build(switches=((2, 0, 0, 0), (3, 9, 30, 0)), seasons=((0, 0, 0, 0, 0),), cal_id=42)
    req = bytes((0x40, 0, 54, len(data) >> 8, len(data) & 0xFF)) + data
    assert m.execute(req, A.ROLE_MAK, big(), m.physical_ms(t)) == b"\x00"
    t1 = t + 60
    assert read(m, 55, t1)[7] & 7 == 2                   # 09:01 CET: schedule 0 says 2
    assert log(m) == [(t, 0xFFFF, 27, 2)]
    assert m.tou.cal.cal_id == 42
    assert m.advance(m.physical_ms(t1)) == m.physical_ms(utc(2026, 1, 5, 8, 30))
    # two meters with the same calendar share the decoded form
    m2 = meter(t, calendar=data)
    assert m2.tou.cal is m.tou.cal
    # what the table services ask before storing a write of BT54 / BT53
    assert tou.validate_calendar(m, data) is None
    assert tou.validate_calendar(m, tou.DEFAULT_CALENDAR) is None
    bad = build(switches=((4, 7, 0, 0),))                 # BT21.7 = 4 tiers
    assert tou.validate_calendar(m, bad) is not None
    assert tou.validate_calendar(m, bad, 0, 3) is None      # only the dates written
    assert m.tou.check_write(m, 54, bad) is not None and m.tou.check_write(m, 52, bad) is None
    assert m.tou.check_write(m, 53, b"\x02\x00\x00\x3c\x00\xfd") is not None   # -768 min
    assert tou.validate_time_offset(m, b"\x02\x00\x00\x3c\x3c\x00") is None
    assert tou.validate_time_offset(m, b"\x18\x00\x00\x3c\x3c\x00") is not None
    assert tou.validate_time_offset(m, b"\x02\x00\x00\x3c" + (-721 & 0xFFFF).to_bytes(2, "little")) is not None


def test_power_cut_stops_the_calendar_and_power_up_rebuilds_it():
    t = utc(2026, 1, 5, 5)
    m = meter(t)
    m.tou.set_tier(m, t, 2, tou.DRIVE_HOLD)
    m.set_power(False, m.physical_ms(t + 60))
    assert m.advance(m.physical_ms(t + 60)) is None
    m.advance(m.physical_ms(utc(2026, 1, 7, 12)))
    assert [e[2] for e in log(m)] == [27]                # only the manual tier
    m.set_power(True, m.physical_ms(utc(2026, 1, 7, 12)))
    run_until(m, utc(2026, 1, 7, 12))
    assert m.tou.tier(m, m.t) == 1 and read(m, 55, m.t)[7] == 0x01     # manual hold lost
    assert log(m)[-1] == (utc(2026, 1, 7, 12), 0xFFFF, 27, 1)


def test_a_year_of_switches_is_cheap():
    t0 = utc(2026, 1, 1)
    m = meter(t0)
    try:
        import time
        clk = time.perf_counter
    except (ImportError, AttributeError):
        clk = None
    start = clk() if clk else 0
    dues = run_until(m, utc(2027, 1, 1))
    if clk:
        assert clk() - start < 0.5
    # 2 x 261 weekday switches, 104 weekend midnights, 2 DST, 2 seasons,
    # 3 holidays + 2 ends of holiday
    assert 600 < dues < 650, dues


def test_override_ends_at_the_next_switch_of_the_day_it_is_given():
    # weekdays: 07:00 tier 1, 23:00 tier 0; weekends: 10:00 tier 2 only.
    # Nothing runs at Saturday's midnight: EP05 at 08:00 must still see
    # Saturday's schedule.
    data = build(switches=((1, 7, 0, 0), (0, 23, 0, 0), (2, 10, 0, 1)), seasons=((1, 1, 0, 1, 1),))
    m = meter(utc(2026, 1, 9, 21), calendar=data)          # Friday 22:00 CET
    t = utc(2026, 1, 10, 7)                                 # Saturday 08:00 CET
    assert call(m, tou.EP05, 1, b"\x03\x03", t) == 0
    assert m.tou.tier(m, t) == 3
    assert m.advance(m.physical_ms(t)) == m.physical_ms(utc(2026, 1, 10, 9))
    run_until(m, utc(2026, 1, 10, 9))
    assert m.tou.tier(m, m.t) == 2 and read(m, 55, m.t)[7] == 0x02
