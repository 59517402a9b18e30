"""Fleets: N virtual meters from one template profile, sharded per
transformer, reachable over CN/IP (host side, CPython). docs/fleet.md is the
reference.

    from osgp_host.fleet import Fleet
    fleet = Fleet({"meters": 600, "seed": 7, "metering": False})
    fleet.start()                        # builds the shards (in this process)
    ch = fleet.channel(0)                # shard 0's Channel (transformer T1)
    dc = fleet.dc(0)                     # a DC on it, with the meters' keys
    dc.read(fleet.shards[0].meters[0], "BT01")
    fleet.run(for_ms=60_000)             # every shard, one minute of virtual time
    fleet.stop()                         # pcap closed, state saved

* **Identity**: every meter's serial number, Neuron ID, PLC unicast key,
  MEP keys and load-model seed come from the fleet seed and its index
  (tools/fleet_identity.py); the catalogue and the template's table image
  are shared and immutable; a meter pays only for the tables it writes.
* **Shards**: one per transformer (Topology.shards()), each its own Channel
  with its own Simulator, seeds and virtual clock, independent of the
  others; several shards run in one process, several processes
  (multiprocessing) share a machine. ``cnip_port`` gives shard i a CN/IP
  gateway (tools/cnip_gateway.py) on UDP port base + i.
* **Injections**: ``[[inject]]`` entries of the fleet config apply the
  scenario actions of tools/scenario.py to selected meters (``meters =
  "1-20" | "random:5%" | ...``) at their times; a power-off also takes the
  meter off the line.
* **Topology**: a file or shipped name, or generated for N meters
  (``generate_topology``): transformers of at most ``per_transformer``
  meters, each with the feeders of the default topology, its rural feeder's
  far end beyond the DC's range (repeaters needed).
"""
import heapq
import json
import os
import sys
import threading
import time

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

from osgp_meter import access

from . import fleet_identity as fid
from . import scenario as scen
from .sim import DEFAULT_START_MS
from .topology import Topology, TopologyError

BT01 = 1
ET03 = 2048 + 3
DEFAULT_DOMAIN = b"\x42"
PER_TRANSFORMER = 250
STATE_VERSION = "2"        # the --state database's format (tools/fleet_db.py)


class FleetError(ValueError):
    """A fleet configuration that cannot be used; the message names the key."""


# ---------------------------------------------------------------- configuration

FLEET_KEYS = {
    "meters": "number of meters (default: every meter position of the topology)",
    "topology": "a topology file or shipped name; none or \"generate\": generated",
    "profile": "the template device profile (TOML)",
    "seed": "the fleet seed: identities, channel seeds, injections, a generated topology",
    "metering": "true/false: run the meters' time-based subsystems (default: the profile's)",
    "commission": "\"direct\" (addresses set at build) or \"none\" (factory-fresh, for discovery)",
    "domain": "the domain ID (hex) of direct commissioning",
    "speed": "\"max\" or a factor of real time",
    "shards": "number of transformers of a generated topology",
    "per_transformer": "meters per transformer of a generated topology (default 250)",
    "rural": "a generated transformer has a rural feeder beyond the DC's range (default true)",
    "processes": "worker processes (default 1: the shards run in this process)",
    "cnip_port": "UDP port of shard 0's CN/IP gateway; shard i gets port + i",
    "cnip_host": "address the CN/IP gateways bind (default 127.0.0.1)",
    "pcap": "capture file; with several shards one file per shard (FILE.T1.pcap ...)",
    "state": "an SQLite file keeping every meter's non-volatile state across runs",
    "start": "virtual start (RFC 3339), overriding the topology's",
}
IDENTITY_KEYS = ("neuron_prefix", "serial_base", "broadcast_key", "utility_prefix", "keys")
INJECT_KEYS = ("meters", "spread")


def _hint(key, known):
    import difflib
    near = difflib.get_close_matches(key, list(known), n=1)
    return " (did you mean %r?)" % near[0] if near else ""


