# The board program: one OSGP meter on a MicroPython board.
#
#   PLC modem   machine.UART, Layer-2 MIP (uart_plc.py, meter/mip_link.py)
#   MEP port    machine.UART (uart_mep.py, meter/mep.py)
#   flash       non-volatile state, committed before any answer leaves
#               (flashstore.py, nvstate.py, meter/persist.py)
#   RTC         the UTC clock at boot; after that time.ticks_ms()
#   WDT, LED, service-pin button (status.py)
#
# A cooperative loop: take what the UARTs hold, let the sessions and the
# meter do what is due, commit what changed to flash, then write the
# answers, feed the watchdog, drive the LED, and sleep until the next
# deadline (at most IDLE_MS). Pins and UARTs come from profile.json
# (devprofile.py). docs/board.md describes it all; the same file runs under
# the MicroPython unix port with tests/board/machine.py (board in the loop).
import gc
import time

import machine

import devprofile
from flashstore import FlashStore
import nvstate

IDLE_MS = 20              # longest sleep: the button and the LED want a look this often
# Collect after every GC_THRESHOLD bytes allocated (profile "gc_threshold";
# 0: MicroPython's default, collect when the heap is full). Garbage is then
# reused low in the heap instead of being left in holes between long-lived
# objects: measured (ROMFS, metering), the smallest heap fell from ~261 KB
# to ~237 KB (8 KB: ~231 KB, but a MEP write took 1.5x as long; with 32 KB
# ~1.1x, on the unix port's 1 MB heap: a collection sweeps the whole heap).
# docs/board.md.
GC_THRESHOLD = 32768


class Clock:
    """Driver time (ms since 1970 UTC) from the RTC at boot plus
    time.ticks_ms() since, never wrapping."""

    def __init__(self, rtc, fallback_s=None):
        dt = rtc.datetime()     # (y, m, d, weekday, hh, mm, ss, subseconds)
        s = _utc(dt[0], dt[1], dt[2], dt[4], dt[5], dt[6])
        self.valid = dt[0] >= 2024          # an RTC that lost power starts in 2000/2021
        if not self.valid and fallback_s is not None:
            s = fallback_s
        self.ms = s * 1000
        self._t = time.ticks_ms()

    def __call__(self):
        t = time.ticks_ms()
        self.ms += time.ticks_diff(t, self._t)
        self._t = t
        return self.ms


def _utc(y, m, d, hh, mm, ss):
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return days * 86400 + hh * 3600 + mm * 60 + ss


def _uart(spec):
    kw = {"baudrate": spec.get("baud", 9600), "timeout": 0}
    if "tx" in spec:
        kw["tx"] = machine.Pin(spec["tx"])
        kw["rx"] = machine.Pin(spec["rx"])
    if "rxbuf" in spec:
        kw["rxbuf"] = spec["rxbuf"]
    return machine.UART(spec["uart"], **kw)


def _mem(debug, what):
    if debug:
        gc.collect()
        print("mem %s: alloc %d free %d" % (what, gc.mem_alloc(), gc.mem_free()))
        if debug > 1:           # which core modules are loaded by now (lazy ones load on use)
            import sys
            print("modules %s: %s" % (what, " ".join(sorted(
                m[11:] for m in sys.modules if m.startswith("osgp_meter.")))))
        if debug > 2:           # the largest free block ("max free sz", in GC blocks)
            import micropython
            micropython.mem_info()


