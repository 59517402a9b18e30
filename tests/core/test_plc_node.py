# The LonTalk node of the meter (meter/plc_node.py, lontalk_transport.py):
# address filter, transport/session services, the transmit path with
# retries (network management: test_plc_nm.py). Dual runtime, bare asserts.
from osgp_meter import lontalk as L
from osgp_meter import lontalk_transport as TR
from osgp_meter import plc_node as P
from plc_util import node, frame, h, NID, DC_NID, T0, app_node, one


# --- address filter -------------------------------------------------------------------

def test_address_filter_table():
    n, got = app_node()
    U = dict(pdu_fmt=L.PDU_APDU)
    cases = (
        # (frame fields, delivered?, drop reason)
        (dict(U), True, None),                                               # 2a to 1/5
        (dict(U, dst_node=6), False, "address"),
        (dict(U, dst_subnet=2), False, "address"),
        (dict(U, domain=b"\x43"), False, "domain"),                          # other domain
        (dict(U, domain=b""), False, "domain"),
        (dict(U, src_node=5), False, "own"),                                 # my own frame
        (dict(U, addr_fmt=L.AF_BROADCAST, dst_subnet=0), True, None),        # domain-wide
        (dict(U, addr_fmt=L.AF_BROADCAST, dst_subnet=1), True, None),        # my subnet
        (dict(U, addr_fmt=L.AF_BROADCAST, dst_subnet=2), False, "address"),
        (dict(U, addr_fmt=L.AF_BROADCAST, dst_subnet=0, domain=b"\x43"), False, "domain"),
        (dict(U, addr_fmt=L.AF_GROUP, group=7), True, None),                 # my group
        (dict(U, addr_fmt=L.AF_GROUP, group=8), False, "address"),
        (dict(U, addr_fmt=L.AF_NEURON_ID, dst_subnet=0, neuron_id=NID), True, None),
        (dict(U, addr_fmt=L.AF_NEURON_ID, dst_subnet=0, neuron_id=NID, domain=b"\x99\x98\x97"), True, None),
        (dict(U, addr_fmt=L.AF_NEURON_ID, dst_subnet=0, neuron_id=DC_NID), False, "address"),
        (dict(U, addr_fmt=L.AF_BROADCAST, dst_subnet=0, domain=P.DISCOVERY_DOMAIN), False, "discovery"),
    )
    for i, (kw, ok, why) in enumerate(cases):
        before = len(got)
        drops = dict(n.drops)
        assert n.receive(frame(**kw), T0 + i) is None
        assert (len(got) == before + 1) == ok, (i, kw)
        if why is not None:
            assert n.drops.get(why, 0) == drops.get(why, 0) + 1, (i, why, n.drops)


def test_unconfigured_node_takes_broadcasts_in_any_domain_and_its_neuron_id_only():
    n, got = app_node(configured=False)
    U = dict(pdu_fmt=L.PDU_APDU)
    assert n.state == P.UNCONFIGURED and n.state_code == 2
    n.receive(frame(**U), T0)                                               # 2a: no
    n.receive(frame(addr_fmt=L.AF_GROUP, group=7, **U), T0)                 # group: no
    assert got == [] and n.drops["domain"] == 2
    n.receive(frame(addr_fmt=L.AF_BROADCAST, dst_subnet=9, domain=b"\x77", **U), T0)
    n.receive(frame(addr_fmt=L.AF_NEURON_ID, dst_subnet=0, neuron_id=NID, domain=b"", **U), T0)
    assert len(got) == 2


def test_bad_frames_are_counted_never_raised():
    n, got = app_node()
    good = frame(pdu_fmt=L.PDU_APDU)
    bad_crc = good[:-1] + bytes((good[-1] ^ 1,))
    for junk in (b"", b"\x00", bad_crc, b"\xff" * 300, good[:5], None, 42, "text"):
        assert n.receive(junk, T0) is None
    assert got == []
    assert n.drops["crc"] == 1 and n.stats[0] == 1         # transmission errors
    assert n.drops["too_long"] == 1 and n.stats[4] == 1    # missed
    assert n.drops["type"] == 3 and n.drops["short"] == 3


# --- transport and session ------------------------------------------------------------

