# Transactions: a list of C12 requests written into a request table and run
# all-or-nothing when its trailing transaction number is written
# [MEP p.43-50, p.130-132] (reference/osgp-application.md §5.2).
#
#   ET52 -> ET53   MEP port (documented)
#   ET27 -> ET28   PLC port (inferred; emulator profile: same layout)
#
# Table bytes, all LSB first:
#   size UINT16 (the whole transaction, this field included) | type UINT8 |
#   number UINT16 | [type 3: count UINT8, group IDs UINT16[count]] |
#   records {length UINT16, C12 message (code + MSB-first header + data,
#   no seq/digest)} ... | number UINT16 again
# Request types 0 (requests) and 3 (group broadcast); response types 1 (all
# answered 00, committed), 2 (partial: an error record, a zero-length record
# or a refused procedure; nothing of it stays), 4 (group broadcast denied).
# Response records: length | code [count(2, MSB) data].
#
# Emulator profile (docs/transactions.md): a completing write of a malformed
# list answers 0x05 and stores nothing; a procedure call (BT07 at offset 0)
# must be the last request; a (number, CRC-16/X-25) already run does not run
# again, and that record survives a power cut (nv_part "txn"); EP61 locks
# ET52 for one MEP key (MAK or MBK) for 10 s, others' writes answer 0x08.
# This module is the engine; meter/transactions_lazy.py holds meter.txn and
# loads it on first use.
from . import services
from . import procedures
from . import events
from . import access
from . import groups
from .crc import crc16_x25
from .device import MEP_LIMITS
# meter.txn's state, EP61 and attach live in the small always-loaded part:
from .transactions_lazy import (Transactions, attach, lock_procedure, ET27, ET52, EP61,  # noqa: F401
                                REQUEST_TABLES, NV_NAME, MIN_SIZE, LOCK_MS)

BT07 = 7
BT08 = 8
ET28 = 2048 + 28
ET53 = 2048 + 53

RESPONSE_TABLE = {ET52: ET53, ET27: ET28}

REQUESTS = 0
RESPONSES = 1
PARTIAL = 2
GROUP = 3
DENIED = 4


R_OK = services.R_OK
R_ONP = services.R_ONP
R_IAR = services.R_IAR
R_DLK = b"\x08"           # C12.18 "data locked": ET52 is EP61-locked by the other client

_WRITES = (services.FULL_WRITE, services.PARTIAL_WRITE)


# -- decoding ------------------------------------------------------------------

def decode(buf):
    """Split transaction bytes (exactly `size` long) into (type, number,
    groups, records), or None when the structure does not hold: size field,
    trailing number, type-3 group list, record lengths that end exactly at
    the trailing number. Used for requests and responses alike."""
    n = len(buf)
    if n < MIN_SIZE or (buf[0] | (buf[1] << 8)) != n:
        return None
    number = buf[3] | (buf[4] << 8)
    if buf[n - 2] != buf[3] or buf[n - 1] != buf[4]:
        return None
    typ = buf[2]
    end = n - 2
    pos = 5
    groups = None
    if typ == GROUP:
        if pos >= end:
            return None
        count = buf[pos]
        pos += 1
        if pos + 2 * count > end:
            return None
        groups = []
        for i in range(count):
            groups.append(buf[pos + 2 * i] | (buf[pos + 2 * i + 1] << 8))
        pos += 2 * count
    records = []
    while pos < end:
        if pos + 2 > end:
            return None
        length = buf[pos] | (buf[pos + 1] << 8)
        pos += 2
        if pos + length > end:
            return None
        records.append(bytes(buf[pos:pos + length]))
        pos += length
    return typ, number, groups, records


def is_call(req):
    """A write covering BT07 offset 0: it runs a procedure."""
    if len(req) < 3 or req[1] != 0 or req[2] != BT07:
        return False
    if req[0] == services.FULL_WRITE:
        return True
    return req[0] == services.PARTIAL_WRITE and len(req) >= 6 and not (req[3] or req[4] or req[5])


