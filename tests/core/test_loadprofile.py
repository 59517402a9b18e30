# The load-profile recorder, recording: every interval of a day, the seed's
# use case over the PLC port, power-fail, clock-set and DST flags, snapshot
# sources and end readings, a reboot. Helpers and the fake metrology: lp_util.
from osgp_meter import clock
from osgp_meter import loadprofile as LP
from osgp_meter.prng import XorShift32
from lp_util import (DAY, ET21, H, MID, PLC_LIMITS, Q, T0, T0S, blk, bt63, build, end_of,
                     full, head, ms, ramp, read, s32, slot, u16)


def test_a_day_in_random_steps_records_every_interval():
    m, fake = build()
    rng = XorShift32(4711)
    now = T0
    stop = ms(MID + 4 * H + 100)
    while now < stop:
        now += 1 + rng.below(2_000_000)
        m.advance(now if now < stop else stop)
    raw = blk(m, 0)
    assert end_of(raw) == MID                      # closed: the following midnight
    for i in range(96):
        if i < 40:
            assert slot(raw, i) == (0, 0, [0, 0], [0, 0])
        else:                                      # 10:00-10:15 started mid-interval
            assert slot(raw, i) == full(DAY + i * Q, None, 2 if i == 40 else 0), i
    assert bt63(m) == (0x24, 2, 1, 2, 1, 16)
    raw = blk(m, 1)
    assert end_of(raw) == MID + 16 * Q             # in progress: its newest interval's end
    for i in range(96):
        assert slot(raw, i) == (full(MID + i * Q) if i < 16 else (0, 0, [0, 0], [0, 0]))
    e = m.store.read(ET21, 0, 131)
    assert (s32(e, 0), s32(e, 4), s32(e, 8), u16(e, 12)) == (977, 977 + 17 + 160, 977, 17)
    assert (u16(e, 14), u16(e, 16), u16(e, 18), u16(e, 20)) == (2, 16, 1, 15)
    assert bytes(e[22:32]) == bytes((5, 12, 17, 10, 2, 0, 2, 15, 0, 1))
    assert u16(e, 91) == 16 and clock.decode_ltime(e, 94) == MID + 17 * Q


