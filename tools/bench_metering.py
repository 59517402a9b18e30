"""`osgp-meter bench`: the metering measurements (docs/simulate.md, "Bench").

* **year**: one meter (default profile, metering on: supply, TOU, metrology,
  15-minute load profile) runs a simulated year through tools/simulate.py's
  loop, as fast as it can. Reported: wall time and the acceleration factor
  (simulated seconds per wall second; target >= 100,000x).
* **fleet**: N meters (default 1,000, seeds 1..N) run D simulated days
  (default 30); every day at 00:30 UTC a data concentrator reads, from
  each meter, BT63 and then the newest complete block of BT64 (yesterday's
  96 intervals) in 84-byte partial reads through
  `fw.meter.execute(..., access.ROLE_PLC, device.PLC_LIMITS, now)`, in
  process (the PLC channel itself is another issue). The newest full block
  is at ((BT63.3 - 1) mod BT61.7) * ET21.8 [OPT p.31]; BT61 and ET21 are
  read once per meter, at its first read. Every block read is checked: its
  end time is that midnight and all 96 intervals are recorded. Reported:
  wall minutes, per-meter and per-meter-day cost, requests and bytes.

The meters in the fleet are stepped meter by meter to each read time (each
meter's own deadlines, as `Firmware.tick` returns them), which is what an
event loop over independent meters amounts to. Numbers are for humans: tests
check the structure only (tiny sizes).
"""
import gc
import time

from osgp_meter import access
from osgp_meter import clock
from osgp_meter import device

T0_S = 1_767_225_600              # 2026-01-01T00:00:00Z, the project's benchmark start
TARGET_ACCELERATION = 100_000
YEAR_DAYS = 365
FLEET_METERS = 1000
FLEET_DAYS = 30
READ_AT_S = 30 * 60               # 00:30 UTC

BT61 = 61
BT63 = 63
BT64 = 64
ET21 = 2048 + 21

_clock = time.perf_counter


class BenchError(AssertionError):
    """A block read in the fleet run was not what the meter should hold."""


def _config(config=None):
    if config is None:
        from .profile import load_config
        config = load_config()
    return dict(config, metering=True)


def year_run(days=YEAR_DAYS, config=None, start=T0_S):
    """One meter, `days` simulated days of metering with the default 15-min
    load profile. Returns a dict (wall_s, acceleration, ...)."""
    from .simulate import Simulation
    cfg = _config(config)
    gc.collect()
    t0 = _clock()
    sim = Simulation(config=cfg, start=start, record=False)
    build = _clock() - t0
    sim.run_until(start * 1000 + days * 86_400_000)
    wall = sim.wall
    st = sim.meter.store
    seq = st.field(BT63, 5, 4)
    simulated = days * 86400
    acc = simulated / wall if wall > 0 else None
    fwd = None
    try:
        from . import plot
        rmap = plot.register_map(sim.raw_read)
        fwd = plot.register_values(sim.raw_read(23, 0, rmap["size"]), rmap)[0]
    except Exception:           # only a figure for humans
        pass
    return {"label": "one meter, metering on, %d simulated days of 15-min LP" % days,
            "simulated_days": days, "build_s": round(build, 4), "wall_s": round(wall, 3),
            "acceleration": round(acc) if acc else None, "target": TARGET_ACCELERATION,
            "meets": acc >= TARGET_ACCELERATION if acc else None,
            "wakeups": sim.wakeups, "us_per_wakeup": round(1e6 * wall / sim.wakeups, 1) if sim.wakeups else None,
            "lp_blocks": seq, "forward_kwh": round(fwd / 1000, 1) if fwd is not None else None}


def _read(meter, tid, offset, count, now, stats):
    """Partial reads (0x3F) of at most PLC_LIMITS.max_read bytes."""
    out = b""
    lim = device.PLC_LIMITS
    while count > 0:
        n = count if count < lim.max_read else lim.max_read
        req = bytes((0x3F, tid >> 8, tid & 0xFF, offset >> 16, (offset >> 8) & 0xFF,
                     offset & 0xFF, n >> 8, n & 0xFF))
        rsp = meter.execute(req, access.ROLE_PLC, lim, now)
        if rsp[0] != 0 or (rsp[1] << 8 | rsp[2]) != n:
            raise BenchError("read %d@%d+%d answered %s" % (tid, offset, n, rsp[:3].hex()))
        out += rsp[3:]
        stats[0] += 1
        stats[1] += len(req) + len(rsp)
        offset += n
        count -= n
    return out


