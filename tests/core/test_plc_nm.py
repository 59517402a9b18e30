# The LonTalk node of the meter (meter/plc_node.py): network management and
# diagnostics, persistence, handlers, the channel's address book. Dual
# runtime, bare asserts (split from test_plc_node.py for a 128K heap).
from osgp_meter import lontalk as L
from osgp_meter import lontalk_nm as N
from osgp_meter import lontalk_transport as TR
from osgp_meter import plc_node as P
from plc_util import (node, frame, store, h, NID, DC_NID, DOM, T0, ET04, app_node, one)


# --- network management ---------------------------------------------------------------

def nm(n, apdu, now=T0, **kw):
    args = dict(apdu=apdu, tid=kw.pop("tid", 1))
    args.update(kw)
    return n.receive(frame(**args), now)


def by_nid(**kw):
    kw.setdefault("addr_fmt", L.AF_NEURON_ID)
    kw.setdefault("dst_subnet", 0)
    kw.setdefault("neuron_id", NID)
    return kw


def test_query_id_answers_only_when_the_selector_matches():
    n, got = node(configured=False, app=False)
    q = N.query_id(N.SEL_UNCONFIGURED)
    f = one(nm(n, q, addr_fmt=L.AF_BROADCAST, dst_subnet=0, domain=b""))
    assert f.apdu == N.id_response(NID, b"OSGP-EMU")
    assert (f.src_subnet, f.src_node, f.domain) == (0, 0, b"")      # flex domain: from 0/0
    # selected: not until respond-to-query
    assert nm(n, N.query_id(N.SEL_SELECTED), tid=2, addr_fmt=L.AF_BROADCAST, dst_subnet=0) is None
    assert one(nm(n, N.respond_to_query(1), tid=3, **by_nid())).apdu == b"\x22"
    assert one(nm(n, N.query_id(N.SEL_SELECTED), tid=4, addr_fmt=L.AF_BROADCAST, dst_subnet=0)).apdu[0] == 0x21
    # memory match on the Neuron ID (read-only relative, offset 0)
    assert one(nm(n, N.query_id(0, N.MODE_READ_ONLY, 0, NID[:3]), tid=5, **by_nid())).apdu[0] == 0x21
    assert nm(n, N.query_id(0, N.MODE_READ_ONLY, 0, b"\x99"), tid=6, **by_nid()) is None
    # a configured node does not answer "unconfigured only"
    m, _ = node(app=False)
    assert nm(m, q, addr_fmt=L.AF_BROADCAST, dst_subnet=0) is None


def test_commissioning_over_nm_update_domain_address_and_state():
    st = store()
    n, _ = node(configured=False, st=st, app=False)
    dom = N.Domain(h("42 00 00 00 00 00"), 3, 17, 1, bytes(6))
    f = one(nm(n, N.update_domain(0, dom), domain=b"\x11\x22\x33", **by_nid()))
    assert f.apdu == b"\x23" and f.domain == b"\x11\x22\x33" and (f.src_subnet, f.src_node) == (0, 0)
    grp = N.AddressEntry(N.ADDR_GROUP, domain=0, group=9, size=5, member=2, rcv_timer=10, tx_timer=7, retry=3)
    assert one(nm(n, N.update_addr(0, grp), tid=2, **by_nid())).apdu == b"\x26"
    assert one(nm(n, N.update_addr(15, grp), tid=3, **by_nid())).apdu == b"\x06"   # bad index
    assert n.error_log == P.ERR_INVALID_ADDR_INDEX
    assert one(nm(n, N.set_node_mode(N.NODE_CHANGE_STATE, P.CONFIGURED), tid=4, **by_nid())).apdu == b"\x2C"
    assert n.state == P.CONFIGURED
    # now reachable as 3/17 in domain 0x42, and queryable
    f = one(nm(n, N.query_domain(0), tid=5, dst_subnet=3, dst_node=17))
    assert N.parse_response(N.NM_QUERY_DOMAIN, f.apdu) == (True, dom)
    assert (f.src_subnet, f.src_node) == (3, 17)
    f = one(nm(n, N.query_addr(0), tid=6, dst_subnet=3, dst_node=17))
    assert N.parse_response(N.NM_QUERY_ADDR, f.apdu) == (True, grp)
    # the ET04 mirrors
    assert st.read(ET04, 4, 6) == NID and st.read(ET04, 10, 2) == h("03 11") and st.field(ET04, 72, 1) == 4
    # a restarted meter (same store) keeps all of it
    r, _ = node(configured=False, st=st, app=False)
    assert r.loaded and r.state == P.CONFIGURED and r.domains[0] == dom and r.addresses[0] == grp
    assert r.neuron_id == NID


