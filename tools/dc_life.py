"""The data concentrator's commands for a meter's later life (docs/dc.md,
"Pending tables, transactions, AES, lifecycle, download key"): what a
head-end test team does after commissioning, from the command line and as
functions over a ``DC``.

    osgp-meter dc write METERS TABLE HEX --pending (--at ISO | --after S | --on-procedure [TAG])
                                         [--self-read] [--demand-reset] [--offset N]
    osgp-meter dc call  METERS BP13 --after 3600          (the PED as the parameters)
    osgp-meter dc txn   METERS read:BT23:0:44 write:ET03@2:4142 call:EP61
    osgp-meter dc lifecycle [METERS] [--json]
    osgp-meter dc --aes ...                                (AES mode, docs/security-modes.md)

    from osgp_host import dc_life
    ped = dc_life.ped_at("2026-12-01T00:00Z", self_read=True)
    dc_life.write_pending(dc, "m001", "BT54", image, ped)
    got = dc_life.txn(dc, "m001", ["read:BT23:0:44"])       # transaction.decode() dict
    dc_life.lifecycle(dc, "m001")                           # {"node": "configured", ...}

The bytes are the meter's own: pending copies and PEDs from
``osgp_meter.pending`` (docs/pending-tables.md), the staging loop of
``tools/pending_fleet.stage``, the transaction layout and request syntax of
``tools/transaction`` (docs/transactions.md), the state names of
``osgp_meter.lifecycle_table`` (docs/commissioning.md).
"""
import calendar
import json
import re
import struct
import time

from osgp_meter import lontalk_nm as N
from osgp_meter import pending
from osgp_meter.lontalk import FrameError

from .cli import _hex
from .plc_client import PlcError, PlcTimeout

VERBS = {"txn": "transaction", "lifecycle": "lifecycle", "change-key": "changed keys"}
ET04 = 2048 + 4
ET99 = 2048 + 99
LIFE_OFFSET = 113            # ET99.113-122, the lifecycle record (docs/commissioning.md)
LIFE_LEN = 10
NODE_STATE = 72              # ET04.72, the 14908-1 node state code


# ------------------------------------------------------------------ PEDs

_ISO = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d)(?::(\d\d))?(Z|\+00:?00)?")


def parse_utc(text):
    """'2026-12-01T00:00Z' (seconds optional, UTC only) -> UTC seconds."""
    m = _ISO.fullmatch(str(text).strip())
    if not m:
        raise ValueError("--at: expected YYYY-MM-DDThh:mm[:ss]Z (UTC), got %r" % text)
    y, mo, d, hh, mm = (int(m.group(i)) for i in range(1, 6))
    ss = int(m.group(6) or 0)
    if ss:
        raise ValueError("--at: a PED holds minutes (STIME_DATE): seconds must be 00")
    if y < 2000 or y > 2099:
        raise ValueError("--at: a PED holds years 2000-2099")
    if not (1 <= mo <= 12 and 1 <= d <= calendar.monthrange(y, mo)[1] and hh < 24 and mm < 60):
        raise ValueError("--at: not a date and time: %r" % text)
    return calendar.timegm((y, mo, d, hh, mm, 0, 0, 0, 0))


def _flags(self_read=False, demand_reset=False):
    return (pending.FLAG_SELF_READ if self_read else 0) | \
           (pending.FLAG_DEMAND_RESET if demand_reset else 0)


def ped_at(when, self_read=False, demand_reset=False):
    """An absolute-time PED (code 0) for UTC seconds or an ISO text."""
    t = parse_utc(when) if isinstance(when, str) else int(when)
    if t % 60:
        raise ValueError("an absolute PED holds minutes: %d is not on a minute" % t)
    return pending.ped_absolute(t, _flags(self_read, demand_reset))


def ped_after(seconds, self_read=False, demand_reset=False):
    """A relative PED (code 1): `seconds` after the meter receives the first
    write, as weeks/days/hours/minutes/seconds (UINT8 each; at most 255 weeks)."""
    s = int(seconds)
    if s < 0 or s > 255 * 604800 + 604799:
        raise ValueError("--after: 0 .. %d seconds" % (255 * 604800 + 604799))
    w, s = divmod(s, 604800)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return pending.ped_relative(w, d, h, m, s, _flags(self_read, demand_reset))


