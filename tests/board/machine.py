# A stand-in for MicroPython's `machine` module, so board/main.py runs
# UNCHANGED under the MicroPython unix port (tests/test_board_loop.py,
# tools/board_loop.py). Put this directory first on MICROPYPATH: a file
# there shadows the unix port's built-in `machine`.
#
# The wiring comes from a JSON file named by the environment variable
# BOARD_MACHINE:
#   {"uart": {"0": "/dev/pts/5", "1": "/dev/pts/6"},   UART id -> tty path
#    "pins": {"14": "/tmp/x/button"},                 input pin -> file ("0"/"1")
#    "led": "/tmp/x/led",                             optional: LED state log
#    "rtc_offset_s": 0}                               RTC = host UTC + offset
# A UART's tty is put in raw mode with VMIN=0, so a read returns at once
# with what is there (the unix port has no O_NONBLOCK).
import os
import sys
import time

try:
    import termios
except ImportError:          # CPython without termios is not a target
    termios = None

_CONF = None


def _conf():
    global _CONF
    if _CONF is None:
        path = os.getenv("BOARD_MACHINE")
        _CONF = {}
        if path:
            import json
            with open(path) as f:
                _CONF = json.load(f)
    return _CONF


def _key(x):
    return str(x.id if isinstance(x, Pin) else x)


class Pin:
    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 4
    IRQ_RISING = 8

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        self.mode = mode
        self._v = 1 if pull == Pin.PULL_UP else 0
        self._path = _conf().get("pins", {}).get(str(id))
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            if self._path is not None and self.mode != Pin.OUT:
                try:
                    with open(self._path) as f:
                        return 1 if f.read(1) == "1" else 0
                except OSError:
                    return self._v
            return self._v
        self._v = 1 if v else 0
        led = _conf().get("led")
        if led and str(self.id) == str(_conf().get("led_pin", self.id)) and self.mode == Pin.OUT:
            with open(led, "a") as f:
                f.write("%d" % self._v)
        return None

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def toggle(self):
        self.value(1 - self._v)

    def __call__(self, v=None):
        return self.value(v)


class UART:
    def __init__(self, id, baudrate=9600, tx=None, rx=None, timeout=0, rxbuf=256, **kw):
        self.id = id
        self.baudrate = baudrate
        path = _conf().get("uart", {}).get(str(id))
        if path is None:
            raise ValueError("UART(%s): not wired (BOARD_MACHINE)" % id)
        self._f = open(path, "r+b")
        fd = self._f.fileno()
        if termios is not None:
            termios.setraw(fd)
            a = termios.tcgetattr(fd)
            a[6][6] = 0      # VMIN: a read returns at once
            a[6][5] = 0      # VTIME
            termios.tcsetattr(fd, termios.TCSANOW, a)
        self._pending = b""

    def init(self, baudrate=9600, **kw):
        self.baudrate = baudrate

    def _fill(self):
        got = self._f.read(512)
        if got:
            self._pending += got

    def any(self):
        if not self._pending:
            self._fill()
        return len(self._pending)

    def read(self, n=None):
        self._fill()
        p = self._pending
        if not p:
            return None
        if n is None or n >= len(p):
            self._pending = b""
            return p
        self._pending = p[n:]
        return p[:n]

    def write(self, data):
        n = self._f.write(data)
        return n

    def deinit(self):
        self._f.close()


class WDT:
    """Counts late feeds instead of resetting: a feed later than the
    timeout prints a line the test looks for."""

    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self.late = 0
        self._last = time.ticks_ms()

    def feed(self):
        t = time.ticks_ms()
        if time.ticks_diff(t, self._last) > self.timeout:
            self.late += 1
            sys.stderr.write("WDT: fed %d ms late\n" % (time.ticks_diff(t, self._last) - self.timeout))
        self._last = t


class RTC:
    def __init__(self, id=0):
        self._offset = int(_conf().get("rtc_offset_s", 0))

    def datetime(self, dt=None):
        if dt is not None:
            # set: remember the offset against the host clock
            from_civil = _days(dt[0], dt[1], dt[2]) * 86400 + dt[4] * 3600 + dt[5] * 60 + dt[6]
            self._offset = from_civil - int(time.time())
            return None
        t = time.gmtime(int(time.time()) + self._offset)
        # (year, month, day, weekday 0=Monday, hours, minutes, seconds, subseconds)
        return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0)


def _days(y, m, d):
    # days since 1970-01-01 (civil calendar)
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def reset():
    # A real board restarts from main.py; the process exits with 3 so the
    # harness can restart it.
    sys.exit(3)


def soft_reset():
    reset()


def reset_cause():
    return 1     # PWRON_RESET


PWRON_RESET = 1
WDT_RESET = 3


def unique_id():
    return b"\xe6\x61\x38\x3c\x4b\x2f\x29\x2d"


def freq(*a):
    return 125000000


def idle():
    time.sleep_ms(1)
