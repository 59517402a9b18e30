# The BT54 TOU calendar: its encodings, its checks, and the date arithmetic
# the TOU subsystem (tou.py) runs on. Everything here works on *local* days
# (days since 1970-01-01 in local TOU time); nothing reads a clock.
#
# BT54 = non-recurring dates [BT50.3] x {ANSI_DATE UINT16, action UINT8}
#      | recurring dates [BT50.4] x {RDATE UINT16, action UINT8}
#      | tier switches [BT50.5] x {UINT16: tier b0-2, minute b5-10, hour
#        b11-15; day-schedule number UINT8}
#      | season schedules [BT50.2 b0-3] x {day schedules: Saturday, Sunday,
#        weekday (or Sunday..Saturday with BT50.1 b1); specials [BT50.2 b4-7]}
#      | calendar ID UINT32                          [MEP p.225-229]
# Action byte: b0-4 0 none, 1 DST on, 2 DST off, 3+n select season n,
# 19+n special schedule n; b5 demand reset; b6 self-read; b7 new TOU format.
#
# docs/tou.md lists every rule the reference leaves open and what this
# emulator chose.
from . import clock

ACT_DST_ON = 1
ACT_DST_OFF = 2
ACT_SEASON = 3          # 3 + season number
ACT_SPECIAL = 19        # 19 + special schedule number
ACT_DEMAND_RESET = 0x20
ACT_SELF_READ = 0x40

NO_SPECIAL = 15         # BT55 bits 8-11 when no special schedule is active
NO_SCHEDULE = 0xFF      # a season entry naming no day schedule: the tier carries over
MAX_DAY_SCHEDULES = 16  # emulator profile: day-schedule numbers 0..15

DAY_2000 = 10957        # clock.days_from_civil(2000, 1, 1): the period/delta anchor

# Entry kinds in Calendar.dates
NONREC = 0
REC = 1


def weekday(day):
    """0 = Sunday, as in BT52/BT55."""
    return (day + 4) % 7


# -- encodings ----------------------------------------------------------------

def encode_ansi_date(y, m, d):
    """ANSI_DATE UINT16: year b0-6 (two digits), month b7-10, day b11-15."""
    return (y % 100) | (m << 7) | (d << 11)


def decode_ansi_date(v):
    """-> local day number, or None when not a valid 2000-2099 date."""
    y = v & 0x7F
    m = (v >> 7) & 0x0F
    d = v >> 11
    if y > 99 or m < 1 or m > 12 or d < 1 or d > clock.days_in_month(2000 + y, m):
        return None
    return clock.days_from_civil(2000 + y, m, d)


def encode_rdate(month, day=0, weekday=7, offset=0, period=0, delta=0):
    """RDATE UINT16: month b0-3; 1..13: offset b4-7, weekday b8-10, day
    b11-15; 14: weekday b8-10; 15: period b4-9, delta b10-15."""
    if month == 15:
        return 15 | (period << 4) | (delta << 10)
    return month | (offset << 4) | (weekday << 8) | (day << 11)


def decode_rdate(v):
    """-> (month, offset, weekday, day, period, delta)."""
    m = v & 0x0F
    if m == 15:
        return (15, 0, 7, 0, (v >> 4) & 0x3F, v >> 10)
    if m == 14:
        return (14, 0, (v >> 8) & 7, 0, 0, 0)
    return (m, (v >> 4) & 0x0F, (v >> 8) & 7, v >> 11, 0, 0)


def encode_switch(tier, hour, minute, day_schedule):
    """The 3 bytes of one tier switch."""
    w = tier | (minute << 5) | (hour << 11)
    return bytes((w & 0xFF, w >> 8, day_schedule))


# -- recurring dates: occurrences ---------------------------------------------

def shift(day, offset):
    """The holiday-shift rule of an RDATE (emulator profile, docs/tou.md):
    0 none, 1 Sunday -> Monday, 2 Saturday/Sunday -> Monday, 3 Saturday ->
    Friday and Sunday -> Monday; 4..15 are not documented: no shift."""
    if offset == 0 or offset > 3:
        return day
    wd = weekday(day)
    if wd == 0:
        return day + 1
    if wd == 6:
        if offset == 2:
            return day + 2
        if offset == 3:
            return day - 1
    return day