class FleetConfig:
    """A checked fleet configuration (see docs/fleet.md). Build it from a
    TOML file (``load``), a dict shaped like the file (``from_dict``: keys of
    [fleet] at the top level or under "fleet", plus "identity" and "inject")
    or keyword arguments; ``to_dict()`` gives it back (what worker processes
    get)."""

    def __init__(self, **kw):
        self.source = kw.pop("source", "<fleet config>")
        self.base_dir = kw.pop("base_dir", None)
        identity = kw.pop("identity", None) or {}
        inject = kw.pop("inject", None) or []
        for k in kw:
            if k not in FLEET_KEYS:
                raise FleetError("%s: unknown key %r%s" % (self.source, k, _hint(k, FLEET_KEYS)))
        src = self.source
        self.meters = _opt_int(kw.get("meters"), "%s: meters" % src, 1)
        self.topology = kw.get("topology")
        if self.topology is not None and not isinstance(self.topology, (str, os.PathLike, Topology)):
            raise FleetError("%s: topology: a file, a shipped name or \"generate\"" % src)
        self.profile = kw.get("profile")
        self.seed = kw.get("seed", 1)
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, str)):
            raise FleetError("%s: seed: an integer" % src)
        self.metering = kw.get("metering")
        if self.metering is not None and not isinstance(self.metering, bool):
            raise FleetError("%s: metering: true or false" % src)
        self.commission = kw.get("commission", "direct")
        if self.commission not in ("direct", "none"):
            raise FleetError("%s: commission: \"direct\" or \"none\"" % src)
        dom = kw.get("domain", DEFAULT_DOMAIN)
        if isinstance(dom, str):
            try:
                dom = bytes.fromhex(dom)
            except ValueError:
                raise FleetError("%s: domain: hex, e.g. \"42\"" % src) from None
        if len(dom) not in (0, 1, 3, 6):
            raise FleetError("%s: domain: 0, 1, 3 or 6 bytes" % src)
        self.domain = bytes(dom)
        try:
            self.speed = scen.parse_speed(kw.get("speed"), "%s: speed" % src)
        except scen.ScenarioError as exc:
            raise FleetError(str(exc)) from None
        self.speed_given = kw.get("speed") is not None
        self.shards = _opt_int(kw.get("shards"), "%s: shards" % src, 1)
        self.per_transformer = _opt_int(kw.get("per_transformer"), "%s: per_transformer" % src, 1) \
            or PER_TRANSFORMER
        self.rural = kw.get("rural", True)
        if not isinstance(self.rural, bool):
            raise FleetError("%s: rural: true or false" % src)
        self.processes = _opt_int(kw.get("processes"), "%s: processes" % src, 1) or 1
        self.cnip_port = _opt_int(kw.get("cnip_port"), "%s: cnip_port" % src, 0, 65535)
        self.cnip_host = kw.get("cnip_host", "127.0.0.1")
        self.pcap = kw.get("pcap")
        self.state = kw.get("state")
        self.start = kw.get("start")
        if self.start is not None:
            try:
                self.start = scen.parse_time(self.start, "%s: start" % src) * 1000
            except scen.ScenarioError as exc:
                raise FleetError(str(exc)) from None
        for k in identity:
            if k not in IDENTITY_KEYS:
                raise FleetError("%s: [identity] unknown key %r%s" % (src, k, _hint(k, IDENTITY_KEYS)))
        self.identity = dict(identity)
        self.keys = identity.get("keys", "derived")
        if self.keys not in ("derived", "template"):
            raise FleetError("%s: [identity] keys: \"derived\" (per meter) or \"template\" "
                             "(the profile's, for every meter)" % src)
        try:
            prefix = bytes.fromhex(str(identity.get("neuron_prefix", fid.NEURON_PREFIX.hex())))
            self.scheme = fid.IdentityScheme(
                self.seed, prefix, identity.get("serial_base"),
                identity.get("broadcast_key", "shard"), identity.get("utility_prefix", "EMU-"))
        except ValueError as exc:
            raise FleetError("%s: [identity] %s" % (src, exc)) from None
        if not isinstance(inject, list):
            raise FleetError("%s: [[inject]] must be a list of tables" % src)
        self.inject = []
        for i, e in enumerate(inject):
            where = "%s: [[inject]] #%d" % (src, i + 1)
            if not isinstance(e, dict):
                raise FleetError("%s: expected a table" % where)
            if "meters" not in e:
                raise FleetError("%s: needs meters = \"1-20\" | \"random:5%%\" | ..." % where)
            rest = {k: v for k, v in e.items() if k not in INJECT_KEYS}
            try:
                action = scen.parse_entry(rest, where)
                spread = scen.parse_duration(e["spread"], "%s: spread" % where) if "spread" in e else 0
            except scen.ScenarioError as exc:
                raise FleetError(str(exc)) from None
            self.inject.append((dict(e), action, spread, where))

    @classmethod
    def load(cls, path):
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise FleetError("%s: no such fleet config" % path) from None
        except tomllib.TOMLDecodeError as exc:
            raise FleetError("%s: not valid TOML: %s" % (path, exc)) from None
        return cls.from_dict(data, source=str(path),
                             base_dir=os.path.dirname(os.path.abspath(path)))

    @classmethod
    def from_dict(cls, data, source="<fleet config>", base_dir=None, **overrides):
        data = dict(data)
        for k in data:
            if k not in ("fleet", "identity", "inject") and "fleet" in data:
                raise FleetError("%s: unknown section %r (expected [fleet], [identity], "
                                 "[[inject]])" % (source, k))
        flat = dict(data.pop("fleet", {}))
        flat.update({k: v for k, v in data.items() if k not in ("identity", "inject")})
        flat.update({k: v for k, v in overrides.items() if v is not None})
        return cls(source=source, base_dir=base_dir, identity=data.get("identity"),
                   inject=data.get("inject"), **flat)

    def to_dict(self):
        """The configuration as a dict from_dict takes (paths made absolute)."""
        d = {}
        for k in FLEET_KEYS:
            v = getattr(self, k, None)
            if v is None:
                continue
            if k == "speed":
                v = v if v is not None else "max"
            elif k == "domain":
                v = v.hex()
            elif k == "start":
                v = v // 1000
            elif k in ("topology", "profile", "pcap", "state") and isinstance(v, (str, os.PathLike)):
                v = self.path(v, k == "topology")
            elif isinstance(v, Topology):
                raise FleetError("a Topology object cannot go to another process; give a file")
            d[k] = v
        if self.speed is None:
            d["speed"] = "max"
        d["identity"] = dict(self.identity)
        d["inject"] = [dict(e) for e, _, _, _ in self.inject]
        return d

    def path(self, p, topology=False):
        """A path of the config, relative to the config file's folder."""
        p = os.fspath(p)
        if topology and p == "generate":
            return p
        if self.base_dir and not os.path.isabs(p):
            cand = os.path.join(self.base_dir, p)
            if os.path.exists(cand) or not topology:
                return cand
        return p


def _opt_int(v, what, lo=None, hi=None):
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        try:
            v = int(str(v), 0)
        except ValueError:
            raise FleetError("%s: a whole number" % what) from None
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise FleetError("%s: %d is out of range %s..%s" % (what, v, lo, hi))
    return v


