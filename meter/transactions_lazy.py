# Transactions as Firmware attaches them (docs/transactions.md): meter.txn's
# state (the (number, CRC) last run per request table and its writer's role,
# kept in the nv_part "txn"; the EP61 lock) and write hooks for ET52/ET27.
# The engine, meter/transactions.py (about 4.5 KB of MicroPython heap), loads
# on the first write to a request table, or at boot when one holds a
# complete transaction; a meter that never sees a transaction never pays.
from . import procedures
from . import access
from .device import PLC_LIMITS

ET27 = 2048 + 27
ET52 = 2048 + 52
EP61 = 2048 + 61
REQUEST_TABLES = (ET52, ET27)
NV_NAME = "txn"
MIN_SIZE = 7              # header (5) + trailing number (2)
LOCK_MS = 10000           # EP61 auto-unlock [MEP]


class Transactions:
    """Per-meter state: meter.txn (see attach)."""
    __slots__ = ("plc_limits", "done", "roles", "running", "lock_role", "lock_until", "_nv")

    def __init__(self, plc_limits):
        self.plc_limits = plc_limits
        self.done = {}            # {request table: (number, crc)} of the last one run
        self.roles = {}           # {request table: role of its last writer}
        self.running = False      # no transaction inside a transaction
        self.lock_role = None     # EP61 holder (ROLE_MAK / ROLE_MBK)
        self.lock_until = 0       # driver ms
        self._nv = None           # cached nv_part bytes

    def holder(self, now):
        """The MEP key holding the EP61 lock at `now`, or None."""
        if self.lock_role is not None and now >= self.lock_until:
            self.lock_role = None
        return self.lock_role

    # -- the nv_part: per request table flags(1) number(2) crc(2) role(1) ---
    def nv_get(self):
        b = self._nv
        if b is None:
            out = bytearray(b"\x01")
            for tid in REQUEST_TABLES:
                d = self.done.get(tid)
                num, crc = d if d is not None else (0, 0)
                out += bytes((1 if d is not None else 0, num & 0xFF, num >> 8, crc & 0xFF, crc >> 8,
                              self.roles.get(tid, 0) & 0xFF))
            b = self._nv = bytes(out)
        return b

    def nv_put(self, b):
        if len(b) != 1 + 6 * len(REQUEST_TABLES) or b[0] != 1:
            return                # not ours (or a future format): keep what we have
        for i in range(len(REQUEST_TABLES)):
            tid = REQUEST_TABLES[i]
            o = 1 + 6 * i
            if b[o] & 1:
                self.done[tid] = (b[o + 1] | (b[o + 2] << 8), b[o + 3] | (b[o + 4] << 8))
            else:
                self.done.pop(tid, None)
            if b[o + 5]:
                self.roles[tid] = b[o + 5]
            else:
                self.roles.pop(tid, None)
        self._nv = None


def _hook(meter, tid, offset, data, role, limits, now):
    from . import transactions
    return transactions.on_write(meter, tid, offset, data, role, limits, now)


def resume(meter, now):
    """At boot: when a request table may hold a complete transaction, let
    the engine run it if it has not run yet (transactions.resume)."""
    store = meter.store
    for tid in REQUEST_TABLES:
        size = store.size(tid)
        if size and size >= MIN_SIZE and MIN_SIZE <= store.field(tid, 0, 2) <= size:
            from . import transactions
            return transactions.resume(meter, now)
    return 0


# -- EP61 MEP transaction lock ---------------------------------------------------

def lock_procedure(meter, params, role, now):
    """EP61: params Lock UINT8 (0 unlock, 1 lock). Results: 0 done, 2 bad
    parameter, 3 the other MEP client holds the lock, 5 not a MEP client.
    The client is the MEP key, MAK or MBK: one MEP port here (emulator
    profile). The lock lapses 10 s after the lock call; while it is held,
    ET52 writes by any other key answer 0x08 (transactions.on_write)."""
    t = meter.txn
    if t is None:
        return procedures.UNRECOGNIZED, b""
    if role != access.ROLE_MAK and role != access.ROLE_MBK:
        return procedures.NO_AUTHORIZATION, b""
    if len(params) < 1 or params[0] > 1:
        return procedures.INVALID_PARAMETER, b""
    h = t.holder(now)
    if h is not None and h != role:
        return procedures.CONFLICT, b""
    if params[0]:
        t.lock_role = role
        t.lock_until = now + LOCK_MS
    else:
        t.lock_role = None
    return procedures.COMPLETED, b""


procedures.register(EP61, lock_procedure)


def attach(meter, plc_limits=None, now=None):
    """Give `meter` its transaction tables; with `now`, also resume()."""
    t = meter.txn = Transactions(plc_limits if plc_limits is not None else PLC_LIMITS)
    for tid in REQUEST_TABLES:
        meter.hook_write(tid, _hook)
    meter.nv_part(NV_NAME, t.nv_get, t.nv_put)
    if now is not None:
        resume(meter, now)
    return t
