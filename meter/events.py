# Events and alarms: the history log (BT74), its alternate (ET79), critical
# events (ET18, ET48), and the BT03 alarm bits. See docs/events-and-supply.md.
#
# BT74 = header (11 bytes) + BT71.5 entries of 12 + BT71.3 bytes [OPT p.51-53]:
#   0  flags: b0 order (0 ascending), b1 overflow, b2 list type (1 circular),
#      b3 inhibit overflow (copied from BT71.0 b3)
#   1  valid entries UINT16    3  last entry index UINT16
#   5  last sequence UINT32 (never reset)    9  unread entries UINT16
#   entry: LTIME_DATE (UTC, 6) | seq UINT16 (low 16 bits) | user ID UINT16 |
#          event UINT16 (bits 0-11 event ID) | argument [BT71.3]
# User IDs: 0xFFFF nobody logged on, 0xFFFE PLC, 0xFFFD MEP [OPT BT74].
#
# Emulator profile (documented in docs/events-and-supply.md):
# * BT73 decides what is logged: an event whose bit is clear is not logged;
#   event 9 (procedure invoked) also needs the procedure's bit, event 10
#   (table written) the table's bit.
# * ET79 (same layout, ET11.80 entries) mirrors every logged *critical* event
#   (ET18) with the same sequence number as its BT74 entry.
# * A critical event also waits in ET48 (last ET11.23 {time, event, arg}) and
#   raises BT03 6.7 until EP38 acknowledges it.
# * BT03 6.6 = BT74 overflow flag, 7.4 = BT74 has unread entries.
from . import clock

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_BT00 = const(0)
_BT03 = const(3)
_BT07 = const(7)
_BT71 = const(71)
_BT73 = const(73)
_BT74 = const(74)
_ET11 = const(2059)
_ET18 = const(2066)
_ET48 = const(2096)
_ET79 = const(2127)
_PENDING = const(4096)

BT74 = const(74)
ET79 = const(2127)
USER_NONE = const(0xFFFF)
USER_PLC = const(0xFFFE)
USER_MEP = const(0xFFFD)

_HEADER = const(11)
_CRIT_SIZE = const(10)

# BT03 bits kept here: 6.6 event log overflow pending (= BT74 overflow), 6.7
# "mfg log entry available" (= critical events await EP38), 7.4 event log
# unread entries (= BT74 unread > 0); std bit 12 cover removed (EP03).


# -- bit sets (BT72 / BT73 / ET18 form) ----------------------------------------

def _bit(store, tid, off, nbytes, n):
    if n < 0 or (n >> 3) >= nbytes:
        return False
    return bool((store.field(tid, off + (n >> 3), 1) >> (n & 7)) & 1)


def _event_bit(store, tid, event):
    """Standard bit n = event n (BT71.1 bytes), then manufacturer bit n =
    event 2048 + n (BT71.2 bytes)."""
    n_std = store.field(_BT71, 1, 1)
    if event >= 2048:
        return _bit(store, tid, n_std, store.field(_BT71, 2, 1), event - 2048)
    return _bit(store, tid, 0, n_std, event)


def monitored(meter, event):
    """Does BT73 let `event` into the history log? (No BT73: everything.)"""
    store = meter.store
    if store.size(_BT73) is None:
        return True
    return _event_bit(store, _BT73, event)


def critical(meter, event):
    """Is `event` critical (ET18)? (No ET18: nothing is.)"""
    store = meter.store
    if store.size(_ET18) is None:
        return False
    return _event_bit(store, _ET18, event)


def _bt73_set(store, first, n_std_at, n_mfg_at, number):
    """Table / procedure bit sets of BT73, after the two event bit sets."""
    if store.size(_BT73) is None:
        return True
    off = store.field(_BT71, 1, 1) + store.field(_BT71, 2, 1) + first
    n_std = store.field(_BT00, n_std_at, 1)
    if number >= 2048:
        return _bit(store, _BT73, off + n_std, store.field(_BT00, n_mfg_at, 1), number - 2048)
    return _bit(store, _BT73, off, n_std, number)


def table_monitored(meter, tid):
    store = meter.store
    if tid >= _PENDING:
        tid -= _PENDING
    return _bt73_set(store, 0, 13, 14, tid)


def procedure_monitored(meter, number):
    store = meter.store
    first = store.field(_BT00, 13, 1) + store.field(_BT00, 14, 1)
    return _bt73_set(store, first, 15, 16, number)


# -- alarms (BT03) --------------------------------------------------------------

