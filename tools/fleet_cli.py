"""`osgp-meter fleet` (docs/fleet.md): its parser, the config from the
options, the run, and the survey summary. Split out of tools/fleet.py
(which re-exports these names)."""
import json
import sys
import threading
import time

from . import scenario as scen
from .fleet_config import coerce_config


# ---------------------------------------------------------------- the CLI

def add_parser(sub):
    f = sub.add_parser(
        "fleet", help="N virtual meters, sharded per transformer, behind CN/IP",
        description="A fleet of meters from one template profile, with per-meter identities "
                    "derived from the seed, one channel per transformer, several shards per "
                    "process, several processes, each shard reachable over CN/IP "
                    "(docs/fleet.md).")
    f.add_argument("config", nargs="?", help="a fleet config (TOML); options override it")
    f.add_argument("--meters", type=int, metavar="N", help="number of meters")
    f.add_argument("--topology", metavar="FILE", help="topology file or shipped name "
                   "(default: generated for N meters)")
    f.add_argument("--profile", metavar="FILE", help="template device profile")
    f.add_argument("--seed", type=int, help="fleet seed (default 1)")
    f.add_argument("--speed", metavar="X|max", help="virtual / wall time (default: 1 with "
                   "--cnip-port, else max)")
    f.add_argument("--shards", type=int, metavar="K", help="transformers of a generated topology")
    f.add_argument("--per-transformer", type=int, metavar="M",
                   help="meters per transformer of a generated topology (default 250)")
    f.add_argument("--processes", type=int, metavar="P", help="worker processes (default 1)")
    f.add_argument("--cnip-port", type=int, metavar="BASE",
                   help="CN/IP gateway of shard i on UDP port BASE + i (0: any free port)")
    f.add_argument("--cnip-host", metavar="ADDR", help="address the gateways bind (127.0.0.1)")
    f.add_argument("--pcap", metavar="FILE", help="capture every frame (one file per shard)")
    f.add_argument("--state", metavar="DB", help="keep the meters' state in this SQLite file")
    f.add_argument("--metering", choices=("on", "off"), help="the meters' time-based subsystems "
                   "(default: the profile's)")
    f.add_argument("--commission", choices=("direct", "none"),
                   help="direct (default): addresses set at build; none: factory-fresh")
    f.add_argument("--for", dest="duration", metavar="DURATION",
                   help="run this long in virtual time (\"90s\", \"1h\", \"2d\"), then stop")
    f.add_argument("--survey", action="store_true",
                   help="discover, commission and read every meter through its shard's DC")
    f.add_argument("--tables", default="BT01,BT23", help="what --survey reads (BT01,BT23)")
    f.add_argument("--inventory", metavar="CSV", help="write every meter's id, shard, CN/IP "
                   "port, address, Neuron ID, serial number and keys to this file (secrets: "
                   "a head end's key import, `osgp-meter dc --inventory`)")
    f.add_argument("--json", action="store_true", help="the summary as JSON")
    return f


def config_from_args(args):
    over = dict(meters=args.meters, topology=args.topology, profile=args.profile, seed=args.seed,
                speed=args.speed, shards=args.shards, per_transformer=args.per_transformer,
                processes=args.processes, cnip_port=args.cnip_port, cnip_host=args.cnip_host,
                pcap=args.pcap, state=args.state, commission=args.commission,
                metering=None if args.metering is None else args.metering == "on")
    if args.survey and args.commission is None:
        over["commission"] = "none"
    return coerce_config(args.config, **over)