def parse(buf):
    """A request transaction (type 0 or 3) as decode() gives it, or None
    when it is malformed: another type, no record, an empty record, a
    group list that is empty or holds 0x0000 (invalid), or a procedure call
    that is not the last request (emulator profile)."""
    got = decode(buf)
    if got is None:
        return None
    typ, number, groups, records = got
    if typ != REQUESTS and typ != GROUP:
        return None
    if not records or (groups is not None and (not groups or 0 in groups)):
        return None
    last = len(records) - 1
    for i in range(len(records)):
        if not records[i] or (i != last and is_call(records[i])):
            return None
    return got


def response(typ, number, answers):
    """Response table bytes: header, records {length, answer}, number."""
    body = bytearray()
    for a in answers:
        body += bytes((len(a) & 0xFF, len(a) >> 8))
        body += a
    size = MIN_SIZE + len(body)
    return (bytes((size & 0xFF, size >> 8, typ, number & 0xFF, number >> 8)) + bytes(body)
            + bytes((number & 0xFF, number >> 8)))


def complete(buf, size):
    """The transaction in table bytes `buf` (table `size` long) when its
    trailing number equals the leading one, else None."""
    s = buf[0] | (buf[1] << 8)
    if s < MIN_SIZE or s > size or buf[s - 2] != buf[3] or buf[s - 1] != buf[4]:
        return None
    return bytes(buf[0:s])


# -- groups ----------------------------------------------------------------------

def member(meter, ids):
    """Does this meter belong to one of the group IDs `ids`? ET08 through
    meter/groups.py: 0xYYFF every sub-group of YY, 0xFFYY and 0xFFFF every
    meter, 0x0000 nobody."""
    for g in ids:
        if groups.member(meter, g):
            return True
    return False


# -- running ---------------------------------------------------------------------

def _snapshot(meter):
    parts = None
    nv = meter.nv_parts
    if nv:
        parts = {}
        for name in nv:
            if name != NV_NAME:
                parts[name] = bytes(nv[name][0]())
    return meter.store.snapshot(), parts


def _restore(meter, snap):
    """Every table and registered nv_part back to the snapshot."""
    saved, parts = snap
    store = meter.store
    written = store.written
    for tid in list(written):
        if tid not in saved:
            store.reset(tid)
    for _ in range(2):          # twice when a dimension table moved sizes back
        again = False
        for tid in saved:
            w = written.get(tid)
            b = saved[tid]
            if w is None or w != b:
                store.write(tid, 0, b)
                w = written.get(tid)
                again = again or w is None or len(w) != len(b)
        if not again:
            break
    if parts:
        nv = meter.nv_parts
        for name in parts:
            if name in nv and nv[name][0]() != parts[name]:
                nv[name][1](parts[name])
    meter.changed()


def _execute(meter, records, role, limits, now, cap):
    """Run the records in order through the table services; on the first
    failure the rest get zero-length records and everything is undone.
    Returns (failed, answers)."""
    store = meter.store
    snap = None
    for req in records:
        if req[0] in _WRITES:
            snap = _snapshot(meter)
            break
    answers = []
    failed = False
    proc_failed = False
    used = MIN_SIZE
    n = len(records)
    for i in range(n):
        if failed:
            answers.append(b"")
            continue
        req = records[i]
        r = services.execute(req, role, limits, meter, now)
        # Room for this answer and an error record for each one after it.
        if r[0] != 0:
            failed = True
        elif used + 2 + len(r) + 3 * (n - i - 1) > cap:
            r = R_ONP               # the answers do not fit the response table
            failed = True
        elif is_call(req) and store.field(BT08, 3, 1) > procedures.ACCEPTED:
            failed = proc_failed = True
        answers.append(r)
        used += 2 + len(r)
    if failed and snap is not None:
        if proc_failed:
            # A refused procedure changed nothing but its report, BT07/BT08
            # (and the PSN): they stay, as outside a transaction.
            keep = (bytes(store.get(BT07)), bytes(store.get(BT08)))
            _restore(meter, snap)
            store.write(BT07, 0, keep[0])
            store.write(BT08, 0, keep[1])
        else:
            _restore(meter, snap)
    return failed, answers


