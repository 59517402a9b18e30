# The TOU subsystem (meter.tou): local time and the tariff calendar.
#
#   BT52  UTC clock, live; b3 = DST in effect (from here)
#   BT53  DST switch time, DST amount, time zone (read on change)
#   BT54  the calendar (calendar.py decodes it; all zeros = the built-in one)
#   BT55  local TOU clock, live; its status word (tier, tier drive, special
#         schedule, season) is also kept in the stored table
#   EP05  Set Tariff (manual tier), EP16 Change System Clock by Delta
#
# Between two events nothing changes, so the object keeps the current state
# in RAM and `due()` is the next second at which something does: a tier
# switch, a date's midnight, the end of a special day, a DST change, the end
# of a manual hold. Rules and emulator choices: docs/tou.md.
from . import calendar as cal
from . import clock
from . import events
from . import procedures
from . import timeline

BT21 = 21
BT50 = 50
BT52 = 52
BT53 = 53
BT54 = 54
BT55 = 55
ET04 = 2048 + 4
ET04_DST_OFF = 63           # DST-off time delta INT16, minutes [MEP ET04]
EP05 = 2048 + 5
EP16 = 2048 + 16

EV_TIME_OLD = 3
EV_TIME_NEW = 4
EV_DST_ON = 22
EV_DST_OFF = 23
EV_SEASON = 24
EV_SPECIAL = 26
EV_TIER = 27

DRIVE_CALENDAR = 0
DRIVE_HOLD_OFF = 1          # manual for a number of minutes
DRIVE_HOLD = 2              # manual until EP05 gives the tier back
DRIVE_OVERRIDE = 3          # manual until the calendar's next tier switch

NO_SPECIAL = cal.NO_SPECIAL
USER_NONE = events.USER_NONE

CLOCK_MIN = clock.from_civil(2000, 1, 1)
CLOCK_MAX = clock.from_civil(2100, 1, 1) - 1

NES_BT50 = b"\x00\x11\x2c\x19\x17\xc8\x00\x28\x03"
# The built-in calendar laid out for the default BT50 dimensions (808 bytes);
# docs/tou.md shows its bytes. Any other dimensions get the same calendar.
DEFAULT_CALENDAR = cal.default_calendar(cal.Dims(NES_BT50))
_NES_KEY = cal.Dims(NES_BT50).key()

_CACHE = []                 # the last decoded calendars, shared by meters
_CACHE_MAX = 2


def dims(store):
    return cal.Dims(store.read(BT50, 0, 9))


def tiers(store):
    """Number of tiers: BT21.7 (the register tiers); 8 without BT21."""
    if store.size(BT21) is None:
        return 8
    n = store.field(BT21, 7, 1)
    return 1 if n == 0 else (8 if n > 8 else n)


def _signed16(v):
    return v - 0x10000 if v >= 0x8000 else v


def load_calendar(store, use_default=True):
    """The decoded calendar of a store (shared with meters holding the same bytes)."""
    d = dims(store)
    tag = (d.key(), tiers(store))
    data = store.content(BT54) if store.size(BT54) is not None else b""
    if use_default and not any(data):
        data = DEFAULT_CALENDAR if tag[0] == _NES_KEY else cal.default_calendar(d)
    for c in _CACHE:
        if c.tag == tag and c.raw == data:
            return c
    if not isinstance(data, bytes):
        data = bytes(data)
    c = cal.Calendar(data, d, tag[1])
    c.raw = data
    c.tag = tag
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.pop(0)
    _CACHE.append(c)
    return c


def _tier_at(sw, tod, start):
    tier = start
    for e in sw:
        if e >> 3 > tod:
            break
        tier = e & 7
    return tier


def _last_sunday(y, m):
    z = clock.days_from_civil(y, m, 31)
    return z - cal.weekday(z)


