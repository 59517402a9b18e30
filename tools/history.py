"""The meter's history log as text: `osgp-meter log --port PORT [--mep|--optical]`.

Reads BT71 (log dimensions), then BT74 (or ET79 with --alternate) in chunks
small enough for any port, and prints one line per entry, oldest first:

    2026-11-26 12:00:00  #123  MEP     Procedure Invoked (9)  arg=10

Event names come from the catalogue (tools/catalogue.json); the decoding is
the firmware's own (osgp_meter.events.decode / format_entry), so host and
meter agree byte for byte. See docs/events-and-supply.md.
"""
import sys

from osgp_meter import events

from .cli import _hex

BT71 = 71
BT74 = 74
ET11 = 2048 + 11
ET79 = 2048 + 79
HEADER = 11
CHUNK = 448          # bytes per read: under the MEP limit (465) and any optical packet


def names(doc=None):
    """{event number: name} from the catalogue JSON (a dict as in
    tools/catalogue.json; default: the installed catalogue)."""
    if doc is None:
        from . import catalogue
        doc = catalogue.catalogue().doc
    return {e["id"]: e["name"] for e in doc["events"]}


def read_log(read, alternate=False, chunk=CHUNK):
    """Read a log through `read(table_id, offset, count) -> bytes` (a client's
    partial read), at most `chunk` bytes a time. Returns (arg_len, raw table
    bytes)."""
    bt71 = read(BT71, 0, 9)
    arg_len = bt71[3]
    if alternate:
        tid = ET79
        entries = int.from_bytes(read(ET11, 80, 2), "little")
    else:
        tid = BT74
        entries = bt71[5] | bt71[6] << 8
    size = HEADER + entries * (12 + arg_len)
    step = max(12 + arg_len, chunk // (12 + arg_len) * (12 + arg_len))
    raw = bytearray(read(tid, 0, HEADER))
    at = HEADER
    while at < size:
        n = min(step, size - at)
        raw += read(tid, at, n)
        at += n
    return arg_len, bytes(raw)


def render(raw, arg_len, doc=None, title="BT74 History Log"):
    """Text lines for a log image: a summary line, then one line per entry.
    `doc` is the catalogue JSON (default: the installed one)."""
    flags, unread, got = events.decode(raw, arg_len)
    table = names(doc)
    head = "%s: %d entr%s, %d unread%s%s" % (
        title, len(got), "y" if len(got) == 1 else "ies", unread,
        ", overflow" if flags & 0x02 else "", ", overflow inhibited" if flags & 0x08 else "")
    return [head] + [events.format_entry(e, table) for e in got]


def add_parser(subparsers):
    """`osgp-meter log`: read and print the history log over MEP or optical."""
    p = subparsers.add_parser("log", help="print the meter's history log (BT74, or ET79)")
    p.add_argument("--port", required=True, help="device path or pyserial URL")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--mep", dest="optical", action="store_false", help="MEP port (default)")
    which.add_argument("--optical", dest="optical", action="store_true", help="optical port (C12.18)")
    p.add_argument("--alternate", action="store_true", help="the alternate log ET79 (critical events)")
    p.add_argument("--baud", type=int, default=9600)
    p.add_argument("--profile", help="take the key / password from this profile (default: built-in)")
    p.add_argument("--key", type=_hex, help="MEP: the 16-byte key as hex (overrides the profile)")
    p.add_argument("--basic", action="store_true", help="MEP: use the MBK instead of the MAK")
    p.add_argument("--encrypt", action="store_true", help="MEP: RC4-encrypt requests")
    p.add_argument("--seq", type=lambda s: int(s, 0), help="MEP: the meter's sequence number, if known")
    p.add_argument("--level", choices=("mk", "pk", "rk", "none"), default="rk",
                   help="optical: the key to log on with (default rk: reading is enough)")
    p.add_argument("--password", type=_hex, help="optical: the 20-byte password as hex")
    p.add_argument("--timeout", type=float, default=None)
    p.set_defaults(optical=False)
    return p


def run(args, out=None):
    out = out or sys.stdout
    from . import client_cli, crypto_backend
    crypto_backend.install()
    if args.timeout is None:
        args.timeout = 2.0 if args.optical else 0.5
    client = client_cli._optical_client(args) if args.optical else client_cli._mep_client(args)
    chunk = CHUNK
    try:
        if args.optical:
            # bigger packets than the C12.18 default 64 x 1, if the meter agrees;
            # a read answer is code + count(2) + data + checksum
            from osgp_meter import c1218
            try:
                client.negotiate(512, 8)
            except Exception:
                pass
            chunk = min(CHUNK, (client.packet_size - c1218.OVERHEAD) * client.packets - 4)
        arg_len, raw = read_log(lambda tid, off, n: client.read(tid, off, n), args.alternate, chunk)
    finally:
        if args.optical:
            try:
                client.logoff()
                client.terminate()
            except Exception:
                pass
    title = "ET79 History Log (alternate)" if args.alternate else "BT74 History Log"
    for line in render(raw, arg_len, None, title):
        print(line, file=out)
    return 0
