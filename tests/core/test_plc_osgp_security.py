# The OSGP application profile on PLC (meter/plc_osgp.py), security rules:
# RC4, ET04.12 bit 3, ET04.127 AES mode, the broadcast key and window, key
# usage. Dual runtime, bare asserts (split from test_plc_osgp.py; both need a
# 256K MicroPython heap).
from osgp_meter import access as A
from osgp_meter import lontalk as L
from osgp_meter.device import PLC_LIMITS
from osgp_meter.plc_node import PlcNode
from plc_util import (node, frame, osgp, answer, h, KEY, BKEY, BT01, T0, ET04, ET11)


def request(n, apdu, now=T0, tid=1, **kw):
    return n.receive(frame(apdu=apdu, tid=tid, **kw), now)


def test_rc4_request_gets_an_encrypted_answer():
    n, m = node(seq=12)
    apdu, st, base = osgp(13, h("30 00 01"), encrypt=True)
    out = request(n, apdu)
    assert answer(out, st, base) == h("00 00 18") + BT01
    assert L.decode(out[0]).apdu[:3] != h("00 00 18")          # really encrypted
    # an out-of-window encrypted request: the 0x0C answer is encrypted too
    apdu, st, base = osgp(50, h("30 00 01"), encrypt=True)
    assert answer(request(n, apdu, T0 + 500, tid=2), st, base) == h("0C 00 00 00 0D")


def test_disable_plc_encryption_flag_refuses_rc4_requests():
    n, m = node(seq=12)
    m.store.set_field(ET04, 12, 1, 0x08)                        # ET04.12 bit 3
    apdu, st, base = osgp(13, h("30 00 01"), encrypt=True)
    assert L.decode(request(n, apdu)[0]).apdu == h("0B") + bytes(8)
    apdu, st, _ = osgp(13, h("30 00 01"))
    assert answer(request(n, apdu, tid=2), st)[0] == 0


def test_aes_security_mode_refuses_the_rc4_suite():
    n, m = node(seq=12)
    m.store.set_field(ET04, 127, 1, 2)                          # ET04.127 = AES
    apdu, st, _ = osgp(13, h("30 00 01"))
    assert L.decode(request(n, apdu)[0]).apdu == h("0B") + bytes(8)
    assert n.store.field(ET04, 0, 4) == 12 and n.osgp.stats[4] == 1


def test_broadcast_requests_use_the_broadcast_key_and_window():
    n, m = node(seq=12)
    s = m.store
    s.set_field(ET04, 82, 4, 100)                               # base
    s.set_field(ET04, 86, 2, 5)                                 # delta: accept up to 105
    G = dict(addr_fmt=L.AF_GROUP, group=7)
    # a group REQUEST: answered in 2b, digest with the broadcast key
    apdu, st, _ = osgp(101, h("30 00 01"), key=BKEY)
    out = request(n, apdu, **G)
    assert L.decode(out[0]).addr_fmt == L.AF_GROUP_ACK
    assert answer(out, st)[:3] == h("00 00 18")
    assert n.bcast_seq == 101 and s.field(ET11, 86, 4) == 1
    # the unicast key does not verify on a group request
    apdu, st, _ = osgp(102, h("30 00 01"), key=KEY)
    assert L.decode(request(n, apdu, tid=2, **G)[0]).apdu == h("0B") + bytes(8)
    # beyond base + delta, or not after the last one: 0x0C + the last accepted
    # (a different request: the same one again would be an identical retry)
    for i, seq in enumerate((106, 101)):
        apdu, st, _ = osgp(seq, h("30 00 28"), key=BKEY)
        assert answer(request(n, apdu, tid=3 + i, **G), st) == h("0C 00 00 00 65")
    # an unacknowledged broadcast write runs, unanswered
    apdu, st, _ = osgp(105, h("4F 00 29 00 00 00 00 01 44"), key=BKEY)
    assert request(n, apdu, pdu_fmt=L.PDU_APDU, addr_fmt=L.AF_BROADCAST, dst_subnet=0) is None
    assert s.read(41, 0, 1) == b"\x44" and n.bcast_seq == 105
    # the broadcast sequence number survives a restart (configuration image)
    r = PlcNode(None, m.executor(PLC_LIMITS), n.osgp.keys, s)
    assert r.loaded and r.bcast_seq == 105 and r.neuron_id == n.neuron_id


def test_key_usage_hook_at_80_percent():
    n, m = node(seq=12)
    m.store.set_field(ET04, 123, 4, 5)
    seen = []
    n.osgp.on_key_usage = lambda role, used, limit, now: seen.append((role, used, limit))
    for i in range(5):
        apdu, st, _ = osgp(13 + i, h("30 00 01"))
        request(n, apdu, T0 + i, tid=i + 1)
    assert seen == [(A.ROLE_PLC, 4, 5), (A.ROLE_PLC, 5, 5)]
