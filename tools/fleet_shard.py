"""A fleet's parts below the Fleet (docs/fleet.md): FleetMeter (one meter
on its shard's channel: PLC node, ticks, injections), Shard (one
transformer area's Channel and meters), the per-meter set-up helpers
(own serial numbers, discovery and repeating on) and the pcap tracer.
Split out of tools/fleet.py (which re-exports the public names)."""
import heapq

from . import fleet_identity as fid

BT01 = 1
ET03 = 2048 + 3


# ---------------------------------------------------------------- the meter node

class FleetMeter:
    """A fleet meter on its shard's channel: the firmware's PLC node, the
    meter's own time-based work (fw.tick at its deadlines) and its pending
    injections (a heap of (driver ms, seq, Action, repeats left), None when
    there are none)."""

    __slots__ = ("fw", "plc", "due", "inj", "shard", "id", "served")

    def __init__(self, fw, now_ms, shard, node_id):
        self.fw = fw
        self.plc = fw.plc
        self.due = fw.tick(now_ms)
        self.inj = None
        self.shard = shard
        self.id = node_id
        # with --state: requests the OSGP layer had executed at the last commit
        self.served = None if fw.nv is None else -1
        if fw.nv is not None:
            self.commit()

    def commit(self):
        """Commit (docs/persistence.md) when the meter executed a request or
        changed a table since the last commit: before its answer leaves."""
        fw = self.fw
        osgp = self.plc.osgp
        n = osgp.stats[0] if osgp is not None else 0
        if n != self.served or fw.meter.store.dirty:
            self.served = n
            fw.commit()

    @property
    def deadline(self):
        d = self.plc.deadline
        u = self.due
        if u is not None and (d is None or u < d):
            d = u
        if self.inj:
            t = self.inj[0][0]
            if d is None or t < d:
                d = t
        return d

    def receive(self, frame, now_ms, rssi_db=None, snr_db=None):
        out = self.plc.receive(frame, now_ms, rssi_db, snr_db)
        # a request may have scheduled work (a pending table's activation
        # second, docs/pending-tables.md): ask the meter again when to wake it
        self.due = self.fw.tick(now_ms)
        if self.served is not None:
            self.commit()
        return out

    def poll(self, now_ms):
        if self.inj and self.inj[0][0] <= now_ms:
            self.shard.fleet._apply_due(self, now_ms)
        if self.due is not None and self.due <= now_ms:
            self.due = self.fw.tick(now_ms)
        out = self.plc.poll(now_ms)
        if self.served is not None:
            self.commit()
        return out

    def on_sent(self, frame, now_ms):
        return self.plc.on_sent(frame, now_ms)

    def push(self, t_ms, seq, action, left):
        if self.inj is None:
            self.inj = []
        heapq.heappush(self.inj, (t_ms, seq, action, left))


def _actions_class():
    """tools/simulate.Simulation's action code, applied to one fleet meter
    (built lazily: simulate imports plotting helpers)."""
    from .simulate import Simulation
    from osgp_meter import device

    class MeterActions(Simulation):
        def __init__(self, fm, now_ms, fleet):
            fw = fm.fw
            self.fw = fw
            self.meter = fw.meter
            self.now = now_ms
            self.start = fleet.start_ms
            self.config = fleet.template
            self.log = []
            self.reads = []
            self.recorder = None
            self.speed = None
            self.state_dir = None
            self._fm = fm
            self._fleet = fleet
            self._limits = {"mep": device.MEP_LIMITS, "plc": fw.plc_limits,
                            "optical": device.PortLimits("optical", 4096, 4096, 2)}

        def _push(self, t_ms, action, left=None):
            if left is None and action.every is not None:
                left = action.times
            self._fleet._seq += 1
            self._fm.push(t_ms, self._fleet._seq, action, left)

        def power(self, on):
            super().power(on)
            self._fleet._set_line(self._fm, bool(on))

    return MeterActions


# ---------------------------------------------------------------- shards