def ped_procedure(tag=b"", self_read=False, demand_reset=False):
    """A PED that waits for BP12/BP13 (code 2); `tag` (up to 5 bytes) is what
    BP13/BP15 match on."""
    tag = bytes(tag)
    if len(tag) > 5:
        raise ValueError("--on-procedure: the tag is at most 5 bytes")
    return pending.ped_procedure(tag, _flags(self_read, demand_reset))


def describe_ped(ped):
    """'absolute 2026-12-01T00:00Z, self-read' and the like."""
    ped = bytes(ped)
    code, flags = ped[0] & 0x0F, ped[0] & 0xF0
    if code == pending.CODE_ABSOLUTE:
        t = pending.decode_stime(ped, 1)
        text = "at %s" % ("%04d-%02d-%02dT%02d:%02dZ" % time.gmtime(t)[:5]
                          if t is not None else "(not a date)")
    elif code == pending.CODE_RELATIVE:
        secs = ped[1] * 604800 + ped[2] * 86400 + ped[3] * 3600 + ped[4] * 60 + ped[5]
        text = "%d s after receipt" % secs
    elif code == pending.CODE_PROCEDURE:
        text = "on BP12/BP13 (tag %s)" % ped[1:].hex()
    else:
        text = "code %d" % code
    if flags & pending.FLAG_SELF_READ:
        text += ", self-read"
    if flags & pending.FLAG_DEMAND_RESET:
        text += ", demand reset"
    return text


def ped_from_args(args):
    """The PED the --ped/--at/--after/--on-procedure options give, or None."""
    flags = dict(self_read=getattr(args, "self_read", False),
                 demand_reset=getattr(args, "demand_reset", False))
    if getattr(args, "ped", None) is not None:
        if len(args.ped) != 6:
            raise ValueError("--ped: a PED is 6 bytes (12 hex digits)")
        return bytes(args.ped)
    if getattr(args, "at", None) is not None:
        return ped_at(args.at, **flags)
    if getattr(args, "after", None) is not None:
        return ped_after(args.after, **flags)
    if getattr(args, "on_procedure", None) is not None:
        return ped_procedure(args.on_procedure, **flags)
    if flags["self_read"] or flags["demand_reset"]:
        raise ValueError("--self-read/--demand-reset go with --at, --after or --on-procedure")
    return None


