# The load-profile recorder, lists and procedures: overflow (event, BT03),
# inhibit overflow, BP04/BP05, EP11 (refusals change nothing; reconfiguring
# one set) and EP35. Helpers and the fake metrology: lp_util.
from osgp_meter import events
from osgp_meter import catalogue_data
from lp_util import (DAY, ET21, H, MID, T0S, blk, bt63, build, call, chunks, end_of, head,
                     ms, ramp, s32, slot, u16)


def test_overflow_event_and_list_pointers():
    m, fake = build({"sets": {0: (2, 96, 2, 15, b"\x00\x01")}})
    m.advance(ms(MID + 86400 + H))
    assert bt63(m) == (0x26, 2, 0, 3, 1, 4)        # overflow, block 0 overwritten
    assert m.store.field(3, 4, 1) & 1 and m.store.field(3, 7, 1) & 0x40    # BT03 4.0, 7.6
    logged = [e for e in events.entries(m) if e[3] == 2049]
    assert len(logged) == 1 and logged[0][4] == 0 and logged[0][0] == MID + 86400
    now = ms(MID + 86400 + H + 100)
    assert call(m, 5, 1, b"\x03\x01\x00", now) == 0           # BP05: one block read
    assert bt63(m)[0] == 0x24 and bt63(m)[4] == 0 and not m.store.field(3, 7, 1) & 0x40
    assert call(m, 5, 2, b"\x03\x01\x00", now) == 2           # more than unread
    assert call(m, 4, 3, b"\x03", now) == 0                   # BP04: a fresh list
    assert bt63(m) == (0x24, 1, 0, 4, 0, 0)
    m.advance(ms(MID + 86400 + 2 * H))
    raw = blk(m, 0)
    assert bt63(m)[5] == 8 and head(raw, 4) == (1, 0, [0, 0], 900) and head(raw, 3)[0] == 0
    assert call(m, 4, 4, b"\x04", now) == 3                   # set 2 is not configured
    assert call(m, 4, 5, b"\x07", now) == 0                   # all sets


def test_inhibit_overflow_stops_recording_until_read():
    d = catalogue_data.TABLES[61][4]
    bt61 = bytearray(d + bytes(31 - len(d)))
    bt61[4] |= 0x01                                # inhibit overflow, set 1
    m, fake = build({"sets": {0: (2, 96, 2, 15, b"\x00\x01")}}, {61: bytes(bt61)})
    m.advance(ms(MID + 86400 + H))
    assert bt63(m) == (0x2E, 2, 1, 2, 2, 96)       # stalled, nothing overwritten
    assert len([e for e in events.entries(m) if e[3] == 2049]) == 1
    assert end_of(blk(m, 1)) == MID + 86400
    assert call(m, 5, 1, b"\x03\x01\x00", ms(MID + 86400 + H + 60)) == 0   # room again
    m.advance(ms(MID + 86400 + 2 * H))
    assert bt63(m) == (0x2C, 2, 0, 3, 1, 8)
    raw = blk(m, 0)
    assert [slot(raw, i)[0] for i in range(8)] == [0, 0, 0, 0, 1, 1, 1, 1]


