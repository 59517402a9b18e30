"""Per-meter identity of a fleet, derived from the fleet seed and the meter's
index (host side, CPython). docs/fleet.md, "Identity", is the reference.

A fleet of N meters is built from one template profile; what must differ
between two meters is derived here, deterministically, from ``(seed, k)``
with k = 1..N the meter's index in the fleet (its order in the topology):

    serial number    16 BCD digits: 8 digits of the fleet's serial base (from
                     the seed, or [identity] serial_base) then k (8 digits)
    Neuron ID        2-byte prefix ([identity] neuron_prefix, default 00 E1)
                     then a 32-bit bijection of k: ((k * M) mod 2**32) XOR H
                     (M odd, H from the seed): unique for every k < 2**32,
                     scattered (discovery splits Neuron-ID ranges), and
                     invertible: ``index_of_neuron_id`` finds k without a table
    PLC unicast key  12 bytes  \
    MEP MAK, MBK     16 bytes   } BLAKE2b-keyed with the seed, over "k/role"
    load-model seed  32 bits   /
    PLC broadcast    12 bytes, per shard by default (the meters of one data
                     concentrator share it, or broadcasts could not be
                     verified); ``broadcast = "meter"`` or ``"fleet"`` in the
                     config changes that
    utility serial   ET03: "<prefix><k>"

Nothing here is stored per meter: an Identity is recomputed on demand (a few
µs), so a DC's key lookup for 100,000 meters costs no table.

``select(spec, ...)`` expands the ``meters = ...`` selections of the fleet
config's ``[[inject]]`` entries (ranges, names, ``random:5%``, transformers).
"""
import hashlib
import random
import re

NEURON_PREFIX = b"\x00\xE1"
_M = 0x9E3779B1                  # odd: k -> k * M mod 2**32 is a bijection
_M_INV = pow(_M, -1, 1 << 32)


def _digest(seed, what, n):
    return hashlib.blake2b(str(what).encode(), digest_size=n,
                           key=("osgp-fleet/%s" % (seed,)).encode()[:64]).digest()


def _u32(seed, what):
    return int.from_bytes(_digest(seed, what, 4), "big")


class Identity:
    """What differs between two meters of a fleet (see the module docstring)."""

    __slots__ = ("index", "serial", "neuron_id", "plc_key", "bcast_key", "mak", "mbk",
                 "load_seed", "utility_serial")

    def __init__(self, index, serial, neuron_id, plc_key, bcast_key, mak, mbk, load_seed,
                 utility_serial):
        self.index = index
        self.serial = serial
        self.neuron_id = neuron_id
        self.plc_key = plc_key
        self.bcast_key = bcast_key
        self.mak = mak
        self.mbk = mbk
        self.load_seed = load_seed
        self.utility_serial = utility_serial

    def as_dict(self):
        return {"index": self.index, "serial": self.serial, "neuron_id": self.neuron_id.hex(),
                "plc_key": self.plc_key.hex(), "bcast_key": self.bcast_key.hex(),
                "mak": self.mak.hex(), "mbk": self.mbk.hex(), "load_seed": self.load_seed,
                "utility_serial": self.utility_serial}

    def __repr__(self):
        return "Identity(#%d serial %s nid %s)" % (self.index, self.serial, self.neuron_id.hex())


