"""Topology of a virtual PLC channel: transformers, feeders, nodes, noise
(host side, CPython).

A topology is a tree of cables per transformer: feeders leave the
transformer's busbar, branches leave a feeder at a distance. Nodes (meters,
the data concentrator, repeaters) sit at a distance along a cable or on the
busbar. The attenuation between two points is the cable length between them
times the cable's dB/km for the carrier, plus ``branch_loss_db`` for every
branch point where the path turns, plus ``busbar_loss_db`` to go from one
feeder to another through the busbar (half of it between the busbar and a
feeder). Points under different transformers never hear each other.

Loaded from TOML (``Topology.load``; see tools/topologies/*.toml and
docs/plc-channel.md for the schema) or built in code; ``Topology.matrix``
builds a geometry-free topology from an explicit attenuation table (tests,
hand-made hidden-terminal cases).

Every error names the file and the entry: ``TopologyError``.
"""
import bisect
import difflib
import math
import os
from dataclasses import dataclass, replace

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

from .faults import FaultError, fault_from_toml
from .phy import CARRIERS, ConfigError, MacConfig, PhyConfig

TOPOLOGY_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "topologies")
DEFAULT_TOPOLOGY = os.path.join(TOPOLOGY_DIR, "default.toml")

INF = math.inf


class TopologyError(ValueError):
    """A topology that cannot be used; the message names the file and entry."""


@dataclass(frozen=True)
class GridParams:
    """Levels and junction losses (all emulator-profile defaults, see docs).

    tx_level_dbuv     transmit level of every node unless the node says     emulator: 120 dBµV (1 V rms)
    sensitivity_dbuv  received level below which a node hears nothing       emulator: 40 dBµV (80 dB below tx; [PLDB p.12] "dynamic range > 80 dB")
    noise_dbuv        background noise per carrier (primary, secondary)     emulator: 50 / 55 dBµV
    branch_loss_db    per branch point where a path turns                   emulator: 3 dB
    busbar_loss_db    feeder to feeder through the busbar (half from the busbar)  emulator: 10 dB
    utc_offset_h      local time = UTC + this, for time-of-day noise        0
    """
    tx_level_dbuv: float = 120.0
    sensitivity_dbuv: float = 40.0
    noise_dbuv: tuple = (50.0, 55.0)
    branch_loss_db: float = 3.0
    busbar_loss_db: float = 10.0
    utc_offset_h: float = 0.0


# Emulator-profile cable types: dB per km at the primary and the secondary
# carrier (the primary is the higher frequency, so it loses a little more).
DEFAULT_CABLES = {
    "underground": (25.0, 22.0),     # LV distribution cable (e.g. 4 x 150 mm² Al)
    "overhead": (12.0, 10.0),        # LV overhead line
    "service": (40.0, 36.0),         # thin house-connection cable
}


@dataclass
class Transformer:
    id: str
    busbar_loss_db: float


@dataclass
class Feeder:
    id: str
    transformer: str
    cable: str
    length_m: float
    parent: str = None          # None: leaves the busbar
    at_m: float = 0.0           # where it leaves the parent


@dataclass
class NodeSpec:
    id: str
    role: str = "meter"
    transformer: str = None
    feeder: str = None          # None: on the transformer's busbar
    at_m: float = 0.0
    tx_level_dbuv: float = None     # None: the grid's
    priority_slot: int = 0          # 0: none; 1..priority_slots
    noise_dbuv: tuple = None        # extra local noise (primary, secondary), power-added


@dataclass
class NoiseSource:
    id: str
    transformer: str
    feeder: str                 # None: on the busbar
    at_m: float
    level_dbuv: float
    carriers: tuple = (True, True)  # which carriers it disturbs
    hours: tuple = ()           # ((from_h, to_h), ...) local hours it is on; () = always
    profile: tuple = None       # 24 dB offsets by local hour (instead of hours)

    def level_at_hour(self, h):
        """Level (dBµV) at local hour h, or None when off."""
        if self.profile is not None:
            return self.level_dbuv + self.profile[h]
        if not self.hours:
            return self.level_dbuv
        for a, b in self.hours:
            if (a <= h < b) if a <= b else (h >= a or h < b):
                return self.level_dbuv
        return None


@dataclass
class LinkOverride:
    a: str
    b: str
    carrier: int = None         # None: both
    attenuation_db: float = None    # replaces the geometric attenuation
    extra_db: float = 0.0           # added to it
    directed: bool = False


