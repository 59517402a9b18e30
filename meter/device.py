# The meter: one table store, one procedure dispatcher, one clock, reached by
# every port through `execute(request, role, limits, now)`.
#
# `now` is integer milliseconds since the Unix epoch as the driver sees it
# (real time, accelerated or stepped); the meter's own UTC clock is `now` plus
# an offset that BP10 moves, so the host clock is never touched.
from . import services
from . import procedures
from . import clock
from . import events

BT28 = 28
BT52 = 52
BT53 = 53
BT54 = 54
BT55 = 55
ET04 = 2048 + 4
ET04_IDT = 116       # IDT version UINT8 [MEP ET04]


class PortLimits:
    """What one port allows: the largest read and write data, and the user
    ID that log entries record for requests from it [OPT BT74]."""
    __slots__ = ("name", "max_read", "max_write", "user_id")

    def __init__(self, name, max_read, max_write, user_id):
        self.name = name
        self.max_read = max_read
        self.max_write = max_write
        self.user_id = user_id


# MEP: a request or response is at most 476 bytes after the length field
# [MEP p.8]. A read response is code + count(2) + data + digest(8); a write
# request is code + tid(2) + offset(3) + count(2) + data + seq(4) + digest(8).
MEP_MAX_FRAME = 476
MEP_LIMITS = PortLimits("mep", MEP_MAX_FRAME - 3 - 8, MEP_MAX_FRAME - 8 - 12, 0xFFFD)
# PLC: the seed's 84-byte partial read / 75-byte partial write (not confirmed
# by any public source; configurable per profile).
PLC_LIMITS = PortLimits("plc", 84, 75, 0xFFFE)


