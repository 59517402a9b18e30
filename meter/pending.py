# Pending tables: writes to a table's pending copy (table ID + 4096) that
# take effect later, at a time or on a procedure [OPT p.8-12]. See
# docs/pending-tables.md for the byte layouts and the emulator profile.
#
# A pending request carries the 6-byte PED (pending event description) in
# front of the table data; its count includes the PED and its offset is the
# table offset (not shifted by the PED). PED byte 0: bits 0-3 event code
# (0 absolute UTC STIME_DATE, 1 relative weeks/days/hours/minutes/seconds
# from receipt, 2 activation by BP12/BP13 only), bit 4 self-read and bit 5
# demand reset before activation; bytes 1-5 the event storage.
#
# The staged bytes are kept as sorted, disjoint segments over the table (a
# table larger than a port's write limit is staged by several partial writes
# with the same PED); reading the pending copy shows the live table overlaid
# with them, i.e. what activation will write. Activation copies the staged
# span through Meter.write_table (so the BT53/BT54 checks apply), logs event
# 28 and rewrites BT04, inside one call: a power cut never sees half of it.
#
# This object is also the timeline subsystem (docs/time-model.md) that
# activates at the PED's second; it sits in meter.subsystems only while
# something is pending, so a bare core pays nothing for the feature.
from . import clock
from . import events
from . import procedures
from .timeline import Subsystem

BT00 = 0
BT04 = 4
BT07 = 7
BT53 = 53
BT54 = 54
PENDING = 4096
ET_BASE = 2048

EV_ACTIVATED = 28       # pending table activated [C1219 event 28]
EV_CLEARED = 29         # pending table activation cleared [C1219 event 29]

CODE_ABSOLUTE = 0
CODE_RELATIVE = 1
CODE_PROCEDURE = 2
FLAG_SELF_READ = 0x10
FLAG_DEMAND_RESET = 0x20

STILL_PENDING = 0x1000  # BT04 record: UINT16 bits 0-11 table ID, bit 12 still pending

R_OK = b"\x00"
R_ERR = b"\x01"
R_SNS = b"\x02"
R_ISC = b"\x03"
R_ONP = b"\x04"
R_IAR = b"\x05"

NV_VERSION = 1
_NONE = 0xFFFFFFFF      # "no due second" (code 2) in the NV encoding
_LIMITS = []


# -- PEDs ----------------------------------------------------------------------

def ped_absolute(t, flags=0):
    """PED for activation at UTC second t (rounded down to its minute:
    STIME_DATE has no seconds)."""
    return bytes((CODE_ABSOLUTE | flags,)) + clock.encode_stime(t)


def ped_relative(weeks=0, days=0, hours=0, minutes=0, seconds=0, flags=0):
    return bytes((CODE_RELATIVE | flags, weeks, days, hours, minutes, seconds))


def ped_procedure(tag=b"\x00\x00\x00\x00\x00", flags=0):
    """PED of a table that waits for BP12/BP13; `tag` (5 bytes) is opaque
    and is what BP13/BP15 match on."""
    return bytes((CODE_PROCEDURE | flags,)) + bytes(tag)[:5] + bytes(5 - len(bytes(tag)[:5]))


def decode_stime(b, off=0):
    """STIME_DATE (YY MM DD hh mm) -> UTC seconds, or None."""
    y = 2000 + b[off]
    if b[off] > 99 or not clock.valid_civil(y, b[off + 1], b[off + 2], b[off + 3], b[off + 4], 0):
        return None
    return clock.from_civil(y, b[off + 1], b[off + 2], b[off + 3], b[off + 4], 0)


def due_of(ped, t):
    """The meter second a PED received at second t activates at: an int,
    None (code 2: only by procedure), or -1 when the PED is not valid."""
    code = ped[0] & 0x0F
    if ped[0] & 0xC0:
        return -1                       # bits 6-7: reserved (emulator: refused)
    if code == CODE_ABSOLUTE:
        if ped[0] == 0 and ped[1:6] == b"\x00\x00\x00\x00\x00":
            return -1                   # all zeros: the empty PED [OPT p.10]
        s = decode_stime(ped, 1)
        if s is None:
            return -1
        return s if s > t else t        # a time already past: at receipt (emulator)
    if code == CODE_RELATIVE:
        return t + ped[1] * 604800 + ped[2] * 86400 + ped[3] * 3600 + ped[4] * 60 + ped[5]
    if code == CODE_PROCEDURE:
        return None
    return -1


