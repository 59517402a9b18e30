"""The virtual PLC channel (tools/channel.py, sim.py, phy.py, faults.py):
airtime, MAC timing, backlog, collisions, the loss curve, determinism, faults,
and a 200-node run (no timing assertions)."""
import math
import threading

import pytest

from osgp_meter.crc import crc16_lon, lon_bytes
from osgp_host.channel import Channel
from osgp_host.channel_bench import bench_channel, bench_channel_report
from osgp_host.faults import Fault, FaultError, parse_duration_ms
from osgp_host.phy import MacConfig, PhyConfig, header
from osgp_host.sim import Simulator
from osgp_host.topology import NodeSpec, Topology


class Rec:
    """A node that records what it receives and answers with `reply`."""

    def __init__(self, reply=None):
        self.got = []
        self.reply = reply
        self.deadline = None
        self.sent = []
        self.line = []

    def receive(self, frame, now_ms, rssi_db, snr_db):
        self.got.append((now_ms, frame, rssi_db, snr_db))
        return self.reply(frame) if callable(self.reply) else self.reply

    def poll(self, now_ms):
        return None

    def on_sent(self, frame, now_ms):
        self.sent.append((now_ms, frame))

    def on_line(self, now_ms, connected):
        self.line.append((now_ms, connected))


def frame(delta=0, priority=False, alt=False, body=b"\x30abc", crc=True):
    f = bytes((header(priority, alt, delta),)) + body
    return f + lon_bytes(crc16_lon(f)) if crc else f


def traced(ch):
    ev = []
    ch.add_tracer(ev.append)
    return ev


def kinds(ev, kind):
    return [e for e in ev if e.kind == kind]


# -- PHY ---------------------------------------------------------------------------

