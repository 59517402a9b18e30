# Issue 4's acceptance scenario: one simulated month of a metering meter,
# driven the way a host or board loop drives it, on CPython and on the
# MicroPython unix port alike. tests/test_month_scenario.py checks the
# facts this module returns against an independent computation and compares
# the digest it prints under MicroPython with CPython's.
#
# The month (all times UTC; the meter's clock = driver time, no clock set):
#   2026-03-04 09:07:13.000  start (Wednesday, mid-interval), default calendar
#                            (docs/tou.md), BT53 = CET (+60 min) with 60 min DST
#                            from 02:00, BT50 "DST auto": the EU rule
#   2026-03-10 21:55:17.300 .. 03-11 00:05:17.300  outage, 2 h 10 min: over the
#                            23:00 local tier switch, the 00:00 local self-read
#                            and the LP block boundary (UTC midnight); longer
#                            than ET04.98 (300 s) and ET09.0 (3600 s)
#   2026-03-18 10:30:00.123  BP09 over the PLC port: self-read + demand reset
#   2026-03-24 13:22:05.800 .. 13:23:35.800  a 90 s dip, shorter than ET04.98
#   2026-03-29 01:00:00      DST on (EU rule)
#   2026-03-31 22:00:00      season 1 (1 April 00:00 local, the built-in calendar)
#   2026-04-04 06:41:29.000  end (Saturday)
# Every day from 5 March a data concentrator reads the newest full LP block
# of set 1 through 84-byte partial reads (0x3F) at the place the reference's
# formula gives, then acknowledges the unread blocks with BP05.
#
# The image: the catalogue defaults plus ET04.71 bit 3 (LP "skipped" status),
# ET04.98 = 300 s (events 1/2 only for longer outages), ET09.0 = 3600 s
# (long-outage event), BT71.5 = 200 history entries (a month fits).
#
#   micropython -X heapsize=... tests/core/scenario_month.py [driver|jump]
# prints "table <name> <crc32>" lines and "digest <crc32>" (CRC-32, zlib's).
from osgp_meter import access
from osgp_meter import catalogue_data
from osgp_meter import clock
from osgp_meter import events
from osgp_meter.device import PLC_LIMITS
from osgp_meter.firmware import Firmware
from osgp_meter.prng import XorShift32

H = 3600
Q = 900
DAY = 86400
START = clock.from_civil(2026, 3, 4, 9, 7, 13)
END = clock.from_civil(2026, 4, 4, 6, 41, 29)
OUTAGE = (clock.from_civil(2026, 3, 10, 21, 55, 17) * 1000 + 300,
          clock.from_civil(2026, 3, 11, 0, 5, 17) * 1000 + 300)
DIP = (clock.from_civil(2026, 3, 24, 13, 22, 5) * 1000 + 800,
       clock.from_civil(2026, 3, 24, 13, 23, 35) * 1000 + 800)
RESET = clock.from_civil(2026, 3, 18, 10, 30, 0) * 1000 + 123
DST_ON = clock.from_civil(2026, 3, 29, 1, 0, 0)
SEASON = clock.from_civil(2026, 3, 31, 22, 0, 0)
SEED = 7
PV_PEAK_W = 4000
OUTAGE_MIN_S = 300          # ET04.98
LONG_OUTAGE_S = 3600        # ET09.0
LOG_ENTRIES = 200           # BT71.5

ET04 = 2048 + 4
ET09 = 2048 + 9
ET21 = 2048 + 21
BT71 = 71
BP05 = 5
BP09 = 9

# What the digest covers, in this order; BT28 and BT55 are read at END
# through the port (they are computed on read).
DIGEST_TABLES = (("BT23", 23), ("BT24", 24), ("BT25", 25), ("BT26", 26), ("BT28", 28),
                 ("BT55", 55), ("BT63", 63), ("BT64", 64), ("BT74", 74), ("ET21", ET21))


def config():
    """The firmware config: a plain dict (no TOML on a board)."""
    et04 = bytearray(catalogue_data.TABLES[ET04][4] or b"")
    et04 += bytes(139 - len(et04))
    et04[71] |= 0x08                                    # LP skipped option
    et04[98:100] = OUTAGE_MIN_S.to_bytes(2, "little")   # event outage threshold
    et09 = bytearray(8)
    et09[0:2] = LONG_OUTAGE_S.to_bytes(2, "little")     # long-outage threshold
    bt71 = bytearray(catalogue_data.TABLES[BT71][4])
    bt71[5:7] = LOG_ENTRIES.to_bytes(2, "little")
    return {
        "image": {ET04: bytes(et04), ET09: bytes(et09), BT71: bytes(bt71)},
        "keys": {},
        "mep_secure": True,
        "clock": START,
        "metering": True,
        "seed": SEED,
        "annual_kwh": 3500,
        "pv_peak_w": PV_PEAK_W,
        "phases": 3,
    }


