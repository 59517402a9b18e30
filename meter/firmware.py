# One meter as a board or a host runs it: the device model plus its ports.
#
# Built from a plain configuration dict, so a board (no TOML parser) and the
# host (TOML profiles, tools/) construct meters the same way:
#   image        {table_id: bytes}  initial table contents (shared, read-only)
#   keys         {role: bytes}      see keys.KEY_LENGTHS
#   mep_seq      int                the MEP sequence number the server holds
#   mep_secure   bool               False: no sequence numbers/digests (test mode)
#   mep_baud     int
#   optical_max_read / plc_max_read / plc_max_write   per-port size limits
#   clock        int seconds since 1970 UTC the meter's clock starts at, or None
#   plc          bool: give the meter its ISO/IEC 14908-1 node (fw.plc), which a
#                channel or a PLC modem attaches to; neuron_id (6 bytes),
#                plc_domain / plc_subnet / plc_node / plc_groups commission a
#                fresh meter (docs/plc-node.md)
#   metering     bool: run the time-based subsystems (supply, TOU, metrology,
#                load profile); off by default so a bare core stays small
#   seed, annual_kwh, pv_peak_w, phases ...   the load model (docs/metrology.md)
from . import access
from . import catalogue_data
from .device import Meter, PortLimits, MEP_LIMITS
from .keys import KeyRing
from .mep import MepServer
from .store import TableStore
from .c1218 import OpticalSession

ET04 = 2048 + 4
ET04_MEP_SEQ = 103        # MEP sequence number UINT32 [MEP ET04]

MEP_ROLES = (access.ROLE_MAK, access.ROLE_MBK)


class Firmware:
    __slots__ = ("meter", "keys", "mep", "optical", "plc_limits", "plc")

    def __init__(self, config, now=0, tables=None, procs=None):
        store = TableStore(tables if tables is not None else catalogue_data.TABLES,
                           config.get("image"))
        meter = self.meter = Meter(store, procs if procs is not None else catalogue_data.PROCEDURES)
        start = config.get("clock")
        if start is not None:
            meter.set_utc(start, now)
        keys = self.keys = KeyRing(config.get("keys"))
        seq = config.get("mep_seq")
        if seq is None:
            seq = store.field(ET04, ET04_MEP_SEQ, 4)
        self.mep = MepServer(meter.executor(MEP_LIMITS), keys, MEP_ROLES, seq,
                             config.get("mep_secure", True), config.get("mep_baud", 9600),
                             self._mep_seq_changed)
        meter.on_idt = self.mep.idt_changed
        optical_limits = PortLimits("optical", config.get("optical_max_read", 4096),
                                    config.get("optical_max_write", 4096), 0xFFFF)
        self.optical = OpticalSession(meter.executor(optical_limits), keys.optical_passwords())
        self.plc_limits = PortLimits("plc", config.get("plc_max_read", 84),
                                     config.get("plc_max_write", 75), 0xFFFE)
        self.plc = None
        if config.get("plc"):
            self.plc = attach_plc(meter, keys, self.plc_limits, config)
        if config.get("metering"):
            attach_metering(meter, config, now)

    def tick(self, now):
        """Run whatever is due in the meter up to `now`; returns the driver
        time (ms) of the next thing due, or None (docs/time-model.md)."""
        return self.meter.advance(now)

    def _mep_seq_changed(self, seq):
        # Mirror the number into ET04 so it is readable and survives restarts.
        self.meter.store.set_field(ET04, ET04_MEP_SEQ, 4, seq)


def attach_metering(meter, config, now):
    """Supply, TOU, metrology and load profile, imported only when wanted
    (a board without metering does not pay for the code)."""
    from . import supply, tou, metrology, loadprofile
    meter.advance(now)
    supply.attach(meter, config)
    tou.attach(meter, config)
    metrology.attach(meter, config, now)
    loadprofile.attach(meter, config)
    meter.advance(now)


def attach_plc(meter, keys, limits, config):
    """The meter's PLC port: a 14908-1 node whose OSGP requests reach
    meter.execute with the PLC limits (imported only when wanted)."""
    from .plc_node import PlcNode
    node = PlcNode(config.get("neuron_id"), meter.executor(limits), keys, meter.store)
    if not node.loaded and config.get("plc_domain") is not None:
        node.commission(config["plc_domain"], config["plc_subnet"], config["plc_node"])
        for group, member, size in config.get("plc_groups", ()):
            node.join_group(group, member, size)
    return node
