# The load model: what a household draws (and a PV system feeds back) as a
# pure, integer, seeded function of physical time. See docs/metrology.md.
#
# Time is the driver's physical time (ms since 1970 UTC); the meter's clock
# never enters. The model is piecewise constant per physical minute
# (minute m covers [m * 60000, (m + 1) * 60000) ms) and energy is counted over
# whole physical seconds, so `energy(a, c) == energy(a, b) + energy(b, c)`
# exactly for any a <= b <= c. Every quantity is an integer; the shapes are
# per-mille tables; the noise is `prng.mix(seed, minute)`, stateless, so any
# minute is computable without stepping through the ones before it. The only
# state is a per-day cache of the day's factors (a pure function of the day).
from .prng import mix

_M32 = 0xFFFFFFFF

# cos(2 pi k / 64) in per-mille, k = 0..64 (linear interpolation in between).
_COS = (1000, 995, 981, 957, 924, 882, 831, 773, 707, 634, 556, 471, 383, 290, 195, 98,
        0, -98, -195, -290, -383, -471, -556, -634, -707, -773, -831, -882, -924, -957,
        -981, -995, -1000, -995, -981, -957, -924, -882, -831, -773, -707, -634, -556,
        -471, -383, -290, -195, -98, 0, 98, 195, 290, 383, 471, 556, 634, 707, 773, 831,
        882, 924, 957, 981, 995, 1000)


def icos(p):
    """cos(2 pi p / 4096) in per-mille."""
    p &= 4095
    k = p >> 6
    a = _COS[k]
    return a + ((_COS[k + 1] - a) * (p & 63)) // 64


# Daily shapes: per-mille of the day's mean at local hours 0..24 (24 = the
# next midnight), linear in between; each averages 1000 over the day.
WEEKDAY = (578, 489, 445, 422, 422, 478, 778, 1278, 1167, 945, 889, 912, 1000, 945,
           889, 912, 1056, 1501, 1890, 1834, 1667, 1501, 1167, 834, 578)
WEEKEND = (653, 530, 459, 408, 398, 398, 459, 612, 918, 1223, 1325, 1325, 1376, 1274,
           1121, 1071, 1121, 1376, 1631, 1580, 1427, 1325, 1121, 867, 653)
WEEKDAY_FACTOR = 970       # Mon-Fri; 5 * 970 + 2 * 1075 = 7000
WEEKEND_FACTOR = 1075      # Sat, Sun
SEASON_SWING = 200         # per-mille: mid-January +20 %, mid-July -20 %
DAY_SPREAD = 100           # per-mille: each day's own level, +-10 %
# Reactive power as tan(phi) per-mille by local hour (+-128 per-mille noise):
# slightly capacitive at night (switched-mode supplies), inductive by day.
TAN_PHI = (-40, -40, -40, -40, -40, -40, 180, 180, 180, 220, 220, 220, 220, 220, 220,
           220, 220, 280, 280, 280, 280, 280, 280, 100)
BASE_SHARE = 750           # per-mille of the mean load in the smooth part; the
BURST_MEAN_W = 1900        # rest comes as appliance bursts of 800..3000 W
BURST_MIN_W = 800
BURST_SPAN_W = 2201
PV_SWING = 350             # PV peak per-mille: 1000 at midsummer, 300 midwinter
DAYLEN_SWING = 270         # minutes: day length 720 +- 270 (about 52 N)

JAN15 = 10971              # days_from_civil(2000, 1, 15): the coldest day
SUMMER = 1761              # year phase (1/4096) from Jan 15 to Jun 21

# Seeds of what all meters share: the weather (clouds) and the grid
# (frequency, voltage level). Per-meter seeds only shape the household.
WEATHER = 0x57EA7E12
GRID = 0x6A1D5EED

# power() result indices = the NES present-value indices [OSGP 2.3]
FWD_W = 0
REV_W = 1
IMP_VAR = 2
EXP_VAR = 3
I_L1 = 4                   # mA, 4..6
V_L1 = 7                   # mV, 7..9
PF_L1 = 10                 # 1/1000
FREQ = 11                  # mHz
VA = 12
PF_L2 = 13
PF_L3 = 14


