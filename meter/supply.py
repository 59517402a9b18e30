# The supply side of the meter: power outages, the load-disconnect switch and
# the two control relays (command, maximum power / current, time-based
# calendar). Tamper and power-quality inputs are in supply_inputs.py and
# prepayment in prepay.py, both loaded on first use. See
# docs/events-and-supply.md and docs/time-model.md.
#
# Tables: ET04 (thresholds), ET09 power quality + outage records, ET30 max
# power / current, ET46 switch and relay states, ET61 relay calendar, ET81
# outage log, BT03 alarm bits of the supply.
#
# Physical inputs come from the host: Meter.set_power(on, now) for outages,
# inject(meter, kind, now, **params) for everything else.
#
# Constants are `const()` with a leading underscore: MicroPython inlines them
# and keeps no name for them. Every name a module adds costs heap on the
# unix port (qstr pools grow by doubling), so this module keeps few.
from .timeline import Subsystem, install
from . import clock
from . import events
from . import procedures

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_BT21 = const(21)
_BT23 = const(23)
_BT53 = const(53)
_ET04 = const(2052)
_ET09 = const(2057)
_ET24 = const(2072)
_ET30 = const(2078)
_ET46 = const(2094)
_ET61 = const(2109)
_ET81 = const(2129)

_NOBODY = const(0xFFFF)

# Events (catalogue numbers; EEn = 2048 + n).
_EV_POWER_DOWN = const(1)
_EV_POWER_UP = const(2)
_EV_BY_COMMAND = const(49)
_EV_BY_SCHEDULE = const(50)
_EV_BY_CONDITION = const(51)
_EV_SWITCH = const(2050)
_EV_RELAY1 = const(2051)
_EV_RELAY2 = const(2084)
_EV_LEVEL_CHANGED = const(2087)
_EV_SAG = const(2089)              # and 2090 surge
_EV_LONG_OUTAGE = const(2092)

# ET46 disconnect_state: 0 connected, 1 disconnected, 2 armed for reconnect.
_CONNECTED = const(0)
_DISCONNECTED = const(1)
_ARMED = const(2)

# Why the switch is open (Supply.reason; RAM, rebuilt at attach).
_R_NONE = const(0)
_R_COMMAND = const(1)
_R_MAX_POWER = const(2)
_R_PREPAY = const(3)            # prepay.py uses the same value


