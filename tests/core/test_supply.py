# The supply subsystem: outages, tamper / power-quality inputs, the
# load-disconnect switch (EP01), maximum power (ET30, EP04), the relay
# calendar (ET61, EP02, EP40) and prepayment (ET24, EP13, EP28, EP29).
#
# The meter is built as Firmware builds it (TableStore + Meter + clock) but
# without the MEP and optical ports: with them, the firmware alone holds 521
# qstrs and the MicroPython unix port then needs a sixth qstr pool (640
# entries, 7.7 KB in one block) that a fragmented 128 KB heap cannot give.
# Procedures still go through BT07/BT08 via Meter.execute with the MEP limits.
#
# Tables by number: 3 BT03, 2052 ET04, 2057 ET09, 2072 ET24, 2078 ET30,
# 2094 ET46, 2109 ET61, 2129 ET81.
from osgp_meter import catalogue_data, clock, events, supply
from osgp_meter.device import Meter, MEP_LIMITS
from osgp_meter.store import TableStore

T0 = clock.from_civil(2026, 11, 26, 12, 0, 0) * 1000     # Thursday 12:00:00 UTC


def meter(config=None, tables=None):
    """The catalogue meter with small logs (30 BT74, 4 ET79 entries), 8 ET61
    switch points, time zone UTC (the default is +60 min), and a supply."""
    et11 = bytearray(91)
    d = catalogue_data.TABLES[2059][4]
    et11[:len(d)] = d
    et11[26] = 8
    et11[80] = 4
    img = {71: bytes((6, 8, 19, 2, 2, 30, 0, 0, 0)), 2059: bytes(et11),
           53: bytes.fromhex("0200003c0000")}
    if tables:
        img.update(tables)
    m = Meter(TableStore(catalogue_data.TABLES, img), catalogue_data.PROCEDURES)
    m.set_utc(T0 // 1000, T0)
    supply.attach(m, config)
    return m


def at(s):
    return T0 + s * 1000


def call(m, number, params=b"", now=T0):
    """A procedure through BT07/BT08 over MEP (MAK): (result, response)."""
    data = bytes((number & 0xFF, number >> 8, m.last_psn % 200 + 1)) + bytes(params)
    assert m.execute(bytes((0x40, 0, 7, 0, len(data))) + data, 8, MEP_LIMITS, now) == b"\x00"
    r = m.execute(bytes((0x30, 0, 8)), 8, MEP_LIMITS, now)
    return r[6], r[7:]


def bit(m, byte, b):
    return (m.store.field(3, byte, 1) >> b) & 1


def evs(m, timed=False):
    """(event, arg), or (seconds after T0, event, arg), of the history log;
    event 9 (procedure invoked) left out."""
    return [((e[0] - T0 // 1000, e[3], e[4]) if timed else (e[3], e[4]))
            for e in events.entries(m) if e[3] != 9]


def state(m):
    snap = m.store.snapshot()
    snap.pop(7, None)
    snap.pop(8, None)
    return snap


def le(v, n):
    return (v & ((1 << (8 * n)) - 1)).to_bytes(n, "little")


# -- outages -----------------------------------------------------------------------

def test_short_outage_logs_nothing():
    m = meter(tables={2052: bytes(98) + le(30, 2)})          # event outage threshold 30 s
    m.set_power(False, at(10))
    assert bit(m, 2, 3) == 1 and not supply.connected(m)     # power failure while down
    m.set_power(True, at(39))
    assert evs(m) == [] and bit(m, 2, 3) == 0
    assert m.store.read(2057, 6, 18) == bytes(18)
    assert supply.connected(m)


def test_long_outage_events_records_and_bits():
    et04 = bytearray(139)
    et04[53] = 10
    et04[98:100] = le(30, 2)
    m = meter(tables={2052: bytes(et04), 2057: le(120, 2)})   # long outage from 120 s
    m.set_power(False, at(10))
    m.set_power(True, at(10 + 3725))
    assert evs(m, True) == [(10, 1, 0), (3735, 2, 0), (3735, 2048 + 44, 62)]
    e = events.entries(m)[0]
    assert e[2] == 0xFFFF
    # ET09 record: power on, power off, seconds, phases, 0
    assert m.store.read(2057, 6, 18).hex(" ") == (
        "1a 0b 1a 0d 02 0f  1a 0b 1a 0c 00 0a  8d 0e 00 00  07 00".replace("  ", " "))
    # ET81: circular {start, end}
    assert m.store.read(2129, 0, 15).hex(" ") == "04 01 00 1a 0b 1a 0c 00 0a 1a 0b 1a 0d 02 0f"
    assert bit(m, 2, 3) == 1                                   # kept until cleared
    assert events.pending_critical(m)[0][1] == 1               # power down is critical
    # a second outage: newest ET09 record first
    m.set_power(False, at(4000))
    m.set_power(True, at(4100))
    assert m.store.field(2057, 6 + 12, 4) == 100 and m.store.field(2057, 24 + 12, 4) == 3725
    assert m.store.read(2129, 0, 3) == b"\x04\x02\x01"
    assert call(m, 2048 + 30, now=at(4200))[0] == 0            # EP30 clears the records
    assert m.store.read(2057, 0, 2) == le(120, 2) and m.store.read(2057, 6, 36) == bytes(36)
    assert call(m, 2048 + 31, now=at(4200))[0] == 0            # EP31 empties ET81
    assert m.store.read(2129, 0, 3) == b"\x04\x00\x00"


def test_the_clock_runs_through_an_outage():
    m = meter()
    m.set_power(False, at(0))
    m.set_power(True, at(600))
    assert m.utc(at(600)) == (T0 // 1000) + 600
    assert evs(m, True) == [(0, 1, 0), (600, 2, 0)]


def test_outage_reaches_metrology():
    m = meter()
    got = []

    class Metro:
        def add_outage(self, meter, seconds):
            got.append(seconds)

        def update(self, meter, t):     # the metrology contract (docs/time-model.md)
            pass

    m.metrology = Metro()
    m.set_power(False, at(5))
    m.set_power(True, at(65))
    assert got == [60]


# -- tamper and power quality ---------------------------------------------------------

def test_tamper_magnetic_battery_and_neutral():
    m = meter()
    supply.inject(m, "cover", at(1), on=True)
    supply.inject(m, "cover", at(2), on=True)                  # no second event
    assert bit(m, 2, 4) == 1
    supply.inject(m, "cover", at(3), on=False)
    assert bit(m, 2, 4) == 1                                   # latched
    assert call(m, 2048 + 3, now=at(4))[0] == 0                # EP03
    assert bit(m, 2, 4) == 0
    supply.inject(m, "magnetic", at(5))
    assert bit(m, 7, 1) == 1
    supply.inject(m, "battery", at(6), on=True)
    assert bit(m, 2, 0) == 1
    supply.inject(m, "battery", at(7), on=False)
    assert bit(m, 2, 0) == 0                                   # follows the battery
    supply.inject(m, "terminal_cover", at(8))
    supply.inject(m, "neutral", at(9))
    assert bit(m, 3, 3) == 1 and bit(m, 2, 4) == 1
    assert evs(m, True) == [(1, 47, 0), (5, 2048 + 24, 0), (6, 44, 0), (8, 2048 + 37, 0), (9, 2048 + 38, 0)]
    assert len(events.pending_critical(m)) == 5


def test_phase_loss_threshold_and_constant_alarm():
    et04 = bytearray(139)
    et04[60:62] = le(230, 2)
    et04[111] = 60                                             # lost below 138 V
    m = meter(tables={2052: bytes(et04)})
    supply.inject(m, "voltage", at(1), volts=(230, 140, 230))
    assert evs(m) == [] and bit(m, 4, 4) == 0
    supply.inject(m, "voltage", at(2), volts=(230, 137, 0))
    assert evs(m) == [(2048 + 4, 6)] and bit(m, 4, 4) == 1
    supply.inject(m, "voltage", at(3), volts=230)              # L1 only: L2/L3 still lost
    supply.inject(m, "voltage", at(4), volts=(230, 230, 230))
    assert bit(m, 4, 4) == 1                                   # ET04.121 = 0: latched
    m.store.set_field(2052, 121, 1, 1)
    supply.inject(m, "voltage", at(5), volts=(0, 230, 230))
    assert evs(m)[-1] == (2048 + 4, 1)
    supply.inject(m, "voltage", at(6), volts=(230, 230, 230))
    assert bit(m, 4, 4) == 0                                   # follows the phases


def test_sag_after_the_sag_time_and_surge_at_once():
    et09 = le(0, 2) + bytes((1, 10, 10, 0))                    # 1 min, sag/surge 10 %
    m = meter(tables={2057: et09})
    supply.inject(m, "voltage", at(0), volts=(200, 230, 230))  # below 207 V
    m.advance(at(59))
    assert evs(m) == []
    assert m.advance(at(59)) == at(60)
    m.advance(at(60))
    assert evs(m, True) == [(60, 2048 + 41, 1)] and bit(m, 7, 3) == 1
    # a sag that ends early is not logged
    supply.inject(m, "voltage", at(100), volts=(230, 230, 230))
    supply.inject(m, "voltage", at(120), volts=(230, 200, 230))
    supply.inject(m, "voltage", at(150), volts=(230, 230, 230))
    m.advance(at(400))
    assert len(evs(m)) == 1
    m.store.set_field(2057, 2, 1, 0)
    supply.inject(m, "voltage", at(500), volts=(230, 230, 260))  # above 253 V
    assert evs(m)[-1] == (2048 + 42, 4)


def test_over_current_and_thd():
    et04 = bytearray(139)
    et04[58:60] = le(60, 2)                                    # max current 60 A
    m = meter({"thd_threshold": 50}, {2052: bytes(et04), 2057: bytes(5) + b"\x64"})
    supply.inject(m, "load", at(1), watts=1000, milliamps=(59000, 61000, 0))
    assert evs(m) == [(2048 + 43, 2)] and bit(m, 7, 3) == 1
    supply.inject(m, "thd", at(2), value=40)
    supply.inject(m, "thd", at(3), value=65)
    supply.inject(m, "thd", at(4), value=80)
    supply.inject(m, "thd", at(5), value=30)
    assert evs(m)[1:] == [(2048 + 27, 65), (2048 + 27, 30), (2048 + 28, 80)]
    assert bit(m, 7, 5) == 1


def test_outage_by_voltage_below_et04_110():
    et04 = bytearray(139)
    et04[110] = 20                                             # below 46 V on every phase
    m = meter(tables={2052: bytes(et04)})
    supply.inject(m, "voltage", at(10), volts=(40, 30, 10))
    assert not m.powered and bit(m, 2, 3) == 1
    supply.inject(m, "voltage", at(70), volts=(230, 230, 230))
    assert m.powered and evs(m, True) == [(10, 1, 0), (70, 2, 0)]


def test_unknown_input_is_refused():
    m = meter()
    try:
        supply.inject(m, "earthquake", at(1))
    except ValueError:
        return
    assert False


# -- EP01 remote disconnect ------------------------------------------------------------

def test_ep01_disconnect_reconnect_and_arm():
    m = meter()
    assert call(m, 2049, b"\x00", at(10)) == (0, bytes(12))
    assert m.store.read(2094, 0, 7).hex(" ") == "01 1a 0b 1a 0c 00 0a"
    assert not supply.connected(m) and bit(m, 4, 2) == 1
    log = events.entries(m)
    assert [(e[3], e[4], e[2]) for e in log] == [(49, 0x100, 0xFFFD), (2050, 1, 0xFFFD), (9, 2049, 0xFFFD)]
    assert call(m, 2049, b"\x00", at(11))[0] == 0              # already open: nothing new
    assert len(evs(m)) == 2
    assert call(m, 2049, b"\x01", at(12))[0] == 0
    assert supply.connected(m) and evs(m)[-2:] == [(49, 0), (2050, 0)]
    assert m.store.field(2094, 0, 1) == 0
    # arm: the customer's button closes the switch
    call(m, 2049, b"\x00", at(13))
    assert call(m, 2049, b"\x02", at(14))[0] == 0
    assert m.store.field(2094, 0, 1) == 2 and not supply.connected(m)
    supply.inject(m, "button", at(15))
    assert supply.connected(m) and evs(m)[-1] == (2050, 0)
    # refusals
    before = state(m)
    assert call(m, 2049, b"", at(16))[0] == 2
    assert call(m, 2049, b"\x03", at(16))[0] == 2
    assert call(m, 2049, b"\x02", at(16))[0] == 3              # arming a closed switch
    assert state(m) == before


def test_unpowered_is_not_connected():
    m = meter()
    m.set_power(False, at(1))
    assert not supply.connected(m)
    m.set_power(True, at(2))
    assert supply.connected(m)


# -- maximum power (ET30, EP04) -------------------------------------------------------

def et30(limit0, limit1, mode=1, delay=10, reconnect=1):
    return (le(limit0, 4) + le(0, 4) + le(limit1, 4) + le(0, 4)
            + bytes((0, mode)) + le(delay, 2) + bytes((reconnect,)))


def test_max_power_trips_after_the_delay_and_reconnects():
    m = meter(tables={2078: et30(1000, 2000)})
    supply.inject(m, "load", at(100), watts=1500)
    assert m.advance(at(100)) == at(110)
    m.advance(at(109))
    assert supply.connected(m)
    m.advance(at(110))
    assert not supply.connected(m)
    assert evs(m, True) == [(110, 51, 0x100), (110, 2050, 1)]
    m.advance(at(120))                                         # automatic reconnect
    assert supply.connected(m) and evs(m, True)[-2:] == [(120, 51, 0), (120, 2050, 0)]
    m.advance(at(130))                                         # still too much: trips again
    assert not supply.connected(m)
    # EP04: the higher level; EP01 reconnects by hand
    assert call(m, 2052, b"\x01", at(131))[0] == 0
    assert evs(m)[-1] == (2048 + 39, 1)
    call(m, 2049, b"\x01", at(132))
    m.advance(at(200))
    assert supply.connected(m)
    before = state(m)
    assert call(m, 2052, b"\x02", at(201))[0] == 2
    assert call(m, 2052, b"", at(201))[0] == 2
    assert state(m) == before


def test_max_power_manual_reconnect_and_load_drop():
    m = meter(tables={2078: et30(1000, 0, reconnect=0)})
    supply.inject(m, "load", at(0), watts=1200)
    supply.inject(m, "load", at(5), watts=900)                 # drops before the delay
    m.advance(at(60))
    assert supply.connected(m)
    supply.inject(m, "load", at(60), watts=1200)
    m.advance(at(1000))
    assert not supply.connected(m)
    assert m.advance(at(1000)) is None                         # manual: nothing scheduled
    call(m, 2049, b"\x01", at(1001))
    assert supply.connected(m)


def test_current_mode_uses_milliamps():
    tables = {2078: le(0, 4) + le(16000, 4) + bytes(8) + bytes((0, 2)) + le(0, 2) + b"\x00"}
    m = meter(tables=tables)
    supply.inject(m, "load", at(3), watts=100, milliamps=17000)
    assert not supply.connected(m)                             # no delay: at once


# -- relay calendar (ET61, EP02, EP40) ----------------------------------------------------

def test_relay_calendar_switches_at_the_right_seconds():
    cal = bytes((0x7F, 12, 30, 0, 1)) + bytes((0x7F, 13, 0, 0, 0)) + bytes((0x10, 6, 0, 1, 1))
    m = meter(tables={2109: cal})
    assert m.advance(at(0)) == at(1800)                        # 12:30
    m.advance(at(1799))
    assert m.store.field(2094, 7, 1) == 0
    m.advance(at(1800))
    assert m.store.read(2094, 7, 9).hex(" ") == "01 1a 0b 1a 0c 1e 00 01 00"
    assert evs(m, True) == [(1800, 50, 0x101), (1800, 2051, 1)]
    assert bit(m, 4, 3) == 0
    assert m.advance(at(1800)) == at(3600)                     # 13:00
    m.advance(at(3600))
    assert m.store.field(2094, 7, 1) == 0 and bit(m, 4, 3) == 1
    # relay 2 on Thursdays at 06:00: next week
    assert m.advance(at(3600)) == at(86400 + 1800)             # tomorrow 12:30 first
    m.advance(at(7 * 86400 - 6 * 3600))
    assert m.store.field(2094, 16, 1) == 1 and bit(m, 9, 0) == 0
    e = [x for x in events.entries(m) if x[3] == 2084]
    assert e[0][0] == (T0 // 1000) + 7 * 86400 - 6 * 3600


def test_relay_calendar_follows_the_time_zone():
    cal = bytes((0x7F, 12, 30, 0, 1))
    m = meter(tables={2109: cal, 53: bytes(4) + le(60, 2)})   # UTC+1
    assert m.advance(at(0)) == at(-1800 + 86400)              # 12:30 local = 11:30 UTC


def test_ep40_override_and_ep02():
    cal = bytes((0x7F, 12, 30, 0, 1)) + bytes((0x7F, 13, 0, 0, 0))
    m = meter(tables={2109: cal})
    m.advance(at(1800))
    assert m.store.field(2094, 7, 1) == 1
    assert call(m, 2048 + 40, b"\x00\x00\x0a\x00", at(2400))[0] == 0   # open for 10 min
    assert m.store.field(2094, 7, 1) == 0
    assert evs(m, True)[-2:] == [(2400, 49, 1), (2400, 2051, 0)]
    m.advance(at(2999))
    assert m.store.field(2094, 7, 1) == 0
    m.advance(at(3000))                                        # back to the calendar
    assert m.store.field(2094, 7, 1) == 1 and evs(m, True)[-2] == (3000, 50, 0x101)
    # until the next switch: 13:00 opens it, as planned, and ends the override
    call(m, 2048 + 40, b"\x00\x00\x00\x00", at(3100))
    m.advance(at(3600))
    assert m.store.field(2094, 7, 1) == 0
    # a timed override holds the relay through a switch point
    call(m, 2048 + 40, b"\x00\x01\x3c\x00", at(3601))         # closed for 60 min
    m.advance(at(86400 + 1800 - 1))
    assert m.store.field(2094, 7, 1) == 0                      # back to the calendar at 14:00
    assert call(m, 2048 + 2, b"\x01\x01", at(86400))[0] == 0  # EP02 relay 2 closed
    assert m.store.field(2094, 16, 1) == 1 and bit(m, 9, 0) == 0
    before = state(m)
    assert call(m, 2048 + 2, b"\x02\x01", at(86401))[0] == 2
    assert call(m, 2048 + 2, b"\x01", at(86401))[0] == 2
    assert call(m, 2048 + 40, b"\x00\x02\x00\x00", at(86401))[0] == 2
    assert call(m, 2048 + 40, b"\x00\x01\x00", at(86401))[0] == 2
    assert state(m) == before


def test_power_up_applies_the_missed_switch():
    cal = bytes((0x7F, 12, 30, 0, 1))
    m = meter(tables={2109: cal})
    m.set_power(False, at(1000))
    m.set_power(True, at(2000))
    assert m.store.field(2094, 7, 1) == 1
    assert evs(m, True)[-2:] == [(2000, 50, 0x101), (2000, 2051, 1)]


# -- prepayment (ET24, EP13, EP28, EP29) ---------------------------------------------------

def test_prepay_warning_exhausted_and_credit_added():
    m = meter({"poll": 10})
    assert call(m, 2048 + 13, le(1, 4) + le(200, 4), at(0)) == (0, le(200, 4) + bytes(8))
    assert call(m, 2048 + 28, b"\x01" + le(100, 4) + le(0, 4), at(0))[0] == 0
    assert m.store.read(2072, 0, 2) == b"\x01\x01"
    supply.inject(m, "load", at(0), watts=3600)                # 1 Wh per second
    m.advance(at(90))
    assert m.store.field(2072, 2, 4) == 110 and bit(m, 6, 5) == 0
    m.advance(at(100))
    assert m.store.read(2072, 1, 5) == b"\x03" + le(100, 4)
    assert bit(m, 6, 5) == 1 and evs(m)[-1] == (2048 + 22, 100)
    assert call(m, 2048 + 29, b"", at(101))[0] == 0            # acknowledge
    assert bit(m, 6, 5) == 0 and m.store.field(2072, 1, 1) == 0x07
    assert evs(m)[-1] == (2048 + 21, 0)
    assert call(m, 2048 + 29, b"", at(102))[0] == 3            # nothing left to acknowledge
    m.advance(at(200))
    assert m.store.field(2072, 2, 4) == 0 and not supply.connected(m)
    assert bit(m, 6, 4) == 1 and bit(m, 4, 2) == 1
    assert evs(m, True)[-3:] == [(200, 2048 + 20, 0), (200, 52, 0x100), (200, 2050, 1)]
    assert call(m, 2049, b"\x01", at(201))[0] == 3             # EP01 may not reconnect
    m.advance(at(300))
    assert m.store.field(2072, 2, 4) == 0                      # nothing drawn while open
    before = state(m)
    assert call(m, 2048 + 13, le(1, 4) + le(50, 4), at(300))[0] == 3       # replayed token
    assert call(m, 2048 + 13, le(2, 4) + le(0, 4), at(300))[0] == 2        # no credit
    assert call(m, 2048 + 13, le(2, 4) + le(-5, 4), at(300))[0] == 2
    assert call(m, 2048 + 13, le(2, 4), at(300))[0] == 2
    assert state(m) == before
    result, data = call(m, 2048 + 13, le(2, 4) + le(50, 4), at(300))
    assert result == 0 and data[:4] == le(50, 4)
    assert supply.connected(m) and bit(m, 6, 4) == 0
    assert evs(m, True)[-3:] == [(300, 53, 50), (300, 52, 0), (300, 2050, 0)]
    assert m.store.read(2072, 14, 14) == clock.encode_ltime((T0 // 1000) + 300) + le(2, 4) + le(250, 4)


def test_prepay_currency_units_and_emergency_credit():
    m = meter({"poll": 60, "price": 30})                       # 30 units per kWh
    call(m, 2048 + 13, le(7, 4) + le(3, 4), at(0))
    call(m, 2048 + 28, b"\x02" + le(0, 4) + le(2, 4), at(0))
    supply.inject(m, "load", at(0), watts=36000)               # 10 Wh per second
    m.advance(at(600))                                         # 6 kWh = 180 units
    assert m.store.field(2072, 1, 1) & 0x08 and not supply.connected(m)
    m2 = meter({"poll": 60, "price": 30})
    call(m2, 2048 + 13, le(7, 4) + le(10, 4), at(0))
    call(m2, 2048 + 28, b"\x02" + le(0, 4) + le(10, 4), at(0))
    supply.inject(m2, "load", at(0), watts=3600)               # 1 Wh/s: 0.03 units/s
    m2.advance(at(600))                                        # 600 Wh = 18 units
    assert events.entries(m2) and m2.store.field(2072, 2, 4) == (10 - 18) & 0xFFFFFFFF
    assert m2.store.field(2072, 1, 1) == 0x11 and supply.connected(m2)   # on emergency credit


def test_prepay_mode_refusals():
    m = meter()
    before = state(m)
    assert call(m, 2048 + 28, b"\x03" + bytes(8), at(0))[0] == 2
    assert call(m, 2048 + 28, b"\x01" + bytes(4), at(0))[0] == 2
    assert call(m, 2048 + 28, b"\x01" + le(0x80000000, 4) + bytes(4), at(0))[0] == 2
    assert call(m, 2048 + 29, b"", at(0))[0] == 3
    assert state(m) == before
    call(m, 2048 + 13, le(1, 4) + le(10, 4), at(0))
    call(m, 2048 + 28, b"\x01" + bytes(8), at(0))
    before = state(m)
    assert call(m, 2048 + 28, b"\x02" + bytes(8), at(0))[0] == 3          # units would change
    assert call(m, 2048 + 13, le(2, 4) + le(0x7FFFFFFF, 4), at(0))[0] == 2  # overflow
    assert state(m) == before


def test_procedures_without_a_supply_conflict():
    m = meter()
    m.supply = None
    m.subsystems = ()
    before = state(m)
    for number, params in ((2049, b"\x00"), (2050, b"\x00\x01"), (2052, b"\x01"),
                           (2088, b"\x00\x01\x00\x00"), (2061, le(1, 4) + le(1, 4)),
                           (2076, b"\x01" + bytes(8)), (2077, b"")):
        assert call(m, number, params)[0] == 3
    assert state(m) == before


# -- the clock ----------------------------------------------------------------------------

def test_clock_set_moves_timers_with_it_and_catches_up_the_calendar():
    cal = bytes((0x7F, 12, 30, 0, 1))
    m = meter(tables={2078: et30(1000, 0, delay=10, reconnect=0), 2109: cal})
    supply.inject(m, "load", at(0), watts=1500)
    # BP10 at +5 s: the clock jumps to 14:00:00 (over the 12:30 switch point)
    assert call(m, 10, b"\x03\x1a\x0b\x1a\x0e\x00\x00", at(5))[0] == 0
    assert m.store.field(2094, 7, 1) == 1                     # the missed switch, applied
    assert evs(m, True)[:2] == [(7200, 50, 0x101), (7200, 2051, 1)]
    m.advance(at(9))
    assert supply.connected(m)
    m.advance(at(10))                                         # 10 physical seconds after onset
    assert not supply.connected(m)
    assert evs(m, True)[-2:] == [(7205, 51, 0x100), (7205, 2050, 1)]
