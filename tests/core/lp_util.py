# Helpers of the load-profile tests (test_loadprofile*.py): a fake
# metrology with a known ramp (1 Wh per powered second on source 0, a third
# of that on source 1, a "present value" on source 64 = the driver's second
# of the day modulo 1000), meters, and decoders of BT63/BT64 bytes.
#
# Meters are built as osgp_meter.firmware.Firmware builds its meter (the
# catalogue's tables and procedures, the clock set to T0), without the MEP
# and optical servers: their 27 KB of code do not fit a 128 KB MicroPython
# heap next to these tests. Slots are decoded on demand for the same reason.
from osgp_meter import access as A
from osgp_meter import catalogue_data
from osgp_meter import clock
from osgp_meter import loadprofile as LP
from osgp_meter.device import Meter, PortLimits, PLC_LIMITS
from osgp_meter.store import TableStore
from osgp_meter.timeline import Subsystem, install

DAY = clock.from_civil(2026, 3, 1)                  # a Sunday
T0S = DAY + 10 * 3600 + 7 * 60 + 13                 # 10:07:13, mid-interval
T0 = T0S * 1000
MID = DAY + 86400                                   # the following midnight
Q = 900                                             # 15 minutes
H = 3600
BIG = PortLimits("test", 4096, 4096, 0)
ET21 = 2048 + 21


class Fake(Subsystem):
    """Metrology: energy flows only while powered, in physical time. Also
    the TOU's dst() when installed as meter.tou."""
    __slots__ = ("ms", "acc", "on", "dst_from")

    def __init__(self):
        self.ms = T0
        self.acc = 0
        self.on = True
        self.dst_from = None

    def update(self, meter, t):
        ms = meter.physical_ms(t)
        if ms > self.ms:
            if self.on:
                self.acc += ms - self.ms
            self.ms = ms

    def power(self, meter, t, on):
        self.update(meter, t)
        self.on = on

    def value(self, meter, sid):
        s = self.acc // 1000
        if sid == 64:
            return (self.ms // 1000) % 86400 % 1000
        return s // 3 if sid == 1 else s

    def dst(self, meter, t):
        return t >= self.dst_from


def build(config=None, image=None):
    m = Meter(TableStore(catalogue_data.TABLES, image), catalogue_data.PROCEDURES)
    m.set_utc(T0 // 1000, T0)
    fake = Fake()
    install(m, "metrology", fake)
    LP.attach(m, config)
    return m, fake


def ms(t):
    return (t - T0S) * 1000 + T0       # meter second -> driver ms (no clock set)


def s32(b, o):
    v = b[o] | b[o + 1] << 8 | b[o + 2] << 16 | b[o + 3] << 24
    return v - (1 << 32) if v & 0x80000000 else v


def u16(b, o):
    return b[o] | b[o + 1] << 8


def blk(m, idx, nint=96, nch=2, tbl=64):
    bsize = 5 + (nint + 7) // 8 + nint * (nch // 2 + 1 + 4 * nch)
    return m.store.read(tbl, idx * bsize, bsize)


def end_of(raw):
    return clock.decode_ltime(bytes(raw[0:5]) + b"\x00")


def slot(raw, i, nint=96, nch=2):
    """(simple-status bit, common flags, channel statuses, values)."""
    xs = nch // 2 + 1
    o = 5 + (nint + 7) // 8 + i * (xs + 4 * nch)
    sts = []
    for p in range(1, nch + 1):
        sts.append(raw[o + (p >> 1)] & 0x0F if p & 1 else raw[o + (p >> 1)] >> 4)
    return ((raw[5 + (i >> 3)] >> (i & 7)) & 1, raw[o] >> 4, sts,
            [s32(raw, o + xs + 4 * c) for c in range(nch)])


def head(raw, i):
    s = slot(raw, i)
    return (s[0], s[1], s[2], s[3][0])       # channel 0 only


def bt63(m, n=0):
    h = m.store.read(63, 13 * n, 13)
    return (h[0], u16(h, 1), u16(h, 3), s32(h, 5), u16(h, 9), u16(h, 11))


def call(m, number, psn, params, now):
    data = bytes((number & 0xFF, number >> 8, psn)) + params
    assert m.execute(bytes((0x40, 0, 7, 0, len(data))) + data, A.ROLE_MAK, BIG, now) == b"\x00"
    return m.execute(b"\x30\x00\x08", A.ROLE_MAK, BIG, now)[6]


def acc(t, outages):
    s = t - T0S
    for a, b in outages:
        lo = a if a > T0S else T0S
        hi = b if b < t else t
        if hi > lo:
            s -= hi - lo
    return s


def ramp(a, b, sid=0, outages=()):
    """What the fake's cumulative source sid gains over [a, b) (meter s)."""
    a = a if a > T0S else T0S
    if sid == 0:
        return acc(b, outages) - acc(a, outages)
    return acc(b, outages) // 3 - acc(a, outages) // 3


def full(a, b=None, st=None, common=0):
    """The slot of an interval [a, a+Q) read from a to b (default a+Q)."""
    b = a + Q if b is None else b
    return (1, common, [st or 0, st or 0], [ramp(a, b), ramp(a, b, 1)])


def read(m, tid, offset, count, now):
    """Partial reads (0x3F) of at most 84 bytes, as a PLC data concentrator
    must do."""
    out = b""
    while count:
        n = count if count < PLC_LIMITS.max_read else PLC_LIMITS.max_read
        req = bytes((0x3F, tid >> 8, tid & 0xFF, offset >> 16, (offset >> 8) & 0xFF,
                     offset & 0xFF, n >> 8, n & 0xFF))
        rsp = m.execute(req, A.ROLE_PLC, PLC_LIMITS, now)
        assert rsp[0] == 0 and (rsp[1] << 8 | rsp[2]) == n
        out += rsp[3:]
        offset += n
        count -= n
    return out


def chunks(m, tid):
    """A table's bytes in 256-byte pieces (no big contiguous copy)."""
    size = m.store.size(tid) or 0
    return [m.store.read(tid, o, min(256, size - o)) for o in range(0, size, 256)]
