# Metrology: the load model integrated over physical time into the register
# tables, demands, self-reads and demand resets. See docs/metrology.md and
# docs/time-model.md.
#
# Tables: BT15 (CT/VT ratios), BT21/BT22 (what is measured where), BT23 (the
# registers: the table *is* the state), BT24 (season snapshot), BT25 (data at
# the last demand reset), BT26 (self-reads), BT27/BT28 (present values, BT28
# computed on read), ET40 (demand interval, subintervals, reset lockout),
# ET04.65/66 (self-read time). RAM holds only what a meter keeps there: the
# watt-second remainders below one register unit, the running demand
# interval, the schedule and the time of the last demand reset.
from . import clock
from . import events
from . import procedures
from . import timeline
from .loadmodel import LoadModel

BT03 = 3
BT15 = 15
BT21 = 21
BT22 = 22
BT23 = 23
BT24 = 24
BT25 = 25
BT26 = 26
BT27 = 27
BT28 = 28
BT53 = 53
ET04 = 2048 + 4
ET40 = 2048 + 40
EP07 = 2048 + 7
EP21 = 2048 + 21

EV_DEMAND_RESET = 20
EV_SELF_READ = 21
USER_NONE = 0xFFFF

COMPLETED = procedures.COMPLETED
INVALID_PARAMETER = procedures.INVALID_PARAMETER
CONFLICT = procedures.CONFLICT
TIMING = procedures.TIMING

# Emulator profile, used where the tables say nothing (ET40 absent or invalid)
DEMAND_MINUTES = 15
LOCKOUT_MINUTES = 15

_M32 = 0xFFFFFFFF

# NES summation sources this module fills [OSGP 2.3]: 0 fwd Wh, 1 rev Wh,
# 2 import varh, 3 export varh, 6 fwd+rev, 7 fwd-rev (clamped at 0), 11-14
# varh Q1-Q4; 4/5 (outage seconds/count) come from the supply through
# add_outage(). 8/9 pulse inputs, 10 errors, 15-18 apparent stay 0.
_ENERGY_SOURCES = (0, 1, 2, 3, 6, 11, 12, 13, 14)
SRC_NET = 7
SRC_OUTAGE_S = 4
SRC_OUTAGE_N = 5
# (table, offset, bytes) that configure() depends on
_CONFIG = ((BT21, 0, 10), (BT22, 0, 255), (ET40, 0, 4), (BT15, 0, 8), (ET04, 65, 2), (BT27, 0, 255))
# value() ids at and above this read a BT28 present value (position id - 64)
PRESENT_BASE = 64


class Layout:
    """BT21/BT22 as offsets into BT23 (see the catalogue's register_data)."""
    __slots__ = ("lead", "n_sum", "n_dmd", "n_coin", "occ", "tiers", "t_size", "cum", "cont",
                 "rec", "block", "size", "sum_sel", "dmd_sel", "minmax", "coin_sel", "coin_dmd",
                 "n_self", "flags", "flags2")

    def __init__(self, store):
        d = store.read(BT21, 0, 10)
        self.flags = d[0]
        self.flags2 = d[1]
        self.n_self = d[2]
        n_sum = self.n_sum = d[3]
        n_dmd = self.n_dmd = d[4]
        n_coin = self.n_coin = d[5]
        occ = self.occ = d[6]
        self.tiers = d[7]
        self.lead = 1 if d[0] & 0x04 else 0
        self.t_size = 5 * occ if d[0] & 0x02 else 0
        self.cum = 4 if d[0] & 0x10 else 0
        self.cont = 4 if d[0] & 0x20 else 0
        self.rec = self.t_size + self.cum + self.cont + 4 * occ
        self.block = 4 * n_sum + n_dmd * self.rec + 4 * n_coin * occ
        self.size = self.lead + (self.tiers + 1) * self.block
        nbits = (n_dmd + 7) // 8
        sel = store.read(BT22, 0, n_sum + n_dmd + nbits + 2 * n_coin)
        self.sum_sel = sel[0:n_sum]
        self.dmd_sel = sel[n_sum:n_sum + n_dmd]
        self.minmax = sel[n_sum + n_dmd:n_sum + n_dmd + nbits]
        at = n_sum + n_dmd + nbits
        self.coin_sel = sel[at:at + n_coin]
        self.coin_dmd = sel[at + n_coin:at + 2 * n_coin]

    def is_max(self, d):
        return bool(self.minmax[d >> 3] & (1 << (d & 7)))

    def demand_at(self, block, d):
        """Offset of demand record d in block (0 = total, 1.. tiers)."""
        return self.lead + block * self.block + 4 * self.n_sum + d * self.rec


