"""`osgp-meter bench fleet`: what a fleet costs (docs/fleet.md, "Bench").

* **memory**: bytes per meter in a fleet (tools/fleet.py), metering off and
  on: tracemalloc growth and RSS growth of a child process that builds an
  M-meter fleet (a fresh process each, so one measurement's freed memory
  does not hide the next one's).
* **channel**: frames simulated per wall second on one shard
  (tools/channel_bench.py, the DC-polling scenario).
* **survey**: an N-meter fleet (one generated transformer area, factory-fresh
  meters) discovered, commissioned and read once (BT01) through its DC, via
  repeaters where needed: simulated and wall time (tools/fleet_survey.py).
* **acceptance runs** (options, not for CI): ``--acceptance`` 10,000
  meters discovered, commissioned and read once in one fleet run (wall time,
  peak RSS); ``--resident N`` N meters resident at once (bytes per meter,
  metering off and on).

Numbers are for humans: tests check the structure with tiny sizes.
"""
import gc
import json
import os
import time

SURVEY_METERS = 50
MEMORY_METERS = 1000
CHANNEL_NODES = 200
CHANNEL_FRAMES = 20_000
ACCEPTANCE_METERS = 10_000
SEED = 1


def _rss():
    from .fleet import _rss_bytes
    return _rss_bytes()


def _peak_rss():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _in_child(fn, *args):
    """fn(*args) in a fresh (spawned) process; its return value."""
    import multiprocessing as mp
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_child_main, args=(child, fn, args))
    p.start()
    child.close()
    try:
        kind, value = parent.recv()
    except EOFError:
        p.join()
        raise RuntimeError("the measuring process died (exit code %s)" % p.exitcode) from None
    p.join()
    if kind == "error":
        raise RuntimeError(value)
    return value


def _child_main(conn, fn, args):
    try:
        conn.send(("ok", fn(*args)))
    except BaseException as exc:     # reported to the parent
        import traceback
        conn.send(("error", "%s: %s\n%s" % (type(exc).__name__, exc, traceback.format_exc())))


# ---------------------------------------------------------------- memory

def memory_child(meters, metering, trace=True, seed=SEED, processes=1):
    """In a fresh process: build a fleet of `meters`, report bytes per meter
    (RSS growth; tracemalloc growth when `trace`)."""
    import tracemalloc
    from .fleet import Fleet
    Fleet({"meters": 2, "metering": metering, "seed": seed}).build()     # modules, caches
    gc.collect()
    rss0 = _rss()
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    fleet = Fleet({"meters": meters, "metering": metering, "seed": seed})
    fleet.build()
    build_s = time.perf_counter() - t0
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] if trace else None
    if trace:
        tracemalloc.stop()
    rss = _rss() - rss0
    one = fleet.firmware(fleet.meters[0])
    store = one.meter.store
    return {"meters": meters, "metering": metering, "shards": len(fleet.shards),
            "build_s": round(build_s, 3),
            "tracemalloc_bytes_per_meter": None if traced is None else round(traced / meters),
            "rss_bytes_per_meter": round(rss / meters), "rss_mb": round(rss / 2**20, 1),
            "peak_rss_mb": round(_peak_rss() / 2**20, 1),
            "written_tables": len(store.written),
            "written_bytes": sum(len(w) for w in store.written.values())}


def measure_memory(meters=MEMORY_METERS, seed=SEED):
    """Metering off and on: RSS from a child without tracemalloc (whose own
    bookkeeping would double it), traced bytes from another child."""
    out = []
    for m in (False, True):
        r = _in_child(memory_child, meters, m, False, seed)
        t = _in_child(memory_child, meters, m, True, seed)
        r["tracemalloc_bytes_per_meter"] = t["tracemalloc_bytes_per_meter"]
        out.append(r)
    return out


# ---------------------------------------------------------------- channel

def measure_channel(nodes=CHANNEL_NODES, frames=CHANNEL_FRAMES, seed=SEED):
    from .channel_bench import bench_channel_report
    r = bench_channel_report(nodes, frames, seed)
    keep = ("nodes", "frames", "wall_s", "frames_per_s", "virtual_s", "speedup", "utilisation",
            "collisions", "deferrals", "loss")
    return {k: (round(r[k], 3) if isinstance(r[k], float) else r[k]) for k in keep}


# ---------------------------------------------------------------- survey

def survey_run(meters=SURVEY_METERS, seed=SEED, tables=("BT01",), processes=1, metering=False,
               per_transformer=None):
    """Build a factory-fresh fleet of `meters`, then discover, commission and
    read `tables` once from every meter of every shard. Returns the summary
    (fleet.summarise_surveys) with build time and peak RSS (of this
    process; with workers, theirs too)."""
    from . import crypto_backend
    from .fleet import Fleet, survey, summarise_surveys
    crypto_backend.install()
    t0 = time.perf_counter()
    cfg = {"meters": meters, "seed": seed, "metering": metering, "commission": "none",
           "processes": processes}
    if per_transformer:
        cfg["per_transformer"] = per_transformer
    fleet = Fleet(cfg)
    fleet.start()
    build_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    try:
        if fleet._workers:
            reports = [r for part in fleet.call_workers("survey", {"tables": tables})
                       for r in part]
            rss = fleet.call_workers("memory")
        else:
            reports = [survey(fleet, sh, tables=tables) for sh in fleet.shards]
            rss = []
    finally:
        fleet.stop()
    out = summarise_surveys(reports, time.perf_counter() - t1)
    out.update(build_s=round(build_s, 3), tables=list(tables), metering=metering,
               processes=processes, peak_rss_mb=round(_peak_rss() / 2**20, 1),
               worker_peak_rss_mb=[round(r["peak"] / 2**20, 1) for r in rss],
               per_shard=[{k: r.get(k) for k in ("shard", "meters", "found", "commissioned",
                                                 "read_ok", "virtual_s", "wall_s", "frames",
                                                 "hops")} for r in reports])
    out["total_wall_s"] = round(time.perf_counter() - t0, 3)
    return out