def coerce_config(config=None, **overrides):
    """FleetConfig from None, a FleetConfig, a TOML path or a dict."""
    if isinstance(config, FleetConfig):
        if overrides:
            d = config.to_dict()
            return FleetConfig.from_dict(d, source=config.source, base_dir=config.base_dir,
                                         **overrides)
        return config
    if config is None:
        return FleetConfig.from_dict({}, source="<fleet>", **overrides)
    if isinstance(config, (str, os.PathLike)):
        c = FleetConfig.load(config)
        return coerce_config(c, **overrides) if overrides else c
    if isinstance(config, dict):
        return FleetConfig.from_dict(config, **overrides)
    raise FleetError("a fleet config is a dict, a TOML file or a FleetConfig")


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


# ---------------------------------------------------------------- the meter node

class FleetMeter:
    """A fleet meter on its shard's channel: the firmware's PLC node, the
    meter's own time-based work (fw.tick at its deadlines) and its pending
    injections (a heap of (driver ms, seq, Action, repeats left), None when
    there are none)."""

    __slots__ = ("fw", "plc", "due", "inj", "shard", "id", "served")

    def __init__(self, fw, now_ms, shard, node_id):
        self.fw = fw
        self.plc = fw.plc
        self.due = fw.tick(now_ms)
        self.inj = None
        self.shard = shard
        self.id = node_id
        # with --state: requests the OSGP layer had executed at the last commit
        self.served = None if fw.nv is None else -1
        if fw.nv is not None:
            self.commit()

    def commit(self):
        """Commit (docs/persistence.md) when the meter executed a request or
        changed a table since the last commit: before its answer leaves."""
        fw = self.fw
        osgp = self.plc.osgp
        n = osgp.stats[0] if osgp is not None else 0
        if n != self.served or fw.meter.store.dirty:
            self.served = n
            fw.commit()

    @property
    def deadline(self):
        d = self.plc.deadline
        u = self.due
        if u is not None and (d is None or u < d):
            d = u
        if self.inj:
            t = self.inj[0][0]
            if d is None or t < d:
                d = t
        return d

    def receive(self, frame, now_ms, rssi_db=None, snr_db=None):
        out = self.plc.receive(frame, now_ms, rssi_db, snr_db)
        # a request may have scheduled work (a pending table's activation
        # second, docs/pending-tables.md): ask the meter again when to wake it
        self.due = self.fw.tick(now_ms)
        if self.served is not None:
            self.commit()
        return out

    def poll(self, now_ms):
        if self.inj and self.inj[0][0] <= now_ms:
            self.shard.fleet._apply_due(self, now_ms)
        if self.due is not None and self.due <= now_ms:
            self.due = self.fw.tick(now_ms)
        out = self.plc.poll(now_ms)
        if self.served is not None:
            self.commit()
        return out

    def on_sent(self, frame, now_ms):
        return self.plc.on_sent(frame, now_ms)

    def push(self, t_ms, seq, action, left):
        if self.inj is None:
            self.inj = []
        heapq.heappush(self.inj, (t_ms, seq, action, left))


def _actions_class():
    """tools/simulate.Simulation's action code, applied to one fleet meter
    (built lazily: simulate imports plotting helpers)."""
    from .simulate import Simulation
    from osgp_meter import device

    class MeterActions(Simulation):
        def __init__(self, fm, now_ms, fleet):
            fw = fm.fw
            self.fw = fw
            self.meter = fw.meter
            self.now = now_ms
            self.start = fleet.start_ms
            self.config = fleet.template
            self.log = []
            self.reads = []
            self.recorder = None
            self.speed = None
            self.state_dir = None
            self._fm = fm
            self._fleet = fleet
            self._limits = {"mep": device.MEP_LIMITS, "plc": fw.plc_limits,
                            "optical": device.PortLimits("optical", 4096, 4096, 2)}

        def _push(self, t_ms, action, left=None):
            if left is None and action.every is not None:
                left = action.times
            self._fleet._seq += 1
            self._fm.push(t_ms, self._fleet._seq, action, left)

        def power(self, on):
            super().power(on)
            self._fleet._set_line(self._fm, bool(on))

    return MeterActions


# ---------------------------------------------------------------- shards

class Shard:
    """One transformer area: its Channel (own Simulator, seeds and virtual
    clock), its meters and their fleet indices, the DC position, and the
    CN/IP gateway when the fleet has one."""

    def __init__(self, fleet, index, topology, start_ms):
        from .channel import Channel
        from osgp_meter.plc_node import AddressBook
        self.fleet = fleet
        self.index = index
        self.topology = topology
        self.id = topology.transformers[0].id
        self.seed = fid._u32(fleet.config.seed, "channel/%s" % self.id)
        self.channel = Channel(topology, self.seed, start_ms=start_ms)
        self.sim = self.channel.sim
        self.dc_id = next((n.id for n in topology.nodes if n.role == "dc"), None)
        self.book = AddressBook()
        self.meters = []            # node ids, in fleet order
        self.indices = []           # their fleet indices (1-based)
        self.gateway = None
        self.port = None
        self.pcap = None
        self.pcap_path = None
        if self.dc_id is not None:
            self.book.always.append(self.dc_id)
        self.channel.address_filter = self.book.filter

    def node(self, meter_id):
        return self.channel.node(meter_id)

    def firmware(self, meter_id):
        return self.channel.node(meter_id).fw

    def addresses(self):
        """{meter id: (subnet, node)} of the configured meters (their PLC
        node's domain entry 0)."""
        out = {}
        for mid in self.meters:
            a = self.channel.node(mid).plc.address()
            if a is not None:
                out[mid] = (a[1], a[2])
        return out

    def stats(self):
        ch = self.channel
        return {"shard": self.id, "index": self.index, "meters": len(self.meters),
                "virtual_ms": ch.sim.now_ms, "events": ch.sim.events_run,
                "frames": ch.stats["tx"], "deliveries": ch.stats["deliveries"],
                "collisions": ch.stats["collisions"], "loss": ch.stats["loss"],
                "loss_reasons": dict(ch.loss_reasons),
                "cnip": None if self.port is None else "%s:%d" % (self.fleet.config.cnip_host,
                                                                  self.port),
                "pcap": self.pcap_path}

    def __repr__(self):
        return "<Shard %d %s: %d meters>" % (self.index, self.id, len(self.meters))