class Meter:
    __slots__ = ("store", "procs", "clock_offset", "last_psn", "on_save", "on_idt",
                 "t", "user", "powered", "subsystems", "metrology", "tou", "lp", "supply", "_due",
                 "write_hooks", "nv_parts", "pending", "txn", "groups", "banks", "life", "keys")

    def __init__(self, store, procs, clock_offset=0):
        self.store = store
        self.procs = procs
        self.clock_offset = clock_offset    # ms added to the driver's `now`
        self.last_psn = 255                 # so the first PSN may be anything but 255
        self.on_save = None                 # host hook for BP02 "save configuration"
        self.on_idt = None                  # called when the IDT version changes
        self.t = None                       # meter UTC seconds, as of the last advance
        self.user = 0xFFFF                  # user ID of the request being served [OPT BT74]
        self.powered = True
        # Time-based subsystems, in the order they run when due at the same
        # second (see docs/time-model.md). Empty: a meter without metrology.
        self.subsystems = ()
        self.metrology = None
        self.tou = None
        self.lp = None
        self.supply = None
        self._due = None                    # cached earliest due second (see changed())
        # Features of issue 5, each None until its module attaches itself:
        # pending tables, transactions, broadcast groups, code banks, the
        # commissioning lifecycle (see firmware.py).
        self.pending = None
        self.txn = None
        self.groups = None
        self.banks = None
        self.life = None
        self.keys = None                    # the KeyRing, for the change-key procedures (keys.py)
        # {table_id: fn(meter, tid, offset, data, role, limits, now)}: a module
        # that owns a table's write semantics (transactions, ...) answers the
        # write itself; None from the hook means "store it as usual".
        self.write_hooks = None
        # {name: (get() -> bytes, set(bytes))}: state outside the table store
        # that must survive a power cut (docs/persistence.md).
        self.nv_parts = None

    # -- the one entry point of every port -----------------------------------
    def execute(self, request, role, limits, now):
        if self.subsystems:
            self.advance(now)
        self.user = limits.user_id
        try:
            return services.execute(request, role, limits, self, now)
        finally:
            self.user = 0xFFFF          # what runs between requests is the meter's own doing

    def executor(self, limits):
        """`execute` bound to one port, as the optical session expects it."""
        def run(request, role, now):
            return self.execute(request, role, limits, now)
        return run

    # -- simulated time ------------------------------------------------------
    def advance(self, now):
        """Run every subsystem that is due up to `now` (driver ms), in time
        order, each at its own due second. Returns the driver time (ms) at
        which the next one is due, or None: the driver wakes the meter then."""
        t = (now + self.clock_offset) // 1000
        cached = self._due
        if cached is not None and t < cached:
            self.t = t                  # nothing can be due before `cached`
            return cached * 1000 - self.clock_offset
        subs = self.subsystems
        nxt = None
        while subs:
            nxt = None
            first = None
            for s in subs:
                d = s.due(self)
                if d is not None and (nxt is None or d < nxt):
                    nxt = d
                    first = s
            if nxt is None or nxt > t:
                break
            self.t = nxt
            first.run(self, nxt)
        self.t = t
        if nxt is None or nxt <= t:
            self._due = None
            return None
        self._due = nxt
        return nxt * 1000 - self.clock_offset

    def changed(self):
        """Something a subsystem schedules by may have changed (a table
        write, a procedure, the clock, the supply): ask them again."""
        self._due = None

    def physical_ms(self, t):
        """The driver time (ms) at meter time `t` (seconds): what the load
        model and the supply follow, whatever the meter's clock says."""
        return t * 1000 - self.clock_offset

    def set_power(self, on, now):
        """Supply lost (False) or restored (True) at `now`."""
        self.advance(now)
        self._due = None
        if bool(on) == self.powered:
            return
        self.powered = bool(on)
        for s in self.subsystems:
            s.power(self, self.t, self.powered)

    def write_table(self, tid, offset, data, role, limits, now):
        self._due = None
        if tid == procedures.BT07:
            return procedures.initiate(self, offset, data, role, now)
        hooks = self.write_hooks
        if hooks is not None:
            hook = hooks.get(tid)
            if hook is not None:
                answer = hook(self, tid, offset, data, role, limits, now)
                if answer is not None:
                    return answer
        if (tid == BT53 or tid == BT54) and self.tou is not None and data:
            # A calendar or time offset that cannot work is refused whole,
            # before anything is stored (docs/tou.md).
            new = bytearray(self.store.get(tid))
            n = min(len(data), len(new) - offset)
            new[offset:offset + n] = data[:n]
            if self.tou.check_write(self, tid, new, offset, n) is not None:
                return services.R_IAR
        idt = tid == ET04 and offset <= ET04_IDT < offset + len(data)
        old = self.store.field(ET04, ET04_IDT, 1) if idt else 0
        self.store.write(tid, offset, data)
        if idt and self.store.field(ET04, ET04_IDT, 1) != old and self.on_idt is not None:
            self.on_idt()
        events.table_written(self, tid, now)
        return services.R_OK

    def hook_write(self, tid, fn):
        """Let `fn` answer writes to table `tid` (see write_hooks)."""
        if self.write_hooks is None:
            self.write_hooks = {}
        self.write_hooks[tid] = fn

    def nv_part(self, name, get, put):
        """Register state outside the table store that must survive a power
        cut: get() -> bytes, put(bytes) restores it (docs/persistence.md)."""
        if self.nv_parts is None:
            self.nv_parts = {}
        self.nv_parts[name] = (get, put)

    def bump_idt(self):
        """A change of the interface definition (dimensions, LP layout ...):
        step the IDT version, ET04.116, and tell the ports [MEP p.55]."""
        v = self.store.field(ET04, ET04_IDT, 1)
        self.store.set_field(ET04, ET04_IDT, 1, (v + 1) & 0xFF)
        if self.on_idt is not None:
            self.on_idt()

    # -- clock ---------------------------------------------------------------
    def utc(self, now):
        return (now + self.clock_offset) // 1000

    def set_utc(self, seconds, now):
        """Set the meter's clock (BP10, EP16). Subsystems first catch up at
        the old time, then learn of the jump."""
        if self.subsystems:
            self.advance(now)
        old = self.utc(now)
        self._due = None
        self.clock_offset = seconds * 1000 - now
        self.t = seconds
        for s in self.subsystems:
            s.clock_set(self, old, seconds)

    def live(self, tid, now):
        """Bytes of a table computed on read (clocks, present values), else None."""
        if tid != BT52 and tid != BT55:
            if 23 <= tid <= 28 and self.metrology is not None:
                # registers and present values are current at every read
                self.metrology.update(self, self.utc(now))
                if tid == BT28:
                    return self.metrology.live(self, tid, self.utc(now))
            return None
        t = self.utc(now)
        if self.tou is not None:
            # local time, DST flags and the tier/season word: meter/tou.py
            return self.tou.live(self, tid, t)
        if tid == BT52:
            # UTC system clock: LTIME_DATE, then day of week (bits 0-2) and
            # the GMT flag (bit 4) [MEP p.224-225].
            return clock.encode_ltime(t) + bytes((clock.to_civil(t)[6] | 0x10,))
        # Local TOU clock: UTC + the BT53 time-zone offset (INT16 minutes);
        # qualifier bit 5 TZ applied, bit 6 DST applied; then the stored
        # tier/season word [MEP p.229-231]. Without meter.tou there is no DST.
        tz = self.store.field(BT53, 4, 2)
        if tz >= 0x8000:
            tz -= 0x10000
        local = t + tz * 60
        return (clock.encode_ltime(local) + bytes((clock.to_civil(local)[6] | 0x60,))
                + self.store.read(BT55, 7, 2))
