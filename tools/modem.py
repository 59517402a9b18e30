"""An emulated PLC modem: a node on the virtual channel with a serial port
that speaks Layer-2 MIP framing (meter/mip.py, the link state machine in
meter/mip_link.py), so a meter attached by serial (a CPython host running
``SerialMeter`` below, later a board running board/main.py) joins the
channel. docs/connectors.md is the reference.

    downlink  host -> modem: NI 0x12, L2 header + NPDU; the modem appends
              the CRC and transmits the frame on the channel from its
              position
    uplink    every frame the modem's position decodes (promiscuous, like a
              transceiver in layer-2 mode) -> NI 0x1C: phase byte + frame
              with CRC + 2 transceiver bytes; a frame with a bad CRC -> a
              3-byte runt (phase + the 2 bytes), which the host reads as a
              CRC error [reference 5 B: "shorter than 8 bytes"]
    local     NI 0xE0 status -> status message (model, firmware x 10, layer
              mode, 0 = ready); 0xD1 / 0xD0 (layer 2 / 5) -> the same
              command back; 0x50 reset -> the link restarts and the modem
              sends the reset message (layer mode, channel type 30)

EMULATOR PROFILE: the transceiver bytes are SNR (dB, 0-255, rounded) and
received level (dBµV, 0-255) of the frame at the modem's position; the phase
byte is 0; the modem stays in layer-2 mode (a 0xD0 request is answered but
changes nothing); status model ID 0x30, firmware 10. The modem's serial side
is polled from the simulator's paced loop (``sim.add_io``), so the channel
must run paced (``speed`` finite: real time or scaled) while a modem is
attached.

Ports: a PtyPort (``open_port("pty")``: the host opens ``port.name``) or any
device path / pyserial URL (``socket://…``), see tools/ports.py.
"""
import sys
import threading
import time

from osgp_meter import mip
from osgp_meter.crc import crc16_lon, lon_bytes
from osgp_meter.mip_link import Link, NodePort, MODEL_ID, FW_VERSION, LAYER2, CHANNEL_CUSTOM
from osgp_meter.plc_node import AddressBook


def _byte(x):
    if x is None:
        return 0
    x = int(round(x))
    return 0 if x < 0 else (255 if x > 255 else x)


class Modem:
    """The modem at channel position ``node_id`` with serial ``port``
    (read() -> bytes, non-blocking; write(bytes)). ``stats``: frames up
    (uplinks queued), down (frames transmitted), crc (runts sent), local
    (NI commands answered), other (ignored NI commands), refused (the
    channel dropped a downlink frame), overflow (uplinks lost: the link's
    queue was full)."""

    def __init__(self, channel, node_id, port, phase=0, link=None):
        self.channel = channel
        self.sim = channel.sim
        self.id = node_id
        self.port = port
        self.phase = phase
        self.link = link if link is not None else Link(host=False)
        self.stats = dict(up=0, down=0, crc=0, local=0, other=0, refused=0, overflow=0)
        self._armed = None
        channel.attach(node_id, self, promiscuous=True)
        book = getattr(channel.address_filter, "__self__", None)
        if isinstance(book, AddressBook) and node_id not in book.always:
            book.always.append(node_id)
        self.sim.add_io(self._io)

    # -- channel side ----------------------------------------------------------------
    def receive(self, frame, now_ms, rssi_db=None, snr_db=None):
        frame = bytes(frame)
        xcvr = bytes((_byte(snr_db), _byte(rssi_db)))
        if len(frame) < 3 or crc16_lon(frame[:-2]) != ((frame[-2] << 8) | frame[-1]):
            pdu = bytes((self.phase,)) + xcvr          # a runt: the CRC error report
            self.stats["crc"] += 1
        else:
            pdu = bytes((self.phase,)) + frame + xcvr
            self.stats["up"] += 1
        if not self.link.send(mip.NI_L2_UP_PL, pdu, now_ms):
            self.stats["overflow"] += 1            # the host is not keeping up
        self._flush()
        return None

    # -- serial side -----------------------------------------------------------------
    def _io(self, now_us):
        data = self.port.read()
        if data:
            self.feed(data, self.sim.now_ms)

    def feed(self, data, now_ms):
        """Bytes from the host (the io hook calls this)."""
        for ni_cmd, pdu in self.link.feed(data, now_ms):
            self._message(ni_cmd, pdu, now_ms)
        self._flush()

    def _message(self, ni_cmd, pdu, now):
        link = self.link
        if ni_cmd == mip.NI_L2_DOWN:
            if not pdu:
                self.stats["other"] += 1
                return
            frame = pdu + lon_bytes(crc16_lon(pdu))
            try:
                ok = self.channel.transmit(self.id, frame)
            except ValueError:
                ok = False
            self.stats["down" if ok else "refused"] += 1
        elif ni_cmd == mip.NI_STATUS:
            link.send(mip.NI_STATUS, bytes((MODEL_ID, FW_VERSION, LAYER2, 0)), now)
            self.stats["local"] += 1
        elif ni_cmd == mip.NI_SET_L2 or ni_cmd == mip.NI_SET_L5:
            link.send_short(ni_cmd, now)
            self.stats["local"] += 1
        elif ni_cmd == mip.NI_RESET:
            link.resync(now)
            link.send(mip.NI_RESET, bytes((LAYER2, CHANNEL_CUSTOM)), now)
            self.stats["local"] += 1
        else:
            self.stats["other"] += 1

    def _flush(self):
        out = self.link.take()
        if out:
            self.port.write(out)
        self._arm()

    def _arm(self):
        d = self.link.deadline
        if d is None:
            self._armed = None
            return
        t = max(self.sim.us_of_ms(d), self.sim.now)
        if self._armed == t:
            return
        self._armed = t
        self.sim.at(t, self._fire, t)

    def _fire(self, t):
        if self._armed != t:
            return
        self._armed = None
        self.link.poll(self.sim.now_ms)
        self._flush()


