# LTEP repeating on the meter's node (meter/plc_repeat.py): the repeater
# strips its entry and forwards byte for byte, the agent reaches the target
# with the SICB's service and addressing and relays its answer, failures
# come back as 0x4C + the proxy count, 16 proxies at most. Dual runtime,
# bare asserts, on the small in-memory medium of plc_bus. (An OSGP read
# through a chain is in test_plc_discovery, which loads the meter anyway.)
from osgp_meter import lontalk as L
from osgp_meter import lontalk_nm as N
from osgp_meter import lontalk_proxy as X
from osgp_meter import plc_repeat as R
from osgp_meter.plc_node import PlcNode, REQUEST, ACKD, UNACKD
from plc_bus import Bus
from plc_util import DOM, T0, h

DC = (1, 126)
REPS = {}             # Neuron ID -> Repeater (MicroPython bound methods have no __self__)


def nid(i):
    return bytes((0x00, 0x02, 0x98, 0x10, 0x00, i))


def plain(name_i, sub, nd, repeat=True, configured=True):
    n = PlcNode(nid(name_i))
    if configured:
        n.commission(DOM, sub, nd)
    if repeat:
        REPS[nid(name_i)] = R.enable(n)
    return n


def line(k, target=None):
    """DC - p1 - ... - pk - t on a bus (each hears only its neighbours);
    proxies at 1/10.., the target at 1/20 (an app-less node answering
    b'\\x55' + the request unless given)."""
    REPS.clear()        # a new line: the last one's nodes (and their bus) may go
    bus = Bus(T0)
    dc = bus.add("dc", plain(1, 1, 126, repeat=False))
    names = ["dc"]
    for i in range(k):
        bus.add("p%d" % (i + 1), plain(10 + i, 1, 10 + i))
        names.append("p%d" % (i + 1))
    if target is None:
        target = plain(99, 1, 20, repeat=False)
        target.on_message = lambda n, inc, now: b"\x55" + bytes(inc.frame.apdu)
    bus.add("t", target)
    names.append("t")
    bus.line(names)
    return bus, dc, target


def ask(bus, dc, apdu, p, service=REQUEST):
    """The DC sends the 0x4D APDU to p1 (1/10) and runs the bus; returns
    (ok, answer APDU or None)."""
    got = []

    def done(n, tx, ok):
        got.append((ok, tx.responses[0][1] if tx is not None and tx.responses else None))
    bus.send("dc", dc.send((L.AF_SUBNET_NODE, 1, 10), apdu, bus.now, service=service, retry=0,
                           timer_ms=R.proxy_wait_ms(p) + 1500, on_done=done))
    bus.run(for_ms=R.proxy_wait_ms(p) + 3000)
    assert len(got) == 1, got
    return got[0]


def apdus(bus, src):
    return [bytes(L.decode(f).apdu) for (_, s, f) in bus.log if s == src]


def test_repeaters_strip_their_entry_and_forward_byte_exact():
    bus, dc, t = line(3)
    apdu, p = R.chain([(1, 11), (1, 12)], (1, 20, 0), b"\x01")
    assert apdu == h("4D 20 01 16 01 18 E2 31 A3 01 28 01")
    ok, ans = ask(bus, dc, apdu, p)
    assert ok and ans == b"\x55\x01"
    assert apdus(bus, "p1")[0] == h("4D 10 01 18 E2 31 A3 01 28 01")      # p2's entry gone
    assert apdus(bus, "p2")[0] == h("4D 00 31 A3 01 28 01")               # tx control gone too
    assert apdus(bus, "p3")[0] == h("01")                                 # the agent: the target APDU
    # addressing of each hop, and the answer relayed verbatim back along the chain
    hops = [(s, (L.decode(f).dst_subnet, L.decode(f).dst_node)) for (_, s, f) in bus.log
            if L.decode(f).pdu_fmt == L.PDU_SPDU and L.decode(f).l4 == L.S_REQUEST]
    assert hops[:4] == [("dc", (1, 10)), ("p1", (1, 11)), ("p2", (1, 12)), ("p3", (1, 20))]
    for s in ("t", "p3", "p2", "p1"):
        assert b"\x55\x01" in apdus(bus, s)
    st = [REPS[bus.nodes[x].neuron_id].stats for x in ("p1", "p3")]
    assert st[0][0] == 1 and st[1][1] == 1


def test_uniform_repeater_lists():
    bus, dc, t = line(3)
    p = X.Proxy(repeaters=[(None, 11, 0), (None, 12, 0)], uniform_dest=True, timer=14, retry=2,
                agent_timer=10, agent_retry=3, target=(20, 0), addr_type=X.PX_SUBNET_NODE_DEST,
                apdu=b"\x01")
    a = X.encode(p)
    assert a == h("4D 21 16 18 E2 37 A3 28 01")
    ok, ans = ask(bus, dc, a, p)
    assert ok and ans == b"\x55\x01"
    assert apdus(bus, "p1")[0] == h("4D 11 18 E2 37 A3 28 01")
    assert apdus(bus, "p2")[0] == h("4D 01 37 A3 28 01")