def add_ped_arguments(p, what):
    """--ped/--at/--after/--on-procedure [--self-read] [--demand-reset] on a
    `dc write` or `dc call` parser."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--at", metavar="ISO-UTC",
                   help="%s: activate at this UTC minute (PED code 0), e.g. 2026-12-01T00:00Z" % what)
    g.add_argument("--after", type=int, metavar="SECONDS",
                   help="%s: activate SECONDS after the meter receives it (PED code 1)" % what)
    g.add_argument("--on-procedure", nargs="?", const=b"", type=_hex, metavar="TAG",
                   help="%s: wait for BP12/BP13 (PED code 2); TAG up to 5 bytes of hex "
                        "that BP13/BP15 match" % what)
    g.add_argument("--ped", type=_hex, metavar="HEX", help="%s: the 6 PED bytes as hex" % what)
    p.add_argument("--self-read", action="store_true", help="PED flag: self-read before activation")
    p.add_argument("--demand-reset", action="store_true",
                   help="PED flag: demand reset before activation")


# ------------------------------------------------------------------ pending writes

def write_pending(dc, meter, table, data, ped, offset=None, max_write=None):
    """Stage `data` at `offset` (0) of `table`'s pending copy (table + 4096)
    with `ped`, in partial writes of the DC's max_write bytes, each carrying
    the PED (tools/pending_fleet.stage). Returns the number of requests.
    A write the meter refuses raises PlcError with its answer code."""
    from .dc import table_id
    from .pending_fleet import stage, StageError
    tid = table_id(table)
    if tid >= pending.PENDING:
        raise ValueError("give the base table (the pending copy is table + 4096)")
    ped = bytes(ped)
    if len(ped) != 6:
        raise ValueError("a PED is 6 bytes")
    if not data:
        raise ValueError("nothing to stage")
    t = dc.target(meter)
    try:
        return stage(dc, t, tid, ped, bytes(data), max_write or dc.max_write, offset or 0)
    except StageError as exc:
        from osgp_meter.services import code_name
        code = getattr(exc, "code", 0x01)
        what = str(exc).split(": ", 1)[-1].rsplit(" answered", 1)[0]
        raise PlcError(code, "%s: meter answered 0x%02X (%s)" % (what, code, code_name(code)),
                       str(t)) from None


def read_pending(dc, meter, table, offset=0, count=None):
    """(PED, bytes) of a table's pending copy: what activation will write
    (the live table overlaid with the staged bytes); the empty PED when
    nothing is pending."""
    from .dc import table_id
    tid = table_id(table)
    count = dc.max_read if count is None else count
    raw = dc.read(meter, tid + pending.PENDING, offset, count + 6)
    return bytes(raw[:6]), bytes(raw[6:])


# ------------------------------------------------------------------ transactions

def _last_psn(dc, t):
    return bytes(dc.read(t, 8, 2, 1))[0]


def txn(dc, meter, specs, number=None, groups=None):
    """Run the requests (transaction.parse_spec syntax, or C12 bytes) as one
    PLC transaction through ET27/ET28 on one meter; transaction.decode() of
    the answer. The number defaults to one more than ET27 holds; a call gets
    a PSN other than the meter's last (BT08.2)."""
    from . import transaction as T
    t = dc.target(meter)
    if number is None:
        head = bytes(dc.read(t, T.TABLES["plc"][0], 0, 5))
        number = ((head[3] | head[4] << 8) + 1) & 0xFFFF
    psn = 5
    if any(isinstance(s, str) and s.startswith("call:") for s in specs):
        psn = _last_psn(dc, t) % 255 + 1
    reqs = [T.parse_spec(s, psn) if isinstance(s, str) else bytes(s) for s in specs]
    client = dc.client(t)
    try:
        return T.run(client, reqs, number, "plc", groups, max_write=dc.max_write,
                     max_read=dc.max_read)
    except ValueError as exc:
        raise PlcError(0x04, str(exc), str(t)) from None


def print_txn(got, specs, out, prefix=""):
    """The decoded response records, one line each (as `mep txn` prints them)."""
    from . import transaction as T
    from osgp_meter.services import code_name
    print("%stransaction %d: %s (type %d), %d records" % (
        prefix, got["number"], T.TYPES.get(got["type"], "?"), got["type"], len(got["records"])),
        file=out)
    for i, (spec, (code, data)) in enumerate(zip(specs, T.answers(got["records"]))):
        if code is None:
            text = "(no answer: not run)"
        elif data is not None:
            text = "00 ok, %d bytes: %s" % (len(data), data.hex(" ") or "(none)")
        else:
            text = "%02X %s" % (code, code_name(code))
        print("  %2d  %-28s %s" % (i + 1, spec if isinstance(spec, str) else spec.hex(), text),
              file=out)


# ------------------------------------------------------------------ lifecycle

def _names(machine):
    from osgp_meter import lifecycle_table as LT
    return {v: k for k, v in LT.CODES[machine].items()}


def decode_life(record, node_code):
    """The lifecycle record (ET99.113, 10 bytes) and the ET04.72 code ->
    dict(version, lifecycle, lifecycle_code, dc_domain (hex or None), moves,
    node, node_code). Unknown codes are named 'code N'."""
    rec = bytes(record)
    if len(rec) < LIFE_LEN:
        raise ValueError("a lifecycle record is 10 bytes")
    node = _names("node").get(node_code, "code %d" % node_code)
    out = {"node": node, "node_code": node_code, "version": rec[0]}
    if rec[0] == 0:                     # never written (docs/commissioning.md)
        out.update(lifecycle=None, lifecycle_code=None, dc_domain=None, moves=0)
        return out
    n = rec[2]
    out.update(lifecycle=_names("osgp").get(rec[1], "code %d" % rec[1]), lifecycle_code=rec[1],
               dc_domain=None if n > 6 else rec[3:3 + n].hex(), moves=rec[9])
    return out


