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
from . import events

BT00 = 0
BT03 = 3
BT07 = 7
BT08 = 8
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
    params = bytes(data[3:])
    result, response = run(meter, number, params, role, now)
    if result == COMPLETED or result == ACCEPTED:
        # Event 9 "procedure invoked" [C1219 event 9], after the procedure's
        # own events. Not for BP04/BP05 on the history log: the host's read
        # acknowledgement would otherwise leave an unread entry behind.
        if not (number in (4, 5) and params and params[0] in (8, 255)):
            events.procedure_invoked(meter, number, now)
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
    meter.store.clear()                 # through reset: a commit sees it
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
        if kind == "lp" and meter.lp is not None:
            # The recorder keeps BT63, ET21 and its block in progress
            # consistent; an unconfigured set is a conflict when named alone.
            if not meter.lp.reset_list(meter, n) and len(lists) == 1:
                return CONFLICT, b""
            continue
        table, flags_at, valid, last, unread = _header(kind, n)
        if not _present(meter, table):
            if len(lists) == 1:
                return CONFLICT, b""
            continue
        store.set_field(table, flags_at, 1, store.field(table, flags_at, 1) & ~0x02)  # overflow
        store.set_field(table, valid[0], valid[1], 0)
        store.set_field(table, last[0], last[1], 0)
        store.set_field(table, unread[0], unread[1], 0)
        if kind == "hl":
            events.sync_status(meter)       # BT03 6.6 / 7.4
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
    if lists[0][0] == "hl":
        events.sync_status(meter)           # BT03 6.6 / 7.4
    if lists[0][0] == "lp" and meter.lp is not None:
        meter.lp.list_read(meter, lists[0][1])     # BT03 unread bits, inhibited recording
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

def remote_reset(meter, params, role, now):
    # The register snapshots (BT23 -> BT25/BT26), the demand-reset lockout
    # and the events live in meter/metrology.py, which also serves meters
    # without a metrology subsystem (tables only). Imported on first use.
    from . import metrology
    return metrology.remote_reset(meter, params, role, now)


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

# Alarm and log procedures of meter/events.py: EP03, EP20, EP38, EP42.
REGISTRY.update(events.PROCEDURES)

IMPLEMENTED = set(REGISTRY)


def register(number, fn):
    """Later subsystems (metrology, pending tables, ...) add their procedures."""
    REGISTRY[number] = fn
    IMPLEMENTED.add(number)