class SerialMeter:
    """A Firmware meter behind a PLC modem on a serial port, on CPython: the
    host side a board runs (NodePort + the meter's own tick). ``port`` is a
    device path or pyserial URL; ``config`` the Firmware config (plc=True is
    set); time is the wall clock in ms."""

    def __init__(self, port, config, now_ms=None):
        from osgp_meter.firmware import Firmware
        from . import ports
        now = int(time.time() * 1000) if now_ms is None else now_ms
        self.fw = Firmware(dict(config, plc=True), now)
        self.node = NodePort(self.fw.plc)
        self.node.extra = self.fw.tick
        self.node.extra_due = self.fw.tick(now)
        self.ser = ports.open_client(port, 115200, timeout=0) if isinstance(port, str) else port
        self._stop = threading.Event()
        self.thread = None

    def step(self, now, data=b""):
        node = self.node
        if data:
            node.feed(data, now)
        d = node.deadline
        if d is not None and d <= now:
            node.poll(now)
        out = node.take()
        if out:
            self.ser.write(out)

    def serve(self, start=True):
        now = int(time.time() * 1000)
        if start:
            self.node.start(now)
        while not self._stop.is_set():
            now = int(time.time() * 1000)
            d = self.node.deadline
            wait = 0.02 if d is None else max(0.0, min(0.02, (d - now) / 1000.0))
            data = b""
            n = getattr(self.ser, "in_waiting", 0)
            if n:
                data = self.ser.read(n)
            elif wait:
                time.sleep(wait)
            self.step(int(time.time() * 1000), data)

    def serve_in_thread(self, start=True):
        self.thread = threading.Thread(target=self.serve, args=(start,), name="serial-meter",
                                       daemon=True)
        self.thread.start()
        return self.thread

    def stop(self):
        self._stop.set()
        if self.thread is not None:
            self.thread.join(2.0)
        try:
            self.ser.close()
        except Exception:
            pass


# ---------------------------------------------------------------- the CLI

def add_parser(sub):
    m = sub.add_parser("modem", help="an emulated PLC modem (Layer-2 MIP) on a serial port",
                       description="Host a virtual fleet and put an emulated PLC modem at one "
                                   "position: a meter attached to its serial port (Layer-2 MIP) "
                                   "joins the channel there. Optionally a CN/IP gateway at the "
                                   "DC position. Real time, until Ctrl-C.")
    m.add_argument("--port", default="pty", help="device path, pyserial URL, or 'pty' (default)")
    m.add_argument("--at", default=None, help="position of the modem (default: the last meter's)")
    m.add_argument("--topology", default="small")
    m.add_argument("--seed", type=int)
    m.add_argument("--profile", help="device profile of the virtual meters")
    m.add_argument("--cnip", type=int, nargs="?", const=1628, default=None, metavar="PORT",
                   help="also a CN/IP gateway on 127.0.0.1:PORT (default 1628)")
    m.add_argument("--speed", type=float, default=1.0)
    s = sub.add_parser("mip-meter", help="a meter behind a PLC modem (Layer-2 MIP) on a serial port",
                       description="The CPython twin of a board on a PLC modem: one meter whose "
                                   "PLC port speaks Layer-2 MIP on PORT (e.g. the pty of "
                                   "`osgp-meter modem`).")
    s.add_argument("--port", required=True)
    s.add_argument("--profile")
    s.add_argument("--address", default="1/100", help="subnet/node in the domain (default 1/100)")
    s.add_argument("--domain", default="42", help="domain ID as hex (default 42)")
    s.add_argument("--neuron-id", default="00e0000000ff", help="12 hex digits")
    return m, s


def run(args, out=None):
    import signal
    from . import ports
    from .dc import LocalFleet
    out = out or sys.stdout
    if args.command == "mip-meter":
        from . import profile as profiles
        sub, _, node = args.address.partition("/")
        cfg = dict(profiles.load_config(args.profile), plc_domain=bytes.fromhex(args.domain),
                   plc_subnet=int(sub), plc_node=int(node),
                   neuron_id=bytes.fromhex(args.neuron_id))
        meter = SerialMeter(args.port, cfg)
        print("mip-meter: %s, %s in domain %s" % (args.port, args.address, args.domain), file=out)
        out.flush()
        try:
            meter.serve()
        except KeyboardInterrupt:
            pass
        finally:
            meter.stop()
        return 0
    import os
    from .topology import Topology
    topo = (Topology.load(args.topology) if os.path.exists(args.topology)
            else Topology.named(args.topology))
    meters = [n.id for n in topo.nodes if n.role != "dc"]
    at = args.at or meters[-1]
    fleet = LocalFleet(topo, args.seed, args.profile, exclude=(at,))
    port = ports.open_port(args.port)
    modem = Modem(fleet.channel, at, port)
    print("modem: %s (at %s; the other meters: %s)" % (port.name, at, ", ".join(
        "%s=%d/%d" % (m, *fleet.addresses[m]) for m in fleet.meters)), file=out)
    gw = None
    if args.cnip is not None:
        from .cnip_gateway import CnipGateway
        gw = CnipGateway(fleet.channel, port=args.cnip)
        gw.start()
        print("cnip: %s:%d" % gw.address, file=out)
    out.flush()
    sim = fleet.channel.sim

    def stop(signum, frame):
        sim.stop()
    old = signal.signal(signal.SIGTERM, stop)
    try:
        fleet.channel.run(speed=args.speed)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, old)
        if gw is not None:
            gw.close()
        port.close()
    return 0
