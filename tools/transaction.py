"""Build, send and read OSGP transactions (docs/transactions.md).

A transaction is a list of C12 requests written into a request table (ET52
on the MEP port, ET27 on the PLC port) between a leading and a trailing
transaction number; the meter runs them all-or-nothing and writes the
answers into the response table (ET53 / ET28). The byte layout and the
decoding are the core's (osgp_meter.transactions); this adds the request
builders, a client-side `run` and `osgp-meter mep … txn`.

    >>> body = build([read(0x17, 0, 44)], 2)
    >>> body.hex(" ")
    '11 00 00 02 00 08 00 3f 00 17 00 00 00 00 2c 02 00'
"""
import struct
import sys

from osgp_meter import transactions as core
from osgp_meter.services import code_name

BT07 = 7
BT08 = 8
TABLES = {"mep": (core.ET52, core.ET53), "plc": (core.ET27, core.ET28)}
TYPES = {0: "requests", 1: "responses", 2: "partial responses (nothing of it stays)",
         3: "group-broadcast request", 4: "group broadcast denied"}


# -- C12 requests (MSB-first headers, no seq/digest) -------------------------------

def read(tid, offset=None, count=None):
    """0x30 full read, or 0x3F partial read when offset/count are given."""
    if offset is None and count is None:
        return struct.pack(">BH", 0x30, tid)
    off = offset or 0
    return struct.pack(">BHBHH", 0x3F, tid, off >> 16, off & 0xFFFF, count or 0)


def write(tid, data, offset=None):
    """0x40 full write, or 0x4F partial write at `offset`."""
    data = bytes(data)
    if offset is None:
        return struct.pack(">BHH", 0x40, tid, len(data)) + data
    return struct.pack(">BHBHH", 0x4F, tid, offset >> 16, offset & 0xFFFF, len(data)) + data


def call(number, psn, params=b""):
    """A procedure call: BT07 = number (LSB first) | PSN | parameters."""
    return write(BT07, struct.pack("<HB", number, psn) + bytes(params))


def build(requests, number, groups=None):
    """Request table bytes: type 0, or type 3 (group broadcast) with `groups`."""
    body = b""
    if groups is not None:
        body += struct.pack("<B", len(groups)) + b"".join(struct.pack("<H", g) for g in groups)
    for r in requests:
        body += struct.pack("<H", len(r)) + bytes(r)
    typ = core.GROUP if groups is not None else core.REQUESTS
    return struct.pack("<HBH", 7 + len(body), typ, number & 0xFFFF) + body + struct.pack("<H", number & 0xFFFF)


# -- reading -----------------------------------------------------------------------

def decode(data):
    """Transaction bytes (a request or a response; trailing table bytes
    ignored) -> dict(size, type, number, groups, records). ValueError when
    the structure does not hold."""
    data = bytes(data)
    if len(data) < 2:
        raise ValueError("too short for a transaction")
    size = data[0] | (data[1] << 8)
    got = core.decode(data[:size]) if size <= len(data) else None
    if got is None:
        raise ValueError("not a well-formed transaction (size %d, %d bytes)" % (size, len(data)))
    typ, number, groups, records = got
    return {"size": size, "type": typ, "number": number, "groups": groups, "records": records}


def answers(records):
    """Response records -> [(code or None for a zero-length record, data or None)]."""
    out = []
    for r in records:
        if not r:
            out.append((None, None))
        elif r[0] == 0 and len(r) >= 3:
            n = (r[1] << 8) | r[2]
            out.append((0, r[3:3 + n]))
        else:
            out.append((r[0], None))
    return out