def _run(meter, tid, body, parsed, crc, role, limits, now):
    t = meter.txn
    store = meter.store
    typ, number, groups, records = parsed
    rtid = RESPONSE_TABLE[tid]
    cap = store.size(rtid) or 0
    if typ == GROUP and not member(meter, groups):
        out = response(DENIED, number, ())
    else:
        t.running = True
        try:
            failed, answers = _execute(meter, records, role, limits, now, cap)
        finally:
            t.running = False
        out = response(PARTIAL if failed else RESPONSES, number, answers)
        if len(out) > cap:          # only when ET11 makes the response table the smaller
            out = response(PARTIAL, number, ())
    if len(out) < cap:
        out += bytes(cap - len(out))
    store.write(rtid, 0, out)
    t.done[tid] = (number, crc)
    t._nv = None


def on_write(meter, tid, offset, data, role, limits, now):
    """The write hook of ET52/ET27 (transactions_lazy._hook): store the
    bytes; when they complete a transaction, run it. Returns the write's
    response code."""
    t = meter.txn
    if t.running:
        return R_IAR                # a transaction may not write a request table
    if tid == ET52:
        h = t.holder(now)
        if h is not None and h != role:
            return R_DLK
    store = meter.store
    size = store.size(tid) or 0
    if size < MIN_SIZE:
        return None                 # no room for a transaction: a plain table
    n = len(data)
    if offset + n > size:
        n = size - offset
    if n <= 0:
        return None
    buf = bytearray(store.get(tid))
    buf[offset:offset + n] = data[0:n]
    s = buf[0] | (buf[1] << 8)
    if offset < 2 and s and (s < MIN_SIZE or s > size):
        return R_IAR                # a size that cannot be: refused, nothing stored
    body = parsed = None
    if offset < s <= offset + n:    # this write reaches the transaction's last byte
        body = complete(buf, size)
        if body is not None:
            parsed = parse(body)
            if parsed is None:
                return R_IAR        # malformed list: refused, nothing stored or run
    store.write(tid, offset, data[0:n])
    if t.roles.get(tid) != role:
        t.roles[tid] = role
        t._nv = None
    events.table_written(meter, tid, now)
    if parsed is not None:
        crc = crc16_x25(body)
        if t.done.get(tid) != (parsed[1], crc):
            _run(meter, tid, body, parsed, crc, role, limits, now)
    return R_OK


# Role assumed at boot when the last writer is not on record (an image).
_DEFAULT_ROLE = {ET52: access.ROLE_MAK, ET27: access.ROLE_PLC}


def resume(meter, now):
    """At boot: run a complete request transaction that has not run yet
    (its number and CRC are not on record), with the recorded writer's role
    and the port's limits. Returns how many ran."""
    t = meter.txn
    if t is None:
        return 0
    store = meter.store
    ran = 0
    for tid in REQUEST_TABLES:
        size = store.size(tid)
        if not size:
            continue
        body = complete(store.get(tid), size)
        parsed = parse(body) if body is not None else None
        if parsed is None:
            continue
        crc = crc16_x25(body)
        if t.done.get(tid) == (parsed[1], crc):
            continue
        limits = MEP_LIMITS if tid == ET52 else t.plc_limits
        if meter.subsystems:
            meter.advance(now)
        meter.user = limits.user_id
        try:
            _run(meter, tid, body, parsed, crc, t.roles.get(tid) or _DEFAULT_ROLE[tid], limits, now)
        finally:
            meter.user = 0xFFFF
        ran += 1
    return ran