class Topology:
    """The whole description of one channel (one or more transformers)."""

    def __init__(self, source="<topology>"):
        self.source = source
        self.name = None
        self.seed = None
        self.start_ms = None
        self.grid = GridParams()
        self.phy = PhyConfig()
        self.mac = MacConfig()
        self.cables = dict(DEFAULT_CABLES)
        self.transformers = []
        self.feeders = []
        self.nodes = []
        self.noise = []
        self.links = []
        self.faults = []
        self.matrix = None      # Topology.matrix: {(i, j): (att_p, att_s)}

    # -- lookups ----------------------------------------------------------------

    def node(self, node_id):
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def node_ids(self):
        return [n.id for n in self.nodes]

    def feeder(self, feeder_id):
        for f in self.feeders:
            if f.id == feeder_id:
                return f
        raise KeyError(feeder_id)

    def __repr__(self):
        return "<Topology %s: %d transformers, %d feeders, %d nodes, %d noise sources>" % (
            self.name or self.source, len(self.transformers), len(self.feeders),
            len(self.nodes), len(self.noise))

    # -- building -----------------------------------------------------------------

    @classmethod
    def load(cls, path):
        """Read and check a topology TOML file."""
        path = os.fspath(path)
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise TopologyError("%s: no such topology file" % path) from None
        except tomllib.TOMLDecodeError as exc:
            raise TopologyError("%s: not valid TOML: %s" % (path, exc)) from None
        return cls.from_dict(data, source=path)

    @classmethod
    def loads(cls, text, source="<string>"):
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise TopologyError("%s: not valid TOML: %s" % (source, exc)) from None
        return cls.from_dict(data, source=source)

    @classmethod
    def named(cls, name):
        """A topology shipped in tools/topologies (``"default"``, ``"small"``, ...)."""
        return cls.load(os.path.join(TOPOLOGY_DIR, name + ".toml"))

    @classmethod
    def from_dict(cls, data, source="<dict>"):
        t = cls(source)
        _Parser(t, data).parse()
        t.check()
        return t

    @classmethod
    def matrix(cls, nodes, links, noise_dbuv=(50.0, 55.0), tx_level_dbuv=120.0,
               sensitivity_dbuv=40.0, symmetric=True, phy=None, mac=None, source="<matrix>"):
        """A geometry-free topology for tests: ``nodes`` is a list of ids (or
        NodeSpec), ``links`` maps (a, b) to an attenuation in dB (one number for
        both carriers, or a (primary, secondary) pair). Pairs not given are not
        heard at all. ``noise_dbuv``: background (primary, secondary) or a
        number; per-node noise via NodeSpec.noise_dbuv."""
        t = cls(source)
        if isinstance(noise_dbuv, (int, float)):
            noise_dbuv = (float(noise_dbuv), float(noise_dbuv))
        t.grid = GridParams(tx_level_dbuv=tx_level_dbuv, sensitivity_dbuv=sensitivity_dbuv,
                            noise_dbuv=tuple(noise_dbuv))
        t.phy = phy or PhyConfig()
        t.mac = mac or MacConfig()
        t.transformers = [Transformer("T1", 0.0)]
        for n in nodes:
            spec = n if isinstance(n, NodeSpec) else NodeSpec(str(n))
            spec = replace(spec, transformer="T1", feeder=None, at_m=0.0)
            t.nodes.append(spec)
        index = {n.id: i for i, n in enumerate(t.nodes)}
        m = {}
        for (a, b), att in links.items():
            if a not in index or b not in index:
                raise TopologyError("%s: link %s-%s names an unknown node" % (source, a, b))
            if a == b:
                raise TopologyError("%s: link %s-%s joins a node to itself" % (source, a, b))
            pair = (float(att), float(att)) if isinstance(att, (int, float)) else tuple(map(float, att))
            m[(index[a], index[b])] = pair
            if symmetric:
                m.setdefault((index[b], index[a]), pair)
        t.matrix = m
        t.check()
        return t

    def shards(self):
        """One topology per transformer (nodes, feeders and noise of that
        transformer; links and faults that stay inside it: a move to another
        transformer is left out)."""
        out = []
        for tr in self.transformers:
            s = Topology("%s#%s" % (self.source, tr.id))
            s.name, s.seed, s.start_ms = self.name, self.seed, self.start_ms
            s.grid, s.phy, s.mac, s.cables = self.grid, self.phy, self.mac, dict(self.cables)
            s.transformers = [tr]
            s.feeders = [f for f in self.feeders if f.transformer == tr.id]
            s.nodes = [n for n in self.nodes if n.transformer == tr.id]
            s.noise = [z for z in self.noise if z.transformer == tr.id]
            ids = set(s.node_ids())
            s.links = [l for l in self.links if l.a in ids and l.b in ids]
            ftr = {f.id: f.transformer for f in self.feeders}
            # a move to another transformer cannot happen between shards (one
            # channel with both transformers can do it): such faults are left out
            s.faults = [f for f in self.faults
                        if (f.nodes is None or set(f.nodes) <= ids)
                        and (f.link is None or set(f.link) <= ids)
                        and (f.kind not in ("move", "noise")
                             or (ftr.get(f.feeder) if f.feeder is not None else f.transformer)
                             == tr.id)]
            out.append(s)
        return out

    # -- checks -------------------------------------------------------------------

    def check(self):
        """Cross-reference checks; raises TopologyError naming the entry."""
        src = self.source
        if not self.nodes:
            raise TopologyError("%s: no nodes" % src)
        trs = {}
        for tr in self.transformers:
            if tr.id in trs:
                raise TopologyError("%s: transformer %r is defined twice" % (src, tr.id))
            trs[tr.id] = tr
        feeders = {}
        for f in self.feeders:
            where = "%s: feeder %r" % (src, f.id)
            if f.id in feeders:
                raise TopologyError("%s is defined twice" % where)
            feeders[f.id] = f
            if f.cable not in self.cables:
                raise TopologyError("%s: cable type %r is not defined%s" % (
                    where, f.cable, _hint(f.cable, self.cables)))
            if not f.length_m > 0:
                raise TopologyError("%s: length_m must be > 0" % where)
        for f in self.feeders:
            where = "%s: feeder %r" % (src, f.id)
            if f.parent is not None:
                if f.parent not in feeders:
                    raise TopologyError("%s: parent feeder %r is not defined%s" % (
                        where, f.parent, _hint(f.parent, feeders)))
                p = feeders[f.parent]
                if not 0 <= f.at_m <= p.length_m:
                    raise TopologyError("%s: at_m = %g is outside its parent %r (0..%g m)" % (
                        where, f.at_m, p.id, p.length_m))
                seen = {f.id}
                while p.parent is not None:
                    if p.id in seen or p.parent in seen:
                        raise TopologyError("%s: the parent chain loops" % where)
                    seen.add(p.id)
                    p = feeders[p.parent]
            if f.transformer not in trs:
                raise TopologyError("%s: transformer %r is not defined%s" % (
                    where, f.transformer, _hint(f.transformer, trs)))
        ids = set()
        for n in self.nodes:
            where = "%s: node %r" % (src, n.id)
            if not n.id:
                raise TopologyError("%s: a node has an empty id" % src)
            if n.id in ids:
                raise TopologyError("%s is defined twice" % where)
            ids.add(n.id)
            self._check_position(where, n.transformer, n.feeder, n.at_m, trs, feeders)
            if not 0 <= n.priority_slot <= self.mac.priority_slots:
                raise TopologyError("%s: priority_slot %d is outside 0..%d ([mac] priority_slots)"
                                    % (where, n.priority_slot, self.mac.priority_slots))
        zs = set()
        for z in self.noise:
            where = "%s: noise source %r" % (src, z.id)
            if z.id in zs:
                raise TopologyError("%s is defined twice" % where)
            zs.add(z.id)
            self._check_position(where, z.transformer, z.feeder, z.at_m, trs, feeders)
        for l in self.links:
            for x in (l.a, l.b):
                if x not in ids:
                    raise TopologyError("%s: link %s-%s: node %r is not defined%s" % (
                        src, l.a, l.b, x, _hint(x, ids)))
        for k, f in enumerate(self.faults):
            where = "%s: fault #%d (%s)" % (src, k + 1, f.kind)
            for x in (f.nodes or ()) + (f.link or ()):
                if x not in ids:
                    raise TopologyError("%s: node %r is not defined%s" % (where, x, _hint(x, ids)))
            if f.kind in ("move", "noise"):
                tr = f.transformer
                if f.feeder is not None:
                    if f.feeder not in feeders:
                        raise TopologyError("%s: feeder %r is not defined%s" % (
                            where, f.feeder, _hint(f.feeder, feeders)))
                    if tr is not None and feeders[f.feeder].transformer != tr:
                        raise TopologyError("%s: feeder %r is not under transformer %r"
                                            % (where, f.feeder, tr))
                    if not 0 <= f.at_m <= feeders[f.feeder].length_m:
                        raise TopologyError("%s: at_m = %g is outside feeder %r (0..%g m)" % (
                            where, f.at_m, f.feeder, feeders[f.feeder].length_m))
                elif tr not in trs:
                    raise TopologyError("%s: transformer %r is not defined%s" % (
                        where, tr, _hint(tr, trs)))
                if self.matrix is not None and f.kind == "move":
                    raise TopologyError("%s: a matrix topology has no positions to move to" % where)

    @staticmethod
    def _check_position(where, tr, feeder, at_m, trs, feeders):
        if feeder is None:
            if tr is None:
                raise TopologyError("%s: needs a feeder (with at_m) or a transformer "
                                    "(on its busbar)" % where)
            if tr not in trs:
                raise TopologyError("%s: transformer %r is not defined%s" % (where, tr, _hint(tr, trs)))
            return
        if feeder not in feeders:
            raise TopologyError("%s: feeder %r is not defined%s" % (
                where, feeder, _hint(feeder, feeders)))
        f = feeders[feeder]
        if tr is not None and tr != f.transformer:
            raise TopologyError("%s: feeder %r is under transformer %r, not %r"
                                % (where, feeder, f.transformer, tr))
        if not 0 <= at_m <= f.length_m:
            raise TopologyError("%s: at_m = %g is outside feeder %r (0..%g m)"
                                % (where, at_m, feeder, f.length_m))

    def geometry(self):
        """A fresh link model (FeederGeometry or MatrixGeometry)."""
        if self.matrix is not None:
            return MatrixGeometry(self)
        return FeederGeometry(self)