def _present(store, tid):
    size = store.size(tid)
    return size is not None and size > 0


def _u32(b, o):
    return b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)


def _put32(b, o, v):
    b[o:o + 4] = (v & _M32).to_bytes(4, "little")


def _s32(v):
    """A signed value as INT32 bytes (clamped to the INT32 range)."""
    if v > 0x7FFFFFFF:
        v = 0x7FFFFFFF
    elif v < -0x80000000:
        v = -0x80000000
    return (v & _M32).to_bytes(4, "little")


def _season(meter, t):
    tou = meter.tou
    return tou.season(meter, t) & 0xFF if tou is not None else 0


def _alarm_self_read(meter):
    # BT03 manufacturer status 4.1 "self-read occurred" [OPT BT03]
    alarm = getattr(events, "alarm", None)
    if alarm is not None:
        alarm(meter, 4, 1, True)
    elif _present(meter.store, BT03):
        meter.store.set_field(BT03, 4, 1, meter.store.field(BT03, 4, 1) | 0x02)


# -- the register snapshots: table-level, also for meters without metrology --

def _owned(store, tid):
    """This meter's own bytearray of table tid (created on first use),
    marked changed for the next commit (docs/persistence.md)."""
    return store.own(tid)


def reset_registers(meter, t, season=0):
    """Demand reset on the tables alone: BT23 as it was -> BT25 (reset time
    STIME_DATE, season, BT23 block); the reset counter steps; every maximum
    (minimum) demand is added to its cumulative demand and cleared with its
    time and coincident values. Returns (result, new reset count)."""
    store = meter.store
    lay = Layout(store)
    if not _present(store, BT23) or lay.n_dmd == 0 or store.size(BT23) != lay.size:
        return CONFLICT, 0
    regs = _owned(store, BT23)            # changed in place: no copies (a board's heap)
    if _present(store, BT25):
        store.write(BT25, 0, clock.encode_stime(t) + bytes((season,)))
        store.write(BT25, 6, regs)
    count = 0
    if lay.lead:
        count = regs[0] = (regs[0] + 1) & 0xFF
    occ = lay.occ
    for b in range(lay.tiers + 1):
        for d in range(lay.n_dmd):
            at = lay.demand_at(b, d)
            val_at = at + lay.t_size + lay.cum + lay.cont
            if lay.cum and lay.is_max(d):
                # the maximum joins the cumulative demand; the continuous
                # cumulative demand (cum + max) already holds it: unchanged
                c_at = at + lay.t_size
                _put32(regs, c_at, _u32(regs, c_at) + _u32(regs, val_at))
            for i in range(at, at + lay.t_size):
                regs[i] = 0
            for i in range(val_at, val_at + 4 * occ):
                regs[i] = 0
            coin0 = lay.lead + b * lay.block + 4 * lay.n_sum + lay.n_dmd * lay.rec
            for c in range(lay.n_coin):
                if lay.coin_dmd[c] == d:
                    o = coin0 + 4 * occ * c
                    for i in range(o, o + 4 * occ):
                        regs[i] = 0
    return COMPLETED, count


