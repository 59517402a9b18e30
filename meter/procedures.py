# Procedures: the BT07 "procedure initiate" / BT08 "procedure response" pair.
#
# A client runs a procedure by writing BT07 = proc(UINT16, LSB first: bits
# 0-11 number, 12-15 response handling) | PSN (UINT8) | parameters, then
# reading BT08 = proc | PSN | result code | response data [MEP p.52-53].
# Two consecutive PSNs must differ: a repeat is refused at the table-write
# level with 0x04 and changes nothing. Procedures run synchronously here, so
# BT08 always holds the final result (C12.19 response-handling selectors are
# accepted and recorded, but the response is always posted).
#
# Registry: number -> function(meter, params, role, now) -> (result, data).
# Catalogue procedures without an entry answer result 6, "unrecognized
# procedure", which is honest: `osgp-meter catalogue` shows which are here.
from . import catalogue as cat
from . import clock
from . import access

BT00 = 0
BT03 = 3
BT07 = 7
BT08 = 8
BT21 = 21
BT23 = 23
BT25 = 25
BT26 = 26
BT63 = 63
BT74 = 74
BT76 = 76
ET04 = 2048 + 4
EP16 = 2048 + 16

COMPLETED = 0
ACCEPTED = 1          # accepted, not complete yet
INVALID_PARAMETER = 2
CONFLICT = 3          # conflicts with the current setup
TIMING = 4
NO_AUTHORIZATION = 5
UNRECOGNIZED = 6

R_OK = b"\x00"
R_ONP = b"\x04"


def initiate(meter, offset, data, role, now):
    """A write to BT07. Returns the table-service response code bytes."""
    store = meter.store
    if offset != 0:
        # Staging parameter bytes ahead of the procedure number is allowed;
        # the procedure runs when a write covers offset 0.
        store.write(BT07, offset, data)
        return R_OK
    if len(data) < 3:
        return R_ONP
    number = (data[0] | (data[1] << 8)) & 0x0FFF
    psn = data[2]
    if psn == meter.last_psn:
        return R_ONP
    store.write(BT07, 0, data)
    result, response = run(meter, number, bytes(data[3:]), role, now)
    max_len = store.field(BT00, 10, 1)
    response = response[:max_len]
    out = bytes((number & 0xFF, number >> 8, psn, result)) + response
    size = store.size(BT08) or len(out)
    store.write(BT08, 0, out + bytes(size - len(out)) if size > len(out) else out)
    meter.last_psn = psn
    return R_OK


def allowed(meter, number, role):
    proc = meter.procs.get(number)
    if proc is None:
        return False
    # RK may set the clock unless ET04.71 bit 0 forbids it [OPT p.13, MEP ET04].
    if role == access.ROLE_RK and (number == 10 or number == EP16):
        return not meter.store.field(ET04, 71, 1) & 1
    return bool(proc[cat.P_CALL] & role)


def run(meter, number, params, role, now):
    fn = REGISTRY.get(number)
    if number not in meter.procs:
        return UNRECOGNIZED, b""
    if not allowed(meter, number, role):
        return NO_AUTHORIZATION, b""
    if fn is None:
        return UNRECOGNIZED, b""
    return fn(meter, params, role, now)


# -- BP00..BP03: restarts and clears -----------------------------------------

def cold_start(meter, params, role, now):
    # Every table back to the profile's initial contents; keys, sequence
    # numbers and the clock survive (they are not tables).
    meter.store.written.clear()
    meter.store.reset(BT00)
    meter.last_psn = 255
    return COMPLETED, b""


def warm_start(meter, params, role, now):
    # RAM is lost, non-volatile tables stay.
    meter.store.reset_where(cat.F_NV, 0)
    return COMPLETED, b""


def save_configuration(meter, params, role, now):
    if meter.on_save is not None:
        meter.on_save(meter)
    return COMPLETED, b""


def clear_data(meter, params, role, now):
    meter.store.reset_where(cat.F_DATA, cat.F_DATA)
    return COMPLETED, b""


# -- BP04/BP05: list pointers ------------------------------------------------
# List selector (C12.19): 1 event log BT76, 2 self-read BT26, 3..6 load-profile
# sets 1..4 (BT63 status), 7 all LP sets, 8 history log BT74, 255 all lists
# except the event log.

def _lists(selector):
    if selector == 1:
        return (("ev", 0),)
    if selector == 2:
        return (("sr", 0),)
    if 3 <= selector <= 6:
        return (("lp", selector - 3),)
    if selector == 7:
        return (("lp", 0), ("lp", 1), ("lp", 2), ("lp", 3))
    if selector == 8:
        return (("hl", 0),)
    if selector == 255:
        return (("sr", 0), ("lp", 0), ("lp", 1), ("lp", 2), ("lp", 3), ("hl", 0))
    return None


