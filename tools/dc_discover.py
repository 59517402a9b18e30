"""`osgp-meter dc --local discover`: discovery, commissioning and the
resulting topology of factory-fresh meters on a channel the DC hosts itself.

The meters of --topology start uncommissioned; the DC runs Automated Device
Discovery (through repeaters where needed), commissions every meter with
the Fast Commission Message and prints the map it built: each meter's
Neuron ID, address, repeater path, hop count and the weakest link's margin
(tools/dc_topology.py, docs/plc-repeating-and-discovery.md).
"""
import json
import sys
import time


def discover(topology="small", seed=1, progress=None):
    """Build a factory-fresh fleet on `topology`, form the network; returns
    (Discovery.summary(), names {Neuron ID hex: meter name}, wall seconds)."""
    from . import crypto_backend
    from . import dc_topology as T
    from .fleet import Fleet
    crypto_backend.install()
    w0 = time.perf_counter()
    fleet = Fleet({"topology": topology, "seed": seed, "commission": "none", "metering": False})
    fleet.build()
    try:
        shard = fleet.shards[0]
        scheme = fleet.scheme
        names = {scheme.neuron_id(k): mid for mid, k in zip(shard.meters, shard.indices)}
        disc = T.Discovery(shard.channel, shard.dc_id, factory_key=lambda nid: fleet.plc_key(nid),
                           names=names, book=shard.book)
        if progress is not None:
            progress("discovery", 0, len(shard.meters))
        disc.run(expected=len(shard.meters))
        summary = disc.summary()
        summary["meters_total"] = len(shard.meters)
        summary["virtual_s"] = round(shard.channel.sim.now_ms / 1000.0 - 0, 1)
    finally:
        fleet.stop(save=False)
    return summary, time.perf_counter() - w0


def run(args, out=None, err=None):
    out = out or sys.stdout
    err = err or sys.stderr
    if not args.local:
        print("osgp-meter: dc discover needs --local (a channel the DC hosts itself)", file=err)
        return 2
    topology = args.topology
    summary, wall = discover(topology, args.seed if args.seed is not None else 1,
                             None if args.quiet else
                             (lambda phase, done, total: print("%s ..." % phase, file=err, flush=True)))
    if getattr(args, "json", False):
        print(json.dumps(summary, sort_keys=True), file=out)
        return 0
    meters = summary["meters"]
    print("%-6s %-12s %-6s %-5s %-8s %s" % ("meter", "neuron id", "addr", "hops", "margin", "path"), file=out)
    for nid, m in sorted(meters.items(), key=lambda kv: kv[1]["name"] or kv[0]):
        print("%-6s %-12s %-6s %-5s %-8s %s" % (
            m["name"] or "?", nid, "%s/%s" % (m["subnet"], m["node"]) if m["commissioned"] else "-",
            m["hops"], "-" if m["margin_db"] is None else "%.1f dB" % m["margin_db"],
            " -> ".join(m["path"]) or "direct"), file=out)
    hops = ", ".join("%s: %d" % (h, n) for h, n in sorted(summary["hops"].items()))
    print("discovered %d of %d meters, commissioned %d (by hops %s); wall %.2f s"
          % (summary["discovered"], summary["meters_total"], summary["commissioned"], hops, wall), file=out)
    return 0 if summary["commissioned"] == summary["meters_total"] else 1
