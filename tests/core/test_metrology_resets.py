# Metrology, second part: demand resets, self-reads, BT28, BP09 (a module
# of its own so that each compiles inside MicroPython's 128 KB test heap).
from osgp_meter.loadmodel import LoadModel
from osgp_meter.device import Meter, PortLimits
from osgp_meter.store import TableStore
from osgp_meter import catalogue_data, clock, events, metrology

from metrology_util import make, T0
H = 3600000
DAY = 24 * H
PORT = PortLimits("test", 1000, 1000, 0xFFFD)
EP07 = 2048 + 7
EP21 = 2048 + 21
ET40 = 2048 + 40
LOCK = ((21, 0, (0x0E,)), (ET40, 0, (15, 1, 15, 0)))   # BT21.0 bit 3, 15 min


def digest(m):
    # BT23, BT25, BT26 in a few integers (no table-sized copies: the heap)
    out = []
    for tid in (23, 25, 26):
        data = m.store.content(tid)
        out.append((len(data), sum((i + 1) * data[i] for i in range(len(data)))))
    return out


def call(m, number, params, now, psn=[0]):
    psn[0] = psn[0] % 200 + 1
    data = bytes((number & 0xFF, number >> 8, psn[0])) + params
    assert m.execute(bytes((0x40, 0, 7, 0, len(data))) + data, 8, PORT, now) == b"\x00"
    return m.store.read(8, 3, 1)[0]


def regs(m, block=0):
    m.metrology.update(m, m.t)
    raw = m.store.read(23, 1 + block * 78, 60)
    return [int.from_bytes(raw[4 * i:4 * i + 4], "little") for i in range(15)]


def demand(m, block, d):
    raw = m.store.read(23, 61 + block * 78 + 9 * d, 9)
    t = clock.decode_ltime(raw[0:5] + b"\x00") if raw[0:5] != bytes(5) else None
    return t, int.from_bytes(raw[5:9], "little")


def test_demand_reset_lockout_and_bt25():
    m = make(LOCK)
    now = T0 + 3 * H
    m.advance(now)
    m.metrology.update(m, m.t)
    before = m.store.get(23)
    assert demand(m, 0, 0)[1] > 0
    assert call(m, EP21, b"", now) == 0
    t = m.utc(now)
    assert m.store.get(25) == clock.encode_stime(t) + b"\x00" + before
    after = m.store.get(23)
    assert after[0] == 1 and after[1:61] == before[1:61]
    assert demand(m, 0, 0) == (None, 0) == demand(m, 1, 1)
    e = [e for e in events.entries(m) if e[3] == 20][0]
    assert (e[0], e[2], e[4]) == (t, 0xFFFD, 1)
    now += 600000                             # inside the lockout: 4, no change
    m.advance(now)
    m.metrology.update(m, m.t)
    snap = digest(m)
    assert call(m, EP21, b"", now) == 4 and call(m, 9, b"\x03", now) == 4
    assert digest(m) == snap
    assert call(m, EP21, b"", now + 300000) == 0 and m.store.get(23)[0] == 2
    assert call(m, EP21, b"\x00", now + H) == 2
    del m
    n = make()                                # default tables: no lockout
    assert call(n, EP21, b"", T0 + H) == 0 and call(n, EP21, b"", T0 + H + 1000) == 0
    del n
    assert call(make(((21, 4, (0,)),)), EP21, b"", T0 + 1000) == 3     # no demands


def test_cumulative_demands():
    m = make(((21, 0, (0x36,)),))             # + cumulative, continuous cumulative
    m.advance(T0 + 2 * H)

    def rec():
        m.metrology.update(m, m.t)
        raw = m.store.read(23, 61, 17)
        return [int.from_bytes(raw[o:o + 4], "little") for o in (5, 9, 13)]
    cum, cont, mx = rec()
    assert cum == 0 and cont == mx > 0
    metrology.demand_reset(m, m.t)
    assert rec() == [mx, mx, 0]
    m.advance(T0 + 4 * H)
    cum, cont, mx2 = rec()
    assert cum == mx and cont == mx + mx2 and mx2 > 0