def test_ackd_is_delivered_once_and_acknowledged_exactly():
    n, got = app_node()
    req = frame(pdu_fmt=L.PDU_TPDU, l4=L.T_ACKD, tid=1, apdu=b"\x01\x02")
    out = n.receive(req, T0)
    # ACK TPDU back to 1/126 from 1/5 in domain 0x42, same tid, delta backlog 0
    assert out == [h("00 09 01 85 01 FE 42 21 70 20")]
    assert got == [(TR.ACKD, b"\x01\x02", L.AF_SUBNET_NODE)]
    # a retry inside the receive timer: acknowledged again, not delivered
    assert n.receive(req, T0 + 3000) == out
    assert len(got) == 1 and n.duplicates == 1
    # the receive timer (8192 ms by default) has run out: a new message
    assert n.receive(req, T0 + 3000 + 8192) == out
    assert len(got) == 2
    # a new transaction ID from the same source: a new message
    n.receive(frame(pdu_fmt=L.PDU_TPDU, l4=L.T_ACKD, tid=2, apdu=b"\x01\x02"), T0 + 20000)
    assert len(got) == 3


def test_replies_keep_priority_and_path_of_the_message():
    n, got = app_node()
    f = one(n.receive(frame(pdu_fmt=L.PDU_TPDU, l4=L.T_ACKD, prio=True, alt=True, backlog=1), T0))
    assert f.prio and f.alt and f.backlog == 0 and f.l4 == L.T_ACK


def test_request_response_and_the_cached_response_for_a_duplicate():
    n, got = app_node()
    req = frame(tid=5, apdu=b"\x02\xAA")
    f = one(n.receive(req, T0))
    assert (f.pdu_fmt, f.l4, f.tid, f.apdu) == (L.PDU_SPDU, L.S_RESPONSE, 5, b"\x55\x02\xAA")
    assert (f.addr_fmt, f.src_subnet, f.src_node, f.dst_subnet, f.dst_node) == (L.AF_SUBNET_NODE, 1, 5, 1, 126)
    g = one(n.receive(req, T0 + 500))
    assert g == f and len(got) == 1
    # same tid, different APDU: a new request [DX ReceiveNewMsg compares the APDU]
    one(n.receive(frame(tid=5, apdu=b"\x02\xBB"), T0 + 600))
    assert len(got) == 2


def test_unackd_repeated_is_delivered_once_and_never_answered():
    n, got = app_node()
    rpt = frame(pdu_fmt=L.PDU_TPDU, l4=L.T_UNACKD_RPT, tid=4, apdu=b"\x03")
    for i in range(3):
        assert n.receive(rpt, T0 + 100 * i) is None
    assert got == [(TR.UNACKD_RPT, b"\x03", L.AF_SUBNET_NODE)]


def test_group_ackd_is_acknowledged_in_2b_with_the_member_number():
    n, got = app_node()
    g = frame(pdu_fmt=L.PDU_TPDU, l4=L.T_ACKD, addr_fmt=L.AF_GROUP, group=7, tid=3, apdu=b"\x04")
    out = n.receive(g, T0)
    assert out == [h("00 09 01 05 01 FE 07 03 42 23 20 E2")]
    f = L.decode(out[0])
    assert (f.addr_fmt, f.group, f.member, f.dst_node) == (L.AF_GROUP_ACK, 7, 3, 126)
    assert len(got) == 1


def test_group_reminders_follow_the_m_list():
    n, got = app_node()
    G = dict(addr_fmt=L.AF_GROUP, group=7, tid=3)
    n.receive(frame(pdu_fmt=L.PDU_TPDU, l4=L.T_ACKD, apdu=b"\x04", **G), T0)
    # REMINDER without my bit (member 3): the retry that follows answers; nothing now
    assert n.receive(frame(pdu_fmt=L.PDU_TPDU, l4=L.T_REMINDER, mlist=h("01 00 00"), apdu=None, **G), T0 + 10) is None
    # REM/MSG without my bit: re-acknowledged, not delivered again
    f = one(n.receive(frame(pdu_fmt=L.PDU_TPDU, l4=L.T_REM_MSG, mlist=h("01"), apdu=b"\x04", **G), T0 + 20))
    assert f.l4 == L.T_ACK and f.member == 3 and len(got) == 1
    # REM/MSG with my bit set: my ACK arrived; nothing
    assert n.receive(frame(pdu_fmt=L.PDU_TPDU, l4=L.T_REM_MSG, mlist=h("08"), apdu=b"\x04", **G), T0 + 30) is None
    # ... and a later plain retry is not acknowledged either (state DONE)
    assert n.receive(frame(pdu_fmt=L.PDU_TPDU, l4=L.T_ACKD, apdu=b"\x04", **G), T0 + 40) is None
    # a REMINDER with no receive record is dropped
    assert n.receive(frame(pdu_fmt=L.PDU_TPDU, l4=L.T_REMINDER, mlist=h("00"), apdu=None,
                           addr_fmt=L.AF_GROUP, group=7, tid=9, src_node=100), T0 + 50) is None
    assert n.drops["reminder"] == 1
    # a REM/MSG with no receive record is a new message: delivered and acknowledged
    f = one(n.receive(frame(pdu_fmt=L.PDU_TPDU, l4=L.T_REM_MSG, mlist=b"", apdu=b"\x05",
                            addr_fmt=L.AF_GROUP, group=7, tid=2, src_node=101), T0 + 60))
    assert f.l4 == L.T_ACK and got[-1][1] == b"\x05" and len(got) == 2