def isqrt(n):
    """floor(sqrt(n)) for n >= 0, integers only."""
    if n <= 0:
        return 0
    x = 1
    while x * x <= n:
        x <<= 1
    while True:
        y = (x + n // x) >> 1
        if y >= x:
            return x
        x = y


class LoadModel:
    """One household. `seed` shapes its noise and bursts; `annual_kwh` its
    yearly consumption; `pv_peak_w` its PV system (0: none); `phases` 1 or 3;
    `tz_min` the local standard time (minutes east of UTC) its daily rhythm
    and the sun follow; `rated_v` / `rated_hz` the grid's nominal values."""

    __slots__ = ("seed", "annual_kwh", "pv_peak_w", "phases", "tz", "rated_v", "rated_hz",
                 "weather", "mean_w", "_day", "_shape", "_bk", "_tk", "_pv", "_rise", "_dl",
                 "_block", "_hb", "_vofs")

    def __init__(self, seed=0, annual_kwh=3500, pv_peak_w=0, phases=3, tz_min=60,
                 rated_v=230, rated_hz=50, weather=WEATHER):
        if phases not in (1, 3):
            raise ValueError("phases")
        self.seed = seed & _M32
        self.annual_kwh = annual_kwh
        self.pv_peak_w = pv_peak_w
        self.phases = phases
        self.tz = tz_min
        self.rated_v = rated_v
        self.rated_hz = rated_hz
        self.weather = weather & _M32
        # mean power over a year of 8766 h
        self.mean_w = annual_kwh * 10000 // 87660
        self._day = None
        self._block = None
        self._hb = 0
        # where this meter sits on its feeder: -3 .. +2 V from nominal
        self._vofs = -3000 + mix(self.seed ^ 0xFEED, 0) % 5001

    # -- per-day factors (cached; a pure function of the day) --------------
    def _set_day(self, day):
        self._day = day
        weekend = (day + 4) % 7 in (0, 6)      # day 0 = Thursday 1970-01-01
        self._shape = WEEKEND if weekend else WEEKDAY
        yp = ((day - JAN15) * 40960000 // 3652425) & 4095
        season = 1000 + SEASON_SWING * icos(yp) // 1000
        spread = 1000 - DAY_SPREAD + mix(self.seed ^ 0x0DA7, day) % (2 * DAY_SPREAD + 1)
        dayf = season * (WEEKEND_FACTOR if weekend else WEEKDAY_FACTOR) // 1000 * spread // 1000
        # smooth load (W) at minute = _bk * v * noise // 6e10, v = shape * 60
        self._bk = self.mean_w * BASE_SHARE // 1000 * dayf
        # a burst starts in an 8-minute block when 16 random bits < _tk * v // 6e7
        self._tk = self.mean_w * (1000 - BASE_SHARE) * dayf * 65536 // (1000 * BURST_MEAN_W)
        if self.pv_peak_w:
            sun = icos(yp - SUMMER)
            clouds = 250 + mix(self.weather, day) % 751
            self._pv = self.pv_peak_w * (1000 - PV_SWING + PV_SWING * sun // 1000) // 1000 \
                * clouds // 1000
            self._dl = 720 + DAYLEN_SWING * sun // 1000
            self._rise = 720 + self.tz - 40 - self._dl // 2     # solar noon ~10 E
        else:
            self._pv = 0

    # -- one minute ---------------------------------------------------------
    def _minute(self, m):
        """(load W, PV W, reactive var) in physical minute m."""
        lm = m + self.tz
        day = lm // 1440
        if day != self._day:
            self._set_day(day)
        mod = lm - day * 1440
        hh = mod // 60
        mi = mod - hh * 60
        sh = self._shape
        v = sh[hh] * (60 - mi) + sh[hh + 1] * mi
        h = mix(self.seed, m)
        load = self._bk * v * (850 + (((h & 1023) * 75) >> 8)) // 60000000000
        b = m >> 3
        if b != self._block:
            self._block = b
            self._hb = mix(self.seed ^ 0xB5B5, b)
        hb = self._hb
        if (hb & 0xFFFF) < self._tk * v // 60000000:
            load += BURST_MIN_W + (hb >> 16) % BURST_SPAN_W
        q = load * (TAN_PHI[hh] + ((h >> 10) & 255) - 128) // 1000
        pv = 0
        if self._pv:
            x = mod - self._rise
            if 0 <= x < self._dl:
                s = icos(x * 2048 // self._dl - 1024)
                cc = 600 + mix(self.weather ^ 0xC1, lm // 15) % 401
                pv = self._pv * s * s // 1000000 * cc // 1000
        return load, pv, q

    # -- energy ---------------------------------------------------------------
    def energy(self, ms0, ms1):
        """Energy over [ms0, ms1) of physical time, counted in whole seconds
        (ms // 1000): (import W*s, export W*s, var*s in Q1, Q2, Q3, Q4).
        Import/export follow the net power (load - PV) summed over phases;
        Q1 = import & inductive, Q2 = export & inductive, Q3 = export &
        capacitive, Q4 = import & capacitive."""
        s0 = ms0 // 1000
        s1 = ms1 // 1000
        if s1 <= s0:
            return (0, 0, 0, 0, 0, 0)
        m0 = s0 // 60
        m1 = s1 // 60
        if m0 == m1:
            return self._part(m0, s1 - s0, (0, 0, 0, 0, 0, 0))
        acc = self._part(m0, (m0 + 1) * 60 - s0, (0, 0, 0, 0, 0, 0))
        if m1 > m0 + 1:
            acc = self._whole(m0 + 1, m1, acc)
        if s1 > m1 * 60:
            acc = self._part(m1, s1 - m1 * 60, acc)
        return acc

    def _part(self, m, dt, acc):
        load, pv, q = self._minute(m)
        net = (load - pv) * dt
        q *= dt
        imp, exp, q1, q2, q3, q4 = acc
        if net >= 0:
            imp += net
            if q >= 0:
                q1 += q
            else:
                q4 -= q
        else:
            exp -= net
            if q >= 0:
                q2 += q
            else:
                q3 -= q
        return (imp, exp, q1, q2, q3, q4)

    def _whole(self, m0, m1, acc):
        # _minute() inlined over whole minutes [m0, m1): the hot loop of a
        # simulated year. Must compute exactly what _minute does (tested).
        imp, exp, q1, q2, q3, q4 = acc
        seed = self.seed
        sb = seed ^ 0xB5B5
        wc = self.weather ^ 0xC1
        tz = self.tz
        tan = TAN_PHI
        m = m0
        while m < m1:
            lm = m + tz
            day = lm // 1440
            if day != self._day:
                self._set_day(day)
            end = (day + 1) * 1440 - tz
            if end > m1:
                end = m1
            sh = self._shape
            bk = self._bk
            tk = self._tk
            pvk = self._pv
            rise = self._rise if pvk else 0
            dl = self._dl if pvk else 0
            block = self._block
            hb = self._hb
            cblock = -1
            cc = 0
            mod = lm - day * 1440
            while m < end:
                hh = mod // 60
                mi = mod - hh * 60
                v = sh[hh] * (60 - mi) + sh[hh + 1] * mi
                h = (seed ^ (m * 0x9E3779B1)) & _M32
                h ^= h >> 16
                h = (h * 0x85EBCA6B) & _M32
                h ^= h >> 13
                h = (h * 0xC2B2AE35) & _M32
                h ^= h >> 16
                load = bk * v * (850 + (((h & 1023) * 75) >> 8)) // 60000000000
                b = m >> 3
                if b != block:
                    block = b
                    hb = mix(sb, b)
                if (hb & 0xFFFF) < tk * v // 60000000:
                    load += BURST_MIN_W + (hb >> 16) % BURST_SPAN_W
                q = load * (tan[hh] + ((h >> 10) & 255) - 128) // 1000
                if pvk:
                    x = mod - rise
                    if 0 <= x < dl:
                        s = icos(x * 2048 // dl - 1024)
                        cb = (day * 1440 + mod) // 15
                        if cb != cblock:
                            cblock = cb
                            cc = 600 + mix(wc, cb) % 401
                        load -= pvk * s * s // 1000000 * cc // 1000
                if load >= 0:
                    imp += load * 60
                    if q >= 0:
                        q1 += q * 60
                    else:
                        q4 -= q * 60
                else:
                    exp -= load * 60
                    if q >= 0:
                        q2 += q * 60
                    else:
                        q3 -= q * 60
                m += 1
                mod += 1
            self._block = block
            self._hb = hb
        return (imp, exp, q1, q2, q3, q4)

    # -- instantaneous values -------------------------------------------------
    def power(self, ms):
        """The present values at physical time `ms`, as a tuple indexed like
        the NES BT28 present values 0..14: fwd W, rev W, import var, export
        var, I L1-L3 (mA), V L1-L3 (mV), PF L1 (1/1000), frequency (mHz),
        VA, PF L2, PF L3. Absent phases read 0."""
        m = ms // 60000
        load, pv, q = self._minute(m)
        net = load - pv
        lm = m + self.tz
        # phase shares of the household load, hour by hour
        if self.phases == 3:
            hp = mix(self.seed ^ 0x9A5E, lm // 60)
            a = 200 + (hp & 0x1FF)
            b = 200 + ((hp >> 9) & 0x1FF)
            c = 200 + ((hp >> 18) & 0x1FF)
            s = a + b + c
            l1 = load * a // s
            l2 = load * b // s
            ls = (l1, l2, load - l1 - l2)
            q1 = q * a // s
            q2 = q * b // s
            qs = (q1, q2, q - q1 - q2)
            p1 = pv // 3
            pvs = (p1, p1, pv - 2 * p1)
        else:
            ls = (load, 0, 0)
            qs = (q, 0, 0)
            pvs = (pv, 0, 0)
        # the grid: frequency and voltage level shared by every meter
        f = self.rated_hz * 1000 + (mix(GRID, m // 5) & 127) - 64 + (mix(GRID ^ 1, m) & 31) - 16
        mod = lm % 1440
        hh = mod // 60
        # evening peak pulls the feeder down, midday lifts it
        grid_v = 0
        if 17 <= hh < 22:
            grid_v = -1800
        elif 10 <= hh < 16:
            grid_v = 900
        out = [max(net, 0), max(-net, 0), max(q, 0), max(-q, 0), 0, 0, 0, 0, 0, 0, 0, f,
               isqrt(net * net + q * q), 0, 0]
        pf_at = (PF_L1, PF_L2, PF_L3)
        for i in range(self.phases):
            p = ls[i] - pvs[i]
            qi = qs[i]
            vi = (self.rated_v * 1000 + self._vofs + grid_v + (mix(GRID ^ (2 + i), m) & 1023) - 512
                  - ls[i] * 4 // 10 + pvs[i] * 8 // 10)
            si = isqrt(p * p + qi * qi)
            out[V_L1 + i] = vi
            out[I_L1 + i] = si * 1000000 // vi
            out[pf_at[i]] = abs(p) * 1000 // si if si else 1000
        return tuple(out)
