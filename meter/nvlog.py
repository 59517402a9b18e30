# The non-volatile log's record codec: what a commit looks like on disk or
# flash, shared by the host's state directory, the fleet database and the
# board's flash (docs/persistence.md).
#
# A record is one atomic commit, framed so that a torn write (power cut in
# the middle) is recognised and ignored:
#
#   0   2  magic b"NV"
#   2   1  kind: K_COMMIT (changes since the previous record) or
#             K_SNAPSHOT (the whole non-volatile state)
#   3   1  format version (1)
#   4   4  seq, UINT32 LE: commit number, +1 per record
#   8   4  n, UINT32 LE: payload length
#   12  n  payload: entries, below
#   12+n 4 CRC-32 (IEEE 802.3, as zlib/binascii) of bytes 0 .. 12+n, LE
#
# Payload entries, back to back (integers little-endian):
#   E_TABLE  1 | tid u16 | size u32 | offset u32 | count u32 | count bytes
#            the table is `size` bytes long; these bytes are at `offset`
#   E_RESET  2 | tid u16
#            the table is back to its profile image / default
#   E_PART   3 | name length u8 | name (ASCII) | count u32 | count bytes
#            a registered nv_part's whole bytes (meter.nv_part)
# A record's entries are applied in order, all or none (persist.py).
from .crc import crc32

MAGIC = b"NV"
VERSION = 1
K_COMMIT = 1
K_SNAPSHOT = 2
E_TABLE = 1
E_RESET = 2
E_PART = 3
HEADER = 12
TRAILER = 4
MAX_PAYLOAD = 1 << 24        # 16 MB: anything longer is garbage, not a record


def _u16(v):
    return bytes((v & 0xFF, (v >> 8) & 0xFF))


def _u32(v):
    return bytes((v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF, (v >> 24) & 0xFF))


def _get16(b, i):
    return b[i] | (b[i + 1] << 8)


def _get32(b, i):
    return b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)


# -- entries ---------------------------------------------------------------------------

def table_entry(tid, size, offset, data):
    """Bytes `data` at `offset` of table `tid`, whose length is `size`."""
    return (b"\x01" + _u16(tid) + _u32(size) + _u32(offset) + _u32(len(data))
            + bytes(data))


def reset_entry(tid):
    """Table `tid` back to its profile image / catalogue default."""
    return b"\x02" + _u16(tid)


def part_entry(name, data):
    """The whole bytes of the nv_part `name` (a str of at most 255 ASCII chars)."""
    n = name.encode()
    if len(n) > 255:
        raise ValueError("nv_part name too long")
    return b"\x03" + bytes((len(n),)) + n + _u32(len(data)) + bytes(data)


def entries(payload):
    """The entries of a payload, in order, as 5-tuples:
    (E_TABLE, tid, size, offset, data), (E_RESET, tid, 0, 0, b""),
    (E_PART, name, 0, 0, data). Raises ValueError on a malformed payload
    (a payload that passed its CRC but was not written by this codec)."""
    out = []
    p = memoryview(payload)
    i = 0
    end = len(p)
    while i < end:
        k = p[i]
        if k == E_TABLE:
            if i + 15 > end:
                raise ValueError("nvlog: short table entry")
            tid = _get16(p, i + 1)
            size = _get32(p, i + 3)
            off = _get32(p, i + 7)
            n = _get32(p, i + 11)
            i += 15
            # size bounded too: a table of gigabytes is garbage, not a reason to allocate it
            if i + n > end or off + n > size or size > MAX_PAYLOAD:
                raise ValueError("nvlog: bad table entry")
            out.append((E_TABLE, tid, size, off, bytes(p[i:i + n])))
            i += n
        elif k == E_RESET:
            if i + 3 > end:
                raise ValueError("nvlog: short reset entry")
            out.append((E_RESET, _get16(p, i + 1), 0, 0, b""))
            i += 3
        elif k == E_PART:
            if i + 2 > end:
                raise ValueError("nvlog: short part entry")
            ln = p[i + 1]
            if i + 2 + ln + 4 > end:
                raise ValueError("nvlog: short part entry")
            name = str(bytes(p[i + 2:i + 2 + ln]), "ascii")
            i += 2 + ln
            n = _get32(p, i)
            i += 4
            if i + n > end:
                raise ValueError("nvlog: bad part entry")
            out.append((E_PART, name, 0, 0, bytes(p[i:i + n])))
            i += n
        else:
            raise ValueError("nvlog: unknown entry type %d" % k)
    return out


# -- records ---------------------------------------------------------------------------

def record(kind, seq, payload):
    """One framed record: header, payload, CRC."""
    head = MAGIC + bytes((kind, VERSION)) + _u32(seq) + _u32(len(payload))
    c = crc32(payload, crc32(head))
    return head + bytes(payload) + _u32(c)


def header(head):
    """(kind, seq, payload length) from a record's first HEADER bytes, or
    None when they cannot start a record (end of log, garbage)."""
    if len(head) < HEADER or head[0] != 0x4E or head[1] != 0x56 or head[3] != VERSION:
        return None
    kind = head[2]
    n = _get32(head, 8)
    if (kind != K_COMMIT and kind != K_SNAPSHOT) or n > MAX_PAYLOAD:
        return None
    return kind, _get32(head, 4), n


def check(buf, start=0):
    """The record at buf[start:]: (kind, seq, payload, end) with `end` the
    offset just past it, or None when there is no complete record with a
    good CRC there (a torn last write, the end of the log)."""
    h = header(memoryview(buf)[start:start + HEADER])
    if h is None:
        return None
    kind, seq, n = h
    body = start + HEADER
    end = body + n + TRAILER
    if end > len(buf):
        return None
    mv = memoryview(buf)
    if crc32(mv[start:body + n]) != _get32(mv, body + n):
        return None
    return kind, seq, mv[body:body + n], end


def scan(buf, start=0):
    """Every good record from `start` on, stopping at the first bad or
    torn one: a list of (kind, seq, payload, end)."""
    out = []
    while True:
        r = check(buf, start)
        if r is None:
            return out
        out.append(r)
        start = r[3]


def read(f):
    """The next record from a file-like object (read(n)): (kind, seq,
    payload, length in bytes) or None at the end of the log or at a torn or
    corrupt record. Reads one record's bytes at a time (a board's heap)."""
    head = f.read(HEADER)
    if not head:
        return None
    h = header(head)
    if h is None:
        return None
    kind, seq, n = h
    rest = f.read(n + TRAILER)
    if rest is None or len(rest) != n + TRAILER:
        return None
    c = crc32(memoryview(rest)[:n], crc32(head))
    if c != _get32(rest, n):
        return None
    return kind, seq, memoryview(rest)[:n], HEADER + n + TRAILER