class Tou(timeline.Subsystem):
    __slots__ = ("cal", "raw", "offraw", "use_default", "auto", "tz", "amt", "eff",
                 "dst_", "dst_at", "dst_on", "day", "season_", "special", "sw", "start",
                 "cal_tier", "cur", "drive", "manual", "until", "next_date", "next",
                 "since", "pending", "ready", "off", "word")

    def __init__(self, config=None):
        config = config or {}
        self.use_default = config.get("default_calendar", True)
        self.cal = None
        self.raw = None             # BT54 content the calendar was decoded from
        self.offraw = None          # BT53 content tz/amt/eff were read from
        self.auto = False
        self.tz = self.amt = self.eff = 0       # seconds
        self.dst_ = False
        self.dst_at = None          # next DST action (meter second) and its state
        self.dst_on = False
        self.day = None             # local day of the current plan
        self.season_ = 0
        self.special = NO_SPECIAL
        self.sw = ()                # today's switches: (second << 3) | tier
        self.start = 0              # tier carried into today
        self.cal_tier = 0
        self.cur = None             # effective tier
        self.drive = DRIVE_CALENDAR
        self.manual = 0
        self.until = None           # end of a manual hold-off / override
        self.next_date = None       # next local day with midnight actions
        self.next = None            # cached due()
        self.since = None           # the state holds from here to `next`
        self.pending = True         # re-evaluate everything at `next`
        self.ready = False
        self.off = False            # supply lost
        self.word = None            # BT55 status word as stored

    # -- tables --------------------------------------------------------------
    def _load(self, meter):
        store = meter.store
        c = self.cal = load_calendar(store, self.use_default)
        raw = store.content(BT54)
        self.raw = raw if isinstance(raw, bytes) else (c.raw if raw == c.raw else bytes(raw))
        z = store.content(BT53)
        self.offraw = z if isinstance(z, bytes) else bytes(z)
        b = store.read(BT53, 0, 6)
        self.eff = b[0] * 3600 + b[1] * 60 + b[2]
        self.amt = b[3] * 60
        self.tz = _signed16(b[4] | (b[5] << 8)) * 60
        self.auto = bool(store.read(BT50, 1, 1)[0] & 1)

    def _changed(self, meter):
        store = meter.store
        c = store.content(BT54)
        if c is not self.raw and c != self.raw:
            return True
        c = store.content(BT53)
        return c is not self.offraw and c != self.offraw

    # -- DST -----------------------------------------------------------------
    def _dst_edge(self, meter, t, after):
        """after: the first DST action after t, as (second, on); else the
        last at or before t. (None, False) when there is none."""
        best = None
        state = False
        dates = self.cal.dst
        if dates:
            od = _signed16(meter.store.field(ET04, ET04_DST_OFF, 2)) * 60
            base = self.eff - self.tz
            ls = (t + self.tz) // 86400
            for kind, v, a in dates:
                on = (a & 0x1F) == cal.ACT_DST_ON
                # on: at the switch time in standard time; off: at the switch
                # time + ET04.63 in daylight time
                shift = base if on else base + od - self.amt
                if after:
                    d = cal.occ_next(kind, v, ls - 2)
                    while d is not None and d * 86400 + shift <= t:
                        d = cal.occ_next(kind, v, d + 1)
                    if d is not None and (best is None or d * 86400 + shift <= best):
                        best = d * 86400 + shift
                        state = on
                else:
                    d = cal.occ_prev(kind, v, ls + 2)
                    while d is not None and d * 86400 + shift > t:
                        d = cal.occ_prev(kind, v, d - 1)
                    if d is not None and (best is None or d * 86400 + shift >= best):
                        best = d * 86400 + shift
                        state = on
            return best, state
        if not self.auto:
            return None, False
        # No DST dates, DST auto: the EU rule, last Sunday of March/October 01:00 UTC
        y = clock.civil_from_days(t // 86400)[0]
        for yy in ((y, y + 1) if after else (y, y - 1)):
            for mo, on in ((3, True), (10, False)):
                x = _last_sunday(yy, mo) * 86400 + 3600
                if after:
                    if x > t and (best is None or x < best):
                        best, state = x, on
                elif x <= t and (best is None or x > best):
                    best, state = x, on
        return best, state

    def _off(self):
        return self.tz + (self.amt if self.dst_ else 0)

    # -- evaluation ------------------------------------------------------------
    def _start_tier(self, day):
        """The tier at the end of the day before `day` (the first switch of
        a day carries the previous day's last tier until it)."""
        c = self.cal
        if not c.switches:
            return 0
        d = day - 1
        while d > day - 400:
            sw = c.day_switches(c.season_at(d), c.special_on(d), d)
            if sw:
                return sw[-1] & 7
            d -= 1
        return 0

    def _eval(self, meter, t):
        """Everything the calendar says at t, from scratch (no side effects)."""
        c = self.cal
        dst = self._dst_edge(meter, t, False)[1]
        dst_at, dst_on = self._dst_edge(meter, t, True)
        lt = t + self.tz + (self.amt if dst else 0)
        day = lt // 86400
        season = c.season_at(day)
        special = c.special_on(day)
        sw = c.day_switches(season, special, day)
        start = self._start_tier(day)
        return (dst, dst_at, dst_on, day, season, special, sw, start,
                _tier_at(sw, lt - day * 86400, start))

    def _next_switch(self, t):
        """The second of the next calendar tier switch after t, or None when
        a midnight wake-up comes first or there is none before the next date."""
        off = self._off()
        lt = t + off
        day = lt // 86400
        tod = lt - day * 86400
        for e in self.sw:
            if e >> 3 > tod:
                return day * 86400 + (e >> 3) - off
        if self.special != NO_SPECIAL:
            return None
        end = day + 8           # between dates the week repeats
        if self.next_date is not None and self.next_date < end:
            end = self.next_date
        c = self.cal
        d = day + 1
        while d < end:
            sw = c.day_switches(self.season_, NO_SPECIAL, d)
            if sw:
                return d * 86400 + (sw[0] >> 3) - off
            d += 1
        return None

    def _schedule(self, t):
        off = self._off()
        day = (t + off) // 86400
        best = self._next_switch(t)
        for x in (self.dst_at,
                  None if self.next_date is None else self.next_date * 86400 - off,
                  (day + 1) * 86400 - off if self.special != NO_SPECIAL else None,
                  self.until if self.drive else None):
            if x is not None and x > t and (best is None or x < best):
                best = x
        self.next = best

    def _settle(self, meter, t, user, log=True):
        """Effective tier and the BT55 word after a change of state."""
        tier = self.manual if self.drive else self.cal_tier
        if tier != self.cur:
            if self.cur is not None and log:
                events.log(meter, EV_TIER, tier, user, t)
            self.cur = tier
        word = tier | (self.drive << 6) | (self.special << 8) | (self.season_ << 12)
        if word != self.word:
            self.word = word
            meter.store.set_field(BT55, 7, 2, word)

    def _expire(self, t):
        if self.drive and self.drive != DRIVE_HOLD and self.until is not None and t >= self.until:
            self.drive = DRIVE_CALENDAR
            self.until = None

    def _reevaluate(self, meter, t):
        """Take the state the calendar gives at t (attach, clock set, power
        up, new calendar or time offset). Changes are logged once each; the
        tier switches a jump passes over are not."""
        if self.cal is None or self._changed(meter):
            self._load(meter)
        log = self.ready
        m = meter.metrology
        if log and m is not None:
            m.update(meter, t)
        dst, self.dst_at, self.dst_on, day, season, special, sw, start, tier = self._eval(meter, t)
        if log and dst != self.dst_:
            events.log(meter, EV_DST_ON if dst else EV_DST_OFF, 0, USER_NONE, t)
        self.dst_ = dst
        if log and season != self.season_:
            self.season_ = season
            events.log(meter, EV_SEASON, season, USER_NONE, t)
            if m is not None:
                m.season_change(meter, t, season)
        self.season_ = season
        if log and special != NO_SPECIAL and (special != self.special or day != self.day):
            events.log(meter, EV_SPECIAL, special, USER_NONE, t)
        self.day, self.special, self.sw, self.start, self.cal_tier = day, special, sw, start, tier
        self.next_date = self.cal.next_midnight_day(day + 1)
        self.pending = False
        self.ready = True
        self._expire(t)
        if self.drive == DRIVE_OVERRIDE:
            self.until = self._next_switch(t)
        self._settle(meter, t, USER_NONE, log)
        self.since = t
        self._schedule(t)

    def _date_actions(self, meter, t, d, today):
        season = special = None
        flags = 0
        for a in self.cal.actions_on(d):
            code = a & 0x1F
            if cal.ACT_SEASON <= code < cal.ACT_SPECIAL:
                season = code - cal.ACT_SEASON
            elif code >= cal.ACT_SPECIAL:
                special = code - cal.ACT_SPECIAL
            flags |= a
        m = meter.metrology
        if season is not None and season != self.season_:
            self.season_ = season
            events.log(meter, EV_SEASON, season, USER_NONE, t)
            if m is not None:
                m.season_change(meter, t, season)
        if special is not None and today:
            self.special = special
            events.log(meter, EV_SPECIAL, special, USER_NONE, t)
        if m is not None:
            if flags & cal.ACT_SELF_READ:
                m.self_read(meter, t)
            if flags & cal.ACT_DEMAND_RESET:
                m.demand_reset(meter, t)

    # -- Subsystem -------------------------------------------------------------
    def due(self, meter):
        if self.off:
            return None
        if not self.pending and self._changed(meter):
            self.pending = True
            self.next = meter.t
        if self.pending and self.next is None:
            return meter.t
        return self.next

    def run(self, meter, t):
        if self.pending:
            self._reevaluate(meter, t)
            return
        m = meter.metrology
        if m is not None:
            m.update(meter, t)
        while self.dst_at is not None and self.dst_at <= t:
            on = self.dst_on
            if on != self.dst_:
                self.dst_ = on
                events.log(meter, EV_DST_ON if on else EV_DST_OFF, 0, USER_NONE, t)
            self.dst_at, self.dst_on = self._dst_edge(meter, self.dst_at, True)
        lt = t + self._off()
        day = lt // 86400
        if day != self.day:
            if day < self.day:          # DST took the local clock back over midnight
                self.pending = True
                self._reevaluate(meter, t)
                return
            c = self.cal
            self.start = self.cal_tier
            self.special = NO_SPECIAL
            while self.next_date is not None and self.next_date <= day:
                self._date_actions(meter, t, self.next_date, self.next_date == day)
                self.next_date = c.next_midnight_day(self.next_date + 1)
            self.day = day
            self.sw = c.day_switches(self.season_, self.special, day)
        self.cal_tier = _tier_at(self.sw, lt - day * 86400, self.start)
        self._expire(t)
        if self.drive == DRIVE_OVERRIDE and self.until is None:
            self.until = self._next_switch(t)   # it lay beyond a midnight
        self._settle(meter, t, USER_NONE)
        self.since = t
        self._schedule(t)

    def clock_set(self, meter, old, new):
        # BP10 and EP16 both arrive here: time changed, old then new stamp.
        events.log(meter, EV_TIME_OLD, 0, meter.user, old)
        events.log(meter, EV_TIME_NEW, 0, meter.user, new)
        if self.drive == DRIVE_HOLD_OFF and self.until is not None:
            self.until += new - old     # a hold-off lasts its minutes
        self.pending = True
        self.next = new

    def power(self, meter, t, on):
        # No TOU while the supply is lost; at power-up RAM is gone (manual
        # tier included) and the state is rebuilt from the tables.
        if not on:
            self.off = True
            return
        self.off = False
        self.drive = DRIVE_CALENDAR
        self.until = None
        self.pending = True
        self.next = t

    # -- what the others ask -----------------------------------------------------
    def _cached(self, t):
        return (not self.pending and self.since is not None and self.since <= t
                and (self.next is None or t < self.next))

    def _view(self, meter, t):
        """(dst, local seconds, tier, BT55 word) at t."""
        if self._cached(t):
            return self.dst_, t + self._off(), self.cur, self.word
        if self.cal is None:
            self._load(meter)
        dst, _, _, _, season, special, _, _, tier = self._eval(meter, t)
        if self.drive and (self.until is None or t < self.until):
            tier = self.manual
            drive = self.drive
        else:
            drive = 0
        word = tier | (drive << 6) | (special << 8) | (season << 12)
        return dst, t + self.tz + (self.amt if dst else 0), tier, word

    def tier(self, meter, t):
        """The tier in effect at meter second t (calendar or manual)."""
        return self._view(meter, t)[2]

    def season(self, meter, t):
        return self._view(meter, t)[3] >> 12

    def dst(self, meter, t):
        """Is DST in effect at meter second t?"""
        if self._cached(t):
            return self.dst_
        if self.cal is None:
            self._load(meter)
        return self._dst_edge(meter, t, False)[1]

    def local(self, meter, t):
        """Local TOU time (seconds) at meter second t: UTC + zone + DST."""
        return t + self.tz + (self.amt if self.dst(meter, t) else 0)

    def live(self, meter, tid, t):
        """BT52 / BT55 bytes at meter second t."""
        dst, local, _, word = self._view(meter, t)
        flag = 0x08 if dst else 0
        if tid == BT52:
            return clock.encode_ltime(t) + bytes((cal.weekday(t // 86400) | 0x10 | flag,))
        return (clock.encode_ltime(local) + bytes((cal.weekday(local // 86400) | 0x60 | flag,))
                + bytes((word & 0xFF, word >> 8)))

    def set_tier(self, meter, t, tier, drive, minutes=0, user=USER_NONE):
        """EP05: drive 0 gives the tier back to the calendar; 1 holds `tier`
        for `minutes`; 2 holds it until released; 3 until the next switch."""
        self.run(meter, t)          # today's plan as of t (and metrology up to t)
        self.drive = drive
        self.manual = tier if drive else 0
        if drive == DRIVE_HOLD_OFF:
            self.until = t + minutes * 60
        elif drive == DRIVE_OVERRIDE:
            self.until = self._next_switch(t)
        else:
            self.until = None
        self._settle(meter, t, user)
        self.since = t
        self._schedule(t)

    def check_write(self, meter, tid, data, offset=0, count=None):
        """For Meter.write_table: why BT54/BT53 = `data` (the whole table as
        it would be after the write) must be refused, or None."""
        if tid == BT54:
            return validate_calendar(meter, data, offset, count)
        if tid == BT53:
            return validate_time_offset(meter, data, offset, count)
        return None

    def seasons(self, meter):
        """How many seasons the calendar has (BT50.2 bits 0-3)."""
        if self.cal is None:
            self._load(meter)
        return self.cal.n_seasons

    def set_season(self, meter, t, season):
        """BP09 season change: `season` from t until the calendar's next
        season date (or the next re-evaluation). Always logs event 24 and
        asks metrology for the season snapshot. Returns a procedure result."""
        if season >= self.seasons(meter):
            return procedures.INVALID_PARAMETER
        self.run(meter, t)          # today's plan as of t (and metrology up to t)
        m = meter.metrology
        self.season_ = season
        events.log(meter, EV_SEASON, season, meter.user, t)
        if m is not None:
            m.season_change(meter, t, season)
        lt = t + self._off()
        self.sw = self.cal.day_switches(season, self.special, self.day)
        self.cal_tier = _tier_at(self.sw, lt - self.day * 86400, self.start)
        self._settle(meter, t, meter.user)
        self.since = t
        self._schedule(t)
        return procedures.COMPLETED


def attach(meter, config=None):
    """Give `meter` a TOU subsystem (meter.tou); returns it."""
    obj = Tou(config)
    timeline.install(meter, "tou", obj)
    if meter.t is not None:
        obj.run(meter, meter.t)     # first evaluation: nothing is logged
    return obj


# -- checks the table services call before storing a write ------------------------

def validate_calendar(meter, data, offset=0, count=None):
    """None when BT54 = `data` (the whole table as it would be after the
    write) can run, else the reason. Only entries overlapping the written
    bytes [offset, offset + count) are checked."""
    store = meter.store
    return cal.check(data, dims(store), tiers(store), offset,
                     None if count is None else offset + count)


def validate_time_offset(meter, data, offset=0, count=None):
    """The same for BT53: a TIME of day and a zone of -12 h..+14 h."""
    b = bytes(data) + bytes(6)
    if b[0] > 23 or b[1] > 59 or b[2] > 59:
        return "DST switch time"
    if not -720 <= _signed16(b[4] | (b[5] << 8)) <= 840:
        return "time zone offset"
    return None


# -- procedures -----------------------------------------------------------------------

def set_tariff(meter, params, role, now):
    # EP05: tier UINT8, drive UINT8 (0 calendar, 1 manual with hold-off,
    # 2 manual hold, 3 override), hold-off minutes UINT16 (drive 1).
    if len(params) < 2 or params[1] > DRIVE_OVERRIDE:
        return procedures.INVALID_PARAMETER, b""
    tier_, drive = params[0], params[1]
    minutes = params[2] | (params[3] << 8) if len(params) >= 4 else 0
    if drive and tier_ >= tiers(meter.store):
        return procedures.INVALID_PARAMETER, b""
    if drive == DRIVE_HOLD_OFF and minutes == 0:
        return procedures.INVALID_PARAMETER, b""
    if meter.tou is None:
        return procedures.CONFLICT, b""
    meter.tou.set_tier(meter, meter.utc(now), tier_, drive, minutes, meter.user)
    return procedures.COMPLETED, b""


def change_clock_by_delta(meter, params, role, now):
    # EP16: delta INT32 seconds, LSB first; the clock must stay in 2000-2099.
    if len(params) < 4:
        return procedures.INVALID_PARAMETER, b""
    delta = int.from_bytes(bytes(params[0:4]), "little")
    if delta >= 0x80000000:
        delta -= 0x100000000
    new = meter.utc(now) + delta
    if new < CLOCK_MIN or new > CLOCK_MAX:
        return procedures.INVALID_PARAMETER, b""
    meter.set_utc(new, now)
    return procedures.COMPLETED, b""


procedures.register(EP05, set_tariff)
procedures.register(EP16, change_clock_by_delta)
