"""A CN/IP (ISO/IEC 14908-4, EIA-852) gateway between the virtual PLC channel
and UDP: head-ends and data concentrators outside the process reach a shard's
meters with the field's own IP transport. docs/connectors.md is the reference.

* The gateway is a node on the channel (``node_id``, by default the
  topology's DC position), attached promiscuously: every frame it hears
  (decoded by its position, whatever the address) goes to every registered
  peer as a CN/IP data packet: 20-byte header + L2 header + NPDU + CRC
  (meter/cnip.py), session ID fixed per gateway, sequence +1 per packet,
  timestamp = the frame's driver time in ms (low 32 bits).
* A data packet from a peer is put on the channel as the gateway's own
  transmission (its L2 frame as received, CRC included: a bad CRC stays bad
  and the meters count it) and relayed to the other peers, as a CN/IP
  channel does. Undecodable datagrams are dropped and counted by reason.
* Peers (emulator profile, not the EIA-852 configuration server): a UDP
  sender is registered by its first datagram, of any content (a one-byte
  "hello" will do), and stays registered until the gateway stops (at most
  MAX_PEERS); peers can also be given up front.
* Time: the channel runs paced, ``speed`` times real time (1 by default)
  while the gateway serves. A reader thread hands datagrams to the
  simulator with ``sim.post`` (thread-safe); packets to peers are sent from
  the simulator's thread.

    from osgp_host.dc import LocalFleet
    from osgp_host.cnip_gateway import CnipGateway
    fleet = LocalFleet("small")
    gw = CnipGateway(fleet.channel, port=1628)
    gw.serve()                   # blocks; gw.stop() from another thread
"""
import os
import socket
import threading

from osgp_meter import cnip
from osgp_meter.lontalk import FrameError
from osgp_meter.plc_node import AddressBook

MAX_PEERS = 64


class CnipGateway:
    """See the module docstring. ``peers``: (host, port) pairs to forward to
    from the start; ``register``: learn peers from their datagrams.
    ``stats``: rx (datagrams), injected (frames put on the channel),
    forwarded (packets sent), relayed, bad (undecodable), tx_refused."""

    def __init__(self, channel, node_id=None, host="127.0.0.1", port=cnip.PORT, peers=(),
                 register=True, session=None, speed=1.0):
        if node_id is None:
            node_id = next((n.id for n in channel.topology.nodes if n.role == "dc"), None)
            if node_id is None:
                raise ValueError("the topology has no DC position; give node_id")
        self.channel = channel
        self.sim = channel.sim
        self.id = node_id
        self.speed = speed
        self.register = register
        self.peers = [tuple(p) for p in peers]
        self.session = session if session is not None else int.from_bytes(os.urandom(4), "big")
        self.seq = 0
        self.stats = dict(rx=0, injected=0, forwarded=0, relayed=0, bad=0, tx_refused=0)
        self.bad = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.address = self.sock.getsockname()
        self._stop = threading.Event()
        self._reader = None
        self._lock = threading.Lock()
        channel.attach(node_id, self, promiscuous=True)
        book = getattr(channel.address_filter, "__self__", None)
        if isinstance(book, AddressBook) and node_id not in book.always:
            book.always.append(node_id)

    # -- the channel node ----------------------------------------------------------
    def receive(self, frame, now_ms, rssi_db=None, snr_db=None):
        """A frame heard at the gateway's position: to every peer."""
        self._forward(frame, now_ms, None)
        return None

    def _forward(self, frame, now_ms, skip):
        if not self.peers:
            return
        self.seq = self.seq % 0xFFFFFFFF + 1
        try:
            pkt = cnip.encode(cnip.Packet(bytes(frame), self.session, self.seq, now_ms & 0xFFFFFFFF))
        except ValueError:
            return
        for p in list(self.peers):
            if p == skip:
                continue
            try:
                self.sock.sendto(pkt, p)
                self.stats["forwarded"] += 1
            except OSError:
                pass

    # -- the UDP side ------------------------------------------------------------------
    def _datagram(self, data, addr):
        """In the simulator's thread: one datagram from a peer."""
        st = self.stats
        st["rx"] += 1
        if addr not in self.peers and self.register and len(self.peers) < MAX_PEERS:
            self.peers.append(addr)
        try:
            pkt = cnip.decode(data)
        except FrameError as e:
            st["bad"] += 1
            self.bad[e.reason] = self.bad.get(e.reason, 0) + 1
            return
        frame = pkt.payload
        try:
            ok = self.channel.transmit(self.id, frame)
        except ValueError:
            ok = False
        if not ok:
            st["tx_refused"] += 1
            return
        st["injected"] += 1
        if len(self.peers) > 1:
            self._forward(frame, self.sim.now_ms, addr)
            st["relayed"] += 1

    def _read_loop(self):
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(cnip.MAX_PACKET + 64)
            except socket.timeout:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            self.sim.post(self._datagram, data, addr)

    def start(self):
        """Start the UDP reader thread (serve() does it)."""
        if self._reader is None:
            self._stop.clear()
            self._reader = threading.Thread(target=self._read_loop, name="cnip-gateway",
                                            daemon=True)
            self._reader.start()

    def serve(self, until_ms=None):
        """Run the channel paced at ``speed`` (default real time) until stop()
        (or driver time until_ms). Blocks."""
        self.start()
        try:
            self.channel.run(until_ms=until_ms, speed=self.speed)
        finally:
            if until_ms is None:
                self.close()

    def serve_in_thread(self):
        """serve() in a daemon thread; returns the thread."""
        th = threading.Thread(target=self.serve, name="cnip-sim", daemon=True)
        th.start()
        return th

    def stop(self):
        """Thread-safe: make serve() return."""
        self._stop.set()
        self.sim.stop()

    def close(self):
        self._stop.set()
        if self._reader is not None:
            self._reader.join(1.0)
            self._reader = None
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------- the CLI

