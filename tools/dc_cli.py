# The `osgp-meter dc` command: its parser (add_parser), building the DC
# from the options (build_dc) and running an action (run).
# Split out of tools/dc.py (docs/dc.md); importable from osgp_host.dc too.
import sys
import time

from osgp_meter import cnip

from . import catalogue
from .cli import _int, _hex
from .plc_client import PlcError, MAX_READ, MAX_WRITE
from .dc_address import (DEFAULT_DOMAIN, DC_SUBNET, DC_NODE, DEFAULT_TIMEOUT_MS,
                         DEFAULT_TX_RETRIES, DEFAULT_RETRIES, _SN, parse_meters, table_id,
                         procedure_number)
from .dc_core import DC
from .dc_local import LocalFleet


# ---------------------------------------------------------------- the CLI

def _hostport(text, default_port=cnip.PORT):
    """"HOST:PORT", "HOST" or "PORT" -> (host, port); 127.0.0.1 and 1628 by default."""
    text = str(text)
    if text.isdigit():
        return "127.0.0.1", int(text)
    host, sep, port = text.rpartition(":")
    if not sep:
        return text or "127.0.0.1", default_port
    return host or "127.0.0.1", int(port)


def add_parser(sub):
    """`osgp-meter dc …`."""
    d = sub.add_parser("dc", help="data concentrator: read/write/call meters over PLC",
                       description="A data concentrator on the virtual PLC channel: over CN/IP "
                                   "to a gateway (default 127.0.0.1:1628, e.g. `osgp-meter "
                                   "gateway`), or on a channel it hosts itself (--local).")
    where = d.add_mutually_exclusive_group()
    where.add_argument("--cnip", metavar="HOST[:PORT]", default=None,
                       help="CN/IP gateway to talk through (default 127.0.0.1:1628)")
    where.add_argument("--local", action="store_true",
                       help="host a channel with a commissioned meter at every meter position "
                            "of --topology")
    d.add_argument("--topology", default="small",
                   help="--local: a topology name (small, default, hidden) or file (default small)")
    d.add_argument("--seed", type=int, help="channel seed (--local)")
    d.add_argument("--profile", help="device profile: the meters' (--local) and the default key")
    d.add_argument("--key", type=_hex, help="the 12-byte PLC unicast key as hex")
    d.add_argument("--inventory", metavar="CSV", help="per-meter keys from a fleet inventory "
                   "(`osgp-meter fleet --inventory`); meters it lacks use --key / the profile's")
    d.add_argument("--shard", help="--inventory: the shard (transformer id or index) whose "
                   "subnet/node addresses to use (default: the one on the --cnip port)")
    d.add_argument("--encrypt", action="store_true", help="RC4-encrypt requests")
    d.add_argument("--aes", action="store_true", default=None,
                   help="AES security mode (default: when the profile's [security] mode is aes)")
    d.add_argument("--seq", type=_int, help="sequence number to start from (default 0; 0x0C re-syncs)")
    d.add_argument("--retries", type=int, default=DEFAULT_RETRIES,
                   help="re-sends of the same request after a failed transaction (default 2)")
    d.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT_MS, metavar="MS",
                   help="wait for an answer to one transmission (default 768 ms)")
    d.add_argument("--tx-retries", type=int, default=DEFAULT_TX_RETRIES,
                   help="LonTalk retries within one transaction (default 3)")
    d.add_argument("--domain", type=_hex, default=DEFAULT_DOMAIN, help="domain ID as hex (default 42)")
    d.add_argument("--address", default="%d/%d" % (DC_SUBNET, DC_NODE),
                   help="the DC's subnet/node (default 1/126)")
    d.add_argument("--max-read", type=int, default=MAX_READ)
    d.add_argument("--max-write", type=int, default=MAX_WRITE)
    d.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    acts = d.add_subparsers(dest="action", required=True)
    meters_help = "meters: 1/5, 1/1-20, nid:<12 hex>, names like m005 or m001-m010 (--local), all"
    r = acts.add_parser("read", help="read a table (whole, or --offset/--count)")
    r.add_argument("meters", help=meters_help)
    r.add_argument("table", help="BTnn, ETnn, a number, or a catalogue name")
    r.add_argument("--offset", type=_int)
    r.add_argument("--count", type=_int)
    r.add_argument("--raw", action="store_true", help="hex only, no decoded fields")
    w = acts.add_parser("write", help="write a table (whole, or from --offset)")
    w.add_argument("meters", help=meters_help)
    w.add_argument("table")
    w.add_argument("data", type=_hex, help="table bytes as hex, little-endian as stored")
    w.add_argument("--offset", type=_int)
    from . import dc_life       # pending writes, PEDs, txn, lifecycle (docs/dc.md)
    dc_life.add_write_arguments(w)
    c = acts.add_parser("call", help="run a procedure through BT07/BT08")
    c.add_argument("meters", help=meters_help)
    c.add_argument("procedure", help="BPnn, EPnn, a number, or a catalogue name")
    c.add_argument("params", nargs="?", type=_hex, default=b"", help="parameters as hex")
    c.add_argument("--psn", type=_int)
    dc_life.add_ped_arguments(c, "BP13/BP15 (a PED after the parameters)")
    dc_life.add_parsers(acts, meters_help)
    disc = acts.add_parser("discover", help="--local: discover and commission factory-fresh meters, "
                                            "print the topology (paths, hops, margins)")
    disc.add_argument("--json", action="store_true")
    dl = acts.add_parser("download", help="firmware download: EP08/EP09 (broadcast and/or "
                                          "unicast), ET17 repairs, EP10 (docs/firmware-download.md)")
    from . import fw_download
    fw_download.add_arguments(dl)
    s = acts.add_parser("status", help="ND query status of meters (reachability, counters)")
    s.add_argument("meters", nargs="?", default=None, help=meters_help + " (default: all, --local)")
    return d


