# Helpers of the TOU tests (test_tou*.py): calendar images and meters.
# Meters are built as osgp_meter.firmware.Firmware builds its meter, without
# the ports: the MEP/optical modules would not leave room for the tests in a
# 128 KB MicroPython heap. The meter modules are imported only by the tests
# that build meters.
from osgp_meter import calendar as cal
from osgp_meter import clock

NES_BT50 = b"\x00\x11\x2c\x19\x17\xc8\x00\x28\x03"
DIMS = cal.Dims(NES_BT50)
H = 3600
TOU_EVENTS = (3, 4, 22, 23, 24, 26, 27)
_BIG = []


def big():
    """Port limits that never get in the way; requests come from user 0x1234."""
    if not _BIG:
        from osgp_meter.device import PortLimits
        _BIG.append(PortLimits("test", 1000, 1000, 0x1234))
    return _BIG[0]


def utc(y, mo, d, hh=0, mi=0, ss=0):
    return clock.from_civil(y, mo, d, hh, mi, ss)


def bare(t0):
    """A meter as Firmware({"keys": {}, "clock": t0}, t0 * 1000) has it."""
    from osgp_meter import catalogue_data
    from osgp_meter.device import Meter
    from osgp_meter.store import TableStore
    m = Meter(TableStore(catalogue_data.TABLES), catalogue_data.PROCEDURES)
    m.store.write(71, 5, b"\x28\x00")     # a 40-entry history log (BT71.5) saves heap
    m.set_utc(t0, t0 * 1000)
    return m


def meter(t0, cfg=None, bt50=None, bt53=None, calendar=None):
    m = bare(t0)
    if bt50 is not None:
        m.store.write(50, 0, bt50)
    if bt53 is not None:
        m.store.write(53, 0, bt53)
    if calendar is not None:
        m.store.write(54, 0, calendar)
    from osgp_meter import tou
    tou.attach(m, cfg)
    return m


def build(nonrec=(), rec=(), switches=(), seasons=(), cal_id=7, dims=DIMS):
    """A BT54 image: nonrec ((y, m, d), action); rec (rdate, action);
    switches (tier, hour, minute, day schedule); seasons: day-schedule bytes."""
    out = bytearray(dims.size)
    at = 0
    for (y, mo, d), a in nonrec:
        v = cal.encode_ansi_date(y, mo, d)
        out[at:at + 3] = bytes((v & 0xFF, v >> 8, a))
        at += 3
    at = 3 * dims.nonrec
    for v, a in rec:
        out[at:at + 3] = bytes((v & 0xFF, v >> 8, a))
        at += 3
    at = 3 * (dims.nonrec + dims.rec)
    for tier, hh, mi, ds in switches:
        out[at:at + 3] = cal.encode_switch(tier, hh, mi, ds)
        at += 3
    at = 3 * (dims.nonrec + dims.rec + dims.switches)
    for days in seasons:
        out[at:at + dims.day_len] = bytes(days)
        at += dims.day_len
    out[dims.size - 4:] = cal_id.to_bytes(4, "little")
    return out


def run_until(m, t_end, collect=False):
    """Advance to t_end (meter seconds) wake-up by wake-up: the number of
    wake-ups, or (collect) their seconds."""
    dues = [] if collect else 0
    now = m.t * 1000 - m.clock_offset
    end = m.physical_ms(t_end)
    while True:
        nxt = m.advance(now)
        if nxt is None or nxt > end:
            m.advance(end)
            return dues
        if collect:
            dues.append((nxt + m.clock_offset) // 1000)
        else:
            dues += 1
        now = nxt


def log(m, since=0):
    """(time, user, event, argument) of the clock and TOU events."""
    from osgp_meter import events
    return [(e[0], e[2], e[3], e[4]) for e in events.entries(m)[since:] if e[3] in TOU_EVENTS]


def read(m, tid, t):
    from osgp_meter import access
    rsp = m.execute(bytes((0x30, 0, tid)), access.ROLE_MAK, big(), m.physical_ms(t))
    assert rsp[0] == 0
    return rsp[3:]


def call(m, number, psn, params, t):
    """Run a procedure at meter second t; its result code."""
    from osgp_meter import access
    now = m.physical_ms(t)
    data = bytes((number & 0xFF, number >> 8, psn)) + params
    req = bytes((0x40, 0, 7, 0, len(data))) + data
    assert m.execute(req, access.ROLE_MAK, big(), now) == b"\x00"
    return m.execute(bytes.fromhex("30 00 08"), access.ROLE_MAK, big(), now)[6]


class Metrology:
    """Records what TOU asks of metrology."""

    def __init__(self):
        self.calls = []

    def update(self, meter, t):
        pass

    def season_change(self, meter, t, s):
        self.calls.append(("season", t, s))

    def self_read(self, meter, t):
        self.calls.append(("self_read", t))

    def demand_reset(self, meter, t):
        self.calls.append(("demand_reset", t))
