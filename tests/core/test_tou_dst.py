# TOU: DST (calendar dates, BT53 switch time, the EU rule) and time zones.
# Dual-runtime: plain asserts, no fixtures.
from osgp_meter import access as A
from osgp_meter import calendar as cal
from osgp_meter import tou
from tou_util import H, big, build, log, meter, read, run_until, utc


def test_dst_by_the_eu_rule_when_the_calendar_has_no_dst_dates():
    m = meter(utc(2026, 3, 29, 0, 30))                  # 01:30 CET, Sunday
    assert read(m, 55, m.t)[:7] == bytes((26, 3, 29, 1, 30, 0, 0x60))
    assert read(m, 52, m.t)[6] == 0x10
    assert m.advance(m.physical_ms(m.t)) == m.physical_ms(utc(2026, 3, 29, 1))
    run_until(m, utc(2026, 3, 29, 1))
    assert read(m, 55, m.t)[:7] == bytes((26, 3, 29, 3, 0, 0, 0x68))   # 02:00 -> 03:00
    assert read(m, 52, m.t)[:7] == bytes((26, 3, 29, 1, 0, 0, 0x18))
    assert m.tou.dst(m, m.t) and m.tou.local(m, m.t) == m.t + 2 * H
    assert [(e[0], e[2]) for e in log(m)] == [(utc(2026, 3, 29, 1), 22)]
    # the tier follows local time: 07:00 CEST is 05:00 UTC on Monday
    run_until(m, utc(2026, 3, 30, 5))
    assert log(m)[-1][0] == utc(2026, 3, 30, 5) and log(m)[-1][2:] == (27, 1)
    run_until(m, utc(2026, 10, 25, 1))
    assert log(m)[-1][:3] == (utc(2026, 10, 25, 1), 0xFFFF, 23)
    assert read(m, 55, m.t)[:7] == bytes((26, 10, 25, 2, 0, 0, 0x60))  # 03:00 -> 02:00
    # without DST auto (BT50.1 b0) there is no DST at all
    m = meter(utc(2026, 7, 1), bt50=b"\x00\x10")
    assert not m.tou.dst(m, m.t) and m.tou.local(m, m.t) == m.t + H


def test_dst_dates_in_the_calendar_use_the_bt53_switch_time():
    # DST on last Sunday of March, off last Sunday of October; BT53 02:00,
    # 60 minutes; ET04.63 = +60: off at 03:00 daylight time (the EU instants)
    data = build(rec=((cal.encode_rdate(3, 25, 0), 1), (cal.encode_rdate(10, 25, 0), 2)),
                 switches=((0, 0, 0, 0),), seasons=((0, 0, 0, 0, 0),))
    m = meter(utc(2026, 3, 1), bt50=b"\x00\x10", calendar=data)
    m.store.write(2048 + 4, 63, b"\x3c\x00")
    tou.attach(m)
    run_until(m, utc(2026, 12, 1))
    assert [(e[0], e[2]) for e in log(m) if e[2] in (22, 23)] == \
        [(utc(2026, 3, 29, 1), 22), (utc(2026, 10, 25, 1), 23)]
    # ET04.63 = 0: off at 02:00 daylight time, 00:00 UTC; started in summer
    m = meter(utc(2026, 8, 1), bt50=b"\x00\x10", calendar=data)
    assert m.tou.dst(m, m.t)
    run_until(m, utc(2026, 12, 1))
    assert [(e[0], e[2]) for e in log(m)] == [(utc(2026, 10, 25, 0), 23)]


def test_time_zone_offsets():
    for tz, hh, mi, day in ((-300, 19, 0, 4), (330, 5, 30, 5), (0, 0, 0, 5), (840, 14, 0, 5)):
        m = meter(utc(2026, 1, 2), bt50=b"\x00\x10",
                  bt53=b"\x02\x00\x00\x3c" + (tz & 0xFFFF).to_bytes(2, "little"))
        st = read(m, 55, m.t)
        assert st[3:5] == bytes((hh, mi)) and st[6] == 0x60 | day, (tz, st.hex())
        assert m.tou.local(m, m.t) == m.t + tz * 60
    # a new zone written to BT53 takes effect at the next request
    m = meter(utc(2026, 1, 5, 5, 30))                    # 06:30 CET: tier 0
    t = utc(2026, 1, 5, 5, 40)
    req = bytes.fromhex("4f 00 35 00 00 04 00 02") + (120).to_bytes(2, "little")
    assert m.execute(req, A.ROLE_MAK, big(), m.physical_ms(t)) == b"\x00"
    assert read(m, 55, t)[3:5] == bytes((7, 40)) and read(m, 55, t)[7] & 7 == 1
    assert log(m)[-1] == (t, 0xFFFF, 27, 1)
