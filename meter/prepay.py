# Prepayment credit (ET24): credit falls with the forward energy the load
# draws; a warning below the threshold, exhaustion at zero (less the
# emergency credit) opens the load-disconnect switch; credit added through
# EP13 closes it again when prepayment was the reason. See
# docs/events-and-supply.md.
#
# ET24 (28 bytes, read-only: changed only through EP13/EP28, so that a table
# write cannot mint credit): 0 mode (0 off, 1 Wh, 2 currency units) | 1
# status (b0 enabled, b1 warning, b2 warning acknowledged, b3 exhausted, b4
# emergency credit active) | 2 credit INT32 | 6 warning threshold UINT32 |
# 10 emergency credit UINT32 | 14 last credit time LTIME_DATE | 20 last
# token ID UINT32 | 24 total credit added UINT32.
#
# Units: mode 1 counts Wh (1 unit = 1 Wh). Mode 2 counts currency units
# (e.g. cents) at the supply's `price` units per kWh (config, default 25),
# with the fraction carried over so no energy is lost to rounding.
#
# Imported by supply.py (it registers EP13, EP28, EP29); it reaches the
# switch through meter.supply, so it never imports supply.py back.
from . import clock
from . import events
from . import procedures

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_ET24 = const(2072)
_ET46 = const(2094)
_NOBODY = const(0xFFFF)

_EV_CREDIT_ADDED = const(53)
_EV_BY_PREPAYMENT = const(52)
_EV_EXHAUSTED = const(2068)
_EV_WARNING_ACK = const(2069)
_EV_CREDIT_LOW = const(2070)

# ET24 status bits
_S_ENABLED = const(0x01)
_S_WARNING = const(0x02)
_S_ACK = const(0x04)
_S_EXHAUSTED = const(0x08)
_S_EMERGENCY = const(0x10)

_R_NONE = const(0)            # supply.R_NONE / R_PREPAY
_R_PREPAY = const(3)
_INT32_MAX = const(0x7FFFFFFF)


def _i32(v):
    return v - 0x100000000 if v >= 0x80000000 else v


def credit(meter):
    """The balance (signed)."""
    return _i32(meter.store.field(_ET24, 2, 4))


def _set_credit(store, value):
    if value < -0x80000000:
        value = -0x80000000
    store.set_field(_ET24, 2, 4, value & 0xFFFFFFFF)


def charge(meter, s, t, user=_NOBODY):
    """Debit the energy drawn since the last charge, then evaluate."""
    store = meter.store
    mode = store.field(_ET24, 0, 1)
    if mode == 0 or store.size(_ET24) is None:
        s.wh_last = None
        return
    wh = s.forward_wh(meter, t)
    if s.wh_last is None or wh < s.wh_last:
        s.wh_last = wh          # first charge, or the registers were cleared
        s.carry = 0
    else:
        d = wh - s.wh_last
        s.wh_last = wh
        if d:
            if mode == 1:
                units = d
            else:
                x = d * s.config.get("price", 25) + s.carry
                units = x // 1000
                s.carry = x % 1000
            if units:
                _set_credit(store, credit(meter) - units)
    evaluate(meter, s, t, user)


def evaluate(meter, s, t, user=_NOBODY):
    """Status bits, BT03 6.4 / 6.5, events and the switch from the balance."""
    store = meter.store
    if store.size(_ET24) is None:
        return
    mode = store.field(_ET24, 0, 1)
    old = store.field(_ET24, 1, 1)
    state = store.field(_ET46, 0, 1)
    if mode == 0:
        new = 0
        events.alarm(meter, 6, 4, False)
        events.alarm(meter, 6, 5, False)
        if s.reason == _R_PREPAY and state != 0:
            s.switch(meter, t, 0, _EV_BY_PREPAYMENT, user, _R_NONE)
        if new != old:
            store.set_field(_ET24, 1, 1, new)
        return
    bal = credit(meter)
    warn = store.field(_ET24, 6, 4)
    emerg = store.field(_ET24, 10, 4)
    exhausted = bal + emerg <= 0
    new = _S_ENABLED
    if exhausted:
        new |= _S_EXHAUSTED
    elif bal <= 0 and emerg:
        new |= _S_EMERGENCY
    if warn and bal <= warn:
        new |= _S_WARNING | (old & _S_ACK if old & _S_WARNING else 0)
    if new != old:
        store.set_field(_ET24, 1, 1, new)
    if new & _S_WARNING and not old & _S_WARNING:
        events.alarm(meter, 6, 5, True)
        events.log(meter, _EV_CREDIT_LOW, bal & 0xFFFF, user, t)
    elif old & _S_WARNING and not new & _S_WARNING:
        events.alarm(meter, 6, 5, False)
    if exhausted and not old & _S_EXHAUSTED:
        events.alarm(meter, 6, 4, True)
        events.log(meter, _EV_EXHAUSTED, 0, user, t)
        if state == 0:
            s.switch(meter, t, 1, _EV_BY_PREPAYMENT, user, _R_PREPAY)
    elif not exhausted and old & _S_EXHAUSTED:
        events.alarm(meter, 6, 4, False)
    if not exhausted and s.reason == _R_PREPAY and state != 0:
        s.switch(meter, t, 0, _EV_BY_PREPAYMENT, user, _R_NONE)


