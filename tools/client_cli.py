"""`osgp-meter mep …` and `osgp-meter optical …`: read, write and call
procedures on a meter over a serial port, with answers decoded into the
catalogue's named fields (and the raw bytes in hex)."""
import sys

from . import catalogue
from . import crypto_backend
from . import ports
from . import profile as profiles

BT08 = 8


def _table(name):
    entry = catalogue.lookup_table(name)
    if entry is None:
        raise ValueError("no table %r in the catalogue" % name)
    return entry


def _procedure(name):
    entry = catalogue.lookup_procedure(name)
    if entry is None:
        raise ValueError("no procedure %r in the catalogue" % name)
    return entry


def _print_table(entry, data, offset, raw, out):
    tid = entry["id"]
    print("%s %s: %d bytes from offset %d" % (entry["label"], entry["name"], len(data), offset), file=out)
    print("  hex: %s" % (data.hex(" ") or "(none)"), file=out)
    if raw:
        return
    for field in catalogue.decode_table(tid, data, offset):
        print("  %5d  %-32s %s" % (field["offset"], field["name"], field["text"]), file=out)


def _mep_client(args):
    from .mep_client import MepClient
    key = args.key
    data = None
    if key is None:
        data = profiles.load(args.profile)
        key = profiles.parse_key(data["keys"]["mbk" if args.basic else "mak"], "mak")
    ident = None
    if getattr(args, "aes", False):
        # the AES nonce identity: the serial number as BT01.16 holds it
        serial = args.serial
        if serial is None:
            serial = (data or profiles.load(args.profile))["identity"]["serial_number"]
        ident = profiles._bcd(serial, 8, "serial_number")
    port = ports.open_client(args.port, args.baud, args.timeout)
    return MepClient(port, key, seq=args.seq, encrypt=args.encrypt,
                     aes=getattr(args, "aes", False), ident=ident)


def _optical_client(args):
    from .optical_client import OpticalClient, baud_code
    port = ports.open_client(args.port, args.baud, args.timeout)
    client = OpticalClient(port)
    client.ident()
    client.logon(2, b"osgp-meter")
    password = args.password
    if password is None and args.level != "none":
        data = profiles.load(args.profile)
        password = profiles.parse_key(data["keys"][args.level], args.level)
    if password is not None:
        client.security(password)
    return client


def run(args, out=sys.stdout):
    crypto_backend.install()
    optical = args.command == "optical"
    client = _optical_client(args) if optical else _mep_client(args)
    try:
        if args.action == "read":
            entry = _table(args.table)
            data = client.read(entry["id"], args.offset, args.count)
            _print_table(entry, data, args.offset or 0, args.raw, out)
        elif args.action == "write":
            entry = _table(args.table)
            client.write(entry["id"], args.data, args.offset)
            print("%s written: %d bytes at offset %d" % (entry["label"], len(args.data), args.offset or 0), file=out)
        elif args.action == "txn":
            from . import transaction
            return transaction.run_cli(client, args, out)
        elif args.action == "call":
            entry = _procedure(args.procedure)
            if optical:
                result, data = client.procedure(entry["number"], args.params, args.psn if args.psn is not None else 1)
            else:
                result, data = client.call(entry["number"], args.params, args.psn)
            print("%s %s: result %d (%s)" % (entry["label"], entry["name"], result, RESULTS.get(result, "?")), file=out)
            print("  response data: %s" % (data.hex(" ") or "(none)"), file=out)
            return 0 if result == 0 else 1
    finally:
        if optical:
            try:
                client.logoff()
                client.terminate()
            except Exception:
                pass
    return 0


RESULTS = {0: "completed", 1: "accepted, not complete", 2: "invalid parameter",
           3: "conflicts with setup", 4: "timing constraint", 5: "no authorization",
           6: "unrecognized procedure"}