def alarm(meter, byte, bit, on):
    """Set (on) or clear a BT03 bit: `byte` is the BT03 offset (1-2 standard
    status, 3 extended standard, 4.. manufacturer), `bit` 0-7. Returns True
    when the bit changed; a byte past the end of BT03 is ignored."""
    store = meter.store
    size = store.size(_BT03)
    if size is None or byte >= size or byte < 0:
        return False
    v = store.field(_BT03, byte, 1)
    new = (v | (1 << bit)) if on else (v & ~(1 << bit))
    if new == v:
        return False
    store.set_field(_BT03, byte, 1, new)
    return True


def alarm_set(meter, byte, bit):
    store = meter.store
    size = store.size(_BT03)
    return size is not None and byte < size and bool((store.field(_BT03, byte, 1) >> bit) & 1)


def sync_status(meter):
    """BT03 6.6 / 7.4 from the BT74 header (overflow flag, unread count)."""
    store = meter.store
    if store.size(_BT74) is None:
        return
    alarm(meter, 6, 6, store.field(_BT74, 0, 1) & 0x02)
    alarm(meter, 7, 4, store.field(_BT74, 9, 2) != 0)


# -- the logs -------------------------------------------------------------------

def _capacity(store, tid):
    if store.size(tid) is None:
        return 0
    if tid == _ET79:
        return store.field(_ET11, 80, 2)
    return store.field(_BT71, 5, 2)


def _append(store, tid, entries, t, seq, user, event, arg):
    """One entry into a circular log; False when dropped (full of unread
    entries and overflow inhibited, or no room at all)."""
    if entries == 0:
        return False
    arg_len = store.field(_BT71, 3, 1)
    inhibit = store.field(_BT71, 0, 1) & 0x08
    flags = store.field(tid, 0, 1)
    valid = store.field(tid, 1, 2)
    last = store.field(tid, 3, 2)
    unread = store.field(tid, 9, 2)
    if unread >= entries:
        # an unread entry would be lost: overflow [C12.19 list semantics]
        flags |= 0x02
        if inhibit:
            store.set_field(tid, 0, 1, flags | 0x0C)
            return False
    index = 0 if valid == 0 else (last + 1) % entries
    size = 12 + arg_len
    entry = (clock.encode_ltime(t) + (seq & 0xFFFF).to_bytes(2, "little")
             + (user & 0xFFFF).to_bytes(2, "little") + (event & 0x0FFF).to_bytes(2, "little")
             + (arg & ((1 << (8 * arg_len)) - 1)).to_bytes(arg_len, "little"))
    store.write(tid, _HEADER + index * size, entry)
    flags = (flags & ~0x08) | 0x04 | (0x08 if inhibit else 0)
    header = (bytes((flags,)) + (valid + 1 if valid < entries else entries).to_bytes(2, "little")
              + index.to_bytes(2, "little") + (seq & 0xFFFFFFFF).to_bytes(4, "little")
              + (unread + 1 if unread < entries else entries).to_bytes(2, "little"))
    store.write(tid, 0, header)
    return True


def _pend_critical(meter, t, event, arg):
    """Keep a critical event in ET48 until EP38; the oldest drops out when
    all ET11.23 records are taken. Raises BT03 6.7."""
    store = meter.store
    if store.size(_ET48) is not None:
        n = store.field(_ET11, 23, 1)
        rec = (clock.encode_ltime(t) + (event & 0xFFFF).to_bytes(2, "little")
               + (arg & 0xFFFF).to_bytes(2, "little"))
        free = None
        for i in range(n):
            if store.field(_ET48, i * _CRIT_SIZE + 6, 2) == 0:
                free = i
                break
        if free is None and n:
            store.write(_ET48, 0, store.read(_ET48, _CRIT_SIZE, (n - 1) * _CRIT_SIZE))
            free = n - 1
        if free is not None:
            store.write(_ET48, free * _CRIT_SIZE, rec)
    alarm(meter, 6, 7, True)


def log(meter, event, arg=0, user=None, t=None):
    """Record `event` at meter time `t` (seconds; default: meter.t) for
    `user` (default: meter.user, the port being served). Returns the entry's
    sequence number, or None when nothing was logged (BT73 bit clear, no
    log, or full with overflow inhibited). A critical event (ET18) is also
    mirrored into ET79 and kept in ET48, whether or not BT73 logs it."""
    store = meter.store
    if user is None:
        user = meter.user
    if t is None:
        t = meter.t if meter.t is not None else 0
    seq = None
    crit = critical(meter, event)
    if monitored(meter, event) and store.size(_BT74) is not None:
        nxt = (store.field(_BT74, 5, 4) + 1) & 0xFFFFFFFF
        if _append(store, _BT74, _capacity(store, _BT74), t, nxt, user, event, arg):
            seq = nxt
            if crit:
                _append(store, _ET79, _capacity(store, _ET79), t, nxt, user, event, arg)
        sync_status(meter)
    if crit:
        _pend_critical(meter, t, event, arg)
    return seq