def test_group_request_gets_a_2b_response_and_rem_msg_re_responds():
    n, got = app_node()
    G = dict(addr_fmt=L.AF_GROUP, group=7, tid=6)
    f = one(n.receive(frame(apdu=b"\x06", **G), T0))
    assert (f.addr_fmt, f.l4, f.member, f.apdu) == (L.AF_GROUP_ACK, L.S_RESPONSE, 3, b"\x55\x06")
    g = one(n.receive(frame(l4=L.S_REM_MSG, mlist=h("F7"), apdu=b"\x06", **G), T0 + 100))
    assert g == f and len(got) == 1


def test_deferred_response():
    n, got = app_node()
    held = []

    def later(node_, inc, now):
        held.append(inc)
        return TR.DEFER
    n.on_message = later
    req = frame(tid=7, apdu=b"\x08")
    assert n.receive(req, T0) is None
    assert n.receive(req, T0 + 100) is None          # still waiting: no answer
    f = one(n.respond(held[0], b"\x00\x99", T0 + 200))
    assert f.apdu == b"\x00\x99" and f.tid == 7
    assert one(n.receive(req, T0 + 300)) == f and len(held) == 1


def test_receive_records_are_bounded():
    n, got = app_node()
    n.rr_max = 2
    for i in range(3):
        n.receive(frame(pdu_fmt=L.PDU_TPDU, l4=L.T_ACKD, src_node=10 + i), T0)
    assert len(got) == 2 and n.stats[2] == 1 and n.drops["rx_full"] == 1


# --- transmit path ---------------------------------------------------------------------

def test_outgoing_ackd_is_retried_on_the_timer_until_acknowledged():
    n, got = app_node()
    done = []
    out = n.send((L.AF_SUBNET_NODE, 1, 126), b"\x11", T0, retry=3, tx_timer=7,
                 on_done=lambda node_, tx, ok: done.append(ok))
    f = one(out)
    assert (f.l4, f.tid, f.backlog, f.alt, f.src_node, f.dst_node) == (L.T_ACKD, 0, 1, False, 5, 126)
    assert n.deadline == T0 + 192
    assert n.poll(T0 + 100) is None
    r = one(n.poll(T0 + 192))                       # first retry, primary carrier
    assert r.tid == 0 and not r.alt
    r = one(n.poll(T0 + 384))                       # the last two tries: alternate path
    assert r.alt
    ack = frame(pdu_fmt=L.PDU_TPDU, l4=L.T_ACK, tid=0, apdu=None, src_subnet=1, src_node=126,
                dst_subnet=1, dst_node=5)
    assert n.receive(ack, T0 + 400) is None
    assert done == [True] and n.deadline is None and n.stats[1] == 0
    # the next message to the same node takes the next transaction ID
    assert one(n.send((L.AF_SUBNET_NODE, 1, 126), b"\x12", T0 + 500)).tid == 1


def test_outgoing_ackd_fails_after_the_last_retry():
    n, got = app_node()
    done = []
    n.send((L.AF_SUBNET_NODE, 1, 126), b"\x11", T0, retry=2, tx_timer=0,
           on_done=lambda node_, tx, ok: done.append(ok))
    assert one(n.poll(T0 + 16)) and one(n.poll(T0 + 32))
    assert n.poll(T0 + 48) is None
    assert done == [False] and n.stats[1] == 1 and n.deadline is None
    # a late ACK is ignored
    n.receive(frame(pdu_fmt=L.PDU_TPDU, l4=L.T_ACK, tid=0, apdu=None, src_node=126, dst_node=5), T0 + 60)
    assert n.late == 1