def _rss_kb():
    try:
        import resource
    except ImportError:          # not on every platform
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def fleet_run(meters=FLEET_METERS, days=FLEET_DAYS, config=None, start=T0_S, read_at=READ_AT_S):
    """`meters` meters, `days` simulated days, a daily DC read of yesterday's
    LP block at `read_at` seconds after midnight UTC. Returns a dict."""
    from osgp_meter.firmware import Firmware
    cfg = _config(config)
    start_ms = start * 1000
    gc.collect()
    rss0 = _rss_kb()
    t0 = _clock()
    fleet = []
    for i in range(meters):
        c = dict(cfg, seed=i + 1, clock=start)
        fleet.append(Firmware(c, start_ms))
    build = _clock() - t0
    due = [fw.tick(start_ms) for fw in fleet]
    layout = [None] * meters            # (blocks, block size, intervals) read once per meter
    stats = [0, 0]                      # requests, bytes on the wire (request + response)
    verified = 0
    sim_s = 0.0
    read_s = 0.0
    wakeups = 0
    day0 = start - start % 86400
    t_start = _clock()
    for d in range(1, days + 1):
        midnight = day0 + d * 86400
        target = (midnight + read_at) * 1000
        for i, fw in enumerate(fleet):
            a = _clock()
            tick = fw.tick
            nxt = due[i]
            while nxt is not None and nxt <= target:
                nxt = tick(nxt)
                wakeups += 1
            due[i] = tick(target)
            b = _clock()
            m = fw.meter
            lay = layout[i]
            if lay is None:
                bt61 = _read(m, BT61, 7, 6, target, stats)
                et21 = _read(m, ET21, 8, 4, target, stats)
                lay = layout[i] = (bt61[0] | bt61[1] << 8, int.from_bytes(et21, "little"),
                                   bt61[2] | bt61[3] << 8)
            nblk, bsize, nint = lay
            h = _read(m, BT63, 0, 13, target, stats)
            last = h[3] | h[4] << 8
            idx = (last - 1) % nblk
            blk = _read(m, BT64, idx * bsize, bsize, target, stats)
            end = clock.decode_ltime(bytes(blk[0:5]) + b"\x00")
            if end != midnight:
                raise BenchError("meter %d day %d: newest full block ends %d, expected %d"
                                 % (i, d, end, midnight))
            bits = sum(bin(x).count("1") for x in blk[5:5 + (nint + 7) // 8])
            if bits != nint:
                raise BenchError("meter %d day %d: %d of %d intervals recorded" % (i, d, bits, nint))
            verified += 1
            c = _clock()
            sim_s += b - a
            read_s += c - b
    wall = _clock() - t_start
    rss1 = _rss_kb()
    meter_days = meters * days
    return {"label": "%d meters x %d simulated days, daily DC read of yesterday's LP block"
                     " (BT63 + BT64, 84-byte PLC partial reads, in process)" % (meters, days),
            "meters": meters, "days": days, "read_at": "%02d:%02d UTC" % (read_at // 3600, read_at // 60 % 60),
            "build_s": round(build, 3), "wall_s": round(wall, 3), "wall_min": round(wall / 60, 2),
            "simulate_s": round(sim_s, 3), "read_s": round(read_s, 3),
            "per_meter_s": round(wall / meters, 4) if meters else None,
            "per_meter_day_ms": round(1000 * wall / meter_days, 3) if meter_days else None,
            "acceleration": round(days * 86400 * meters / wall) if wall > 0 else None,
            "wakeups": wakeups, "requests": stats[0], "wire_bytes": stats[1],
            "blocks_verified": verified, "verified": verified == meter_days,
            "max_rss_growth_mb": round((rss1 - rss0) / 1024, 1)}


def measure(quick=False, meters=FLEET_METERS, days=FLEET_DAYS, year_days=YEAR_DAYS, config=None):
    """Both measurements (quick: the year run only). Returns a dict."""
    out = {"year": year_run(year_days, config)}
    out["fleet"] = None if quick else fleet_run(meters, days, config)
    out["fleet_skipped"] = "skipped (--quick)" if quick else None
    return out


def format_lines(res):
    lines = ["metering (virtual time, tools/bench_metering.py)"]
    y = res["year"]
    verdict = "n/a" if y["meets"] is None else ("meets" if y["meets"] else "misses")
    lines.append("  %s" % y["label"])
    lines.append("      wall %.2f s, %s x real time (target >= %s: %s), %d wake-ups, %.1f us each,"
                 " %s kWh forward" % (y["wall_s"], "{:,}".format(y["acceleration"] or 0),
                                      "{:,}".format(y["target"]), verdict, y["wakeups"],
                                      y["us_per_wakeup"] or 0, y["forward_kwh"]))
    f = res.get("fleet")
    if f is None:
        lines.append("  fleet: %s" % (res.get("fleet_skipped") or "skipped"))
    else:
        lines.append("  %s" % f["label"])
        lines.append("      wall %.2f min (%.1f s simulating, %.1f s reading; built in %.1f s),"
                     " %.3f s per meter, %.2f ms per meter-day, %s meter-seconds per wall second"
                     % (f["wall_min"], f["simulate_s"], f["read_s"], f["build_s"], f["per_meter_s"],
                        f["per_meter_day_ms"], "{:,}".format(f["acceleration"] or 0)))
        lines.append("      %d requests, %d bytes on the wire, %d blocks verified (%s), max RSS +%.0f MB"
                     % (f["requests"], f["wire_bytes"], f["blocks_verified"],
                        "all" if f["verified"] else "NOT all", f["max_rss_growth_mb"]))
    return lines


def add_arguments(b):
    """The bench parser's metering options (tools/cli.py)."""
    b.add_argument("mode", nargs="?", choices=("all", "metering", "mep"), default="all",
                   help="all (default), metering only, or the MEP/memory measurements only")
    b.add_argument("--quick", action="store_true", help="skip the 1,000-meter fleet run")
    b.add_argument("--fleet-meters", type=int, default=FLEET_METERS, metavar="N")
    b.add_argument("--fleet-days", type=int, default=FLEET_DAYS, metavar="D")
    b.add_argument("--year-days", type=int, default=YEAR_DAYS, metavar="D")