def test_update_key_and_leave_domain():
    n, _ = node(app=False)
    assert one(nm(n, N.update_key(0, h("01 02 03 04 05 FF")))).apdu == b"\x25"
    assert n.domains[0].key == h("01 02 03 04 05 FF")
    assert one(nm(n, N.update_key(0, h("01 00 00 00 00 02")), tid=2)).apdu == b"\x25"
    assert n.domains[0].key == h("02 02 03 04 05 01")
    resets = []
    n.on_reset = lambda node_, cause, mode, now: resets.append(cause)
    # leaving the domain the request came in: no response; the last domain: unconfigured + reset
    assert nm(n, N.leave_domain(0), tid=3) is None
    assert n.state == P.UNCONFIGURED and n.domains[0].invalid and resets == [P.RESET_SOFTWARE]
    assert n.status().reset_cause == P.RESET_SOFTWARE


def test_set_node_mode_offline_then_online():
    n, m = node(app=False)
    got = []
    n.on_message = lambda node_, inc, now: got.append(1)
    st = n.store
    assert one(nm(n, N.set_node_mode(N.NODE_OFFLINE))).apdu == b"\x2C"
    assert n.state_code == P.SOFT_OFFLINE and st.field(ET04, 72, 1) == 12
    n.receive(frame(pdu_fmt=L.PDU_APDU, apdu=b"\x01"), T0)
    assert got == [] and n.drops["offline"] == 1
    f = one(nm(n, N.nd_query_status(), tid=2))
    assert N.parse_response(N.ND_QUERY_STATUS, f.apdu)[1].node_state == 12
    assert one(nm(n, N.set_node_mode(N.NODE_ONLINE), tid=3)).apdu == b"\x2C"
    assert n.state_code == P.CONFIGURED and st.field(ET04, 72, 1) == 4
    n.receive(frame(pdu_fmt=L.PDU_APDU, apdu=b"\x01"), T0)
    assert got == [1]
    # reset: no response, the hook runs, soft offline does not survive it
    resets = []
    n.on_reset = lambda node_, cause, mode, now: resets.append(mode)
    nm(n, N.set_node_mode(N.NODE_OFFLINE), tid=4)
    assert nm(n, N.set_node_mode(N.NODE_APP_RESET), tid=5) is None
    assert resets == [N.NODE_APP_RESET] and n.online


def test_query_status_counts_and_clear_status():
    n, _ = node(app=False)
    good = frame(pdu_fmt=L.PDU_APDU)
    n.receive(good[:-1] + bytes((good[-1] ^ 1,)), T0)                  # CRC error
    n.send((L.AF_SUBNET_NODE, 1, 126), b"\x11", T0, retry=0, tx_timer=0)
    n.poll(T0 + 16)                                                    # transaction timeout
    n.rr_max = 0
    n.receive(frame(pdu_fmt=L.PDU_TPDU, l4=L.T_ACKD), T0)              # receive transaction full
    n.rr_max = 16
    n.receive(frame(pdu_fmt=L.PDU_APDU, apdu=b"\x01" * 229), T0)       # lost (application buffer)
    f = one(nm(n, N.nd_query_status(), tid=9, src_node=99))
    ok, s = N.parse_response(N.ND_QUERY_STATUS, f.apdu)
    assert ok and (s.tx_errors, s.timeouts, s.rx_full, s.lost, s.missed) == (1, 1, 1, 1, 0)
    assert s.reset_cause == P.RESET_POWER_UP and s.node_state == 4
    assert (s.version, s.arch) == (P.VERSION, P.MODEL)
    assert one(nm(n, N.nd_clear_status(), tid=10, src_node=99)).apdu == b"\x33"
    f = one(nm(n, N.nd_query_status(), tid=11, src_node=99))
    s = N.parse_response(N.ND_QUERY_STATUS, f.apdu)[1]
    assert (s.tx_errors, s.timeouts, s.rx_full, s.lost, s.reset_cause) == (0, 0, 0, 0, 0)