# -- one pending table ---------------------------------------------------------

class Entry:
    __slots__ = ("tid", "ped", "due", "role", "segs")

    def __init__(self, tid, ped, due, role):
        self.tid = tid              # base table ID (BTnn or 2048 + nn)
        self.ped = ped              # 6 bytes
        self.due = due              # meter UTC second, or None (code 2)
        self.role = role            # role bit of the staging write; activation writes with it
        self.segs = []              # [[start, bytearray]], sorted, disjoint, not adjacent

    def put(self, start, data):
        """Overlay `data` at `start`: overlapping or adjacent segments merge,
        the new bytes win."""
        end = start + len(data)
        lo, buf = start, bytearray(data)
        keep = []
        for s, b in self.segs:
            e = s + len(b)
            if e < start or s > end:
                keep.append([s, b])
                continue
            nlo = s if s < lo else lo
            nhi = e if e > lo + len(buf) else lo + len(buf)
            nb = bytearray(nhi - nlo)
            nb[s - nlo:e - nlo] = b
            nb[lo - nlo:lo - nlo + len(buf)] = buf
            lo, buf = nlo, nb
        keep.append([lo, buf])
        keep.sort(key=lambda sb: sb[0])
        self.segs = keep

    def span(self):
        if not self.segs:
            return 0, 0
        s, b = self.segs[-1]
        return self.segs[0][0], s + len(b)

    def overlay(self, out, offset):
        """Copy the staged bytes that fall in out[0:] (= table[offset:])."""
        n = len(out)
        for s, b in self.segs:
            lo = s if s > offset else offset
            hi = s + len(b)
            if hi > offset + n:
                hi = offset + n
            if lo < hi:
                out[lo - offset:hi - offset] = b[lo - s:hi - s]


# -- the feature -----------------------------------------------------------------

