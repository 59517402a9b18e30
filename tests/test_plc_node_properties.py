"""Property-based tests of the meter's LonTalk node (CPython, hypothesis):
random bytes and random valid frames never raise and only ever produce
valid frames; frames not addressed to the node change nothing; any
interleaving of frames and polls keeps the node consistent. Plus the node
on the real catalogue and device.Meter (what Firmware binds)."""
import os
import sys

from hypothesis import HealthCheck, given, settings, strategies as st

from osgp_meter import access as A
from osgp_meter import catalogue_data
from osgp_meter import lontalk as L
from osgp_meter import lontalk_nm as N
from osgp_meter.device import Meter, PLC_LIMITS
from osgp_meter.keys import KeyRing
from osgp_meter.plc_node import PlcNode, DISCOVERY_DOMAIN
from osgp_meter.store import TableStore

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "core"))
import plc_util as U  # noqa: E402

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def fresh(configured=True):
    n, m = U.node(configured)
    n.rr_max = 4                  # reach the "receive transaction full" path too
    return n


def valid_out(out):
    assert out is None or (isinstance(out, list) and out)
    for b in out or ():
        f = L.decode(b)           # every frame the node sends decodes
        assert L.encode(f) == b


# --- strategies --------------------------------------------------------------------------

APDUS = st.one_of(
    st.binary(min_size=1, max_size=40),
    st.sampled_from([0x30, 0x3F, 0x40, 0x4F, 0x45, 0x4D]).flatmap(
        lambda c: st.binary(min_size=0, max_size=30).map(lambda b: bytes((c,)) + b)),
    st.integers(0x50, 0x7F).flatmap(
        lambda c: st.binary(min_size=0, max_size=20).map(lambda b: bytes((c,)) + b)),
    st.sampled_from([N.query_id(0), N.nd_query_status(), N.nd_clear_status(), N.wink(),
                     N.set_node_mode(0), N.set_node_mode(1), N.set_node_mode(2),
                     N.set_node_mode(3, 4), N.leave_domain(1), N.query_domain(0),
                     N.update_key(0, bytes(6)), N.respond_to_query(1)]),
)


