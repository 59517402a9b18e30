# A light meter for the group and key-change tests (dual runtime): the PLC
# test tables (plc_util) plus ET08, ET23, BT03 (10 bytes), BT71/BT74 (a
# 20-entry history log), the procedures EP15/EP24/EP25/EP27, a PLC node
# commissioned as 0x42 1/node, and the groups and keys wiring of the
# firmware. The real catalogue and the MEP/optical ports are left out so a
# test fits a 256K MicroPython heap next to the LonTalk stack.
from osgp_meter import access as A
from osgp_meter import groups as G
from osgp_meter import keywire
from osgp_meter.device import Meter, PLC_LIMITS
from osgp_meter.keys import KeyRing
from osgp_meter.plc_node import PlcNode
from osgp_meter.store import TableStore
import minicat
import plc_util

ET04 = 2048 + 4
ET08 = 2048 + 8
ET11 = 2048 + 11
ET23 = 2048 + 23
BT03 = 3
BT71 = 71
BT74 = 74
EP15, EP24, EP25, EP27 = 2048 + 15, 2048 + 24, 2048 + 25, 2048 + 27
T0 = plc_util.T0
DOM = b"\x42"
MAK = bytes([1] * 16)
MBK = bytes([2] * 16)
MK = b"MASTERKEY" + bytes(11)
PK = b"PROVISIONING" + bytes(8)
RK = b"READONLY" + bytes(12)

TABLES = dict(plc_util.TABLES)
TABLES[BT03] = (10, A.ALL_KEYS, 0, 0x00, None)
TABLES[BT71] = (9, A.ALL, 0, 0x01, bytes((0x06, 8, 19, 2, 2, 20, 0, 0, 0)))
TABLES[BT74] = (11 + 20 * 14, A.ALL_KEYS, 0, 0x01, None)
TABLES[ET08] = (20, A.ALL_KEYS, A.FULL | A.ROLE_PK, 0x01, None)
TABLES[ET23] = (99, A.ALL_KEYS, 0, 0x01, None)
PROCS = dict(minicat.PROCEDURES)
PROCS[EP27] = (A.FULL | A.ROLE_PK, 0x00)
PROCS[EP15] = (A.FULL | A.ROLE_BCAST, 0x00)
PROCS[EP24] = (A.FULL, 0x00)
PROCS[EP25] = (A.FULL, 0x00)


class Fw:
    """What keywire.attach needs of a Firmware."""

    def __init__(self, meter, keys, plc, optical=None):
        self.meter = meter
        self.keys = keys
        self.plc = plc
        self.optical = optical


class Optical:
    def __init__(self, keys):
        self.keys = tuple(keys)


def firmware(node=5, groups=(), keys=None, store=None):
    """A light firmware: meter, KeyRing (PLC, broadcast, MEP and optical
    keys), PLC node, the groups and key-change wiring; `groups` joined by
    EP27. `store` (a TableStore) restarts a meter from saved tables."""
    if store is None:
        store = TableStore(TABLES)
        store.set_field(ET11, 18, 1, 10)         # ET11.18: 10 group IDs
    m = Meter(store, PROCS)
    ring = KeyRing(keys if keys is not None else
                   {A.ROLE_PLC: plc_util.KEY, A.ROLE_BCAST: plc_util.BKEY, A.ROLE_MAK: MAK,
                    A.ROLE_MBK: MBK, A.ROLE_MK: MK, A.ROLE_PK: PK, A.ROLE_RK: RK})
    n = PlcNode(bytes((0, 0xE0, 0, 0, 0, node)), m.executor(PLC_LIMITS), ring, store)
    if not n.loaded:
        n.commission(DOM, 1, node)
    fw = Fw(m, ring, n, Optical(ring.optical_passwords()))
    G.attach(m, n)
    keywire.attach(fw)
    for g in groups:
        assert call(fw, EP27, bytes((0, g & 0xFF, g >> 8)))[0] == 0
    return fw


def call(fw, number, params, role=A.ROLE_PLC, now=T0):
    from osgp_meter import procedures as P
    return P.run(fw.meter, number, bytes(params), role, now)
