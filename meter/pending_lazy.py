# The pending-tables feature as Firmware attaches it: a small stand-in for
# meter.pending that loads meter/pending.py (about 11 KB of MicroPython
# heap) only when a pending copy, BP12-BP15 or a saved pending state is
# first used. Until then nothing is pending and the answers are the ones
# pending.py would give. See docs/pending-tables.md.
from . import procedures

EMPTY_NV = b"\x01\x00"      # pending.py's NV record of "nothing pending"


def real(meter):
    """meter.pending as the full object (loading it on first use)."""
    p = meter.pending
    if isinstance(p, Lazy):
        from . import pending
        obj = pending.Pending(meter)
        meter.pending = obj
        return obj
    return p


class Lazy:
    __slots__ = ("meter",)
    entries = ()                # nothing pending until the real object exists

    def __init__(self, meter):
        self.meter = meter

    def read(self, *args):
        return real(self.meter).read(*args)

    def write(self, *args):
        return real(self.meter).write(*args)

    def nv_get(self):
        p = self.meter.pending
        return EMPTY_NV if p is self else p.nv_get()

    def nv_put(self, raw):
        p = self.meter.pending
        if p is self and (not raw or raw == EMPTY_NV):
            return
        real(self.meter).nv_put(raw)


def _proc(number):
    def run(meter, params, role, now):
        if meter.pending is None:
            return procedures.UNRECOGNIZED, b""
        real(meter)             # importing pending.py registers the real BP12-BP15
        return procedures.REGISTRY[number](meter, params, role, now)
    return run


for _n in (12, 13, 14, 15):
    if _n not in procedures.REGISTRY:
        procedures.register(_n, _proc(_n))


def attach(meter):
    lazy = Lazy(meter)
    meter.pending = lazy
    meter.nv_part("pending", lazy.nv_get, lazy.nv_put)
    return lazy