def shard_address(k):
    """(subnet, node) of the k-th meter (1-based) of a shard under direct
    commissioning: 1/1 .. 1/100, 2/1 ... (the DC is 1/126), as
    osgp_host.dc.LocalFleet does."""
    return 1 + (k - 1) // 100, 1 + (k - 1) % 100


# ---------------------------------------------------------------- the fleet

class Fleet:
    """N meters from one template, sharded per transformer (module docstring).

    ``Fleet(config, **overrides)``: config is a FleetConfig, a TOML path, a
    dict (docs/fleet.md) or None; overrides are [fleet] keys (meters=...,
    seed=...). ``only``: build just these shard indices (worker processes).

    | member | |
    |---|---|
    | ``start()`` | build the shards (processes = 1) and, when paced (a finite speed, or CN/IP), run them in a background thread; processes > 1: start the workers |
    | ``run(until_ms=None, for_ms=None)`` | run every in-process shard as fast as possible (each to the same driver time) |
    | ``stop()`` | stop the loop or the workers, close gateways and captures, save the state |
    | ``meters`` | every meter id, in fleet order (index k = position + 1) |
    | ``shards`` | the in-process Shard objects |
    | ``channel(shard)`` / ``shard(s)`` | by index, transformer id or meter id |
    | ``firmware(meter)`` / ``node(meter)`` | a meter's Firmware / FleetMeter |
    | ``identity(meter)`` | its Identity (by id, index or Neuron ID) |
    | ``key_for(target)`` | the PLC unicast key of a DC Target (what ``DC(keys=...)`` takes) |
    | ``dc(shard, **kw)`` | a DC on a shard's channel with the meters' keys and names |
    | ``stats()`` | per shard: frames, losses, virtual time; injections |
    | ``log`` | the injections applied: (driver ms, meter id, what, outcome) |
    """

    def __init__(self, config=None, only=None, **overrides):
        from . import profile as profiles
        self.config = cfg = coerce_config(config, **overrides)
        self.topology = topo = resolve_topology(cfg)
        positions = [n.id for n in topo.nodes if n.role == "meter"]
        if cfg.meters is not None:
            if cfg.meters > len(positions):
                raise FleetError("%s: %d meters, but the topology %s has %d meter positions"
                                 % (cfg.source, cfg.meters, topo.name or topo.source,
                                    len(positions)))
            positions = positions[:cfg.meters]
        self.meters = positions
        self._index = {mid: k + 1 for k, mid in enumerate(positions)}
        self.transformer_of = {n.id: n.transformer for n in topo.nodes}
        self.transformers = [tr.id for tr in topo.transformers]
        if cfg.shards is not None and cfg.topology not in (None, "generate") \
                and cfg.shards != len(self.transformers):
            raise FleetError("%s: shards = %d, but the topology has %d transformers"
                             % (cfg.source, cfg.shards, len(self.transformers)))
        self.scheme = cfg.scheme
        start = cfg.start if cfg.start is not None else (
            topo.start_ms if topo.start_ms is not None else DEFAULT_START_MS)
        self.start_ms = start
        data = profiles.load(cfg.profile and cfg.path(cfg.profile))
        tmpl = profiles.to_config(data)
        if not data.get("clock", {}).get("start"):
            tmpl["clock"] = start // 1000
        if cfg.metering is not None:
            tmpl["metering"] = cfg.metering
        self.template = tmpl
        self.metering = bool(tmpl.get("metering"))
        self._bt01 = bytes(tmpl["image"].get(BT01, bytes(24)))
        self._et03 = ET03 in tmpl["image"]
        self.log = []
        self.inject_stats = {"applied": 0, "failed": 0}
        self._seq = 0
        self._bcast_keys = {}
        self._actions = None
        self.shards = []
        self._by_id = {}
        self._only = None if only is None else set(only)
        self._thread = None
        self._stop = threading.Event()
        self._workers = []
        self._built = False
        self._db = None
        try:
            self._selections = [fid.select(e["meters"], self.meters, cfg.seed, where,
                                           self.transformer_of)
                                for e, _, _, where in cfg.inject]
        except fid.SelectionError as exc:
            raise FleetError(str(exc)) from None
        # shard topologies, in transformer order; which process runs which
        self._shard_topos = topo.shards() if len(topo.transformers) > 1 else [topo]
        self.shard_ids = [s.transformers[0].id for s in self._shard_topos]
        self.assignment = [i % cfg.processes for i in range(len(self._shard_topos))]
        self.remote = cfg.processes > 1 and only is None

    # -- building ------------------------------------------------------------------
    def build(self):
        """Build the in-process shards (idempotent; nothing when worker
        processes run them)."""
        if self._built or self.remote:
            return self
        self._built = True
        import gc
        was = gc.isenabled()
        gc.disable()            # a bulk build: the cyclic collector would rescan it again and again
        try:
            self._build()
        finally:
            if was:
                gc.enable()
        return self

    def _build(self):
        cfg = self.config
        saved_ms = {}
        if cfg.state:
            from .fleet_db import FleetDB, FleetDBError
            self._db = FleetDB(cfg.path(cfg.state))
            try:
                self._db.check_fleet({"seed": str(cfg.seed), "meters": str(len(self.meters)),
                                      "version": STATE_VERSION})
            except FleetDBError as exc:
                self._db.close()
                self._db = None
                raise FleetError(str(exc)) from None
            saved_ms = self._db.shard_times()
        wanted = set(self.meters)
        # injections: per meter index, [(t_ms, Action)]
        plan = {}
        for (e, action, spread, where), sel in zip(cfg.inject, self._selections):
            t0 = scen.resolve([action], self.start_ms // 1000)[0][0] * 1000
            rng = fid._rng(cfg.seed, "spread/%s" % where) if spread else None
            for k in sel:
                dt = rng.randrange(spread * 1000) if rng is not None else 0
                plan.setdefault(k, []).append((t0 + dt, action))
        for i, stopo in enumerate(self._shard_topos):
            if self._only is not None and i not in self._only:
                continue
            sh = Shard(self, i, stopo, saved_ms.get(self.shard_ids[i], self.start_ms))
            now = sh.sim.now_ms
            local = 0
            for spec in stopo.nodes:
                if spec.id not in wanted:
                    continue
                local += 1
                k = self._index[spec.id]
                fm = self._make_meter(sh, spec.id, k, local, now)
                for t, action in plan.get(k, ()):
                    if t >= now:
                        self._seq += 1
                        left = action.times if action.every is not None else None
                        fm.push(t, self._seq, action, left)
                sh.channel.attach(spec.id, fm)
                sh.book.add(spec.id, fm.plc)
                sh.meters.append(spec.id)
                sh.indices.append(k)
            self.shards.append(sh)
            self._by_id[sh.id] = sh
            self._by_id[i] = sh
        if cfg.pcap:
            for sh in self.shards:
                self._open_pcap(sh)
        return self

    def _make_meter(self, sh, mid, k, local, now):
        from osgp_meter.firmware import Firmware
        ident = self.scheme.identity(k, sh.id)
        tmpl = self.template
        keys = dict(tmpl["keys"])
        if self.config.keys == "derived":
            keys[access.ROLE_PLC] = ident.plc_key
            keys[access.ROLE_MAK] = ident.mak
            keys[access.ROLE_MBK] = ident.mbk
        keys[access.ROLE_BCAST] = self._bcast(ident, sh.id)
        c = dict(tmpl, keys=keys, seed=ident.load_seed, plc=True, neuron_id=ident.neuron_id)
        if self.config.commission == "direct":
            s, n = shard_address(local)
            c["plc_domain"] = self.config.domain
            c["plc_subnet"] = s
            c["plc_node"] = n
        if self._db is None:
            fw = Firmware(c, now)
            _own_identity(fw, ident, self._bt01, self._et03)
        else:
            db = self._db

            def restore(fw):
                # the saved state, through the firmware's restore hook: before
                # the PLC node, the features and the metering read it
                _own_identity(fw, ident, self._bt01, self._et03)
                db.open_meter(k, mid, fw)
            # code-bank bytes in the database too: a download resumes after a cut
            fw = Firmware(dict(c, restore=restore, bank_storage=db.bank_storage(k)), now)
        _enable_network(fw.plc)
        return FleetMeter(fw, now, sh, mid)

    def _open_pcap(self, sh):
        from .pcap import PcapWriter
        path = self.config.path(self.config.pcap)
        if len(self._shard_topos) > 1:
            stem, ext = os.path.splitext(path)
            path = "%s.%s%s" % (stem, sh.id, ext or ".pcap")
        sh.pcap = PcapWriter(path)
        sh.pcap_path = path
        sh.channel.add_tracer(pcap_tracer(sh.pcap, sh.channel))

    # -- lookups ------------------------------------------------------------------------
    def shard(self, s):
        """A Shard by index, transformer id or meter id."""
        if isinstance(s, Shard):
            return s
        if self.remote:
            raise FleetError("shard %r runs in another process (processes = %d): reach it over "
                             "CN/IP" % (s, self.config.processes))
        self.build()
        sh = self._by_id.get(s)
        if sh is None and s in self.transformer_of:
            sh = self._by_id.get(self.transformer_of[s])
        if sh is None:
            if isinstance(s, int) and 0 <= s < len(self._shard_topos) or s in self.shard_ids:
                raise FleetError("shard %r runs in another process" % (s,))
            raise FleetError("no shard %r (transformers: %s)" % (s, ", ".join(self.shard_ids[:12])))
        return sh

    def channel(self, shard):
        return self.shard(shard).channel

    def node(self, meter):
        mid = self._meter_id(meter)
        return self.shard(mid).channel.node(mid)

    def firmware(self, meter):
        return self.node(meter).fw

    def index(self, meter):
        """The fleet index k (1-based) of a meter id, index or Neuron ID."""
        if isinstance(meter, int) and not isinstance(meter, bool):
            if not 1 <= meter <= len(self.meters):
                raise FleetError("meter index %d outside 1-%d" % (meter, len(self.meters)))
            return meter
        if isinstance(meter, (bytes, bytearray)):
            k = self.scheme.index_of_neuron_id(meter)
            if k is None or not 1 <= k <= len(self.meters):
                raise FleetError("Neuron ID %s is not one of this fleet's" % bytes(meter).hex())
            return k
        k = self._index.get(meter)
        if k is None:
            raise FleetError("no meter %r in the fleet" % (meter,))
        return k

    def _meter_id(self, meter):
        return self.meters[self.index(meter) - 1]

    def identity(self, meter):
        """A meter's Identity (by id, index or Neuron ID), with the keys it
        really holds (the template's when [identity] keys = "template")."""
        k = self.index(meter)
        tr = self.transformer_of[self.meters[k - 1]]
        ident = self.scheme.identity(k, tr)
        if self.config.keys == "template":
            tk = self.template["keys"]
            ident.plc_key = tk.get(access.ROLE_PLC)
            ident.mak = tk.get(access.ROLE_MAK)
            ident.mbk = tk.get(access.ROLE_MBK)
        ident.bcast_key = self._bcast(ident, tr)
        return ident

    def inventory(self):
        """One dict per meter, in fleet order, without building anything:
        index, id, transformer (shard), its CN/IP port, the address direct
        commissioning gives it, and its identity (hex keys)."""
        cfg = self.config
        local = {}
        for k, mid in enumerate(self.meters, 1):
            tr = self.transformer_of[mid]
            si = self.shard_ids.index(tr)
            n = local[tr] = local.get(tr, 0) + 1
            d = {"index": k, "id": mid, "transformer": tr, "shard": si,
                 "cnip_port": None if cfg.cnip_port in (None, 0) else cfg.cnip_port + si}
            if cfg.commission == "direct":
                d["address"] = "%d/%d" % shard_address(n)
                d["domain"] = cfg.domain.hex()
            ident = self.identity(k).as_dict()
            ident.pop("index")
            d.update(ident)
            yield d

    def write_inventory(self, path):
        """The inventory as CSV (a head-end's import file)."""
        import csv
        rows = list(self.inventory())
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        return len(rows)

    def key_for(self, target):
        """The PLC unicast key (factory, as derived) of a DC Target (Neuron
        ID or subnet/node on an in-process shard); None when unknown."""
        nid = getattr(target, "neuron_id", None)
        if nid is not None:
            k = self.scheme.index_of_neuron_id(nid)
            return self.plc_key(k) if k is not None and 1 <= k <= len(self.meters) else None
        sn = (target.subnet, target.node) if hasattr(target, "subnet") else tuple(target)
        for sh in self.shards:
            for mid, k in zip(sh.meters, sh.indices):
                a = sh.channel.node(mid).plc.address()
                if a is not None and (a[1], a[2]) == sn:
                    return self.plc_key(k)
        return None

    def plc_key(self, meter):
        """A meter's factory PLC unicast key (derived, or the template's)."""
        if self.config.keys == "template":
            return self.template["keys"].get(access.ROLE_PLC)
        return self.scheme.plc_key(self.index(meter))

    def _bcast(self, ident, shard_id):
        if self.scheme.broadcast == "meter":
            return ident.bcast_key
        key = self._bcast_keys.get(shard_id)
        if key is None:
            key = self._bcast_keys[shard_id] = self.scheme.broadcast_key(ident.index, shard_id)
        return key

    def keys_of(self, shard):
        """A DC ``keys`` callable for one shard (subnet/node looked up in that
        shard only, Neuron IDs by inverting the derivation)."""
        sh = self.shard(shard)
        cache = {}

        def keys(target):
            nid = getattr(target, "neuron_id", None)
            if nid is not None:
                k = self.scheme.index_of_neuron_id(nid)
                return self.plc_key(k) if k is not None and 1 <= k <= len(self.meters) \
                    else None
            sn = (target.subnet, target.node)
            if sn not in cache:
                cache.clear()
                for mid, k in zip(sh.meters, sh.indices):
                    a = sh.channel.node(mid).plc.address()
                    if a is not None:
                        cache[(a[1], a[2])] = k
            k = cache.get(sn)
            return None if k is None else self.plc_key(k)
        return keys

    def dc(self, shard=0, **kw):
        """A DC (osgp_host.dc.DC) at the shard's DC position, with the
        meters' derived keys, their names and the fleet's domain."""
        from .dc import DC
        sh = self.shard(shard)
        if sh.dc_id is None:
            raise FleetError("shard %s has no DC position" % sh.id)
        kw.setdefault("keys", self.keys_of(sh))
        kw.setdefault("names", sh.addresses())
        kw.setdefault("domain", self.config.domain)
        # meters in AES mode ([security] mode = "aes": ET04.127 = 2) need an AES DC
        kw.setdefault("aes", self.template["image"].get(2048 + 4, b"")[127:128] == b"\x02")
        return DC(sh.channel, kw.pop("node_id", sh.dc_id), **kw)

    # -- injections ----------------------------------------------------------------------
    def _apply_due(self, fm, now_ms):
        if self._actions is None:
            self._actions = _actions_class()
        q = fm.inj
        while q and q[0][0] <= now_ms:
            t, _, a, left = heapq.heappop(q)
            act = self._actions(fm, t, self)
            try:
                outcome = act.apply(a, t)
                self.inject_stats["applied"] += 1
            except (ValueError, KeyError) as exc:    # SimulationError, a refused action
                outcome = "FAILED: %s" % exc
                self.inject_stats["failed"] += 1
            self.log.append((t, fm.id, a.describe(), outcome))
            if a.every is not None and (left is None or left > 1):
                self._seq += 1
                fm.push(t + a.every * 1000, self._seq, a, None if left is None else left - 1)
        if not q:
            fm.inj = None
        fm.due = fm.fw.tick(now_ms)

    def _set_line(self, fm, on):
        """A meter without supply is off the line (and back on with it)."""
        ch = fm.shard.channel
        i = ch.index[fm.id]
        off = ch.off_count[i] > 0
        if off == (not on):
            return
        # The channel's own offline switch (also used by its offline faults).
        ch._set_offline(i, not on)

    # -- running ---------------------------------------------------------------------------
    @property
    def paced(self):
        return self.config.speed is not None or self.config.cnip_port is not None

    def start(self):
        """Build and start (see the class docstring). Returns self."""
        cfg = self.config
        if self.remote:
            if not self._workers:
                self._start_workers()
            return self
        self.build()
        if cfg.cnip_port is not None:
            from .cnip_gateway import CnipGateway
            for sh in self.shards:
                if sh.gateway is not None:
                    continue
                if sh.dc_id is None:
                    raise FleetError("shard %s has no DC position for its CN/IP gateway" % sh.id)
                sh.port = cfg.cnip_port + sh.index if cfg.cnip_port else 0
                sh.gateway = CnipGateway(sh.channel, sh.dc_id, host=cfg.cnip_host, port=sh.port,
                                         session=fid._u32(cfg.seed, "cnip/%s" % sh.id))
                sh.port = sh.gateway.address[1]
                sh.gateway.start()
        if self.paced and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="fleet", daemon=True)
            self._thread.start()
        return self

    def _loop(self, until_ms=None):
        """Run every shard paced at `speed` times real time (1 with CN/IP
        and no speed): each shard's simulator steps to the common target."""
        speed = self.config.speed or 1.0
        sims = [sh.sim for sh in self.shards]
        w0 = time.monotonic()
        v0 = [s.now for s in sims]
        while not self._stop.is_set():
            el = int((time.monotonic() - w0) * speed * 1e6)
            done = True
            for s, v in zip(sims, v0):
                target = v + el
                if until_ms is not None:
                    target = min(target, s.us_of_ms(until_ms))
                    done = done and target >= s.us_of_ms(until_ms)
                else:
                    done = False
                s.run(until=target)
            if until_ms is not None and done:
                return
            nxt = [s.next_time() for s in sims]
            nxt = [t - v for t, v in zip(nxt, v0) if t is not None]
            wait = 0.005
            if nxt:
                wait = min(wait, max(0.0, min(nxt) / (speed * 1e6) - (time.monotonic() - w0)))
            self._stop.wait(wait if wait > 0 else 0)

    def run(self, until_ms=None, for_ms=None):
        """Run every in-process shard as fast as possible (independently) up
        to driver time until_ms, or for_ms more virtual ms. Paced fleets
        (speed set) run at their speed. Returns self."""
        if self.remote:
            if not self._workers:
                self.start()
            if for_ms is not None:
                until_ms = max(s["virtual_ms"] for s in self.stats()["shards"]) + int(for_ms)
            if until_ms is None:
                raise FleetError("run(): give until_ms or for_ms")
            self.call_workers("run", until_ms)
            return self
        self.build()
        if for_ms is not None:
            until_ms = max(sh.sim.now_ms for sh in self.shards) + int(for_ms) if self.shards else None
        if until_ms is None:
            raise FleetError("run(): give until_ms or for_ms")
        if self._thread is not None:            # paced in the background: wait for it
            while self._thread.is_alive() and min(sh.sim.now_ms for sh in self.shards) < until_ms:
                time.sleep(0.02)
            return self
        if self.config.speed is not None:
            self._stop.clear()
            self._loop(until_ms)
            return self
        for sh in self.shards:
            sh.channel.run(until_ms=until_ms)
        return self

    def stop(self, save=True):
        """Stop the loop / workers, close gateways and captures, save state."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        if self._workers:
            self._stop_workers()
        for sh in self.shards:
            if sh.gateway is not None:
                sh.gateway.close()
                sh.gateway = None
            if sh.pcap is not None:
                sh.pcap.close()
                sh.pcap = None
        if self._db is not None:
            if save:
                # every answered request is committed already; this commits
                # the rest (ticks, overheard frames) and the shards' times
                with self._db.batch():
                    self._db.commit_all()
                    self._db.save_shard_times({sh.id: sh.sim.now_ms for sh in self.shards})
            self._db.close()
            self._db = None
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- reporting -----------------------------------------------------------------------
    def stats(self):
        if self._workers:
            return self._worker_stats()
        return {"meters": len(self.meters), "shards": [sh.stats() for sh in self.shards],
                "injections": dict(self.inject_stats), "metering": self.metering,
                "commission": self.config.commission}

    # -- worker processes ----------------------------------------------------------------
    def _start_workers(self):
        import multiprocessing as mp
        # fork where there is one: a harness script without a __main__ guard
        # works, and the parent holds no shards to copy
        methods = mp.get_all_start_methods()
        ctx = mp.get_context("fork" if "fork" in methods else "spawn")
        d = self.config.to_dict()
        for p in range(self.config.processes):
            mine = [i for i, a in enumerate(self.assignment) if a == p]
            if not mine:
                continue
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(d, mine, child), name="fleet-%d" % p,
                               daemon=True)
            proc.start()
            self._workers.append((proc, parent, mine))
        for proc, conn, mine in self._workers:
            try:
                msg = conn.recv()
            except EOFError:
                msg = ("error", "the worker process died (exit code %s)" % proc.exitcode)
            if msg[0] == "error":
                self._stop_workers()
                raise FleetError("worker for shards %s: %s" % (mine, msg[1]))

    def _ask(self, what, *args):
        out = []
        for proc, conn, mine in self._workers:
            conn.send((what,) + args)
        for proc, conn, mine in self._workers:
            msg = conn.recv()
            if msg[0] == "error":
                raise FleetError("worker for shards %s: %s" % (mine, msg[1]))
            out.append(msg[1])
        return out

    def _worker_stats(self):
        parts = self._ask("stats")
        shards = sorted((s for p in parts for s in p["shards"]), key=lambda s: s["index"])
        inj = {"applied": sum(p["injections"]["applied"] for p in parts),
               "failed": sum(p["injections"]["failed"] for p in parts)}
        return {"meters": len(self.meters), "shards": shards, "injections": inj,
                "metering": self.metering, "commission": self.config.commission,
                "processes": len(self._workers)}

    def call_workers(self, what, *args):
        """Run a worker command ("run", until_ms | "survey", options) in every
        worker process; their answers, in process order."""
        return self._ask(what, *args)

    def _stop_workers(self):
        for proc, conn, mine in self._workers:
            try:
                conn.send(("stop",))
            except (OSError, BrokenPipeError):
                pass
        for proc, conn, mine in self._workers:
            try:
                if conn.poll(30):
                    conn.recv()
            except (EOFError, OSError):
                pass
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
        self._workers = []


def _worker(d, shards, conn):
    """A worker process: its shards of the fleet, commands from the pipe."""
    try:
        fleet = Fleet(d, only=shards)
        fleet.start()
        conn.send(("ready", [sh.stats() for sh in fleet.shards]))
    except Exception as exc:        # reported to the parent, which raises
        conn.send(("error", "%s: %s" % (type(exc).__name__, exc)))
        return
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            fleet.stop()
            return
        try:
            if msg[0] == "stop":
                fleet.stop()
                conn.send(("ok", fleet.stats()))
                return
            if msg[0] == "stats":
                conn.send(("ok", fleet.stats()))
            elif msg[0] == "run":
                fleet.run(until_ms=msg[1])
                conn.send(("ok", fleet.stats()))
            elif msg[0] == "survey":
                conn.send(("ok", [survey(fleet, sh, **msg[1]) for sh in fleet.shards]))
            elif msg[0] == "memory":
                import resource
                conn.send(("ok", {"rss": _rss_bytes(), "peak": resource.getrusage(
                    resource.RUSAGE_SELF).ru_maxrss * 1024}))
            else:
                conn.send(("error", "unknown command %r" % (msg[0],)))
        except Exception as exc:
            conn.send(("error", "%s: %s" % (type(exc).__name__, exc)))


def _rss_bytes():
    """Resident set size of this process, bytes (Linux /proc; else peak)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# ---------------------------------------------------------------- per-meter helpers

