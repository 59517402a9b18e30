# One meter as a board or a host runs it: the device model plus its ports.
#
# Built from a plain configuration dict, so a board (no TOML parser) and the
# host (TOML profiles, tools/) construct meters the same way:
#   image        {table_id: bytes}  initial table contents (shared, read-only)
#   keys         {role: bytes}      see keys.KEY_LENGTHS
#   mep_seq      int                the MEP sequence number the server holds
#   mep_secure   bool               False: no sequence numbers/digests (test mode)
#   mep_baud     int
#   optical      bool (default True): the optical port's session (fw.optical)
#   optical_max_read / plc_max_read / plc_max_write   per-port size limits
#   clock        int seconds since 1970 UTC the meter's clock starts at, or None
#   plc          bool: give the meter its ISO/IEC 14908-1 node (fw.plc), which a
#                channel or a PLC modem attaches to; neuron_id (6 bytes),
#                plc_domain / plc_subnet / plc_node / plc_groups commission a
#                fresh meter (docs/plc-node.md)
#   restore      fn(fw): called once the store, meter, keys and MEP server exist
#                and before the PLC node is built: a driver puts saved tables
#                back there (board/main.py; the node reads its image then)
#   codebanks    bool: two code banks and EP08/EP09/EP10 (meter/codebank.py;
#                default: with plc); bank_storage, download_key configure them
#   metering     bool: run the time-based subsystems (supply, TOU, metrology,
#                load profile); off by default so a bare core stays small
#   seed, annual_kwh, pv_peak_w, phases ...   the load model (docs/metrology.md)
from . import access
from . import catalogue_data
from .device import Meter, PortLimits, MEP_LIMITS
from .keys import KeyRing, set_aes_unwrap
from . import cipher
from .mep import MepServer
from .store import TableStore

BT01 = 1
ET04 = 2048 + 4
ET04_MEP_SEQ = 103        # MEP sequence number UINT32 [MEP ET04]

MEP_ROLES = (access.ROLE_MAK, access.ROLE_MBK)


class Firmware:
    __slots__ = ("meter", "keys", "mep", "optical", "plc_limits", "plc", "nv")

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
        # AES security mode, ET04.127 = 2 (docs/security-modes.md): the ports
        # look the mode up per request; ET04 writes follow its rules
        self.mep.mode = self._security_mode
        self.mep.ident = self._mep_ident
        cipher.guard_security_mode(meter)
        set_aes_unwrap(cipher.aes_unwrap_key)       # key changes in AES mode
        self.optical = None
        if config.get("optical", True):         # a board without an optical port saves the RAM
            from .optical_lazy import LazyOptical   # loads c1218.py on the first byte
            optical_limits = PortLimits("optical", config.get("optical_max_read", 4096),
                                        config.get("optical_max_write", 4096), 0xFFFF)
            self.optical = LazyOptical(meter.executor(optical_limits), keys.optical_passwords())
        self.plc_limits = PortLimits("plc", config.get("plc_max_read", 84),
                                     config.get("plc_max_write", 75), 0xFFFE)
        self.plc = None
        self.nv = None                      # persist.Persist once a driver persists it
        from . import keywire                   # docs/key-management.md
        keywire.attach(self)    # EP15/EP24/EP25, the "keys" nv part (before a restore puts it back)
        restore = config.get("restore")
        if restore is not None:
            restore(self)       # saved tables back before the node reads them (board/main.py)
        if config.get("plc"):
            self.plc = attach_plc(meter, keys, self.plc_limits, config)
        if config.get("metering"):
            attach_metering(meter, config, now)
        if self.plc is not None:                # docs/groups-and-broadcast.md (a PLC matter:
            from . import groups                # a meter without the port saves the RAM)
            groups.attach(meter, self.plc)      # EP27, ET08 -> the node's 14908 groups, ET23
        keywire.attach_plc(self)                # the key-usage events (EE33, BT03 8.2)
        if config.get("pending", True):
            from . import pending_lazy  # pending tables, BT04, BP12-BP15 (docs/pending-tables.md)
            pending_lazy.attach(meter)
        if config.get("codebanks", config.get("plc")):
            from . import codebank_lazy  # EP08/EP09/EP10, ET17 (docs/firmware-download.md):
            codebank_lazy.attach(meter, config)     # codebank.py loads on first use
        from . import transactions_lazy  # ET52/ET53, ET27/ET28, EP61 (docs/transactions.md)
        transactions_lazy.attach(meter, self.plc_limits, now)   # resumes an unrun transaction

    def tick(self, now):
        """Run whatever is due in the meter up to `now`; returns the driver
        time (ms) of the next thing due, or None (docs/time-model.md)."""
        due = self.meter.advance(now)
        banks = self.meter.banks
        if banks is not None and banks.deadline is not None:
            d = banks.tick(self.meter, now)     # a new image's confirmation or rollback
            if d is not None and (due is None or d < due):
                due = d
        return due

    def commit(self):
        """Make what changed durable (docs/persistence.md): the driver calls
        this after every request it answers, before the answer leaves, and
        after ticks. Returns the payload bytes written (0: nothing changed)."""
        nv = self.nv
        return nv.commit() if nv is not None else 0

    def _security_mode(self):
        return self.meter.store.field(ET04, cipher.ET04_SECURITY_MODE, 1)

    def _mep_ident(self):
        # the AES nonce identity on MEP: the serial number, BT01.16 (8 bytes)
        return self.meter.store.read(BT01, 16, 8)

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
    if config.get("lifecycle", True):
        from . import life          # meter.life: commissioning lifecycle (docs/commissioning.md)
        life.attach(meter, node)
    if not node.loaded and config.get("plc_domain") is not None:
        node.commission(config["plc_domain"], config["plc_subnet"], config["plc_node"])
        for group, member, size in config.get("plc_groups", ()):
            node.join_group(group, member, size)
    return node
