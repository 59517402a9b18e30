# The base of every time-based subsystem of a meter (metrology, TOU, load
# profile, supply). See docs/time-model.md.
#
# A subsystem is a per-meter object; the meter calls, from Meter.advance:
#   due(meter)                -> the next meter second it must run at, or None
#   run(meter, t)             -> do what is due at meter second t (t == due)
# and, around those:
#   clock_set(meter, old, new) the clock was set (BP10, EP16): old -> new
#   power(meter, t, on)        the supply was lost (on=False) or restored
# Everything a subsystem needs to survive a power cut lives in its tables;
# the object holds only what a real meter keeps in RAM.


class Subsystem:
    __slots__ = ()

    def due(self, meter):
        return None

    def run(self, meter, t):
        pass

    def clock_set(self, meter, old, new):
        pass

    def power(self, meter, t, on):
        pass


ORDER = ("supply", "pending", "tou", "metrology", "lp")
# Subsystems that are in meter.subsystems only while they have work (pending
# tables: meter/pending.py) manage their membership; install keeps it.
ON_DEMAND = ("pending",)


def install(meter, name, subsystem):
    """Attach a subsystem as meter.<name> and keep meter.subsystems in the
    canonical order (supply, pending, tou, metrology, lp)."""
    setattr(meter, name, subsystem)
    old = meter.subsystems
    subs = []
    for n in ORDER:
        s = getattr(meter, n)
        if s is not None and (n not in ON_DEMAND or s in old):
            subs.append(s)
    meter.subsystems = tuple(subs)
    meter.changed()