def test_ep11_refusals_change_nothing():
    m, fake = build()
    now = ms(T0S + H)
    m.advance(now)
    keep = (61, 62, 63, 64, 65, ET21)
    before = [chunks(m, t) for t in keep]
    idt = m.store.field(2048 + 4, 116, 1)
    m.store.write(2048 + 66, 0, b"\x77")           # ET66: source 112 -> 119, no source
    bad = (
        ("04 04 00 60 00 02 0F 00 01", 2),          # set 5
        ("00 04 00 60 00 02 07 00 01", 2),          # 7-minute intervals
        ("00 04 00 60 00 02 0F 00", 2),             # one source for two channels
        ("00 04 00 60 00 02 0F 00 32", 2),          # no summation 50
        ("00 04 00 60 00 01 0F 70", 2),             # 112 maps to nothing
        ("00 00 00 60 00 02 0F 00 01", 2),          # zero blocks, channels given
        ("00 04 00", 2),                            # short
        ("00 29 00 60 00 02 0F 00 01", 3),          # 41 blocks > BT60 (40)
        ("00 04 00 60 00 02 54 00 01", 3),          # 24 h > BT60 max 60 min
        ("00 28 00 60 00 10 0F" + " 00" * 16, 3),   # 40 x 7025 bytes > 128 KiB
    )
    for psn, (params, result) in enumerate(bad):
        assert call(m, 2048 + 11, psn + 1, bytes.fromhex(params), now) == result, params
        assert [chunks(m, t) for t in keep] == before
        assert m.store.field(2048 + 4, 116, 1) == idt


def test_ep11_reconfigures_one_set_and_ep35_starts_and_stops():
    m, fake = build()
    now = ms(T0S + H)
    m.advance(now)
    set1 = chunks(m, 64)
    idt = m.store.field(2048 + 4, 116, 1)
    # set 2: 3 blocks x 48 x 30 min, one channel (source 1)
    assert call(m, 2048 + 11, 1, bytes.fromhex("01 03 00 30 00 01 1E 01"), now) == 0
    assert m.store.field(2048 + 4, 116, 1) == idt + 1
    assert m.store.read(61, 13, 6) == bytes.fromhex("03 00 30 00 01 1E")
    assert m.store.field(61, 0, 4) == 4 * 977 + 3 * 251 and m.store.size(65) == 3 * 251
    assert m.store.get(62) == bytes.fromhex("00 00 00 00 01 01 20 00 01 01 20 00 00")
    assert chunks(m, 64) == set1                   # set 1 untouched
    assert [e for e in events.entries(m) if e[3] == 2071][-1][4] == idt + 1   # EE23
    m.advance(ms(T0S + 4 * H))
    assert bt63(m, 1) == (0x24, 1, 0, 1, 0, 28)
    e2 = m.store.read(ET21, 131, 30)
    assert (s32(e2, 8), u16(e2, 12), e2[25], e2[28]) == (251, 11, 5, 1)
    b = m.store.read(65, 0, 251)
    assert (s32(b, 11 + 21 * 5 + 1), b[11 + 22 * 5]) == (0, 2)          # started mid-interval
    for i in range(22, 28):
        a = DAY + i * 1800
        assert s32(b, 11 + i * 5 + 1) == ramp(a if i > 22 else T0S + H, a + 1800, 1)
    # EP35: stop set 2 mid-interval (recorded as partial), start again
    t = DAY + 14 * H
    assert call(m, 2048 + 35, 2, b"\x01\x00", ms(t + 600)) == 0
    b = m.store.read(65, 0, 251)
    assert bt63(m, 1)[0] == 0x04 and (s32(b, 11 + 28 * 5 + 1), b[11 + 28 * 5]) == (200, 2)
    m.advance(ms(t + 2 * H))
    assert bt63(m, 1)[5] == 29                     # nothing while stopped
    assert call(m, 2048 + 35, 3, b"\x01\x01", ms(t + 2 * H)) == 0
    m.advance(ms(t + 3 * H))
    assert bt63(m, 1)[0] == 0x24 and bt63(m, 1)[5] == 34
    assert call(m, 2048 + 35, 4, b"\x02\x01", ms(t + 3 * H)) == 3        # not configured
    assert call(m, 2048 + 35, 5, b"\x01\x02", ms(t + 3 * H)) == 2
    # switching set 2 off again frees its memory
    assert call(m, 2048 + 11, 6, b"\x01" + bytes(6), ms(t + 3 * H)) == 0
    assert m.store.size(65) == 0 and m.store.field(61, 0, 4) == 4 * 977
    assert m.store.get(62) == bytes.fromhex("00 00 00 00 01 01 20 20 00 00")