@st.composite
def frames(draw, addressed=None):
    """A valid frame. addressed=True: a form the configured test node takes
    (domain 0x42, 1/5, group 7, its Neuron ID); False: one it must not;
    None: anything."""
    pf = draw(st.sampled_from([L.PDU_TPDU, L.PDU_SPDU, L.PDU_APDU, L.PDU_AUTH]))
    l4 = None
    if pf == L.PDU_TPDU:
        l4 = draw(st.sampled_from([0, 1, 2, 4, 5]))
    elif pf == L.PDU_SPDU:
        l4 = draw(st.sampled_from([0, 2, 4, 5]))
    elif pf == L.PDU_AUTH:
        l4 = draw(st.integers(0, 3))
    ack_like = l4 == 2 and pf in (L.PDU_TPDU, L.PDU_SPDU)
    listed = pf in (L.PDU_TPDU, L.PDU_SPDU) and l4 in (4, 5)
    if ack_like:
        formats = [L.AF_SUBNET_NODE, L.AF_GROUP_ACK]
    elif listed:
        formats = [L.AF_GROUP]
    elif pf == L.PDU_AUTH:
        formats = [L.AF_SUBNET_NODE, L.AF_NEURON_ID, L.AF_GROUP_ACK]
    else:
        formats = [L.AF_BROADCAST, L.AF_GROUP, L.AF_SUBNET_NODE, L.AF_NEURON_ID]
    af = draw(st.sampled_from(formats))
    mine = addressed if addressed is not None else draw(st.booleans())
    f = L.Frame(prio=draw(st.booleans()), alt=draw(st.booleans()), backlog=draw(st.integers(0, 63)),
                version=draw(st.sampled_from([L.V_LEGACY, L.V_LEGACY, L.V_ENHANCED])),
                pdu_fmt=pf, addr_fmt=af, src_subnet=draw(st.sampled_from([1, 2])),
                src_node=draw(st.sampled_from([126, 100, 5])))
    if mine:
        f.domain = U.DOM
        if f.src_subnet == 1 and f.src_node == 5:
            f.src_node = 126
    else:
        f.domain = draw(st.sampled_from([b"\x43", b"", b"\x42\x00\x00", bytes(6)]))
    if af == L.AF_BROADCAST:
        f.dst_subnet = draw(st.sampled_from([0, 1])) if mine else 3
    elif af == L.AF_GROUP:
        f.group = 7 if mine else draw(st.sampled_from([7, 8]))
    elif af in (L.AF_SUBNET_NODE, L.AF_GROUP_ACK):
        f.dst_subnet = 1
        f.dst_node = 5 if mine else draw(st.sampled_from([5, 6]))
        if af == L.AF_GROUP_ACK:
            f.group = 7
            f.member = draw(st.integers(0, 63))
    else:
        f.dst_subnet = 0
        f.neuron_id = U.NID if mine else U.DC_NID
    if pf != L.PDU_APDU:
        f.l4 = l4
        f.tid = draw(st.integers(0, 15 if f.version == L.V_LEGACY else 4095))
    if pf == L.PDU_AUTH:
        f.auth_fmt = draw(st.integers(0, 3))
        f.value = draw(st.binary(min_size=8, max_size=8))
        if f.auth_fmt == L.AF_GROUP:
            f.auth_group = draw(st.integers(0, 255))
    elif listed:
        f.mlist = draw(st.binary(min_size=1 if l4 == 4 else 0, max_size=8))
    carries = pf == L.PDU_APDU or (pf == L.PDU_TPDU and l4 in (0, 1, 5)) or \
        (pf == L.PDU_SPDU and l4 in (0, 2, 5))
    if carries:
        f.apdu = draw(APDUS)
        if f.apdu[0] & 0x80 and len(f.apdu) < 2:
            f.apdu += b"\x00"
    if pf != L.PDU_APDU and pf != L.PDU_AUTH and not ack_like:
        f.auth = draw(st.booleans())
    return L.encode(f)


# --- properties --------------------------------------------------------------------------

@SETTINGS
@given(st.binary(max_size=300), st.integers(0, 10 ** 6))
def test_random_bytes_never_raise(data, dt):
    n = fresh()
    valid_out(n.receive(data, U.T0 + dt))
    assert n.drops.get("internal", 0) == 0


@SETTINGS
@given(st.lists(st.tuples(frames(), st.integers(0, 3000)), max_size=12), st.booleans())
def test_random_valid_frames_never_raise_and_answer_with_valid_frames(seq, configured):
    n = fresh(configured)
    now = U.T0
    for data, dt in seq:
        now += dt
        valid_out(n.receive(data, now, -40.0, 12.0))
        d = n.deadline
        if d is not None and d <= now + dt:
            valid_out(n.poll(d))
    assert n.drops.get("internal", 0) == 0
    assert n.drops.get("hook_error", 0) == 0


@SETTINGS
@given(st.lists(frames(addressed=False), min_size=1, max_size=8))
def test_frames_not_addressed_to_the_node_change_nothing(seq):
    n = fresh()
    image = n.image()
    tables = n.store.snapshot()
    for data in seq:
        f = L.decode(data)
        if f.addr_fmt == L.AF_BROADCAST and f.domain == DISCOVERY_DOMAIN:
            continue
        assert n.receive(data, U.T0) is None
    assert n.image() == image and n.store.snapshot() == tables
    assert n._rrs is None and n.duplicates == 0 and n.osgp.stats == [0, 0, 0, 0, 0]


