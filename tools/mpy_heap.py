"""How much heap the default meter needs on MicroPython.

Runs tests/core/mpy_soak.py (boot the default meter, answer N secured MEP
reads) under the MicroPython unix port with `-X heapsize=…`, and bisects the
smallest heap (in 1 KB steps) at which it passes.

    python -m osgp_host.mpy_heap [--reads 1000] [--low 8] [--high 256]

Board mode (--board): the board program itself, board/main.py under the
unix port with the `machine` stand-in (tools/board_loop.py), with the
default profile (MEP, PLC behind the emulated modem, discovery, metering),
commissioned on a virtual channel, under a load of MEP and PLC requests. It
passes when every answer is right and the board logs no error. --rom runs
the code in place from a ROMFS image (as frozen or ROMFS code does on a
board): the figure is then the heap beyond the image, the runtime data.
--memmap prints where the bytes go, step by step (tests/board/memmap.py).

    python -m osgp_host.mpy_heap --board [--rom] [--no-metering] [--memmap]

--imports: what each meter/ module costs, in heap, once imported (code
loaded from its .mpy into the heap: bytecode, interned names, function and
class objects, module data): first the modules a default meter (the soak's)
holds after boot, in import order, then every other module on its own on
top of those, with the modules it pulls in.

    python -m osgp_host.mpy_heap --imports
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _layout(tmp):
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import run_micropython
    run_micropython.layout(tmp)


def soak(heap_kb, reads, tmp):
    env = dict(os.environ, MICROPYPATH=tmp + ":.frozen")
    proc = subprocess.run([shutil.which("micropython"), "-X", "heapsize=%dK" % heap_kb,
                           os.path.join(ROOT, "tests", "core", "mpy_soak.py"), str(reads)],
                          env=env, capture_output=True, text=True, timeout=600)
    ok = proc.returncode == 0 and proc.stdout.startswith("soak:")
    return ok, (proc.stdout + proc.stderr).strip().splitlines()[-1:]


def smallest_heap(reads=1000, low=8, high=256):
    with tempfile.TemporaryDirectory() as tmp:
        _layout(tmp)
        ok, line = soak(high, reads, tmp)
        if not ok:
            raise RuntimeError("fails even with %d KB: %s" % (high, line))
        best = (high, line)
        while low < high:
            mid = (low + high) // 2
            ok, line = soak(mid, reads, tmp)
            if ok:
                high = mid
                best = (mid, line)
            else:
                low = mid + 1
        return best


# -- board mode -------------------------------------------------------------------------

BOARD_NID = bytes.fromhex("00e0b0a4d001")


class BoardRig:
    """A channel (topology small, meters m001/m002/m004/m005 commissioned),
    the emulated modem at m003 for the board, a DC, a MEP pty, and the
    board's profile: commissioned as 1/3 in domain 42."""

    def __init__(self, work, metering=True, rom=None):
        from .board_loop import MasterPort, device_profile
        from .dc import LocalFleet
        from .modem import Modem
        from . import ports
        self.work = work
        self.rom = rom
        self.fleet = LocalFleet("small", exclude=("m003",), metering=False)
        self.pty = ports.PtyPort()
        self.modem = Modem(self.fleet.channel, "m003", self.pty)
        self.mep = MasterPort(timeout=0.6)
        self.profile = device_profile("pico", neuron_id=BOARD_NID, plc_domain=b"\x42",
                                      plc_subnet=1, plc_node=3, metering=metering)
        self.dc = self.fleet.dc(speed=1.0, retries=1)
        self.runs = 0

    def trial(self, heap_kb, debug=1):
        """Boot the board with this heap and load it; (ok, board log)."""
        from .board_loop import BoardProcess, BoardError
        from .mep_client import MepClient, MepError
        from .plc_client import PlcError
        self.runs += 1
        d = os.path.join(self.work, "run%d" % self.runs)
        b = BoardProcess(d, plc_tty=self.pty.name, mep_tty=self.mep.name, profile=self.profile,
                         heapsize="%dK" % heap_kb, lib=os.path.join(self.work, "lib"),
                         debug=debug, rom=self.rom)
        self.mep.flush_input()
        self.errors = []              # requests that failed on a board that kept running
        try:
            b.start(timeout=10)
        except BoardError:
            text = b.text()
            b.kill()
            return False, text
        want = bytes.fromhex(self.profile["meter"]["image"]["1"])
        c = MepClient(self.mep, bytes([1] * 16), seq=None, retries=1)
        self.dc.forget((1, 3))

        def load(what, fn, check):
            try:
                if not check(fn()):
                    self.errors.append(what + ": wrong answer")
            except (MepError, PlcError, OSError) as exc:
                self.errors.append("%s: %s" % (what, exc))
        load("MEP BT01", lambda: c.read(1), lambda r: r == want)
        load("PLC BT01", lambda: self.dc.read((1, 3), "BT01"), lambda r: r == want)
        for i in range(3):
            load("MEP write BT06", lambda: c.write(6, bytes((i,)) * 16, offset=16 * i) or 1, bool)
            load("MEP BT23", lambda: c.read(23), lambda r: len(r) > 100)   # segmented answer
            load("PLC ET04", lambda: self.dc.read((1, 3), "ET04"), lambda r: len(r) == 139)
            load("MEP ET04", lambda: c.read(2048 + 4, 0, 139), lambda r: r[4:10] == BOARD_NID)
        load("MEP BP10", lambda: c.call(10, bytes.fromhex("031a0b1a0c2238")), lambda r: r[0] == 0)
        alive = b.alive
        b.kill()
        text = b.text()
        # a heap too small shows as a MemoryError (or any error) in the board's log
        ok = alive and "Error" not in text and "Traceback" not in text
        if ok and len(self.errors) > 2:
            ok = False                # a board that answers nothing is no pass either
        shutil.rmtree(d, ignore_errors=True)
        return ok, text

    def close(self):
        self.mep.close()
        self.pty.close()


