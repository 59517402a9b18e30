# The DC's link drivers: its PlcNode on a Channel (ChannelLink, virtual
# time) or over CN/IP to a gateway (CnipLink, wall-clock time).
# Split out of tools/dc.py (docs/dc.md); importable from osgp_host.dc too.
import math
import os
import socket
import threading
import time

from osgp_meter import cnip
from osgp_meter.lontalk import FrameError
from osgp_meter.plc_node import REQUEST, AddressBook

from .dc_address import DEFAULT_TX_RETRIES


# ---------------------------------------------------------------- links

class _Link:
    """Where the DC's PlcNode meets the line. Subclasses: _now(), _emit(frames),
    _call(fn(now) -> frames), _wait(box)."""

    def __init__(self, plc):
        self.plc = plc

    def transaction(self, dest, apdu, service=REQUEST, retry=DEFAULT_TX_RETRIES, tx_timer=11,
                    prio=False, domain=None):
        """One LonTalk transaction, to its end: (ok, Transaction or None);
        tx.responses holds every (Frame, APDU) answer (a group or broadcast
        REQUEST collects several). domain=bytes: in that domain from 0/0."""
        box = []

        def done(node, tx, ok):
            box.append((ok, tx))
            self._done()

        self._call(lambda now: self.plc.send(dest, apdu, now, service=service, prio=prio,
                                             domain=domain, retry=retry, tx_timer=tx_timer,
                                             on_done=done))
        self._wait(box)
        return box[0] if box else (False, None)

    def transact(self, dest, apdu, service=REQUEST, retry=DEFAULT_TX_RETRIES, tx_timer=11):
        """One LonTalk transaction; (ok, the first answer APDU or None)."""
        ok, tx = self.transaction(dest, apdu, service, retry, tx_timer)
        if not ok or tx is None:
            return False, None
        if service == REQUEST:
            return (True, tx.responses[0][1]) if tx.responses else (False, None)
        return True, None

    def idle(self, ms):
        """Let `ms` of (virtual or wall) time pass, receiving meanwhile."""
        self._wait(None, self._now() + int(ms))

    def _done(self):
        pass

    def now_ms(self):
        return self._now()

    def close(self):
        pass


class _ChannelPort:
    """The channel-facing object: no poll/deadline (the link keeps its own
    timer events), so the channel only delivers frames and end-of-airtime."""

    __slots__ = ("link",)

    def __init__(self, link):
        self.link = link

    def receive(self, frame, now_ms, rssi_db=None, snr_db=None):
        out = self.link.plc.receive(frame, now_ms, rssi_db, snr_db)
        self.link._arm()
        return out

    def on_sent(self, frame, now_ms):
        self.link.plc.on_sent(frame, now_ms)
        self.link._arm()
        return None


