# The load-profile recorder: BT60-BT67 and ET21 for data sets 1-4, and the
# procedures EP11 (configure/reset a set) and EP35 (start/stop a set).
#
# Layouts [OPT p.31-40] (reference/osgp-application.md 2.3); every choice
# the sources leave open is an "emulator profile" rule, listed in
# docs/load-profile.md. In short:
#
# * BT61/BT62 give the configuration. Source IDs: 0..63 = BT23 summation n
#   (cumulative; the interval records the increase over the interval),
#   64..111 = BT28 present value n-64 (the interval records the value at its
#   end), 112..163 = through ET66 (byte n-112 is one of the IDs above).
#   Values come from meter.metrology.value(meter, id) after
#   meter.metrology.update(meter, t).
# * Intervals follow the meter's UTC clock (never DST), aligned to their
#   length; interval k of a block covers [start + k*L, start + (k+1)*L), and
#   a block starts at a multiple of its span NINT*L since 1970 (96 x 15 min:
#   midnight UTC). Slots are positional: an interval not recorded leaves its
#   slot blank (or "skipped", ET04.71 bit 3) and its simple-status bit 0.
# * The block in progress carries, as its end time, the end of its newest
#   interval; a closed block carries its nominal end ("the following
#   midnight"). The next block opens as soon as one closes, so BT63.3 is
#   always the block in progress while the set runs.
# * The subsystem object holds only RAM state (the interval in progress and
#   its start readings); everything else is in BT63/BT64 and is rebuilt from
#   them (ET21 is derived, as on the meter).
from . import clock
from . import events
from . import procedures
from .timeline import Subsystem, install

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_BT03 = const(3)
_BT21 = const(21)
_BT60 = const(60)
_BT61 = const(61)
_BT62 = const(62)
_BT63 = const(63)
_BT64 = const(64)
_ET04 = const(2052)
_ET21 = const(2069)
_ET66 = const(2114)
_EP11 = const(2059)
_EP35 = const(2083)
_EE_LP_OVERFLOW = const(2049)        # argument: data set 0..3
_EE_DIMENSION_CHANGE = const(2071)  # argument: the new IDT version

_SETS = const(4)
_ET21_SET = const(131)
_BT63_SET = const(13)
_MAX_CHANNELS = const(16)                # ET21 names 8 + 8 sources
_DAY_CODE = const(84)                    # BT61 interval time: 24 h
_INT32_FORMAT = const(32)

# BT63 flags
_F_OVERFLOW = const(2)
_F_CIRCULAR = const(4)
_F_INHIBIT = const(8)
_F_ACTIVE = const(32)

# Extended interval status: common flags (high nibble of byte 0) ...
_C_DST = const(1)
_C_POWER_FAIL = const(2)
_C_CLOCK_FWD = const(4)
_C_CLOCK_BACK = const(8)
# ... and one nibble per channel.
_S_NONE = const(0)
_S_OVERFLOW = const(1)
_S_PARTIAL = const(2)
_S_LONG = const(3)
_S_SKIPPED = const(4)

_ET04_OPTIONS = const(71)
_LP_SKIPPED_OPTION = const(8)         # ET04.71 bit 3

# Source IDs (emulator profile)
_SRC_PRESENT = const(64)
_SRC_MAPPED = const(112)
_SRC_END = const(164)

INT32_MAX = 0x7FFFFFFF
INT32_MIN = -0x80000000


def _u16(v):
    return (v & 0xFFFF).to_bytes(2, "little")


def _u32(v):
    return (v & 0xFFFFFFFF).to_bytes(4, "little")


def interval_seconds(code):
    """Seconds of a BT61 interval-time code: a divisor of 60 minutes, or 84
    (24 h); None for anything else (refused: such intervals cannot align to
    the hour)."""
    if code == _DAY_CODE:
        return 86400
    if 1 <= code <= 60 and 60 % code == 0:
        return code * 60
    return None


def _minutes(code):
    return 1440 if code == _DAY_CODE else code


