# TOU tiers, day schedules, special days and seasons (meter/tou.py on
# meter/calendar.py). Dual-runtime: plain asserts, no fixtures. The other
# TOU tests: test_tou_dst (DST, time zones), test_tou_clock (EP16, BP10,
# EP05, written calendars, power), test_tou_calendar (encodings, checks).
from osgp_meter import calendar as cal
from osgp_meter import tou
from tou_util import DIMS, Metrology, build, log, meter, read, run_until, utc
from osgp_meter import events
from osgp_meter import clock


def test_tier_switching_over_a_week_with_the_default_calendar():
    t0 = utc(2026, 1, 5)                    # Monday, 01:00 CET
    m = meter(t0)
    assert m.tou.cal.raw == tou.DEFAULT_CALENDAR == cal.default_calendar(DIMS)
    assert m.tou.tier(m, t0) == 0
    dues = run_until(m, utc(2026, 1, 12), True)
    expect = []
    for d in range(5, 10):                  # Mon..Fri: 07:00 and 23:00 CET
        expect += [utc(2026, 1, d, 6), utc(2026, 1, d, 22)]
    expect += [utc(2026, 1, 9, 23), utc(2026, 1, 10, 23)]   # weekend 00:00 switches
    assert dues == expect, [clock.to_civil(x) for x in dues]
    tiers = [e for e in log(m) if e[2] == 27]
    assert [(e[0], e[3]) for e in tiers] == [(x, 1 if k % 2 == 0 else 0) for k, x in enumerate(expect[:10])]
    assert all(e[1] == 0xFFFF for e in tiers)
    # the cached answers and a fresh evaluation agree
    for t in (utc(2026, 1, 12, 5, 59), utc(2026, 1, 12, 6), utc(2026, 1, 12, 21, 59, 59),
              utc(2026, 1, 12, 22), utc(2026, 1, 17, 12)):
        run_until(m, t)
        want = 1 if t in (utc(2026, 1, 12, 6), utc(2026, 1, 12, 21, 59, 59)) else 0
        assert m.tou.tier(m, t) == want
        assert read(m, 55, t)[7] & 7 == want


def test_due_lands_exactly_on_the_switch_second():
    t0 = utc(2026, 1, 5, 5, 59, 58)
    m = meter(t0)
    nxt = m.advance(m.physical_ms(t0))
    assert nxt == m.physical_ms(utc(2026, 1, 5, 6))
    m.advance(nxt - 1)
    assert m.tou.tier(m, m.t) == 0 and read(m, 55, m.t)[7] == 0x00
    n = len(events.entries(m))
    m.advance(nxt)
    assert log(m, n) == [(utc(2026, 1, 5, 6), 0xFFFF, 27, 1)]
    assert read(m, 55, utc(2026, 1, 5, 6)).hex() == "1a0105070000" + "61" + "010f"
    assert m.store.read(55, 7, 2) == b"\x01\x0f"        # stored word: cheap reads
    assert m.advance(nxt) == m.physical_ms(utc(2026, 1, 5, 22))


def test_first_switch_of_the_day_carries_the_previous_day_over():
    # day schedule 0: 12:00 tier 2, 18:00 tier 3; before 12:00 the tier is
    # yesterday's last one (3), also right after the meter starts
    data = build(switches=((2, 12, 0, 0), (3, 18, 0, 0)), seasons=((0, 0, 0, 0, 0),))
    m = meter(utc(2026, 1, 5, 9), calendar=data)
    assert m.tou.tier(m, m.t) == 3
    run_until(m, utc(2026, 1, 6, 10))
    assert m.tou.tier(m, m.t) == 3
    assert [(e[2], e[3]) for e in log(m)] == [(27, 2), (27, 3)]