def _t(meter, now):
    if now is not None:
        return meter.utc(now)
    return meter.t if meter.t is not None else 0


def procedure_invoked(meter, number, now=None):
    """Event 9 for a procedure run through BT07 (if BT73 monitors it)."""
    number &= 0x0FFF
    if procedure_monitored(meter, number):
        return log(meter, 9, number, None, _t(meter, now))
    return None


def table_written(meter, tid, now=None):
    """Event 10 after a successful table write from a port. BT07 writes log
    event 9 instead (procedures.initiate). The argument is the table ID as
    addressed (a pending copy keeps its +4096, bit 12)."""
    if tid == _BT07 or not table_monitored(meter, tid):
        return None
    return log(meter, 10, tid, None, _t(meter, now))


def time_changed(meter, old, new):
    """Events 3 (stamped with the old time) and 4 (the new time)."""
    log(meter, 3, 0, None, old)
    log(meter, 4, 0, None, new)


def clear_log(meter, tid):
    """Empty a log: entries, valid, last index, unread and overflow; the
    last sequence number is kept (never reset)."""
    store = meter.store
    size = store.size(tid)
    if size is None:
        return False
    seq = store.field(tid, 5, 4)
    flags = 0x04 | (store.field(_BT71, 0, 1) & 0x08)
    store.write(tid, 0, bytes((flags,)) + bytes(4) + seq.to_bytes(4, "little") + bytes(size - 9))
    return True


# -- procedures (registered by procedures.py) -------------------------------------

def clear_cover_alarm(meter, params, role, now):
    # EP03: clears BT03 standard status bit 12 (cover removed). No parameters.
    alarm(meter, 2, 4, False)
    return 0, b""


def clear_alarms(meter, params, role, now):
    # EP20: std_mask UINT16 (BT03 1-2), std_ext_mask UINT8 (BT03 3), then
    # up to BT00.17 bytes of manufacturer mask (BT03 4..); 1 = clear.
    store = meter.store
    n_mfg = store.field(_BT00, 17, 1)
    if len(params) < 3 or len(params) - 3 > n_mfg:
        return 2, b""
    size = store.size(_BT03)
    if size is None:
        return 3, b""
    masks = bytes(params)
    for i in range(len(masks)):
        if masks[i] and 1 + i < size:
            store.set_field(_BT03, 1 + i, 1, store.field(_BT03, 1 + i, 1) & ~masks[i])
    return 0, b""


def acknowledge_critical(meter, params, role, now):
    # EP38: no parameters. Empties ET48, marks ET79 read (unread 0, overflow
    # cleared) and clears BT03 6.7.
    store = meter.store
    size = store.size(_ET48)
    if size is not None:
        store.write(_ET48, 0, bytes(size))
    if store.size(_ET79) is not None:
        store.set_field(_ET79, 9, 2, 0)
        store.set_field(_ET79, 0, 1, store.field(_ET79, 0, 1) & ~0x02)
    alarm(meter, 6, 7, False)
    return 0, b""


def clear_history_logs(meter, params, role, now):
    # EP42: log UINT8, 0 both, 1 BT74, 2 ET79. Then event 16 is logged.
    if len(params) < 1 or params[0] > 2:
        return 2, b""
    which = params[0]
    store = meter.store
    tids = (_BT74, _ET79) if which == 0 else ((_BT74,) if which == 1 else (_ET79,))
    for tid in tids:
        if store.size(tid) is None:
            return 3, b""
    for tid in tids:
        clear_log(meter, tid)
    sync_status(meter)
    log(meter, 16, 0, None, _t(meter, now))
    return 0, b""


PROCEDURES = {
    2051: clear_cover_alarm,        # EP03
    2068: clear_alarms,             # EP20
    2086: acknowledge_critical,     # EP38
    2090: clear_history_logs,       # EP42
}


# Reading the logs back (entries, decode, render, pending_critical ...) is
# in events_read.py: the meter only writes its logs, so it does not load
# that code; events.entries(...) etc. still work, loaded on first use.
def __getattr__(name):
    if name[0] != "_":          # not __path__ & co: the import machinery asks those
        from . import events_read
        if hasattr(events_read, name):
            return getattr(events_read, name)
    raise AttributeError(name)