def test_self_read_list_overflow_and_events():
    m = make()
    now = T0 + 600000
    for k in range(5):
        assert call(m, EP07, b"", now + k * 60000) == 0
    head = m.store.read(26, 0, 6)
    assert head == bytes((0x06, 3, 1, 5, 0, 3))      # circular + overflow
    m.metrology.update(m, m.t)
    e = m.store.read(26, 6 + 399, 399)
    assert e[0:8] == bytes((5, 0)) + clock.encode_stime(m.utc(now + 240000)) + b"\x00"
    assert e[8:] == m.store.get(23)
    sr = [x for x in events.entries(m) if x[3] == 21]
    assert [x[4] for x in sr] == [1, 2, 3, 4, 5] and sr[0][2] == 0xFFFD
    assert m.store.read(3, 4, 1)[0] & 0x02            # BT03 4.1
    # BP05 marks them read and clears the overflow; overwriting read ones
    # sets none
    assert call(m, 5, b"\x02\x03\x00", now + H) == 0 and call(m, EP07, b"", now + H) == 0
    assert m.store.read(26, 0, 6) == bytes((0x04, 3, 2, 6, 0, 1))
    assert call(m, EP07, b"\x01", now + H) == 2
    del m
    f = make(((21, 1, (0x05,)),))             # inhibit overflow: full refuses
    for k in range(3):
        assert call(f, EP07, b"", T0 + 60000 * (k + 1)) == 0
    f.advance(T0 + H)
    f.metrology.update(f, f.t)
    snap = digest(f)
    assert call(f, EP07, b"", T0 + H) == 3 and digest(f) == snap and f.store.read(26, 0, 1)[0] & 0x08


def test_scheduled_self_reads():
    # daily at ET04.65/66 = 23:30 local (BT53: UTC+1) -> 22:30 UTC
    m = make(((2048 + 4, 65, (23, 30)),))
    m.advance(T0 + 2 * DAY)
    day0 = T0 // 1000 // 86400 * 86400
    for i in range(3):
        raw = m.store.read(26, 6 + i * 399 + 2, 5)
        assert clock.decode_ltime(raw + b"\x00") == (day0 + i * 86400 + 81000 if i < 2 else None)
    del m
    w = make(((21, 1, (0x08,)),))             # weekly: Sundays 00:00 local
    w.advance(T0 + 8 * DAY)
    assert w.store.read(26, 1, 1) == b"\x01"
    assert w.store.read(26, 8, 5) == clock.encode_stime(clock.from_civil(2026, 1, 3, 23))
    del w
    assert make(((21, 1, (0x00,)),)).metrology.next_sr is None


def test_present_values_bt28():
    m = make(((21, 0, (0x46,)),))             # + time remaining (BT21.0 bit 6)
    b0 = (T0 // 1000 // 900 + 2) * 900
    t = b0 + 400
    m.advance(m.physical_ms(t) + 10)
    raw = m.metrology.live(m, 28, m.t)
    assert len(raw) == m.store.size(28) == 2 * 7 + 12 * 4
    model = LoadModel(7)
    dem = model.energy(m.physical_ms(b0), m.physical_ms(t))[0] // 900
    assert raw[0:7] == bytes((0, 8, 20)) + dem.to_bytes(4, "little")    # 500 s left
    assert raw[7:14] == bytes((0, 8, 20, 0, 0, 0, 0))
    p = model.power(m.physical_ms(t))
    assert [int.from_bytes(raw[14 + 4 * i:18 + 4 * i], "little") for i in range(12)] == list(p[:12])
    assert m.metrology.live(m, 23, m.t) is None
    v = m.metrology.value                     # the load profile's view
    assert v(m, 0) == regs(m)[0] and v(m, 64 + 7) == p[7] and v(m, 64 + 12) == v(m, 15) == 0


def test_remote_reset_bp09():
    m = make()
    now = T0 + 2 * H
    m.advance(now)
    m.metrology.update(m, m.t)
    snap = digest(m)
    before = m.store.get(23)
    for bad in (b"", b"\x00", b"\x80", b"\x09", b"\x01\x00"):
        assert call(m, 9, bad, now) == 2
    assert call(m, 9, b"\x04", now) == 3 and call(m, 9, b"\x07", now) == 3   # no TOU
    assert digest(m) == snap
    assert call(m, 9, b"\x03", now) == 0
    assert m.store.read(26, 1, 1) == b"\x01" and m.store.get(23)[0] == 1
    assert m.store.read(26, 14, 391) == before   # the self-read came first
    del m
    plain = make(attach=False)                # without metrology: tables only
    assert call(plain, 9, b"\x03", T0 + 1000) == 0
    assert plain.store.read(26, 1, 1) == b"\x01" and plain.store.get(23)[0] == 1
    assert plain.store.read(25, 0, 5) == clock.encode_stime(plain.utc(T0 + 1000))