def resolve(store, sid):
    """The metrology source ID behind LP source `sid`, or None if unknown.

    0..63: BT23 summation index (must be < BT21.3); 64..111: BT28 present
    value sid-64 (must be < BT21.9); 112..163: ET66 byte sid-112, which must
    name one of the former.
    """
    if _SRC_MAPPED <= sid < _SRC_END:
        sid = store.field(_ET66, sid - _SRC_MAPPED, 1)
        if sid >= _SRC_MAPPED:
            return None
    if sid < _SRC_PRESENT:
        return sid if sid < store.field(_BT21, 3, 1) else None
    if sid < _SRC_MAPPED:
        return sid if sid - _SRC_PRESENT < store.field(_BT21, 9, 1) else None
    return None


def is_snapshot(sid):
    """True for a source recorded as its value at the interval end (present
    values); False for a cumulative one recorded as its increase."""
    return sid >= _SRC_PRESENT


def layout(flags, nint, nch):
    """(ext status bytes, interval size, simple-status offset, simple-status
    size, block header size, block size) under BT61 flags."""
    ext = (nch // 2 + 1) if flags & 0x0400 else 0
    isz = ext + 4 * nch
    ss_off = 5 + (4 * nch if flags & 0x0010 else 0)
    ss_size = (nint + 7) // 8 if flags & 0x0800 else 0
    hdr = ss_off + ss_size
    return ext, isz, ss_off, ss_size, hdr, hdr + nint * isz


def _bt62_offset(store, n, flags):
    off = 0
    for k in range(n):
        nch = store.field(_BT61, 7 + 6 * k + 4, 1)
        off += 3 * nch + 1 + ((flags >> (6 + k)) & 1) * 4 * nch
    return off


def _set_size(store, k, flags):
    d = 7 + 6 * k
    nblk = store.field(_BT61, d, 2)
    nint = store.field(_BT61, d + 2, 2)
    nch = store.field(_BT61, d + 4, 1)
    return nblk * layout(flags, nint, nch)[5]


def _unread_alarm(meter, n, unread):
    # BT03: 7.6 LP set 1 unread; std status 2 (offset 3) bits 0-2: sets 2-4.
    if n == 0:
        events.alarm(meter, 7, 6, unread > 0)
    else:
        events.alarm(meter, 3, n - 1, unread > 0)


def _update(meter, t):
    m = meter.metrology
    if m is not None:
        m.update(meter, t)


def _readings(meter, ids):
    m = meter.metrology
    out = []
    for i in ids:
        out.append(0 if i is None or m is None else m.value(meter, i))
    return out


class _Set:
    """One configured data set: its layout (from BT61/BT62) and the RAM
    state of the interval in progress."""
    __slots__ = ("n", "tbl", "r63", "r21", "nblk", "nint", "nch", "code", "L", "span",
                 "ext", "isz", "ss_off", "ss_size", "hdr", "bsize", "endr", "inhibit",
                 "raw", "src", "snap", "esrc", "eflag", "scal", "div", "skipx",
                 "active", "cur", "idx", "last", "a", "base", "common", "chst", "down",
                 "stalled")


def _parse(store, n, snapshot):
    """Set n from BT61/BT62, or None when it is not configured or its
    configuration cannot work (then it does not record)."""
    d = 7 + 6 * n
    nblk = store.field(_BT61, d, 2)
    nint = store.field(_BT61, d + 2, 2)
    nch = store.field(_BT61, d + 4, 1)
    code = store.field(_BT61, d + 5, 1)
    L = interval_seconds(code)
    if not nblk or not nint or not nch or L is None or nch > _MAX_CHANNELS:
        return None
    flags = store.field(_BT61, 4, 2)
    ext, isz, ss_off, ss_size, hdr, bsize = layout(flags, nint, nch)
    if store.size(_BT64 + n) != nblk * bsize:
        return None
    s = _Set()
    s.n = n
    s.tbl = _BT64 + n
    s.r63 = _BT63_SET * n
    s.r21 = _ET21_SET * n
    s.nblk, s.nint, s.nch, s.code, s.L, s.span = nblk, nint, nch, code, L, nint * L
    s.ext, s.isz, s.ss_off, s.ss_size, s.hdr, s.bsize = ext, isz, ss_off, ss_size, hdr, bsize
    s.endr = bool(flags & 0x0010)
    s.inhibit = bool(flags & (1 << n))
    sd = (flags >> (6 + n)) & 1
    rec = store.read(_BT62, _bt62_offset(store, n, flags), 3 * nch + 1 + 4 * nch * sd)
    s.raw = []
    s.src = []
    s.snap = []
    s.esrc = []
    s.eflag = []
    for c in range(nch):
        s.raw.append(rec[3 * c + 1])
        sid = resolve(store, rec[3 * c + 1])
        s.src.append(sid)
        s.snap.append(sid is not None and (snapshot or is_snapshot(sid)))
        s.eflag.append(bool(rec[3 * c] & 1))
        s.esrc.append(resolve(store, rec[3 * c + 2]))
    if sd:
        at = 3 * nch + 1
        s.scal = [rec[at + 2 * c] | rec[at + 2 * c + 1] << 8 for c in range(nch)]
        at += 2 * nch
        s.div = [rec[at + 2 * c] | rec[at + 2 * c + 1] << 8 for c in range(nch)]
    else:
        s.scal = s.div = None
    s.skipx = _status(ext, nch, 0, _S_SKIPPED) if ext else b""
    s.active = False
    s.cur = None
    s.idx = 0
    s.last = -1
    s.a = None
    s.base = None
    s.common = 0
    s.chst = _S_NONE
    s.down = None
    s.stalled = False
    return s


def _status(ext, nch, common, code):
    b = bytearray(ext)
    b[0] = (common & 0x0F) << 4
    for c in range(nch):
        p = c + 1
        if p & 1:
            b[p >> 1] |= code
        else:
            b[p >> 1] |= code << 4
    return bytes(b)


def _scale(v, scalar, divisor):
    if scalar:
        v *= scalar
    if divisor:
        q = (-v if v < 0 else v) // divisor
        v = -q if v < 0 else q
    return v


def _write_static(meter, n, s):
    """The configuration part of ET21 for set n."""
    store = meter.store
    r = _ET21_SET * n
    if s is None:
        store.write(_ET21, r, bytes(78))
        store.write(_ET21, r + 82, bytes(_ET21_SET - 82))
        return
    srcs = bytearray(16)
    for c in range(s.nch):
        srcs[c] = s.raw[c]
    store.write(_ET21, r + 8, _u32(s.bsize) + _u16(s.hdr))
    store.write(_ET21, r + 22, bytes((s.ss_off & 0xFF, s.ss_size & 0xFF, s.hdr & 0xFF, s.isz & 0xFF,
                                     s.ext, s.common, s.nch, s.code)) + bytes(srcs[0:8]))
    store.write(_ET21, r + 70, bytes(srcs[8:16]))
    store.write(_ET21, r + 107, _u32(store.field(_BT60, 0, 4)) + b"\x00")


class LoadProfile(Subsystem):
    __slots__ = ("sets", "snapshot")

    def __init__(self, config=None):
        self.sets = [None, None, None, None]
        # "cumulative": "snapshot" records a cumulative source's value at
        # the interval end instead of its increase (see docs).
        self.snapshot = bool(config) and config.get("cumulative") == "snapshot"

    # -- building ------------------------------------------------------------
    def boot(self, meter, skip=()):
        for n in range(_SETS):
            if n not in skip:
                self.load(meter, n, meter.t)

    def load(self, meter, n, t):
        """(Re)build set n from the tables and, if it is active and the meter
        powered, start recording at meter time t."""
        store = meter.store
        s = self.sets[n] = _parse(store, n, self.snapshot)
        _write_static(meter, n, s)
        if s is None:
            return
        h = store.read(_BT63, s.r63, _BT63_SET)
        if not h[0] & _F_CIRCULAR:
            # A set nobody has run yet: an empty circular list, active.
            h = bytes((_F_CIRCULAR | _F_ACTIVE | (_F_INHIBIT if s.inhibit else 0),)) + bytes(12)
            store.write(_BT63, s.r63, h)
        s.active = bool(h[0] & _F_ACTIVE)
        valid = h[1] | h[2] << 8
        idx = h[3] | h[4] << 8
        vints = h[11] | h[12] << 8
        s.idx = idx if idx < s.nblk else 0
        if valid and vints < s.nint and idx < s.nblk:
            end = clock.decode_ltime(store.read(s.tbl, idx * s.bsize, 5) + b"\x00")
            if end is not None and (end - vints * s.L) % s.span == 0:
                s.cur = end - vints * s.L
                s.last = vints - 1
        if s.active and meter.powered and t is not None:
            self._start(meter, s, t, 0)
        self._sync(meter, s)

    # -- the timeline --------------------------------------------------------
    def due(self, meter):
        if not meter.powered:
            return None
        nxt = None
        for s in self.sets:
            if s is not None and s.a is not None:
                e = s.a + s.L
                if nxt is None or e < nxt:
                    nxt = e
        return nxt

    def run(self, meter, t):
        store = meter.store
        updated = False
        for s in self.sets:
            if s is None or s.a is None or s.a + s.L > t:
                continue
            if not store.field(_BT63, s.r63, 1) & _F_CIRCULAR:
                # BT63 was reset under us (BP00/BP03): start the set afresh.
                self.load(meter, s.n, t)
                continue
            if _ET21 not in store.written:
                _write_static(meter, s.n, s)   # ET21 lost (BP01 warm start)
            while s.a + s.L <= t:
                if not updated:
                    _update(meter, t)
                    updated = True
                vals = _readings(meter, s.src)
                self._record(meter, s, vals, t)
                s.a += s.L
                s.base = vals
                s.common = 0
                s.chst = _S_NONE
                self._ensure_block(meter, s, s.a, t)
            self._sync(meter, s)

    def clock_set(self, meter, old, new):
        for s in self.sets:
            if s is None or not s.active:
                continue
            if s.a is None:
                if meter.powered:
                    self._start(meter, s, new, 0)
                    self._sync(meter, s)
                continue
            if new == old:
                continue
            flag = _C_CLOCK_FWD if new > old else _C_CLOCK_BACK
            s.common |= flag
            if not meter.powered:
                continue            # the power-up decides, against the new time
            if s.a <= new < s.a + s.L:
                # Still inside the interval in progress: it goes on, shorter
                # (forward) or longer (backward) than nominal.
                st = _S_LONG if new < old else _S_PARTIAL
                if st > s.chst:
                    s.chst = st
            else:
                # The interval in progress ends here; recording resumes at the
                # interval holding the new time. Past intervals are never
                # rewritten: going back before them opens a new block.
                if s.chst < _S_PARTIAL:
                    s.chst = _S_PARTIAL
                _update(meter, new)
                self._record(meter, s, _readings(meter, s.src), new)
                self._start(meter, s, new, flag)
            self._sync(meter, s)

    def power(self, meter, t, on):
        for s in self.sets:
            if s is None or not s.active:
                continue
            if not on:
                if s.a is None:
                    continue
                # The interval's readings are saved at power-down, as a meter
                # does on its power-fail interrupt.
                _update(meter, t)
                s.down = _readings(meter, s.src)
                s.common |= _C_POWER_FAIL
                if s.chst < _S_PARTIAL:
                    s.chst = _S_PARTIAL
            elif s.a is None:
                if t is not None:
                    self._start(meter, s, t, 0)
            elif s.a <= t < s.a + s.L:
                s.down = None           # back within the same interval
            else:
                vals = s.down
                s.down = None
                if vals is None:
                    _update(meter, t)
                    vals = _readings(meter, s.src)
                self._record(meter, s, vals, t)
                self._start(meter, s, t, _C_POWER_FAIL)
            self._sync(meter, s)

    # -- list pointers (BP04/BP05) and EP35 ----------------------------------
    def reset_list(self, meter, n):
        """BP04 for set n: no valid, unread or overflowed blocks; recording
        goes on in a fresh block. False if the set is not configured."""
        s = self.sets[n]
        if s is None:
            return False
        store = meter.store
        h = store.read(_BT63, s.r63, _BT63_SET)
        store.write(_BT63, s.r63, bytes((h[0] & ~_F_OVERFLOW,)) + bytes(4) + bytes(h[5:9]) + bytes(4))
        _unread_alarm(meter, n, 0)
        s.cur = None
        s.idx = 0
        s.last = -1
        s.stalled = False
        if s.a is not None and meter.powered:
            self._ensure_block(meter, s, s.a, meter.t)
        self._sync(meter, s)
        return True

    def list_read(self, meter, n):
        """After BP05 lowered set n's unread count."""
        s = self.sets[n]
        if s is None:
            return
        _unread_alarm(meter, n, meter.store.field(_BT63, s.r63 + 9, 2))
        if s.stalled and s.a is not None and meter.powered:
            self._ensure_block(meter, s, s.a, meter.t)
            self._sync(meter, s)

    def start_stop(self, meter, n, on, t):
        s = self.sets[n]
        store = meter.store
        fl = store.field(_BT63, s.r63, 1)
        if on:
            if s.active:
                return
            s.active = True
            store.set_field(_BT63, s.r63, 1, fl | _F_ACTIVE)
            if meter.powered:
                self._start(meter, s, t, 0)
        else:
            if not s.active:
                return
            if s.a is not None and t != s.a:
                vals = s.down
                if vals is None:
                    _update(meter, t)
                    vals = _readings(meter, s.src)
                if s.chst < _S_PARTIAL:
                    s.chst = _S_PARTIAL
                self._record(meter, s, vals, t)
            s.a = None
            s.down = None
            s.active = False
            store.set_field(_BT63, s.r63, 1, fl & ~_F_ACTIVE)
        self._sync(meter, s)

    # -- recording -----------------------------------------------------------
    def _start(self, meter, s, t, flags):
        """Begin the interval holding meter time t."""
        a = t - t % s.L
        if t == a:
            flags &= ~_C_POWER_FAIL      # no outage inside this interval
        s.a = a
        s.common = flags
        s.chst = _S_PARTIAL if t != a else _S_NONE
        s.down = None
        _update(meter, t)
        s.base = _readings(meter, s.src)
        self._ensure_block(meter, s, a, t)

    def _ensure_block(self, meter, s, a, t):
        """Make the block in progress the one that holds the interval
        starting at a, with that slot still free. False: recording is
        stalled (inhibit overflow)."""
        cur = s.cur
        if cur is not None:
            d = a - cur
            if 0 <= d < s.span and d // s.L > s.last:
                return True
            self._finish(meter, s)
        return self._open(meter, s, a - a % s.span, t)

    def _finish(self, meter, s):
        """Close the block in progress: its end time becomes the nominal one,
        its slots all count as intervals (those never recorded are skipped)."""
        store = meter.store
        if s.last < s.nint - 1:
            self._skip(meter, s, s.last + 1, s.nint)
        store.write(s.tbl, s.idx * s.bsize, clock.encode_stime(s.cur + s.span))
        h = store.read(_BT63, s.r63, _BT63_SET)
        valid = h[1] | h[2] << 8
        unread = (h[9] | h[10] << 8) + 1
        if unread > valid:
            unread = valid
        store.write(_BT63, s.r63 + 9, _u16(unread) + _u16(s.nint))
        _unread_alarm(meter, s.n, unread)
        s.cur = None
        s.last = s.nint - 1

    def _open(self, meter, s, start, t):
        store = meter.store
        h = store.read(_BT63, s.r63, _BT63_SET)
        fl = h[0]
        valid = h[1] | h[2] << 8
        idx = h[3] | h[4] << 8
        seq = h[5] | h[6] << 8 | h[7] << 16 | h[8] << 24
        unread = h[9] | h[10] << 8
        nblk = s.nblk
        idx = 0 if valid == 0 else (idx + 1) % nblk
        if valid >= nblk:
            valid = nblk
            if unread >= nblk:
                # The oldest block has not been read.
                if s.inhibit:
                    if not s.stalled:
                        s.stalled = True
                        self._overflow(meter, s, fl, t)
                    s.cur = None
                    return False
                fl = self._overflow(meter, s, fl, t)
                unread = nblk - 1
        else:
            valid += 1
        seq = (seq + 1) & 0xFFFFFFFF
        # A blank block, written in pieces of at most 256 bytes (no big
        # contiguous buffer on a small heap), then its end time.
        base = idx * s.bsize
        zeros = bytes(256 if s.bsize > 256 else s.bsize)
        for o in range(0, s.bsize, 256):
            store.write(s.tbl, base + o, zeros if s.bsize - o >= 256 else zeros[0:s.bsize - o])
        store.write(s.tbl, base, clock.encode_stime(start))
        store.write(_BT63, s.r63, bytes((fl,)) + _u16(valid) + _u16(idx) + _u32(seq)
                    + _u16(unread) + b"\x00\x00")
        civil = clock.to_civil(start)
        store.write(_ET21, s.r21 + 83, clock.encode_ltime(start) + bytes((civil[3], civil[4])))
        s.cur = start
        s.idx = idx
        s.last = -1
        s.stalled = False
        return True

    def _overflow(self, meter, s, fl, t):
        if not fl & _F_OVERFLOW:
            # Once per overflow condition: until BP04/BP05/EP11 clear it.
            fl |= _F_OVERFLOW
            meter.store.set_field(_BT63, s.r63, 1, fl)
            events.alarm(meter, 4, 0, True)      # BT03 4.0 LP overflow (latched)
            events.log(meter, _EE_LP_OVERFLOW, s.n, events.USER_NONE, t)
        return fl

    def _skip(self, meter, s, first, stop):
        if not s.ext or first >= stop or not meter.store.field(_ET04, _ET04_OPTIONS, 1) & _LP_SKIPPED_OPTION:
            return
        at = s.idx * s.bsize + s.hdr
        for i in range(first, stop):        # the values stay 0
            meter.store.write(s.tbl, at + i * s.isz, s.skipx)

    def _record(self, meter, s, vals, t):
        """Write the interval in progress (it starts at s.a) with end
        readings `vals`, at meter time t."""
        if not self._ensure_block(meter, s, s.a, t):
            return                      # stalled: the interval is lost
        store = meter.store
        L = s.L
        slot = (s.a - s.cur) // L
        base = s.idx * s.bsize
        if slot > s.last + 1:
            self._skip(meter, s, s.last + 1, slot)
        end = s.a + L
        common = s.common
        tou = meter.tou
        if tou is not None and tou.dst(meter, end - 1):
            common |= _C_DST
        nch = s.nch
        ext = s.ext
        out = bytearray(s.isz)
        if ext:
            out[0] = common << 4
        start = s.base
        for c in range(nch):
            v = vals[c] if s.snap[c] else vals[c] - start[c]
            if s.scal is not None:
                v = _scale(v, s.scal[c], s.div[c])
            code = s.chst
            if v > INT32_MAX:
                v = INT32_MAX
                code = _S_OVERFLOW
            elif v < INT32_MIN:
                v = INT32_MIN
                code = _S_OVERFLOW
            o = ext + 4 * c
            out[o:o + 4] = (v & 0xFFFFFFFF).to_bytes(4, "little")
            if ext and code:
                p = c + 1
                if p & 1:
                    out[p >> 1] |= code
                else:
                    out[p >> 1] |= code << 4
        store.write(s.tbl, base + s.hdr + slot * s.isz, out)
        if s.ss_size:
            o = base + s.ss_off + (slot >> 3)
            store.set_field(s.tbl, o, 1, store.field(s.tbl, o, 1) | (1 << (slot & 7)))
        head = clock.encode_stime(end)
        if s.endr:
            ends = _readings(meter, s.esrc)
            for c in range(nch):
                head += _u32(ends[c] if s.eflag[c] else 0)
        store.write(s.tbl, base, head)
        s.last = slot
        store.write(_BT63, s.r63 + 11, _u16(slot + 1))
        if slot == s.nint - 1:
            self._finish(meter, s)

    def _sync(self, meter, s):
        """The running part of ET21 for set s, from BT63 and the RAM state."""
        store = meter.store
        h = store.read(_BT63, s.r63, _BT63_SET)
        vints = h[11] | h[12] << 8
        blk = s.idx * s.bsize
        slot = 0
        if s.a is not None and s.cur is not None and 0 <= s.a - s.cur < s.span:
            slot = (s.a - s.cur) // s.L
        r = s.r21
        store.write(_ET21, r, _u32(blk) + _u32(blk + s.hdr + slot * s.isz))
        store.write(_ET21, r + 14, bytes(h[1:3]) + bytes(h[11:13]) + bytes(h[3:5])
                    + _u16(vints - 1 if vints else 0))
        store.write(_ET21, r + 27, bytes((s.common & 0x0F,)))
        if s.a is None:
            store.write(_ET21, r + 91, _u16(slot) + bytes(14))
            return
        end = s.a + s.L
        local = end
        tou = meter.tou
        if tou is not None:
            fn = getattr(tou, "local", None)
            if fn is not None:
                local = fn(meter, end)
        store.write(_ET21, r + 91, _u16(slot) + bytes((store.field(_ET21, r + 93, 1),))
                    + clock.encode_ltime(end) + b"\x00" + clock.encode_ltime(local))


# -- configuration: EP11 ------------------------------------------------------

def check(store, n, blocks, ints, chans, code, sources):
    """0 if set n may take this configuration; 2 (invalid parameter) or 3
    (does not fit BT60's dimensions or memory) otherwise."""
    if not 0 <= n < _SETS:
        return procedures.INVALID_PARAMETER
    if not blocks or not ints or not chans:
        # All zero: the set is switched off (no memory). Anything else is bad.
        if blocks or ints or chans or len(sources):
            return procedures.INVALID_PARAMETER
        return 0
    if chans > _MAX_CHANNELS or len(sources) != chans or interval_seconds(code) is None:
        return procedures.INVALID_PARAMETER
    for sid in sources:
        if resolve(store, sid) is None:
            return procedures.INVALID_PARAMETER
    d = 7 + 6 * n
    most = store.field(_BT60, d + 5, 1)
    if (blocks > store.field(_BT60, d, 2) or ints > store.field(_BT60, d + 2, 2)
            or chans > store.field(_BT60, d + 4, 1) or _minutes(code) > _minutes(most)):
        return procedures.CONFLICT
    flags = store.field(_BT61, 4, 2)
    ext, isz, ss_off, ss_size, hdr, bsize = layout(flags, ints, chans)
    if hdr > 255 or isz > 255:
        return procedures.CONFLICT      # ET21 holds these in one byte
    total = blocks * bsize
    for k in range(_SETS):
        if k != n:
            total += _set_size(store, k, flags)
    if total > store.field(_BT60, 0, 4):
        return procedures.CONFLICT
    return 0


def configure(meter, n, blocks, ints, chans, code, sources, t=None, announce=True):
    """EP11: check, then rewrite BT61/BT62 for set n, reset its data and
    status (the block sequence number goes on), restart it. `announce`:
    bump the IDT version and log "Dimension Change". Returns the result code;
    a refusal changes nothing."""
    store = meter.store
    sources = bytes(sources)
    result = check(store, n, blocks, ints, chans, code, sources)
    if result:
        return result
    if t is None:
        t = meter.t
    flags = store.field(_BT61, 4, 2)
    recs = []
    off = 0
    for k in range(_SETS):
        nch = store.field(_BT61, 7 + 6 * k + 4, 1)
        size = 3 * nch + 1 + ((flags >> (6 + k)) & 1) * 4 * nch
        recs.append(bytes(store.read(_BT62, off, size)))
        off += size
    endr = 1 if flags & 0x0010 else 0
    rec = bytearray()
    for sid in sources:
        rec += bytes((endr, sid, sid))
    rec.append(_INT32_FORMAT)
    if chans and (flags >> (6 + n)) & 1:
        rec += b"\x01\x00" * (2 * chans)        # scalars 1, divisors 1
    recs[n] = bytes(rec)
    d = 7 + 6 * n
    store.write(_BT61, d, _u16(blocks) + _u16(ints) + bytes((chans, code if chans else 0)))
    total = 0
    for k in range(_SETS):
        total += _set_size(store, k, flags)
    store.set_field(_BT61, 0, 4, total)
    store.write(_BT62, 0, b"".join(recs))
    tbl = _BT64 + n
    store.reset(tbl)
    size = store.size(tbl)
    if size and store.content(tbl):
        store.write(tbl, 0, bytes(size))        # the profile image had data
    r63 = _BT63_SET * n
    seq = store.read(_BT63, r63 + 5, 4)
    fl = (_F_CIRCULAR | _F_ACTIVE | (_F_INHIBIT if flags & (1 << n) else 0)) if blocks else 0
    store.write(_BT63, r63, bytes((fl,)) + bytes(4) + bytes(seq) + bytes(4))
    _unread_alarm(meter, n, 0)
    r21 = _ET21_SET * n
    store.set_field(_ET21, r21 + 78, 4, store.field(_ET21, r21 + 78, 4) + 1)   # LP config ID
    lp = meter.lp
    if lp is not None:
        lp.load(meter, n, t)
    else:
        _write_static(meter, n, _parse(store, n, False))
    if announce:
        meter.bump_idt()
        events.log(meter, _EE_DIMENSION_CHANGE, store.field(_ET04, 116, 1), meter.user, t)
    return 0


def _ep11(meter, params, role, now):
    # set UINT8 (0..3), blocks UINT16, intervals per block UINT16, channels
    # UINT8, interval time UINT8, then one source ID per channel.
    if len(params) < 7:
        return procedures.INVALID_PARAMETER, b""
    result = configure(meter, params[0], params[1] | params[2] << 8, params[3] | params[4] << 8,
                       params[5], params[6], params[7:], meter.utc(now))
    return result, b""


def _ep35(meter, params, role, now):
    # set UINT8 (0..3), action UINT8 (0 stop, 1 start).
    if len(params) < 2 or params[0] >= _SETS or params[1] > 1:
        return procedures.INVALID_PARAMETER, b""
    lp = meter.lp
    if lp is None or lp.sets[params[0]] is None:
        return procedures.CONFLICT, b""
    lp.start_stop(meter, params[0], params[1] == 1, meter.utc(now))
    return procedures.COMPLETED, b""


procedures.register(_EP11, _ep11)
procedures.register(_EP35, _ep35)


def attach(meter, config=None):
    """Give `meter` a load-profile recorder (meter.lp) and start it.

    config (a dict, optional):
      "sets": {n: (blocks, intervals, channels, interval code, sources)}
              configure set n as EP11 would, without an IDT change; a
              configuration EP11 would refuse raises ValueError
      "cumulative": "delta" (default) | "snapshot"
    Everything else comes from BT61/BT62 (the profile image).
    """
    lp = LoadProfile(config)
    install(meter, "lp", lp)
    sets = (config.get("sets") if config else None) or {}
    for n in sets:
        spec = sets[n]
        r = configure(meter, n, spec[0], spec[1], spec[2], spec[3], spec[4], meter.t, False)
        if r:
            raise ValueError("load profile set %d: refused (%d)" % (n, r))
    lp.boot(meter, sets)         # configure() has loaded those already
    return lp