# ---------------------------------------------------------------- all

def measure(meters=SURVEY_METERS, memory_meters=MEMORY_METERS, channel_nodes=CHANNEL_NODES,
            channel_frames=CHANNEL_FRAMES, seed=SEED, acceptance=None, resident=None,
            processes=1, memory=True):
    """Every fleet measurement; acceptance / resident are the long runs (a
    meter count, or None to skip them)."""
    import platform
    import sys
    res = {"python": sys.version.split()[0], "machine": platform.machine(),
           "cpus": os.cpu_count(), "seed": seed}
    if memory:
        res["memory"] = measure_memory(memory_meters, seed)
    res["channel"] = measure_channel(channel_nodes, channel_frames, seed)
    res["survey"] = _in_child(survey_run, meters, seed)
    if acceptance:
        res["acceptance"] = _in_child(survey_run, acceptance, seed, ("BT01",), processes)
    if resident:
        res["resident"] = [_in_child(memory_child, resident, m, False, seed) for m in (False, True)]
    return res


def format_lines(res):
    out = ["fleet bench (CPython %s, %s, %s CPUs, seed %s)" % (
        res["python"], res["machine"], res["cpus"], res["seed"])]
    for m in res.get("memory", ()):
        out.append("  memory, metering %-3s  %6d meters: %6s B/meter traced, %6d B/meter RSS, "
                   "built in %.1f s" % ("on" if m["metering"] else "off", m["meters"],
                                        m["tracemalloc_bytes_per_meter"], m["rss_bytes_per_meter"],
                                        m["build_s"]))
    c = res["channel"]
    out.append("  channel: %d nodes, %d frames: %.0f frames/s wall, %.0fx real time, "
               "utilisation %.0f %%" % (c["nodes"], c["frames"], c["frames_per_s"], c["speedup"],
                                        100 * c["utilisation"]))
    for key, label in (("survey", "survey"), ("acceptance", "acceptance")):
        s = res.get(key)
        if not s:
            continue
        out.append("  %s: %d meters in %d shards: %d found (hops %s), %d commissioned, %d read "
                   "once; %.1f s virtual (slowest shard), %.1f s wall (+ %.1f s build), "
                   "peak RSS %.0f MB%s" % (
                       label, s["meters"], s["shards"], s["found"],
                       ", ".join("%s: %d" % kv for kv in s["hops"].items()) or "-",
                       s["commissioned"], s["read_ok"], s["virtual_s_max"], s["wall_s"],
                       s["build_s"], s["peak_rss_mb"],
                       "" if not s.get("worker_peak_rss_mb") else
                       " (workers %s MB)" % "/".join("%.0f" % x
                                                     for x in s["worker_peak_rss_mb"])))
    for m in res.get("resident") or ():
        out.append("  resident, metering %-3s %d meters: %d B/meter RSS (%.0f MB), built in "
                   "%.0f s" % ("on" if m["metering"] else "off", m["meters"],
                               m["rss_bytes_per_meter"], m["rss_mb"], m["build_s"]))
    return out


def add_arguments(b):
    """The bench parser's fleet options, and "fleet" among its modes."""
    for a in b._actions:
        if a.dest == "mode" and a.choices is not None and "fleet" not in a.choices:
            a.choices = tuple(a.choices) + ("fleet",)
            a.help = (a.help or "") + "; fleet: what a fleet costs (bench fleet)"
    b.add_argument("--survey-meters", type=int, default=SURVEY_METERS, metavar="N",
                   help="fleet: meters discovered, commissioned and read (default 50)")
    b.add_argument("--memory-meters", type=int, default=MEMORY_METERS, metavar="M",
                   help="fleet: meters per memory measurement (default 1000)")
    b.add_argument("--channel-nodes", type=int, default=CHANNEL_NODES, metavar="N")
    b.add_argument("--channel-frames", type=int, default=CHANNEL_FRAMES, metavar="F")
    b.add_argument("--acceptance", nargs="?", type=int, const=ACCEPTANCE_METERS, default=None,
                   metavar="N", help="fleet: also discover, commission and read N meters "
                                     "(default 10,000) in one run: wall time, peak RSS")
    b.add_argument("--resident", type=int, default=None, metavar="N",
                   help="fleet: also build N meters at once (e.g. 100000): bytes per meter")
    b.add_argument("--processes", type=int, default=1, metavar="P",
                   help="fleet: worker processes of the acceptance run")
    b.add_argument("--seed", type=int, default=SEED)


def run(args):
    res = measure(meters=args.survey_meters, memory_meters=args.memory_meters,
                  channel_nodes=args.channel_nodes, channel_frames=args.channel_frames,
                  seed=args.seed, acceptance=args.acceptance, resident=args.resident,
                  processes=args.processes)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print("\n".join(format_lines(res)))
    return 0