def lifecycle(dc, meter):
    """Read a meter's lifecycle record (ET99.113-122) and node state
    (ET04.72) through the DC; decode_life() of them. The read itself is an
    authenticated request: a commissioned meter's first answer still shows
    'commissioned', the next 'operational' (docs/commissioning.md)."""
    t = dc.target(meter)
    rec = dc.read(t, ET99, LIFE_OFFSET, LIFE_LEN)
    node = bytes(dc.read(t, ET04, NODE_STATE, 1))[0]
    return decode_life(rec, node)


def format_life(d):
    if d["lifecycle"] is None:
        life = "lifecycle record not written yet (version 0)"
    else:
        life = "lifecycle %s (%d), DC domain %s, moved %d time%s" % (
            d["lifecycle"], d["lifecycle_code"],
            d["dc_domain"] if d["dc_domain"] is not None else "none",
            d["moves"], "" if d["moves"] == 1 else "s")
    return "node %s (%d); %s" % (d["node"], d["node_code"], life)


# ------------------------------------------------------------------ AES: Neuron IDs

def query_neuron_id(dc, meter):
    """A meter's Neuron ID over the wire (AES mode puts it in the nonce):
    NM respond-to-query on, query ID (selected), respond-to-query off, all
    addressed to the meter itself. PlcTimeout / PlcError when it does not
    answer."""
    t = dc.target(meter)
    if t.neuron_id is not None:
        return t.neuron_id
    ok, _ = dc.transaction(t, N.respond_to_query(1))
    if not ok:
        raise PlcTimeout("no answer to NM respond-to-query (learning its Neuron ID)", str(t))
    try:
        ok, tx = dc.transaction(t, N.query_id(N.SEL_SELECTED))
        if not ok or tx is None or not tx.responses:
            raise PlcTimeout("no answer to NM query ID (learning its Neuron ID)", str(t))
        try:
            good, value = N.parse_response(N.NM_QUERY_ID, tx.responses[0][1])
        except FrameError as e:
            raise PlcError(0x01, "bad query-ID answer (%s)" % e.reason, str(t)) from None
        if not good:
            raise PlcError(0x04, "query ID refused", str(t))
        return bytes(value[0])
    finally:
        dc.transaction(t, N.respond_to_query(0))


def profile_aes(data):
    """True when a loaded profile's [security] mode is "aes"."""
    return str(data.get("security", {}).get("mode", "rc4")) == "aes"


# ------------------------------------------------------------------ firmware download key

def check_image(args, err):
    """`dc download`: warn when the image's MAC does not verify under the
    profile's download key (the meters would refuse it at EP10, reason
    0x0D). Never stops the download: a test may mean to send a bad image."""
    from osgp_meter import fwimage
    from . import profile as profiles
    try:
        with open(args.image, "rb") as f:
            image = f.read()
    except OSError:
        return None                      # fw_download reports it
    key = profiles.download_key(profiles.load(getattr(args, "profile", None)))
    _, _, problem = fwimage.check(lambda o, n: image[o:o + n], len(image), key)
    if problem == "mac" and not getattr(args, "quiet", False):
        err.write("warning: %s: the MAC does not verify under the profile's download key "
                  "([keys] download): the meters will refuse it at EP10 (reason 0x0D)\n"
                  % args.image)
    return problem


# ------------------------------------------------------------------ key changes

# (procedure, key_id) -> the profile's [keys] name of the key it replaces
# (docs/key-management.md): the default KEK of `dc change-key`
KEY_NAMES = {(2048 + 15, 0): "plc_unicast", (2048 + 15, 1): "plc_broadcast",
             (2048 + 24, 0): "mbk", (2048 + 24, 1): "mak",
             (2048 + 25, 0): "mk", (2048 + 25, 1): "pk", (2048 + 25, 2): "rk"}