class ChannelLink(_Link):
    """The DC's node attached to a Channel at ``node_id``.

    drive=True (default): a DC call runs the simulation itself until the
    answer: event by event as fast as possible (``speed`` inf), or paced at
    ``speed`` times real time (adapters on the channel, e.g. a modem on a
    pty, get their ``add_io`` polls). drive=False: another thread runs the
    loop (a gateway, a fleet runner); calls are posted to it and wait,
    ``wall_timeout`` seconds at most."""

    SLICE_US = 20_000

    def __init__(self, channel, node_id, plc, speed=math.inf, drive=True, wall_timeout=60.0):
        super().__init__(plc)
        self.channel = channel
        self.sim = channel.sim
        self.id = node_id
        self.speed = speed
        self.drive = drive
        self.wall_timeout = wall_timeout
        self._armed = None
        self._event = threading.Event()
        channel.attach(node_id, _ChannelPort(self))
        book = getattr(channel.address_filter, "__self__", None)
        if isinstance(book, AddressBook) and node_id not in book.always:
            book.always.append(node_id)     # frames to the DC's address reach it

    def _now(self):
        return self.sim.now_ms

    def _emit(self, frames):
        if frames is None:
            return
        if isinstance(frames, (bytes, bytearray)):
            frames = (frames,)
        for f in frames:
            self.channel.transmit(self.id, f)

    def _arm(self):
        d = self.plc.deadline
        if d is None:
            self._armed = None
            return
        sim = self.sim
        t = sim.us_of_ms(d)
        if t < sim.now:
            t = sim.now
        if self._armed == t:
            return
        self._armed = t
        sim.at(t, self._fire, t)

    def _fire(self, t):
        if self._armed != t:
            return
        self._armed = None
        now = self.sim.now_ms
        self._emit(self.plc.poll(now))
        d = self.plc.deadline
        if d is not None and d <= now:          # never spin at one instant
            t = self.sim.now + 1000 - self.sim.now % 1000
            self._armed = t
            self.sim.at(t, self._fire, t)
            return
        self._arm()

    def _run_fn(self, fn):
        self._emit(fn(self.sim.now_ms))
        self._arm()

    def _call(self, fn):
        if self.drive:
            self._run_fn(fn)
        else:
            self._event.clear()
            self.sim.post(self._run_fn, fn)

    def _done(self):
        self._event.set()

    def _wait(self, box, until_ms=None):
        sim = self.sim
        if box is None:                     # idle until until_ms
            if not self.drive:
                while sim.now_ms < until_ms:
                    time.sleep(0.01)
            else:
                sim.run(until=sim.us_of_ms(until_ms), speed=self.speed)
            return
        if not self.drive:
            end = time.monotonic() + self.wall_timeout
            while not box and time.monotonic() < end:
                self._event.wait(0.05)
            return
        if self.speed == math.inf:
            step = sim.step
            while not box:
                if not step():
                    return
        else:
            while not box:      # the transaction's timer keeps an event pending
                sim.run(until=sim.now + self.SLICE_US, speed=self.speed)

    def close(self):
        self.channel.detach(self.id)


class CnipLink(_Link):
    """The DC's node on wall-clock time, its frames in CN/IP data packets
    (ISO/IEC 14908-4, meter/cnip.py) to and from a gateway over UDP."""

    def __init__(self, plc, gateway=("127.0.0.1", cnip.PORT), bind=("127.0.0.1", 0), session=None):
        super().__init__(plc)
        self.gateway = gateway
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(bind)
        self.session = session if session is not None else int.from_bytes(os.urandom(4), "big")
        self.seq = 0
        self.drops = {}

    def _now(self):
        return int(time.time() * 1000)

    def _emit(self, frames):
        if frames is None:
            return
        if isinstance(frames, (bytes, bytearray)):
            frames = (frames,)
        for f in frames:
            self.seq = self.seq % 0xFFFFFFFF + 1
            pkt = cnip.encode(cnip.Packet(bytes(f), self.session, self.seq, self._now() & 0xFFFFFFFF))
            self.sock.sendto(pkt, self.gateway)

    def _call(self, fn):
        self._emit(fn(self._now()))

    def _wait(self, box, until_ms=None):
        plc = self.plc
        while not box:
            now = self._now()
            if until_ms is not None and now >= until_ms:
                return
            d = plc.deadline
            if d is not None and d <= now:
                self._emit(plc.poll(now))
                continue
            t = d if d is not None else (until_ms if until_ms is not None else now + 1000)
            if until_ms is not None and until_ms < t:
                t = until_ms
            self.sock.settimeout(max(0.001, (t - now) / 1000.0))
            try:
                data, _ = self.sock.recvfrom(2048)
            except socket.timeout:
                if d is None and until_ms is None:
                    return                    # nothing pending and nothing heard
                continue
            try:
                pkt = cnip.decode(data)
            except FrameError as e:
                self.drops[e.reason] = self.drops.get(e.reason, 0) + 1
                continue
            self._emit(plc.receive(pkt.payload, self._now()))

    def close(self):
        self.sock.close()