def test_failure_comes_back_with_the_proxy_count():
    bus, dc, t = line(3)
    bus.cut("p2", "p3")                       # p2 (count 1 as received) cannot reach p3
    apdu, p = R.chain([(1, 11), (1, 12)], (1, 20, 0), b"\x01")
    ok, ans = ask(bus, dc, apdu, p)
    assert ok and ans == X.failure(1) == b"\x4c\x01"
    assert X.parse_result(ans) == (False, 1)
    bus, dc, t = line(3)
    bus.cut("p3", "t")                        # the agent (count 0) cannot reach the target
    ok, ans = ask(bus, dc, apdu, p)
    assert ok and ans == b"\x4c\x00"
    bus, dc, t = line(3)
    bus.cut("p1", "p2")                       # the first proxy (count 2)
    ok, ans = ask(bus, dc, apdu, p)
    assert ok and ans == b"\x4c\x02"


def test_upstream_waits_outlast_the_hops_after_them():
    _, p = R.chain([(1, 11), (1, 12)], (1, 20, 0), b"\x01")
    assert p.timer == 14 and p.retry == 2 and not p.long_timer
    assert R.proxy_wait_ms(p) == 3 * 2048 + 512          # p1: one hop after its next
    assert R.agent_wait_ms(p) == 4 * 512
    _, p = R.chain([(1, 11 + i) for i in range(15)], (1, 40, 0), b"\x01")
    assert p.long_timer and X.hop_timeout_ms(p) >= 600 * 16
    assert R.adjust_ms(7, False, 3) == 256 and R.adjust_ms(8, False, 3) == 768
    assert R.adjust_ms(10, False, 3) == 1536 and R.adjust_ms(0, True, 2) == 1024


def test_sixteen_proxies_at_most():
    try:
        R.chain([(1, 11 + i) for i in range(16)], (1, 40, 0), b"\x01")
        assert False
    except ValueError:
        pass
    try:
        X.encode(X.Proxy(repeaters=[(1, 1, 0)] * 16, timer=1, retry=1, target=(1, 2, 0),
                         apdu=b"\x01"))
        assert False
    except ValueError:
        pass
    # 16 proxies in a line: the first + 15 list entries
    bus, dc, t = line(16)
    t.commission(DOM, 1, 60)
    apdu, p = R.chain([(1, 11 + i) for i in range(15)], (1, 60, 0), b"\x01")
    assert apdu[1] >> 4 == 15 and p.long_timer
    ok, ans = ask(bus, dc, apdu, p)
    assert ok and ans == b"\x55\x01"
    assert apdus(bus, "p15")[0][:3] == h("4D 02 31")         # count 0, long timer; SICB next
    assert apdus(bus, "p16")[0] == b"\x01"


def test_agent_services_and_target_addressing():
    # ACKD to the target: success 0x4D once the target acknowledged
    bus, dc, t = line(1)
    apdu, p = R.chain([], (1, 20, 0), b"\x01\x02", service=ACKD)
    ok, ans = ask(bus, dc, apdu, p)
    assert ok and ans == b"\x4d"
    f = L.decode(bus.frames("t")[0][2])
    assert f.pdu_fmt == L.PDU_TPDU and f.l4 == L.T_ACK
    # unacknowledged: success at once
    bus, dc, t = line(1)
    apdu, p = R.chain([], (1, 20, 0), b"\x01", service=UNACKD)
    assert ask(bus, dc, apdu, p) == (True, b"\x4d")
    # compact Neuron ID target: an unconfigured node answers from 0/0 in the agent's domain
    tgt = plain(77, 0, 0, repeat=False, configured=False)
    tgt.on_message = None
    bus, dc, t = line(1, tgt)
    apdu, p = R.chain([], (nid(77),), N.nd_query_status(), addr_type=X.PX_NEURON_ID_COMPACT)
    ok, ans = ask(bus, dc, apdu, p)
    assert ok and ans[0] == 0x31 and len(ans) == 16
    f = [L.decode(fr) for (_, s, fr) in bus.log if s == "p1"][0]
    assert f.addr_fmt == L.AF_NEURON_ID and f.neuron_id == nid(77) and f.domain == DOM
    # NM through the chain: query domain of the target, subnet+Neuron ID form
    bus, dc, t = line(2)
    apdu, p = R.chain([(1, 11)], (1, nid(99)), N.query_domain(0), addr_type=X.PX_NEURON_ID)
    ok, ans = ask(bus, dc, apdu, p)
    assert ok and ans[0] == 0x2A and N.Domain.decode(ans[1:]).node == 20


def test_a_node_that_cannot_repeat_refuses_with_its_count():
    bus, dc, t = line(1)
    bus.nodes["p1"].state = 2                  # unconfigured: no subnet/node to answer to
    bus.nodes["p1"].domains[0] = bus.nodes["p1"].domains[0]
    apdu, p = R.chain([(1, 11), (1, 12)], (1, 20, 0), b"\x01")
    # (p1 unconfigured drops a subnet/node frame before LTEP; Neuron-ID addressed it refuses)
    got = []
    bus.send("dc", dc.send((L.AF_NEURON_ID, 0, nid(10)), apdu, bus.now, service=REQUEST, retry=0,
                           timer_ms=3000, on_done=lambda n, tx, ok: got.append(tx.responses)))
    bus.run(for_ms=4000)
    assert got[0][0][1] == b"\x4c\x02"
    # garbage after the code: 0x4C with the header's count
    n = plain(5, 1, 30)
    from plc_util import frame
    out = n.receive(frame(dst_node=30, apdu=h("4D 30 01")), T0)
    assert bytes(L.decode(out[0]).apdu) == b"\x4c\x03"