def _ready(meter, now):
    s = meter.supply
    if s is None or meter.store.size(_ET24) is None:
        return None, None
    t = meter.utc(now)
    if meter.powered and t > s.cursor:
        s.cursor = t
    return s, t


def add_credit(meter, params, role, now):
    # EP13: token_id UINT32, credit INT32 (> 0). Response: balance INT32.
    # A token ID equal to ET24.last_token_id is a replay: result 3.
    if len(params) < 8:
        return 2, b""
    token = int.from_bytes(params[0:4], "little")
    add = _i32(int.from_bytes(params[4:8], "little"))
    if add <= 0:
        return 2, b""
    s, t = _ready(meter, now)
    if s is None:
        return 3, b""
    store = meter.store
    if token == store.field(_ET24, 20, 4):
        return 3, b""
    if credit(meter) + add > _INT32_MAX:
        return 2, b""
    if meter.powered:
        charge(meter, s, t)          # the balance up to this second first
    bal = credit(meter) + add
    _set_credit(store, bal)
    total = (store.field(_ET24, 24, 4) + add) & 0xFFFFFFFF
    store.write(_ET24, 14, clock.encode_ltime(t) + token.to_bytes(4, "little") + total.to_bytes(4, "little"))
    events.log(meter, _EV_CREDIT_ADDED, add & 0xFFFF, None, t)
    evaluate(meter, s, t, None)
    return 0, (bal & 0xFFFFFFFF).to_bytes(4, "little")


def set_mode(meter, params, role, now):
    # EP28: mode UINT8 (0 off, 1 Wh, 2 currency), warning threshold UINT32,
    # emergency credit UINT32 (both <= 2**31 - 1). Switching between Wh and
    # currency with a non-zero balance conflicts (the units would change).
    if len(params) < 9 or params[0] > 2:
        return 2, b""
    warn = int.from_bytes(params[1:5], "little")
    emerg = int.from_bytes(params[5:9], "little")
    if warn > _INT32_MAX or emerg > _INT32_MAX:
        return 2, b""
    s, t = _ready(meter, now)
    if s is None:
        return 3, b""
    store = meter.store
    mode = params[0]
    old = store.field(_ET24, 0, 1)
    if old and mode and old != mode and credit(meter) != 0:
        return 3, b""
    if old and meter.powered:
        charge(meter, s, t)
    store.write(_ET24, 0, bytes((mode,)))
    store.write(_ET24, 6, params[1:9])
    if mode and not old:
        s.wh_last = s.forward_wh(meter, t)
        s.carry = 0
        s.poll_at = t + s.poll
    evaluate(meter, s, t, None)
    return 0, b""


def acknowledge_warning(meter, params, role, now):
    # EP29: no parameters. Only a pending, unacknowledged warning can be
    # acknowledged (else 3). Clears BT03 6.5, logs EE21.
    s, t = _ready(meter, now)
    if s is None:
        return 3, b""
    store = meter.store
    status = store.field(_ET24, 1, 1)
    if not status & _S_WARNING or status & _S_ACK:
        return 3, b""
    store.set_field(_ET24, 1, 1, status | _S_ACK)
    events.alarm(meter, 6, 5, False)
    events.log(meter, _EV_WARNING_ACK, 0, None, t)
    return 0, b""


procedures.register(2048 + 13, add_credit)
procedures.register(2048 + 28, set_mode)
procedures.register(2048 + 29, acknowledge_warning)