# (table, flags offset, valid-entries (offset, size), last index (offset,
# size), unread (offset, size)) for each list header [OPT BT26/BT63/BT74].
def _header(kind, n):
    if kind == "sr":
        return BT26, 0, (1, 1), (2, 1), (5, 1)
    if kind == "lp":
        b = 13 * n
        return BT63, b, (b + 1, 2), (b + 3, 2), (b + 9, 2)
    if kind == "hl":
        return BT74, 0, (1, 2), (3, 2), (9, 2)
    return BT76, 0, (1, 2), (3, 2), (9, 2)


def _present(meter, table):
    size = meter.store.size(table)
    return size is not None and size > 0


def reset_list_pointers(meter, params, role, now):
    if len(params) < 1:
        return INVALID_PARAMETER, b""
    lists = _lists(params[0])
    if lists is None:
        return INVALID_PARAMETER, b""
    store = meter.store
    for kind, n in lists:
        table, flags_at, valid, last, unread = _header(kind, n)
        if not _present(meter, table):
            if len(lists) == 1:
                return CONFLICT, b""
            continue
        store.set_field(table, flags_at, 1, store.field(table, flags_at, 1) & ~0x02)  # overflow
        store.set_field(table, valid[0], valid[1], 0)
        store.set_field(table, last[0], last[1], 0)
        store.set_field(table, unread[0], unread[1], 0)
    return COMPLETED, b""


def update_last_read_entry(meter, params, role, now):
    # Parameters: list selector UINT8, entries read UINT16. Lowers the unread
    # count; asking for more than are unread is refused (state untouched).
    if len(params) < 3:
        return INVALID_PARAMETER, b""
    lists = _lists(params[0])
    if lists is None or len(lists) != 1:
        return INVALID_PARAMETER, b""
    n_read = params[1] | (params[2] << 8)
    table, flags_at, valid, last, unread = _header(lists[0][0], lists[0][1])
    if not _present(meter, table):
        return CONFLICT, b""
    store = meter.store
    left = store.field(table, unread[0], unread[1])
    if n_read > left:
        return INVALID_PARAMETER, b""
    store.set_field(table, unread[0], unread[1], left - n_read)
    store.set_field(table, flags_at, 1, store.field(table, flags_at, 1) & ~0x02)
    return COMPLETED, b""


# -- BP06..BP08: mode and status flags (BT03) --------------------------------

def change_mode(meter, params, role, now):
    # Parameter: mode byte, bit 0 metering, 1 test, 2 meter shop [OPT BT03].
    if len(params) < 1 or params[0] & ~0x07 or params[0] == 0:
        return INVALID_PARAMETER, b""
    meter.store.set_field(BT03, 0, 1, params[0])
    return COMPLETED, b""


def clear_standard_status(meter, params, role, now):
    meter.store.write(BT03, 1, bytes(3))
    return COMPLETED, b""


def clear_manufacturer_status(meter, params, role, now):
    n = meter.store.field(BT00, 17, 1)
    meter.store.write(BT03, 4, bytes(n))
    return COMPLETED, b""


# -- BP09 remote reset: demand reset and self-read ---------------------------

def _register_layout(store):
    """(block size, list of (offset, cum?, cont?, max size, time size)) of BT23."""
    flags = store.field(BT21, 0, 1)
    n_sum = store.field(BT21, 3, 1)
    n_dmd = store.field(BT21, 4, 1)
    n_coin = store.field(BT21, 5, 1)
    occ = store.field(BT21, 6, 1)
    tiers = store.field(BT21, 7, 1)
    t_size = 5 * occ if flags & 0x02 else 0
    cum = 4 if flags & 0x10 else 0
    cont = 4 if flags & 0x20 else 0
    rec = t_size + cum + cont + 4 * occ
    block = 4 * n_sum + n_dmd * rec + n_coin * 4 * occ
    lead = 1 if flags & 0x04 else 0
    return lead, block, tiers + 1, n_sum, n_dmd, t_size, cum, cont, occ, rec


def demand_reset(meter, now):
    store = meter.store
    if not _present(meter, BT23):
        return False
    before = store.get(BT23)
    lead, block, blocks, n_sum, n_dmd, t_size, cum, cont, occ, rec = _register_layout(store)
    regs = bytearray(before)
    if lead:
        regs[0] = (regs[0] + 1) & 0xFF
    for b in range(blocks):
        base = lead + b * block + 4 * n_sum
        for d in range(n_dmd):
            at = base + d * rec
            max_at = at + t_size + cum + cont
            peak = int.from_bytes(regs[max_at:max_at + 4], "little")
            if cum:
                c_at = at + t_size
                total = int.from_bytes(regs[c_at:c_at + 4], "little") + peak
                regs[c_at:c_at + 4] = (total & 0xFFFFFFFF).to_bytes(4, "little")
            regs[at:at + t_size] = bytes(t_size)
            regs[max_at:max_at + 4 * occ] = bytes(4 * occ)
    if _present(meter, BT25):
        store.write(BT25, 0, _stamp(meter, now, store.size(BT25) - len(before)) + before)
    store.write(BT23, 0, regs)
    return True