def default_kek(dc, meter, number, key_id, profile=None):
    """The key being replaced, as the meter holds it: the DC's own for EP15
    key 0, else the profile's (optical passwords zero-padded to 20 bytes);
    None for a (procedure, key_id) the table does not know."""
    from . import profile as profiles
    if (number, key_id) == (2048 + 15, 0):
        return dc.client(meter).security.key
    name = KEY_NAMES.get((number, key_id))
    if name is None:
        return None
    value = profiles.load(profile)["keys"].get(name)
    if not value:
        return None
    key = profiles.parse_key(value, name)
    return key + bytes(20 - len(key)) if number == 2048 + 25 and len(key) < 20 else key


# ------------------------------------------------------------------ groups

def group_send(dc, group_id, what, target, data=b"", offset=None, key=None, seq=None,
               repeat=1):
    """One secured request to an OSGP group under the broadcast key
    (DC.group, docs/groups-and-broadcast.md): a table write or a procedure
    call. Nobody answers. Returns the GroupSender (its .seq, .psn)."""
    from . import fw_download
    if seq is None:             # above any earlier run's numbers (fw_download's rule)
        seq = fw_download.default_bcast_seq(dc.now_ms)
    g = dc.group(group_id, key, seq, repeat)
    if what == "write":
        g.write(target, data, offset)
    elif what == "call":
        g.call(target, data)
    else:
        raise ValueError("group: write or call, not %r" % what)
    return g


def open_window(dc, meters, base, delta=16):
    """Unicast to each meter: its secure-broadcast window (ET04.82 base B,
    ET04.86 delta D; docs/groups-and-broadcast.md) so that numbers in
    (B, B + D] are accepted, as `dc download --broadcast` does. Returns
    [(target, PlcError)] for the meters that refused or did not answer."""
    failed = []
    for m in meters:
        try:
            dc.write(m, ET04, struct.pack("<IH", base & 0xFFFFFFFF, delta), offset=82)
        except PlcError as exc:
            failed.append((dc.target(m), exc))
    return failed


def group_check(dc, meter, g, what, target, data=b"", offset=None):
    """Read back by unicast what a group request did on one meter: for a
    call, (result, response data) from BT08 (PlcError when BT08 holds
    another call); for a write, the table bytes now there."""
    from .dc import procedure_number, table_id
    t = dc.target(meter)
    if what == "call":
        rsp = bytes(dc.read(t, 8, size=dc.max_read))
        if len(rsp) < 4 or (rsp[0] | rsp[1] << 8) & 0x0FFF != procedure_number(target) & 0x0FFF \
                or rsp[2] != g.psn:
            raise PlcError(0x04, "BT08 does not hold the group call's answer (not a member, "
                                 "or the broadcast was not accepted)", str(t))
        return rsp[3], rsp[4:]
    return dc.read(t, table_id(target), offset or 0, len(data))


