"""The `osgp-meter` command."""
import argparse
import sys


def _int(text):
    return int(text, 0)


def _hex(text):
    try:
        return bytes.fromhex(text.replace(" ", "").replace(":", ""))
    except ValueError:
        raise argparse.ArgumentTypeError("not hex: %r" % text) from None


def _add_client_commands(sub):
    """read / write / call, shared by the mep and optical clients."""
    r = sub.add_parser("read", help="read a table (full, or partial with --offset/--count)")
    r.add_argument("table", help="BTnn, ETnn, a number, or a catalogue name")
    r.add_argument("--offset", type=_int)
    r.add_argument("--count", type=_int)
    r.add_argument("--raw", action="store_true", help="hex only, no decoded fields")
    w = sub.add_parser("write", help="write a table (full, or partial with --offset)")
    w.add_argument("table")
    w.add_argument("data", type=_hex, help="table bytes as hex, little-endian as stored")
    w.add_argument("--offset", type=_int)
    c = sub.add_parser("call", help="run a procedure through BT07/BT08")
    c.add_argument("procedure", help="BPnn, EPnn, a number, or a catalogue name")
    c.add_argument("params", nargs="?", type=_hex, default=b"", help="parameters as hex")
    c.add_argument("--psn", type=_int, help="procedure sequence number (default: chosen)")


def build_parser():
    ap = argparse.ArgumentParser(prog="osgp-meter", description="An emulated OSGP smart meter.")
    sub = ap.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run one meter on its MEP and optical serial ports")
    s.add_argument("--profile", help="device profile (TOML); default: the built-in profile")
    s.add_argument("--mep", default="pty", help="device path, pyserial URL, or 'pty' (default)")
    s.add_argument("--optical", default="pty", help="device path, pyserial URL, or 'pty' (default)")
    s.add_argument("--state", metavar="DIR", help="keep non-volatile state in DIR across restarts")

    from . import catalogue
    catalogue.add_parser(sub)
    from . import history
    history.add_parser(sub)

    m = sub.add_parser("mep", help="MEP client: talk to a meter's MEP port")
    m.add_argument("--port", required=True, help="device path or pyserial URL (e.g. /dev/pts/3)")
    m.add_argument("--baud", type=int, default=9600)
    m.add_argument("--profile", help="take the key from this profile (default: built-in)")
    m.add_argument("--key", type=_hex, help="the 16-byte MEP key as hex (overrides the profile)")
    m.add_argument("--basic", action="store_true", help="use the MBK instead of the MAK")
    m.add_argument("--encrypt", action="store_true", help="RC4-encrypt requests")
    m.add_argument("--aes", action="store_true",
                   help="AES security mode (ET04.127 = 2): AES-CCM sealed requests (docs/security-modes.md)")
    m.add_argument("--serial", help="the meter's serial number (16 digits) for --aes (default: the profile's)")
    m.add_argument("--seq", type=_int, help="the meter's current sequence number, if known")
    m.add_argument("--timeout", type=float, default=0.5)
    msub = m.add_subparsers(dest="action", required=True)
    _add_client_commands(msub)
    from . import transaction
    transaction.add_parser(msub)            # osgp-meter mep … txn (docs/transactions.md)

    o = sub.add_parser("optical", help="optical (ANSI C12.18) client")
    o.add_argument("--port", required=True)
    o.add_argument("--baud", type=int, default=9600)
    o.add_argument("--profile", help="take the password from this profile (default: built-in)")
    o.add_argument("--level", choices=("mk", "pk", "rk", "none"), default="mk",
                   help="which key to log on with (none: no Security service)")
    o.add_argument("--password", type=_hex, help="the 20-byte password as hex (overrides)")
    o.add_argument("--timeout", type=float, default=2.0)
    _add_client_commands(o.add_subparsers(dest="action", required=True))

    b = sub.add_parser("bench", help="requests per second and bytes per meter, in one process")
    b.add_argument("--json", action="store_true")
    b.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    b.add_argument("--no-gurux", action="store_true", help="skip the Gurux DLMS reference point")

    # -- simulate / plot / bench metering (tools/simulate.py, tools/plot.py,
    #    tools/bench_metering.py; docs/simulate.md) --------------------------
    from . import simulate, plot
    simulate.add_parser(sub)
    plot.add_parser(sub)
    from . import bench_metering
    bench_metering.add_arguments(b)

    # -- PLC connectors and the data concentrator (tools/dc.py,
    #    tools/cnip_gateway.py, tools/modem.py; docs/dc.md, docs/connectors.md)
    from . import dc, cnip_gateway, modem
    dc.add_parser(sub)
    cnip_gateway.add_parser(sub)
    modem.add_parser(sub)

    # -- fleets, the demo and `bench fleet` (tools/fleet.py, tools/demo.py,
    #    tools/bench_fleet.py; docs/fleet.md)
    from . import fleet, demo, bench_fleet
    fleet.add_parser(sub)
    demo.add_parser(sub)
    bench_fleet.add_arguments(b)

    # -- a MicroPython board: deploy / mount / profile (tools/board.py;
    #    docs/board-deploy.md)
    from . import board
    board.add_parser(sub)
    # -- commands with their own parsers, run as they are under `python -m`
    for name, (_, text) in DELEGATED.items():
        d = sub.add_parser(name, help=text, add_help=False)
        d.add_argument("rest", nargs=argparse.REMAINDER)
    return ap


# name -> (module, help): the module's main(argv) parses the rest itself
DELEGATED = {
    "fw-image": ("fw_image", "build, inspect or corrupt a firmware image (docs/firmware-download.md)"),
    "pending-fleet": ("pending_fleet", "one pending TOU calendar in N meters over PLC, activated in one second"),
    "power-fail": ("power_fail", "kill a meter at random points and check what survives (docs/persistence.md)"),
}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in DELEGATED:
        import importlib
        module = importlib.import_module("osgp_host." + DELEGATED[argv[0]][0])
        return module.main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            from .serve import serve
            return serve(args.mep, args.optical, args.profile, args.state)
        if args.command == "catalogue":
            from . import catalogue
            return catalogue.run(args)
        if args.command in ("mep", "optical"):
            from . import client_cli
            return client_cli.run(args)
        if args.command == "log":
            from . import history
            return history.run(args)
        if args.command == "bench":
            from . import bench
            return bench.run(args)
        if args.command == "simulate":
            from . import simulate
            return simulate.run(args)
        if args.command == "plot":
            from . import plot
            return plot.run(args)
        if args.command == "dc":
            from . import dc
            return dc.run(args)
        if args.command == "gateway":
            from . import cnip_gateway
            return cnip_gateway.run(args)
        if args.command in ("modem", "mip-meter"):
            from . import modem
            return modem.run(args)
        if args.command == "fleet":
            from . import fleet
            return fleet.run(args)
        if args.command == "demo":
            from . import demo
            return demo.run(args)
        if args.command == "board":
            from . import board
            return board.run(args)
    except BrokenPipeError:
        return 1
    except Exception as exc:  # a clear one-line error for the user, not a traceback
        from .profile import ProfileError
        from .mep_client import MepError
        from .optical_client import OpticalError
        from .plc_client import PlcError
        if isinstance(exc, (ProfileError, MepError, OpticalError, PlcError, OSError, ValueError)):
            print("osgp-meter: %s" % exc, file=sys.stderr)
            return 2
        raise
    return 2


if __name__ == "__main__":
    sys.exit(main())