def _hostport(text):
    host, _, port = text.rpartition(":")
    return (host or "127.0.0.1", int(port))


def add_parser(sub):
    g = sub.add_parser("gateway", help="host a virtual fleet behind a CN/IP (UDP) gateway",
                       description="A channel with a commissioned meter at every meter position "
                                   "of a topology, and a CN/IP gateway at the DC position: "
                                   "`osgp-meter dc --cnip HOST:PORT …` (or any CN/IP client) "
                                   "reaches the meters. Runs in real time until Ctrl-C.")
    g.add_argument("--topology", default="small", help="a name (small, default, hidden) or a file")
    g.add_argument("--seed", type=int)
    g.add_argument("--profile", help="device profile of the meters")
    g.add_argument("--host", default="127.0.0.1")
    g.add_argument("--port", type=int, default=cnip.PORT)
    g.add_argument("--peer", action="append", default=[], metavar="HOST:PORT",
                   help="forward channel frames to this peer from the start (repeatable)")
    g.add_argument("--no-register", action="store_true",
                   help="only the --peer addresses get frames (senders are not learned)")
    g.add_argument("--speed", type=float, default=1.0, help="virtual time / wall time (default 1)")
    return g


def run(args, out=None):
    import signal
    import sys
    from .dc import LocalFleet
    out = out or sys.stdout
    fleet = LocalFleet(args.topology, args.seed, args.profile)
    gw = CnipGateway(fleet.channel, host=args.host, port=args.port,
                     peers=[_hostport(p) for p in args.peer], register=not args.no_register,
                     speed=args.speed)
    first, last = fleet.meters[0], fleet.meters[-1]
    print("cnip: %s:%d (topology %s, %d meters %s=%d/%d .. %s=%d/%d, domain %s, DC 1/126)" % (
        gw.address[0], gw.address[1], fleet.channel.topology.name, len(fleet.meters), first,
        *fleet.addresses[first], last, *fleet.addresses[last], fleet.domain.hex()), file=out)
    out.flush()

    def stop(signum, frame):
        gw.stop()
    old = signal.signal(signal.SIGTERM, stop)
    try:
        gw.serve()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, old)
        gw.close()
    return 0

