"""`osgp-meter demo`: one transformer area, one data concentrator, 50
factory-fresh meters (some out of the DC's reach: tools/topologies/
default.toml), then discovery, commissioning, a round of reads (BT01 and
BT23 from every meter, through repeaters where needed), a printed summary
and a pcap that Wireshark/tshark decode (CN/IP on UDP 1628: the cnip and lon
dissectors). Deterministic for a seed: the same seed gives a byte-identical
pcap. Runs as fast as the CPU allows. docs/fleet.md, "The demo".

    from osgp_host.demo import run_demo
    res = run_demo(seed=1, pcap="demo.pcap")
    res["summary"], res["frames"]        # the figures; every frame as logged
"""
import json
import os
import sys
import time

DEFAULT_PCAP = "demo.pcap"
DEFAULT_TABLES = ("BT01", "BT23")


def frame_record(ev):
    """What the demo logs of a transmission: time, channel sender and the
    decoded addresses, PDU and code (the pcap test compares tshark's
    decode with these)."""
    from osgp_meter import lontalk as L
    rec = {"t_ms": ev.t_ms, "node": ev.src, "len": len(ev.frame)}
    try:
        f = L.decode(ev.frame)
    except L.FrameError as exc:
        rec["error"] = exc.reason
        return rec
    rec.update(prio=int(f.prio), alt=int(f.alt), backlog=f.backlog, version=f.version,
               pdu_fmt=f.pdu_fmt, addr_fmt=f.addr_fmt, src_subnet=f.src_subnet,
               src_node=f.src_node, dst_subnet=f.dst_subnet, dst_node=f.dst_node,
               group=f.group, member=f.member,
               neuron_id=None if f.neuron_id is None else bytes(f.neuron_id).hex(),
               domain=bytes(f.domain).hex(), l4=f.l4, tid=f.tid,
               code=None if not f.apdu else f.apdu[0])
    return rec


def run_demo(seed=1, topology="default", pcap=DEFAULT_PCAP, tables=DEFAULT_TABLES, meters=None,
             metering=True, progress=None, log=None):
    """Run the demo; returns {"summary": {...}, "frames": [frame records],
    "survey": the shard survey, "pcap": path}. ``log``: also write the frame
    records there (JSON lines)."""
    from . import crypto_backend
    from .fleet import Fleet
    from .fleet_survey import survey_shard
    crypto_backend.install()
    w0 = time.perf_counter()
    cfg = {"topology": topology, "seed": seed, "commission": "none", "metering": metering}
    if meters is not None:
        cfg["meters"] = meters
    if pcap:
        cfg["pcap"] = os.fspath(pcap)
    fleet = Fleet(cfg)
    fleet.build()
    if len(fleet.shards) != 1:
        fleet.stop(save=False)
        raise ValueError("the demo runs one transformer area; %s has %d"
                         % (topology, len(fleet.shards)))
    shard = fleet.shards[0]
    frames = []
    shard.channel.add_tracer(lambda ev: frames.append(frame_record(ev)) if ev.kind == "tx"
                             else None)
    build_s = time.perf_counter() - w0
    try:
        rep = survey_shard(fleet, shard, tables=tuple(tables), discover=True, progress=progress)
    finally:
        fleet.stop(save=False)
    wall = time.perf_counter() - w0
    ph = rep["phases"]
    summary = {
        "topology": fleet.topology.name or str(topology), "seed": seed,
        "meters": rep["meters"], "found": rep.get("found", 0), "hops": rep.get("hops", {}),
        "commissioned": rep.get("commissioned", 0),
        "discovery_s": ph.get("discovery", {}).get("virtual_s"),
        "commissioning_s": ph.get("commissioning", {}).get("virtual_s"),
        "reads_s": ph.get("reads", {}).get("virtual_s"),
        "tables": list(tables), "read_ok": rep["read_ok"], "read_failed": rep["read_failed"],
        "reads": rep["reads"], "virtual_s": rep["virtual_s"], "wall_s": round(wall, 3),
        "build_s": round(build_s, 3), "frames": rep["frames"],
        "collisions": rep["collisions"], "loss": rep["loss"], "loss_reasons": rep["loss_reasons"],
        "pcap": shard.pcap_path, "pcap_packets": len(frames) if pcap else 0}
    if log:
        with open(log, "w") as f:
            for r in frames:
                f.write(json.dumps(r, sort_keys=True) + "\n")
    return {"summary": summary, "frames": frames, "survey": rep, "pcap": shard.pcap_path}