# -- CRC-32 (reflected 0xEDB88320, as zlib.crc32), table built once -------------

_CRC = []


def crc32(data, crc=0):
    if not _CRC:
        for n in range(256):
            c = n
            for _ in range(8):
                c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
            _CRC.append(c)
    t = _CRC
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# -- the port, as a data concentrator uses it ---------------------------------------

class Port:
    """Requests over the PLC port's limits (84-byte reads), user 0xFFFE."""

    def __init__(self, fw):
        self.meter = fw.meter
        self.psn = 0
        self.requests = 0

    def read(self, tid, offset, count, now, sink=None):
        """Partial reads of at most PLC_LIMITS.max_read bytes. Returns the
        bytes, or (sink given) feeds each piece to sink and returns None."""
        out = None if sink is not None else bytearray()
        while count:
            n = count if count < PLC_LIMITS.max_read else PLC_LIMITS.max_read
            req = bytes((0x3F, tid >> 8, tid & 0xFF, offset >> 16, (offset >> 8) & 0xFF,
                         offset & 0xFF, n >> 8, n & 0xFF))
            rsp = self.meter.execute(req, access.ROLE_PLC, PLC_LIMITS, now)
            self.requests += 1
            if rsp[0] != 0 or (rsp[1] << 8 | rsp[2]) != n:
                raise AssertionError("read %d/%d/%d: %r" % (tid, offset, n, bytes(rsp[0:3])))
            if sink is not None:
                sink(rsp[3:])
            else:
                out += rsp[3:]
            offset += n
            count -= n
        return out

    def call(self, number, params, now):
        """A procedure through BT07 (full write) and BT08: (result, data)."""
        self.psn = self.psn % 254 + 1
        data = bytes((number & 0xFF, number >> 8, self.psn)) + params
        rsp = self.meter.execute(bytes((0x40, 0, 7, 0, len(data))) + data,
                                 access.ROLE_PLC, PLC_LIMITS, now)
        if rsp != b"\x00":
            raise AssertionError("BT07 write refused: %r" % rsp)
        rsp = self.meter.execute(b"\x30\x00\x08", access.ROLE_PLC, PLC_LIMITS, now)
        self.requests += 2
        return rsp[6], bytes(rsp[7:])


def _u16(b, o):
    return b[o] | b[o + 1] << 8


def _u32(b, o):
    return b[o] | b[o + 1] << 8 | b[o + 2] << 16 | b[o + 3] << 24


def newest_full_block(port, now, sink=None):
    """Where the newest full block of set 1 is, by the reference's formula
    ((BT63.3 - 1) mod BT61.7) * ET21.8, count ET21.8; read it. Returns
    (BT63 bytes, offset, size, block bytes or None with a sink)."""
    bt61 = port.read(61, 0, 13, now)
    bt63 = port.read(63, 0, 13, now)
    et21 = port.read(ET21, 0, 30, now)
    size = _u32(et21, 8)
    off = ((_u16(bt63, 3) - 1) % _u16(bt61, 7)) * size
    return bt63, off, size, port.read(64, off, size, now, sink)


# -- the schedule -------------------------------------------------------------------