def run_group(args, out, err):
    """`osgp-meter dc … group GROUP write|call …`."""
    import time as _time
    from . import crypto_backend, profile as profiles
    from .dc import RESULTS, build_dc, parse_meters, _Progress
    crypto_backend.install()
    params = bytes(args.data)
    if args.what == "call":
        params += ped_from_args(args) or b""
    elif ped_from_args(args) is not None:
        raise ValueError("a PED goes with a group call (BP13/BP15)")
    dc, fleet = build_dc(args)
    try:
        key = args.bcast_key
        if key is None:
            key = fleet.bcast_key if fleet else profiles.parse_key(
                profiles.load(args.profile)["keys"]["plc_broadcast"], "plc_broadcast")
        v0, w0 = dc.now_ms, _time.monotonic()
        targets = parse_meters(args.members, dc.names, fleet.meters if fleet else None) \
            if args.members else []
        seq = args.bcast_seq
        if seq is None:
            from . import fw_download
            seq = fw_download.default_bcast_seq(dc.now_ms)
        if targets and not args.no_window:
            failed = open_window(dc, targets, seq, 4 * (1 + args.repeat))
            for t, exc in failed:
                print("%s: error: opening the broadcast window: %s" % (t, exc), file=out)
        g = group_send(dc, args.group_id, args.what, args.target, params, args.offset, key,
                       seq, args.repeat)
        print("group 0x%04X: %s %s sent under the broadcast key, seq %d%s" % (
            args.group_id, args.what, args.target, g.seq,
            ", PSN %d" % g.psn if args.what == "call" else ""), file=out)
        if not targets:
            return 0
        prog = _Progress("checked", err, args.quiet)

        def fn(t):
            got = group_check(dc, t, g, args.what, args.target, params, args.offset)
            if args.what == "call":
                print("%s: %s result %d (%s), data %s" % (t, args.target, got[0],
                      RESULTS.get(got[0], "?"), got[1].hex(" ") or "-"), file=out)
                if got[0] not in (0, 1):
                    raise PlcError(0x04, "procedure result %d" % got[0], str(t))
            else:
                same = bytes(got) == params
                print("%s: %s %s" % (t, bytes(got).hex(" "), "written" if same else "NOT written"),
                      file=out)
                if not same:
                    raise PlcError(0x04, "the group write did not reach it", str(t))
            return got
        results = dc.for_each(targets, fn, prog)
        for t, r in results:
            if isinstance(r, PlcError):
                print("%s: error: %s" % (t, r), file=out)
        prog.end(len(targets), (dc.now_ms - v0) / 1000.0 if fleet else None,
                 _time.monotonic() - w0)
        return 1 if any(isinstance(r, PlcError) for _, r in results) else 0
    finally:
        dc.close()


# ------------------------------------------------------------------ the CLI

def add_parsers(acts, meters_help):
    """`dc txn` and `dc lifecycle`."""
    from . import transaction as T
    t = acts.add_parser("txn", help="run C12 requests as one all-or-nothing PLC transaction "
                                    "(ET27/ET28) on each meter")
    t.add_argument("meters", help=meters_help)
    t.add_argument("requests", nargs="+", metavar="REQUEST", help=T.SPEC_HELP)
    t.add_argument("--number", type=lambda s: int(s, 0),
                   help="transaction number (default: one more than the meter's ET27 holds)")
    t.add_argument("--group", type=lambda s: int(s, 0), action="append",
                   help="make it a group-broadcast transaction (type 3) naming this group ID; "
                        "repeatable")
    lc = acts.add_parser("lifecycle", help="each meter's node state (ET04.72) and OSGP lifecycle "
                                           "record (ET99.113-122), decoded")
    lc.add_argument("meters", nargs="?", default=None, help=meters_help + " (default: all, --local)")
    lc.add_argument("--json", action="store_true", help="one JSON object per meter")
    ck = acts.add_parser("change-key", help="EP15/EP24/EP25 on each meter: the new key wrapped "
                                            "under the key it replaces (docs/key-management.md)")
    ck.add_argument("meters", help=meters_help)
    ck.add_argument("procedure", help="EP15 (key 0 PLC unicast, 1 PLC broadcast), EP24 (0 MBK, "
                                      "1 MAK), EP25 (0 MK, 1 PK, 2 RK)")
    ck.add_argument("key_id", type=int)
    ck.add_argument("new_key", type=_hex, help="the new key as hex")
    ck.add_argument("--kek", type=_hex, help="the key being replaced (default: the DC's own for "
                                             "EP15 0, else the profile's)")
    g = acts.add_parser("group", help="one secured request to an OSGP group under the broadcast "
                                      "key (docs/groups-and-broadcast.md); nobody answers")
    g.add_argument("group_id", type=lambda s: int(s, 0), help="UINT16: 0xYYZZ, 0xYYFF, 0xFFFF")
    g.add_argument("what", choices=("write", "call"))
    g.add_argument("target", help="the table (write) or procedure (call)")
    g.add_argument("data", nargs="?", type=_hex, default=b"", help="table bytes / parameters")
    g.add_argument("--offset", type=lambda s: int(s, 0))
    add_ped_arguments(g, "call BP13/BP15")
    g.add_argument("--bcast-key", type=_hex, help="the 12-byte broadcast key (default: the "
                                                  "profile's plc_broadcast)")
    g.add_argument("--bcast-seq", type=lambda s: int(s, 0),
                   help="the sequence number before this request's (default: from the clock)")
    g.add_argument("--repeat", type=int, default=1, help="unacknowledged-repeated copies (1)")
    g.add_argument("--members", metavar="METERS",
                   help="the meters expected to act: their broadcast window (ET04.82/86) is "
                        "opened by unicast first, and BT08 (call) or the written bytes read back")
    g.add_argument("--no-window", action="store_true",
                   help="with --members: do not open the window (it is open already)")