def _bcd(digits):
    return bytes(int(digits[i]) << 4 | int(digits[i + 1]) for i in range(0, 16, 2))


def _own_identity(fw, ident, bt01, et03):
    """The meter's own BT01 serial number and ET03 utility serial (its only
    own copies of the template's tables until it writes something)."""
    store = fw.meter.store
    b = bytearray(bt01)
    if len(b) < 24:
        b += bytes(24 - len(b))
    b[16:24] = _bcd(ident.serial)
    store.written[BT01] = b
    if et03:
        u = ident.utility_serial.encode("ascii")[:30]
        store.written[ET03] = bytearray(u + bytes(30 - len(u)))


def _enable_network(node):
    """Discovery (ADD/ATM, FCM) and LTEP repeating on a meter's node, when
    the firmware does not already (meter/plc_discovery.py, plc_repeat.py)."""
    if node is None or getattr(node, "_fleet_net", False):
        return
    for name in ("plc_discovery", "plc_repeat"):
        try:
            mod = __import__("osgp_meter." + name, fromlist=["enable"])
        except ImportError:
            continue
        enable = getattr(mod, "enable", None)
        if enable is not None and not _enabled(node, mod):
            enable(node)


def _enabled(node, mod):
    """Whether the firmware already enabled that module on the node."""
    handlers = getattr(node, "_handlers", None) or getattr(node, "handlers", None)
    if not handlers:
        return False
    codes = {"plc_discovery": getattr(mod, "OUT", 0x45), "plc_repeat": 0x4D}
    code = codes.get(mod.__name__.rsplit(".", 1)[-1])
    return code in handlers


