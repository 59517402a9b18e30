# The history log (BT74): every event the meter records, with its time,
# sequence number, user and argument [OPT BT74 p.51-53].
#
# BT74 = header (11 bytes) + BT71.5 entries of 12 + BT71.3 bytes:
#   0  flags: b0 order (0 ascending), b1 overflow, b2 list type (1 circular),
#      b3 inhibit overflow
#   1  valid entries UINT16    3  last entry index UINT16
#   5  last sequence UINT32    9  unread entries UINT16
#   entry: LTIME_DATE (UTC, 6) | seq UINT16 (low 16 bits) | user ID UINT16 |
#          event UINT16 (bits 0-11 event ID) | argument [BT71.3]
# User IDs: 0xFFFF nobody logged on, 0xFFFE PLC, 0xFFFD MEP [OPT BT74].
from . import clock

BT71 = 71
BT74 = 74

USER_NONE = 0xFFFF
USER_PLC = 0xFFFE
USER_MEP = 0xFFFD

_HEADER = 11


def log(meter, event, arg=0, user=USER_NONE, t=None):
    """Record `event` at meter time `t` (seconds; default: the meter's clock
    as last advanced). Returns the entry's sequence number, or None when the
    log has no room and overflow is inhibited (or the meter has no log)."""
    store = meter.store
    entries = store.field(BT71, 5, 2)
    arg_len = store.field(BT71, 3, 1)
    if entries == 0 or store.size(BT74) is None:
        return None
    if t is None:
        t = meter.t
    flags = store.field(BT74, 0, 1)
    valid = store.field(BT74, 1, 2)
    last = store.field(BT74, 3, 2)
    seq = (store.field(BT74, 5, 4) + 1) & 0xFFFFFFFF
    unread = store.field(BT74, 9, 2)
    if valid >= entries and flags & 0x08:
        return None                      # full, and overflow inhibited
    index = 0 if valid == 0 else (last + 1) % entries
    size = 12 + arg_len
    entry = (clock.encode_ltime(t) + (seq & 0xFFFF).to_bytes(2, "little")
             + (user & 0xFFFF).to_bytes(2, "little") + (event & 0x0FFF).to_bytes(2, "little")
             + (arg & ((1 << (8 * arg_len)) - 1)).to_bytes(arg_len, "little"))
    store.write(BT74, _HEADER + index * size, entry)
    if valid >= entries:
        flags |= 0x02                    # an unread entry may have been overwritten
    header = bytes((flags | 0x04,)) + (min(valid + 1, entries)).to_bytes(2, "little") \
        + index.to_bytes(2, "little") + seq.to_bytes(4, "little") \
        + (min(unread + 1, entries)).to_bytes(2, "little")
    store.write(BT74, 0, header)
    return seq


def entries(meter):
    """The valid entries, oldest first: (time, seq16, user, event, arg)."""
    store = meter.store
    n = store.field(BT71, 5, 2)
    arg_len = store.field(BT71, 3, 1)
    valid = store.field(BT74, 1, 2)
    last = store.field(BT74, 3, 2)
    size = 12 + arg_len
    out = []
    for k in range(valid):
        i = (last - valid + 1 + k) % n
        raw = store.read(BT74, _HEADER + i * size, size)
        out.append((clock.decode_ltime(raw), raw[6] | raw[7] << 8, raw[8] | raw[9] << 8,
                    (raw[10] | raw[11] << 8) & 0x0FFF, int.from_bytes(raw[12:12 + arg_len], "little")))
    return out