class Shard:
    """One transformer area: its Channel (own Simulator, seeds and virtual
    clock), its meters and their fleet indices, the DC position, and the
    CN/IP gateway when the fleet has one."""

    def __init__(self, fleet, index, topology, start_ms):
        from .channel import Channel
        from osgp_meter.plc_node import AddressBook
        self.fleet = fleet
        self.index = index
        self.topology = topology
        self.id = topology.transformers[0].id
        self.seed = fid._u32(fleet.config.seed, "channel/%s" % self.id)
        self.channel = Channel(topology, self.seed, start_ms=start_ms)
        self.sim = self.channel.sim
        self.dc_id = next((n.id for n in topology.nodes if n.role == "dc"), None)
        self.book = AddressBook()
        self.meters = []            # node ids, in fleet order
        self.indices = []           # their fleet indices (1-based)
        self.gateway = None
        self.port = None
        self.pcap = None
        self.pcap_path = None
        if self.dc_id is not None:
            self.book.always.append(self.dc_id)
        self.channel.address_filter = self.book.filter

    def node(self, meter_id):
        return self.channel.node(meter_id)

    def firmware(self, meter_id):
        return self.channel.node(meter_id).fw

    def addresses(self):
        """{meter id: (subnet, node)} of the configured meters (their PLC
        node's domain entry 0)."""
        out = {}
        for mid in self.meters:
            a = self.channel.node(mid).plc.address()
            if a is not None:
                out[mid] = (a[1], a[2])
        return out

    def stats(self):
        ch = self.channel
        return {"shard": self.id, "index": self.index, "meters": len(self.meters),
                "virtual_ms": ch.sim.now_ms, "events": ch.sim.events_run,
                "frames": ch.stats["tx"], "deliveries": ch.stats["deliveries"],
                "collisions": ch.stats["collisions"], "loss": ch.stats["loss"],
                "loss_reasons": dict(ch.loss_reasons),
                "cnip": None if self.port is None else "%s:%d" % (self.fleet.config.cnip_host,
                                                                  self.port),
                "pcap": self.pcap_path}

    def __repr__(self):
        return "<Shard %d %s: %d meters>" % (self.index, self.id, len(self.meters))


def shard_address(k):
    """(subnet, node) of the k-th meter (1-based) of a shard under direct
    commissioning: 1/1 .. 1/100, 2/1 ... (the DC is 1/126), as
    osgp_host.dc.LocalFleet does."""
    return 1 + (k - 1) // 100, 1 + (k - 1) % 100


# ---------------------------------------------------------------- per-meter helpers

def _bcd(digits):
    return bytes(int(digits[i]) << 4 | int(digits[i + 1]) for i in range(0, 16, 2))


def _own_identity(fw, ident, bt01, et03):
    """The meter's own BT01 serial number and ET03 utility serial (its only
    own copies of the template's tables until it writes something)."""
    store = fw.meter.store
    b = bytearray(bt01)
    if len(b) < 24:
        b += bytes(24 - len(b))
    b[16:24] = _bcd(ident.serial)
    store.written[BT01] = b
    if et03:
        u = ident.utility_serial.encode("ascii")[:30]
        store.written[ET03] = bytearray(u + bytes(30 - len(u)))


def _enable_network(node):
    """Discovery (ADD/ATM, FCM) and LTEP repeating on a meter's node, when
    the firmware does not already (meter/plc_discovery.py, plc_repeat.py)."""
    if node is None or getattr(node, "_fleet_net", False):
        return
    for name in ("plc_discovery", "plc_repeat"):
        try:
            mod = __import__("osgp_meter." + name, fromlist=["enable"])
        except ImportError:
            continue
        enable = getattr(mod, "enable", None)
        if enable is not None and not _enabled(node, mod):
            enable(node)


def _enabled(node, mod):
    """Whether the firmware already enabled that module on the node."""
    handlers = getattr(node, "_handlers", None) or getattr(node, "handlers", None)
    if not handlers:
        return False
    codes = {"plc_discovery": getattr(mod, "OUT", 0x45), "plc_repeat": 0x4D}
    code = codes.get(mod.__name__.rsplit(".", 1)[-1])
    return code in handlers


# ---------------------------------------------------------------- pcap

def pcap_tracer(writer, channel=None):
    """A channel tracer writing every transmission (what is on the air) into
    a PcapWriter. IPv4 addresses stand for LonTalk addresses: a sender with
    a subnet/node is 10.0.subnet.node, one without (0/0: unconfigured, or a
    discovery frame) 10.1.x.y after its position on the channel; the
    destination is 10.0.subnet.node (2a, 2b), 10.2.x.y after the last two
    Neuron-ID bytes (format 3), 10.3.0.group (group) or 10.255.subnet.255
    (broadcast)."""
    from osgp_meter import lontalk as L
    from .pcap import node_ip

    def pos_ip(node_id):
        i = channel.index.get(node_id, 0) if channel is not None else 0
        return "10.1.%d.%d" % ((i >> 8) & 0xFF, i & 0xFF)

    def tracer(ev):
        if ev.kind != "tx":
            return
        try:
            f = L.decode(ev.frame)
        except L.FrameError:
            writer.write(ev.frame, ev.t_ms, src=pos_ip(ev.src), dst="10.255.255.255")
            return
        if f.src_subnet or f.src_node:
            src = node_ip(f.src_subnet, f.src_node & 0x7F)
        else:
            src = pos_ip(ev.src)
        af = f.addr_fmt
        if af in (L.AF_SUBNET_NODE, L.AF_GROUP_ACK):
            dst = node_ip(f.dst_subnet, f.dst_node & 0x7F)
        elif af == L.AF_NEURON_ID:
            dst = "10.2.%d.%d" % (f.neuron_id[4], f.neuron_id[5])
        elif af == L.AF_GROUP:
            dst = "10.3.0.%d" % f.group
        else:
            dst = "10.255.%d.255" % (f.dst_subnet or 0)
        writer.write(ev.frame, ev.t_ms, src=src, dst=dst)
    return tracer