def add_write_arguments(w):
    w.add_argument("--pending", action="store_true",
                   help="stage the data in the table's pending copy (docs/pending-tables.md) "
                        "with the PED of --at/--after/--on-procedure/--ped")
    add_ped_arguments(w, "--pending")


def call_params(args):
    """`dc call`: the parameters, with the PED of --at/--after/... appended
    (BP13 / BP15 take the PED as their parameters)."""
    ped = ped_from_args(args)
    return bytes(args.params) + (ped or b"")


def action(args, dc, out, many):
    """fn(target) for the actions of this module (`dc write --pending`,
    `txn`, `lifecycle`), or None for dc.py's own."""
    if args.action == "write":
        ped = ped_from_args(args)
        if not args.pending:
            if ped is not None:
                raise ValueError("--at/--after/--on-procedure/--ped need --pending")
            return None
        if ped is None:
            raise ValueError("--pending needs --at, --after, --on-procedure or --ped")
        from .dc import table_id
        table_id(args.table)               # a bad name fails before anything is sent

        def fn(t):
            n = write_pending(dc, t, args.table, args.data, ped, args.offset)
            print("%s: %s pending, %d bytes at offset %d in %d write%s, PED %s (%s)" % (
                t, args.table, len(args.data), args.offset or 0, n, "" if n == 1 else "s",
                ped.hex(" "), describe_ped(ped)), file=out)
            return n
        return fn
    if args.action == "txn":
        from . import transaction as T
        for s in args.requests:
            T.parse_spec(s)                 # syntax first, before anything is sent

        def fn(t):
            got = txn(dc, t, args.requests, args.number, args.group)
            print_txn(got, args.requests, out, "%s: " % t)
            if got["type"] != T.core.RESPONSES and args.requests[-1].startswith("call:"):
                # the BT07 record says 00 (the write); why the call failed is in BT08
                from .dc import RESULTS
                rsp = bytes(dc.read(t, 8, 0, 4))
                print("      procedure result %d (%s), BT08: %s" % (
                    rsp[3], RESULTS.get(rsp[3], "?"), rsp.hex(" ")), file=out)
            if got["type"] != T.core.RESPONSES:
                raise PlcError(0x04, "transaction not run: %s (type %d)" % (
                    T.TYPES.get(got["type"], "?"), got["type"]), str(t))
            return got
        return fn
    if args.action == "change-key":
        from .dc import procedure_number, RESULTS
        number = procedure_number(args.procedure)
        if (number, args.key_id) not in KEY_NAMES and args.kek is None:
            raise ValueError("%s key %d: no such key to change (give --kek to send it anyway)"
                             % (args.procedure, args.key_id))

        def fn(t):
            kek = args.kek or default_kek(dc, t, number, args.key_id, args.profile)
            if kek is None:
                raise ValueError("--kek: the profile has no key %s" % KEY_NAMES[(number, args.key_id)])
            result, _ = dc.change_key(t, number, args.key_id, args.new_key, kek)
            print("%s: %s key %d (%s) %s, result %d (%s)" % (
                t, args.procedure, args.key_id, KEY_NAMES.get((number, args.key_id), "?"),
                "changed" if result == 0 else "NOT changed", result, RESULTS.get(result, "?")),
                file=out)
            if result:
                raise PlcError(0x04, "procedure result %d" % result, str(t))
            return result
        return fn
    if args.action == "lifecycle":
        def fn(t):
            d = lifecycle(dc, t)
            if args.json:
                print(json.dumps(dict(meter=str(t), address=t.address(), **d), sort_keys=True),
                      file=out)
            else:
                print("%s: %s" % (t, format_life(d)), file=out)
            return d
        return fn
    return None
