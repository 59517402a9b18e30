# The AES security mode (ET04.127 = 2, meter/aes_mode.py, an EMULATOR
# PROFILE: docs/security-modes.md) on the PLC port, dual runtime: unicast and
# group requests, 0x0B (bad tag, or the RC4 suite: refused), the 0x0C
# sequence report, leaving AES mode through an AES write, and a key change
# (EP15) in AES mode. The MEP port: test_aes_mode.py.
from osgp_meter import access as A
from osgp_meter import aes_mode as M
from osgp_meter import cipher
from osgp_meter import lontalk as L
import plc_util as P

T0 = P.T0
ET04 = 2048 + 4
ET11 = 2048 + 11
READ_BT01 = b"\x30\x00\x01"


def h(text):
    return bytes.fromhex(text)


def plc_node(mode=2):
    n, m = P.node(seq=12)
    cipher.guard_security_mode(m)
    m.store.set_field(ET04, 127, 1, mode)
    return n, m


ME = b"\x00\x00" + P.NID


def plc_ask(n, req, seq, key=P.KEY, tid=1, bcast=False, at=T0, **kw):
    c = cipher.new_aes_ccm(M.derive_key(key))
    flags = M.F_PLC | (M.F_BCAST if bcast else 0)
    apdu = M.seal_request(c, flags, M.NO_ID if bcast else ME, req, seq)
    out = n.receive(P.frame(apdu=apdu, tid=tid, **kw), at)
    if not out:
        return None, None
    f = L.decode(out[0])
    return f.apdu, M.open_answer(c, flags, ME, seq, f.apdu)


def test_worked_example_of_the_docs():
    # docs/security-modes.md (self-computed): PLC key 01 .. 0C, Neuron ID
    # 00 02 98 00 31 C3, DC 1/126 -> meter 1/5 in domain 42, ET04.0 = 12
    assert M.derive_key(P.KEY) == h("92 B8 F8 86 8D 60 F1 2F 6C AB A4 0E 4A F4 33 41")
    n, m = plc_node()
    req = h("00 19 01 FE 01 85 42 03 30 C4 D7 00 00 00 0D 94 E1 C2 78 07 94 2E D7 91 AA")
    out = n.receive(req, T0)
    assert out == [h("00 19 01 85 01 FE 42 23 00 49 77 EE C1 DB F5 B5 22 24 C3 D1 5F 33 A2"
                     " 8C 8D B3 E1 FF 11 D5 1D D2 EF B0 CD B2 AA 03 AF 71 50 28 D0 4C D7")]


def test_plc_read_in_aes_mode():
    n, m = plc_node()
    apdu, rsp = plc_ask(n, READ_BT01, 13)
    assert rsp == h("00 00 18") + P.BT01
    assert apdu[3:27] != P.BT01 and n.osgp.stats[0] == 1
    assert m.store.field(ET04, 0, 4) == 13 and m.store.field(ET11, 82, 4) == 1
    # the same APDU again (an application-level retry): the cached answer
    c = cipher.new_aes_ccm(M.derive_key(P.KEY))
    again = M.seal_request(c, M.F_PLC, ME, READ_BT01, 13)
    out = n.receive(P.frame(apdu=again, tid=2), T0 + 100)
    assert L.decode(out[0]).apdu == apdu and n.osgp.stats[0] == 1


def test_plc_refusals_in_aes_mode_change_nothing():
    n, m = plc_node()
    before = m.store.snapshot()
    # the RC4/OMA-digest suite, plain and encrypted: 0x0B, counted as refused
    for i, enc in enumerate((False, True)):
        apdu = P.osgp(13, READ_BT01, encrypt=enc)[0]
        out = n.receive(P.frame(apdu=apdu, tid=1 + i), T0 + 100 * i)
        assert L.decode(out[0]).apdu == h("0B") + bytes(8)
    assert n.osgp.stats[4] == 2
    # a bad tag, the wrong key, the wrong Neuron ID: 0x0B, counted as bad
    c = cipher.new_aes_ccm(M.derive_key(P.KEY))
    good = M.seal_request(c, M.F_PLC, ME, READ_BT01, 13)
    bad = good[:4] + bytes((good[4] ^ 1,)) + good[5:]
    other = M.seal_request(c, M.F_PLC, b"\x00\x00" + bytes(6), READ_BT01, 13)
    for tid, apdu in ((3, bad), (4, other)):
        out = n.receive(P.frame(apdu=apdu, tid=tid), T0 + 500 + tid)
        assert L.decode(out[0]).apdu == h("0B") + bytes(8)
    assert plc_ask(n, READ_BT01, 13, key=P.BKEY, tid=5)[0] == h("0B") + bytes(8)
    assert n.osgp.stats[1] == 3 and n.osgp.stats[0] == 0
    # out of the window: the authenticated report of ET04.0
    apdu, rsp = plc_ask(n, READ_BT01, 40, tid=6)
    assert rsp == h("0C 00 00 00 0C") and apdu[:5] == rsp and n.osgp.stats[2] == 1
    assert m.store.snapshot() == before