class Pending(Subsystem):
    """meter.pending: the pending tables of one meter, and the timeline
    subsystem that activates them."""
    __slots__ = ("meter", "entries", "floor")

    def __init__(self, meter):
        self.meter = meter
        self.entries = []           # still-pending tables, in staging order
        self.floor = None           # no activation before this second (clock set, power back)

    def find(self, tid):
        for e in self.entries:
            if e.tid == tid:
                return e
        return None

    # -- access rules ------------------------------------------------------------
    def _check(self, base, role, write):
        """None, or the response code of a request to base's pending copy."""
        entry = self.meter.store.tables.get(base)
        wmask = entry[2]
        # A pending copy exists for a table someone may write, BT07 aside
        # (a procedure call is not staged; emulator profile).
        if not wmask or base == BT07:
            return R_IAR
        if not (wmask if write else entry[1]) & role:
            return R_ISC
        if self.meter.store.size(base) is None:
            return R_IAR
        return None

    # -- 0x30 / 0x3F -------------------------------------------------------------
    def read(self, meter, base, offset, count, role, limits, now):
        """count None: a full read (PED + the whole table); else a partial
        read whose count includes the 6 PED bytes."""
        refused = self._check(base, role, False)
        if refused is not None:
            return refused
        size = meter.store.size(base)
        if count is None:
            count = size + 6
        elif count < 6:
            return R_ERR
        if count > limits.max_read:
            return R_ONP
        e = self.find(base)
        data = bytearray(meter.store.read(base, offset, count - 6))
        if e is not None:
            e.overlay(data, offset)
        ped = e.ped if e is not None else bytes(6)      # the empty PED: nothing pending
        n = count
        return bytes((0, n >> 8, n & 0xFF)) + ped + data

    # -- 0x40 / 0x4F -------------------------------------------------------------
    def write(self, meter, base, offset, data, count, role, limits, now, partial):
        refused = self._check(base, role, True)
        if refused is not None:
            return refused
        if count > limits.max_write:
            return R_ONP
        if count < 6 or len(data) < 6:
            return R_ERR                # no PED: malformed
        store = meter.store
        size = store.size(base)
        body = data[6:count]
        if partial and body and offset >= size:
            return R_IAR
        ped = bytes(data[0:6])
        t = meter.utc(now)
        due = due_of(ped, t)
        if due == -1:
            return R_IAR
        cap = store.field(BT00, 18, 1)
        if cap == 0:
            return R_SNS                # BT00.18 = 0: no pending tables on this meter
        old = self.find(base)
        same = old is not None and old.ped == ped
        if old is None and len(self.entries) >= cap:
            return R_ONP                # every pending slot taken (BT00.18)
        if offset + len(body) > size:
            body = body[0:size - offset]
        if (base == BT53 or base == BT54) and meter.tou is not None and body:
            # Refused now rather than at activation: the calendar as it
            # would be activated, checked where this write touches it.
            img = bytearray(store.read(base, 0, size))
            if same:
                old.overlay(img, 0)
            img[offset:offset + len(body)] = body
            if meter.tou.check_write(meter, base, img, offset, len(body)) is not None:
                return R_IAR
        # -- committed from here on --
        if same:
            e = old
        else:
            e = Entry(base, ped, due, role)
            if old is not None:
                # a new PED replaces the table's pending copy (emulator profile)
                self.entries[self.entries.index(old)] = e
                events.log(meter, EV_CLEARED, base, None, t)
            else:
                self.entries.append(e)
        if body:
            e.put(offset, body)
        self._render(meter)
        self._sync(meter)
        events.table_written(meter, base + PENDING, now)
        return R_OK

    # -- activation ----------------------------------------------------------------
    def _valid(self, meter, e):
        """Would activating e pass the table's checks now?"""
        if (e.tid == BT53 or e.tid == BT54) and meter.tou is not None and e.segs:
            lo, hi = e.span()
            img = bytearray(meter.store.get(e.tid))
            e.overlay(img, 0)
            return meter.tou.check_write(meter, e.tid, img, lo, hi - lo) is None
        return True

    def _activate(self, meter, e, t):
        """Self-read / demand reset as the PED asks, then the staged span
        through the table write path, then event 28. False (nothing
        written) when the write is refused."""
        if e.ped[0] & (FLAG_SELF_READ | FLAG_DEMAND_RESET):
            # Through metrology's own entry points (tables only when the
            # meter has no metrology subsystem); a self-read or demand
            # reset that cannot run (no list, lockout) does not stop the
            # activation (emulator profile).
            from . import metrology
            m = meter.metrology
            both = e.ped[0] & FLAG_SELF_READ and e.ped[0] & FLAG_DEMAND_RESET
            if e.ped[0] & FLAG_SELF_READ:
                if m is not None and both:
                    m.self_read(meter, t, meter.user, False)
                else:
                    metrology.self_read(meter, t, meter.user)
            if e.ped[0] & FLAG_DEMAND_RESET:
                if m is not None and both:
                    m.demand_reset(meter, t, meter.user, False)
                else:
                    metrology.demand_reset(meter, t, meter.user)
        if e.segs:
            lo, hi = e.span()
            data = bytearray(meter.store.read(e.tid, lo, hi - lo))
            e.overlay(data, lo)
            if not _LIMITS:
                from .device import PortLimits
                _LIMITS.append(PortLimits("pending", 0xFFFFFF, 0xFFFFFF, 0xFFFF))
            if meter.write_table(e.tid, lo, data, e.role, _LIMITS[0], meter.physical_ms(t)) != R_OK:
                return False
        events.log(meter, EV_ACTIVATED, e.tid, None, t)
        return True

    def activate(self, meter, chosen, t):
        """Activate `chosen` entries at second t, all in this one call;
        BT04 is rewritten once at the end. Returns how many activated."""
        done = []
        for e in chosen:
            self.entries.remove(e)
            if self._valid(meter, e) and self._activate(meter, e, t):
                done.append(e)
            else:
                # Could not be activated (a calendar that no longer passes
                # its checks): dropped, event 29 (emulator profile).
                events.log(meter, EV_CLEARED, e.tid, None, t)
        self._render(meter, done, t if done else None)
        self._sync(meter)
        return len(done)

    def clear(self, meter, chosen, t):
        for e in chosen:
            self.entries.remove(e)
            events.log(meter, EV_CLEARED, e.tid, None, t)
        self._render(meter)
        self._sync(meter)

    # -- BT04 ----------------------------------------------------------------------
    def _render(self, meter, activated=(), t=None):
        """BT04 from the pending entries plus the records of earlier
        activations it already holds (still-pending bit clear), newest kept."""
        store = meter.store
        size = store.size(BT04)
        if size is None:
            return
        nstd = store.field(BT00, 13, 1)
        nmfg = store.field(BT00, 14, 1)
        cap = store.field(BT00, 18, 1)
        old = store.read(BT04, 0, size)
        at = nstd + nmfg
        if at + 6 > size:
            return
        done = []
        n_old = old[at + 5]
        for i in range(n_old if n_old < cap else cap):
            r = old[at + 6 + 8 * i:at + 14 + 8 * i]
            if len(r) == 8 and not (r[6] | r[7] << 8) & STILL_PENDING:
                done.append(bytes(r))
        for e in activated:
            done.append(e.ped + bytes((e.tid & 0xFF, (e.tid >> 8) & 0x0F)))
        room = cap - len(self.entries)
        if room < 0:
            room = 0
        if len(done) > room:
            done = done[len(done) - room:]
        new = bytearray(size)
        for e in self.entries:
            if e.tid < ET_BASE:
                n, first, nbytes = e.tid, 0, nstd
            else:
                n, first, nbytes = e.tid - ET_BASE, nstd, nmfg
            if (n >> 3) < nbytes:
                new[first + (n >> 3)] |= 1 << (n & 7)
        new[at:at + 5] = clock.encode_stime(t) if t is not None else old[at:at + 5]
        recs = done
        for e in self.entries:
            w = e.tid | STILL_PENDING
            recs.append(e.ped + bytes((w & 0xFF, w >> 8)))
        new[at + 5] = len(recs)
        for i in range(len(recs)):
            if at + 14 + 8 * i <= size:
                new[at + 6 + 8 * i:at + 14 + 8 * i] = recs[i]
        if bytes(new) != bytes(old):
            store.write(BT04, 0, new)

    # -- the subsystem (docs/time-model.md) ---------------------------------------
    def _sync(self, meter):
        """In meter.subsystems (after supply, before TOU, metrology and the
        load profile) exactly while a table waits for a time."""
        want = False
        for e in self.entries:
            if e.due is not None:
                want = True
                break
        subs = meter.subsystems
        there = self in subs
        if want and not there:
            out = []
            placed = False
            for s in subs:
                if not placed and s is not meter.supply:
                    out.append(self)
                    placed = True
                out.append(s)
            if not placed:
                out.append(self)
            meter.subsystems = tuple(out)
        elif there and not want:
            meter.subsystems = tuple([s for s in subs if s is not self])
        meter.changed()

    def due(self, meter):
        if not meter.powered:
            return None
        d = None
        for e in self.entries:
            if e.due is not None and (d is None or e.due < d):
                d = e.due
        if d is not None and self.floor is not None and d < self.floor:
            d = self.floor
        return d

    def run(self, meter, t):
        f = self.floor
        chosen = [e for e in self.entries if e.due is not None
                  and (e.due if f is None or e.due > f else f) <= t]
        if chosen:
            self.activate(meter, chosen, t)

    def clock_set(self, meter, old, new):
        # a table whose time was jumped over activates at the new time
        self.floor = new

    def power(self, meter, t, on):
        if on:
            self.floor = t              # what fell due in the outage: at restoration

    # -- non-volatile part (meter.nv_part "pending") --------------------------------
    def nv_get(self):
        """Compact bytes: version, count, then per entry: table ID UINT16,
        PED (6), due UINT32 (FFFFFFFF: none), role UINT8, segment count
        UINT8, segments {start UINT24, length UINT24, bytes}."""
        out = bytearray((NV_VERSION, len(self.entries)))
        for e in self.entries:
            due = _NONE if e.due is None else e.due & 0xFFFFFFFF
            out += bytes((e.tid & 0xFF, e.tid >> 8)) + e.ped + due.to_bytes(4, "little")
            out += bytes((e.role & 0xFF, len(e.segs)))
            for s, b in e.segs:
                out += s.to_bytes(3, "little") + len(b).to_bytes(3, "little") + b
        return bytes(out)

    def nv_put(self, raw):
        """Restore from nv_get() bytes (empty: nothing pending). Raises
        ValueError on bytes that do not decode; then nothing changes."""
        entries = []
        if raw:
            if len(raw) < 2 or raw[0] != NV_VERSION:
                raise ValueError("pending: bad NV record")
            at = 2
            for _ in range(raw[1]):
                if at + 14 > len(raw):
                    raise ValueError("pending: truncated NV record")
                tid = raw[at] | raw[at + 1] << 8
                ped = bytes(raw[at + 2:at + 8])
                due = int.from_bytes(raw[at + 8:at + 12], "little")
                e = Entry(tid, ped, None if due == _NONE else due, raw[at + 12])
                nseg = raw[at + 13]
                at += 14
                for _ in range(nseg):
                    if at + 6 > len(raw):
                        raise ValueError("pending: truncated NV record")
                    s = int.from_bytes(raw[at:at + 3], "little")
                    n = int.from_bytes(raw[at + 3:at + 6], "little")
                    at += 6
                    if at + n > len(raw):
                        raise ValueError("pending: truncated NV record")
                    e.segs.append([s, bytearray(raw[at:at + n])])
                    at += n
                entries.append(e)
            if at != len(raw):
                raise ValueError("pending: trailing bytes in NV record")
        self.entries = entries
        self._sync(self.meter)


