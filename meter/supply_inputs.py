# Injected tamper and power-quality inputs of the supply (supply.inject),
# loaded on first use. Their state is RAM (Supply.inputs, a dict made here):
# conditions a real meter senses, not data it keeps. Sag / surge timing
# stays in the Supply (Supply.pq, its due()). See docs/events-and-supply.md.
from . import events

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_ET04 = const(2052)
_ET09 = const(2057)
_NOBODY = const(0xFFFF)

_EV_PHASE_LOSS = const(2052)
_EV_THD = const(2075)
_EV_THD_MAX = const(2076)
_EV_OVER_CURRENT = const(2091)

# Emulator defaults where a table holds 0 (see the doc).
_DEFAULT_RATED_V = const(230)
_DEFAULT_PHASE_LOSS_PCT = const(50)

# On/off inputs: kind -> (event at onset, BT03 byte, bit, the bit follows
# the condition (True) or stays set until cleared (False)).
_FLAGS = {
    "battery": (44, 2, 0, True),              # std bit 8 low battery
    "cover": (47, 2, 4, False),               # std bit 12 cover removed
    "terminal_cover": (2085, 2, 4, False),    # EE37, std bit 12
    "magnetic": (2072, 7, 1, False),          # EE24, mfg 7.1
    "neutral": (2086, 3, 3, True),            # EE38, 3.3 neutral current deviation
}


KINDS = ("load", "voltage", "thd", "button") + tuple(_FLAGS)


def _state(s):
    st = s.inputs
    if st is None:
        st = s.inputs = {"flags": {}, "volts": None, "lost": 0, "v_out": False,
                         "over": 0, "thd": False, "thd_max": 0}
    return st


def inject(s, meter, kind, t, now, params):
    """One input for Supply `s` at meter second t. True when the supply was
    switched off or on (Meter.set_power then did everything)."""
    st = _state(s)
    flag = _FLAGS.get(kind)
    if flag is not None:
        on = bool(params.get("on", True))
        flags = st["flags"]
        if on and kind not in flags:
            events.log(meter, flag[0], 0, _NOBODY, t)
            events.alarm(meter, flag[1], flag[2], True)
        elif not on and flag[3]:
            events.alarm(meter, flag[1], flag[2], False)
        if on:
            flags[kind] = True
        else:
            flags.pop(kind, None)
    elif kind == "load":
        s.load_w = params.get("watts", s.load_w)
        ma = params["milliamps"]
        current(s, st, meter, t, ma if isinstance(ma, (tuple, list)) else (ma,))
    elif kind == "voltage":
        v = params["volts"]
        return voltage(s, st, meter, t, now, v if isinstance(v, (tuple, list)) else (v,))
    elif kind == "thd":
        thd(s, st, meter, t, params["value"])
    else:
        raise ValueError("unknown supply input %r" % (kind,))
    return False


def voltage(s, st, meter, t, now, volts):
    """Phase loss (ET04.111), sag / surge (ET09), outage (ET04.110)."""
    store = meter.store
    rated = store.field(_ET04, 60, 2) or _DEFAULT_RATED_V
    if st["volts"] is None:
        st["volts"] = [rated, rated, rated]
    now_v = st["volts"]
    for i in range(min(3, len(volts))):
        now_v[i] = volts[i]
    active = 0x07 & ~store.field(_ET04, 62, 1)
    loss_pct = store.field(_ET04, 111, 1) or _DEFAULT_PHASE_LOSS_PCT
    sag_pct = store.field(_ET09, 3, 1)
    surge_pct = store.field(_ET09, 4, 1)
    out_pct = store.field(_ET04, 110, 1)
    lost = sag = surge = 0
    out = out_pct != 0 and active != 0
    for i in range(3):
        if not active >> i & 1:
            continue
        v100 = now_v[i] * 100
        if v100 < rated * loss_pct:
            lost |= 1 << i
        elif sag_pct and v100 < rated * (100 - sag_pct):
            sag |= 1 << i
        elif surge_pct and v100 > rated * (100 + surge_pct):
            surge |= 1 << i
        if v100 >= rated * out_pct:
            out = False
    # Every active phase below ET04.110: the meter loses its supply.
    if out and meter.powered:
        st["v_out"] = True
        meter.set_power(False, now)
        return True
    if not out and st["v_out"] and not meter.powered:
        st["v_out"] = False
        meter.set_power(True, now)
    if lost & ~st["lost"]:
        events.log(meter, _EV_PHASE_LOSS, lost, _NOBODY, t)
        events.alarm(meter, 4, 4, True)
    elif not lost and st["lost"] and store.field(_ET04, 121, 1):
        events.alarm(meter, 4, 4, False)
    st["lost"] = lost
    # sag / surge: logged by Supply._timers once they lasted ET09.2 minutes
    masks = (sag, surge)
    for i in (0, 1):
        pq = s.pq[i]
        if not masks[i]:
            s.pq[i] = None
        elif pq is None:
            s.pq[i] = [t, masks[i], False]
        elif not pq[2]:
            pq[1] |= masks[i]
    return False


def current(s, st, meter, t, ma):
    """Phase currents (mA): over-current against ET09.5 % of ET04.58 (A);
    the highest phase is what ET30 current mode compares."""
    s.load_ma = max(ma)
    store = meter.store
    pct = store.field(_ET09, 5, 1)
    imax = store.field(_ET04, 58, 2)
    mask = 0
    if pct and imax:
        for i in range(min(3, len(ma))):
            if ma[i] * 100 > imax * 1000 * pct:
                mask |= 1 << i
    if mask & ~st["over"]:
        events.log(meter, _EV_OVER_CURRENT, mask, _NOBODY, t)
        events.alarm(meter, 7, 3, True)
    st["over"] = mask


def thd(s, st, meter, t, value):
    """THD (0.1 %): EE27 when it crosses the threshold either way (BT03
    7.5); at the end of a high episode EE28 with the episode's maximum."""
    high = value > s.config.get("thd_threshold", 50)
    if high and value > st["thd_max"]:
        st["thd_max"] = value
    if high != st["thd"]:
        events.log(meter, _EV_THD, value & 0xFFFF, _NOBODY, t)
        events.alarm(meter, 7, 5, True)
        if not high:
            events.log(meter, _EV_THD_MAX, st["thd_max"] & 0xFFFF, _NOBODY, t)
            st["thd_max"] = 0
    st["thd"] = high