def test_plc_group_request_in_aes_mode():
    n, m = plc_node()
    s = m.store
    s.set_field(ET04, 82, 4, 100)
    s.set_field(ET04, 86, 2, 5)
    G = dict(addr_fmt=L.AF_GROUP, group=7)
    # sealed for every member (identity 0), answered under this member's ID
    apdu, rsp = plc_ask(n, READ_BT01, 101, key=P.BKEY, bcast=True, **G)
    assert rsp == h("00 00 18") + P.BT01 and n.bcast_seq == 101
    assert s.field(ET11, 86, 4) == 1
    apdu, rsp = plc_ask(n, READ_BT01, 101, key=P.BKEY, bcast=True, tid=2, at=T0 + 900, **G)
    assert rsp[:3] == h("00 00 18") and n.osgp.stats[0] == 1    # identical retry: cached
    apdu, rsp = plc_ask(n, READ_BT01, 107, key=P.BKEY, bcast=True, tid=3, at=T0 + 1900, **G)
    assert rsp == h("0C 00 00 00 65")           # beyond base + delta: report of the last
    # the unicast key's sealing does not pass on a group request
    apdu, rsp = plc_ask(n, READ_BT01, 102, key=P.KEY, bcast=True, tid=4, at=T0 + 2900, **G)
    assert apdu == h("0B") + bytes(8)


def test_plc_back_to_rc4_through_an_aes_write():
    n, m = plc_node()
    apdu, rsp = plc_ask(n, h("4F 08 04 00 00 7F 00 01 00"), 13)
    assert rsp == b"\x00" and m.store.field(ET04, 127, 1) == 0
    apdu, st, _ = P.osgp(14, READ_BT01)
    assert P.answer(n.receive(P.frame(apdu=apdu, tid=2), T0 + 100), st)[:3] == h("00 00 18")


def test_key_change_in_aes_mode():
    # EP15 over PLC in AES mode: params = key_id | aes_mode.wrap_key(...);
    # the answer is sealed under the old key, the next request needs the new
    from osgp_meter import keys as K
    import bcast_util as B
    old = K._aes_unwrap
    K.set_aes_unwrap(cipher.aes_unwrap_key)
    try:
        f = B.firmware()
        n, m = f.plc, f.meter
        m.store.set_field(ET04, 127, 1, 2)
        me = b"\x00\x00" + n.neuron_id
        new = bytes(range(0xA1, 0xAD))
        params = bytes((0,)) + M.wrap_key(P.KEY, K.EP15, 0, new)
        c = cipher.new_aes_ccm(M.derive_key(P.KEY))
        req = bytes((0x40, 0, 7, 0, 3 + len(params), K.EP15 & 0xFF, K.EP15 >> 8, 1)) + params
        apdu = M.seal_request(c, M.F_PLC, me, req, 1)
        out = n.receive(P.frame(apdu=apdu, tid=1, dst_node=5), T0)
        assert M.open_answer(c, M.F_PLC, me, 1, L.decode(out[0]).apdu) == b"\x00"
        assert f.keys.get(A.ROLE_PLC) == new
        rd = M.seal_request(c, M.F_PLC, me, h("30 00 08"), 2)           # BT08, old key
        out = n.receive(P.frame(apdu=rd, tid=2, dst_node=5), T0 + 100)
        assert L.decode(out[0]).apdu == h("0B") + bytes(8)
        c2 = cipher.new_aes_ccm(M.derive_key(new))
        rd = M.seal_request(c2, M.F_PLC, me, h("30 00 08"), 2)
        out = n.receive(P.frame(apdu=rd, tid=3, dst_node=5), T0 + 200)
        rsp = M.open_answer(c2, M.F_PLC, me, 2, L.decode(out[0]).apdu)
        assert rsp[:3] == h("00 00 10") and rsp[3:7] == h("0F 08 01 00")   # EP15, PSN 1, done
        # an RC4-wrapped key change in AES mode does not verify: result 5
        bad = bytes((0,)) + K.wrap(new, K.EP15, 0, P.KEY)
        assert B.call(f, K.EP15, bad) == (5, b"") and f.keys.get(A.ROLE_PLC) == new
    finally:
        K.set_aes_unwrap(old)
