# The DC's defaults and addressing: which meter a spec names (Target,
# parse_meter[s]) and catalogue names to table/procedure numbers.
# Split out of tools/dc.py (docs/dc.md); importable from osgp_host.dc too.
import re

from osgp_meter import lontalk as L
from osgp_meter.plc_node import TX_TIMER_MS

from . import catalogue


# Emulator defaults (docs/dc.md): the reference 2.1 addresses.
DEFAULT_DOMAIN = b"\x42"
DC_SUBNET = 1
DC_NODE = 126
DC_NEURON_ID = bytes.fromhex("00 0D C0 00 00 01")
DEFAULT_KEY = bytes(range(1, 13))       # the built-in profile's plc_unicast key
DEFAULT_TIMEOUT_MS = 768                # LonTalk tx timer index 11
DEFAULT_TX_RETRIES = 3
DEFAULT_RETRIES = 2


def timer_index(ms):
    """The smallest LonTalk transmit-timer index whose time is >= ms (15,
    3072 ms, at most)."""
    for i, t in enumerate(TX_TIMER_MS):
        if t >= ms:
            return i
    return len(TX_TIMER_MS) - 1


# ---------------------------------------------------------------- addressing

class Target:
    """A meter as the DC addresses it: subnet/node (2a) in the DC's domain,
    or a Neuron ID (format 3). ``name`` is how the user called it."""

    __slots__ = ("subnet", "node", "neuron_id", "name")

    def __init__(self, subnet=None, node=None, neuron_id=None, name=None):
        if neuron_id is not None:
            neuron_id = bytes(neuron_id)
            if len(neuron_id) != 6:
                raise ValueError("a Neuron ID is 6 bytes")
        elif not (isinstance(subnet, int) and isinstance(node, int)
                  and 1 <= subnet <= 255 and 1 <= node <= 127):
            raise ValueError("subnet 1-255 and node 1-127 expected, got %r/%r" % (subnet, node))
        self.subnet = subnet
        self.node = node
        self.neuron_id = neuron_id
        self.name = name

    @property
    def key(self):
        return self.neuron_id if self.neuron_id is not None else (self.subnet, self.node)

    @property
    def dest(self):
        """The PlcNode.send destination."""
        if self.neuron_id is not None:
            return (L.AF_NEURON_ID, self.subnet or 0, self.neuron_id)
        return (L.AF_SUBNET_NODE, self.subnet, self.node)

    def address(self):
        if self.neuron_id is not None:
            return "nid:" + self.neuron_id.hex()
        return "%d/%d" % (self.subnet, self.node)

    def __str__(self):
        a = self.address()
        return a if self.name is None or self.name == a else "%s (%s)" % (self.name, a)

    def __repr__(self):
        return "Target(%s)" % self

    def __eq__(self, other):
        return isinstance(other, Target) and self.key == other.key

    def __hash__(self):
        return hash(self.key)


_SN = re.compile(r"(\d+)/(\d+)")


def parse_meter(spec, names=None):
    """A Target from: a Target, (subnet, node), 6 Neuron-ID bytes, "1/5",
    "nid:000102030405" (or 12 hex digits), or a name in ``names`` ({name:
    any of these})."""
    if isinstance(spec, Target):
        return spec
    if isinstance(spec, (bytes, bytearray)):
        return Target(neuron_id=spec)
    if isinstance(spec, tuple) and len(spec) == 2:
        return Target(spec[0], spec[1])
    text = str(spec).strip()
    if names and text in names:
        t = parse_meter(names[text])
        return Target(t.subnet, t.node, t.neuron_id, text)
    m = _SN.fullmatch(text)
    if m:
        return Target(int(m.group(1)), int(m.group(2)), name=text)
    low = text.lower()
    if low.startswith("nid:"):
        low = low[4:]
    if re.fullmatch(r"[0-9a-f]{12}", low):
        return Target(neuron_id=bytes.fromhex(low), name=text)
    raise ValueError("unknown meter %r (expected subnet/node like 1/5, nid:<12 hex digits>%s)"
                     % (text, " or a name like %s" % next(iter(names)) if names else ""))


def parse_meters(text, names=None, everyone=None):
    """A list of Targets from a comma-separated list of meters; each item
    may be a range "1/1-20" (nodes 1..20 of subnet 1) or "m001-m010"
    (names), and "all" stands for ``everyone``."""
    out = []
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        if item == "all":
            if everyone is None:
                raise ValueError("'all' needs a known fleet (--local)")
            out.extend(parse_meter(m, names) for m in everyone)
            continue
        m = re.fullmatch(r"(\d+)/(\d+)-(\d+)", item)
        if m:
            s, a, b = int(m.group(1)), int(m.group(2)), int(m.group(3))
            out.extend(Target(s, n, name="%d/%d" % (s, n)) for n in range(a, b + 1))
            continue
        m = re.fullmatch(r"([A-Za-z_]+)(\d+)-\1?(\d+)", item)
        if m and names:
            pre, a, b = m.group(1), m.group(2), m.group(3)
            width = len(a)
            out.extend(parse_meter("%s%0*d" % (pre, width, n), names)
                       for n in range(int(a), int(b) + 1))
            continue
        out.append(parse_meter(item, names))
    if not out:
        raise ValueError("no meter given")
    return out


def table_id(table):
    """A table number from an int or a catalogue name (BT01, ET04, "Clock")."""
    if isinstance(table, int):
        return table
    entry = catalogue.lookup_table(table)
    if entry is None:
        raise ValueError("no table %r in the catalogue" % (table,))
    return entry["id"]


def procedure_number(proc):
    if isinstance(proc, int):
        return proc
    entry = catalogue.lookup_procedure(proc)
    if entry is None:
        raise ValueError("no procedure %r in the catalogue" % (proc,))
    return entry["number"]