def test_wink_and_failures():
    n, _ = node(app=False)
    winks = []
    n.on_wink = lambda node_, now: winks.append(now)
    assert one(nm(n, N.wink())).apdu == b"\x30"
    nm(n, N.wink(), tid=2, pdu_fmt=L.PDU_APDU)                       # unacknowledged wink
    assert n.winks == 2 and len(winks) == 2
    assert one(nm(n, b"\x6D\x00\x00\x00\x01", tid=3)).apdu == b"\x0D"  # read memory: not supported
    assert one(nm(n, b"\x63\x00", tid=4)).apdu == b"\x03"              # malformed update domain
    assert one(nm(n, N.query_domain(2), tid=5)).apdu == b"\x0A"        # bad domain index
    assert one(nm(n, N.nd_query_xcvr(), tid=6)).apdu == b"\x14"        # not modelled
    assert one(nm(n, N.query_domain(0), tid=7, pdu_fmt=L.PDU_TPDU, l4=L.T_ACKD)).l4 == L.T_ACK


def test_group_address_update_must_come_group_addressed():
    n, _ = node(app=False)
    e = N.AddressEntry(N.ADDR_GROUP, domain=0, group=7, size=9, member=0, rcv_timer=8, tx_timer=5, retry=1)
    assert one(nm(n, N.update_group_addr(e))).apdu == b"\x09"
    f = one(nm(n, N.update_group_addr(e), tid=2, addr_fmt=L.AF_GROUP, group=7))
    assert f.apdu == b"\x29" and f.addr_fmt == L.AF_GROUP_ACK
    a = n.addresses[0]
    assert (a.size, a.member, a.rcv_timer, a.retry) == (9, 3, 8, 1)      # member unchanged


def test_handlers_take_foreign_frames_and_the_discovery_domain():
    n, _ = node(app=False)
    seen = []
    n.register(0x45, lambda node_, inc, now: seen.append((inc.dom, inc.src)))
    n.receive(frame(pdu_fmt=L.PDU_APDU, apdu=b"\x45\x00" + NID, addr_fmt=L.AF_BROADCAST,
                    dst_subnet=0, domain=P.DISCOVERY_DOMAIN), T0)
    n.receive(frame(pdu_fmt=L.PDU_APDU, apdu=b"\x45\x01"), T0)
    assert seen == [(TR.DISCOVERY, (0, 0)), (0, (1, 5))]


def test_address_book_filters_for_the_channel():
    a, _ = node(app=False)
    b, _ = node(configured=False, app=False)
    b.neuron_id = DC_NID
    book = P.AddressBook()
    book.add("m1", a)
    book.add("m2", b)
    book.always = ["dc"]
    assert book.filter(frame()) == ["m1", "dc"]
    assert sorted(book.filter(frame(addr_fmt=L.AF_BROADCAST, dst_subnet=0))) == ["dc", "m1", "m2"]
    assert book.filter(frame(addr_fmt=L.AF_GROUP, group=7)) == ["m1", "dc"]
    assert book.filter(frame(addr_fmt=L.AF_NEURON_ID, dst_subnet=0, neuron_id=DC_NID)) == ["m2", "dc"]
    assert book.filter(b"\x00") is None
    b.commission(DOM, 1, 9)                      # a configuration change rebuilds the index
    assert book.filter(frame(dst_node=9)) == ["m2", "dc"]


def test_leaving_the_last_domain_by_neuron_id_answers_then_resets():
    n, _ = node(app=False)
    resets = []
    n.on_reset = lambda node_, cause, mode, now: resets.append(cause)
    # by Neuron ID in a foreign domain (flex): the answer goes out, then the reset
    f = one(nm(n, N.leave_domain(0), domain=b"\x99", **by_nid()))
    assert f.apdu == b"\x24" and (f.src_subnet, f.src_node, f.domain) == (0, 0, b"\x99")
    assert resets == [P.RESET_SOFTWARE] and n.state == P.UNCONFIGURED
