# What a commit of the meter's non-volatile state contains, and how a saved
# state is put back (docs/persistence.md). Storage is the driver's business:
# a commit hands one payload (nvlog entries) to `sink(payload)`, which makes
# it durable (a journal record on disk or flash, an SQLite row) or raises.
#
# The commit rule: the driver calls fw.commit() after every request it
# answers, before the answer leaves, and after every tick; so whatever the
# meter acknowledged is durable, and a power cut loses at most work nobody
# was told about. A commit carries only what changed: the byte ranges of the
# non-volatile tables written since the last commit (TableStore.dirty), the
# nv_parts whose bytes differ from the last committed ones, and the meta
# part (MEP sequence number, clock offset, last procedure PSN) if it moved.
from . import nvlog
from .catalogue import T_FLAGS, F_NV

META = "_meta"           # reserved nv_part name: the meta bytes below


def meta_bytes(fw):
    """MEP sequence number u32, clock offset (ms) i64, last PSN u8, LE."""
    m = fw.meter
    off = m.clock_offset & 0xFFFFFFFFFFFFFFFF
    return ((fw.mep.seq & 0xFFFFFFFF).to_bytes(4, "little") + off.to_bytes(8, "little")
            + bytes((m.last_psn & 0xFF,)))


def put_meta(fw, b):
    m = fw.meter
    fw.mep.seq = int.from_bytes(b[0:4], "little")
    off = int.from_bytes(b[4:12], "little")
    m.clock_offset = off - (1 << 64) if off >= 1 << 63 else off
    m.last_psn = b[12]


def _put(store, tid, size, offset, data):
    """Raw bytes back into the store: table `tid` `size` bytes long (grown
    or cut as TableStore._own does), `data` at `offset`; no size evaluation."""
    w = store.written.get(tid)
    if w is None or len(w) != size:
        fresh = bytearray(size)
        old = store.content(tid)
        n = len(old) if len(old) < size else size
        fresh[0:n] = old[0:n]
        store.written[tid] = w = fresh
    w[offset:offset + len(data)] = data
    if tid in store._dims:
        store._sizes = None


def _merged(r):
    """Dirty ranges [lo0, hi0, lo1, hi1, ...] sorted, overlaps joined."""
    pairs = sorted([(r[i], r[i + 1]) for i in range(0, len(r), 2)])
    out = [pairs[0][0], pairs[0][1]]
    for lo, hi in pairs[1:]:
        if lo <= out[-1]:
            if hi > out[-1]:
                out[-1] = hi
        else:
            out.append(lo)
            out.append(hi)
    return out


class _Parts(dict):
    """meter.nv_parts while persisting: a part registered after the load
    (Meter.nv_part) gets its saved bytes at once, before its module can
    act on the defaults (a transaction resumed at boot must see its
    done-record)."""

    def __init__(self, owner):
        super().__init__()
        self.owner = owner

    def __setitem__(self, name, part):
        super().__setitem__(name, part)
        self.owner._registered(name, part)


