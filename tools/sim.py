"""A small discrete-event simulator on virtual time (host side, CPython).

Virtual time is an integer number of **microseconds** since the start of the
simulation (``sim.now``). Nodes in the meter core speak integer
**milliseconds** of driver time (ms since 1970 UTC); ``sim.now_ms`` is
``start_ms + now // 1000`` and ``sim.us_of_ms(ms)`` goes the other way.

Events are ``(time, sequence, function, args)`` in a heap: two events at the
same microsecond run in the order they were scheduled, so a run is a pure
function of its inputs (deterministic tie-breaking, no wall clock, no hash
order).

``run(speed=math.inf)`` processes events as fast as the CPU allows;
``run(speed=X)`` paces virtual time to X times wall time (X = 1: real time),
for adapters that meet the outside world (an emulated PLC modem on a serial
port, a data concentrator on UDP). Such adapters hand work in from other
threads with ``post(fn)``, or register an ``io`` hook that the paced loop calls
between events with the current virtual time.
"""
import heapq
import math
import threading
import time
from collections import deque

# 2026-01-01T00:00:00Z, the virtual start used across the project's benchmarks.
DEFAULT_START_MS = 1_767_225_600_000


class Simulator:
    """Event queue on integer-microsecond virtual time."""

    __slots__ = ("now", "start_ms", "_queue", "_seq", "_cancelled", "_posted",
                 "_io", "_stop", "events_run")

    def __init__(self, start_ms=DEFAULT_START_MS):
        self.now = 0                    # virtual µs since the start
        self.start_ms = int(start_ms)   # driver time (ms since 1970) at now == 0
        self._queue = []
        self._seq = 0
        self._cancelled = set()
        self._posted = deque()
        self._io = []
        self._stop = threading.Event()
        self.events_run = 0

    # -- clocks ---------------------------------------------------------------

    @property
    def now_ms(self):
        """Driver time in ms since 1970 UTC (what nodes are given)."""
        return self.start_ms + self.now // 1000

    def us_of_ms(self, ms):
        """Virtual µs of a driver time in ms."""
        return (int(ms) - self.start_ms) * 1000

    # -- scheduling -------------------------------------------------------------

    def at(self, t_us, fn, *args):
        """Run ``fn(*args)`` at virtual time ``t_us`` (not before now).

        Returns a handle for ``cancel``."""
        t = int(t_us)
        if t < self.now:
            t = self.now
        seq = self._seq
        self._seq = seq + 1
        heapq.heappush(self._queue, (t, seq, fn, args))
        return seq

    def after(self, dt_us, fn, *args):
        """Run ``fn(*args)`` ``dt_us`` microseconds from now."""
        return self.at(self.now + int(dt_us), fn, *args)

    def cancel(self, handle):
        """Forget a scheduled event (it is skipped when its time comes)."""
        self._cancelled.add(handle)

    def next_time(self):
        """Virtual time of the next event, or None."""
        q = self._queue
        while q and q[0][1] in self._cancelled:
            self._cancelled.discard(heapq.heappop(q)[1])
        return q[0][0] if q else None

    def pending(self):
        """Number of scheduled events (cancelled ones included until due)."""
        return len(self._queue)

    # -- outside world ----------------------------------------------------------

    def post(self, fn, *args):
        """Thread-safe: run ``fn(*args)`` at the current virtual time, from the
        loop's thread, as soon as the loop gets to it."""
        self._posted.append((fn, args))

    def add_io(self, fn):
        """Call ``fn(now_us)`` between events while running paced (non-blocking
        polls of serial ports or sockets belong here)."""
        self._io.append(fn)

    def stop(self):
        """Thread-safe: make ``run`` return at the next opportunity."""
        self._stop.set()

    # -- running ----------------------------------------------------------------

    def step(self):
        """Run the next event; False when there is none."""
        q = self._queue
        while q:
            t, seq, fn, args = heapq.heappop(q)
            if seq in self._cancelled:
                self._cancelled.discard(seq)
                continue
            self.now = t
            self.events_run += 1
            fn(*args)
            return True
        return False

    def run(self, until=None, speed=math.inf, max_events=None, idle_sleep=0.01):
        """Process events up to virtual time ``until`` (µs, inclusive).

        ``speed``: math.inf runs as fast as possible; a finite X keeps virtual
        time at X times wall time. Without ``until`` a fast run stops when the
        queue is empty; a paced run keeps waiting for posted work until
        ``stop()``. Returns the number of events run. At the end ``now`` is
        ``until`` (when given and reached).
        """
        self._stop.clear()
        q = self._queue
        heappop = heapq.heappop
        cancelled = self._cancelled
        n = 0
        paced = speed != math.inf
        if paced:
            if not speed > 0:
                raise ValueError("speed must be > 0 (math.inf: as fast as possible)")
            w0 = time.monotonic()
            v0 = self.now
            scale = speed * 1e6
        while not self._stop.is_set():
            if self._posted:
                self._drain_posted()
            if paced:
                for io in self._io:
                    io(self.now)
                if self._posted:
                    self._drain_posted()
                t = q[0][0] if q else None
                target_v = t if t is not None else until
                if until is not None and (target_v is None or target_v > until):
                    target_v = until
                if target_v is None:
                    time.sleep(idle_sleep)
                    self.now = max(self.now, v0 + int((time.monotonic() - w0) * scale))
                    continue
                wait = w0 + (target_v - v0) / scale - time.monotonic()
                if wait > 0:
                    time.sleep(min(wait, idle_sleep))
                    v = v0 + int((time.monotonic() - w0) * scale)
                    if v > self.now:
                        self.now = min(v, target_v)
                    continue
                if t is None or (until is not None and t > until):
                    self.now = max(self.now, target_v)
                    break
            if not q:
                break
            t, seq, fn, args = q[0]
            if until is not None and t > until:
                break
            heappop(q)
            if seq in cancelled:
                cancelled.discard(seq)
                continue
            self.now = t
            fn(*args)
            n += 1
            if max_events is not None and n >= max_events:
                break
        self.events_run += n
        if until is not None and self.now < until and (max_events is None or n < max_events) \
                and not self._stop.is_set():
            self.now = until
        return n

    def _drain_posted(self):
        posted = self._posted
        while posted:
            fn, args = posted.popleft()
            fn(*args)