def format_summary(s):
    hops = ", ".join("%s %d" % ("direct" if h == "0" else "%s hop%s" % (h, "" if h == "1" else "s"),
                                n)
                     for h, n in sorted(s["hops"].items(), key=lambda kv: int(kv[0])))
    lr = ", ".join("%s %d" % kv for kv in sorted(s["loss_reasons"].items())) or "none"
    lines = [
        "osgp-meter demo: topology %s, seed %s, %d meters, one data concentrator"
        % (s["topology"], s["seed"], s["meters"]),
        "  discovery      %d/%d meters found (%s) in %.1f s" % (
            s["found"], s["meters"], hops or "-", s["discovery_s"] or 0),
        "  commissioning  %d meters commissioned in %.1f s" % (
            s["commissioned"], s["commissioning_s"] or 0),
        "  reads          %s from every meter: %d/%d meters read in full (%s) in %.1f s" % (
            " and ".join(s["tables"]), s["read_ok"], s["meters"],
            ", ".join("%s %d" % kv for kv in s["reads"].items()), s["reads_s"] or 0),
        "  time           %.1f s virtual, %.2f s wall (%.0fx real time)" % (
            s["virtual_s"], s["wall_s"], s["virtual_s"] / s["wall_s"] if s["wall_s"] else 0),
        "  channel        %d frames, %d collisions, %d losses (%s)" % (
            s["frames"], s["collisions"], s["loss"], lr),
    ]
    if s["pcap"]:
        lines.append("  pcap           %s (%d packets): tshark -r %s -Y lon" % (
            s["pcap"], s["pcap_packets"], s["pcap"]))
    return lines


def add_parser(sub):
    d = sub.add_parser("demo", help="50 meters, one DC: discovery, commissioning, reads, a pcap",
                       description="One transformer area (tools/topologies/default.toml), one "
                                   "data concentrator, 50 factory-fresh meters (some behind "
                                   "repeaters): discovery, commissioning, BT01 and BT23 from "
                                   "every meter, a summary and a pcap for Wireshark.")
    d.add_argument("--seed", type=int, default=1, help="the seed (default 1): same seed, same run")
    d.add_argument("--topology", default="default", help="a one-transformer topology (default)")
    d.add_argument("--pcap", default=DEFAULT_PCAP, help="capture file (default demo.pcap); "
                   "'' for none")
    d.add_argument("--tables", default=",".join(DEFAULT_TABLES), help="what to read (BT01,BT23)")
    d.add_argument("--metering", choices=("on", "off"), default="on")
    d.add_argument("--log", metavar="FILE", help="write every frame, decoded, as JSON lines")
    d.add_argument("--json", action="store_true", help="the summary as JSON")
    return d


def run(args, out=None, err=None):
    out = out or sys.stdout
    err = err or sys.stderr
    tty = hasattr(err, "isatty") and err.isatty() and not args.json
    last = [0.0]

    def progress(phase, done, total):
        if not tty:
            return
        now = time.monotonic()
        if done == total or now - last[0] > 0.1:
            last[0] = now
            err.write("\r%-14s %d/%d " % (phase, done, total))
            err.flush()

    res = run_demo(args.seed, args.topology, args.pcap or None,
                   tuple(t.strip() for t in args.tables.split(",") if t.strip()),
                   metering=args.metering == "on", progress=progress, log=args.log)
    if tty:
        err.write("\r" + " " * 40 + "\r")
    s = res["summary"]
    if args.json:
        print(json.dumps(s, indent=2), file=out)
    else:
        print("\n".join(format_summary(s)), file=out)
    return 0 if s["read_ok"] == s["meters"] else 1