class Persist:
    """One meter's commit state: fw.nv (attach below)."""
    __slots__ = ("fw", "sink", "last", "nxt", "orphans")

    def __init__(self, fw, sink=None):
        self.fw = fw
        self.sink = sink          # sink(payload): make it durable or raise
        self.last = {}            # part name -> bytes as last committed
        self.nxt = None
        self.orphans = {}         # saved parts nobody registered (yet): kept
        if fw.meter.store.dirty is None:
            fw.meter.store.dirty = {}
        parts = _Parts(self)
        old = fw.meter.nv_parts
        if old:
            parts.update(old)              # registered already: no adoption needed
        fw.meter.nv_parts = parts

    # -- committing ------------------------------------------------------------
    def changes(self):
        """The payload of everything changed since the last commit (b"" when
        nothing did). Takes effect with done(), once the payload is durable."""
        out = []
        fw = self.fw
        meter = fw.meter
        store = meter.store
        d = store.dirty
        if d:
            tables = store.tables
            written = store.written
            for tid in sorted(d):
                e = tables.get(tid)
                if e is None or not e[T_FLAGS] & F_NV:
                    continue
                r = d[tid]
                w = written.get(tid)
                if r[0] < 0:
                    out.append(nvlog.reset_entry(tid))
                    r = [0, len(w) if w is not None else 0]
                if w is None:
                    continue
                size = len(w)
                if len(r) > 2:
                    r = _merged(r)
                for i in range(0, len(r), 2):
                    lo = r[i]
                    hi = r[i + 1]
                    if hi > size:
                        hi = size       # shrunk since (a dimension table moved)
                    if lo > hi:
                        lo = hi
                    # (an empty range still says: this meter owns the table now)
                    out.append(nvlog.table_entry(tid, size, lo, memoryview(w)[lo:hi]))
        last = self.last
        nxt = None
        parts = meter.nv_parts
        if parts:
            for name in parts:
                b = parts[name][0]()
                if b != last.get(name):
                    out.append(nvlog.part_entry(name, b))
                    if nxt is None:
                        nxt = {}
                    nxt[name] = bytes(b)
        m = meta_bytes(fw)
        if m != last.get(META):
            out.append(nvlog.part_entry(META, m))
            if nxt is None:
                nxt = {}
            nxt[META] = m
        self.nxt = nxt
        return b"".join(out)

    def done(self):
        """The last changes() payload is durable: start the next commit."""
        self.fw.meter.store.dirty.clear()
        if self.nxt:
            self.last.update(self.nxt)
        self.nxt = None

    def commit(self):
        """changes() to the sink, then done(); the payload's length (0:
        nothing changed, nothing written)."""
        p = self.changes()
        if p:
            self.sink(p)
        self.done()
        return len(p)

    def snapshot(self):
        """The payload of the whole non-volatile state (compaction)."""
        fw = self.fw
        store = fw.meter.store
        tables = store.tables
        out = []
        for tid in sorted(store.written):
            e = tables.get(tid)
            if e is not None and e[T_FLAGS] & F_NV:
                w = store.written[tid]
                out.append(nvlog.table_entry(tid, len(w), 0, w))
        parts = fw.meter.nv_parts or {}
        for name in parts:
            out.append(nvlog.part_entry(name, parts[name][0]()))
        for name in self.orphans:
            if name not in parts:
                out.append(nvlog.part_entry(name, self.orphans[name]))
        out.append(nvlog.part_entry(META, meta_bytes(fw)))
        return b"".join(out)

    # -- restoring -------------------------------------------------------------
    def apply(self, payload, snapshot=False):
        """Put one saved payload back into the firmware, all of it or (on a
        malformed payload: ValueError) nothing. snapshot=True: the payload is
        the whole state, so non-volatile tables it lacks go back to default.
        (A part's put() must take any bytes its get() gave.)"""
        es = nvlog.entries(payload)          # decoded (checked) before anything changes
        for e in es:
            if e[0] == nvlog.E_PART and e[1] == META and len(e[4]) != 13:
                raise ValueError("nvlog: bad meta part")
        fw = self.fw
        meter = fw.meter
        store = meter.store
        if snapshot:
            self.orphans = {}
            for tid in list(store.written):
                e = store.tables.get(tid)
                if e is not None and e[T_FLAGS] & F_NV:
                    store.reset(tid)
        parts = meter.nv_parts or {}
        for kind, key, size, off, data in es:
            if kind == nvlog.E_TABLE:
                if key in store.tables:      # a table the catalogue dropped: ignored
                    _put(store, key, size, off, data)
            elif kind == nvlog.E_RESET:
                store.reset(key)
            elif key == META:
                put_meta(fw, data)
            elif key in parts:
                parts[key][1](data)
            else:
                self.orphans[key] = data
        meter.changed()

    def loaded(self):
        """The firmware now holds exactly what storage holds (after a load
        or a snapshot): nothing is dirty, every part as committed."""
        self.adopt()
        self.fw.meter.store.dirty.clear()
        last = self.last = {}
        parts = self.fw.meter.nv_parts or {}
        for name in parts:
            last[name] = bytes(parts[name][0]())
        last[META] = meta_bytes(self.fw)
        self.nxt = None

    def _registered(self, name, part):
        data = self.orphans.pop(name, None)
        if data is not None:
            part[1](data)
            self.last[name] = data

    def adopt(self):
        """Give parts registered after the load their saved bytes."""
        parts = self.fw.meter.nv_parts
        if not parts or not self.orphans:
            return
        for name in list(self.orphans):
            if name in parts:
                data = self.orphans.pop(name)
                parts[name][1](data)
                self.last[name] = data


def attach(fw, sink):
    """Start persisting `fw` into `sink`: fw.nv, dirty tracking on. Load
    saved payloads with fw.nv.apply(...) then call fw.nv.loaded()."""
    fw.nv = p = Persist(fw, sink)
    return p