def test_weekend_and_special_days():
    # season 0: Saturday/Sunday -> schedule 1, weekdays -> 0, special 0 -> 2
    data = build(nonrec=(((2026, 1, 7), 19),),
                 switches=((1, 7, 0, 0), (0, 23, 0, 0), (0, 0, 0, 1), (3, 10, 0, 2)),
                 seasons=((1, 1, 0, 2, 1),))
    m = meter(utc(2026, 1, 6, 12), calendar=data)       # Tuesday 13:00 CET
    assert m.tou.tier(m, m.t) == 1
    assert read(m, 55, m.t)[8] == 0x0F                  # no special schedule
    run_until(m, utc(2026, 1, 7, 12))
    st = read(m, 55, m.t)
    assert st[7] == 3 and st[8] == 0x00                 # Wednesday: special 0, tier 3
    run_until(m, utc(2026, 1, 8, 12))
    evs = [(e[0], e[2], e[3]) for e in log(m)]
    assert evs == [(utc(2026, 1, 6, 22), 27, 0),
                   (utc(2026, 1, 6, 23), 26, 0),        # Wednesday is special 0
                   (utc(2026, 1, 7, 9), 27, 3),         # its 10:00 switch, no 07:00 one
                   (utc(2026, 1, 8, 6), 27, 1)], evs
    st = read(m, 55, m.t)
    assert st[8] == 0x0F and st[7] == 1                 # Thursday: no special, tier 1
    # Saturday and Sunday: schedule 1 from midnight
    run_until(m, utc(2026, 1, 10, 12))
    assert m.tou.tier(m, m.t) == 0
    assert read(m, 55, m.t)[6] & 7 == 6                 # local Saturday


def test_season_change_on_the_local_date():
    # UTC+2, no DST: 1 June 00:00 local is 31 May 22:00 UTC
    data = build(rec=((cal.encode_rdate(6, 1), 3 + 1), (cal.encode_rdate(9, 1), 3),
                      (cal.encode_rdate(13, 1), 0x40), (cal.encode_rdate(6, 2), 0x20)),
                 switches=((1, 7, 0, 0), (0, 23, 0, 0), (2, 8, 0, 3)),
                 seasons=((0, 0, 0, 0, 0), (3, 3, 3, 3, 3)))
    m = meter(utc(2026, 5, 31, 21), bt50=b"\x00\x10", bt53=b"\x02\x00\x00\x3c\x78\x00",
              calendar=data)
    fake = m.metrology = Metrology()
    assert m.tou.season(m, m.t) == 0
    assert read(m, 55, m.t)[:6] == bytes((26, 5, 31, 23, 0, 0))
    run_until(m, utc(2026, 6, 2, 12))
    midnight = utc(2026, 5, 31, 22)
    evs = [(e[0], e[2], e[3]) for e in log(m)]
    assert evs == [(midnight, 24, 1), (utc(2026, 6, 1, 6), 27, 2)], evs
    assert fake.calls == [("season", midnight, 1), ("self_read", midnight),
                          ("demand_reset", utc(2026, 6, 1, 22))]
    assert m.tou.season(m, m.t) == 1 and read(m, 55, m.t)[8] == 0x1F
    # BP09's season change (metrology asks TOU): season 0 until 1 September
    t = m.t
    fake.calls = []
    assert m.tou.seasons(m) == 12 and m.tou.set_season(m, t, 12) == 2
    m.user = 0x1234                      # as while BP09 from that user runs
    assert m.tou.set_season(m, t, 0) == 0
    assert fake.calls == [("season", t, 0)] and log(m)[-2:] == [(t, 0x1234, 24, 0), (t, 0x1234, 27, 1)]
    assert m.tou.season(m, t) == 0 and m.tou.tier(m, t) == 1     # season 0's weekday schedule
    # a fresh meter started inside the summer knows the season at once
    m2 = meter(utc(2026, 8, 1), bt50=b"\x00\x10", bt53=b"\x02\x00\x00\x3c\x78\x00", calendar=data)
    assert m2.tou.season(m2, m2.t) == 1 and m2.tou.tier(m2, m2.t) == 2