def record_self_read(meter, t, season=0):
    """Append a BT26 entry: [BIDN = the entry's sequence number, when BT21.4
    != 0] + STIME_DATE + season + BT23 block. Circular; the overflow flag is
    set when an unread entry is overwritten; with BT21.1 bit 0 (inhibit
    overflow) a full list refuses (3). Returns (result, sequence number)."""
    store = meter.store
    n = store.field(BT21, 2, 1)
    if n == 0 or not _present(store, BT26):
        return CONFLICT, 0
    inhibit = store.field(BT21, 1, 1) & 0x01
    head = store.read(BT26, 0, 6)
    flags, valid, last, unread = head[0], head[1], head[2], head[5]
    if valid >= n and inhibit:
        return CONFLICT, 0
    seq = ((head[3] | (head[4] << 8)) + 1) & 0xFFFF
    size = (store.size(BT26) - 6) // n
    index = 0 if valid == 0 else (last + 1) % n
    at = 6 + index * size
    # written piecewise: no entry-sized temporaries (a board's heap)
    prefix = (seq.to_bytes(2, "little") if store.field(BT21, 4, 1) else b"") \
        + clock.encode_stime(t) + bytes((season,))
    store.write(BT26, at, prefix)
    at += len(prefix)
    regs = store.content(BT23)
    room = size - len(prefix)
    n_regs = min(len(regs), room, store.size(BT23) or 0)
    store.write(BT26, at, regs if n_regs == len(regs) else regs[:n_regs])
    if n_regs < room:
        store.write(BT26, at + n_regs, bytes(room - n_regs))
    flags = (flags & 0xF0) | 0x04 | (0x08 if inhibit else 0) | (flags & 0x02)
    if unread >= n:
        flags |= 0x02                    # an unread entry was overwritten
    store.write(BT26, 0, bytes((flags, min(valid + 1, n), index)) + seq.to_bytes(2, "little")
                + bytes((min(unread + 1, n),)))
    return COMPLETED, seq


# -- the public entry points: with or without a metrology subsystem ----------

def demand_reset(meter, t, user=USER_NONE):
    """Demand reset at meter time t: 0 done, 3 no demands, 4 in the lockout."""
    m = meter.metrology
    if m is not None:
        return m.demand_reset(meter, t, user)
    result, count = reset_registers(meter, t, _season(meter, t))
    if result == COMPLETED:
        events.log(meter, EV_DEMAND_RESET, count, user, t)
    return result


def self_read(meter, t, user=USER_NONE):
    """Self-read at meter time t: 0 done, 3 no self-read list (or full)."""
    m = meter.metrology
    if m is not None:
        return m.self_read(meter, t, user)
    result, seq = record_self_read(meter, t, _season(meter, t))
    if result == COMPLETED:
        events.log(meter, EV_SELF_READ, seq, user, t)
        _alarm_self_read(meter)
    return result


def _can_self_read(meter):
    store = meter.store
    n = store.field(BT21, 2, 1)
    if n == 0 or not _present(store, BT26):
        return False
    return not (store.field(BT26, 1, 1) >= n and store.field(BT21, 1, 1) & 0x01)


def _can_demand_reset(meter, t):
    if not _present(meter.store, BT23) or meter.store.field(BT21, 4, 1) == 0:
        return CONFLICT
    m = meter.metrology
    if m is not None and m.locked(meter, t):
        return TIMING
    return COMPLETED


# -- procedures ----------------------------------------------------------------

def remote_reset(meter, params, role, now):
    # BP09. Parameter: action byte, bit 0 demand reset, bit 1 self-read,
    # bit 2 season change to the season in bits 3-6 (C12.19). All checks
    # come first; the self-read precedes the demand reset, the season
    # change comes last. A season change needs a TOU calendar that offers
    # set_season(meter, t, season); without one it is refused with 3.
    if len(params) != 1 or params[0] & 0x80 or not params[0] & 0x07:
        return INVALID_PARAMETER, b""
    action = params[0]
    if not action & 0x04 and action & 0x78:
        return INVALID_PARAMETER, b""
    t = meter.utc(now)
    if action & 0x04:
        tou = meter.tou
        if tou is None or getattr(tou, "set_season", None) is None:
            return CONFLICT, b""
    if action & 0x02 and not _can_self_read(meter):
        return CONFLICT, b""
    if action & 0x01:
        r = _can_demand_reset(meter, t)
        if r != COMPLETED:
            return r, b""
    user = meter.user
    m = meter.metrology
    if action & 0x02:
        if m is not None:
            m.self_read(meter, t, user, couple=False)
        else:
            self_read(meter, t, user)
    if action & 0x01:
        if m is not None:
            m.demand_reset(meter, t, user, couple=False)
        else:
            demand_reset(meter, t, user)
    if action & 0x04:
        r = meter.tou.set_season(meter, t, (action >> 3) & 0x0F)
        if r:
            return r, b""
    return COMPLETED, b""


