# History log (BT74), its alternate (ET79), BT73 filtering, critical events
# (ET18 / ET48 / EP38), unread and overflow (BP04 / BP05, BT03 6.6 / 7.4),
# EP20, EP03, EP42 and the text rendering, on the real catalogue.
#
# The meter is built as Firmware builds it (TableStore + Meter + clock)
# without the MEP and optical ports, which would cost ~30 KB of a 128 KB
# MicroPython heap; procedures still go through BT07/BT08 (Meter.execute).
from osgp_meter import access as A
from osgp_meter import catalogue_data
from osgp_meter import clock
from osgp_meter import events
from osgp_meter.device import Meter, MEP_LIMITS
from osgp_meter.store import TableStore

T0 = clock.from_civil(2026, 11, 26, 12, 0, 0) * 1000
BT03 = 3
BT71 = 71
BT73 = 73
BT74 = 74
ET48 = 2048 + 48
ET11 = 2048 + 11
ET79 = 2048 + 79
EP03 = 2048 + 3
EP20 = 2048 + 20
EP38 = 2048 + 38
EP42 = 2048 + 42

_psn = [0]


def image(entries=20, flags=0x06, alt=8):
    """Small logs (the default 100-entry BT74 is 1.4 KB: too big a block for
    a 128 KB MicroPython heap next to the whole firmware)."""
    et11 = bytearray(91)
    d = catalogue_data.TABLES[ET11][4]
    et11[:len(d)] = d
    et11[26] = 8                      # ET61 relay-calendar switches
    et11[80] = alt                    # ET79 entries
    return {BT71: bytes((flags, 8, 19, 2, 2, entries, 0, 0, 0)), ET11: bytes(et11)}