# ---------------------------------------------------------------- pcap

def pcap_tracer(writer, channel=None):
    """A channel tracer writing every transmission (what is on the air) into
    a PcapWriter. IPv4 addresses stand for LonTalk addresses: a sender with
    a subnet/node is 10.0.subnet.node, one without (0/0: unconfigured, or a
    discovery frame) 10.1.x.y after its position on the channel; the
    destination is 10.0.subnet.node (2a, 2b), 10.2.x.y after the last two
    Neuron-ID bytes (format 3), 10.3.0.group (group) or 10.255.subnet.255
    (broadcast)."""
    from osgp_meter import lontalk as L
    from .pcap import node_ip

    def pos_ip(node_id):
        i = channel.index.get(node_id, 0) if channel is not None else 0
        return "10.1.%d.%d" % ((i >> 8) & 0xFF, i & 0xFF)

    def tracer(ev):
        if ev.kind != "tx":
            return
        try:
            f = L.decode(ev.frame)
        except L.FrameError:
            writer.write(ev.frame, ev.t_ms, src=pos_ip(ev.src), dst="10.255.255.255")
            return
        if f.src_subnet or f.src_node:
            src = node_ip(f.src_subnet, f.src_node & 0x7F)
        else:
            src = pos_ip(ev.src)
        af = f.addr_fmt
        if af in (L.AF_SUBNET_NODE, L.AF_GROUP_ACK):
            dst = node_ip(f.dst_subnet, f.dst_node & 0x7F)
        elif af == L.AF_NEURON_ID:
            dst = "10.2.%d.%d" % (f.neuron_id[4], f.neuron_id[5])
        elif af == L.AF_GROUP:
            dst = "10.3.0.%d" % f.group
        else:
            dst = "10.255.%d.255" % (f.dst_subnet or 0)
        writer.write(ev.frame, ev.t_ms, src=src, dst=dst)
    return tracer


# ---------------------------------------------------------------- survey

def survey(fleet, shard, tables=("BT01", "BT23"), discover=None, progress=None, **dc_kw):
    """Discover, commission (when the meters are factory-fresh) and read
    ``tables`` from every meter of a shard through its DC, via repeaters
    where needed; returns a dict of what happened (see docs/fleet.md).
    The discovery and commissioning are tools/dc_topology.py's."""
    from .fleet_survey import survey_shard
    return survey_shard(fleet, fleet.shard(shard) if not isinstance(shard, Shard) else shard,
                        tables=tables, discover=discover, progress=progress, **dc_kw)


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
                   "port, address, Neuron ID, serial number and keys to this file")
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
            print("inventory: %d meters in %s" % (n, args.inventory), file=out)
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