def run(client, requests, number, port="mep", groups=None, max_write=456, max_read=465):
    """Write the transaction with `client` (read(tid, offset, count) and
    write(tid, data, offset), as MepClient has them) in chunks the port
    takes, then read the response table. Returns decode() of the answer."""
    req_tid, rsp_tid = TABLES[port]
    body = build(requests, number, groups)
    for off in range(0, len(body), max_write):
        client.write(req_tid, body[off:off + max_write], off)
    head = bytes(client.read(rsp_tid, 0, 5))
    size = head[0] | (head[1] << 8)
    if size < 7 or (head[3] | (head[4] << 8)) != number & 0xFFFF:
        raise ValueError("the response table holds transaction %d, not %d (not run: the meter ran "
                         "this number and content before)" % (head[3] | (head[4] << 8), number))
    data = head
    while len(data) < size:
        data += bytes(client.read(rsp_tid, len(data), min(max_read, size - len(data))))
    return decode(data)


# -- the command line: osgp-meter mep --port P txn REQUEST ... ---------------------

SPEC_HELP = ("read:TABLE[:OFFSET:COUNT]  write:TABLE[@OFFSET]:HEX  call:PROCEDURE[:HEX]"
             " (TABLE/PROCEDURE as in read/call: BT23, ET03, EP61, a number or a name)")


def parse_spec(text, psn=5):
    """'read:BT23:0:44' / 'write:ET03@2:414243' / 'call:EP61:01' -> C12 bytes."""
    from . import catalogue
    kind, _, rest = text.partition(":")
    if kind == "read":
        parts = rest.split(":")
        entry = catalogue.lookup_table(parts[0])
        if entry is None:
            raise ValueError("no table %r in the catalogue" % parts[0])
        if len(parts) == 1:
            return read(entry["id"])
        if len(parts) != 3:
            raise ValueError("read:TABLE or read:TABLE:OFFSET:COUNT, not %r" % text)
        return read(entry["id"], int(parts[1], 0), int(parts[2], 0))
    if kind == "write":
        name, _, hexdata = rest.partition(":")
        name, _, off = name.partition("@")
        entry = catalogue.lookup_table(name)
        if entry is None:
            raise ValueError("no table %r in the catalogue" % name)
        return write(entry["id"], bytes.fromhex(hexdata), int(off, 0) if off else None)
    if kind == "call":
        name, _, hexdata = rest.partition(":")
        entry = catalogue.lookup_procedure(name)
        if entry is None:
            raise ValueError("no procedure %r in the catalogue" % name)
        return call(entry["number"], psn, bytes.fromhex(hexdata))
    raise ValueError("a request is " + SPEC_HELP)


def add_parser(sub):
    """The `txn` action under `osgp-meter mep`."""
    t = sub.add_parser("txn", help="run C12 requests as one all-or-nothing transaction (ET52/ET53)")
    t.add_argument("requests", nargs="+", metavar="REQUEST", help=SPEC_HELP)
    t.add_argument("--number", type=lambda s: int(s, 0),
                   help="transaction number (default: one more than ET52 holds)")
    t.add_argument("--group", type=lambda s: int(s, 0), action="append",
                   help="make it a group-broadcast transaction (type 3) to this group ID; repeatable")
    return t


def run_cli(client, args, out=sys.stdout):
    req_tid = TABLES["mep"][0]
    number = args.number
    if number is None:
        head = bytes(client.read(req_tid, 0, 5))
        number = ((head[3] | (head[4] << 8)) + 1) & 0xFFFF
    psn = 5
    if any(s.startswith("call:") for s in args.requests):
        last = bytes(client.read(BT08, 2, 1))[0]       # a PSN equal to the last one is refused
        psn = 5 + (last - 4) % 5
    requests = [parse_spec(s, psn) for s in args.requests]
    got = run(client, requests, number, "mep", args.group)
    print("transaction %d: %s (type %d), %d records" % (got["number"], TYPES.get(got["type"], "?"),
                                                        got["type"], len(got["records"])), file=out)
    for i, (spec, (code, data)) in enumerate(zip(args.requests, answers(got["records"]))):
        if code is None:
            text = "(no answer: not run)"
        elif data is not None:
            text = "00 ok, %d bytes: %s" % (len(data), data.hex(" ") or "(none)")
        else:
            text = "%02X %s" % (code, code_name(code))
        print("  %2d  %-28s %s" % (i + 1, spec, text), file=out)
    return 0 if got["type"] == core.RESPONSES else 1
