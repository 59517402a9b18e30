# Helpers for the PLC node tests (dual runtime): a small meter with ET04,
# ET11, BT01 and the node configuration table, and frame builders.
# The meter, keys and crypto are imported only by the OSGP helpers: the node
# tests (test_plc_node) fit a 128K MicroPython heap; the OSGP ones
# (test_plc_osgp*) load the LonTalk stack, the meter and the crypto and
# need 256K.
from osgp_meter import access as A
from osgp_meter import lontalk as L
from osgp_meter.plc_node import PlcNode, CONFIG_TABLE, IMAGE_SIZE
from osgp_meter.store import TableStore
import minicat

ET04 = 2048 + 4
ET11 = 2048 + 11
NID = bytes.fromhex("00 02 98 00 31 C3")
DC_NID = bytes.fromhex("00 01 02 03 04 05")
KEY = bytes(range(1, 13))                 # 01 02 .. 0C, the reference 2.1 key
BKEY = bytes([0xB0 + i for i in range(12)])
DOM = b"\x42"
BT01 = b"EMULOSGP-EMU" + bytes.fromhex("10 00 38 C1") + bytes.fromhex("00 00 00 00 12 34 56 78")
T0 = 1_700_000_000_000

TABLES = dict(minicat.TABLES)
TABLES[1] = (24, A.ALL, 0, 0x01, BT01)
TABLES[ET11] = (91, A.ALL_KEYS, 0, 0x01, None)
TABLES[CONFIG_TABLE] = (IMAGE_SIZE, A.ALL_KEYS, 0, 0x01, None)
TABLES[41] = (8, A.ALL_KEYS, A.FULL | A.ROLE_BCAST, 0x01, None)   # broadcast-writable


def h(text):
    return bytes.fromhex(text)


def store():
    return TableStore(TABLES)


def node(configured=True, st=None, seq=12, app=True):
    """A meter node: Neuron ID NID, domain 0x42 subnet 1 node 5, member 3
    of group 7 (size 4); with app, the OSGP application on a minicat meter
    with the PLC key 01..0C and ET04.0 = seq (else the meter is None)."""
    if st is None:
        st = store()
        st.set_field(ET04, 0, 4, seq)
    m = None
    if app:
        from osgp_meter.device import Meter, PLC_LIMITS
        from osgp_meter.keys import KeyRing
        m = Meter(st, minicat.PROCEDURES)
        keys = KeyRing({A.ROLE_PLC: KEY, A.ROLE_BCAST: BKEY})
        n = PlcNode(NID, m.executor(PLC_LIMITS), keys, st)
    else:
        n = PlcNode(NID, store=st)
    if configured and not n.loaded:
        n.commission(DOM, 1, 5)
        n.join_group(7, 3, size=4)
    return n, m


def frame(**kw):
    """Encoded frame; defaults: SPDU REQUEST from 1/126 to 1/5 in 0x42, tid 1."""
    args = dict(pdu_fmt=L.PDU_SPDU, addr_fmt=L.AF_SUBNET_NODE, src_subnet=1, src_node=126,
                dst_subnet=1, dst_node=5, domain=DOM, l4=L.S_REQUEST, tid=1, apdu=b"\x01")
    for k, v in kw.items():
        args[k] = v
    if args["addr_fmt"] != L.AF_SUBNET_NODE and args["addr_fmt"] != L.AF_GROUP_ACK:
        if "dst_node" not in kw:
            args["dst_node"] = None
        if args["addr_fmt"] == L.AF_GROUP and "dst_subnet" not in kw:
            args["dst_subnet"] = None
    if args["pdu_fmt"] == L.PDU_APDU:
        args["l4"] = None
        args["tid"] = None
    return L.encode(L.Frame(**args))


def osgp(seq, req, key=KEY, encrypt=False):
    """(APDU, digest stream, RC4 base or None) of an OSGP request."""
    from osgp_meter import cipher
    from osgp_meter.digest import OmaDigest
    msg = req + seq.to_bytes(4, "big")
    st = OmaDigest(key).start(msg)
    dig = st.finish_copy()
    base = None
    body = msg
    if encrypt:
        base = cipher.plc_base_key(key)
        body = msg[:1] + cipher.plc_encrypt(base, msg[1:], dig)     # the code stays clear
    return body + dig, st, base


def answer(out, st, base=None):
    """The plaintext response of a single RESPONSE frame, digest checked."""
    from osgp_meter import cipher
    assert out is not None and len(out) == 1, out
    f = L.decode(out[0])
    assert f.pdu_fmt == L.PDU_SPDU and f.l4 == L.S_RESPONSE, f
    body, dig = f.apdu[:-8], f.apdu[-8:]
    plain = body
    if base is not None:
        plain = body[:1] + cipher.plc_decrypt(base, body[1:], dig)
    st.update(plain)
    assert st.finish() == dig
    return plain


def app_node(configured=True):
    """A node whose application records what it gets and answers requests
    with b'\\x55' + the request APDU."""
    n, m = node(configured, app=False)
    got = []

    def on_message(node_, inc, now):
        got.append((inc.service, bytes(inc.frame.apdu), inc.frame.addr_fmt))
        return b"\x55" + bytes(inc.frame.apdu)
    n.on_message = on_message
    return n, got


def one(out):
    assert out is not None and len(out) == 1, out
    return L.decode(out[0])
