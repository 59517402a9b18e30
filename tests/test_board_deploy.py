"""`osgp-meter board deploy / mount / profile` (tools/board.py) and the
freeze manifest (board/manifest.py), without a board: the dry run's exact
mpremote steps for both presets; the same steps replayed through mpremote
itself against a stand-in board (its filesystem a folder, its Python the
MicroPython unix port), after which the copied tree boots and answers a
MEP read, and a second deploy sends only what changed; the profile
conversion read back by board/devprofile.py on CPython and on the unix
port; the manifest freezes every file of board/FILES and the core."""
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

import pytest

from osgp_host import board as deploy
from osgp_host import board_loop, cli
from osgp_host import profile as profiles

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = shutil.which("micropython")
needs_mpy = pytest.mark.skipif(MICROPYTHON is None, reason="needs the MicroPython unix port")
MAK = bytes([1] * 16)


def commands(text):
    """The command lines of a dry run (comments dropped, continuations
    joined), split as the shell would."""
    out = []
    for chunk in text.replace("\\\n", " ").splitlines():
        if chunk.strip() and not chunk.startswith("#"):
            out.append(shlex.split(chunk))
    return out


def dry_run(tmp_path, preset, capsys, *extra):
    b = str(tmp_path / ("b-" + preset))
    rc = cli.main(["board", "deploy", "--port", "/dev/ttyACM0", "--preset", preset,
                   "--dry-run", "--build", b] + list(extra))
    assert rc == 0
    return b, capsys.readouterr().out


MODULES = ["devprofile", "flashstore", "nvstate", "status", "uart_mep", "uart_plc"]


@pytest.mark.parametrize("preset,march", [("pico", "armv6m"), ("esp32", "xtensawin")])
def test_dry_run_prints_the_exact_mpremote_steps(tmp_path, capsys, preset, march):
    b, out = dry_run(tmp_path, preset, capsys)
    assert out.startswith("# board %s (MicroPython port %s, mpy-cross -march=%s): "
                          % (preset, deploy.TARGETS[preset]["port"], march))
    stop, copy = commands(out)
    assert stop == ["mpremote", "connect", "/dev/ttyACM0", "exec",
                    'import os, sys; "main.py" in os.listdir() and os.remove("main.py"); '
                    'print("mpy", sys.implementation._mpy & 255)', "+", "reset"]
    root = [b + "/" + n for n in ("board_main.mpy", "devprofile.mpy", "flashstore.mpy", "nvstate.mpy",
                                  "profile.json", "status.mpy", "uart_mep.mpy", "uart_plc.mpy")]
    assert copy == (["mpremote", "connect", "/dev/ttyACM0",
                     "fs", "cp", "-r", b + "/lib", ":",
                     "+", "fs", "cp"] + root + [":",
                     "+", "fs", "cp", b + "/main.py", ":",
                     "+", "reset"])
    # the build the commands copy
    prof = json.load(open(os.path.join(b, "profile.json")))
    assert prof["board"] == board_loop.preset(preset)["board"]
    with open(os.path.join(b, "main.py")) as f:
        assert f.read() == deploy.MAIN_STUB


def test_frozen_deploy_copies_main_and_profile_only(tmp_path, capsys):
    b, out = dry_run(tmp_path, "pico", capsys, "--frozen")
    stop, copy = commands(out)
    assert copy == ["mpremote", "connect", "/dev/ttyACM0",
                    "fs", "cp", b + "/profile.json", ":",
                    "+", "fs", "cp", b + "/main.py", ":", "+", "reset"]
    assert sorted(os.listdir(b)) == [deploy.MARKER, "main.py", "profile.json"]


def test_build_holds_every_module_compiled_as_mpy_v6(tmp_path):
    b = deploy.build(str(tmp_path / "b"), "esp32")
    files = b.files()
    core = sorted("lib/osgp_meter/" + n[:-3] + ".mpy" for n in os.listdir(os.path.join(ROOT, "meter"))
                  if n.endswith(".py"))
    board = sorted(m + ".mpy" for m in MODULES) + ["board_main.mpy"]
    assert sorted(files) == sorted(core + board + ["main.py", "profile.json"])
    for f in files:
        if f.endswith(".mpy"):
            head = open(b.path(f), "rb").read(4)
            # 'M', version 6, no native code (arch 0), 31-bit small ints: loads on any 32-bit port
            assert head == b"M\x06\x00\x1f", (f, head)
    # deterministic: the same sources give the same bytes (mpremote skips them)
    again = deploy.build(str(tmp_path / "b2"), "esp32")
    for f in files:
        assert open(b.path(f), "rb").read() == open(again.path(f), "rb").read(), f


