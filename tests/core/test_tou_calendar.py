# The BT54 calendar (meter/calendar.py): ANSI_DATE/RDATE encodings, the
# occurrence rules, the checks a written calendar must pass, the built-in
# default. No meter needed. Dual-runtime: plain asserts, no fixtures.
from osgp_meter import calendar as cal
from osgp_meter import clock
from tou_util import DIMS, H, build


def test_ansi_date_and_rdate_codecs():
    v = cal.encode_ansi_date(2026, 12, 25)
    assert v == 26 | (12 << 7) | (25 << 11)
    assert cal.decode_ansi_date(v) == clock.days_from_civil(2026, 12, 25)
    assert cal.decode_ansi_date(cal.encode_ansi_date(2028, 2, 29)) == clock.days_from_civil(2028, 2, 29)
    for bad in (cal.encode_ansi_date(2026, 2, 29), cal.encode_ansi_date(2026, 13, 1),
                cal.encode_ansi_date(2026, 4, 0), 100 | (1 << 7) | (1 << 11)):
        assert cal.decode_ansi_date(bad) is None
    r = cal.encode_rdate(3, 25, 0, 2)
    assert r == 3 | (2 << 4) | (0 << 8) | (25 << 11)
    assert cal.decode_rdate(r) == (3, 2, 0, 25, 0, 0)
    assert cal.decode_rdate(cal.encode_rdate(14, weekday=5)) == (14, 0, 5, 0, 0, 0)
    assert cal.decode_rdate(cal.encode_rdate(15, period=14, delta=3)) == (15, 0, 7, 0, 14, 3)
    assert cal.encode_switch(1, 7, 30, 2) == bytes(((30 << 5 | 1) & 0xFF, (7 << 11 | 30 << 5) >> 8, 2))


def test_rdate_occurrences():
    day = clock.days_from_civil
    last_sunday_march = cal.encode_rdate(3, 25, 0)
    assert cal.rdate_next(last_sunday_march, day(2026, 1, 1)) == day(2026, 3, 29)
    assert cal.rdate_next(last_sunday_march, day(2026, 3, 30)) == day(2027, 3, 28)
    assert cal.rdate_prev(last_sunday_march, day(2026, 3, 28)) == day(2025, 3, 30)
    # 25 December 2027 is a Saturday: the shift rules
    assert cal.rdate_next(cal.encode_rdate(12, 25), day(2027, 1, 1)) == day(2027, 12, 25)
    assert cal.rdate_next(cal.encode_rdate(12, 25, offset=1), day(2027, 1, 1)) == day(2027, 12, 25)
    assert cal.rdate_next(cal.encode_rdate(12, 25, offset=2), day(2027, 1, 1)) == day(2027, 12, 27)
    assert cal.rdate_next(cal.encode_rdate(12, 25, offset=3), day(2027, 1, 1)) == day(2027, 12, 24)
    # 26 December 2027 is a Sunday
    assert cal.rdate_next(cal.encode_rdate(12, 26, offset=1), day(2027, 1, 1)) == day(2027, 12, 27)
    # monthly on the 31st: the last day of shorter months
    monthly = cal.encode_rdate(13, 31)
    assert cal.rdate_next(monthly, day(2026, 2, 1)) == day(2026, 2, 28)
    assert cal.rdate_next(monthly, day(2026, 3, 1)) == day(2026, 3, 31)
    assert cal.rdate_prev(monthly, day(2026, 3, 30)) == day(2026, 2, 28)
    # every Wednesday; every 14 days from 2000-01-01 + 3
    assert cal.rdate_next(cal.encode_rdate(14, weekday=3), day(2026, 1, 1)) == day(2026, 1, 7)
    assert cal.rdate_prev(cal.encode_rdate(14, weekday=3), day(2026, 1, 6)) == day(2025, 12, 31)
    period = cal.encode_rdate(15, period=14, delta=3)
    z = cal.rdate_next(period, day(2026, 1, 1))
    assert (z - day(2000, 1, 4)) % 14 == 0 and day(2026, 1, 1) <= z < day(2026, 1, 15)
    assert cal.rdate_prev(period, z) == z and cal.rdate_prev(period, z - 1) == z - 14
    # next and prev agree for every kind over a stretch of days
    for v in (last_sunday_march, monthly, cal.encode_rdate(2, 29), cal.encode_rdate(13, 1, 1, 3), period):
        for d in range(day(2027, 12, 1), day(2028, 4, 1), 5):
            n = cal.rdate_next(v, d)
            assert n >= d and cal.rdate_prev(v, n) == n


