# The OSGP application profile on PLC (meter/plc_osgp.py) through the node:
# frame bytes in, response frame out, digests checked with the PLC keys.
# Dual runtime, bare asserts; MicroPython needs a 256K heap (the LonTalk
# stack, the meter and the crypto).
from osgp_meter import access as A
from osgp_meter import lontalk as L
from plc_util import (node, frame, osgp, answer, h, BT01, DOM, T0, ET04, ET11)


def request(n, apdu, now=T0, tid=1, **kw):
    return n.receive(frame(apdu=apdu, tid=tid, **kw), now)


def test_reference_frame_2_1_reads_bt23():
    # reference lontalk-transport-security.md 2.1: the DC (1/126) reads table
    # 0x0017 from the meter (1/5) in domain 0x42, sequence 13, key 01..0C.
    n, m = node(seq=12)
    out = n.receive(h("01 19 01 FE 01 85 42 03 30 00 17 00 00 00 0D C7 7F 72 07 2D D8 3C FC 73 4C"), T0)
    f = L.decode(out[0])
    assert (f.l4, f.tid, f.src_node, f.dst_node, f.domain, f.backlog) == (L.S_RESPONSE, 3, 5, 126, DOM, 0)
    _, st, _ = osgp(13, h("30 00 17"))
    assert answer(out, st) == h("00 00 40") + bytes(64)
    assert n.store.field(ET04, 0, 4) == 13


def test_read_bt01_end_to_end():
    n, m = node(seq=12)
    apdu, st, _ = osgp(13, h("30 00 01"))
    out = request(n, apdu)
    assert answer(out, st) == h("00 00 18") + BT01
    assert n.store.field(ET04, 0, 4) == 13                   # ET04.0 follows
    assert n.store.field(ET11, 82, 4) == 1                   # unicast key usage
    assert n.osgp.keys.usage[A.ROLE_PLC] == 1
    # partial read, next sequence number
    apdu, st, _ = osgp(14, h("3F 00 01 00 00 04 00 08"))
    assert answer(request(n, apdu, T0 + 500, tid=2), st) == h("00 00 08") + b"OSGP-EMU"


def test_out_of_window_sequence_gets_0x0c_with_the_current_number():
    n, m = node(seq=12)
    for seq in (12, 21, 0xFFFFFFFF):
        apdu, st, _ = osgp(seq, h("30 00 01"))
        assert answer(request(n, apdu, tid=seq & 15), st) == h("0C 00 00 00 0C")
    apdu, st, _ = osgp(20, h("30 00 01"))                      # 8 ahead: fine
    assert answer(request(n, apdu, tid=3), st)[0] == 0
    assert n.osgp.stats[:3] == [1, 0, 3]


def test_sequence_window_wraps():
    n, m = node(seq=0xFFFFFFFE)
    apdu, st, _ = osgp(3, h("30 00 01"))
    assert answer(request(n, apdu), st)[0] == 0 and n.store.field(ET04, 0, 4) == 3


def test_bad_digest_gets_a_plain_0x0b_and_changes_nothing():
    n, m = node(seq=12)
    apdu, st, _ = osgp(13, h("4F 00 28 00 00 00 00 01 42"), key=bytes(12))
    written = m.store.snapshot()
    out = request(n, apdu)
    assert L.decode(out[0]).apdu == h("0B") + bytes(8)
    assert m.store.snapshot() == written and n.osgp.stats[1] == 1


def test_write_and_identical_retry_with_a_new_transaction():
    n, m = node(seq=12)
    apdu, st, _ = osgp(13, h("4F 00 28 00 00 00 00 01 42"))
    first = request(n, apdu)
    assert answer(first, st) == b"\x00" and m.store.read(40, 0, 1) == b"\x42"
    m.store.write(40, 0, b"\x07")
    # the DC retries at the application level (new LonTalk transaction): the
    # cached answer, nothing runs twice
    again = request(n, apdu, T0 + 9000, tid=2)
    assert L.decode(again[0]).apdu == L.decode(first[0]).apdu
    assert m.store.read(40, 0, 1) == b"\x07"


def test_osgp_over_ackd_runs_without_an_answer():
    n, m = node(seq=12)
    apdu, st, _ = osgp(13, h("4F 00 28 00 00 00 00 01 43"))
    out = request(n, apdu, pdu_fmt=L.PDU_TPDU, l4=L.T_ACKD)
    assert L.decode(out[0]).l4 == L.T_ACK and m.store.read(40, 0, 1) == b"\x43"


def test_short_osgp_apdu_is_dropped():
    n, m = node(seq=12)
    assert request(n, h("30 00 01 00 00 00 0D")) is None
    assert n.osgp.stats[3] == 1


def test_unconfigured_meter_answers_by_neuron_id():
    n, m = node(configured=False, seq=12)
    apdu, st, _ = osgp(13, h("30 00 01"))
    out = request(n, apdu, addr_fmt=L.AF_NEURON_ID, dst_subnet=0, neuron_id=n.neuron_id, domain=b"")
    f = L.decode(out[0])
    assert (f.src_subnet, f.src_node, f.domain) == (0, 0, b"")
    assert answer(out, st)[:3] == h("00 00 18")