class _Progress:
    """The one-line progress display on stderr ("read 37/50, 1 failed")."""

    def __init__(self, verb, err=None, quiet=False):
        self.verb = verb
        self.err = err or sys.stderr
        self.quiet = quiet
        self.failed = 0
        self.tty = hasattr(self.err, "isatty") and self.err.isatty()
        self._last = 0.0

    def __call__(self, done, total, target, result):
        if isinstance(result, Exception):
            self.failed += 1
        if self.quiet or total < 2 or not self.tty:
            return
        now = time.monotonic()
        if done == total or now - self._last > 0.1:
            self._last = now
            self.err.write("\r%s %d/%d%s" % (self.verb, done, total,
                                             ", %d failed" % self.failed if self.failed else ""))
            self.err.flush()

    def end(self, total, virtual_s, wall_s):
        if self.quiet:
            return
        if self.tty and total > 1:
            self.err.write("\r")
        took = ("%.1f s virtual, %.2f s wall" % (virtual_s, wall_s) if virtual_s is not None
                else "%.2f s" % wall_s)
        self.err.write("%s %d/%d meters: %d ok, %d failed (%s)\n"
                       % (self.verb, total, total, total - self.failed, self.failed, took))
        self.err.flush()


def _print_table(tid, data, offset, raw, out, prefix=""):
    entry = catalogue.lookup_table(tid)
    label = entry["label"] if entry else "table %d" % tid
    name = entry["name"] if entry else ""
    print("%s%s %s: %d bytes from offset %d" % (prefix, label, name, len(data), offset), file=out)
    print("  hex: %s" % (data.hex(" ") or "(none)"), file=out)
    if raw or entry is None:
        return
    for field in catalogue.decode_table(tid, data, offset):
        print("  %5d  %-32s %s" % (field["offset"], field["name"], field["text"]), file=out)


def build_dc(args, err=None):
    """(dc, fleet or None) from the parsed `osgp-meter dc` options."""
    from . import profile as profiles
    m = _SN.fullmatch(args.address)
    if not m:
        raise ValueError("--address: subnet/node expected, got %r" % args.address)
    common = dict(encrypt=args.encrypt, seq=args.seq, retries=args.retries,
                  timeout_ms=args.timeout, tx_retries=args.tx_retries, domain=args.domain,
                  subnet=int(m.group(1)), node=int(m.group(2)), max_read=args.max_read,
                  max_write=args.max_write)
    if getattr(args, "aes", None) is not None:
        common["aes"] = args.aes
    inv = _inventory(args, err)
    if inv is not None:
        common["keys"] = inv
    if args.local:
        fleet = LocalFleet(args.topology, args.seed, args.profile, args.domain)
        if args.key is not None:
            common["key"] = args.key
        return fleet.dc(**common), fleet
    key = args.key
    data = profiles.load(args.profile)
    common.setdefault("aes", data.get("security", {}).get("mode") == "aes")
    if key is None:
        key = profiles.parse_key(data["keys"]["plc_unicast"], "plc_unicast")
    if inv is not None:
        common["neuron_ids"] = inv.neuron_id      # AES nonces without an NM query
    return DC(cnip=_hostport(args.cnip or "127.0.0.1"), key=key, **common), None