def test_outgoing_request_collects_the_response_and_queues_the_next():
    n, got = app_node()
    done = []
    cb = lambda node_, tx, ok: done.append((ok, [a for _, a in tx.responses]))
    f = one(n.send((L.AF_SUBNET_NODE, 1, 126), b"\x21", T0, service=TR.REQUEST, on_done=cb))
    assert f.pdu_fmt == L.PDU_SPDU and f.l4 == L.S_REQUEST
    assert n.send((L.AF_SUBNET_NODE, 1, 126), b"\x22", T0, service=TR.REQUEST, on_done=cb) is None
    rsp = frame(l4=L.S_RESPONSE, tid=f.tid, apdu=b"\x61", src_node=126, dst_node=5)
    g = one(n.receive(rsp, T0 + 50))                 # the queued request starts now
    assert g.apdu == b"\x22" and g.tid == f.tid + 1
    assert done == [(True, [b"\x61"])]


def test_group_transaction_retries_with_rem_msg_listing_who_acknowledged():
    n, got = app_node()
    done = []
    f = one(n.send((L.AF_GROUP, 7, 4), b"\x31", T0, on_done=lambda node_, tx, ok: done.append(ok)))
    assert f.addr_fmt == L.AF_GROUP and f.backlog == 3       # 4 members, I am one
    ack = dict(pdu_fmt=L.PDU_TPDU, l4=L.T_ACK, tid=f.tid, apdu=None, addr_fmt=L.AF_GROUP_ACK,
               group=7, src_subnet=1, dst_subnet=1, dst_node=5)
    n.receive(frame(src_node=20, member=0, **ack), T0 + 10)
    n.receive(frame(src_node=21, member=9, **ack), T0 + 20)
    r = one(n.poll(T0 + 20 + 768))
    assert r.l4 == L.T_REM_MSG and r.mlist == h("01 02") and r.backlog == 1
    n.receive(frame(src_node=22, member=12, **ack), T0 + 900)
    assert done == [True]


def test_unackd_repeated_goes_out_retry_plus_one_times():
    n, got = app_node()
    done = []
    f = one(n.send((L.AF_BROADCAST, 0, 0), b"\x41", T0, service=TR.UNACKD_RPT, retry=2, tx_timer=4,
                   on_done=lambda node_, tx, ok: done.append(ok)))
    assert f.l4 == L.T_UNACKD_RPT and f.backlog == 2
    assert one(n.poll(T0 + 64)).backlog == 0
    assert one(n.poll(T0 + 128)).tid == f.tid
    assert n.poll(T0 + 192) is None and done == [True] and n.stats[1] == 0


def test_retry_timer_counts_from_the_end_of_the_transmission():
    n, got = app_node()
    out = n.send((L.AF_SUBNET_NODE, 1, 126), b"\x11", T0, tx_timer=7)
    assert n.deadline == T0 + 192
    n.on_sent(out[0], T0 + 150)
    assert n.deadline == T0 + 150 + 192


def test_service_pin_message():
    n, got = app_node()
    assert n.service_pin(T0) == [h("00 30 00 80 00 7F 00 02 98 00 31 C3 4F 53 47 50 2D 45 4D 55 2F B2")]


def test_a_software_reset_keeps_the_tid_table():
    n, got = app_node()
    ack = dict(pdu_fmt=L.PDU_TPDU, l4=L.T_ACK, apdu=None, src_node=126, dst_node=5)
    f = one(n.send((L.AF_SUBNET_NODE, 1, 126), b"\x11", T0))
    assert f.tid == 0
    n.receive(frame(tid=0, **ack), T0 + 10)
    n.reset(T0 + 20)                                  # software reset: counters back to 0
    assert one(n.send((L.AF_SUBNET_NODE, 1, 126), b"\x12", T0 + 30)).tid == 1   # not 0 again
    n.reset(T0 + 40, P.RESET_POWER_UP)                # power-up: the table is gone too
    assert one(n.send((L.AF_SUBNET_NODE, 1, 126), b"\x13", T0 + 50)).tid == 0