def run(args, out=None, err=None):
    """`osgp-meter fleet`; exit status 0 on success."""
    import signal
    from .fleet import Fleet, survey
    from . import crypto_backend
    out = out or sys.stdout
    err = err or sys.stderr
    crypto_backend.install()
    cfg = config_from_args(args)
    w0 = time.perf_counter()
    fleet = Fleet(cfg)
    if args.inventory:
        n = fleet.write_inventory(args.inventory)
        if not args.json:
            print("inventory: %d meters in %s (their keys: keep it private)"
                  % (n, args.inventory), file=out)
    serving = cfg.cnip_port is not None
    if serving and not cfg.speed_given:
        cfg.speed = 1.0
    fleet.start()
    build_s = time.perf_counter() - w0
    st = fleet.stats()
    if not args.json:
        print("fleet: %d meters in %d shards (%s), %d process%s, metering %s, commission %s, "
              "seed %s, built in %.1f s" % (
                  len(fleet.meters), len(fleet.shard_ids), _range(fleet.shard_ids),
                  max(1, cfg.processes), "" if cfg.processes <= 1 else "es",
                  "on" if fleet.metering else "off", cfg.commission, cfg.seed, build_s), file=out)
        for s in st["shards"]:
            if s["cnip"]:
                print("%s: %d meters, cnip %s" % (s["shard"], s["meters"], s["cnip"]), file=out)
        out.flush()
    result = {"build_s": round(build_s, 3)}
    try:
        if args.survey:
            t0 = time.perf_counter()
            kw = {"tables": tuple(x.strip() for x in args.tables.split(",") if x.strip())}
            if fleet._workers:
                reports = [r for part in fleet.call_workers("survey", kw) for r in part]
            else:
                reports = [survey(fleet, sh, **kw) for sh in fleet.shards]
            result["survey"] = summarise_surveys(reports, time.perf_counter() - t0)
            if not args.json:
                for line in format_survey(result["survey"]):
                    print(line, file=out)
        if args.duration is not None:
            fleet.run(for_ms=scen.parse_duration(args.duration, "--for") * 1000)
        elif serving:
            stop = threading.Event()
            old = signal.signal(signal.SIGTERM, lambda *a: stop.set())
            try:
                while not stop.wait(0.2):
                    pass
            except KeyboardInterrupt:
                pass
            finally:
                signal.signal(signal.SIGTERM, old)
        result.update(fleet.stats())
    finally:
        fleet.stop()
    result["wall_s"] = round(time.perf_counter() - w0, 3)
    if args.json:
        print(json.dumps(result, indent=2, default=str), file=out)
    elif args.duration is not None or serving:
        fr = sum(s["frames"] for s in result["shards"])
        print("ran: %d frames on %d channels, injections %d applied, %d failed, %.1f s wall"
              % (fr, len(result["shards"]), result["injections"]["applied"],
                 result["injections"]["failed"], result["wall_s"]), file=out)
    return 0


def _range(ids):
    return ids[0] if len(ids) == 1 else "%s..%s" % (ids[0], ids[-1])


def summarise_surveys(reports, wall_s):
    """One summary of several shard surveys (fleet_survey.survey_shard dicts)."""
    out = {"shards": len(reports), "wall_s": round(wall_s, 3),
           "meters": sum(r["meters"] for r in reports),
           "found": sum(r.get("found", 0) for r in reports),
           "commissioned": sum(r.get("commissioned", 0) for r in reports),
           "read_ok": sum(r.get("read_ok", 0) for r in reports),
           "virtual_s_max": max((r.get("virtual_s", 0) for r in reports), default=0),
           "frames": sum(r.get("frames", 0) for r in reports)}
    hops = {}
    for r in reports:
        for h, n in r.get("hops", {}).items():
            hops[h] = hops.get(h, 0) + n
    out["hops"] = {str(k): hops[k] for k in sorted(hops, key=int)}
    return out


def format_survey(s):
    return ["survey: %d shards, %d meters: %d found (by hops %s), %d commissioned, %d read; "
            "%.1f s virtual (slowest shard), %.1f s wall, %d frames"
            % (s["shards"], s["meters"], s["found"],
               ", ".join("%s: %d" % kv for kv in s["hops"].items()) or "-",
               s["commissioned"], s["read_ok"], s["virtual_s_max"], s["wall_s"], s["frames"])]