def test_build_refuses_a_folder_that_is_not_its_own(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("x")
    with pytest.raises(deploy.BoardError):
        deploy.build(str(tmp_path / "mine"), "pico")
    assert (tmp_path / "mine" / "precious.txt").exists()


def _canon(v):
    """A dict/bytes/list structure as text, the same on CPython and MicroPython."""
    if isinstance(v, dict):
        return "{" + ",".join(_canon(k) + ":" + _canon(v[k]) for k in sorted(v)) + "}"
    if isinstance(v, (bytes, bytearray)):
        return "h" + "".join("%02x" % x for x in v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_canon(x) for x in v) + "]"
    return repr(v)


CANON_SRC = '''
def _canon(v):
    if isinstance(v, dict):
        return "{" + ",".join(_canon(k) + ":" + _canon(v[k]) for k in sorted(v)) + "}"
    if isinstance(v, (bytes, bytearray)):
        return "h" + "".join("%02x" % x for x in v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_canon(x) for x in v) + "]"
    return repr(v)
'''


def test_profile_conversion_round_trips_through_the_boards_reader(tmp_path, capsys):
    toml = tmp_path / "p.toml"
    toml.write_text('[keys]\nmak = "0f0e0d0c0b0a09080706050403020100"\n[mep]\nsequence = 0x1234\n')
    out = tmp_path / "profile.json"
    assert cli.main(["board", "profile", str(toml), "--preset", "esp32", "--out", str(out)]) == 0
    assert "profile.json" in capsys.readouterr().out
    want = profiles.load_config(str(toml))
    want.pop("clock", None)                  # the board's RTC gives the time
    board, cfg = deploy._devprofile().load(str(out))
    assert board == board_loop.preset("esp32")["board"]
    assert cfg == want
    assert cfg["keys"][0x08] == bytes.fromhex("0f0e0d0c0b0a09080706050403020100")
    # a board profile in JSON goes through unchanged (and is checked)
    assert cli.main(["board", "profile", str(out), "--out", str(tmp_path / "again.json")]) == 0
    assert (tmp_path / "again.json").read_text() == out.read_text()
    if MICROPYTHON is None:
        return
    # ... and the board's own reader on MicroPython reads the same config
    script = tmp_path / "read.py"
    script.write_text(CANON_SRC + "import devprofile\nb, c = devprofile.load(%r)\n"
                      "print(_canon(b))\nprint(_canon(c))\n" % str(out))
    proc = subprocess.run([MICROPYTHON, str(script)], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, MICROPYPATH=os.path.join(ROOT, "board")))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [_canon(board), _canon(want)]


def test_a_bad_profile_is_a_clear_error_and_builds_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"meter": {"keys": {"mak": "zz"}}}')
    rc = cli.main(["board", "deploy", "--port", "/dev/null", "--profile", str(bad), "--dry-run",
                   "--build", str(tmp_path / "b")])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("osgp-meter board: profile:") and "\n" == err[-1]
    assert not (tmp_path / "b").exists()
    bad.write_text("[1, 2]")
    assert cli.main(["board", "profile", str(bad)]) == 2


def test_freeze_manifest_names_every_board_file_and_the_core(tmp_path, monkeypatch):
    """Run board/manifest.py as MicroPython's manifestfile.py does (cwd =
    board/, include/package/module given), with its link tree in tmp."""
    frozen = {}
    included = []

    def add(target, path):
        assert os.path.isfile(path), path
        frozen[target] = os.path.realpath(path)

    def include(path, **kw):
        included.append(path)

    def package(name, files=None, base_path=".", opt=None):
        top = os.path.join(base_path, name)
        for dirpath, _, names in os.walk(top, followlinks=True):
            for n in names:
                if n.endswith(".py"):
                    p = os.path.join(dirpath, n)
                    add(os.path.relpath(p, base_path), p)

    def module(path, base_path=".", opt=None):
        add(path, os.path.join(base_path, path))

    tree = tmp_path / "freeze"
    monkeypatch.setenv("OSGP_FREEZE_TREE", str(tree))
    monkeypatch.chdir(os.path.join(ROOT, "board"))
    with open("manifest.py") as f:
        exec(f.read(), {"include": include, "package": package, "module": module,
                        "options": None, "metadata": lambda **kw: None, "require": lambda *a, **kw: None})
    assert included == ["$(PORT_DIR)/boards/manifest.py"]
    board = os.path.join(ROOT, "board")
    for f in board_loop.board_files():
        target = "board_main.py" if f == "main.py" else f
        assert frozen.get(target) == os.path.realpath(os.path.join(board, f)), f
    for n in os.listdir(os.path.join(ROOT, "meter")):
        if n.endswith(".py"):
            assert frozen.get("osgp_meter/" + n) == os.path.realpath(os.path.join(ROOT, "meter", n)), n
    assert len(frozen) == len(board_loop.board_files()) + len(deploy.core_sources())


