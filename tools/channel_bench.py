"""Channel benchmark: frames simulated per wall second on one shard
(``bench_channel``), used by ``osgp-meter bench fleet``.

The scenario is a data concentrator on the busbar polling every meter in turn
(a request with delta backlog 1, the meter's answer with delta 0, a 3 s
timeout), while every meter also sends unsolicited frames to the DC at random
(Poisson) times, offering ``background`` of the channel's capacity, so that
the CSMA, deferrals, collisions and losses are exercised. Frames use a bench
layout (not LonTalk): header, destination index (2), source index (2),
payload, 2 filler CRC bytes; an address filter delivers each frame to its
destination only, as the LonTalk layer's filter will.

Numbers are for humans: tests check that a run completes, never a rate.
"""
import random
import time

from .channel import Channel
from .topology import Topology

BROADCAST = 0xFFFF


def bench_topology(nodes, feeders=3, seed=0):
    """One transformer, ``feeders`` feeders, a DC on the busbar and
    ``nodes - 1`` meters spread along the feeders."""
    cables = ["underground", "underground", "overhead", "underground"]
    lengths = [900.0, 700.0, 1600.0, 1100.0]
    d = {"name": "bench-%d" % nodes, "feeder": [], "node": [{"id": "dc", "role": "dc",
                                                               "transformer": "T1"}],
         "meters": []}
    meters = nodes - 1
    for k in range(feeders):
        d["feeder"].append({"id": "F%d" % (k + 1), "cable": cables[k % 4],
                            "length_m": lengths[k % 4]})
    first = 1
    for k in range(feeders):
        cnt = meters // feeders + (1 if k < meters % feeders else 0)
        if cnt == 0:
            continue
        L = lengths[k % 4]
        d["meters"].append({"feeder": "F%d" % (k + 1), "count": cnt, "from_m": L / (cnt + 1),
                            "to_m": L - L / (cnt + 1) if cnt > 1 else L / (cnt + 1),
                            "first": first, "width": 5})
        first += cnt
    return Topology.from_dict(d, source="<bench %d nodes>" % nodes)


def _frame(hdr, dst, src, payload):
    return bytes((hdr, dst >> 8, dst & 0xFF, src >> 8, src & 0xFF)) + payload + b"\x00\x00"


class BenchDC:
    """Polls meters round robin; counts answers."""

    def __init__(self, meters, timeout_ms=3000):
        self.meters = meters            # channel indices of the meters
        self.k = 0
        self.deadline = None
        self.timeout_ms = timeout_ms
        self.channel = None
        self.answers = 0
        self.timeouts = 0
        self.waiting = None

    def attached(self, channel, node_id):
        self.channel = channel
        self.me = channel.index[node_id]
        self.deadline = channel.sim.now_ms      # start polling at once

    def _next(self, now_ms):
        m = self.meters[self.k % len(self.meters)]
        self.k += 1
        self.waiting = m
        self.deadline = now_ms + self.timeout_ms
        return _frame(0x01, m, self.me, b"\x30" + bytes(11))

    def poll(self, now_ms):
        if self.waiting is not None:
            self.timeouts += 1
        return self._next(now_ms)

    def receive(self, frame, now_ms, rssi, snr):
        src = (frame[3] << 8) | frame[4]
        if src == self.waiting and frame[5] == 0x00:
            self.answers += 1
            return self._next(now_ms)
        return None


class BenchMeter:
    """Answers polls; sends unsolicited frames at Poisson times."""

    def __init__(self, rng, mean_gap_ms):
        self.rng = rng
        self.mean = mean_gap_ms
        self.deadline = None
        self.dc = 0

    def attached(self, channel, node_id):
        self.me = channel.index[node_id]
        self.dc = channel.index["dc"]
        if self.mean:
            self.deadline = channel.sim.now_ms + int(self.rng.expovariate(1.0 / self.mean)) + 1

    def receive(self, frame, now_ms, rssi, snr):
        if frame[5] == 0x30:
            return _frame(0x00, (frame[3] << 8) | frame[4], self.me, b"\x00" + bytes(39))
        return None

    def poll(self, now_ms):
        self.deadline = now_ms + int(self.rng.expovariate(1.0 / self.mean)) + 1
        return _frame(0x00, self.dc, self.me, b"\x01" + bytes(20))


def _address_filter(ids):
    def flt(frame):
        dst = (frame[1] << 8) | frame[2]
        if dst == BROADCAST:
            return None
        return (ids[dst],)
    return flt


def bench_channel_report(nodes=200, frames=20_000, seed=1, background=0.2, topology=None):
    """Run the bench scenario until ``frames`` transmissions have started;
    return a dict of what happened, with ``frames_per_s`` (wall)."""
    t_build = time.perf_counter()
    topo = topology or bench_topology(nodes)
    ch = Channel(topo, seed=seed)
    rng = random.Random("bench/%s" % seed)
    ids = ch.ids
    meters = [i for i, nid in enumerate(ids) if nid != "dc"]
    avg_air_ms = ch.airtime_us(30) / 1000.0
    mean_gap = (len(meters) * avg_air_ms / background) if background > 0 else 0
    dc = BenchDC(meters)
    ms = []
    for i in meters:
        m = BenchMeter(random.Random(rng.random()), mean_gap)
        ch.attach(ids[i], m)
        ms.append(m)
    ch.attach("dc", dc)
    ch.address_filter = _address_filter(ids)
    t0 = time.perf_counter()
    build_s = t0 - t_build
    sim = ch.sim
    while ch.stats["tx"] < frames:
        if not sim.run(max_events=2000):
            break
    wall = time.perf_counter() - t0
    st = dict(ch.stats)
    virt_s = sim.now / 1e6
    return {
        "nodes": len(ids), "frames": st["tx"], "wall_s": wall, "build_s": build_s,
        "frames_per_s": st["tx"] / wall if wall > 0 else float("inf"),
        "virtual_s": virt_s, "speedup": virt_s / wall if wall > 0 else float("inf"),
        "utilisation": st["airtime_us"] / sim.now if sim.now else 0.0,
        "deliveries": st["deliveries"], "loss": st["loss"], "loss_reasons": dict(ch.loss_reasons),
        "collisions": st["collisions"], "deferrals": st["deferrals"],
        "polls_answered": dc.answers, "poll_timeouts": dc.timeouts,
        "events": sim.events_run,
    }


def bench_channel(nodes=200, frames=20_000, seed=1):
    """Frames simulated per wall second (channel transmissions started / s)."""
    return bench_channel_report(nodes, frames, seed)["frames_per_s"]


def main(argv=None):
    import argparse
    import json
    ap = argparse.ArgumentParser(description="virtual PLC channel benchmark")
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--frames", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--background", type=float, default=0.2)
    a = ap.parse_args(argv)
    r = bench_channel_report(a.nodes, a.frames, a.seed, a.background)
    print(json.dumps(r, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