class Supply(Subsystem):
    __slots__ = ("config", "poll", "load_w", "load_ma", "ws", "ws_t", "cursor",
                 "down_at", "poll_at", "reason", "over_since", "reconnect_at",
                 "override", "cal", "cal_state", "pq", "inputs", "wh_last", "carry", "latched")

    def __init__(self, meter, config):
        config = config or {}
        t = meter.t if meter.t is not None else 0
        self.config = config            # price (prepay.py), thd_threshold (supply_inputs.py)
        self.poll = max(1, config.get("poll", 60))   # s: metrology / prepay sampling
        self.load_w = config.get("load_w", 0)        # injected load, W
        self.load_ma = 0                # injected current, mA (highest phase)
        self.ws = 0                     # injected-load energy, W*s
        self.ws_t = t
        self.cursor = t                 # everything up to here is done
        self.down_at = None if meter.powered else t
        self.latched = False            # BT03 bit 11 was set before this outage
        self.poll_at = t + self.poll
        self.over_since = None          # load above the ET30 limit since
        self.reconnect_at = None        # automatic reconnect after a max-power trip
        self.override = [None, None]    # EP40 until (meter s); -1 = until the next switch
        self.cal = [None, (), None, None]   # ET61 cache: bytes, entries, cursor, next due
        self.cal_state = [None, None]   # the calendar's last state per relay
        self.pq = [None, None]          # sag, surge: [since, phase mask, logged]
        self.inputs = None              # supply_inputs.py state, on first use
        self.wh_last = None             # prepay: energy charged up to (Wh)
        self.carry = 0                  # prepay: fraction of a credit unit
        self.reason = _R_NONE
        if meter.store.field(_ET46, 0, 1) != _CONNECTED:
            self.reason = _R_PREPAY if meter.store.field(_ET24, 1, 1) & 0x08 else _R_COMMAND

    def connected(self, meter):
        """Is the load connected: powered and the switch closed (ET46 0)?"""
        return meter.powered and meter.store.field(_ET46, 0, 1) == _CONNECTED

    # -- timeline -------------------------------------------------------------
    def due(self, meter):
        if not meter.powered:
            return None
        store = meter.store
        best = self._cal_due(meter)
        cands = [self.reconnect_at, self.override[0], self.override[1]]
        if self.over_since is not None:
            cands.append(self.over_since + store.field(_ET30, 18, 2))
        delay = store.field(_ET09, 2, 1) * 60
        for pq in self.pq:
            if pq is not None and not pq[2]:
                cands.append(pq[0] + delay)
        if store.field(_ET24, 0, 1) and (meter.metrology is not None or self.load_w) \
                or meter.metrology is not None and store.field(_ET30, 17, 1):
            cands.append(self.poll_at)
        for d in cands:
            if d is not None and d >= 0 and (best is None or d < best):
                best = d
        # Everything up to the later of the cursor and meter.t is done.
        floor = self.cursor
        if meter.t is not None and meter.t > floor:
            floor = meter.t
        if best is not None and best <= floor:
            best = floor + 1
        return best

    def run(self, meter, t):
        self.settle(meter, t)
        self._calendar(meter, t)
        self._timers(meter, t)
        if t >= self.poll_at:
            self.poll_at = t + self.poll
            if meter.metrology is not None:
                self._max_power(meter, t)
            if meter.store.field(_ET24, 0, 1):
                from . import prepay
                prepay.charge(meter, self, t)
        self.cursor = t

    def clock_set(self, meter, old, new):
        # Timers are physical durations: they move with the clock.
        d = new - old
        self.ws_t += d
        self.poll_at += d
        if self.down_at is not None:
            self.down_at += d
        if self.over_since is not None:
            self.over_since += d
        if self.reconnect_at is not None:
            self.reconnect_at += d
        for r in (0, 1):
            if self.override[r] is not None and self.override[r] >= 0:
                self.override[r] += d
        for pq in self.pq:
            if pq is not None:
                pq[0] += d
        if d > 0 and meter.powered:
            self._catch_up(meter, old, new, new)
        self.cursor = new

    def power(self, meter, t, on):
        store = meter.store
        if not on:
            # Meter.set_power has cleared meter.powered already, but what
            # flowed up to t flowed with the power on (docs/time-model.md):
            # settle (metrology and the injected load) in that state.
            meter.powered = True
            try:
                self.settle(meter, t)
            finally:
                meter.powered = False
            self.down_at = t
            self.over_since = None
            self.pq = [None, None]
            # std bit 11 power failure; a short outage takes back only its own
            self.latched = not events.alarm(meter, 2, 3, True)
            return
        start = self.down_at if self.down_at is not None else t
        self.down_at = None
        dur = t - start
        if dur >= store.field(_ET04, 98, 2):
            # A logged outage: events 1 (at the outage start) and 2, ET09 and
            # ET81 records, metrology's outage registers; BT03 bit 11 stays
            # set until cleared (BP07 / EP20).
            events.log(meter, _EV_POWER_DOWN, 0, _NOBODY, start)
            events.log(meter, _EV_POWER_UP, 0, _NOBODY, t)
            long_s = store.field(_ET09, 0, 2)
            if long_s and dur >= long_s:
                events.log(meter, _EV_LONG_OUTAGE, min(dur // 60, 0xFFFF), _NOBODY, t)
            self._outage_records(meter, start, t)
            m = meter.metrology
            if m is not None and hasattr(m, "add_outage"):
                m.add_outage(meter, dur)
        elif not self.latched:
            events.alarm(meter, 2, 3, False)    # not a logged outage's (latched) alarm
        self.latched = False
        self.ws_t = t
        self.poll_at = t + self.poll
        if self.reason == _R_MAX_POWER and store.field(_ET30, 20, 1) == 1:
            self.reconnect_at = t + max(1, store.field(_ET30, 18, 2))
        self._catch_up(meter, start, t, t)
        self.cursor = t
        self._timers(meter, t)

    # -- energy and load --------------------------------------------------------
    def settle(self, meter, t):
        """Energy up to t before the connection changes: metrology
        integrates, the injected load accumulates W*s."""
        m = meter.metrology
        if m is not None and hasattr(m, "update"):
            m.update(meter, t)
        if t > self.ws_t:
            if self.connected(meter):
                self.ws += self.load_w * (t - self.ws_t)
            self.ws_t = t

    def forward_wh(self, meter, t):
        """Forward active energy (Wh): BT23 summation 0 when metrology runs,
        else the injected load's integral."""
        self.settle(meter, t)
        store = meter.store
        if meter.metrology is not None and store.size(_BT23) is not None:
            return store.field(_BT23, 1 if store.field(_BT21, 0, 1) & 0x04 else 0, 4)
        return self.ws // 3600

    def present(self, meter, t):
        """(W, mA) the load draws now: metrology's present_power /
        present_current when it offers them, else the injected values."""
        if not self.connected(meter):
            return 0, 0
        m = meter.metrology
        w = self.load_w
        ma = self.load_ma
        if m is not None:
            if hasattr(m, "present_power"):
                w = m.present_power(meter, t)
            if hasattr(m, "present_current"):
                ma = m.present_current(meter, t)
        return w, ma

    # -- timers -------------------------------------------------------------------
    def _timers(self, meter, t):
        """Whatever is due at or before t (also right after a change made
        outside run: a procedure, an input, power up)."""
        for r in (0, 1):
            u = self.override[r]
            if u is not None and 0 <= u <= t:
                self.override[r] = None
                if self.cal_state[r] is not None:
                    self.relay(meter, t, r, self.cal_state[r], _EV_BY_SCHEDULE, _NOBODY)
        if self.reconnect_at is not None and self.reconnect_at <= t:
            self.reconnect_at = None
            if self.reason == _R_MAX_POWER:
                self.switch(meter, t, _CONNECTED, _EV_BY_CONDITION, _NOBODY, _R_NONE)
        if self.over_since is not None or meter.metrology is None:
            self._max_power(meter, t)       # the injected load is known at once
        delay = meter.store.field(_ET09, 2, 1) * 60
        for i in (0, 1):
            pq = self.pq[i]
            if pq is not None and not pq[2] and pq[0] + delay <= t:
                pq[2] = True
                events.log(meter, _EV_SAG + i, pq[1], _NOBODY, t)
                events.alarm(meter, 7, 3, True)        # 7.3 power-quality event

    # -- maximum power / current (ET30) ---------------------------------------------
    def _max_power(self, meter, t):
        store = meter.store
        mode = store.field(_ET30, 17, 1)
        if (mode != 1 and mode != 2) or not self.connected(meter):
            self.over_since = None
            return
        level = store.field(_ET30, 16, 1)
        if level > 1:
            level = 0
        limit = store.field(_ET30, level * 8 + (mode - 1) * 4, 4)
        value = self.present(meter, t)[mode - 1]
        if limit == 0 or value <= limit:
            self.over_since = None
            return
        if self.over_since is None:
            self.over_since = t
        delay = store.field(_ET30, 18, 2)
        if t - self.over_since >= delay:
            self.switch(meter, t, _DISCONNECTED, _EV_BY_CONDITION, _NOBODY, _R_MAX_POWER)
            if store.field(_ET30, 20, 1) == 1:
                self.reconnect_at = t + max(1, delay)

    # -- the load-disconnect switch and the relays (ET46) ------------------------------
    def switch(self, meter, t, state, cause, user, reason):
        """Move the load-disconnect switch to `state` (ET46 0/1/2); logs
        `cause` (49/50/51/52, arg = 0 | state << 8) and EE2 (arg = state),
        raises BT03 4.2. False when it already was in that state."""
        store = meter.store
        if store.size(_ET46) is None or store.field(_ET46, 0, 1) == state:
            return False
        self.settle(meter, t)
        store.write(_ET46, 0, bytes((state,)) + clock.encode_ltime(t))
        self.reason = reason if state != _CONNECTED else _R_NONE
        self.reconnect_at = None
        self.over_since = None
        events.alarm(meter, 4, 2, True)                # 4.2 load disconnect changed
        events.log(meter, cause, state << 8, user, t)
        events.log(meter, _EV_SWITCH, state, user, t)
        return True

    def relay(self, meter, t, r, state, cause, user):
        """Control relay r (0/1) to state (0 open, 1 closed): ET46, BT03
        4.3 / 9.0 (relay open), `cause` (arg = r + 1 | state << 8) and
        EE3 / EE36."""
        store = meter.store
        at = 7 + 9 * r
        if store.size(_ET46) is None or store.field(_ET46, at, 1) == state:
            return False
        count = (store.field(_ET46, at + 7, 2) + 1) & 0xFFFF
        store.write(_ET46, at, bytes((state,)) + clock.encode_ltime(t) + count.to_bytes(2, "little"))
        if r == 0:
            events.alarm(meter, 4, 3, state == 0)
        else:
            events.alarm(meter, 9, 0, state == 0)
        events.log(meter, cause, (r + 1) | (state << 8), user, t)
        events.log(meter, _EV_RELAY2 if r else _EV_RELAY1, state, user, t)
        return True

    # -- the relay calendar (ET61) -----------------------------------------------------
    def local(self, meter, t):
        """Local time for the calendar: meter.tou.local when TOU runs, else
        UTC + the BT53 time-zone offset (no DST)."""
        tou = meter.tou
        if tou is not None and hasattr(tou, "local"):
            return tou.local(meter, t)
        tz = meter.store.field(_BT53, 4, 2)
        return t + (tz - 0x10000 if tz >= 0x8000 else tz) * 60

    def _entries(self, meter):
        """Valid ET61 entries as (day mask, second of day, relay, action);
        parsed again only when the table's bytes change."""
        store = meter.store
        if store.size(_ET61) is None:
            return ()
        raw = store.content(_ET61)
        cal = self.cal
        if cal[0] is not None and raw == cal[0]:
            return cal[1]
        out = []
        for i in range(store.size(_ET61) // 5):
            e = store.read(_ET61, i * 5, 5)
            if e[0] & 0x7F and e[1] < 24 and e[2] < 60 and e[3] < 2 and e[4] < 2:
                out.append((e[0] & 0x7F, e[1] * 3600 + e[2] * 60, e[3], e[4]))
        self.cal = [bytes(raw), tuple(out), None, None]
        return self.cal[1]

    def _cal_due(self, meter):
        entries = self._entries(meter)
        cal = self.cal
        if not entries:
            return None
        if cal[3] is not None and cal[2] == self.cursor:
            return cal[3]
        local = self.local(meter, self.cursor)
        best = None
        for mask, sec, r, action in entries:
            s = _point(mask, sec, local, 1)
            if s is not None and (best is None or s < best):
                best = s
        cal[2] = self.cursor
        cal[3] = None if best is None else self.cursor + (best - local)
        return cal[3]

    def _calendar(self, meter, t):
        entries = self._entries(meter)
        if not entries:
            return
        local = self.local(meter, t)
        sec = local % 86400
        dow = (local // 86400 + 4) % 7          # 1970-01-01 was a Thursday
        for mask, at, r, action in entries:
            if at == sec and mask >> dow & 1:
                self._scheduled(meter, t, r, action)

    def _scheduled(self, meter, t, r, action):
        self.cal_state[r] = action
        u = self.override[r]
        if u is not None:
            if u >= 0:
                return                    # a timed EP40 override holds the relay
            self.override[r] = None       # "until the next switch" ends here
        self.relay(meter, t, r, action, _EV_BY_SCHEDULE, _NOBODY)

    def _catch_up(self, meter, old, new, t):
        """Apply, at t, the last calendar switch per relay that fell in
        (old, new] while the meter was off or its clock jumped."""
        entries = self._entries(meter)
        if not entries or new <= old:
            return
        lo = self.local(meter, old)
        hi = self.local(meter, new)
        for r in (0, 1):
            best = None
            for mask, sec, rr, action in entries:
                if rr == r:
                    s = _point(mask, sec, hi, -1)
                    if s is not None and s > lo and (best is None or s >= best[0]):
                        best = (s, action)
            if best is not None:
                self._scheduled(meter, t, r, best[1])

    # -- outage records -------------------------------------------------------------
    def _outage_records(self, meter, start, end):
        store = meter.store
        n = store.field(_ET04, 53, 1)
        if not n:
            return
        if store.size(_ET09) is not None:
            # newest first; 18 bytes: power on, power off, seconds, phases, 0
            rec = (clock.encode_ltime(end) + clock.encode_ltime(start)
                   + min(end - start, 0xFFFFFFFF).to_bytes(4, "little")
                   + bytes((0x07 & ~store.field(_ET04, 62, 1), 0)))
            store.write(_ET09, 6, rec + store.read(_ET09, 6, (n - 1) * 18))
        if store.size(_ET81) is not None:
            flags = store.field(_ET81, 0, 1)
            valid = store.field(_ET81, 1, 1)
            index = 0 if valid == 0 else (store.field(_ET81, 2, 1) + 1) % n
            if valid >= n:
                flags |= 0x02
            store.write(_ET81, 3 + 12 * index, clock.encode_ltime(start) + clock.encode_ltime(end))
            store.write(_ET81, 0, bytes((flags | 0x04, min(valid + 1, n), index)))

    # -- injected inputs ----------------------------------------------------------------
    def inject(self, meter, kind, now, params):
        meter.advance(now)
        t = meter.t
        self.settle(meter, t)
        if kind == "load" and "milliamps" not in params:
            self.load_w = params.get("watts", self.load_w)
        elif kind == "button":
            # The customer's reconnect button: an armed switch closes.
            if meter.store.field(_ET46, 0, 1) == _ARMED:
                self.switch(meter, t, _CONNECTED, _EV_BY_COMMAND, _NOBODY, _R_NONE)
        else:
            from . import supply_inputs     # tamper and power quality, on first use
            if supply_inputs.inject(self, meter, kind, t, now, params):
                return                      # the supply went off or on
        if meter.powered:
            self.cursor = t
            self._timers(meter, t)


def _point(mask, sec, local, step):
    """The first calendar point of (day mask, second of day) after `local`
    (step 1) or at / before it (step -1), in local seconds; None if none."""
    day = local // 86400
    for k in range(8):
        d = day + k * step
        if mask >> ((d + 4) % 7) & 1:
            s = d * 86400 + sec
            if (s > local) if step > 0 else (s <= local):
                return s
    return None


# -- module API -----------------------------------------------------------------

def attach(meter, config=None):
    """Build the supply of `meter` from its tables (and config: poll, price,
    thd_threshold, load_w) and install it as meter.supply."""
    s = Supply(meter, config)
    install(meter, "supply", s)
    return s


def connected(meter):
    """Is the load connected? (Without a supply subsystem: while powered.)"""
    s = meter.supply
    if s is None:
        return meter.powered
    return s.connected(meter)


def inject(meter, kind, now, **params):
    """A physical input at driver time `now` (ms); kinds in
    supply_inputs.KINDS:
      load           watts=W [milliamps=mA or (L1, L2, L3)]
      voltage        volts=V or (L1, L2, L3): phase loss, sag, surge, outage
      thd            value=THD in 0.1 %
      battery, cover, terminal_cover, magnetic, neutral   on=True/False
      button         the customer's reconnect button (an armed switch closes)
    """
    s = meter.supply
    if s is None:
        raise ValueError("meter has no supply subsystem")
    s.inject(meter, kind, now, params)
    meter.changed()                      # schedules may have moved


def _ready(meter, now, table):
    """(supply, t) for a procedure, or (None, None) without a supply or
    without `table`."""
    s = meter.supply
    if s is None or meter.store.size(table) is None:
        return None, None
    t = meter.utc(now)
    if meter.powered:
        s.settle(meter, t)
        if t > s.cursor:
            s.cursor = t
    return s, t


# -- procedures (result 2 invalid parameter, 3 conflict: state untouched) -----------

def remote_disconnect(meter, params, role, now):
    # EP01: action UINT8, 0 disconnect, 1 reconnect, 2 arm for customer
    # reconnect. Reconnecting or arming while prepay credit is exhausted
    # conflicts; so does arming a closed switch.
    if len(params) < 1 or params[0] > 2:
        return 2, b""
    s, t = _ready(meter, now, _ET46)
    if s is None:
        return 3, b""
    store = meter.store
    action = params[0]
    state = store.field(_ET46, 0, 1)
    exhausted = store.field(_ET24, 0, 1) and store.field(_ET24, 1, 1) & 0x08
    if action == 0:
        if not s.switch(meter, t, _DISCONNECTED, _EV_BY_COMMAND, None, _R_COMMAND):
            s.reason = _R_COMMAND        # the operator now holds it open
            s.reconnect_at = None
    elif action == 1:
        if exhausted and state != _CONNECTED:
            return 3, b""
        s.switch(meter, t, _CONNECTED, _EV_BY_COMMAND, None, _R_NONE)
    else:
        if state == _CONNECTED or exhausted:
            return 3, b""
        s.switch(meter, t, _ARMED, _EV_BY_COMMAND, None, _R_COMMAND)
    return 0, b""


def relay_command(meter, params, role, now):
    # EP02: relay UINT8 (0/1), action UINT8 (0 open, 1 close). Ends an EP40
    # override of that relay.
    if len(params) < 2 or params[0] > 1 or params[1] > 1:
        return 2, b""
    s, t = _ready(meter, now, _ET46)
    if s is None:
        return 3, b""
    s.override[params[0]] = None
    s.relay(meter, t, params[0], params[1], _EV_BY_COMMAND, None)
    return 0, b""


def switch_level(meter, params, role, now):
    # EP04: level UINT8, 0 or 1 (the two ET30 levels). Logs EE39.
    if len(params) < 1 or params[0] > 1:
        return 2, b""
    s, t = _ready(meter, now, _ET30)
    if s is None:
        return 3, b""
    store = meter.store
    if store.field(_ET30, 16, 1) != params[0]:
        store.set_field(_ET30, 16, 1, params[0])
        events.log(meter, _EV_LEVEL_CHANGED, params[0], None, t)
        s.over_since = None
        if meter.powered:
            s._timers(meter, t)
    return 0, b""


def relay_override(meter, params, role, now):
    # EP40: relay UINT8 (0/1), state UINT8 (0 open, 1 closed), duration
    # UINT16 minutes (0 = until the relay's next calendar switch).
    if len(params) < 4 or params[0] > 1 or params[1] > 1:
        return 2, b""
    s, t = _ready(meter, now, _ET46)
    if s is None:
        return 3, b""
    r = params[0]
    minutes = params[2] | params[3] << 8
    s.override[r] = t + minutes * 60 if minutes else -1
    s.relay(meter, t, r, params[1], _EV_BY_COMMAND, None)
    return 0, b""


procedures.register(2049, remote_disconnect)       # EP01
procedures.register(2050, relay_command)           # EP02
procedures.register(2052, switch_level)            # EP04
procedures.register(2088, relay_override)          # EP40


def _clear_et09(meter, params, role, now):
    size = meter.store.size(_ET09)
    if size is None:
        return 3, b""
    meter.store.write(_ET09, 6, bytes(size - 6))
    return 0, b""


def _clear_et81(meter, params, role, now):
    size = meter.store.size(_ET81)
    if size is None:
        return 3, b""
    meter.store.write(_ET81, 0, b"\x04" + bytes(size - 1))
    return 0, b""


procedures.register(2078, _clear_et09)             # EP30 clear power-quality records
procedures.register(2079, _clear_et81)             # EP31 clear the power-outage log


# Prepayment lives in prepay.py, loaded on first use; these stand in for its
# procedures until then (importing it registers the real ones).
def _prepay(name):
    def proc(meter, params, role, now):
        from . import prepay
        return getattr(prepay, name)(meter, params, role, now)
    return proc


procedures.register(2061, _prepay("add_credit"))            # EP13
procedures.register(2076, _prepay("set_mode"))              # EP28
procedures.register(2077, _prepay("acknowledge_warning"))   # EP29