def test_mount_stages_links_and_prints_the_mpremote_command(tmp_path, capsys):
    stage = str(tmp_path / "stage")
    assert cli.main(["board", "mount", "--port", "/dev/ttyUSB0", "--preset", "esp32",
                     "--stage", stage, "--dry-run"]) == 0
    (cmd,) = commands(capsys.readouterr().out)
    assert cmd == ["mpremote", "connect", "/dev/ttyUSB0", "mount", "-l", stage,
                   "+", "run", stage + "/main.py"]
    assert os.path.realpath(os.path.join(stage, "osgp_meter")) == os.path.join(ROOT, "meter")
    for f in board_loop.board_files():
        assert os.path.realpath(os.path.join(stage, f)) == os.path.join(ROOT, "board", f)
    doc = json.load(open(os.path.join(stage, "profile.json")))
    assert doc["board"]["wdt_ms"] == 0 and doc["board"]["name"] == "esp32"


# -- the commands replayed through mpremote against a stand-in board -------------------

# The stand-in board's Python: the MicroPython unix port with a folder (its
# flash) mounted as its root filesystem "/", as a board's flash is, running
# what mpremote sends, with raw-REPL style replies: output, 0x04, the error
# text, 0x04.
BOARD_REPL = r'''
import os, sys, vfs
vfs.umount("/")
vfs.mount(vfs.VfsPosix(sys.argv[1]), "/")
os.chdir("/")
g = {}
while True:
    n = sys.stdin.readline()
    if not n:
        break
    code = sys.stdin.read(int(n))
    err = ""
    try:
        exec(code, g)
    except BaseException as e:
        import io
        s = io.StringIO()
        sys.print_exception(e, s)
        err = s.getvalue()
    sys.stdout.write("\x04" + err + "\x04")
'''


