# Reading the history logs back (BT74, ET79) and the critical events
# waiting in ET48: what a host, a test or a display wants; the meter itself
# only writes them (events.py, which loads this module on first use of
# events.entries, .decode, .render ...). Layouts in events.py.
from . import clock
from .events import BT74, USER_NONE, USER_PLC, USER_MEP, _capacity

_BT71 = 71
_ET11 = 2048 + 11
_ET48 = 2048 + 48
_HEADER = 11
_CRIT_SIZE = 10


def _entry(e, seq32, arg_len):
    s16 = e[6] | e[7] << 8
    return (clock.decode_ltime(e), (seq32 - (((seq32 & 0xFFFF) - s16) & 0xFFFF)) & 0xFFFFFFFF,
            e[8] | e[9] << 8, (e[10] | e[11] << 8) & 0x0FFF,
            int.from_bytes(e[12:12 + arg_len], "little"))


def _walk(head, n, size, arg_len, read):
    """Entries oldest first from an 11-byte header and read(offset, size)."""
    valid = head[1] | head[2] << 8
    last = head[3] | head[4] << 8
    seq32 = int.from_bytes(head[5:9], "little")
    if valid > n:
        valid = n
    out = []
    for k in range(valid):
        out.append(_entry(read(_HEADER + ((last - valid + 1 + k) % n) * size, size), seq32, arg_len))
    return out


def decode(raw, arg_len):
    """A BT74/ET79 image -> (flags, unread, entries oldest first), entries as
    (time, seq, user, event, arg) with the full 32-bit sequence number
    rebuilt from the header. Pure: the host uses it on bytes it read."""
    if len(raw) < _HEADER:
        return 0, 0, []
    size = 12 + arg_len
    n = (len(raw) - _HEADER) // size
    got = _walk(raw, n, size, arg_len, lambda at, c: raw[at:at + c]) if n else []
    return raw[0], raw[9] | raw[10] << 8, got


def entries(meter, tid=BT74):
    """The valid entries of a log, oldest first: (time, seq, user, event, arg)."""
    store = meter.store
    n = _capacity(store, tid)
    if n == 0:
        return []
    arg_len = store.field(_BT71, 3, 1)
    return _walk(store.read(tid, 0, _HEADER), n, 12 + arg_len, arg_len,
                 lambda at, c: store.read(tid, at, c))


def pending_critical(meter):
    """The unacknowledged critical events in ET48: [(time, event, arg)]."""
    store = meter.store
    out = []
    if store.size(_ET48) is None:
        return out
    for i in range(store.field(_ET11, 23, 1)):
        rec = store.read(_ET48, i * _CRIT_SIZE, _CRIT_SIZE)
        ev = rec[6] | rec[7] << 8
        if ev:
            out.append((clock.decode_ltime(rec), ev, rec[8] | rec[9] << 8))
    return out


def user_name(user):
    if user == USER_NONE:
        return "-"
    if user == USER_PLC:
        return "PLC"
    if user == USER_MEP:
        return "MEP"
    return "user%d" % user


def format_entry(entry, names=None):
    """'2026-11-26 12:00:00  #123  MEP     Procedure Invoked (9)  arg=10'."""
    t, seq, user, event, arg = entry
    c = clock.to_civil(t)
    name = names.get(event) if names else None
    return "%04d-%02d-%02d %02d:%02d:%02d  #%d  %-7s %s (%d)  arg=%d" % (
        c[0], c[1], c[2], c[3], c[4], c[5], seq, user_name(user),
        name if name else "Event", event, arg)


def render(meter, names=None, tid=BT74):
    """The log as text lines, oldest first; `names` maps event -> name (the
    host passes the catalogue's; the core has none)."""
    return [format_entry(e, names) for e in entries(meter, tid)]