def _hint(name, known):
    """" (did you mean 'x'?)", or the known names when there are few."""
    known = sorted(str(k) for k in known)
    near = difflib.get_close_matches(str(name), known, n=1)
    if near:
        return " (did you mean %r?)" % near[0]
    if not known:
        return " (none are defined)"
    if len(known) <= 12:
        return " (defined: %s)" % ", ".join(known)
    return ""


# -- TOML parsing ---------------------------------------------------------------

class _Parser:
    TOP = {"name", "seed", "start", "grid", "phy", "mac", "cable", "transformer", "feeder",
           "node", "meters", "noise", "link", "fault"}

    def __init__(self, topo, data):
        self.t = topo
        self.d = data
        self.src = topo.source

    def err(self, msg):
        raise TopologyError("%s: %s" % (self.src, msg))

    def keys(self, d, allowed, where):
        if not isinstance(d, dict):
            self.err("%s must be a table" % where)
        for k in d:
            if k not in allowed:
                self.err("%s: unknown key %r%s (known: %s)" % (
                    where, k, _hint(k, allowed), ", ".join(sorted(allowed))))

    def num(self, d, k, where, default=None, lo=None, hi=None, required=False):
        if k not in d:
            if required:
                self.err("%s: needs %s" % (where, k))
            return default
        v = d[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            self.err("%s: %s must be a number, not %r" % (where, k, v))
        if lo is not None and v < lo:
            self.err("%s: %s = %r is below %r" % (where, k, v, lo))
        if hi is not None and v > hi:
            self.err("%s: %s = %r is above %r" % (where, k, v, hi))
        return float(v)

    def string(self, d, k, where, default=None, required=False):
        if k not in d:
            if required:
                self.err("%s: needs %s" % (where, k))
            return default
        v = d[k]
        if not isinstance(v, str) or not v:
            self.err("%s: %s must be a non-empty string, not %r" % (where, k, v))
        return v

    def carrier_pair(self, v, where, name):
        if isinstance(v, bool):
            self.err("%s: %s must be a number or {primary = .., secondary = ..}" % (where, name))
        if isinstance(v, (int, float)):
            return (float(v), float(v))
        if isinstance(v, dict):
            self.keys(v, set(CARRIERS), "%s %s" % (where, name))
            if set(v) != set(CARRIERS):
                self.err("%s: %s needs both primary and secondary" % (where, name))
            return tuple(self.num(v, c, where + " " + name) for c in CARRIERS)
        self.err("%s: %s must be a number or {primary = .., secondary = ..}" % (where, name))

    def array_of_tables(self, k):
        v = self.d.get(k, [])
        if isinstance(v, dict):
            self.err("[%s] must be written [[%s]] (one table per entry)" % (k, k))
        if not isinstance(v, list):
            self.err("%s must be an array of tables" % k)
        return v

    def parse(self):
        t, d = self.t, self.d
        self.keys(d, self.TOP, "top level")
        t.name = self.string(d, "name", "top level")
        if "seed" in d:
            if isinstance(d["seed"], bool) or not isinstance(d["seed"], int):
                self.err("seed must be a whole number")
            t.seed = d["seed"]
        if "start" in d:
            t.start_ms = self.parse_start(d["start"])
        self.parse_grid()
        try:
            t.phy = PhyConfig.from_dict(d.get("phy", {}), "%s: [phy]" % self.src)
            t.mac = MacConfig.from_dict(d.get("mac", {}), "%s: [mac]" % self.src)
        except ConfigError as exc:
            raise TopologyError(str(exc)) from None
        cables = d.get("cable", {})
        if not isinstance(cables, dict):
            self.err("[cable.NAME] tables expected")
        for name, c in cables.items():
            where = "[cable.%s]" % name
            self.keys(c, {"primary_db_per_km", "secondary_db_per_km"}, where)
            t.cables[name] = (self.num(c, "primary_db_per_km", where, required=True, lo=0),
                              self.num(c, "secondary_db_per_km", where, required=True, lo=0))
        for k, tr in enumerate(self.array_of_tables("transformer")):
            where = "transformer #%d" % (k + 1)
            self.keys(tr, {"id", "busbar_loss_db"}, where)
            tid = self.string(tr, "id", where, required=True)
            t.transformers.append(Transformer(
                tid, self.num(tr, "busbar_loss_db", "transformer %r" % tid,
                              default=t.grid.busbar_loss_db, lo=0)))
        if not t.transformers:
            t.transformers.append(Transformer("T1", t.grid.busbar_loss_db))
        only = t.transformers[0].id if len(t.transformers) == 1 else None
        raw = self.array_of_tables("feeder")
        byid = {}
        for k, f in enumerate(raw):
            where = "feeder #%d" % (k + 1)
            self.keys(f, {"id", "transformer", "cable", "length_m", "parent", "at_m"}, where)
            fid = self.string(f, "id", where, required=True)
            byid.setdefault(fid, f)
        for k, f in enumerate(raw):
            fid = f["id"]
            where = "feeder %r" % fid
            parent = self.string(f, "parent", where)
            tr = self.string(f, "transformer", where)
            if parent is not None:
                if "transformer" in f:
                    self.err("%s: a branch takes its parent's transformer; drop transformer" % where)
                if "at_m" not in f:
                    self.err("%s: a branch needs at_m (where it leaves feeder %r)" % (where, parent))
                # resolve the transformer through the parent chain (checked for loops later)
                p, hops = byid.get(parent), 0
                while p is not None and "parent" in p and hops < len(raw):
                    p, hops = byid.get(p["parent"]), hops + 1
                tr = (p.get("transformer") if p is not None else None) or only
            else:
                if "at_m" in f:
                    self.err("%s: at_m is for branches (with parent); a feeder starts at the busbar"
                             % where)
                tr = tr or only
                if tr is None:
                    self.err("%s: needs transformer (there are %d)" % (where, len(t.transformers)))
            t.feeders.append(Feeder(
                fid, tr, self.string(f, "cable", where, default="underground"),
                self.num(f, "length_m", where, required=True, lo=0), parent,
                self.num(f, "at_m", where, default=0.0, lo=0)))
        feeder_tr = {f.id: f.transformer for f in t.feeders}
        node_keys = {"id", "role", "transformer", "feeder", "at_m", "tx_level_dbuv",
                     "priority_slot", "noise_dbuv"}
        for k, n in enumerate(self.array_of_tables("node")):
            where = "node #%d" % (k + 1)
            self.keys(n, node_keys, where)
            nid = self.string(n, "id", where, required=True)
            t.nodes.append(self.node_spec(n, nid, "node %r" % nid, feeder_tr, only))
        for k, m in enumerate(self.array_of_tables("meters")):
            self.parse_meters(m, "meters #%d" % (k + 1), feeder_tr, only)
        for k, z in enumerate(self.array_of_tables("noise")):
            self.parse_noise(z, "noise #%d" % (k + 1), feeder_tr, only)
        for k, l in enumerate(self.array_of_tables("link")):
            where = "link #%d" % (k + 1)
            self.keys(l, {"a", "b", "carrier", "attenuation_db", "extra_db", "directed"}, where)
            c = l.get("carrier")
            if c is not None and c not in CARRIERS:
                self.err("%s: carrier must be \"primary\" or \"secondary\"" % where)
            if "attenuation_db" in l and "extra_db" in l:
                self.err("%s: give attenuation_db or extra_db, not both" % where)
            if "attenuation_db" not in l and "extra_db" not in l:
                self.err("%s: needs attenuation_db or extra_db" % where)
            if "directed" in l and not isinstance(l["directed"], bool):
                self.err("%s: directed must be true or false" % where)
            t.links.append(LinkOverride(
                self.string(l, "a", where, required=True), self.string(l, "b", where, required=True),
                None if c is None else CARRIERS.index(c),
                self.num(l, "attenuation_db", where, lo=0),
                self.num(l, "extra_db", where, default=0.0), l.get("directed", False)))
        for k, f in enumerate(self.array_of_tables("fault")):
            try:
                fault = fault_from_toml(f, "fault #%d" % (k + 1))
            except FaultError as exc:
                self.err(str(exc))
            t.faults.append(fault)

    def parse_start(self, v):
        import datetime
        if isinstance(v, datetime.datetime):
            dt = v
        elif isinstance(v, str):
            try:
                dt = datetime.datetime.fromisoformat(v.replace("Z", "+00:00"))
            except ValueError:
                self.err("start: %r is not an RFC 3339 date-time" % v)
        else:
            self.err("start must be a date-time like 2026-01-01T00:00:00Z")
        if dt.tzinfo is None:
            self.err("start: give a time zone (e.g. 2026-01-01T00:00:00Z)")
        return int(dt.timestamp() * 1000)

    def parse_grid(self):
        g = self.d.get("grid", {})
        where = "[grid]"
        self.keys(g, {"tx_level_dbuv", "sensitivity_dbuv", "noise_dbuv", "branch_loss_db",
                      "busbar_loss_db", "utc_offset_h"}, where)
        base = GridParams()
        noise = base.noise_dbuv
        if "noise_dbuv" in g:
            noise = self.carrier_pair(g["noise_dbuv"], where, "noise_dbuv")
        self.t.grid = GridParams(
            tx_level_dbuv=self.num(g, "tx_level_dbuv", where, base.tx_level_dbuv),
            sensitivity_dbuv=self.num(g, "sensitivity_dbuv", where, base.sensitivity_dbuv),
            noise_dbuv=noise,
            branch_loss_db=self.num(g, "branch_loss_db", where, base.branch_loss_db, lo=0),
            busbar_loss_db=self.num(g, "busbar_loss_db", where, base.busbar_loss_db, lo=0),
            utc_offset_h=self.num(g, "utc_offset_h", where, base.utc_offset_h, lo=-14, hi=14))

    def position(self, d, where, feeder_tr, only):
        feeder = self.string(d, "feeder", where)
        tr = self.string(d, "transformer", where)
        if feeder is not None:
            if "at_m" not in d:
                self.err("%s: needs at_m (distance along feeder %r)" % (where, feeder))
            tr = tr or feeder_tr.get(feeder)
        elif "at_m" in d:
            self.err("%s: at_m needs a feeder" % where)
        elif tr is None:
            self.err("%s: needs a feeder (with at_m) or a transformer (on its busbar)" % where)
        return tr, feeder, self.num(d, "at_m", where, default=0.0, lo=0)

    def node_spec(self, n, nid, where, feeder_tr, only):
        tr, feeder, at_m = self.position(n, where, feeder_tr, only)
        slot = n.get("priority_slot", 0)
        if isinstance(slot, bool) or not isinstance(slot, int):
            self.err("%s: priority_slot must be a whole number" % where)
        noise = None
        if "noise_dbuv" in n:
            noise = self.carrier_pair(n["noise_dbuv"], where, "noise_dbuv")
        return NodeSpec(nid, self.string(n, "role", where, default="meter"), tr, feeder, at_m,
                        self.num(n, "tx_level_dbuv", where), slot, noise)

    def parse_meters(self, m, where, feeder_tr, only):
        self.keys(m, {"feeder", "count", "from_m", "to_m", "positions", "prefix", "first",
                      "width", "role", "tx_level_dbuv"}, where)
        feeder = self.string(m, "feeder", where, required=True)
        prefix = self.string(m, "prefix", where, default="m")
        role = self.string(m, "role", where, default="meter")
        if "positions" in m:
            if any(k in m for k in ("count", "from_m", "to_m")):
                self.err("%s: give positions or count/from_m/to_m, not both" % where)
            pos = m["positions"]
            if not isinstance(pos, list) or not pos or not all(
                    isinstance(p, (int, float)) and not isinstance(p, bool) for p in pos):
                self.err("%s: positions must be a list of distances in m" % where)
            pos = [float(p) for p in pos]
        else:
            count = m.get("count")
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                self.err("%s: count must be a whole number >= 1" % where)
            a = self.num(m, "from_m", where, required=True, lo=0)
            b = self.num(m, "to_m", where, default=a, lo=0)
            pos = [a] if count == 1 else [a + (b - a) * i / (count - 1) for i in range(count)]
        first = m.get("first", 1)
        if isinstance(first, bool) or not isinstance(first, int):
            self.err("%s: first must be a whole number" % where)
        width = m.get("width", 3)
        if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= 9:
            self.err("%s: width must be 1..9" % where)
        tx = self.num(m, "tx_level_dbuv", where)
        for i, p in enumerate(pos):
            nid = "%s%0*d" % (prefix, width, first + i)
            self.t.nodes.append(NodeSpec(nid, role, feeder_tr.get(feeder), feeder,
                                         round(p, 3), tx, 0, None))

    def parse_noise(self, z, where, feeder_tr, only):
        self.keys(z, {"id", "feeder", "transformer", "at_m", "level_dbuv", "carrier",
                      "hours", "profile"}, where)
        zid = self.string(z, "id", where, required=True)
        where = "noise source %r" % zid
        tr, feeder, at_m = self.position(z, where, feeder_tr, only)
        c = z.get("carrier", "both")
        if c not in ("primary", "secondary", "both"):
            self.err("%s: carrier must be \"primary\", \"secondary\" or \"both\"" % where)
        carriers = (c in ("primary", "both"), c in ("secondary", "both"))
        hours = ()
        profile = None
        if "hours" in z and "profile" in z:
            self.err("%s: give hours or profile, not both" % where)
        if "hours" in z:
            hs = z["hours"]
            ok = isinstance(hs, list) and all(
                isinstance(w, list) and len(w) == 2 and all(
                    isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= 24 for x in w)
                for w in hs)
            if not ok:
                self.err("%s: hours must be a list of [from, to] local hours 0..24, e.g. "
                         "[[17, 23]]" % where)
            hours = tuple((a, b) for a, b in hs)
        if "profile" in z:
            p = z["profile"]
            if not (isinstance(p, list) and len(p) == 24 and all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) for x in p)):
                self.err("%s: profile must be 24 numbers (dB offset by local hour)" % where)
            profile = tuple(float(x) for x in p)
        self.t.noise.append(NoiseSource(zid, tr, feeder, at_m,
                                        self.num(z, "level_dbuv", where, required=True),
                                        carriers, hours, profile))