# -- procedures BP12..BP15 [OPT p.8-12] [C1219] -------------------------------------

def _get(meter):
    """meter.pending, loaded if Firmware attached the stand-in (pending_lazy)."""
    p = meter.pending
    if p is None or isinstance(p, Pending):
        return p
    from . import pending_lazy
    return pending_lazy.real(meter)


def _no_params(meter, params):
    if _get(meter) is None:
        return procedures.UNRECOGNIZED
    if params:
        return procedures.INVALID_PARAMETER
    return None


def _by_ped(meter, params):
    if _get(meter) is None:
        return procedures.UNRECOGNIZED, None
    if len(params) != 6:
        return procedures.INVALID_PARAMETER, None
    ped = bytes(params)
    chosen = [e for e in meter.pending.entries if e.ped == ped]
    if not chosen:
        return 1, None                  # no matching pending table [OPT p.12]
    return None, chosen


def _activate_checked(meter, chosen, now):
    p = meter.pending
    for e in chosen:
        if not p._valid(meter, e):
            return procedures.CONFLICT  # nothing is activated or cleared
    p.activate(meter, chosen, meter.utc(now))
    return procedures.COMPLETED


def activate_all(meter, params, role, now):
    # BP12: no parameters; every pending table, whatever its PED.
    r = _no_params(meter, params)
    if r is not None:
        return r, b""
    chosen = list(meter.pending.entries)
    if not chosen:
        return procedures.COMPLETED, b""
    return _activate_checked(meter, chosen, now), b""