def _stamp(meter, now, room):
    """The header in front of a register snapshot: [STIME_DATE] [season]."""
    if room <= 0:
        return b""
    t = clock.encode_stime(meter.utc(now))
    return (t + b"\x00")[:room] if room <= 6 else bytes(room - 6) + t + b"\x00"


def self_read(meter, now):
    store = meter.store
    if not _present(meter, BT26) or not _present(meter, BT23):
        return False
    entries = store.field(BT21, 2, 1)
    if entries == 0:
        return False
    regs = store.get(BT23)
    entry_size = (store.size(BT26) - 6) // entries
    head = store.read(BT26, 0, 6)
    valid, last, seq, unread = head[1], head[2], head[3] | (head[4] << 8), head[5]
    index = 0 if valid == 0 else (last + 1) % entries
    overflow = valid == entries
    if entry_size - len(regs) >= 8:
        prefix = (seq + 1 & 0xFFFF).to_bytes(2, "little") + _stamp(meter, now, entry_size - len(regs) - 2)
    else:
        prefix = _stamp(meter, now, entry_size - len(regs))
    store.write(BT26, 6 + index * entry_size, (prefix + regs)[:entry_size])
    flags = head[0] | 0x04 | (0x02 if overflow else 0)
    header = bytes((flags, min(valid + 1, entries), index)) + ((seq + 1) & 0xFFFF).to_bytes(2, "little")
    store.write(BT26, 0, header + bytes((min(unread + 1, entries),)))
    return True


def remote_reset(meter, params, role, now):
    # Parameter: action flags, bit 0 demand reset, bit 1 self-read, bit 2
    # season change (C12.19). Season changes need the TOU calendar, which
    # this build does not run yet: refused as a conflict with the setup.
    if len(params) < 1 or params[0] & ~0x07 or params[0] == 0:
        return INVALID_PARAMETER, b""
    action = params[0]
    if action & 0x04:
        return CONFLICT, b""
    if action & 0x02 and not (_present(meter, BT26) and meter.store.field(BT21, 2, 1)):
        return CONFLICT, b""
    if action & 0x02:
        self_read(meter, now)       # C12.19: the self-read precedes the reset
    if action & 0x01 and not demand_reset(meter, now):
        return CONFLICT, b""
    return COMPLETED, b""


# -- BP10 set date/time, BP11 diagnostics ------------------------------------

def set_date_time(meter, params, role, now):
    # Parameters (C12.19): set mask UINT8 (bit 0 time, bit 1 date, bit 2
    # date/time qualifier), LTIME_DATE (6), qualifier UINT8 (optional).
    if len(params) < 7 or params[0] & ~0x07 or not params[0] & 0x03:
        return INVALID_PARAMETER, b""
    mask = params[0]
    cur = clock.to_civil(meter.utc(now))
    y, mo, d = (2000 + params[1], params[2], params[3]) if mask & 2 else cur[0:3]
    hh, mi, ss = (params[4], params[5], params[6]) if mask & 1 else cur[3:6]
    if (mask & 2 and params[1] > 99) or not clock.valid_civil(y, mo, d, hh, mi, ss):
        return INVALID_PARAMETER, b""
    meter.set_utc(clock.from_civil(y, mo, d, hh, mi, ss), now)
    return COMPLETED, b""


def execute_diagnostics(meter, params, role, now):
    # Emulator self-check: every written table still has its catalogue size
    # and every size expression evaluates. Response: one byte of fault bits
    # (bit 0 size mismatch, bit 1 bad dimension); a fault also raises BT03
    # standard status bit 1 "configuration error".
    store = meter.store
    faults = 0
    for tid, data in store.written.items():
        if len(data) != store.size(tid):
            faults |= 1
    for tid in store.tables:
        if store.size(tid) is None:
            faults |= 2
    if faults:
        store.set_field(BT03, 1, 1, store.field(BT03, 1, 1) | 0x02)
    return COMPLETED, bytes((faults,))


REGISTRY = {
    0: cold_start,
    1: warm_start,
    2: save_configuration,
    3: clear_data,
    4: reset_list_pointers,
    5: update_last_read_entry,
    6: change_mode,
    7: clear_standard_status,
    8: clear_manufacturer_status,
    9: remote_reset,
    10: set_date_time,
    11: execute_diagnostics,
}

IMPLEMENTED = set(REGISTRY)


def register(number, fn):
    """Later subsystems (metrology, pending tables, ...) add their procedures."""
    REGISTRY[number] = fn
    IMPLEMENTED.add(number)
