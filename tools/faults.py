"""Fault injection for the virtual PLC channel: what can go wrong, when, and
for which nodes or links (host side, CPython).

A ``Fault`` is plain data. The same faults come from Python
(``channel.add_fault(Fault(...))`` or the helper methods on ``Channel``) and
from a topology file (``[[fault]]`` tables, parsed by ``fault_from_toml``).
All randomness (which frames a probabilistic fault hits, which byte a
corruption flips) comes from the channel's seeded PRNG.

Kinds
-----
frame faults, decided per delivery (one sender -> one receiver):
    drop       the frame is not delivered
    delay      delivered ``delay_ms`` later than its end on the wire
    duplicate  delivered, and ``copies`` more times ``delay_ms`` apart
    corrupt    one byte is flipped (XOR with a non-zero mask), so the CRC fails
state faults, applied at the start of each window and undone at its end:
    offline    the nodes are off the line (hear nothing, send nothing)
    degrade    extra attenuation ``db`` on a link or on all links of the nodes
    noise      an extra noise source of ``level_dbuv`` at a position
    move       the node moves to ``feeder``/``at_m`` (or a ``transformer``'s
               busbar) at the start; back at the end when the window has one

Times are virtual milliseconds since the start of the simulation.
"""
import re

FRAME_KINDS = ("drop", "delay", "duplicate", "corrupt")
STATE_KINDS = ("offline", "degrade", "noise", "move")
KINDS = FRAME_KINDS + STATE_KINDS
DIRECTIONS = ("any", "from", "to")


class FaultError(ValueError):
    """A fault description that cannot be used; the message says why."""


_UNITS = {"us": 0.001, "ms": 1, "s": 1000, "sec": 1000, "min": 60_000, "m": 60_000,
          "h": 3_600_000, "d": 86_400_000}


def parse_duration_ms(v, where="duration"):
    """90 (seconds) | "90s" | "250ms" | "5min" | "1h30min" | "2d" -> int ms."""
    if isinstance(v, bool):
        raise FaultError("%s: %r is not a duration" % (where, v))
    if isinstance(v, (int, float)):
        if v < 0:
            raise FaultError("%s: %r is negative" % (where, v))
        return int(round(v * 1000))
    if not isinstance(v, str):
        raise FaultError("%s: %r is not a duration" % (where, v))
    s = v.strip().replace(" ", "")
    parts = re.findall(r"(\d+(?:\.\d+)?)(us|ms|sec|min|s|m|h|d)", s)
    if not parts or "".join(a + b for a, b in parts) != s:
        raise FaultError("%s: cannot read %r as a duration (say e.g. 90, \"90s\", "
                         "\"250ms\", \"5min\", \"1h30min\")" % (where, v))
    return int(round(sum(float(a) * _UNITS[u] for a, u in parts)))