class IdentityScheme:
    """Derives identities for one fleet seed.

    seed           the fleet seed (int or str)
    neuron_prefix  2 bytes
    serial_base    up to 8 decimal digits (default: from the seed)
    broadcast      "shard" (default), "fleet" or "meter": who shares a PLC
                   broadcast key
    utility_prefix ET03 text before the index
    """

    def __init__(self, seed=0, neuron_prefix=NEURON_PREFIX, serial_base=None, broadcast="shard",
                 utility_prefix="EMU-"):
        self.seed = seed
        neuron_prefix = bytes(neuron_prefix)
        if len(neuron_prefix) != 2:
            raise ValueError("neuron_prefix: 2 bytes")
        self.neuron_prefix = neuron_prefix
        if serial_base is None:
            serial_base = _u32(seed, "serial") % 100_000_000
        serial_base = str(serial_base)
        if not re.fullmatch(r"\d{1,8}", serial_base):
            raise ValueError("serial_base: up to 8 decimal digits")
        self.serial_base = serial_base.rjust(8, "0")
        if broadcast not in ("shard", "fleet", "meter"):
            raise ValueError("broadcast: \"shard\", \"fleet\" or \"meter\"")
        self.broadcast = broadcast
        self.utility_prefix = utility_prefix
        self._h = _u32(seed, "neuron-id")

    # -- the Neuron ID bijection --------------------------------------------------
    def neuron_id(self, k):
        low = ((k * _M) & 0xFFFFFFFF) ^ self._h
        return self.neuron_prefix + low.to_bytes(4, "big")

    def index_of_neuron_id(self, nid):
        """k of a Neuron ID of this scheme, or None (another prefix)."""
        nid = bytes(nid)
        if len(nid) != 6 or nid[:2] != self.neuron_prefix:
            return None
        low = int.from_bytes(nid[2:], "big") ^ self._h
        k = (low * _M_INV) & 0xFFFFFFFF
        return k

    # -- keys -----------------------------------------------------------------------
    def plc_key(self, k):
        return _digest(self.seed, "%d/plc" % k, 12)

    def broadcast_key(self, k, shard=None):
        if self.broadcast == "meter":
            return _digest(self.seed, "%d/bcast" % k, 12)
        if self.broadcast == "fleet" or shard is None:
            return _digest(self.seed, "fleet/bcast", 12)
        return _digest(self.seed, "shard/%s/bcast" % shard, 12)

    def identity(self, k, shard=None):
        """The Identity of meter k (1-based) in shard `shard` (its transformer id)."""
        if not 1 <= k < 100_000_000:
            raise ValueError("meter index 1 .. 99,999,999")
        return Identity(k, self.serial_base + "%08d" % k, self.neuron_id(k), self.plc_key(k),
                        self.broadcast_key(k, shard), _digest(self.seed, "%d/mak" % k, 16),
                        _digest(self.seed, "%d/mbk" % k, 16), _u32(self.seed, "%d/load" % k),
                        "%s%d" % (self.utility_prefix, k))


# -- selections ----------------------------------------------------------------------

class SelectionError(ValueError):
    pass


def _rng(seed, what):
    return random.Random("osgp-fleet/%s/%s" % (seed, what))


def select(spec, ids, seed=0, what="select", transformer_of=None):
    """Meter indices (1-based, sorted) chosen by ``spec``: a string or a list
    of strings, each item one of

        all                    every meter
        7, 1-20                indices (1-based, in topology order)
        m007, m001-m020        meter ids (a range: same prefix, numbers between)
        random:5%, random:12   a seeded sample of the whole fleet (seed, what)
        transformer:T2         every meter under transformer T2

    Items are joined (union). ``ids``: the meter ids in index order;
    ``transformer_of``: {meter id: transformer id}."""
    n = len(ids)
    if isinstance(spec, int) and not isinstance(spec, bool):
        spec = str(spec)
    items = spec if isinstance(spec, list) else str(spec).split(",")
    index = None
    out = set()
    for item in items:
        item = str(item).strip()
        if not item:
            continue
        if item == "all":
            out.update(range(1, n + 1))
            continue
        m = re.fullmatch(r"random:(\d+(?:\.\d+)?)(%?)", item)
        if m:
            x = float(m.group(1))
            count = int(round(n * x / 100.0)) if m.group(2) else int(x)
            if m.group(2) and x > 0 and count == 0:
                count = 1
            if count > n:
                raise SelectionError("%s: %s: only %d meters" % (what, item, n))
            out.update(k + 1 for k in _rng(seed, "%s/%s" % (what, item)).sample(range(n), count))
            continue
        m = re.fullmatch(r"transformer:(\S+)", item)
        if m:
            if transformer_of is None:
                raise SelectionError("%s: %s: transformers unknown" % (what, item))
            tr = m.group(1)
            got = [k + 1 for k, mid in enumerate(ids) if transformer_of.get(mid) == tr]
            if not got:
                raise SelectionError("%s: no meter under transformer %r" % (what, tr))
            out.update(got)
            continue
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        if m:
            a = int(m.group(1))
            b = int(m.group(2) or a)
            if not 1 <= a <= b <= n:
                raise SelectionError("%s: %s is outside 1-%d" % (what, item, n))
            out.update(range(a, b + 1))
            continue
        if index is None:
            index = {mid: k + 1 for k, mid in enumerate(ids)}
        if item in index:
            out.add(index[item])
            continue
        m = re.fullmatch(r"([A-Za-z_-]*?)(\d+)-\1?(\d+)", item)
        if m and (m.group(1) + m.group(2)) in index:
            pre, a, b = m.group(1), m.group(2), m.group(3)
            width = len(a)
            last = "%s%0*d" % (pre, width, int(b))
            if last not in index:
                raise SelectionError("%s: %s: no meter %r" % (what, item, last))
            for v in range(int(a), int(b) + 1):
                mid = "%s%0*d" % (pre, width, v)
                if mid in index:
                    out.add(index[mid])
            continue
        raise SelectionError("%s: %r: expected all, 1-20, m001-m020, random:5%%, random:12 or "
                             "transformer:T1" % (what, item))
    return sorted(out)