def board_figures(text):
    """{"imports": alloc, "core": .., "boot": .., "peak": max over answers,
    "image": ROMFS bytes} from a board's debug log."""
    import re
    out = {}
    for what, alloc in re.findall(r"^mem (\w+)(?: \d+)?: alloc (\d+)", text, re.M):
        alloc = int(alloc)
        if what == "answer":
            out["peak"] = max(out.get("peak", 0), alloc)
        else:
            out[what] = alloc
    m = re.search(r"^rom image (\d+)", text, re.M)
    if m:
        out["image"] = int(m.group(1))
    return out


def smallest_board_heap(metering=True, rom=False, low=16, high=1024, out=None):
    """Bisect the board's heap (KB). Returns (kb, figures of the last passing
    run, image KB (0 without --rom))."""
    from .board_loop import board_image, layout
    out = out or sys.stdout
    with tempfile.TemporaryDirectory() as work:
        image = None
        extra = 0
        if rom:
            image = os.path.join(work, "board.img")
            extra = -(-board_image(image) // 1024) + 1    # the image's own buffer
        else:
            os.makedirs(os.path.join(work, "lib"))
            layout(os.path.join(work, "lib"))
        rig = BoardRig(work, metering, image)
        try:
            ok, text = rig.trial(high + extra)
            if not ok:
                raise RuntimeError("fails even with %d KB:\n%s" % (high, text[-1500:]))
            best = (high, board_figures(text))
            while low < high:
                mid = (low + high) // 2
                ok, text = rig.trial(mid + extra)
                if not ok and "MemoryError" not in text:
                    ok, text = rig.trial(mid + extra)   # a client timeout on a busy machine: once more
                print("  %4d KB: %s" % (mid, "ok" if ok else "fails"), file=out, flush=True)
                if ok:
                    high = mid
                    best = (mid, board_figures(text))
                else:
                    low = mid + 1
        finally:
            rig.close()
        return best[0], best[1], extra


def memmap(rom=False, metering=True):
    """tests/board/memmap.py's lines: where the heap goes, step by step."""
    import json
    from .board_loop import board_image, layout, device_profile, STANDIN, BOARD
    with tempfile.TemporaryDirectory() as work:
        with open(os.path.join(work, "profile.json"), "w") as f:
            json.dump(device_profile("pico", neuron_id=BOARD_NID, metering=metering), f)
        if rom:
            image = os.path.join(work, "board.img")
            board_image(image)
            path = STANDIN
        else:
            image = ""
            os.makedirs(os.path.join(work, "lib"))
            layout(os.path.join(work, "lib"))
            path = ":".join((STANDIN, BOARD, os.path.join(work, "lib")))
        env = dict(os.environ, MICROPYPATH=path)
        proc = subprocess.run([shutil.which("micropython"), "-X", "heapsize=2M",
                               os.path.join(ROOT, "tests", "board", "memmap.py"), image,
                               "profile.json"], cwd=work, env=env, capture_output=True,
                              text=True, timeout=120)
        if proc.returncode:
            return (proc.stdout + proc.stderr).rstrip()
        return _memmap_table(proc.stdout)


def _memmap_table(text):
    """memmap.py's lines -> a table: step, heap bytes, of which interned
    names (qstr pool growth: in flash when the code is frozen)."""
    import re
    rows = []
    q_last = None
    for line in text.splitlines():
        m = re.search(r"n_total_bytes=(\d+)", line)
        if m:
            q = int(m.group(1))
            if rows and q_last is not None:
                rows[-1][2] = q - q_last
            q_last = q
        elif line.startswith("code+module data") or line.startswith("tables written"):
            rows.append([line, None, None])
        elif line.strip():
            name, _, n = line.rstrip().rpartition(" ")
            rows.append([name.strip(), int(n), 0])
    out = ["%-60s %8s %8s" % ("step", "heap", "qstr")]
    qs = 0
    for name, n, q in rows:
        if n is None:
            out.append(name)
        else:
            qs += q or 0
            out.append("%-60s %8d %8d" % (name[:60], n, q or 0))
    out.append("interned names (qstr pools) in all: %d bytes" % qs)
    return "\n".join(out)


# -- per-module import cost ---------------------------------------------------------------

_IMPORTS = """
import gc, sys, micropython
base = sys.argv[1].split(",") if sys.argv[1] else []
extra = sys.argv[2] if len(sys.argv) > 2 else ""
gc.collect()
print("- 0 -", gc.mem_alloc())
micropython.qstr_info()
for m in base + ([extra] if extra else []):
    before = set(sys.modules)
    __import__("osgp_meter." + m)
    gc.collect()
    new = sorted(x[11:] for x in sys.modules if x not in before and x != "osgp_meter." + m)
    print("%s %d %s" % (m, gc.mem_alloc(), ",".join(x for x in new if x) or "-"))
    micropython.qstr_info()
"""
QSTR_ENTRY = 11     # a qstr pool entry on 64-bit: hash (2), length (1), pointer (8)


def import_costs(tmp):
    """[(module, heap bytes, .mpy bytes, modules it pulled in, in_default)]."""
    env = dict(os.environ, MICROPYPATH=tmp)
    exe = shutil.which("micropython")

    def run(base, extra=""):
        """[(module, heap, names, new)]: heap = the growth of gc.mem_alloc()
        minus the qstr pools' growth, plus what the module's names take
        in them (string bytes + one pool entry each): a new pool, which
        doubles, would otherwise count whole for whichever module opened it."""
        import re
        proc = subprocess.run([exe, "-X", "heapsize=4M", "-c", _IMPORTS, ",".join(base), extra],
                              env=env, capture_output=True, text=True, timeout=60)
        rows = []
        last = None
        pending = None
        for line in proc.stdout.splitlines():
            q = re.search(r"n_qstr=(\d+), n_str_data_bytes=(\d+), n_total_bytes=(\d+)", line)
            if q:
                q = [int(x) for x in q.groups()]
                if pending is not None:
                    m, alloc, new = pending
                    names = (q[1] - last[1][1]) + QSTR_ENTRY * (q[0] - last[1][0])
                    heap = alloc - last[0] - (q[2] - last[1][2]) + names
                    if not extra or m == extra:
                        rows.append((m, heap, names, "" if new == "-" else new))
                    last = (alloc, q)
                else:
                    last = (last[0], q)
                pending = None
            elif line.startswith("- 0 -"):
                last = (int(line.split()[-1]), None)
            elif not line.startswith("Q(") and line.strip():
                m, alloc, new = line.split(" ")
                pending = (m, int(alloc), new)
        return rows

    # what a default meter holds after boot, in import order
    proc = subprocess.run([exe, "-X", "heapsize=4M", "-c",
                           "import sys\nfrom osgp_meter import access\n"
                           "from osgp_meter.firmware import Firmware\n"
                           "Firmware({'keys': {access.ROLE_MAK: bytes(16)}}, 0)\n"
                           "print(','.join(m[11:] for m in sys.modules if m.startswith('osgp_meter.')))"],
                          env=env, capture_output=True, text=True, timeout=60)
    default = [m for m in proc.stdout.strip().split(",") if m]
    order = ["access", "catalogue_data", "store", "device", "keys", "mep", "firmware"]
    base = [m for m in order if m in default] + [m for m in default if m not in order]
    rows = []
    got = set()
    for m, n, names, new in run(base):
        rows.append((m, n, names, new, True))
        got.add(m)
        got.update(x for x in new.split(",") if x)
    pkg = os.path.join(tmp, "osgp_meter")
    for name in sorted(os.listdir(pkg)):
        m = name[:-4]
        if not name.endswith(".mpy") or m in got or m == "__init__":
            continue
        for mm, n, names, new in run(base, m):
            rows.append((mm, n, names, new, False))
    size = {}
    for name in os.listdir(pkg):
        size[name[:-4]] = os.path.getsize(os.path.join(pkg, name))
    return [(m, n, q, size.get(m, 0), new, d) for m, n, q, new, d in rows]


def imports_table(rows):
    out = ["%-22s %8s %7s %7s  %s" % ("module", "heap", "names", ".mpy", "(+ modules it pulls in)"),
           "-- a default meter after boot (the soak's), in import order"]
    total = names = 0
    for m, n, q, sz, new, d in rows:
        if d:
            total += n
            names += q
            out.append("%-22s %8d %7d %7d  %s" % (m, n, q, sz, "+" + new if new else ""))
    out.append("%-22s %8d %7d" % ("(total)", total, names))
    out.append("-- every other module on top of those (with what it pulls in)")
    for m, n, q, sz, new, d in sorted((r for r in rows if not r[5]), key=lambda r: -r[1]):
        out.append("%-22s %8d %7d %7d  %s" % (m, n, q, sz, "+" + new if new else ""))
    out.append("heap: gc.mem_alloc() growth on the 64-bit unix port, the qstr pools' slack "
               "left out; names: of which interned names (string bytes + %d-byte pool "
               "entries; in flash when frozen)" % QSTR_ENTRY)
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reads", type=int, default=1000)
    ap.add_argument("--low", type=int, default=None)
    ap.add_argument("--high", type=int, default=None)
    ap.add_argument("--board", action="store_true", help="the board program (board/main.py)")
    ap.add_argument("--rom", action="store_true", help="board: code in place from a ROMFS image")
    ap.add_argument("--no-metering", action="store_true", help="board: metering off")
    ap.add_argument("--memmap", action="store_true", help="board: where the bytes go")
    ap.add_argument("--imports", action="store_true", help="heap cost of each meter/ module")
    args = ap.parse_args(argv)
    if args.imports:
        with tempfile.TemporaryDirectory() as tmp:
            _layout(tmp)
            print(imports_table(import_costs(tmp)))
        return 0
    if args.board:
        metering = not args.no_metering
        if args.memmap:
            print(memmap(args.rom, metering))
            return 0
        kb, fig, extra = smallest_board_heap(metering, args.rom, args.low or 16,
                                             args.high or 1024)
        what = "beyond the %d KB code image" % extra if args.rom else "code loaded into the heap"
        print("board (%s): smallest heap %d KB (%s); last passing run: %s" % (
            "metering" if metering else "no metering", kb, what,
            ", ".join("%s %d" % kv for kv in sorted(fig.items()))))
        return 0
    kb, line = smallest_heap(args.reads, args.low or 8, args.high or 256)
    print("smallest heap: %d KB (%s)" % (kb, line[0] if line else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