class Fault:
    """One fault. See the module docstring for the kinds.

    Selection (frame faults, degrade): ``nodes`` with ``direction`` "any"
    (frames from or to them), "from" or "to"; or ``link=(a, b)`` (both ways
    unless ``directed``); neither: every frame. ``probability`` applies per
    delivery. Timing: ``windows`` [(start_ms, end_ms or None), ...]; or
    ``at_ms``/``until_ms``; optionally periodic with ``every_ms`` and
    ``for_ms`` (active for the first ``for_ms`` of every ``every_ms`` inside
    the window). No timing: always active (state faults then apply at 0).
    """

    __slots__ = ("kind", "nodes", "direction", "link", "directed", "probability",
                 "windows", "every_ms", "for_ms", "delay_ms", "copies", "byte", "xor",
                 "db", "carrier", "feeder", "at_m", "transformer", "level_dbuv", "name",
                 "_nodeset")

    def __init__(self, kind, nodes=None, direction="any", link=None, directed=False,
                 probability=1.0, windows=None, at_ms=None, until_ms=None,
                 every_ms=None, for_ms=None, delay_ms=0, copies=1, byte=None, xor=None,
                 db=0.0, carrier=None, feeder=None, at_m=0.0, transformer=None,
                 level_dbuv=None, name=None):
        if kind not in KINDS:
            raise FaultError("fault kind %r is not one of %s" % (kind, ", ".join(KINDS)))
        self.kind = kind
        if isinstance(nodes, str):
            nodes = [nodes]
        self.nodes = tuple(nodes) if nodes is not None else None
        if direction not in DIRECTIONS:
            raise FaultError("%s: direction %r is not one of %s"
                             % (kind, direction, ", ".join(DIRECTIONS)))
        self.direction = direction
        if link is not None:
            link = tuple(link)
            if len(link) != 2:
                raise FaultError("%s: link must name two nodes, got %r" % (kind, link))
            if self.nodes is not None:
                raise FaultError("%s: give nodes or link, not both" % kind)
        self.link = link
        self.directed = bool(directed)
        if not 0.0 <= probability <= 1.0:
            raise FaultError("%s: probability %r is not in 0..1" % (kind, probability))
        self.probability = float(probability)
        if windows is None:
            windows = [] if at_ms is None and until_ms is None else [(at_ms or 0, until_ms)]
        elif at_ms is not None or until_ms is not None:
            raise FaultError("%s: give windows or at/until, not both" % kind)
        ws = []
        for w in windows:
            w = tuple(w)
            if len(w) == 1:
                a, b = w[0], None
            elif len(w) == 2:
                a, b = w
            else:
                raise FaultError("%s: window %r must be (start, end)" % (kind, w))
            a = int(a)
            b = None if b is None else int(b)
            if a < 0 or (b is not None and b <= a):
                raise FaultError("%s: window %r must have 0 <= start < end" % (kind, w))
            ws.append((a, b))
        ws.sort(key=lambda w: w[0])
        self.windows = ws
        if (every_ms is None) != (for_ms is None):
            raise FaultError("%s: every and for go together" % kind)
        if every_ms is not None and not 0 < for_ms <= every_ms:
            raise FaultError("%s: need 0 < for <= every" % kind)
        self.every_ms = every_ms
        self.for_ms = for_ms
        self.delay_ms = int(delay_ms)
        if self.delay_ms < 0:
            raise FaultError("%s: delay must not be negative" % kind)
        self.copies = int(copies)
        if self.copies < 1:
            raise FaultError("duplicate: copies must be at least 1")
        self.byte = byte
        if xor is not None and not 1 <= xor <= 255:
            raise FaultError("corrupt: xor must be 1..255")
        self.xor = xor
        self.db = float(db)
        if carrier not in (None, 0, 1):
            raise FaultError("%s: carrier must be None, 0 (primary) or 1 (secondary)" % kind)
        self.carrier = carrier
        self.feeder = feeder
        self.at_m = float(at_m)
        self.transformer = transformer
        self.level_dbuv = level_dbuv
        self.name = name or kind
        if kind in STATE_KINDS and self.probability != 1.0:
            raise FaultError("%s: probability applies to frame faults only" % kind)
        if kind in ("offline", "move") and not self.nodes:
            raise FaultError("%s: needs nodes" % kind)
        if kind == "move":
            if len(self.nodes) != 1:
                raise FaultError("move: moves one node at a time")
            if feeder is None and transformer is None:
                raise FaultError("move: needs a feeder (and at_m) or a transformer")
            if every_ms is not None:
                raise FaultError("move: cannot be periodic")
        if kind == "degrade" and self.db == 0.0:
            raise FaultError("degrade: needs db (extra attenuation in dB)")
        if kind == "noise" and (level_dbuv is None or (feeder is None and transformer is None)):
            raise FaultError("noise: needs level_dbuv and a position (feeder/at_m or transformer)")
        if kind in ("delay",) and self.delay_ms <= 0:
            raise FaultError("delay: needs delay_ms > 0")
        self._nodeset = frozenset(self.nodes) if self.nodes else None

    def __repr__(self):
        return "Fault(%s)" % ", ".join(
            "%s=%r" % (k, getattr(self, k)) for k in self.__slots__[:-1]
            if getattr(self, k) not in (None, (), [], False, 0, 0.0) or k == "kind")

    # -- selection --------------------------------------------------------------

    def matches(self, src, dst):
        """Does this fault select a delivery src -> dst (node ids)?"""
        ns = self._nodeset
        if ns is not None:
            d = self.direction
            if d == "any":
                return src in ns or dst in ns
            if d == "from":
                return src in ns
            return dst in ns
        if self.link is not None:
            a, b = self.link
            if src == a and dst == b:
                return True
            return not self.directed and src == b and dst == a
        return True

    def active(self, t_ms):
        """Is the fault in effect at virtual time ``t_ms``?"""
        ws = self.windows
        if ws:
            for a, b in ws:
                if a <= t_ms and (b is None or t_ms < b):
                    start = a
                    break
            else:
                return False
        else:
            start = 0
        if self.every_ms is not None:
            return (t_ms - start) % self.every_ms < self.for_ms
        return True

    def edges(self):
        """Times (ms) at which a state fault switches: [(t, on), ...].

        Periodic faults switch at every period boundary inside their windows
        (an open window with a period yields edges lazily: see Channel)."""
        ws = self.windows or [(0, None)]
        out = []
        for a, b in ws:
            out.append((a, True))
            if b is not None:
                out.append((b, False))
        return out