def test_airtime_from_the_bit_rate():
    phy = PhyConfig()
    assert phy.bit_rate == 3600 and phy.profile == "pldb"
    # 35 bit times of preamble = 9.72 ms at 3.6 kbit/s ([PLDB p.244] measures 9.70 ms)
    assert phy.us(35) == 9722
    # reference example: a 40-byte NPDU + header + CRC = 43 bytes:
    # 35 + 8 * 43 + 3 = 382 bit times = 106.11 ms, rounded up to the µs
    assert phy.frame_bits(43) == 382
    assert phy.airtime_us(43) == 106112
    assert phy.airtime_us(1) == -(-(35 + 8 + 3) * 1_000_000 // 3600)
    seed = PhyConfig.from_dict({"profile": "seed"})
    assert seed.bit_rate == 3240
    assert seed.airtime_us(43) == -(-382 * 1_000_000 // 3240)
    # FEC expands the payload only: 10/9 on 3.6 kbit/s ~ the seed's 3.24 for the payload
    fec = PhyConfig.from_dict({"fec": 10 / 9})
    assert fec.frame_bits(43) == 35 + math.ceil(344 * 10 / 9) + 3
    assert PhyConfig.from_dict({"bit_rate": 5400}).profile == "custom"


def test_header_byte():
    assert header() == 0
    assert header(priority=True) == 0x80
    assert header(alt_path=True, delta_backlog=5) == 0x45
    with pytest.raises(ValueError):
        header(delta_backlog=64)


def test_loss_curve_shape():
    phy = PhyConfig()
    assert phy.frame_loss(60, 40) < 1e-12
    assert phy.frame_loss(-20, 40) > 0.999999
    # longer frames lose more at the same SNR
    assert phy.frame_loss(8, 80) > phy.frame_loss(8, 20)
    for p in (0.1, 0.5, 0.9):
        assert phy.frame_loss(phy.snr_for_loss(p, 30), 30) == pytest.approx(p, rel=1e-9)


# -- simulator -------------------------------------------------------------------------

def test_simulator_orders_ties_and_cancels():
    sim = Simulator(start_ms=0)
    out = []
    sim.at(10, out.append, "b")
    sim.at(5, out.append, "a")
    sim.at(10, out.append, "c")
    h = sim.at(10, out.append, "x")
    sim.cancel(h)
    sim.at(20, out.append, "d")
    assert sim.run(until=15) == 3
    assert out == ["a", "b", "c"] and sim.now == 15
    sim.run()
    assert out == ["a", "b", "c", "d"] and sim.now == 20
    assert sim.now_ms == 0 and sim.us_of_ms(3) == 3000


def test_simulator_paced_run_and_post():
    sim = Simulator(start_ms=0)
    out = []
    sim.at(50_000, out.append, 1)          # 50 ms virtual
    th = threading.Thread(target=sim.post, args=(out.append, "posted"))
    th.start()
    th.join()
    sim.run(until=100_000, speed=100.0)     # 100 ms virtual at 100x: ~1 ms wall
    assert out == ["posted", 1] and sim.now == 100_000


# -- timing -------------------------------------------------------------------------------

def exact_mac(**kw):
    # W_base = 1 and frames with delta backlog 0 keep the backlog at 1, so the
    # random window has one slot: timing is exact
    return MacConfig(w_base=1, **kw)


def pair(mac=None, att=30.0, **kw):
    topo = Topology.matrix(["a", "b"], {("a", "b"): att}, mac=mac or exact_mac(), **kw)
    return Channel(topo, seed=1)


def test_two_nodes_exchange_with_exact_timing():
    ch = pair()
    a = ch.attach("a", Rec())
    b = ch.attach("b", Rec(reply=lambda f: frame(body=b"\x00" + bytes(20))))
    ev = traced(ch)
    req = frame(body=b"\x30" + bytes(10))
    ch.transmit("a", req)
    ch.run()
    air_req = ch.airtime_us(len(req))
    air_rsp = ch.airtime_us(len(req) + 10)
    b1rx = ch.phy.us(ch.mac.beta1_rx_bits)
    tx = kinds(ev, "tx")
    assert [(e.t_us, e.src) for e in tx] == [(0, "a"), (air_req + b1rx, "b")]
    rx = kinds(ev, "rx")
    assert [(e.t_us, e.src, e.dst) for e in rx] == [
        (air_req, "a", "b"), (air_req + b1rx + air_rsp, "b", "a")]
    start = ch.sim.start_ms
    assert b.got[0][0] == start + air_req // 1000 and b.got[0][1] == req
    assert a.got[0][0] == start + (air_req + b1rx + air_rsp) // 1000
    assert a.got[0][2] == pytest.approx(90.0) and a.got[0][3] == pytest.approx(40.0)
    assert a.sent == [(start + air_req // 1000, req)]
    assert ch.backlog("a") == 1 and ch.backlog("b") == 1


def test_node_deadline_and_poll():
    class Ticker(Rec):
        def __init__(self, start):
            super().__init__()
            self.deadline = start + 500
            self.polls = []

        def poll(self, now_ms):
            self.polls.append(now_ms)
            self.deadline = now_ms + 1000 if len(self.polls) < 3 else None
            return frame()

    ch = pair()
    t = ch.attach("a", Ticker(ch.sim.start_ms))
    b = ch.attach("b", Rec())
    ch.run()
    s = ch.sim.start_ms
    assert t.polls == [s + 500, s + 1500, s + 2500]
    assert len(b.got) == 3


def test_transmit_in_the_future_and_dropped_when_queue_full():
    ch = pair(mac=exact_mac(queue_limit=2))
    ch.attach("b", Rec())
    ev = traced(ch)
    ch.transmit("a", frame(), now_ms=ch.sim.start_ms + 1000)
    ch.run()
    b2 = ch.phy.us(ch.mac.beta2_bits)
    assert kinds(ev, "tx")[0].t_us == -(-1_000_000 // b2) * b2     # the next slot boundary
    assert [ch.transmit("a", frame()) for _ in range(4)] == [True, True, False, False]
    assert [e.reason for e in kinds(ev, "drop")] == ["queue_full", "queue_full"]
    with pytest.raises(ValueError):
        ch.transmit("a", b"")


# -- MAC ------------------------------------------------------------------------------

def test_carrier_sense_defers_until_idle():
    topo = Topology.matrix(["a", "b", "c"], {("a", "b"): 30, ("a", "c"): 30, ("b", "c"): 30},
                           mac=exact_mac())
    ch = Channel(topo, seed=3)
    for n in "abc":
        ch.attach(n, Rec())
    ev = traced(ch)
    long = frame(body=bytes(60))
    ch.transmit("a", long)
    # b gets a frame while a's is on the air: it waits for the end + beta1 (after receive)
    ch.transmit("b", frame(), now_ms=ch.sim.start_ms + 50)
    ch.run()
    tx = kinds(ev, "tx")
    end_a = ch.airtime_us(len(long))
    assert tx[1].src == "b" and tx[1].t_us == end_a + ch.phy.us(ch.mac.beta1_rx_bits)
    assert ch.stats["collisions"] == 0 and ch.stats["loss"] == 0


def test_contenders_defer_to_an_earlier_slot():
    topo = Topology.matrix(["a", "b", "c", "d"],
                           {(x, y): 30 for x in "abcd" for y in "abcd" if x < y})
    ch = Channel(topo, seed=11)
    for n in "abcd":
        ch.attach(n, Rec())
    ev = traced(ch)
    for n in "abc":
        ch.transmit(n, frame())
    ch.run()
    tx = kinds(ev, "tx")
    assert len(tx) == 3
    b2 = ch.phy.us(ch.mac.beta2_bits)
    for e in tx[1:]:
        assert e.t_us >= tx[0].t_us + ch.airtime_us(len(frame()))
    assert ch.stats["deferrals"] >= 2
    # every start is on the slot grid of its window
    assert tx[0].t_us % b2 == 0


def test_priority_slot_goes_first():
    mac = MacConfig(priority_slots=4, w_base=1)
    nodes = ["x", NodeSpec("p", priority_slot=2), "q"]
    topo = Topology.matrix(nodes, {("x", "p"): 30, ("x", "q"): 30, ("p", "q"): 30}, mac=mac)
    ch = Channel(topo, seed=2)
    for n in ("x", "p", "q"):
        ch.attach(n, Rec())
    ev = traced(ch)
    busy = frame(body=bytes(30))
    ch.transmit("x", busy)
    ch.transmit("q", frame(), now_ms=ch.sim.start_ms + 20)
    ch.transmit("p", frame(priority=True), now_ms=ch.sim.start_ms + 30)
    ch.run()
    tx = kinds(ev, "tx")
    b1, b2 = ch.phy.us(mac.beta1_rx_bits), ch.phy.us(mac.beta2_bits)
    assert tx[0].t_us == 4 * b2         # an ordinary frame waits for the priority slots
    end = tx[0].t_us + ch.airtime_us(len(busy))
    assert [e.src for e in tx] == ["x", "p", "q"]
    assert tx[1].t_us == end + b1 + (2 - 1) * b2
    end_p = tx[1].t_us + ch.airtime_us(len(frame()))
    # q: after p's frame, beta1, the 4 priority slots, then its (single) random slot
    assert tx[2].t_us == end_p + b1 + 4 * b2


def test_backlog_estimate():
    mac = MacConfig()
    topo = Topology.matrix(["a", "b"], {("a", "b"): 30}, mac=mac)
    ch = Channel(topo, seed=1)
    ch.attach("a", Rec())
    ch.attach("b", Rec())
    ch.transmit("a", frame(delta=3))
    ch.run()
    assert ch.backlog("a") == 4 and ch.backlog("b") == 4    # sent / received: +3
    ch.transmit("a", frame(delta=0))
    ch.run()
    t_last = ch.sim.now
    assert ch.backlog("b") == 3                             # delta 0: -1
    # idle: -1 per packet cycle without activity
    pc = ch.phy.us(mac.packet_cycle_bits)
    ch.sim.run(until=t_last + 2 * pc)
    assert ch.backlog("b") == 1
    # capped at 63, with the overflow flag
    for _ in range(3):
        ch.transmit("a", frame(delta=30))
        ch.run()
    assert ch.backlog("b") == 63 and ch.bl_overflow[ch.index["b"]]


def test_backlog_widens_the_window():
    b2 = PhyConfig().us(MacConfig().beta2_bits)
    offsets = []
    for seed in range(20):
        topo = Topology.matrix(["a", "b"], {("a", "b"): 30})
        ch = Channel(topo, seed=seed)
        ch.attach("a", Rec(reply=lambda f: frame()))     # answer at once
        ch.attach("b", Rec())
        ev = traced(ch)
        ch.transmit("b", frame(delta=40))                # a now estimates 41
        ch.run()
        tx = kinds(ev, "tx")
        assert tx[1].src == "a"
        g0 = tx[0].t_us + ch.airtime_us(len(frame())) + ch.phy.us(ch.mac.beta1_rx_bits)
        off = tx[1].t_us - g0
        assert off % b2 == 0 and 0 <= off // b2 < 41 * 16
        offsets.append(off // b2)
    assert max(offsets) > 16        # impossible with a backlog of 1


# -- collisions ---------------------------------------------------------------------------

def test_hidden_terminals_collide_at_the_dc_and_capture_nearby():
    ch = Channel(Topology.named("hidden"), seed=4)
    nodes = {n: ch.attach(n, Rec()) for n in ch.ids}
    assert not ch.link("east-far", "west-far").heard
    assert ch.link("east-far", "dc").heard and ch.link("west-far", "dc").heard
    ev = traced(ch)
    f = frame(body=bytes(40))
    ch.transmit("east-far", f)
    ch.transmit("west-far", f)
    ch.run()
    tx = kinds(ev, "tx")
    assert len(tx) == 2 and ch.stats["deferrals"] == 0      # neither sensed the other
    assert nodes["dc"].got == []
    lost = {(e.src, e.dst): e.reason for e in kinds(ev, "loss")}
    assert lost[("east-far", "dc")] == "collision" and lost[("west-far", "dc")] == "collision"
    # east-near hears east-far 20 dB above west-far: the capture margin (10 dB) lets it through
    assert [g[1] for g in nodes["east-near"].got] == [f]
    assert ("west-far", "east-near") in lost


def test_capture_margin_is_a_parameter():
    def run(capture):
        topo = Topology.matrix(["a", "b", "r"], {("a", "r"): 30, ("b", "r"): 45},
                               phy=PhyConfig(capture_db=capture))
        ch = Channel(topo, seed=1)
        r = ch.attach("r", Rec())
        ch.attach("a", Rec())
        ch.attach("b", Rec())
        ch.transmit("a", frame(body=bytes(30)))
        ch.transmit("b", frame(body=bytes(30)))
        ch.run()
        return len(r.got), ch.loss_reasons
    assert run(10.0) == (1, {"collision": 1})       # 15 dB apart: the stronger survives
    assert run(20.0) == (0, {"collision": 2})


def test_same_slot_starts_collide_half_duplex():
    ch = pair(mac=MacConfig(w_base=1))
    a, b = ch.attach("a", Rec()), ch.attach("b", Rec())
    ch.transmit("a", frame())
    ch.transmit("b", frame())
    ch.run()
    assert a.got == [] and b.got == []
    assert ch.loss_reasons == {"half_duplex": 2}


def test_secondary_carrier_from_the_alt_path_bit():
    topo = Topology.matrix(["a", "b"], {("a", "b"): (75.0, 30.0)})   # primary below the floor
    ch = Channel(topo, seed=1)
    b = ch.attach("b", Rec())
    ch.attach("a", Rec())
    ev = traced(ch)
    ch.transmit("a", frame())
    ch.transmit("a", frame(alt=True))
    ch.run()
    assert [e.carrier for e in kinds(ev, "tx")] == [0, 1]
    assert len(b.got) == 1 and b.got[0][1][0] & 0x40
    assert b.got[0][3] == pytest.approx(120 - 30 - 55)     # secondary background noise 55


# -- loss vs SNR ---------------------------------------------------------------------------

@pytest.mark.parametrize("p", [0.3, 0.8])
def test_loss_rate_matches_the_curve(p):
    n = 20
    phy = PhyConfig()
    snr = phy.snr_for_loss(p, n)
    att = 120.0 - 50.0 - snr
    topo = Topology.matrix(["a", "b"], {("a", "b"): att})
    ch = Channel(topo, seed=12345)
    count = 3000
    body = bytes(n - 3)

    class Sender(Rec):
        def on_sent(self, f, now_ms):
            self.sent.append(now_ms)
            return frame(body=body, crc=True) if len(self.sent) < count else None

    ch.attach("a", Sender())
    b = ch.attach("b", Rec())
    ch.transmit("a", frame(body=body))
    ch.run()
    assert ch.stats["tx"] == count
    loss = 1 - len(b.got) / count
    sigma = math.sqrt(p * (1 - p) / count)
    assert abs(loss - p) < 4 * sigma
    assert b.got[0][3] == pytest.approx(snr)


def test_below_the_sensitivity_floor_nothing_is_heard():
    topo = Topology.matrix(["a", "b", "c"], {("a", "b"): 81.0, ("a", "c"): 79.0})
    ch = Channel(topo, seed=1)
    b = ch.attach("b", Rec())
    ch.attach("c", Rec())
    ch.attach("a", Rec())
    assert ch.neighbours("a") == ["c"]
    ch.address_filter = lambda f: ["b", "c"]
    ev = traced(ch)
    ch.transmit("a", frame())
    ch.run()
    assert b.got == [] and kinds(ev, "loss")[0].reason == "out_of_range"


def test_address_filter_and_promiscuous_tap():
    ch, n = three()
    ch.detach("c")
    tap = ch.attach("c", Rec(), promiscuous=True)
    ch.address_filter = lambda f: ["b"] if f[1] == 0x01 else None
    ev = traced(ch)
    ch.transmit("a", frame(body=b"\x01to-b"))
    ch.transmit("a", frame(body=b"\x02all"))
    ch.run()
    assert [g[1][1] for g in n["b"].got] == [1, 2]
    assert [g[1][1] for g in tap.got] == [1, 2]         # the tap sees both
    assert [g[1][1] for g in n["a"].got] == []
    assert sorted(e.dst for e in kinds(ev, "rx")) == ["b", "b", "c", "c"]


def test_sender_leaving_the_line_mid_frame_loses_it_everywhere():
    ch, n = three()
    ev = traced(ch)
    long = frame(body=bytes(80))
    ch.transmit("a", long)
    ch.take_offline("a", at_ms=50, until_ms=10_000)
    ch.run()
    assert n["b"].got == [] and n["c"].got == []
    assert {e.reason for e in kinds(ev, "loss")} == {"sender_off_line"}
    assert n["a"].line == [(ch.sim.start_ms + 50, False), (ch.sim.start_ms + 10_000, True)]


def test_shards_share_one_simulator():
    topo = Topology.named("two_transformers")
    sim = Simulator()
    chans = [Channel(s, seed=k, sim=sim) for k, s in enumerate(topo.shards())]
    got = []
    for ch, dc in zip(chans, ("dc1", "dc2")):
        for nid in ch.ids:
            ch.attach(nid, Rec())
        ch.add_tracer(lambda e, dc=dc: got.append((e.t_us, dc, e.kind)))
        ch.transmit(dc, frame())
    sim.run(until=5_000_000)
    assert sorted(d for _, d, k in got if k == "tx") == ["dc1", "dc2"]
    assert [t for t, _, _ in got] == sorted(t for t, _, _ in got)


# -- determinism ---------------------------------------------------------------------------

def _trace_of(seed, frames=600, topology="default"):
    from osgp_host import channel_bench as cb
    ev = []
    topo = Topology.named(topology)
    ch = Channel(topo, seed=seed)
    ids = ch.ids
    import random
    rng = random.Random(seed)
    meters = [i for i, nid in enumerate(ids) if nid != "dc"]
    dc = cb.BenchDC(meters)
    for i in meters:
        ch.attach(ids[i], cb.BenchMeter(random.Random(rng.random()), 5000))
    ch.attach("dc", dc)
    ch.address_filter = cb._address_filter(ids)
    ch.add_tracer(lambda e: ev.append(e.line()))
    while ch.stats["tx"] < frames:
        ch.sim.run(max_events=500)
    return ev


def test_same_seed_same_trace_byte_for_byte():
    a = _trace_of(5)
    b = _trace_of(5)
    assert "\n".join(a).encode() == "\n".join(b).encode()
    assert any(" loss " in line for line in a)
    assert _trace_of(6) != a


# -- topology effects ------------------------------------------------------------------------

def test_link_matrix_for_the_topology_view():
    ch = Channel(Topology.named("default"), seed=1)
    m = ch.link_matrix("primary")
    assert set(m) == set(ch.ids)
    assert "m050" not in m["m001"] or m["m001"]["m050"] < m["m001"]["m002"]
    assert m["dc"]["m001"] == pytest.approx(ch.link("dc", "m001").snr_db)
    assert m["dc"]["m001"] == pytest.approx(m["m001"]["dc"])     # same levels, same noise
    two = Channel(Topology.named("two_transformers"), seed=1)
    mm = two.link_matrix()
    assert not any(x.startswith("b") or x == "dc2" for x in mm["dc1"])


def test_time_of_day_noise():
    ch = Channel(Topology.named("default"), seed=1)
    s = ch.sim.start_ms
    night = ch.link("dc", "m033", at_ms=s + 3 * 3_600_000)
    evening = ch.link("dc", "m033", at_ms=s + 18 * 3_600_000)      # 19:00 local (UTC+1)
    assert evening.snr_db < night.snr_db - 30
    sec = ch.link("dc", "m033", "secondary", at_ms=s + 18 * 3_600_000)
    assert sec.snr_db > evening.snr_db + 30                        # the heat pump is narrow-band


# -- faults -----------------------------------------------------------------------------------

def three():
    topo = Topology.matrix(["a", "b", "c"], {("a", "b"): 30, ("a", "c"): 30, ("b", "c"): 30})
    ch = Channel(topo, seed=9)
    nodes = {n: ch.attach(n, Rec()) for n in "abc"}
    return ch, nodes


def test_fault_drop_on_a_link():
    ch, n = three()
    ch.drop(link=("a", "b"), directed=True)
    ev = traced(ch)
    ch.transmit("a", frame())
    ch.transmit("b", frame())
    ch.run()
    assert n["b"].got == [] and len(n["c"].got) == 2 and len(n["a"].got) == 1
    assert [e.reason for e in kinds(ev, "loss")] == ["fault_drop"]


def test_fault_drop_probability():
    ch, n = three()
    ch.drop(probability=0.5, nodes=["c"], direction="to")
    for k in range(400):
        ch.transmit("a", frame(), now_ms=ch.sim.start_ms + 100 * k)
    ch.run()
    assert len(n["b"].got) == 400
    assert 150 < len(n["c"].got) < 250


def test_fault_delay_and_duplicate():
    ch, n = three()
    ch.delay(250, nodes=["b"], direction="to")
    ch.duplicate(copies=2, delay_ms=40, link=("a", "c"))
    ev = traced(ch)
    ch.transmit("a", frame())
    ch.run()
    end = kinds(ev, "tx")[0].t_us + ch.airtime_us(len(frame()))
    start = ch.sim.start_ms
    assert [g[0] for g in n["b"].got] == [start + end // 1000 + 250]
    assert [g[0] - start for g in n["c"].got] == [end // 1000 + k * 40 for k in range(3)]


def test_fault_corrupt_breaks_the_crc():
    ch, n = three()
    ch.corrupt(nodes=["b"], direction="to")
    f = frame(body=b"\x30hello world")
    ch.transmit("a", f)
    ch.run()
    got = n["b"].got[0][1]
    assert len(got) == len(f) and sum(x != y for x, y in zip(got, f)) == 1
    assert lon_bytes(crc16_lon(got[:-2])) != got[-2:]
    assert n["c"].got[0][1] == f


def test_fault_offline_and_back():
    ch, n = three()
    ch.take_offline("b", at_ms=1000, until_ms=5000)
    ev = traced(ch)
    ch.transmit("a", frame(), now_ms=ch.sim.start_ms + 2000)
    ch.transmit("b", frame(), now_ms=ch.sim.start_ms + 2000)
    ch.transmit("a", frame(), now_ms=ch.sim.start_ms + 6000)
    ch.run()
    assert [g[0] - ch.sim.start_ms >= 6000 for g in n["b"].got] == [True]
    assert len(n["c"].got) == 2                                   # b's frame never went out
    assert [e.reason for e in kinds(ev, "drop")] == ["off_line"]
    assert [c for _, c in n["b"].line] == [False, True]
    assert "b" not in ch.neighbours("a") or ch.sim.now >= 5_000_000


def test_fault_degrade_link_window():
    ch = Channel(Topology.named("small"), seed=1)
    before = ch.link("dc", "m003").snr_db
    ch.degrade(30, link=("dc", "m003"), at_ms=1000, until_ms=2000)
    ch.run(for_ms=1500)
    assert ch.link("dc", "m003").snr_db == pytest.approx(before - 30)
    assert ch.link("m003", "dc").snr_db == pytest.approx(before - 30)
    ch.run(for_ms=1000)
    assert ch.link("dc", "m003").snr_db == pytest.approx(before)


def test_fault_move_to_another_feeder_and_transformer():
    ch = Channel(Topology.named("two_transformers"), seed=1)
    assert "a006" in ch.neighbours("dc1") and "a006" not in ch.neighbours("dc2")
    ch.run(for_ms=10 * 60_000 + 1)                 # the topology's move fault at 10 min
    assert "a006" not in ch.neighbours("dc1") and "a006" in ch.neighbours("dc2")
    assert ch.link("dc2", "a006").attenuation_db == pytest.approx(5 + 0.3 * 25)
    ch2 = Channel(Topology.named("default"), seed=1)
    far = ch2.link("dc", "m050").snr_db
    ch2.move("m050", at_ms=0, feeder="F1", at_m=100, until_ms=1000)
    ch2.run(for_ms=500)
    assert ch2.link("dc", "m050").snr_db > far + 50
    ch2.run(for_ms=1000)
    assert ch2.link("dc", "m050").snr_db == pytest.approx(far)


def test_fault_noise_source():
    ch = Channel(Topology.named("small"), seed=1)
    quiet = ch.link("dc", "m005").snr_db
    ch.add_noise(100, feeder="F1", at_m=580, carrier=0, at_ms=0, until_ms=1000)
    ch.run(for_ms=10)
    assert ch.link("dc", "m005").snr_db < quiet - 40
    assert ch.link("dc", "m005", "secondary").snr_db > quiet - 10
    ch.run(for_ms=2000)
    assert ch.link("dc", "m005").snr_db == pytest.approx(quiet)


def test_fault_periodic_window():
    ch, n = three()
    ch.drop(nodes=["c"], direction="to", every_ms=1000, for_ms=500)
    for k in range(8):
        ch.transmit("a", frame(), now_ms=ch.sim.start_ms + 250 * k)
    ch.run()
    # frames ending in the first half of each second are dropped for c
    ends = [g[0] - ch.sim.start_ms for g in n["b"].got]
    assert [e for e in ends if e % 1000 >= 500] == [g[0] - ch.sim.start_ms for g in n["c"].got]


def test_faults_from_the_topology_file():
    ch = Channel(Topology.named("two_transformers"), seed=3)
    assert [f.kind for f in ch.faults] == ["offline", "degrade", "drop", "corrupt", "move"]
    ev = traced(ch)
    ch.run(for_ms=90_000)
    assert any(e.kind == "state" and e.src == "a002" and e.reason == "off_line" for e in ev)
    assert not ch.link("dc1", "a002").heard


def test_fault_validation():
    with pytest.raises(FaultError, match="kind"):
        Fault("explode")
    with pytest.raises(FaultError, match="probability"):
        Fault("drop", probability=1.5)
    with pytest.raises(FaultError, match="needs nodes"):
        Fault("offline")
    with pytest.raises(FaultError, match="nodes or link"):
        Fault("drop", nodes=["a"], link=("a", "b"))
    ch, _ = three()
    with pytest.raises(KeyError, match="zz"):
        ch.drop(nodes=["zz"])
    assert parse_duration_ms("1h30min") == 5_400_000
    assert parse_duration_ms(1.5) == 1500
    assert parse_duration_ms("250ms") == 250
    with pytest.raises(FaultError, match="duration"):
        parse_duration_ms("soon")


# -- scale -------------------------------------------------------------------------------------

def test_200_node_topology_runs_and_reports_frames_per_second(capsys):
    r = bench_channel_report(nodes=200, frames=3000, seed=1)
    assert r["nodes"] == 200 and r["frames"] >= 3000
    assert r["polls_answered"] > 0 and r["deliveries"] > 0
    with capsys.disabled():
        print("\nchannel bench, 200 nodes: %.0f frames/s (wall), %.0fx real time"
              % (r["frames_per_s"], r["speedup"]))
    assert bench_channel(20, 200, 2) > 0
