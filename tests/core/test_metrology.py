# Metrology, first part: registers against the load model's exact integral,
# tiers, demands, outages, clock sets (resets, self-reads, BT28 and BP09:
# test_metrology_resets.py; two modules so that each compiles inside
# MicroPython's 128 KB test heap).
from osgp_meter.loadmodel import LoadModel
from osgp_meter.device import Meter
from osgp_meter.store import TableStore
from osgp_meter.prng import XorShift32
from osgp_meter import catalogue_data, clock, events, metrology, timeline

from metrology_util import make, T0
H = 3600000
DAY = 24 * H
ET40 = 2048 + 40


def regs(m, block=0):
    m.metrology.update(m, m.t)
    raw = m.store.read(23, 1 + block * 78, 60)
    return [int.from_bytes(raw[4 * i:4 * i + 4], "little") for i in range(15)]


def want(e, ratio=1):
    imp, exp, q1, q2, q3, q4 = e
    v = (imp, exp, q1 + q2, q3 + q4, 0, 0, imp + exp, max(0, imp - exp), 0, 0, 0, q1, q2, q3, q4)
    return [x * ratio // 3600 for x in v]


def demand(m, block, d):
    raw = m.store.read(23, 61 + block * 78 + 9 * d, 9)
    t = clock.decode_ltime(raw[0:5] + b"\x00") if raw[0:5] != bytes(5) else None
    return t, int.from_bytes(raw[5:9], "little")


def best(m, src, start, step=900, tier=None, ratio=1):
    # the largest interval demand of the model, and its end (STIME: minutes)
    model = LoadModel(7, pv_peak_w=m.metrology.model.pv_peak_w)
    top = (None, 0)
    s = (start // 1000 // step + 1) * step
    while s + 900 <= m.t:
        d = model.energy(m.physical_ms(s), m.physical_ms(s + 900))[src] * ratio // 900
        if d > top[1] and (tier is None or FakeTou.at(s) == tier):
            top = ((s + 900) // 60 * 60, d)
        s += step
    return top


def test_registers_are_the_exact_integral_however_time_is_stepped():
    a = make(pv_peak_w=3000)
    b = make(pv_peak_w=3000)
    rng = XorShift32(5)
    now = T0
    while now < T0 + DAY:
        now += rng.below(50 * 60000)
        a.advance(now)
        if rng.below(3) == 0:
            a.metrology.update(a, a.t)       # reads in between
    b.advance(now)
    e = LoadModel(7, pv_peak_w=3000).energy(T0, a.physical_ms(a.t))
    assert regs(a) == want(e) == regs(a, 1)   # no TOU: all in tier 0
    assert regs(a, 2) == [0] * 15
    assert regs(b) == regs(a) and a.store.content(23) == b.store.content(23)
    assert a.store.content(26) == b.store.content(26)     # the midnight self-read
    assert demand(a, 0, 0) == best(a, 0, T0) and demand(a, 0, 1) == best(a, 1, T0)


class FakeTou(timeline.Subsystem):
    # tier 1 07-21 h UTC, 2 21-24 h, 0 0-7 h; updates metrology before each
    # switch, as meter/tou.py does
    __slots__ = ("next",)

    def __init__(self, t):
        self.next = self.after(t)

    @staticmethod
    def at(t):
        h = t // 3600 % 24
        return 1 if 7 <= h < 21 else (2 if h >= 21 else 0)

    @staticmethod
    def after(t):
        t = t // 3600 * 3600 + 3600
        while t // 3600 % 24 not in (0, 7, 21):
            t += 3600
        return t

    def tier(self, meter, t):
        return self.at(t)

    def season(self, meter, t):
        return 2

    def due(self, meter):
        return self.next

    def run(self, meter, t):
        meter.metrology.update(meter, t)
        self.next = self.after(t)


def test_tier_blocks_split_the_energy_where_it_flowed():
    m = make()
    timeline.install(m, "tou", FakeTou(m.t))
    m.advance(T0 + DAY + 5 * H + 12345)
    model = LoadModel(7)
    per = [[0] * 6 for _ in range(3)]
    t = T0 // 1000
    while t < m.t:
        nxt = min(FakeTou.after(t), m.t)
        e = model.energy(m.physical_ms(t), m.physical_ms(nxt))
        per[FakeTou.at(t)] = [x + y for x, y in zip(per[FakeTou.at(t)], e)]
        t = nxt
    assert regs(m) == want([per[0][i] + per[1][i] + per[2][i] for i in range(6)])
    for k in range(3):
        assert regs(m, 1 + k) == want(per[k])
        assert demand(m, 1 + k, 0) == best(m, 0, T0, tier=k)
    assert regs(m, 4) == [0] * 15
    assert m.store.read(26, 6 + 2 + 5, 1) == b"\x02"  # the season TOU reports


def test_sliding_demand_and_bt15_ratio():
    m = make(((ET40, 0, (15, 3, 0, 0)), (15, 0, (3, 0, 1, 0, 1, 0, 1, 0))))
    m.advance(T0 + 6 * H)
    assert regs(m) == want(LoadModel(7).energy(T0, m.physical_ms(m.t)), 3)
    assert demand(m, 0, 0) == best(m, 0, T0, 300, ratio=3)


class FakeSupply(timeline.Subsystem):
    __slots__ = ("closed",)

    def connected(self, meter):
        return meter.powered and self.closed


def test_no_energy_while_unpowered_or_disconnected():
    m = make()
    sup = FakeSupply()
    sup.closed = True
    timeline.install(m, "supply", sup)
    off = T0 + H + 777
    on = off + 2 * H + 5000
    m.set_power(False, off)
    m.advance(off + H)
    m.set_power(True, on)
    m.advance(on + H)
    m.metrology.update(m, m.t)                # the supply brings energy up first
    sup.closed = False
    cut = m.t
    m.advance(on + 2 * H)
    m.metrology.update(m, m.t)
    sup.closed = True
    back = m.t
    m.advance(on + 3 * H)
    ph = m.physical_ms
    e = [LoadModel(7).energy(a, b) for a, b in ((T0, off), (ph(m.utc(on)), ph(cut)),
                                                  (ph(back), ph(m.t)))]
    assert regs(m) == want([e[0][i] + e[1][i] + e[2][i] for i in range(6)])
    sup.closed = False                        # BT28: no power, the line voltage
    v = m.metrology.live(m, 28, m.t)
    assert v[8:12] == bytes(4) and int.from_bytes(v[36:40], "little") > 200000


def test_clock_set_keeps_energy_continuous_and_realigns_demand():
    m = make()
    now = T0 + H + 300111                     # 5 min into an interval
    m.advance(now)
    metrology.demand_reset(m, m.t)
    fwd = m.utc(now) + 3 * 86400 + 417        # off the 15-min grid
    m.set_utc(fwd, now)
    nd = m.metrology.next_dmd
    assert nd % 900 == 0 and fwd < nd <= fwd + 900
    m.advance(now + (nd - fwd) * 1000 + 500)
    assert demand(m, 0, 0) == (None, 0)       # neither partial interval counts
    end = now + (nd - fwd + 900) * 1000 + 500
    m.advance(end)
    t, v = demand(m, 0, 0)
    assert v > 0 and t == (nd + 900) // 60 * 60
    m.set_utc(m.utc(end) - 5 * 86400, end)
    m.advance(end + 2 * H)
    assert regs(m) == want(LoadModel(7).energy(T0, end + 2 * H))


def test_season_outage_and_reconfiguration():
    m = make()
    m.advance(T0 + H)
    assert m.metrology.season_change(m, m.t, 1) == 0 and m.store.get(24) == m.store.get(23)
    m.metrology.add_outage(m, 95)
    m.metrology.add_outage(m, 5)
    assert regs(m)[4:6] == [100, 2] and regs(m, 1)[4] == 0
    m.store.write(ET40, 0, bytes((30, 1, 0, 0)))    # takes effect at the next run
    m.advance(T0 + 2 * H)
    assert m.metrology.int_s == 1800 and m.metrology.next_dmd % 1800 == 0