# -- TOML ---------------------------------------------------------------------

_TOML_KEYS = {
    "kind", "nodes", "node", "direction", "link", "directed", "probability",
    "at", "until", "windows", "every", "for", "delay", "delay_ms", "copies", "byte",
    "xor", "db", "carrier", "feeder", "at_m", "transformer", "level_dbuv", "name",
}


def fault_from_toml(d, where="[[fault]]"):
    """A ``[[fault]]`` table -> Fault. Durations accept seconds or unit strings."""
    if not isinstance(d, dict):
        raise FaultError("%s: must be a table" % where)
    for k in d:
        if k not in _TOML_KEYS:
            import difflib
            near = difflib.get_close_matches(k, sorted(_TOML_KEYS), n=1)
            raise FaultError("%s: unknown key %r%s" % (
                where, k, " (did you mean %r?)" % near[0] if near else ""))
    if "kind" not in d:
        raise FaultError("%s: needs kind = one of %s" % (where, ", ".join(KINDS)))
    kw = {}
    nodes = d.get("nodes", d.get("node"))
    if "nodes" in d and "node" in d:
        raise FaultError("%s: give node or nodes, not both" % where)
    if nodes is not None:
        if isinstance(nodes, str):
            nodes = [nodes]
        if not isinstance(nodes, list) or not all(isinstance(n, str) for n in nodes):
            raise FaultError("%s: nodes must be a list of node ids" % where)
        kw["nodes"] = nodes
    for k in ("direction", "name", "feeder", "transformer"):
        if k in d:
            if not isinstance(d[k], str):
                raise FaultError("%s: %s must be a string" % (where, k))
            kw[k] = d[k]
    if "link" in d:
        link = d["link"]
        if not (isinstance(link, list) and len(link) == 2 and all(isinstance(x, str) for x in link)):
            raise FaultError("%s: link must be [\"a\", \"b\"]" % where)
        kw["link"] = link
    for k in ("directed",):
        if k in d:
            if not isinstance(d[k], bool):
                raise FaultError("%s: %s must be true or false" % (where, k))
            kw[k] = d[k]
    for k in ("probability", "db", "at_m", "level_dbuv"):
        if k in d:
            v = d[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise FaultError("%s: %s must be a number" % (where, k))
            kw[k] = v
    for k in ("copies", "byte", "xor"):
        if k in d:
            v = d[k]
            if isinstance(v, bool) or not isinstance(v, int):
                raise FaultError("%s: %s must be a whole number" % (where, k))
            kw[k] = v
    if "carrier" in d:
        c = d["carrier"]
        if c not in ("primary", "secondary"):
            raise FaultError("%s: carrier must be \"primary\" or \"secondary\"" % where)
        kw["carrier"] = 0 if c == "primary" else 1
    if "at" in d:
        kw["at_ms"] = parse_duration_ms(d["at"], where + " at")
    if "until" in d:
        kw["until_ms"] = parse_duration_ms(d["until"], where + " until")
    if "windows" in d:
        ws = d["windows"]
        if not isinstance(ws, list):
            raise FaultError("%s: windows must be a list of [start, end]" % where)
        out = []
        for w in ws:
            if not isinstance(w, list) or not 1 <= len(w) <= 2:
                raise FaultError("%s: window %r must be [start, end]" % (where, w))
            a = parse_duration_ms(w[0], where + " window")
            b = parse_duration_ms(w[1], where + " window") if len(w) == 2 else None
            out.append((a, b))
        kw["windows"] = out
    if "every" in d:
        kw["every_ms"] = parse_duration_ms(d["every"], where + " every")
    if "for" in d:
        kw["for_ms"] = parse_duration_ms(d["for"], where + " for")
    if "delay" in d and "delay_ms" in d:
        raise FaultError("%s: give delay or delay_ms, not both" % where)
    if "delay" in d:
        kw["delay_ms"] = parse_duration_ms(d["delay"], where + " delay")
    if "delay_ms" in d:
        v = d["delay_ms"]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise FaultError("%s: delay_ms must be a number" % where)
        kw["delay_ms"] = int(v)
    try:
        return Fault(d["kind"], **kw)
    except FaultError as exc:
        raise FaultError("%s: %s" % (where, exc)) from None