class StandInBoard:
    """What mpremote's SerialTransport does on a serial line, done by a
    MicroPython unix-port process whose current folder is the flash.
    machine.reset() restarts the process (a hard reset)."""

    def __init__(self, flash, script):
        self.flash = flash
        self.script = script
        self.resets = 0
        self.proc = None
        self.boot()

    def boot(self):
        self.close_proc()
        self.proc = subprocess.Popen([MICROPYTHON, self.script, self.flash],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def close_proc(self):
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait(10)
            self.proc.stdout.close()

    def transport(self):
        from mpremote.transport_serial import SerialTransport
        board = self

        class T(SerialTransport):
            def __init__(self):                 # no serial line
                self.in_raw_repl = False
                self.mounted = False
                self._pending = None

            def enter_raw_repl(self, soft_reset=True, timeout_overall=10):
                self.in_raw_repl = True

            def exit_raw_repl(self):
                self.in_raw_repl = False

            def close(self):
                pass

            def exec_raw_no_follow(self, command):
                if isinstance(command, bytes):
                    command = command.decode()
                if "machine.reset()" in command:
                    board.resets += 1
                    board.boot()
                    self._pending = (b"", b"")
                    return
                data = command.encode()
                board.proc.stdin.write(b"%d\n" % len(data) + data)
                board.proc.stdin.flush()
                out = b""
                while out.count(b"\x04") < 2:
                    c = board.proc.stdout.read(1)
                    assert c, "the stand-in board died"
                    out += c
                first = out.index(b"\x04")
                self._pending = (out[:first], out[first + 1:-1])

            def follow(self, timeout, data_consumer=None):
                out, err = self._pending
                if data_consumer and out:
                    data_consumer(out)
                return out, err

        return T()


def mpremote_run(argv, board, monkeypatch, capsys):
    """Run one mpremote command line (argv[0] == "mpremote") in this
    process, its `connect` giving the stand-in board."""
    import mpremote.main as mm
    t = board.transport()

    def connect(state, args=None):
        state.transport = t
    monkeypatch.setattr(mm, "do_connect", connect)
    monkeypatch.setitem(mm._COMMANDS, "connect", (connect, mm._COMMANDS["connect"][1]))
    monkeypatch.setattr(sys, "argv", list(argv))
    rc = mm.main()
    said = capsys.readouterr()
    assert rc == 0, said.out + said.err
    return said.out


@needs_mpy
def test_replayed_deploy_boots_answers_mep_and_redeploys_only_changes(tmp_path, capsys, monkeypatch):
    pytest.importorskip("mpremote")
    from osgp_host.mep_client import MepClient
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "main.py").write_text("print('an old program')\n")
    (flash / "nv").mkdir()
    (flash / "nv" / "log").write_bytes(b"state")             # a deploy leaves nv/ alone
    repl = tmp_path / "repl.py"
    repl.write_text(BOARD_REPL)
    board = StandInBoard(str(flash), str(repl))
    try:
        b, out = dry_run(tmp_path, "pico", capsys)
        stop, copy = commands(out)
        said = mpremote_run(stop, board, monkeypatch, capsys)
        assert "mpy 6" in said and board.resets == 1
        assert not (flash / "main.py").exists()
        said = mpremote_run(copy, board, monkeypatch, capsys)
        assert board.resets == 2
        got = sorted(os.path.relpath(os.path.join(d, n), flash).replace(os.sep, "/")
                     for d, _, ns in os.walk(flash) for n in ns)
        build = deploy.Build(b, "pico", None, None)
        assert got == sorted(build.files() + ["nv/log"])
        for f in build.files():
            assert (flash / f).read_bytes() == open(os.path.join(b, f), "rb").read(), f
        assert (flash / "nv" / "log").read_bytes() == b"state"

        # a second deploy of the same build copies main.py only (step 1 removed it)
        mpremote_run(stop, board, monkeypatch, capsys)
        said = mpremote_run(copy, board, monkeypatch, capsys)
        assert said.count("Up to date:") == len(build.files()) - 1, said
    finally:
        board.close_proc()

    # the copied tree boots as a board would (sys.path '', /lib) and answers on MEP
    (flash / "nv" / "log").unlink()
    plc, mep = board_loop.MasterPort(), board_loop.MasterPort(timeout=0.6)
    wiring = tmp_path / "machine.json"
    wiring.write_text(json.dumps({"uart": {"0": plc.name, "1": mep.name}}))
    env = dict(os.environ, BOARD_MACHINE=str(wiring),
               MICROPYPATH=":".join([board_loop.STANDIN, str(flash), str(flash / "lib")]))
    log = open(tmp_path / "board.log", "wb")
    proc = subprocess.Popen([MICROPYTHON, "-X", "heapsize=1M", "main.py"], cwd=str(flash), env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        end = time.monotonic() + 30
        while b"board: up" not in (tmp_path / "board.log").read_bytes():
            assert proc.poll() is None and time.monotonic() < end, (tmp_path / "board.log").read_text()
            time.sleep(0.05)
        want = bytes.fromhex(json.load(open(flash / "profile.json"))["meter"]["image"]["1"])
        assert MepClient(mep, MAK, seq=None, retries=2).read(1) == want
    finally:
        proc.kill()
        proc.wait(5)
        log.close()
        plc.close()
        mep.close()


def test_the_readme_worked_example_is_what_deploy_prints(capsys, monkeypatch):
    """The README's "On a board" dry run, command for command (run from the
    checkout, default build folder build/board-pico)."""
    text = open(os.path.join(ROOT, "README.md")).read()
    block = text.split("## On a board", 1)[1].split("```console\n", 1)[1].split("```", 1)[0]
    first, rest = block.split("\n", 1)
    assert first == "$ osgp-meter board deploy --port /dev/ttyACM0 --dry-run"
    monkeypatch.chdir(ROOT)
    assert cli.main(["board", "deploy", "--port", "/dev/ttyACM0", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert commands(rest) == commands(out)
    assert [ln for ln in rest.splitlines() if ln.startswith("#")][1:] == \
        [ln for ln in out.splitlines() if ln.startswith("#")][1:]


FAKE_MPREMOTE = """#!%s
import json, sys
with open(%r, "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
if "exec" in sys.argv:
    print("mpy %%d" %% %d)
"""


@pytest.mark.parametrize("mpy", [6, 5])
def test_deploy_runs_the_printed_steps_in_order_and_checks_the_mpy_version(tmp_path, capsys, monkeypatch, mpy):
    """A recording `mpremote` first on PATH: deploy runs what the dry run
    prints, and stops before copying when the firmware loads another .mpy
    version."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    calls = tmp_path / "calls"
    fake = bindir / "mpremote"
    fake.write_text(FAKE_MPREMOTE % (sys.executable, str(calls), mpy))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir) + os.pathsep + os.environ["PATH"])
    monkeypatch.setattr(deploy, "RESET_PAUSE", 0.0)
    b = str(tmp_path / "b")
    args = ["board", "deploy", "--port", "socket://board:23", "--preset", "esp32", "--build", b]
    rc = cli.main(args)
    ran = [["mpremote"] + json.loads(ln) for ln in calls.read_text().splitlines()]
    printed = [c for c in commands(capsys.readouterr().out) if c[0] == "mpremote"]   # not "mpy 6"
    assert cli.main(args + ["--dry-run"]) == 0
    assert commands(capsys.readouterr().out) == printed
    if mpy == 6:
        assert rc == 0 and ran == printed
    else:
        assert rc == 2 and ran == printed[:1]          # stopped, nothing copied