def test_seed_use_case_reading_load_profile_over_plc():
    m, fake = build()
    now = ms(MID + 86400 + 7 * H + 100)            # two days later, 07:01:40
    assert PLC_LIMITS.max_read == 84
    # 1. BT61/BT62: the layout and the channels
    bt61 = read(m, 61, 0, 31, now)
    bt62 = read(m, 62, 0, 10, now)
    flags = u16(bt61, 4)
    nblk, nint, nch = u16(bt61, 7), u16(bt61, 9), bt61[11]
    assert (nblk, nint, nch, bt61[12]) == (4, 96, 2, 15)
    assert (bt62[1], bt62[4], bt62[6]) == (0, 1, 0x20)          # sources, INT32
    ext = nch // 2 + 1 if flags & 0x400 else 0
    hdr = 5 + (4 * nch if flags & 0x10 else 0) + ((nint + 7) // 8 if flags & 0x800 else 0)
    isz = ext + 4 * nch
    bsize = hdr + nint * isz
    # 2. BT63: where the newest data sits; ET21: the same sizes, precomputed
    st = read(m, 63, 0, 13, now)
    last = u16(st, 3)
    assert (u16(st, 1), last, u16(st, 11)) == (3, 2, 28)
    et21 = read(m, ET21, 0, 30, now)
    assert (s32(et21, 8), u16(et21, 12), et21[25], u16(et21, 20)) == (bsize, hdr, isz, 27)
    # 3. the newest full block: ((BT63.3 - 1) mod BT61.7) * ET21.8
    raw = read(m, 64, ((last - 1) % nblk) * s32(et21, 8), s32(et21, 8), now)
    assert end_of(raw) == MID + 86400
    for i in range(nint):
        assert slot(raw, i) == full(MID + i * Q)
    # ... and the block before it ends a day earlier
    assert end_of(read(m, 64, ((last - 2) % nblk) * bsize, 5, now)) == MID
    # 4. the newest interval: BT63.3 * ET21.8 + ET21.12 + ET21.20 * ET21.25
    off = last * s32(et21, 8) + u16(et21, 12) + u16(et21, 20) * et21[25]
    raw = read(m, 64, off, et21[25], now)
    a = MID + 86400 + 27 * Q                       # 06:45-07:00
    assert raw == b"\x00\x00" + LP._u32(ramp(a, a + Q)) + LP._u32(ramp(a, a + Q, 1))
    assert end_of(read(m, 64, last * bsize, 5, now)) == a + Q


def test_power_fail_flags_and_skipped_intervals():
    out = ((DAY + 12 * H + 300, DAY + 12 * H + 600), (DAY + 13 * H + 1200, DAY + 15 * H + 2400))
    for option in (0, 8):
        m, fake = build()
        m.store.write(2048 + 4, 71, bytes((option,)))     # ET04.71 b3 "LP skipped"
        for a, b in out:
            m.set_power(False, ms(a))
            m.advance(ms(b))
            off = bt63(m)[5]
            m.set_power(True, ms(b))
        assert off == 53                                   # nothing recorded while off
        m.advance(ms(DAY + 16 * H))
        raw = blk(m, 0)
        assert end_of(raw) == DAY + 64 * Q
        sk = 4 if option else 0
        expect = ((48, 1, 2, 2, 600), (49, 1, 0, 0, 900), (53, 1, 2, 2, 300), (54, 0, 0, sk, 0),
                  (61, 0, 0, sk, 0), (62, 1, 2, 2, 300), (63, 1, 0, 0, 900), (0, 0, 0, sk, 0))
        for i, bit, common, st, v in expect:
            assert head(raw, i) == (bit, common, [st, st], v), (option, i)
        a = DAY + 12 * H
        assert slot(raw, 48)[3][1] == ramp(a, a + Q, 1, out)
        assert slot(raw, 62)[3][1] == ramp(DAY + 62 * Q, DAY + 63 * Q, 1, out)


def test_outage_over_midnight_closes_the_block_without_empty_days():
    m, fake = build()
    m.set_power(False, ms(MID - 600))              # 23:50 .. +2 days 01:05
    m.set_power(True, ms(MID + 2 * 86400 + 3900))
    m.advance(ms(MID + 2 * 86400 + 2 * H))
    assert bt63(m)[1:] == (2, 1, 2, 1, 8)
    raw = blk(m, 0)
    assert end_of(raw) == MID and head(raw, 95) == (1, 2, [2, 2], 300)
    raw = blk(m, 1)
    assert end_of(raw) == MID + 2 * 86400 + 8 * Q
    assert head(raw, 3) == (0, 0, [0, 0], 0) and head(raw, 4) == (1, 2, [2, 2], 600)


def test_clock_set_forward_and_backward_flags():
    m, fake = build()
    steps = (
        # (meter time, set the clock to, slots to check after it); only
        # channel 0 is checked: it counts physical seconds, whatever the clock
        (12 * H + 300, 12 * H + 600, ()),                               # 12:05 -> 12:10
        (12 * H + Q, None, ((48, 1, 4, 2, 600),)),                      # shorter interval
        (13 * H + 300, 14 * H + 1200, ((52, 1, 4, 2, 300), (53, 0, 0, 0, 0))),   # 13:05 -> 14:20
        (14 * H + 1800, None, ((56, 0, 0, 0, 0), (57, 1, 4, 2, 600))),
        (15 * H + 600, 15 * H + 120, ()),                               # 15:10 -> 15:02
        (15 * H + Q, None, ((60, 1, 8, 3, 1380),)),                     # 23 minutes: long
        (16 * H + 600, 15 * H + 3000, ((63, 1, 0, 0, 900), (64, 1, 8, 2, 600))),  # 16:10 -> 15:50
    )
    for t, to, checks in steps:
        now = m.physical_ms(DAY + t)
        if to is not None:
            to += DAY
        if to is None:
            m.advance(now)
        else:
            m.set_utc(to, now)
        raw = blk(m, 0)
        for i, bit, common, st, v in checks:
            assert head(raw, i) == (bit, common, [st, st], v), (dt, i)
    # going back over intervals closed block 0 (nominal end) and opened block 1
    assert end_of(raw) == MID and bt63(m)[1:] == (2, 1, 2, 1, 0)
    m.advance(m.physical_ms(DAY + 16 * H + Q))
    raw = blk(m, 1)
    assert end_of(raw) == DAY + 65 * Q and bt63(m)[5] == 65
    assert head(raw, 62)[0] == 0 and head(raw, 63) == (1, 8, [2, 2], 600)
    assert head(raw, 64) == (1, 0, [0, 0], 900)


def test_dst_flag_comes_from_tou():
    m, fake = build()
    fake.dst_from = DAY + 13 * H
    m.tou = fake
    m.advance(ms(DAY + 14 * H))
    raw = blk(m, 0)
    assert [slot(raw, i)[1] for i in (51, 52, 55)] == [0, 1, 1]


def test_snapshot_sources_and_end_readings():
    bt61 = bytearray(31)                           # end readings (b4) + both statuses
    bt61[4:7] = b"\x10\x0c\x20"
    m, fake = build({"sets": {0: (2, 4, 2, 60, bytes((0, 64)))}}, {61: bytes(bt61)})
    assert m.store.size(64) == 2 * 54
    m.advance(ms(DAY + 13 * H))
    raw = m.store.read(64, 0, 54)
    assert end_of(raw) == DAY + 12 * H             # 4-hour blocks: 08:00-12:00
    assert (s32(raw, 5), s32(raw, 9)) == (12 * H - (T0S - DAY), 200)   # end readings
    assert (s32(raw, 46), s32(raw, 50)) == (3600, 200)                 # 11:00-12:00
    assert (s32(raw, 36), s32(raw, 40), raw[34], raw[35]) == (11 * H - (T0S - DAY), 600, 2, 0x20)
    assert m.store.read(62, 0, 7) == b"\x01\x00\x00\x01\x40\x40\x20"


def test_a_reboot_rebuilds_from_the_tables():
    m, fake = build()
    m.advance(ms(DAY + 12 * H + 420))              # 12:07
    before = bt63(m)
    LP.attach(m)                                   # RAM lost, tables kept
    assert bt63(m) == before
    m.advance(ms(DAY + 13 * H))
    raw = blk(m, 0)
    assert head(raw, 47) == (1, 0, [0, 0], 900) and head(raw, 49) == (1, 0, [0, 0], 900)
    assert slot(raw, 48) == full(DAY + 48 * Q, None, 2)[0:3] + ([480, ramp(DAY + 12 * H + 420, DAY + 49 * Q, 1)],)
    assert bt63(m)[1:4] == before[1:4]             # the same block goes on