def ep_demand_reset(meter, params, role, now):
    # EP21 "Demand Reset" (emulator number): no parameters.
    if params:
        return INVALID_PARAMETER, b""
    t = meter.utc(now)
    r = _can_demand_reset(meter, t)
    if r != COMPLETED:
        return r, b""
    return demand_reset(meter, t, meter.user), b""


def ep_self_read(meter, params, role, now):
    # EP07 "Record Self-Read" (emulator number): no parameters.
    if params:
        return INVALID_PARAMETER, b""
    if not _can_self_read(meter):
        return CONFLICT, b""
    return self_read(meter, meter.utc(now), meter.user), b""


procedures.register(9, remote_reset)
procedures.register(EP07, ep_self_read)
procedures.register(EP21, ep_demand_reset)


# -- the subsystem ---------------------------------------------------------------

def attach(meter, config, now=None):
    """Create the metrology of `meter` from the firmware config (see
    docs/metrology.md: seed, annual_kwh, pv_peak_w, phases, load_tz_min) and
    install it. It starts at `now` (driver ms) or the meter's clock as last
    advanced; without either, at the first update()."""
    store = meter.store
    model = LoadModel(config.get("seed", 0), config.get("annual_kwh", 3500),
                      config.get("pv_peak_w", 0), config.get("phases", 3),
                      config.get("load_tz_min", 60), store.field(ET04, 60, 2) or 230,
                      store.field(ET04, 13, 1) or 50)
    m = Metrology(model)
    timeline.install(meter, "metrology", m)
    t = meter.utc(now) if now is not None else meter.t
    if t is not None:
        m.start(meter, t)
    return m


