"""Fleet configuration (docs/fleet.md): the [fleet], [identity] and
[[inject]] keys checked into a FleetConfig, and ``coerce_config`` taking
None, a dict, a TOML path or a FleetConfig. Split out of tools/fleet.py
(which re-exports every name here)."""
import os

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

from . import fleet_identity as fid
from . import scenario as scen
from .topology import Topology

DEFAULT_DOMAIN = b"\x42"
PER_TRANSFORMER = 250


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