# -- link models --------------------------------------------------------------------

class FeederGeometry:
    """Attenuation on the cable tree, per carrier, between nodes and points.

    Feeders are indexed 0..F-1 in topology order; each transformer also gets a
    busbar pseudo-feeder (0 dB/km, no parent). A point is (feeder index, m).
    For a sender, every cable's receivers form one contiguous range of
    positions around the point where the path enters that cable, so a row of
    the link table costs a bisect and a slice per cable, not a loop over all
    nodes.
    """

    def __init__(self, topo):
        g = topo.grid
        trs = {tr.id: k for k, tr in enumerate(topo.transformers)}
        fidx = {f.id: k for k, f in enumerate(topo.feeders)}
        nf = len(topo.feeders)
        self.trs = trs
        self.fidx = fidx
        self.busbar = {tr.id: nf + k for k, tr in enumerate(topo.transformers)}
        total = nf + len(topo.transformers)
        self.k = [None] * total         # [(dB/m primary, dB/m secondary)]
        self.root = [None] * total      # [(depth of m 0, ...)]: dB from the busbar
        self.parent = [-1] * total
        self.at = [0.0] * total
        self.ftr = [0] * total
        self.anc = [None] * total       # {ancestor feeder: m where the chain meets it}
        for f in topo.feeders:
            i = fidx[f.id]
            kp, ks = topo.cables[f.cable]
            self.k[i] = (kp / 1000.0, ks / 1000.0)
            self.parent[i] = fidx[f.parent] if f.parent is not None else -1
            self.at[i] = f.at_m
            self.ftr[i] = trs[f.transformer]
        for tr in topo.transformers:
            b = self.busbar[tr.id]
            self.k[b] = (0.0, 0.0)
            self.root[b] = (0.0, 0.0)
            self.ftr[b] = trs[tr.id]
            self.anc[b] = {}
        busbar_loss = {trs[tr.id]: tr.busbar_loss_db for tr in topo.transformers}

        def resolve(i):
            if self.root[i] is not None:
                return
            p = self.parent[i]
            if p < 0:
                half = busbar_loss[self.ftr[i]] / 2.0
                self.root[i] = (half, half)
                self.anc[i] = {}
                return
            resolve(p)
            bl = g.branch_loss_db
            self.root[i] = tuple(self.root[p][c] + self.at[i] * self.k[p][c] + bl for c in (0, 1))
            a = dict(self.anc[p])
            a[p] = self.at[i]
            self.anc[i] = a

        for i in range(nf):
            resolve(i)
        # nodes
        self.pos = []                   # node index -> (feeder index, m)
        self.byf_pos = [[] for _ in range(total)]   # per feeder: sorted m
        self.byf_ids = [[] for _ in range(total)]   # per feeder: node index at that m
        for n in topo.nodes:
            self.pos.append(self.point(n.transformer, n.feeder, n.at_m))
        for i, (f, d) in enumerate(self.pos):
            self._insert(i, f, d)
        self.feeders_of_tr = [[f for f in range(total) if self.ftr[f] == t]
                              for t in range(len(topo.transformers))]

    def point(self, transformer, feeder, at_m):
        if feeder is None:
            return (self.busbar[transformer], 0.0)
        return (self.fidx[feeder], float(at_m))

    def _insert(self, i, f, d):
        ps, ids = self.byf_pos[f], self.byf_ids[f]
        k = bisect.bisect_right(ps, d)
        ps.insert(k, d)
        ids.insert(k, i)

    def move(self, i, transformer, feeder, at_m):
        f, d = self.pos[i]
        ps, ids = self.byf_pos[f], self.byf_ids[f]
        k = ids.index(i)
        del ps[k]
        del ids[k]
        f, d = self.point(transformer, feeder, at_m)
        self.pos[i] = (f, d)
        self._insert(i, f, d)

    def depth(self, f, d, c):
        return self.root[f][c] + d * self.k[f][c]

    def att_points(self, p, q, c):
        """Attenuation (dB) between two points on carrier c."""
        f1, d1 = p
        f2, d2 = q
        if self.ftr[f1] != self.ftr[f2]:
            return INF
        if f1 == f2:
            return abs(d1 - d2) * self.k[f1][c]
        dp = self.root[f1][c] + d1 * self.k[f1][c]
        dq = self.root[f2][c] + d2 * self.k[f2][c]
        a1 = self.anc[f1]
        g, eq = f2, d2
        while g >= 0:
            if g == f1:
                ep = d1
                break
            ep = a1.get(g)
            if ep is not None:
                break
            eq = self.at[g]
            g = self.parent[g]
        else:
            return dp + dq              # through the busbar
        lca = self.root[g][c] + min(ep, eq) * self.k[g][c]
        return dp + dq - 2.0 * lca

    def _entry(self, f1, d1, g, c):
        """Where a path from (f1, d1) enters cable g and the attenuation up to
        there: (base, e), so that att to (g, q) = base + |q - e| * k(g)."""
        if g == f1:
            return 0.0, d1
        e = self.anc[f1].get(g)
        if e is not None:
            k1 = self.k[f1][c]
            return (self.root[f1][c] + d1 * k1) - (self.root[g][c] + e * self.k[g][c]), e
        return self.att_points((f1, d1), (g, 0.0), c), 0.0

    def att(self, i, j, c):
        """Attenuation between nodes i and j (the same arithmetic as row())."""
        f1, d1 = self.pos[i]
        f2, d2 = self.pos[j]
        if self.ftr[f1] != self.ftr[f2]:
            return INF
        base, e = self._entry(f1, d1, f2, c)
        return base + abs(d2 - e) * self.k[f2][c]

    def row(self, i, c, max_att):
        """Nodes j != i with att(i, j) <= max_att: (ids, attenuations)."""
        f1, d1 = self.pos[i]
        out_ids, out_att = [], []
        for g in self.feeders_of_tr[self.ftr[f1]]:
            ps = self.byf_pos[g]
            if not ps:
                continue
            k = self.k[g][c]
            base, e = self._entry(f1, d1, g, c)
            room = max_att - base
            if room < 0:
                continue
            if k > 0:
                lo = bisect.bisect_left(ps, e - room / k - 1e-9)
                hi = bisect.bisect_right(ps, e + room / k + 1e-9)
            else:
                lo, hi = 0, len(ps)
            if lo >= hi:
                continue
            # may include an entry a rounding error over max_att: callers filter levels
            out_ids += self.byf_ids[g][lo:hi]
            out_att += [base + abs(q - e) * k for q in ps[lo:hi]]
        if i in out_ids:
            m = out_ids.index(i)
            del out_ids[m]
            del out_att[m]
        return out_ids, out_att


class MatrixGeometry:
    """Attenuation from an explicit table (Topology.matrix)."""

    def __init__(self, topo):
        self.n = len(topo.nodes)
        self.m = dict(topo.matrix)
        self.adj = [[] for _ in range(self.n)]
        for (i, j) in sorted(self.m):
            self.adj[i].append(j)

    def att(self, i, j, c):
        v = self.m.get((i, j))
        return INF if v is None else v[c]

    def row(self, i, c, max_att):
        ids, atts = [], []
        for j in self.adj[i]:
            a = self.m[(i, j)][c]
            if a <= max_att:
                ids.append(j)
                atts.append(a)
        return ids, atts

    def att_points(self, p, q, c):
        return INF

    def point(self, transformer, feeder, at_m):
        raise TopologyError("a matrix topology has no positions")

    def move(self, i, transformer, feeder, at_m):
        raise TopologyError("a matrix topology has no positions to move to")