class Metrology(timeline.Subsystem):
    __slots__ = ("model", "lay", "key", "last_s", "seg_t", "tier", "rem", "net", "netreg",
                 "num", "rden", "den", "dsrc", "dacc", "ring", "pos", "valid", "n_sub",
                 "sub_s", "int_s", "partial", "next_dmd", "next_sr", "next_due", "last_reset",
                 "lock_s", "k_dmd", "k_coin", "k_pd", "eslots", "nslots")

    def __init__(self, model):
        self.model = model
        self.lay = None
        self.key = None
        self.last_s = None        # physical second integrated up to
        self.seg_t = None         # the meter second that corresponds to
        self.tier = 0             # tier of the last segment that flowed
        self.last_reset = None    # physical second of the last demand reset
        self.next_due = None

    # -- configuration (from the tables) -----------------------------------
    def _config_key(self, store):
        # the bytes configure() reads; compared at every run (cheap: no
        # size evaluation, one slice per table)
        key = b""
        for tid, at, n in _CONFIG:
            key += store.content(tid)[at:at + n]
        return key

    def start(self, meter, t):
        self.last_s = meter.physical_ms(t) // 1000
        self.seg_t = t
        self.configure(meter, t)
        store = meter.store
        if _present(store, BT25) and store.field(BT25, 0, 5):
            reset = clock.decode_ltime(store.read(BT25, 0, 5) + b"\x00")
            if reset is not None:
                self.last_reset = meter.physical_ms(reset) // 1000

    def configure(self, meter, t):
        """(Re)read BT15/BT21/BT22/BT27/ET40/ET04 and rebuild the RAM state:
        remainders restart, the demand interval restarts (partial), the
        schedule is recomputed. Called at start, and at a run or an update
        that finds the configuration changed."""
        store = meter.store
        self.key = self._config_key(store)
        lay = self.lay = Layout(store)
        ct_n, ct_d = store.field(BT15, 0, 2), store.field(BT15, 2, 2)
        vt_n, vt_d = store.field(BT15, 4, 2), store.field(BT15, 6, 2)
        self.num = (ct_n or 1) * (vt_n or 1)
        self.rden = (ct_d or 1) * (vt_d or 1)
        self.den = 3600 * self.rden
        self.rem = [[0] * lay.n_sum for _ in range(lay.tiers + 1)]
        self.eslots = []
        self.nslots = []
        for i in range(lay.n_sum):
            s = lay.sum_sel[i]
            if s in _ENERGY_SOURCES:
                self.eslots.append((4 * i, s, i))
            elif s == SRC_NET:
                self.nslots.append(4 * i)
        # this meter's own BT23, and BT26 when self-reads are scheduled, now
        # while a board's heap is young (BT26 is 4.8 KB with the default
        # dimensions), not at the first self-read
        for tid in (BT23, BT26):
            if tid == BT26 and not lay.flags2 & 0x0C:
                continue
            if _present(store, tid) and tid not in store.written:
                store.write(tid, 0, b"")
        regs = store.content(BT23)
        self.net = [0] * (lay.tiers + 1)
        self.netreg = [0] * (lay.tiers + 1)
        for b in range(lay.tiers + 1):
            for i in range(lay.n_sum):
                if lay.sum_sel[i] == SRC_NET and len(regs) >= lay.size:
                    reg = _u32(regs, lay.lead + b * lay.block + 4 * i)
                    self.net[b] = reg * self.den
                    self.netreg[b] = reg
        # demand sources: the demands, the coincidents, the present demands
        pd = store.read(BT27, 0, store.field(BT21, 8, 1)) if _present(store, BT27) else b""
        srcs = []
        for s in bytes(lay.dmd_sel) + bytes(lay.coin_sel) + bytes(pd):
            if s not in srcs:
                srcs.append(s)
        self.dsrc = srcs
        self.k_dmd = [srcs.index(s) for s in lay.dmd_sel]
        self.k_coin = [srcs.index(s) for s in lay.coin_sel]
        self.k_pd = [srcs.index(s) for s in pd]
        minutes, n_sub, lock = DEMAND_MINUTES, 1, LOCKOUT_MINUTES
        if _present(store, ET40):
            minutes = store.field(ET40, 0, 1)
            n_sub = store.field(ET40, 1, 1)
            lock = store.field(ET40, 2, 2)
            if minutes == 0 or 1440 % minutes or n_sub == 0 or (minutes * 60) % n_sub:
                minutes, n_sub = DEMAND_MINUTES, 1
        self.lock_s = lock * 60 if lay.flags & 0x08 else 0
        self.int_s = minutes * 60
        self.n_sub = n_sub
        self.sub_s = self.int_s // n_sub
        self._restart_interval(t)
        self.next_sr = self._next_self_read(meter, t)
        self._due()

    def _restart_interval(self, t):
        n = len(self.dsrc)
        self.dacc = [0] * n
        self.ring = [[0] * self.n_sub for _ in range(n)]
        self.pos = 0
        self.valid = 0
        self.partial = t % self.sub_s != 0
        self.next_dmd = (t // self.sub_s + 1) * self.sub_s

    def _due(self):
        a, b = self.next_dmd, self.next_sr
        self.next_due = a if b is None or (a is not None and a < b) else b

    def _local_offset(self, meter, t):
        tou = meter.tou
        if tou is not None and getattr(tou, "local", None) is not None:
            return tou.local(meter, t) - t
        tz = meter.store.field(BT53, 4, 2)
        return (tz - 0x10000 if tz >= 0x8000 else tz) * 60

    def _next_self_read(self, meter, t):
        # Daily (BT21.1 bit 2) at the ET04.65/66 local hour:minute; weekly
        # (bit 3, without bit 2) on Sundays at that time.
        store = meter.store
        f2 = store.field(BT21, 1, 1)
        if not f2 & 0x0C or not _present(store, BT26) or store.field(BT21, 2, 1) == 0:
            return None
        hh = store.field(ET04, 65, 1)
        mm = store.field(ET04, 66, 1)
        if hh > 23 or mm > 59:
            return None
        off = self._local_offset(meter, t)
        lt = t + off
        cand = lt - lt % 86400 + hh * 3600 + mm * 60
        if cand <= lt:
            cand += 86400
        if not f2 & 0x04:
            cand += ((7 - (cand // 86400 + 4) % 7) % 7) * 86400
        at = cand - off
        off2 = self._local_offset(meter, at)      # a DST change in between
        if off2 != off and cand - off2 > t:
            at = cand - off2
        return at

    # -- integration -----------------------------------------------------------
    def _flowing(self, meter):
        if not meter.powered:
            return False
        s = meter.supply
        return s is None or s.connected(meter)

    def _relay(self, meter):
        # the supply's view with the meter powered (for the segment before
        # a power change: Meter.set_power flips meter.powered first)
        s = meter.supply
        if s is None:
            return True
        p = meter.powered
        meter.powered = True
        try:
            return s.connected(meter)
        finally:
            meter.powered = p

    def update(self, meter, t):
        """Integrate up to meter second t (idempotent; earlier t: nothing).
        The state (powered, connected, tier) is taken as it is now: whoever
        changes it calls update first."""
        if self.last_s is None:
            self.start(meter, t)
            return
        end = meter.physical_ms(t) // 1000
        if end > self.last_s:
            self._flow(meter, end, self._flowing(meter), t)

    def _flow(self, meter, end, flowing, t):
        if flowing:
            tou = meter.tou
            tier = tou.tier(meter, self.seg_t) if tou is not None else 0
            self._add(meter, self.model.energy(self.last_s * 1000, end * 1000), tier)
            self.tier = tier
        self.last_s = end
        self.seg_t = t

    def _regs(self, meter):
        store = meter.store
        size = store.size(BT23)
        if not size:
            return None
        if size != self.lay.size:
            self.configure(meter, self.seg_t)
            if size != self.lay.size:
                return None
        return _owned(store, BT23)

    def _add(self, meter, e, tier):
        imp, exp, q1, q2, q3, q4 = e
        vals = (imp, exp, q1 + q2, q3 + q4, 0, 0, imp + exp, imp - exp, 0, 0, 0, q1, q2, q3, q4)
        dacc = self.dacc
        k = 0
        for s in self.dsrc:
            if s < 15:
                dacc[k] += vals[s]
            k += 1
        buf = self._regs(meter)
        if buf is None:
            return
        lay = self.lay
        num = self.num
        den = self.den
        eslots = self.eslots
        nslots = self.nslots
        b = 0
        while True:
            base = lay.lead + b * lay.block
            rem = self.rem[b]
            for o, s, i in eslots:
                v = vals[s]
                if v:
                    r = rem[i] + v * num
                    if r >= den:
                        c = r // den
                        r -= c * den
                        o += base
                        _put32(buf, o, _u32(buf, o) + c)
                    rem[i] = r
            if nslots:
                # fwd - rev from the exact integral, clamped at 0 (so it does
                # not depend on how time was stepped)
                cur = _u32(buf, base + nslots[0])
                if cur != self.netreg[b]:              # cleared (BP03)
                    self.net[b] = cur * den
                net = self.net[b] = self.net[b] + (imp - exp) * num
                reg = net // den if net > 0 else 0
                if reg != cur:
                    for o in nslots:
                        _put32(buf, base + o, reg)
                self.netreg[b] = reg
            if b or tier >= lay.tiers:
                break
            b = tier + 1

    # -- the timeline -----------------------------------------------------------------
    def due(self, meter):
        return self.next_due

    def run(self, meter, t):
        self.update(meter, t)
        sr = self.next_sr is not None and t >= self.next_sr
        if self._config_key(meter.store) != self.key:
            self.configure(meter, t)             # the interval restarts, partial
        elif self.next_dmd is not None and t >= self.next_dmd:
            self._close(meter, t)
            self.next_dmd = (t // self.sub_s + 1) * self.sub_s
        if sr:
            if meter.powered:
                self.self_read(meter, t)
            self.next_sr = self._next_self_read(meter, t)
        self._due()

    def clock_set(self, meter, old, new):
        if self.last_s is None:
            return
        end = meter.physical_ms(new) // 1000
        if end > self.last_s:
            self._flow(meter, end, self._flowing(meter), old)
        self.seg_t = new
        # the interval in progress ends here, partial: not counted
        self._restart_interval(new)
        self.next_sr = self._next_self_read(meter, new)
        self._due()

    def power(self, meter, t, on):
        if self.last_s is None:
            return
        end = meter.physical_ms(t) // 1000
        if end > self.last_s:
            self._flow(meter, end, (not on) and self._relay(meter), t)
        self.partial = True       # an interval with an outage is not counted

    # -- demands -----------------------------------------------------------------------
    def _close(self, meter, t):
        """End of a (sub)interval at t: the demand of each source over the
        last n_sub subintervals; maxima (minima) and their times in the total
        block and the block of the tier in effect at the end."""
        n_sub = self.n_sub
        pos = self.pos
        ring = self.ring
        dacc = self.dacc
        for k in range(len(dacc)):
            ring[k][pos] = dacc[k]
            dacc[k] = 0
        self.pos = (pos + 1) % n_sub
        if self.partial:
            self.valid = 0
        elif self.valid < n_sub:
            self.valid += 1
        self.partial = not meter.powered
        lay = self.lay
        if self.valid < n_sub or lay.n_dmd == 0:
            return
        buf = self._regs(meter)
        if buf is None:
            return
        dem = [self._demand(sum(r)) for r in ring]
        stime = clock.encode_stime(t)
        b = 0
        while True:
            for d in range(lay.n_dmd):
                self._record(buf, lay, b, d, dem[self.k_dmd[d]], dem, stime)
            if b or self.tier >= lay.tiers:
                break
            b = self.tier + 1

    def _demand(self, ws):
        # W (var) over one interval, after the CT/VT ratios
        if ws <= 0:
            return 0
        return ws * self.num // (self.rden * self.int_s)

    def _record(self, buf, lay, b, d, value, dem, stime):
        at = lay.demand_at(b, d)
        val_at = at + lay.t_size + lay.cum + lay.cont
        occ = lay.occ
        is_max = lay.is_max(d)
        old = _u32(buf, val_at)
        j = 0
        while j < occ:
            cur = _u32(buf, val_at + 4 * j)
            if is_max:
                if value > cur:
                    break
            else:
                empty = cur == 0 and (not lay.t_size or buf[at + 5 * j:at + 5 * j + 5] == bytes(5))
                if empty or value < cur:
                    break
            j += 1
        if j == occ:
            return
        # shift the lower occurrences down, insert at j
        last = occ - 1
        if j < last:
            buf[val_at + 4 * (j + 1):val_at + 4 * occ] = buf[val_at + 4 * j:val_at + 4 * last]
            if lay.t_size:
                buf[at + 5 * (j + 1):at + 5 * occ] = buf[at + 5 * j:at + 5 * last]
        _put32(buf, val_at + 4 * j, value)
        if lay.t_size:
            buf[at + 5 * j:at + 5 * j + 5] = stime
        if lay.cont and j == 0 and is_max:
            # continuous cumulative = cumulative + the present maximum
            c_at = at + lay.t_size + lay.cum
            _put32(buf, c_at, _u32(buf, c_at) - old + value)
        coin0 = lay.lead + b * lay.block + 4 * lay.n_sum + lay.n_dmd * lay.rec
        for c in range(lay.n_coin):
            if lay.coin_dmd[c] == d:
                o = coin0 + 4 * occ * c
                if j < last:
                    buf[o + 4 * (j + 1):o + 4 * occ] = buf[o + 4 * j:o + 4 * last]
                _put32(buf, o + 4 * j, dem[self.k_coin[c]])

    def present_demand(self, k):
        """Demand so far of demand source slot k: the energy of the running
        interval (the completed subintervals plus the running one) over the
        interval length."""
        ring = self.ring[k]
        return self._demand(sum(ring) - ring[self.pos] + self.dacc[k])

    def locked(self, meter, t):
        if not self.lock_s or self.last_reset is None:
            return False
        return meter.physical_ms(t) // 1000 - self.last_reset < self.lock_s

    # -- resets and reads ---------------------------------------------------------------
    def demand_reset(self, meter, t, user=USER_NONE, couple=True):
        self.update(meter, t)
        r = _can_demand_reset(meter, t)
        if r != COMPLETED:
            return r
        if couple and self.lay.flags2 & 0x10 and _can_self_read(meter):
            self.self_read(meter, t, user, couple=False)
        result, count = reset_registers(meter, t, _season(meter, t))
        if result == COMPLETED:
            self.last_reset = meter.physical_ms(t) // 1000
            events.log(meter, EV_DEMAND_RESET, count, user, t)
        return result

    def self_read(self, meter, t, user=USER_NONE, couple=True):
        self.update(meter, t)
        result, seq = record_self_read(meter, t, _season(meter, t))
        if result != COMPLETED:
            return result
        events.log(meter, EV_SELF_READ, seq, user, t)
        _alarm_self_read(meter)
        if couple and self.lay.flags2 & 0x20:
            self.demand_reset(meter, t, user, couple=False)
        return result

    def season_change(self, meter, t, new_season=0):
        """The TOU calendar changes season at t: BT23 -> BT24."""
        self.update(meter, t)
        store = meter.store
        if not _present(store, BT24) or not _present(store, BT23):
            return CONFLICT
        store.write(BT24, 0, store.get(BT23))
        return COMPLETED

    def add_outage(self, meter, seconds):
        """The supply reports an outage of `seconds`: summation 4 (outage
        seconds) and 5 (outage count) of the total block."""
        if self.lay is None:
            return
        buf = self._regs(meter)
        if buf is None:
            return
        lay = self.lay
        for i in range(lay.n_sum):
            s = lay.sum_sel[i]
            if s == SRC_OUTAGE_S or s == SRC_OUTAGE_N:
                o = lay.lead + 4 * i
                _put32(buf, o, _u32(buf, o) + (seconds if s == SRC_OUTAGE_S else 1))

    # -- reading -----------------------------------------------------------------------
    def value(self, meter, sid):
        """For the load profile, up to the meter's clock (meter.t): sid
        0..63 = summation i of BT23's total block, as the register reads
        (Wh, varh, s, count); 64.. = BT28 present value sid - 64 (the value
        BT27 selects for that position). Past the dimensions: 0."""
        t = meter.t
        if t is not None:
            self.update(meter, t)
        lay = self.lay
        if lay is None:
            return 0
        if sid >= PRESENT_BASE:
            j = sid - PRESENT_BASE
            store = meter.store
            n_pd = store.field(BT21, 8, 1)
            if j >= store.field(BT21, 9, 1):
                return 0
            return self.present_value(meter, store.field(BT27, n_pd + j, 1), t)
        if sid >= lay.n_sum:
            return 0
        return meter.store.field(BT23, lay.lead + 4 * sid, 4)

    def present_power(self, meter, t):
        """Import active power (W) now, for the supply's ET30 limit."""
        return self.present_value(meter, 0, t)

    def present_current(self, meter, t):
        """The largest phase current (mA) now, for the supply's ET30 limit."""
        v = self._present_values(meter, t)
        return max(v[4], v[5], v[6]) if v is not None else 0

    def _present_values(self, meter, t):
        if not meter.powered or t is None:
            return None
        v = self.model.power(meter.physical_ms(t))
        if self._flowing(meter):
            return v
        # load disconnected: the line voltage and frequency remain
        return (0, 0, 0, 0, 0, 0, 0, v[7], v[8], v[9], 1000, v[11], 0, 1000, 1000)

    def present_value(self, meter, n, t, v=None):
        """BT28 value index n (NES): 0..14 from the load model, 18..21 fwd
        W / rev W / import var / export var after the CT/VT ratios, 22..25
        var in Q1..Q4; others 0."""
        if v is None:
            v = self._present_values(meter, t)
        if v is None:
            return 0
        if n < 15:
            return v[n]
        if 18 <= n <= 21:
            return v[n - 18] * self.num // self.rden
        if 22 <= n <= 25:
            q = v[2] - v[3]
            imp = v[0] > 0 or v[1] == 0
            want = ((imp and q >= 0), (not imp and q >= 0), (not imp and q < 0), (imp and q < 0))
            return abs(q) if want[n - 22] else 0
        return 0

    def live(self, meter, tid, t):
        """BT28 bytes at meter time t (else None): present demands [BT21.8]
        (time remaining if BT21.0 bit 6; demand of the running interval),
        then present values [BT21.9] as selected by BT27."""
        if tid != BT28:
            return None
        self.update(meter, t)
        store = meter.store
        n_pd = store.field(BT21, 8, 1)
        n_pv = store.field(BT21, 9, 1)
        remaining = store.field(BT21, 0, 1) & 0x40
        sel = store.read(BT27, 0, n_pd + n_pv)
        out = bytearray()
        left = self.next_dmd - t if self.next_dmd is not None and self.next_dmd > t else 0
        for j in range(n_pd):
            if remaining:
                out += bytes((left // 3600, (left // 60) % 60, left % 60))
            k = self.k_pd[j] if j < len(self.k_pd) else None
            out += _s32(self.present_demand(k) if k is not None else 0)
        v = self._present_values(meter, t)
        for j in range(n_pv):
            out += _s32(self.present_value(meter, sel[n_pd + j], t, v))
        return bytes(out)