def activate_specific(meter, params, role, now):
    # BP13: the PED (6 bytes) at BT07 offset 3; the tables pending with it.
    r, chosen = _by_ped(meter, params)
    if r is not None:
        return r, b""
    return _activate_checked(meter, chosen, now), b""


def clear_all(meter, params, role, now):
    # BP14: no parameters; drops every pending table (event 29 each).
    r = _no_params(meter, params)
    if r is not None:
        return r, b""
    meter.pending.clear(meter, list(meter.pending.entries), meter.utc(now))
    return procedures.COMPLETED, b""


def clear_specific(meter, params, role, now):
    # BP15: the PED (6 bytes); result 1 when no pending table has it [OPT p.12].
    r, chosen = _by_ped(meter, params)
    if r is not None:
        return r, b""
    meter.pending.clear(meter, chosen, meter.utc(now))
    return procedures.COMPLETED, b""


procedures.register(12, activate_all)
procedures.register(13, activate_specific)
procedures.register(14, clear_all)
procedures.register(15, clear_specific)


def attach(meter):
    """Give `meter` pending tables (meter.pending) and register their
    non-volatile part. Nothing runs until a pending copy is written."""
    p = Pending(meter)
    meter.pending = p
    meter.nv_part("pending", p.nv_get, p.nv_put)
    return p