def sessions():
    """Driver times (ms) of the daily data-concentrator sessions: from
    5 March to the end, each day at 00:20 + up to 2 h (seeded)."""
    rng = XorShift32(0x5E55)
    out = []
    day = (START // DAY + 1) * DAY
    while day < END:
        t = (day + 20 * 60 + rng.below(2 * H)) * 1000 + rng.below(1000)
        if t < END * 1000:
            out.append(t)
        day += DAY
    return out


def actions():
    """Everything the outside world does, in time order: (ms, kind)."""
    acts = [(OUTAGE[0], "down"), (OUTAGE[1], "up"), (DIP[0], "down"), (DIP[1], "up"),
            (RESET, "bp09")]
    for t in sessions():
        acts.append((t, "session"))
    acts.sort()
    return acts


# Tables a driver reads now and then between its steps (tid, offset, count).
_READS = ((23, 0, 84), (23, 300, 91), (28, 0, 56), (52, 0, 7), (55, 0, 9), (63, 0, 13),
          (ET21, 0, 84), (74, 0, 11), (26, 0, 6), (64, 977, 84))


def run(mode="driver", keep=True, seed=0xD21E):
    """Run the month. mode "driver": irregular steps of up to 25 minutes, now
    and then straight to the meter's next due time, reads through the port
    in between (`seed` shapes them); "jump": one advance from each outside
    action to the next.
    Returns the facts: {"fw", "blocks": [(BT63, offset, size, bytes or crc)],
    "calls": [(ms, procedure, params, result)], "requests", "steps"}."""
    fw = Firmware(config(), START * 1000)
    meter = fw.meter
    port = Port(fw)
    rng = XorShift32(seed)
    now = START * 1000
    steps = 0
    blocks = []
    calls = []
    powered = True
    for at, kind in actions() + [(END * 1000, "end")]:
        if mode == "driver":
            while now < at:
                nxt = fw.tick(now)
                steps += 1
                r = rng.below(16)
                if r == 0 and nxt is not None and nxt > now:
                    now = nxt
                else:
                    now += 1 + rng.below(1500000)
                if now > at:
                    now = at
                if r < 3 and powered and now < at:
                    tid, off, n = _READS[rng.below(len(_READS))]
                    port.read(tid, off, n, now)
        now = at
        fw.tick(now)
        steps += 1
        if kind == "down" or kind == "up":
            powered = kind == "up"
            meter.set_power(powered, now)
            fw.tick(now)
        elif kind == "bp09":
            r = port.call(BP09, b"\x03", now)       # self-read + demand reset
            calls.append((now, BP09, b"\x03", r[0]))
        elif kind == "session":
            if mode == "driver":
                if keep:
                    bt63, off, size, raw = newest_full_block(port, now)
                    blocks.append((bt63, off, size, bytes(raw)))
                else:
                    box = [0]

                    def sink(piece):
                        box[0] = crc32(piece, box[0])
                    bt63, off, size, _ = newest_full_block(port, now, sink)
                    blocks.append((bt63, off, size, box[0]))
                unread = _u16(bt63, 9)
            else:
                unread = meter.store.field(63, 9, 2)
            if unread:
                params = bytes((3, unread & 0xFF, unread >> 8))   # list 3: LP set 1
                r = port.call(BP05, params, now)
                calls.append((now, BP05, params, r[0]))
    return {"fw": fw, "blocks": blocks, "calls": calls, "requests": port.requests,
            "steps": steps}


def table_bytes(fw, tid, sink):
    """Feed table tid to sink in 256-byte pieces (no big copy on a board),
    as a read at END returns it (BT23-BT28 current to END, BT28 and BT55
    computed then)."""
    meter = fw.meter
    live = meter.live(tid, END * 1000)     # registers: integrated up to END
    if live is not None:
        sink(live)
        return
    size = meter.store.size(tid) or 0
    for o in range(0, size, 256):
        sink(meter.store.read(tid, o, 256 if size - o > 256 else size - o))


def digests(fw):
    """[(name, crc32)] of the tables, then of the event list, then the
    digest over all of them (a CRC-32 of every byte in this order)."""
    out = []
    box = [0, 0]

    def sink(piece):
        box[0] = crc32(piece, box[0])
        box[1] = crc32(piece, box[1])
    for name, tid in DIGEST_TABLES:
        box[0] = 0
        table_bytes(fw, tid, sink)
        out.append((name, box[0]))
    box[0] = 0
    for t, seq, user, event, arg in events.entries(fw.meter):
        sink(clock.encode_ltime(t) + seq.to_bytes(4, "little") + user.to_bytes(2, "little")
             + event.to_bytes(2, "little") + arg.to_bytes(4, "little"))
    out.append(("events", box[0]))
    out.append(("digest", box[1]))
    return out


def report(facts):
    lines = []
    for name, v in digests(facts["fw"]):
        lines.append(("digest %08x" if name == "digest" else "table " + name + " %08x") % v)
    crc = 0
    for bt63, off, size, raw in facts["blocks"]:
        if not isinstance(raw, int):
            raw = crc32(raw)
        crc = crc32(bytes(bt63) + off.to_bytes(4, "little") + size.to_bytes(4, "little")
                    + raw.to_bytes(4, "little"), crc)
    lines.append("blocks %d %08x" % (len(facts["blocks"]), crc))
    lines.append("calls %d %s" % (len(facts["calls"]),
                                  ",".join("%d:%d" % (c[1], c[3]) for c in facts["calls"])))
    return lines


def main(argv):
    import gc
    mode = argv[1] if len(argv) > 1 else "driver"
    gc.collect()
    facts = run(mode, keep=False)
    for line in report(facts):
        print(line)
    gc.collect()
    try:
        print("heap used %d free %d" % (gc.mem_alloc(), gc.mem_free()))
    except AttributeError:
        pass


if __name__ == "__main__":
    import sys
    main(sys.argv)