def _inventory(args, err=None):
    """`--inventory CSV` (a fleet's, docs/fleet.md) as a DC `keys` function, or None."""
    path = getattr(args, "inventory", None)
    if not path:
        return None
    from .fleet_lookup import Inventory
    err = err or sys.stderr
    port = None if args.local else _hostport(args.cnip or "127.0.0.1")[1]
    fallback = "--key" if args.key is not None else "the profile's plc_unicast key"

    def warn(msg):
        print(msg, file=err)
        err.flush()
    return Inventory.load(path, port=port, shard=getattr(args, "shard", None), warn=warn,
                          fallback=fallback)


def run(args, out=None, err=None):
    """`osgp-meter dc …`; returns the exit status (0: every meter answered OK)."""
    from . import crypto_backend
    out = out or sys.stdout
    err = err or sys.stderr
    if args.action == "discover":
        from . import dc_discover
        return dc_discover.run(args, out, err)
    if args.action == "download":
        from . import fw_download, dc_life
        dc_life.check_image(args, err)        # the profile's download key (warning only)
        return fw_download.run(args, out, err)
    if args.action == "group":
        from . import dc_life
        return dc_life.run_group(args, out, err)
    crypto_backend.install()
    dc, fleet = build_dc(args, err)
    try:
        spec = args.meters if args.meters is not None else "all"
        targets = parse_meters(spec, dc.names, fleet.meters if fleet else None)
        many = len(targets) > 1
        from . import dc_life
        verb = {"read": "read", "write": "wrote", "call": "called",
                "status": "status"}.get(args.action) or dc_life.VERBS[args.action]
        prog = _Progress(verb, err, args.quiet)
        v0, w0 = dc.now_ms, time.monotonic()

        life_fn = dc_life.action(args, dc, out, many)    # write --pending, txn, lifecycle
        if life_fn is not None:
            fn = life_fn
        elif args.action == "read":
            tid = table_id(args.table)

            def fn(t):
                data = dc.read(t, tid, args.offset, args.count)
                if many:
                    print("%s: %s" % (t, data.hex(" ")), file=out)
                else:
                    _print_table(tid, data, args.offset or 0, args.raw, out, "%s " % t)
                return data
        elif args.action == "write":
            tid = table_id(args.table)

            def fn(t):
                dc.write(t, tid, args.data, args.offset)
                print("%s: %s written, %d bytes at offset %d" % (
                    t, args.table, len(args.data), args.offset or 0), file=out)
        elif args.action == "call":
            number = procedure_number(args.procedure)
            params = dc_life.call_params(args)    # + the PED of --at/--after/... (BP13/BP15)

            def fn(t):
                result, data = dc.call(t, number, params, args.psn)
                print("%s: %s result %d (%s), data %s" % (
                    t, args.procedure, result, RESULTS.get(result, "?"), data.hex(" ") or "-"),
                    file=out)
                if result:
                    raise PlcError(0x04, "procedure result %d" % result, str(t))
                return result
        else:
            def fn(t):
                s0 = dc.now_ms
                st = dc.status(t)
                print("%s: answered in %d ms; state %d, reset cause 0x%02X, tx errors %d, "
                      "timeouts %d, rx full %d, lost %d, missed %d" % (
                          t, dc.now_ms - s0, st.node_state, st.reset_cause, st.tx_errors,
                          st.timeouts, st.rx_full, st.lost, st.missed), file=out)
                return st
        results = dc.for_each(targets, fn, prog)
        for t, r in results:
            if isinstance(r, PlcError):
                print("%s: error: %s" % (t, r), file=out if many else err)
        prog.end(len(targets), (dc.now_ms - v0) / 1000.0 if fleet else None, time.monotonic() - w0)
        failed = sum(1 for _, r in results if isinstance(r, PlcError))
        return 0 if not failed else 1
    finally:
        dc.close()


RESULTS = {0: "completed", 1: "accepted, not complete", 2: "invalid parameter",
           3: "conflicts with setup", 4: "timing constraint", 5: "no authorization",
           6: "unrecognized procedure"}