class Board:
    """Everything the loop needs; build() boots, step() is one pass."""

    def __init__(self, path=devprofile.DEFAULT_PATH):
        board, config = devprofile.load(path)
        gct = board.get("gc_threshold", GC_THRESHOLD)
        if gct:
            gc.threshold(gct)
        self.debug = board.get("debug", 0)
        _mem(self.debug, "imports")
        from status import Status, FRESH, COMMISSIONED, FAULT
        self._fresh, self._commissioned, self._fault = FRESH, COMMISSIONED, FAULT
        self.fault = False
        self.clock = Clock(machine.RTC(), config.get("clock"))
        now = self.clock()
        self.status = Status(board, now)
        wdt_ms = board.get("wdt_ms", 8000)
        self.wdt = machine.WDT(timeout=wdt_ms) if wdt_ms else None
        if self.clock.valid:
            config.pop("clock", None)       # the meter's clock is the RTC's (offset 0)
        if config.get("neuron_id") is None and hasattr(machine, "unique_id"):
            # emulator choice: the chip's unique ID (its last 6 bytes) is
            # the Neuron ID when the profile names none
            uid = machine.unique_id()
            config["neuron_id"] = bytes(6 - len(uid[-6:])) + uid[-6:]
        want_metering = config.get("metering", False)
        from osgp_meter.firmware import Firmware, attach_metering
        self.store = FlashStore(board.get("nv_dir", "nv"))
        self.nv = None  # type: nvstate.NvState  # type: ignore[assignment]  # restore() sets it while Firmware() builds

        def restore(fw):
            # Saved tables go back before the PLC node and the metering
            # subsystems are built: they take their state from the tables.
            # Parts registered later get their bytes from adopt() (start).
            self.nv = nvstate.NvState(fw, self.store, board.get("nv_every_ms", 60000))
            self.nv.restore(now)
        fw = self.fw = Firmware(dict(config, plc="plc" in board, metering=False,
                                     optical="optical" in board, restore=restore), now)
        _mem(self.debug, "core")
        self.plc = None
        if fw.plc is not None:
            if config.get("discovery", True):
                from osgp_meter import plc_discovery, plc_repeat
                plc_repeat.enable(fw.plc)
                plc_discovery.enable(fw.plc)
            from uart_plc import PlcPort
            self.plc = PlcPort(_uart(board["plc"]), fw.plc, now)
        if want_metering:
            attach_metering(fw.meter, config, now)
        self.mep = self.optical = None
        if "mep" in board or "optical" in board:
            from uart_mep import MepPort
            if "mep" in board:
                self.mep = MepPort(_uart(board["mep"]), fw.mep)
            if "optical" in board:      # optional: a C12.18 port, the same byte-in/answer-out driver
                self.optical = MepPort(_uart(board["optical"]), fw.optical)
        self.nv.start(now)                  # the baseline later commits are measured from
        self.due = fw.tick(now)
        self.loops = 0
        self.answers = 0
        _mem(self.debug, "boot")

    def step(self):
        """One pass of the loop; returns how long it may sleep (ms)."""
        now = self.clock()
        fw = self.fw
        mep_out = b""
        worked = False
        if self.mep is not None:
            mep_out = self.mep.read(now)
            mep_out += self.mep.poll(now)
        opt_out = b""
        if self.optical is not None:
            opt_out = self.optical.read(now)
            opt_out += self.optical.poll(now)
        plc = self.plc
        sent = 0
        if plc is not None:
            sent = plc.sent
            worked = plc.read(now)
            plc.poll(now)
        due = self.due
        if due is not None and due <= now:
            self.due = due = fw.tick(now)
            worked = True
        if self.status.update(now) and plc is not None:
            plc.service_pin(now)
        plc_out = b""
        answered = bool(mep_out or opt_out)
        if plc is not None:
            plc_out = plc.out()
            answered = answered or plc.sent != sent      # frames, not just link ACKs
        try:
            if answered:
                self.nv.commit(now, True)       # nothing leaves before it is on flash
            elif worked:
                self.nv.commit(now, False)
            self.fault = False
        except OSError:
            # flash full or failing: what is not durable is not acknowledged
            # (the clients retry); the LED says so
            self.fault = True
            mep_out = opt_out = plc_out = b""
        if mep_out:
            self.mep.uart.write(mep_out)  # type: ignore[union-attr]  # mep_out is b"" without a MEP port
            self.answers += 1
            self.status.activity(now)
        if opt_out:
            self.optical.uart.write(opt_out)  # type: ignore[union-attr]  # likewise opt_out
        if plc_out:
            plc.uart.write(plc_out)  # type: ignore[union-attr]  # likewise plc_out
        if self.wdt is not None:
            self.wdt.feed()
        if self.fault:
            self.status.state = self._fault
        elif plc is not None:
            self.status.state = self._commissioned if plc.commissioned else self._fresh
        else:
            self.status.state = self._commissioned
        self.loops += 1
        if self.debug and (mep_out or answered):
            _mem(self.debug, "answer %d" % self.answers)     # under load
        wait = IDLE_MS
        for d in (due, self.mep.deadline if self.mep is not None else None,
                  self.optical.deadline if self.optical is not None else None,
                  plc.deadline if plc is not None else None):
            if d is not None and d - now < wait:
                wait = d - now
        return wait if wait > 0 else 0


def main(path=devprofile.DEFAULT_PATH):
    b = Board(path)
    print("board: up")
    while True:
        wait = b.step()
        if wait:
            time.sleep_ms(wait)


if __name__ == "__main__":
    main()
