"""A fleet's topology (docs/fleet.md): ``generate_topology`` (N meters over
transformer areas shaped like tools/topologies/default.toml) and
``resolve_topology`` (a file, a shipped name or generated). Split out of
tools/fleet.py (which re-exports these names)."""
import os

from .fleet_config import FleetError, PER_TRANSFORMER
from .topology import Topology, TopologyError


# ---------------------------------------------------------------- topologies

# One transformer area after tools/topologies/default.toml: the cables, their
# share of the meters and where the meters sit (fractions of the length).
_LAYOUT = (
    # feeder, parent, at (fraction of parent), cable, length m, share, from, to
    ("F1", None, 0, "underground", 900.0, 0.40, 0.045, 0.98),
    ("F1a", "F1", 0.5, "service", 200.0, 0.08, 0.2, 0.95),
    ("F2", None, 0, "underground", 700.0, 0.24, 0.07, 0.97),
    ("F3", None, 0, "underground", 2800.0, 0.28, 0.14, 0.98),
)


def generate_topology(meters, seed=1, per_transformer=PER_TRANSFORMER, shards=None, rural=True,
                      start=None, name=None):
    """A topology for ``meters`` meters: ``shards`` transformers (default
    ceil(meters / per_transformer)), meters shared out evenly (m001, m002 ...
    in order, numbered across the whole fleet), each transformer with a DC on
    its busbar and the cables of the default topology, lengths varied ±15 %
    per transformer (seeded): F1 900 m underground with a 200 m service
    branch F1a, F2 700 m with an evening heat pump, F3 2.8 km rural (its far
    meters, past ~2.3 km, need a repeater; ``rural = false`` leaves F3 out),
    a daytime PV inverter on F1. Node ids: transformers T1 .. Tn, DCs "dc"
    (one transformer) or "dc-T1" ..."""
    import random
    if meters < 1:
        raise FleetError("a fleet needs at least one meter")
    if shards is None:
        shards = -(-meters // per_transformer)
    if shards > meters:
        raise FleetError("%d shards for %d meters: at most one shard per meter" % (shards, meters))
    width = max(3, len(str(meters)))
    layout = [x for x in _LAYOUT if rural or x[0] != "F3"]
    total_share = sum(x[5] for x in layout)
    d = {"name": name or "fleet-%d" % meters, "start": start or "2026-01-01T00:00:00Z",
         "grid": {"utc_offset_h": 1}, "transformer": [], "feeder": [], "node": [], "meters": [],
         "noise": []}
    k = 1
    for t in range(shards):
        tid = "T%d" % (t + 1)
        rng = random.Random("osgp-fleet/%s/topology/%d" % (seed, t))
        n = meters // shards + (1 if t < meters % shards else 0)
        d["transformer"].append({"id": tid})
        d["node"].append({"id": "dc" if shards == 1 else "dc-%s" % tid, "role": "dc",
                          "transformer": tid})
        fname = (lambda f: f) if shards == 1 else (lambda f, tid=tid: "%s-%s" % (tid, f))
        lengths = {}
        counts = []
        left = n
        for j, (f, parent, at, cable, length, share, a, b) in enumerate(layout):
            c = left if j == len(layout) - 1 else min(left, int(round(n * share / total_share)))
            counts.append(c)
            left -= c
        for (f, parent, at, cable, length, share, a, b), c in zip(layout, counts):
            L = round(length * rng.uniform(0.85, 1.15), 1) if f != "F3" else \
                round(length * rng.uniform(0.95, 1.1), 1)
            lengths[f] = L
            feeder = {"id": fname(f), "cable": cable, "length_m": L}
            if parent is None:
                feeder["transformer"] = tid
            else:
                feeder["parent"] = fname(parent)
                feeder["at_m"] = round(lengths[parent] * at, 1)
            d["feeder"].append(feeder)
            if c == 0:
                continue
            lo, hi = L * a, L * b
            pos = [round(lo + (hi - lo) * (i + 0.5) / c, 2) for i in range(c)]
            d["meters"].append({"feeder": fname(f), "positions": pos, "first": k, "width": width})
            k += c
        d["noise"].append({"id": "%s-heat-pump" % tid, "feeder": fname("F2"),
                           "at_m": round(lengths["F2"] * 0.75, 1), "level_dbuv": 95,
                           "carrier": "primary", "hours": [[17, 23]]})
        d["noise"].append({"id": "%s-pv" % tid, "feeder": fname("F1"),
                           "at_m": round(lengths["F1"] * 0.78, 1), "level_dbuv": 70,
                           "profile": [-60, -60, -60, -60, -60, -60, -20, -10, -5, -2, 0, 0,
                                       0, 0, 0, -2, -5, -10, -20, -60, -60, -60, -60, -60]})
    return Topology.from_dict(d, source="<generated: %d meters, %d transformers, seed %s>"
                              % (meters, shards, seed))


def resolve_topology(cfg):
    """The fleet's Topology (file, shipped name or generated)."""
    t = cfg.topology
    if isinstance(t, Topology):
        return t
    if t is None or t == "generate":
        if cfg.meters is None:
            raise FleetError("%s: give meters (a topology is generated for them) or a topology"
                             % cfg.source)
        start = None
        if cfg.start is not None:
            start = _rfc3339(cfg.start)
        return generate_topology(cfg.meters, cfg.seed, cfg.per_transformer, cfg.shards, cfg.rural,
                                 start)
    p = cfg.path(t, topology=True)
    if os.path.exists(p):
        return Topology.load(p)
    try:
        return Topology.named(str(t))
    except TopologyError:
        raise FleetError("%s: topology %r: no such file or shipped topology" % (cfg.source, t)) \
            from None


def _rfc3339(ms):
    import datetime
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
