# The C12 table services every port shares: 0x30, 0x3F, 0x40, 0x4F.
#
# Requests arrive without any port wrapping (no length, sequence number,
# digest or C12.18 checksum): code, big-endian header fields, little-endian
# table data [MEP Table 2.6/2.7]. Each function returns the response bytes:
# a response code, plus count(2, MSB) and data for a successful read.
# Checks come before any change, so a refused request leaves the meter as it
# was.
# A table ID + 4096 whose base table exists is that table's pending copy:
# meter.pending (meter/pending.py) answers it, 0x02 without the feature.

OK = 0x00
ERR = 0x01    # unrecognized request / malformed header
SNS = 0x02    # service not supported (on this port)
ISC = 0x03    # insufficient security clearance
ONP = 0x04    # operation not possible (port size limit; repeated procedure PSN)
IAR = 0x05    # inappropriate action: no such table, write to a read-only table
BSY = 0x06
DNR = 0x07
DLK = 0x08
RNO = 0x09
ISSS = 0x0A   # invalid service sequence state
AUTH = 0x0B   # OSGP: digest check failed
SEQ = 0x0C    # OSGP: sequence number out of window (+ the expected value)

FULL_READ = 0x30
PARTIAL_READ = 0x3F
FULL_WRITE = 0x40
PARTIAL_WRITE = 0x4F

# C12.18 services that exist but are not offered through this path
# (optical-session services are answered by the optical session itself).
_KNOWN_UNSUPPORTED = (
    0x20, 0x21, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3E,
    0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x50, 0x51, 0x52,
    0x57, 0x58, 0x59, 0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6A, 0x6B, 0x70, 0x80,
)

R_ERR = b"\x01"
R_SNS = b"\x02"
R_ISC = b"\x03"
R_ONP = b"\x04"
R_IAR = b"\x05"
R_OK = b"\x00"

PENDING = 4096


def code_name(code):
    return {0: "ok", 1: "error", 2: "service not supported", 3: "insufficient security clearance",
            4: "operation not possible", 5: "inappropriate action requested", 6: "device busy",
            7: "data not ready", 8: "data locked", 9: "renegotiate", 10: "invalid service sequence state",
            11: "digest (authentication) failure", 12: "sequence number error"}.get(code, "code 0x%02X" % code)


def read_response(data):
    n = len(data)
    return bytes((0, n >> 8, n & 0xFF)) + data


def full_read(req, length, role, limits, meter, now):
    # The optical/C12.18 form is 30 tid(2); the MEP guide sends a length too
    # (30 tid(2) len(2)) [MEP Table 2.6]. Both are accepted, the length ignored.
    if length != 3 and length != 5:
        return R_ERR
    tid = (req[1] << 8) | req[2]
    store = meter.store
    entry = store.tables.get(tid)
    if entry is None:
        base = _pending_base(meter, tid)
        if base is None:
            return R_IAR
        if meter.pending is None:
            return R_SNS
        return meter.pending.read(meter, base, 0, None, role, limits, now)
    if not entry[1] & role:
        return R_ISC
    size = store.size(tid)
    if size is None:
        return R_IAR
    if size > limits.max_read:
        return R_ONP
    live = meter.live(tid, now)
    if live is not None:
        return read_response(live)
    return read_response(store.read(tid, 0, size))


def partial_read(req, length, role, limits, meter, now):
    if length != 8:
        return R_ERR
    tid = (req[1] << 8) | req[2]
    store = meter.store
    entry = store.tables.get(tid)
    if entry is None:
        base = _pending_base(meter, tid)
        if base is None:
            return R_IAR
        if meter.pending is None:
            return R_SNS
        return meter.pending.read(meter, base, (req[3] << 16) | (req[4] << 8) | req[5],
                                  (req[6] << 8) | req[7], role, limits, now)
    if not entry[1] & role:
        return R_ISC
    count = (req[6] << 8) | req[7]
    if count > limits.max_read:
        return R_ONP
    offset = (req[3] << 16) | (req[4] << 8) | req[5]
    live = meter.live(tid, now)
    if live is not None:
        chunk = live[offset:offset + count]
        return read_response(chunk + bytes(count - len(chunk)))
    # Bytes past the end of the table come back as zeros, no error [OPT p.9].
    return read_response(store.read(tid, offset, count))


def _pending_base(meter, tid):
    """The base table of a pending copy (ID + 4096) the catalogue has, else None."""
    if tid >= PENDING and meter.store.tables.get(tid - PENDING) is not None:
        return tid - PENDING
    return None


def _write_checks(tid, role, meter):
    store = meter.store
    entry = store.tables.get(tid)
    if entry is None:
        return R_SNS if _pending_base(meter, tid) is not None else R_IAR
    wmask = entry[2]
    if not wmask:
        return R_IAR      # nobody may write it: a read-only table
    if not wmask & role:
        return R_ISC
    if store.size(tid) is None:
        return R_IAR
    return None


def full_write(req, length, role, limits, meter, now):
    if length < 3:
        return R_ERR
    tid = (req[1] << 8) | req[2]
    if meter.pending is not None and tid >= PENDING and tid not in meter.store.tables:
        base = _pending_base(meter, tid)
        if base is not None:
            # pending copy: PED(6) + data, count includes the PED (meter/pending.py)
            count = (req[3] << 8) | req[4] if length >= 5 else 0
            return meter.pending.write(meter, base, 0, req[5:5 + count], count, role, limits,
                                       now, False)
    refused = _write_checks(tid, role, meter)
    if refused is not None:
        return refused
    # A missing or short count field is "undefined, no error" in the guide
    # [MEP Table 2.7]; this emulator defines it as count 0: nothing is written.
    count = (req[3] << 8) | req[4] if length >= 5 else 0
    if count > limits.max_write:
        return R_ONP
    data = req[5:5 + count]
    # Count larger than the table: the extra bytes are ignored; smaller: only
    # `count` bytes are written [MEP Table 2.7].
    return meter.write_table(tid, 0, data, role, limits, now)


def partial_write(req, length, role, limits, meter, now):
    if length < 6:
        return R_ERR
    tid = (req[1] << 8) | req[2]
    offset = (req[3] << 16) | (req[4] << 8) | req[5]
    count = (req[6] << 8) | req[7] if length >= 8 else 0
    if meter.pending is not None and tid >= PENDING and tid not in meter.store.tables:
        base = _pending_base(meter, tid)
        if base is not None:
            # the offset is the table's, not shifted by the PED [OPT p.9]
            return meter.pending.write(meter, base, offset, req[8:8 + count], count, role,
                                       limits, now, True)
    refused = _write_checks(tid, role, meter)
    if refused is not None:
        return refused
    if count > limits.max_write:
        return R_ONP
    if count and offset >= meter.store.size(tid):
        return R_IAR
    return meter.write_table(tid, offset, req[8:8 + count], role, limits, now)


HANDLERS = {
    FULL_READ: full_read,
    PARTIAL_READ: partial_read,
    FULL_WRITE: full_write,
    PARTIAL_WRITE: partial_write,
}


def execute(req, role, limits, meter, now):
    """Run one C12 request; never raises on any input."""
    length = len(req)
    if not length:
        return R_ERR
    handler = HANDLERS.get(req[0])
    if handler is None:
        return R_SNS if req[0] in _KNOWN_UNSUPPORTED else R_ERR
    return handler(req, length, role, limits, meter, now)
