# A local fleet for the DC: commissioned in-process meters on a Channel it
# hosts (LocalFleet, MeterNode), for tests and `osgp-meter dc --local`.
# Split out of tools/dc.py (docs/dc.md); importable from osgp_host.dc too.
import os

from osgp_meter.access import ROLE_PLC, ROLE_BCAST
from osgp_meter.plc_node import AddressBook

from .dc_address import DEFAULT_DOMAIN, DEFAULT_KEY
from .dc_core import DC


# ---------------------------------------------------------------- a local fleet

def meter_address(k):
    """(subnet, node) of the k-th meter (1-based) of a local fleet: 1/1 ..
    1/100, 2/1 ... (emulator choice; the DC is 1/126)."""
    return 1 + (k - 1) // 100, 1 + (k - 1) % 100


def meter_neuron_id(k):
    """The k-th local meter's Neuron ID: 00 E0 + k (4 bytes), emulator."""
    return bytes((0x00, 0xE0)) + k.to_bytes(4, "big")


class MeterNode:
    """A Firmware meter on the channel: its PLC node plus the meter's own
    time-based work (fw.tick at the meter's deadlines)."""

    __slots__ = ("fw", "plc", "due")

    def __init__(self, fw, now_ms):
        self.fw = fw
        self.plc = fw.plc
        self.due = fw.tick(now_ms)

    def _due(self):
        due = self.due
        b = self.fw.meter.banks          # a new image's confirmation (meter/codebank.py)
        if b is not None and b.deadline is not None and (due is None or b.deadline < due):
            return b.deadline
        return due

    @property
    def deadline(self):
        d = self.plc.deadline
        due = self._due()
        if due is not None and (d is None or due < d):
            return due
        return d

    def receive(self, frame, now_ms, rssi_db=None, snr_db=None):
        out = self.plc.receive(frame, now_ms, rssi_db, snr_db)
        # a request may have scheduled work (a pending table's activation
        # second, docs/pending-tables.md): ask the meter again when to wake it
        self.due = self.fw.tick(now_ms)
        return out

    def poll(self, now_ms):
        due = self._due()
        if due is not None and due <= now_ms:
            self.due = self.fw.tick(now_ms)
        return self.plc.poll(now_ms)

    def on_sent(self, frame, now_ms):
        return self.plc.on_sent(frame, now_ms)


class LocalFleet:
    """A channel with a Firmware meter at every meter position of a topology,
    commissioned directly (node.commission; discovery is another module's
    job) in ``domain`` at meter_address(k), and an AddressBook filter that
    always lets the DC position hear. ``addresses``: {position id: (subnet,
    node)}; ``meters``: position ids in order; ``firmware``: {id: Firmware}.
    ``exclude``: positions left without a meter (e.g. for a modem)."""

    def __init__(self, topology="small", seed=None, profile=None, domain=DEFAULT_DOMAIN,
                 count=None, metering=None, exclude=()):
        from osgp_meter.firmware import Firmware
        from . import profile as profiles
        from .channel import Channel
        from .topology import Topology
        if isinstance(topology, str) and not os.path.exists(topology):
            topology = Topology.named(topology)
        self.channel = ch = Channel(topology, seed)
        topo = ch.topology
        self.dc_id = next((n.id for n in topo.nodes if n.role == "dc"), None)
        data = profiles.load(profile)
        cfg = profiles.to_config(data)
        if not data.get("clock", {}).get("start"):
            cfg["clock"] = ch.now_ms // 1000      # the meters' clocks start at virtual 0
        if metering is not None:
            cfg["metering"] = metering
        self.key = cfg["keys"].get(ROLE_PLC, DEFAULT_KEY)
        self.bcast_key = cfg["keys"].get(ROLE_BCAST)     # broadcasts (tools/fw_download.py)
        self.aes = data.get("security", {}).get("mode") == "aes"    # meters in AES mode
        self.neuron_ids = {}                              # {(subnet, node): Neuron ID}
        self.domain = bytes(domain)
        self.book = AddressBook()
        self.meters = []
        self.addresses = {}
        self.firmware = {}
        k = 0
        for spec in topo.nodes:
            if spec.role == "dc" or spec.id in exclude:
                continue
            if count is not None and k >= count:
                break
            k += 1
            subnet, node = meter_address(k)
            c = dict(cfg, plc=True, neuron_id=meter_neuron_id(k), plc_domain=self.domain,
                     plc_subnet=subnet, plc_node=node)
            fw = Firmware(c, ch.now_ms)
            ch.attach(spec.id, MeterNode(fw, ch.now_ms))
            self.book.add(spec.id, fw.plc)
            self.meters.append(spec.id)
            self.addresses[spec.id] = (subnet, node)
            self.neuron_ids[(subnet, node)] = c["neuron_id"]
            self.firmware[spec.id] = fw
        if self.dc_id is not None:
            self.book.always.append(self.dc_id)
        ch.address_filter = self.book.filter

    def dc(self, **kw):
        """A DC at the topology's DC position, with this fleet's key, names,
        security mode and Neuron IDs."""
        kw.setdefault("key", self.key)
        kw.setdefault("aes", self.aes)
        kw.setdefault("neuron_ids", lambda t: self.neuron_ids.get(t.key))
        kw.setdefault("names", self.addresses)
        kw.setdefault("domain", self.domain)
        return DC(self.channel, kw.pop("node_id", self.dc_id or "dc"), **kw)
