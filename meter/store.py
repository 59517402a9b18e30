# The table store: every catalogue table, paid for only once written.
#
# Contents resolve in three layers, cheapest first:
#   1. `written`  - this meter's own copy (a bytearray), created on first write;
#   2. `image`    - the profile's initial bytes, shared by every meter built
#                   from the same profile;
#   3. the catalogue default (or nothing: all zeros).
# A table nobody wrote therefore costs no per-meter memory. Reads past the end
# of the stored bytes return zeros, as a partial read past the end of a table
# does on a real meter [OPT p.9].
#
# Persistence (docs/persistence.md): while `dirty` is a dict (persist.py
# sets it), every write records the byte ranges it touched, {tid: [lo, hi,
# ...]} (a few disjoint ranges: a log's header and its newest entry), lo =
# -1 first when the table was reset; the next commit writes just those bytes
# and clears the dict. None (the default) costs one attribute test.
# Change tables only through write/set_field/reset/clear or own().
from . import catalogue as cat

_DIMS_CACHE = {}
_GAP = 16          # dirty ranges closer than this merge (an entry header costs 15)
_RANGES = 4        # at most this many per table: a log's header and its new entry stay apart


def _mark(r, lo, hi):
    """Add [lo, hi) to a table's dirty ranges r = [lo0, hi0, lo1, hi1, ...]:
    into one it touches, else a new one; past _RANGES, the last grows."""
    i = 0
    n = len(r)
    while i < n:
        if lo <= r[i + 1] + _GAP and hi + _GAP >= r[i]:
            if lo < r[i]:
                r[i] = lo
            if hi > r[i + 1]:
                r[i + 1] = hi
            return
        i += 2
    if n < 2 * _RANGES:
        r.append(lo)
        r.append(hi)
    else:
        if lo < r[n - 2]:
            r[n - 2] = lo
        if hi > r[n - 1]:
            r[n - 1] = hi


def _dims_for(tables):
    key = id(tables)
    dims = _DIMS_CACHE.get(key)
    if dims is None:
        dims = _DIMS_CACHE[key] = cat.dimension_tables(tables)
    return dims


class TableStore:
    __slots__ = ("tables", "image", "written", "_sizes", "_dims", "dirty")

    def __init__(self, tables, image=None):
        self.tables = tables
        self.image = image if image is not None else {}
        self.written = {}
        self._sizes = None
        self._dims = _dims_for(tables)
        self.dirty = None

    # -- sizes -------------------------------------------------------------
    def exists(self, tid):
        return tid in self.tables

    def size(self, tid):
        """Current size in bytes, following the dimension tables; None if absent."""
        entry = self.tables.get(tid)
        if entry is None:
            return None
        s = entry[0]
        if isinstance(s, int):
            return s
        sizes = self._sizes
        if sizes is None:
            sizes = self._sizes = {}
        got = sizes.get(tid)
        if got is None:
            got = cat.eval_size(s, self.field)
            sizes[tid] = got
        return got

    # -- reading -----------------------------------------------------------
    def content(self, tid):
        """The stored bytes (may be shorter than the size: the rest is zeros)."""
        w = self.written.get(tid)
        if w is not None:
            return w
        b = self.image.get(tid)
        if b is None:
            entry = self.tables.get(tid)
            b = (entry[4] if entry is not None else None) or b""
        return b

    def read(self, tid, offset, count):
        """`count` bytes from `offset`, zero-filled past the end of the table."""
        size = self.size(tid) or 0
        data = self.content(tid)
        end = offset + count
        if end > size:
            end = size
        if end > len(data):
            end = len(data)
        if offset >= end:
            return bytes(count)
        chunk = data[offset:end]
        if len(chunk) < count:
            chunk = bytes(chunk) + bytes(count - len(chunk))
        return chunk

    def get(self, tid):
        size = self.size(tid) or 0
        return self.read(tid, 0, size)

    def field(self, tid, offset, nbytes):
        """Unsigned little-endian field; 0 where the table has no such bytes."""
        data = self.content(tid)
        if offset + nbytes > len(data):
            return int.from_bytes(self.read(tid, offset, nbytes), "little")
        return int.from_bytes(data[offset:offset + nbytes], "little")

    # -- writing -----------------------------------------------------------
    def _own(self, tid, size):
        w = self.written.get(tid)
        if w is None or len(w) != size:
            fresh = bytearray(size)
            old = self.content(tid)
            n = len(old) if len(old) < size else size
            fresh[0:n] = old[0:n]
            self.written[tid] = w = fresh
        return w

    def write(self, tid, offset, data):
        """Write `data` at `offset`; bytes past the end of the table are ignored.

        Returns the number of bytes stored. The caller has checked existence
        and access; this never raises for an existing table.
        """
        size = self.size(tid)
        if size is None or offset >= size:
            return 0
        n = len(data)
        if offset + n > size:
            n = size - offset
        w = self._own(tid, size)
        w[offset:offset + n] = data[0:n]
        if tid in self._dims:
            self._sizes = None
        d = self.dirty
        if d is not None:
            r = d.get(tid)
            if r is None:
                d[tid] = [offset, offset + n]
            else:
                _mark(r, offset, offset + n)
        return n

    def own(self, tid):
        """This meter's bytearray of table `tid`, for a module that changes
        it in place (metrology's registers): marked changed as a whole."""
        size = self.size(tid) or 0
        w = self._own(tid, size)
        if self.dirty is not None:
            self.dirty[tid] = [0, size]
        return w

    def set_field(self, tid, offset, nbytes, value):
        self.write(tid, offset, (value & ((1 << (8 * nbytes)) - 1)).to_bytes(nbytes, "little"))

    def reset(self, tid):
        """Forget this meter's copy: back to the profile image / default."""
        if self.written.pop(tid, None) is not None:
            if tid in self._dims:
                self._sizes = None
            if self.dirty is not None:
                self.dirty[tid] = [-1, 0]

    def clear(self):
        """Every table back to the profile image / default (cold start)."""
        for tid in list(self.written):
            self.reset(tid)

    def reset_where(self, flag_mask, flag_value):
        """Reset every written table whose catalogue flags & mask == value."""
        for tid in list(self.written):
            entry = self.tables.get(tid)
            if entry is not None and entry[3] & flag_mask == flag_value:
                self.reset(tid)

    def snapshot(self):
        """A copy of the per-meter state, for tests that prove nothing changed."""
        out = {}
        for tid, w in self.written.items():
            out[tid] = bytes(w)
        return out