def _in_month(y, m, v):
    """The day an RDATE (month rule 1..13) falls on in month m of year y."""
    day = v >> 11
    dim = clock.days_in_month(y, m)
    if day > dim:
        day = dim                       # day 31 in a 30-day month: its last day
    z = clock.days_from_civil(y, m, day)
    wd = (v >> 8) & 7
    if wd != 7:
        z += (wd - weekday(z)) % 7      # the first such weekday on or after
    return shift(z, (v >> 4) & 0x0F)


def rdate_next(v, d):
    """The first day >= d on which RDATE v occurs."""
    m = v & 0x0F
    if m == 14:
        return d + (((v >> 8) & 7) - weekday(d)) % 7
    if m == 15:
        p = (v >> 4) & 0x3F
        a = DAY_2000 + (v >> 10)
        return a - ((a - d) // p) * p
    y, mo, _ = clock.civil_from_days(d)
    if m <= 12:
        for yy in (y - 1, y, y + 1, y + 2):
            z = _in_month(yy, m, v)
            if z >= d:
                return z
        return None
    k = y * 12 + mo - 1                 # monthly
    for kk in (k - 1, k, k + 1, k + 2):
        z = _in_month(kk // 12, kk % 12 + 1, v)
        if z >= d:
            return z
    return None


def rdate_prev(v, d):
    """The last day <= d on which RDATE v occurs."""
    m = v & 0x0F
    if m == 14:
        return d - (weekday(d) - ((v >> 8) & 7)) % 7
    if m == 15:
        p = (v >> 4) & 0x3F
        a = DAY_2000 + (v >> 10)
        return a + ((d - a) // p) * p
    y, mo, _ = clock.civil_from_days(d)
    if m <= 12:
        for yy in (y + 1, y, y - 1, y - 2):
            z = _in_month(yy, m, v)
            if z <= d:
                return z
        return None
    k = y * 12 + mo - 1
    for kk in (k + 1, k, k - 1, k - 2, k - 3):
        z = _in_month(kk // 12, kk % 12 + 1, v)
        if z <= d:
            return z
    return None


def occ_next(kind, v, d):
    if kind == NONREC:
        return v if v >= d else None
    return rdate_next(v, d)


def occ_prev(kind, v, d):
    if kind == NONREC:
        return v if v <= d else None
    return rdate_prev(v, d)


# -- checks -------------------------------------------------------------------

def _action_problem(a, dims):
    code = a & 0x1F
    if code <= ACT_DST_OFF:
        return None
    if code < ACT_SPECIAL:
        return None if code - ACT_SEASON < dims.seasons else "season %d" % (code - ACT_SEASON)
    return None if code - ACT_SPECIAL < dims.special else "special schedule %d" % (code - ACT_SPECIAL)


def _date_problem(kind, v, a, dims):
    """Why a date entry cannot work; "" for an unused entry; None when fine."""
    if kind == NONREC:
        if v == 0 or v == 0xFFFF:
            return ""
        if decode_ansi_date(v) is None:
            return "invalid date"
        return _action_problem(a, dims)
    m = v & 0x0F
    if m == 0 or v == 0xFFFF:
        return ""
    if m <= 13:
        if v >> 11 == 0:
            return "day 0"
        if m <= 12 and v >> 11 > clock.days_in_month(2000, m):   # 2000: a leap year
            return "no such day"
    elif m == 14:
        if (v >> 8) & 7 == 7:
            return "weekly without a weekday"
    elif (v >> 4) & 0x3F == 0:
        return "period 0"
    return _action_problem(a, dims)


def _switch_problem(j, w, ds, tiers):
    """The same for a tier switch ("" unused: day schedule 0xFF, 0xFFFF,
    or all zeros anywhere but in the first entry)."""
    if ds == NO_SCHEDULE or w == 0xFFFF or (j > 0 and w == 0 and ds == 0):
        return ""
    if w >> 11 > 23 or (w >> 5) & 0x3F > 59:
        return "invalid time"
    if w & 7 >= tiers:
        return "tier %d" % (w & 7)
    if ds >= MAX_DAY_SCHEDULES:
        return "day schedule %d" % ds
    return None


class Dims:
    """The BT50 dimensions a calendar is laid out by."""
    __slots__ = ("nonrec", "rec", "switches", "seasons", "special", "separate", "day_len", "size")

    def __init__(self, bt50):
        b = bytes(bt50) + bytes(9)
        self.separate = bool(b[1] & 0x02)
        self.seasons = b[2] & 0x0F
        self.special = b[2] >> 4
        self.nonrec = b[3]
        self.rec = b[4]
        self.switches = b[5] | (b[6] << 8)
        self.day_len = (7 if self.separate else 3) + self.special
        self.size = 3 * (self.nonrec + self.rec + self.switches) + self.seasons * self.day_len + 4

    def key(self):
        return (self.nonrec, self.rec, self.switches, self.seasons, self.special, self.separate)


def _pad(data, dims):
    return data if len(data) >= dims.size else bytes(data) + bytes(dims.size - len(data))


def check(data, dims, tiers, lo=0, hi=None):
    """Why the calendar `data` cannot work, or None. Only entries that
    overlap bytes [lo, hi) are checked (a partial write checks what it
    writes). `tiers` is the number of tiers (BT21.7)."""
    if hi is None:
        hi = dims.size
    data = _pad(data, dims)
    n_dates = dims.nonrec + dims.rec
    for i in range(n_dates + dims.switches):
        at = 3 * i
        if at + 3 > lo and at < hi:
            v = data[at] | (data[at + 1] << 8)
            if i < dims.nonrec:
                why = _date_problem(NONREC, v, data[at + 2], dims)
            elif i < n_dates:
                why = _date_problem(REC, v, data[at + 2], dims)
            else:
                why = _switch_problem(i - n_dates, v, data[at + 2], tiers)
            if why:
                return "entry %d: %s" % (i, why)
    at = 3 * (n_dates + dims.switches)
    for k in range(dims.seasons * dims.day_len):
        if lo <= at + k < hi:
            ds = data[at + k]
            if ds != NO_SCHEDULE and ds >= MAX_DAY_SCHEDULES:
                return "season %d: day schedule %d" % (k // dims.day_len, ds)
    return None


# -- the decoded calendar -------------------------------------------------------

class Calendar:
    """A decoded BT54, shared by every meter with the same bytes. Entries
    that do not pass `check` are skipped (a profile image is not checked)."""
    __slots__ = ("dates", "dst", "midnight", "seasons_at", "specials", "switches",
                 "days", "n_seasons", "n_special", "separate", "day_len", "cal_id", "raw", "tag")

    def __init__(self, data, dims, tiers):
        data = _pad(data, dims)
        self.raw = None                 # the BT54 bytes this was built from,
        self.tag = None                 # and (dims, tiers): set by tou.py
        self.n_seasons = dims.seasons
        self.n_special = dims.special
        self.separate = dims.separate
        self.day_len = dims.day_len
        # Precedence on one day: recurring dates first, then non-recurring,
        # each in table order; the later entry wins.
        dates = []
        n_dates = dims.nonrec + dims.rec
        for i in list(range(dims.nonrec, n_dates)) + list(range(dims.nonrec)):
            v = data[3 * i] | (data[3 * i + 1] << 8)
            a = data[3 * i + 2]
            kind = NONREC if i < dims.nonrec else REC
            if a & 0x7F and _date_problem(kind, v, a, dims) is None:
                dates.append((kind, decode_ansi_date(v) if kind == NONREC else v, a))
        self.dates = dates
        self.dst = [e for e in dates if 0 < e[2] & 0x1F <= ACT_DST_OFF]
        self.midnight = [e for e in dates if e[2] & 0x1F >= ACT_SEASON or e[2] & (ACT_DEMAND_RESET | ACT_SELF_READ)]
        self.seasons_at = [e for e in dates if ACT_SEASON <= e[2] & 0x1F < ACT_SPECIAL]
        self.specials = [e for e in dates if e[2] & 0x1F >= ACT_SPECIAL]
        sw = {}
        at = 3 * n_dates
        for j in range(dims.switches):
            w = data[at] | (data[at + 1] << 8)
            ds = data[at + 2]
            at += 3
            if _switch_problem(j, w, ds, tiers) is None:
                # (second of the day << 3) | tier
                e = ((((w >> 11) * 60 + ((w >> 5) & 0x3F)) * 60) << 3) | (w & 7)
                if ds in sw:
                    sw[ds].append(e)
                else:
                    sw[ds] = [e]
        for ds in sw:
            lst = sw[ds]        # by time; at the same second, table order
            order = sorted(range(len(lst)), key=lambda i: (lst[i] >> 3, i))
            sw[ds] = tuple(lst[i] for i in order)
        self.switches = sw
        n = dims.seasons * dims.day_len
        self.days = bytes(data[at:at + n])
        at += n
        self.cal_id = int.from_bytes(data[at:at + 4], "little")

    # -- per local day -----------------------------------------------------
    def season_at(self, d):
        """The season selected by the most recent season date <= d (0 when none)."""
        best = None
        season = 0
        for kind, v, a in self.seasons_at:
            z = occ_prev(kind, v, d)
            if z is not None and (best is None or z >= best):
                best = z
                season = (a & 0x1F) - ACT_SEASON
        return season

    def special_on(self, d):
        """The special schedule a date selects for day d, or NO_SPECIAL."""
        special = NO_SPECIAL
        for kind, v, a in self.specials:
            if occ_prev(kind, v, d) == d:
                special = (a & 0x1F) - ACT_SPECIAL
        return special

    def actions_on(self, d):
        """The action bytes of the dates that fall on day d and act at its
        midnight (season, special schedule, demand reset, self-read)."""
        out = []
        for kind, v, a in self.midnight:
            if occ_prev(kind, v, d) == d:
                out.append(a)
        return out

    def next_midnight_day(self, d):
        """The first day >= d with midnight actions, or None."""
        best = None
        for kind, v, a in self.midnight:
            z = occ_next(kind, v, d)
            if z is not None and (best is None or z < best):
                best = z
        return best

    def day_schedule(self, season, special, wd):
        """The day-schedule number for a day of `season` (NO_SCHEDULE if none)."""
        if season >= self.n_seasons:
            return NO_SCHEDULE
        base = season * self.day_len
        nd = 7 if self.separate else 3
        if special < self.n_special:
            return self.days[base + nd + special]
        if self.separate:
            return self.days[base + wd]
        return self.days[base + (0 if wd == 6 else 1 if wd == 0 else 2)]

    def day_switches(self, season, special, day):
        """Today's tier switches: ((second << 3) | tier, ...) sorted by time."""
        return self.switches.get(self.day_schedule(season, special, weekday(day)), ())


# -- the built-in default ---------------------------------------------------------

def default_calendar(dims):
    """The emulator's calendar for an all-zero BT54 (docs/tou.md): winter
    (season 0) from 1 October, summer (season 1) from 1 April; weekdays day
    schedule 0 = tier 1 from 07:00, tier 0 from 23:00; weekends and holidays
    (25/26 December, 1 January: special schedule 0) day schedule 1 = tier 0
    all day. DST comes from the EU rule (BT50.1 b0), not from dates."""
    out = bytearray(dims.size)
    seasons = min(dims.seasons, 2)
    at = 3 * dims.nonrec
    rec = []
    if seasons == 2:
        rec.append((encode_rdate(4, 1), ACT_SEASON + 1))
        rec.append((encode_rdate(10, 1), ACT_SEASON))
    if dims.special:
        for m, d in ((12, 25), (12, 26), (1, 1)):
            rec.append((encode_rdate(m, d), ACT_SPECIAL))
    for v, a in rec[:dims.rec]:
        out[at:at + 3] = bytes((v & 0xFF, v >> 8, a))
        at += 3
    at = 3 * (dims.nonrec + dims.rec)
    sws = (encode_switch(1, 7, 0, 0), encode_switch(0, 23, 0, 0), encode_switch(0, 0, 0, 1))
    for s in sws[:dims.switches]:
        out[at:at + 3] = s
        at += 3
    at = 3 * (dims.nonrec + dims.rec + dims.switches)
    if dims.separate:
        days = bytes((1, 0, 0, 0, 0, 0, 1))
    else:
        days = bytes((1, 1, 0))
    day = days + bytes((1,)) * dims.special
    for s in range(seasons):
        out[at:at + dims.day_len] = day
        at += dims.day_len
    end = dims.size - 4
    out[end:end + 4] = b"\x01\x00\x00\x00"      # calendar ID 1
    return bytes(out)