def test_calendar_checks():
    ok = build(nonrec=(((2026, 12, 31), 3 + 11),),
               rec=((cal.encode_rdate(13, 31, 3, 2), 0x40), (cal.encode_rdate(15, period=7), 0x20)),
               switches=((3, 23, 59, 15), (0, 0, 0, 0)), seasons=((15, 0, 0xFF, 1, 2),))
    assert cal.check(ok, DIMS, 4) is None
    assert cal.check(bytes(DIMS.size), DIMS, 4) is None
    assert cal.check(b"", DIMS, 4) is None
    bad = (
        build(switches=((4, 7, 0, 0),)),                 # 4 tiers: 0..3
        build(switches=((1, 24, 0, 0),)),
        build(switches=((1, 7, 60, 0),)),
        build(switches=((1, 7, 0, 16),)),                # day schedules 0..15
        build(rec=((cal.encode_rdate(4, 1), 3 + 12),)),  # seasons 0..11
        build(rec=((cal.encode_rdate(4, 1), 19 + 2),)),  # special schedules 0..1
        build(rec=((cal.encode_rdate(4, 1), 15),)),      # no such action
        build(nonrec=(((2026, 2, 29), 3),)),
        build(rec=((cal.encode_rdate(4, 31), 3),)),
        build(rec=((cal.encode_rdate(13, 0), 0x40),)),
        build(rec=((cal.encode_rdate(14, weekday=7), 0x40),)),
        build(rec=((cal.encode_rdate(15, period=0, delta=1), 0x40),)),
        build(seasons=((0, 0, 16, 0, 0),)),
    )
    for k in range(len(bad)):
        assert cal.check(bad[k], DIMS, 4) is not None, k
    assert cal.check(bad[0], DIMS, 8) is None
    # a partial write is judged by the entries it touches
    sw_at = 3 * (DIMS.nonrec + DIMS.rec)
    assert cal.check(bad[0], DIMS, 4, sw_at, sw_at + 3) is not None
    assert cal.check(bad[0], DIMS, 4, 0, sw_at) is None
    assert cal.check(bad[0], DIMS, 4, sw_at + 2, sw_at + 3) is not None
    # unused entries: zero or 0xFF-filled
    assert cal.check(b"\xff" * (DIMS.size - 64), DIMS, 4, 0, sw_at + 600) is None


def test_default_calendar_bytes():
    d = cal.default_calendar(DIMS)
    assert len(d) == 808 and d[-4:] == b"\x01\x00\x00\x00"
    c = cal.Calendar(d, DIMS, 4)
    assert c.switches == {0: ((7 * H) << 3 | 1, (23 * H) << 3), 1: (0,)}
    assert c.season_at(clock.days_from_civil(2026, 7, 1)) == 1
    assert c.season_at(clock.days_from_civil(2026, 12, 1)) == 0
    assert c.special_on(clock.days_from_civil(2026, 12, 25)) == 0
    assert c.special_on(clock.days_from_civil(2026, 12, 24)) == cal.NO_SPECIAL
    # separate weekdays: seven day entries, Sunday first
    sep = cal.Dims(b"\x00\x13\x2c\x19\x17\xc8\x00")
    c = cal.Calendar(cal.default_calendar(sep), sep, 4)
    assert c.day_schedule(0, cal.NO_SPECIAL, 0) == 1 and c.day_schedule(0, cal.NO_SPECIAL, 3) == 0
    assert c.day_schedule(1, 0, 3) == 1