@SETTINGS
@given(st.lists(st.one_of(st.integers(0, 2000), frames(addressed=True)), max_size=20))
def test_interleaved_sends_frames_and_polls_keep_the_transaction_state_consistent(ops):
    n = fresh()
    now = U.T0
    done = []
    for i, op in enumerate(ops):
        if isinstance(op, int):
            now += op
            if i % 3 == 0:
                valid_out(n.send((L.AF_SUBNET_NODE, 1, 126), b"\x01", now, retry=1, tx_timer=3,
                                 on_done=lambda node, tx, ok: done.append(ok)))
            valid_out(n.poll(now))
        else:
            valid_out(n.receive(op, now))
        d = n.deadline
        assert d is None or d > now - 10 ** 6
    for _ in range(40):                   # everything started ends
        d = n.deadline
        if d is None:
            break
        valid_out(n.poll(d))
    assert n.deadline is None
    started = (len(ops) + 2) // 3 if ops else 0
    assert len(done) <= started


# --- the node on the real catalogue and device.Meter ------------------------------------

def test_bt01_read_on_the_real_catalogue_and_meter():
    store = TableStore(catalogue_data.TABLES)
    meter = Meter(store, catalogue_data.PROCEDURES)
    keys = KeyRing({A.ROLE_PLC: U.KEY, A.ROLE_BCAST: U.BKEY})
    n = PlcNode(U.NID, meter.executor(PLC_LIMITS), keys, store)
    assert not n.loaded                   # no configuration table in this catalogue
    n.commission(U.DOM, 1, 5)
    assert store.read(2052, 4, 8) == U.NID + b"\x01\x05" and store.field(2052, 72, 1) == 4
    apdu, st_, _ = U.osgp(1, bytes.fromhex("30 00 01"))
    out = n.receive(U.frame(apdu=apdu), U.T0)
    rsp = U.answer(out, st_)
    assert rsp[:3] == bytes.fromhex("00 00 18") and rsp[3:] == store.read(1, 0, 24)
    assert store.field(2052, 0, 4) == 1 and store.field(2059, 82, 4) == 1


def _doc_meter():
    store = TableStore(catalogue_data.TABLES)
    store.set_field(2052, 0, 4, 12)
    meter = Meter(store, catalogue_data.PROCEDURES)
    keys = KeyRing({A.ROLE_PLC: U.KEY, A.ROLE_BCAST: U.BKEY})
    n = PlcNode(U.NID, meter.executor(PLC_LIMITS), keys, store)
    n.commission(U.DOM, 1, 5)
    return n


def test_the_worked_examples_of_docs_plc_osgp_profile():
    h = bytes.fromhex
    # plain read of BT01, sequence 13 (ET04.0 = 12), key 01..0C
    n = _doc_meter()
    assert n.receive(h("00 19 01 FE 01 85 42 03 30 00 01 00 00 00 0D DF 20 19 03 F4 4A 89 E7 D6 BB"),
                     U.T0) == [h("00 19 01 85 01 FE 42 23 00 00 18 45 4D 55 4C 4F 53 47 50 2D 45 4D 55"
                                 " 10 00 38 C1 00 00 00 00 00 00 00 00 1D 1F 3D DB BE A3 0C 44 81 15")]
    # the same read, RC4
    n = _doc_meter()
    assert n.receive(h("00 19 01 FE 01 85 42 03 30 F9 68 AD 7B A4 C7 DF 20 19 03 F4 4A 89 E7 97 D8"),
                     U.T0) == [h("00 19 01 85 01 FE 42 23 00 A4 43 21 FE 28 1E E7 04 C6 47 5A EA 6E 5D"
                                 " 45 50 72 7C 95 11 EB 8F 9A 72 05 45 1D 1F 3D DB BE A3 0C 44 EE 8F")]
    # sequence 40: out of the window
    n = _doc_meter()
    assert n.receive(h("00 19 01 FE 01 85 42 04 30 00 01 00 00 00 28 FB 9D EB 0D CA 77 8F 35 9F E5"),
                     U.T0) == [h("00 19 01 85 01 FE 42 24 0C 00 00 00 0C EC EB 46 07 C1 73 7B 28 09 C9")]