def meter(img=None):
    m = Meter(TableStore(catalogue_data.TABLES, img if img is not None else image()),
              catalogue_data.PROCEDURES)
    m.set_utc(T0 // 1000, T0)
    return m


def small(flags=0x06):
    """A meter whose history log holds 4 entries."""
    return meter(image(4, flags))


def call(m, number, params=b"", now=T0, role=A.ROLE_MAK):
    """Run a procedure through BT07/BT08 over MEP: (result, response data)."""
    _psn[0] = _psn[0] % 200 + 1
    data = bytes((number & 0xFF, number >> 8, _psn[0])) + bytes(params)
    assert m.execute(bytes((0x40, 0, 7, 0, len(data))) + data, role, MEP_LIMITS, now) == b"\x00"
    r = m.execute(bytes((0x30, 0, 8)), role, MEP_LIMITS, now)
    return r[6], r[7:]


def bit(m, byte, b):
    return (m.store.field(BT03, byte, 1) >> b) & 1


def evs(m, tid=BT74):
    return [(e[3], e[4]) for e in events.entries(m, tid)]


def state(m):
    snap = m.store.snapshot()
    snap.pop(7, None)
    snap.pop(8, None)
    return snap


def test_log_sizes_follow_the_dimensions():
    m = meter({})
    assert m.store.size(BT74) == 11 + 100 * 14        # catalogue default: 100 entries
    assert m.store.size(ET79) == 11 + 50 * 14         # ET11.80 = 50
    assert meter().store.size(BT74) == 11 + 20 * 14


def test_log_layout_bytes_pinned():
    m = meter()
    seq = events.log(m, 9, 10, events.USER_MEP)
    assert seq == 1
    raw = m.store.get(BT74)
    assert raw[:11].hex(" ") == "04 01 00 00 00 01 00 00 00 01 00"
    assert raw[11:25].hex(" ") == "1a 0b 1a 0c 00 00 01 00 fd ff 09 00 0a 00"
    assert raw[25:39] == bytes(14)
    # an extended event keeps its 12-bit number; t and user as given
    events.log(m, 2048 + 2, 0x1234, 0xFFFF, T0 // 1000 + 61)
    assert m.store.read(BT74, 25, 14).hex(" ") == "1a 0b 1a 0c 01 01 02 00 ff ff 02 08 34 12"
    assert m.store.read(BT74, 0, 11).hex(" ") == "04 02 00 01 00 02 00 00 00 02 00"
    assert bit(m, 7, 4) == 1 and bit(m, 6, 6) == 0      # unread entries, no overflow


def test_default_user_and_time_come_from_the_meter():
    m = meter()
    m.user = 0xFFFE
    events.log(m, 20, 1)
    e = events.entries(m)[0]
    assert e == (T0 // 1000, 1, 0xFFFE, 20, 1)


def test_circular_overflow_keeps_the_newest():
    m = small()
    for k in range(6):
        events.log(m, 20, k, 0xFFFF, T0 // 1000 + k)
    head = m.store.read(BT74, 0, 11)
    assert head.hex(" ") == "06 04 00 01 00 06 00 00 00 04 00"
    assert [e[1] for e in events.entries(m)] == [3, 4, 5, 6]
    assert [e[4] for e in events.entries(m)] == [2, 3, 4, 5]
    assert bit(m, 6, 6) == 1 and bit(m, 7, 4) == 1


def test_inhibit_overflow_drops_new_entries_until_read():
    m = small(0x0E)
    got = [events.log(m, 20, k) for k in range(6)]
    assert got == [1, 2, 3, 4, None, None]
    assert m.store.read(BT74, 0, 11).hex(" ") == "0e 04 00 03 00 04 00 00 00 04 00"
    assert bit(m, 6, 6) == 1
    # BP05 on the history log: 2 entries read, overflow cleared
    assert call(m, 5, b"\x08\x02\x00")[0] == 0
    assert m.store.field(BT74, 9, 2) == 2 and bit(m, 6, 6) == 0
    # now the two read (oldest) entries may be overwritten
    assert events.log(m, 20, 7) == 5
    assert [e[4] for e in events.entries(m)] == [1, 2, 3, 7]


def test_bt73_filters_events_procedures_and_tables():
    m = meter()
    # event 44 off in BT73 (byte 5 bit 4)
    m.store.set_field(BT73, 5, 1, m.store.field(BT73, 5, 1) & ~0x10)
    assert events.log(m, 44) is None
    assert events.log(m, 45) == 1
    # event 10 needs the table's bit; the default monitors no table
    assert events.table_written(m, 2048 + 30, T0) is None
    m.store.set_field(BT73, 27 + 10 + 3, 1, 0x40)           # mfg table 30 = ET30
    assert events.table_written(m, 2048 + 30, T0) == 2
    assert events.table_written(m, 4096 + 2048 + 30, T0) == 3   # its pending copy
    assert events.table_written(m, 7, T0) is None               # BT07: event 9 instead
    assert evs(m)[1:] == [(10, 2078), (10, 4096 + 2078)]
    # event 9 needs the procedure's bit: EP20 is byte 52 + 2, bit 4
    call(m, EP20, b"\x00\x00\x00")
    assert evs(m)[-1] == (9, EP20)
    m.store.set_field(BT73, 54, 1, m.store.field(BT73, 54, 1) & ~0x10)
    call(m, EP20, b"\x00\x00\x00")
    assert evs(m)[-1] == (9, EP20) and len(evs(m)) == 4


def test_procedure_invoked_only_when_it_ran():
    m = meter()
    assert call(m, 6, b"\x01") == (0, bytes(12))
    e = events.entries(m)[-1]
    assert e[2] == 0xFFFD and e[3] == 9 and e[4] == 6
    n = len(evs(m))
    before = state(m)
    assert call(m, 6, b"\x08")[0] == 2          # refused: nothing logged
    assert call(m, 0x0863)[0] == 6              # not in the catalogue
    assert len(evs(m)) == n and state(m) == before


def test_critical_events_mirror_into_et79_and_wait_for_ep38():
    m = meter()
    events.log(m, 20, 0)                               # not critical
    seq = events.log(m, 2048 + 24, 0, 0xFFFF)          # magnetic tamper: critical
    assert seq == 2
    alt = events.entries(m, ET79)
    assert alt == [(T0 // 1000, 2, 0xFFFF, 2048 + 24, 0)]
    assert m.store.read(ET79, 0, 11).hex(" ") == "04 01 00 00 00 02 00 00 00 01 00"
    assert events.pending_critical(m) == [(T0 // 1000, 2048 + 24, 0)]
    assert m.store.read(ET48, 0, 10).hex(" ") == "1a 0b 1a 0c 00 00 18 08 00 00"
    assert bit(m, 6, 7) == 1
    # BP08 may clear the bit, the record stays until EP38
    call(m, 8)
    assert bit(m, 6, 7) == 0 and len(events.pending_critical(m)) == 1
    events.log(m, 1, 0, 0xFFFF)                       # power down: critical too
    assert bit(m, 6, 7) == 1 and len(events.pending_critical(m)) == 2
    assert call(m, EP38)[0] == 0
    assert events.pending_critical(m) == [] and bit(m, 6, 7) == 0
    assert m.store.field(ET79, 9, 2) == 0 and m.store.field(ET79, 1, 2) == 2
    assert evs(m)[-1] == (9, EP38)


def test_critical_records_keep_the_newest_ten():
    m = meter()
    for k in range(12):
        events.log(m, 47, 0, 0xFFFF, T0 // 1000 + k)
    p = events.pending_critical(m)
    assert len(p) == 10 and p[0][0] == T0 // 1000 + 2 and p[-1][0] == T0 // 1000 + 11


def test_critical_even_when_bt73_does_not_log_it():
    m = meter()
    m.store.set_field(BT73, 5, 1, m.store.field(BT73, 5, 1) & ~0x80)   # event 47 off
    assert events.log(m, 47) is None
    assert evs(m) == [] and events.entries(m, ET79) == []
    assert len(events.pending_critical(m)) == 1 and bit(m, 6, 7) == 1


def test_unread_counts_and_bp04_bp05_selectors():
    img = image()
    img[21] = bytes.fromhex("0604010f02000104020c")     # 1 self-read: a small BT26
    m = meter(img)
    for k in range(3):
        events.log(m, 20, k)
    assert bit(m, 7, 4) == 1
    assert call(m, 5, b"\x08\x02\x00")[0] == 0
    assert m.store.field(BT74, 9, 2) == 1 and bit(m, 7, 4) == 1
    before = state(m)
    assert call(m, 5, b"\x08\x05\x00")[0] == 2        # more than unread
    assert call(m, 5, b"\xff\x01\x00")[0] == 2        # 255 is not one list
    assert call(m, 5, b"\x08")[0] == 2                # short
    assert state(m) == before
    assert call(m, 5, b"\x08\x01\x00")[0] == 0
    assert m.store.field(BT74, 9, 2) == 0 and bit(m, 7, 4) == 0
    assert len(evs(m)) == 3                           # BP05 on the log: no event 9
    # BP04 255 resets every list, the history log too; the sequence goes on
    events.log(m, 20, 9)
    assert call(m, 4, b"\xff")[0] == 0
    assert m.store.read(BT74, 0, 11).hex(" ") == "04 00 00 00 00 04 00 00 00 00 00"
    assert bit(m, 7, 4) == 0 and bit(m, 6, 6) == 0
    assert events.log(m, 20, 10) == 5


def test_ep42_clears_the_logs_and_logs_event_16():
    m = meter()
    events.log(m, 20, 0)
    events.log(m, 47, 0)
    assert len(events.entries(m, ET79)) == 1
    before = state(m)
    assert call(m, EP42, b"\x03")[0] == 2
    assert call(m, EP42)[0] == 2
    assert state(m) == before
    assert call(m, EP42, b"\x00", now=T0 + 5000)[0] == 0
    got = events.entries(m)
    assert [(e[1], e[3]) for e in got] == [(3, 16), (4, 9)]
    assert got[0][0] == T0 // 1000 + 5 and got[0][2] == 0xFFFD
    assert events.entries(m, ET79) == []
    assert m.store.field(ET79, 5, 4) == 2            # last sequence kept
    # only the alternate log
    events.log(m, 47, 0)
    assert call(m, EP42, b"\x02")[0] == 0
    assert events.entries(m, ET79) == [] and len(events.entries(m)) == 5


def test_ep20_and_ep03_clear_alarm_bits():
    m = meter()
    m.store.write(BT03, 1, b"\xff\xff\xff\xff\xff\xff\xff\xff\xff")
    assert call(m, EP03)[0] == 0
    assert m.store.field(BT03, 2, 1) == 0xEF         # std bit 12 cleared
    before = state(m)
    assert call(m, EP20, b"\x01\x00")[0] == 2                   # short
    assert call(m, EP20, b"\x00\x00\x00" + bytes(7))[0] == 2    # > BT00.17 mfg bytes
    assert state(m) == before
    assert call(m, EP20, b"\x01\x80\x08\x00\x00\x40")[0] == 0
    assert m.store.read(BT03, 1, 9).hex(" ") == "fe 6f f7 ff ff bf ff ff ff"


def test_alarm_reports_changes_and_ignores_bytes_past_bt03():
    m = meter()
    assert events.alarm(m, 7, 1, True) is True
    assert events.alarm(m, 7, 1, True) is False
    assert events.alarm_set(m, 7, 1)
    assert events.alarm(m, 40, 0, True) is False
    assert events.alarm(m, 7, 1, False) is True and not events.alarm_set(m, 7, 1)


def test_time_changed_stamps_old_and_new():
    m = meter()
    t = T0 // 1000
    events.time_changed(m, t, t + 3600)
    assert [(e[0], e[3]) for e in events.entries(m)] == [(t, 3), (t + 3600, 4)]


def test_render_and_decode():
    m = meter()
    m.user = 0xFFFD
    events.log(m, 9, 10)
    events.log(m, 2050, 1, 0xFFFF, T0 // 1000 + 3661)
    names = {9: "Procedure Invoked"}
    lines = events.render(m, names)
    assert lines[0] == "2026-11-26 12:00:00  #1  MEP     Procedure Invoked (9)  arg=10"
    assert lines[1] == "2026-11-26 13:01:01  #2  -       Event (2050)  arg=1"
    flags, unread, got = events.decode(m.store.get(BT74), 2)
    assert flags == 0x04 and unread == 2 and got[1][1] == 2
    # the full sequence number survives the 16-bit wrap
    m.store.set_field(BT74, 5, 4, 0x1FFFF)
    events.log(m, 20, 0)
    assert events.entries(m)[-1][1] == 0x20000
