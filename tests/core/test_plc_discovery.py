# ADD / ATM / FCM on the meter's node (meter/plc_discovery.py): seeded
# back-off inside the response window, the filters, discovery and ATM
# through (uncommissioned) proxies, the report fields, the FCM and its daily
# count, multi-message commissioning, an OSGP read and an FCM through an LTEP
# chain. Dual runtime, bare asserts, on plc_bus.
from osgp_meter import access as A
from osgp_meter import lontalk as L
from osgp_meter import lontalk_nm as N
from osgp_meter import plc_discovery as D
from osgp_meter import plc_repeat as R
from osgp_meter import prng
from osgp_meter.plc_node import PlcNode, REQUEST, UNACKD, DISCOVERY_DOMAIN
from plc_bus import Bus, FRAME_MS
from plc_util import DOM, T0, KEY, BKEY, h, store, osgp, ET04

DCN = bytes.fromhex("00 01 02 03 04 05")
DISCS = {}            # Neuron ID -> Discovery


def nid(i):
    return bytes((0x00, 0x02, 0x98, 0x20, 0x00, i))


class Dc:
    """The DC end for the tests: a configured node at 1/126 that keeps the
    0x4A messages it gets as (time, Message, Report, snr)."""

    def __init__(self, bus):
        DISCS.clear()   # a new test: the last one's nodes (and their buses) may go
        self.node = n = bus.add("dc", PlcNode(DCN))
        n.commission(DOM, 1, 126)
        self.bus = bus
        self.got = []
        n.register(D.IN, self._in)

    def _in(self, node, inc, now):
        m = D.decode(inc.frame.apdu)
        self.got.append((now, m, D.Report.decode(m.body), inc.snr))
        return None

    def out(self, apdu, to=None):
        dest = (L.AF_BROADCAST, 0, 0) if to is None else (L.AF_NEURON_ID, 0, to)
        self.bus.send("dc", self.node.send(dest, apdu, self.bus.now, service=UNACKD,
                                           domain=DISCOVERY_DOMAIN))

    def request(self, to, apdu, by_nid=True, timer_ms=2000):
        got = []
        dest = (L.AF_NEURON_ID, 0, to) if by_nid else (L.AF_SUBNET_NODE, to[0], to[1])
        self.bus.send("dc", self.node.send(dest, apdu, self.bus.now, service=REQUEST, retry=1,
                                           timer_ms=timer_ms,
                                           on_done=lambda n, tx, ok: got.append(tx.responses)))
        self.bus.run(for_ms=3 * timer_ms)
        assert len(got) == 1, got
        return got[0][0][1] if got[0] else None


def meter(i, configured=False, app=False, seq=12):
    """A discovery-enabled node with Neuron ID nid(i); with app: the OSGP
    profile on a minicat meter (PLC key 01..0C, ET04.0 = seq)."""
    if app:
        from osgp_meter.device import Meter, PLC_LIMITS
        from osgp_meter.keys import KeyRing
        import minicat
        st = store()
        st.set_field(ET04, 0, 4, seq)
        m = Meter(st, minicat.PROCEDURES)
        n = PlcNode(nid(i), m.executor(PLC_LIMITS), KeyRing({A.ROLE_PLC: KEY, A.ROLE_BCAST: BKEY}), st)
    else:
        n = PlcNode(nid(i))
    if configured:
        n.commission(DOM, 1, i)
    DISCS[nid(i)] = D.enable(n)
    R.enable(n)
    return n


def discover(round, window=16, slot=15, flags=0, value=bytes(6), mask=bytes(6), route=(), origin=DCN):
    body = D.Query(flags, window, slot, 0, value, mask).encode()
    return D.Message(D.OUT, D.T_DISCOVER, round, origin, route, 1 if route else 0, body).encode()


def test_discovery_answers_are_seeded_and_inside_the_window():
    bus = Bus(T0)
    dc = Dc(bus)
    for i in range(1, 6):
        bus.add("m%d" % i, meter(i))
        bus.link("dc", "m%d" % i, snr=10 + i, level=60 + i)
    apdu = discover(7)
    assert apdu == h("45 01 07 00 01 02 03 04 05 00 00  00 10 0F 00 000000000000 000000000000")
    dc.out(apdu)
    t0 = bus.now + FRAME_MS                     # when the meters heard it
    bus.run(for_ms=16 * 150 + 1000)
    assert len(dc.got) == 5
    for t, m, r, snr in dc.got:
        s = prng.mix(D.seed_of(m.origin), 7) % 16
        assert s == DISCS[m.origin].slot(7, 16) and 0 <= s < 16
        assert t == t0 + s * 150 + FRAME_MS        # sent at the slot, heard one frame later
        i = m.origin[5]
        assert (m.type, m.round, m.route) == (D.T_DISCOVER_RESPONSE, 7, [])
        assert (r.level, r.snr, r.hops, r.state) == (60 + i, 10 + i, 0, 2)
        assert (r.program_id, r.domain, r.subnet, r.node) == (b"OSGP-EMU", b"", 0, 0)
        assert (r.relay_level, r.relay_snr, r.neighbours) == (None, None, [])
        assert snr == 10 + i                      # the DC's own measure of the answer
    slots7 = sorted(DISCS[nid(i)].slot(7, 16) for i in range(1, 6))
    slots8 = sorted(DISCS[nid(i)].slot(8, 16) for i in range(1, 6))
    assert slots7 != slots8                        # another round, other slots
    # the same round heard again gets no second answer; window 0 answers at once
    n = len(dc.got)
    dc.out(apdu)
    bus.run(for_ms=3000)
    assert len(dc.got) == n
    dc.out(discover(9, window=0))
    t1 = bus.now + FRAME_MS
    bus.run(for_ms=2000)
    assert sorted(t for t, m, r, s in dc.got[n:]) == [t1 + FRAME_MS * k for k in range(1, 6)]


def test_only_uncommissioned_and_the_neuron_id_filter():
    bus = Bus(T0)
    dc = Dc(bus)
    bus.add("a", meter(1, configured=True))
    bus.add("b", meter(2))
    bus.add("c", meter(3))
    for x in "abc":
        bus.link("dc", x)
    dc.out(discover(1, flags=D.F_UNCOMMISSIONED))
    bus.run(for_ms=4000)
    assert sorted(m.origin[5] for t, m, r, s in dc.got) == [2, 3]
    dc.got = []
    dc.out(discover(2, value=nid(3), mask=b"\xff" * 6))
    bus.run(for_ms=4000)
    assert [m.origin for t, m, r, s in dc.got] == [nid(3)]
    dc.got = []
    dc.out(discover(3, window=4))                 # everyone; the commissioned one says where it is
    bus.run(for_ms=4000)
    r = [r for t, m, r, s in dc.got if m.origin == nid(1)][0]
    assert (r.domain, r.subnet, r.node, r.state) == (DOM, 1, 1, 4)


def test_discovery_through_uncommissioned_proxies():
    # dc - p1 - p2 - {y1, y2}: the DC hears only p1; nobody is commissioned
    bus = Bus(T0)
    dc = Dc(bus)
    bus.add("p1", meter(11))
    bus.add("p2", meter(12))
    bus.add("y1", meter(21))
    bus.add("y2", meter(22))
    bus.link("dc", "p1", snr=20, level=70)
    bus.link("p1", "p2", snr=25, level=75)
    bus.link("p2", "y1", snr=31, level=81)
    bus.link("p2", "y2", snr=32, level=82)
    route = [DCN, nid(11), nid(12)]
    apdu = discover(5, window=8, flags=D.F_UNCOMMISSIONED, route=route)
    assert apdu[9:11] == h("03 01") and apdu[11:29] == DCN + nid(11) + nid(12)
    dc.out(apdu, to=nid(11))
    bus.run(for_ms=8 * 150 + 5000)
    got = {m.origin[5]: (m, r, s) for t, m, r, s in dc.got}
    assert sorted(got) == [21, 22]
    for k in (21, 22):
        m, r, s = got[k]
        assert m.route == route and m.pos == 0
        assert r.hops == 2                        # proxies p1 and p2
        assert (r.level, r.snr) == (60 + k, 10 + k)        # how y heard p2's broadcast
        assert (r.relay_level, r.relay_snr) == (60 + k, 10 + k)   # how p2 heard y
        assert s == 20                            # p1 -> dc
    # what went over the air: p1 forwarded the request with pos 2 (only that
    # byte changed), p2 broadcast its own DISCOVER (origin p2, hops 2, no route)
    fw = [bytes(L.decode(f).apdu) for _, x, f in bus.log if x == "p1"][0]
    assert fw == apdu[:10] + b"\x02" + apdu[11:]
    bc = L.decode([f for _, x, f in bus.log if x == "p2"][0])
    assert bc.addr_fmt == L.AF_BROADCAST and bc.domain == DISCOVERY_DOMAIN
    m = D.decode(bc.apdu)
    assert (m.origin, m.route, D.Query.decode(m.body).hops) == (nid(12), [], 2)
    assert DISCS[nid(12)].stats["relayed"] == 2 and DISCS[nid(11)].stats["relayed"] == 2
    # the proxies' neighbour tables: who they heard, with the SNR
    nb = DISCS[nid(12)].neighbours()
    assert sorted(nb) == [(nid(11), 25), (nid(21), 31), (nid(22), 32)]
    assert DISCS[nid(12)].stats["dropped"] == 1           # p1's own answer to p2: not relayed


def test_atm_reports_direct_and_through_a_route():
    bus = Bus(T0)
    dc = Dc(bus)
    bus.add("p1", meter(11, configured=True))
    bus.add("p2", meter(12))
    bus.add("x", meter(30, configured=True))
    bus.link("dc", "p1", snr=20, level=70)
    bus.link("p1", "p2", snr=25, level=75)
    bus.link("p2", "x", snr=18, level=68)
    q = D.Message(D.OUT, D.T_ATM_QUERY, 40, DCN, (), 0, bytes((D.F_NEIGHBOURS,))).encode()
    dc.out(q, to=nid(11))
    bus.run(for_ms=1000)
    t, m, r, s = dc.got[-1]
    assert (m.type, m.round, m.origin, r.hops, r.snr, r.state, r.subnet, r.node) == \
        (D.T_ATM_REPORT, 40, nid(11), 0, 20, 4, 1, 11)
    assert r.neighbours == [(DCN, 20)]
    route = [DCN, nid(11), nid(12), nid(30)]
    q = D.Message(D.OUT, D.T_ATM_QUERY, 41, DCN, route, 1, bytes((D.F_NEIGHBOURS,))).encode()
    dc.out(q, to=nid(11))
    bus.run(for_ms=2000)
    t, m, r, s = dc.got[-1]
    assert (m.origin, m.route, m.pos) == (nid(30), route, 0)
    assert (r.hops, r.level, r.snr, r.relay_level, r.relay_snr) == (2, 68, 18, 68, 18)
    assert r.neighbours == [(nid(12), 18)]
    # routes: 16 proxies at most; a stranger in the route is ignored
    long = [DCN] + [nid(100 + i) for i in range(17)]
    assert D.decode(D.Message(D.OUT, 2, 1, DCN, long, 1, b"\x00").encode()).route == long
    try:
        D.Message(D.OUT, 2, 1, DCN, long + [nid(1)], 1, b"\x00").encode()
        assert False
    except ValueError:
        pass
    bad = D.Message(D.OUT, D.T_ATM_QUERY, 42, DCN, [DCN, nid(99), nid(30)], 1, b"\x00").encode()
    n = len(dc.got)
    dc.out(bad, to=nid(11))
    bus.run(for_ms=1000)
    assert len(dc.got) == n and bus.nodes["p1"].drops.get("add_route") == 1


def fcm(seq, sub=1, nd=7, key=KEY, keys=True, index=0):
    req = D.fcm_request(DOM, sub, nd, b"AUTHK!", h("A1" * 12) if keys else None,
                        h("B2" * 12) if keys else None, index)
    return osgp(seq, req, key)


def test_fcm_sets_everything_in_one_message_and_counts_per_day():
    bus = Bus(T0)
    dc = Dc(bus)
    m = bus.add("m", meter(7, app=True))
    bus.link("dc", "m")
    apdu, st, _ = fcm(13)
    assert apdu[:17] == h("46 01 01 42 00 00 00 00 00 01 07") + b"AUTHK!"
    assert len(apdu) == 41 + 4 + 8
    ans = dc.request(nid(7), apdu)
    body, dig = ans[:-8], ans[-8:]
    st.update(body)
    assert body == b"\x00" and st.finish() == dig          # answered under the old key
    assert m.configured and m.address() == (DOM, 1, 7) and m.domains[0].key == b"AUTHK!"
    assert m.osgp.keys.get(A.ROLE_PLC) == h("A1" * 12) and m.osgp.keys.get(A.ROLE_BCAST) == h("B2" * 12)
    s = m.store
    assert s.read(ET04, 10, 2) == h("01 07") and s.field(ET04, 72, 1) == 4
    assert s.field(ET04, D.ET04_FCM_COUNT, 1) == 1
    # the new key reads, by subnet/node now; the old one is refused
    req, st2, _ = osgp(14, h("30 00 03"), h("A1" * 12))
    ans = dc.request((1, 7), req, by_nid=False)
    st2.update(ans[:-8])
    assert ans[0] == 0 and st2.finish() == ans[-8:]
    req, _, _ = osgp(15, h("30 00 03"), KEY)
    assert dc.request((1, 7), req, by_nid=False) == b"\x0b" + bytes(8)
    # bad values: 04, nothing changes (the count moves: every FCM counts)
    bad = D.fcm_request(DOM, 1, 9, b"AUTHK!")
    bad = bad[:10] + b"\x00" + bad[11:]                      # node 0
    req, st3, _ = osgp(16, bad, h("A1" * 12))
    assert dc.request(nid(7), req)[0] == 0x04 and m.address() == (DOM, 1, 7)
    assert s.field(ET04, D.ET04_FCM_COUNT, 1) == 2
    # at most 100 a day: the 101st is refused (06, zero digest) and changes nothing
    s.set_field(ET04, D.ET04_FCM_COUNT, 1, 99)
    req, _, _ = osgp(17, D.fcm_request(DOM, 1, 8, b"AUTHK!"), h("A1" * 12))
    assert dc.request(nid(7), req)[0] == 0x00 and m.address() == (DOM, 1, 8)
    req, _, _ = osgp(18, D.fcm_request(DOM, 1, 9, b"AUTHK!"), h("A1" * 12))
    assert dc.request(nid(7), req) == b"\x06" + bytes(8) and m.address() == (DOM, 1, 8)
    assert s.field(ET04, D.ET04_FCM_COUNT, 1) == 100 and DISCS[nid(7)].stats["fcm_refused"] == 1
    # 00:00 clears the count (T0 is 2023-11-14 22:13:20 UTC)
    bus.run(until=(T0 // D.DAY_MS + 1) * D.DAY_MS + 1)
    assert s.field(ET04, D.ET04_FCM_COUNT, 1) == 0
    req, _, _ = osgp(19, D.fcm_request(DOM, 1, 9, b"AUTHK!"), h("A1" * 12))
    assert dc.request(nid(7), req)[0] == 0x00 and m.address() == (DOM, 1, 9)
    assert s.field(ET04, D.ET04_FCM_COUNT, 1) == 1


def test_multi_message_commissioning():
    bus = Bus(T0)
    dc = Dc(bus)
    m = bus.add("m", meter(8, app=True))
    bus.link("dc", "m")
    d = N.Domain(DOM + bytes(5), 1, 8, 1, b"AUTHK!")
    assert dc.request(nid(8), N.update_domain(0, d)) == b"\x23"
    assert not m.configured
    assert dc.request(nid(8), N.set_node_mode(N.NODE_CHANGE_STATE, N.STATE_CONFIG_ONLINE)) == b"\x2c"
    assert dc.request(nid(8), N.set_node_mode(N.NODE_ONLINE)) == b"\x2c"
    assert m.configured and m.address() == (DOM, 1, 8)
    req, st, _ = osgp(13, h("30 00 01"))                  # the factory key stays
    ans = dc.request((1, 8), req, by_nid=False)
    st.update(ans[:-8])
    assert ans[:3] == h("00 00 18") and st.finish() == ans[-8:]
    assert m.store.field(ET04, D.ET04_FCM_COUNT, 1) == 0


def test_osgp_read_and_fcm_through_an_ltep_chain():
    # dc - p1 - p2 - {x (commissioned 1/40), u (not)}
    bus = Bus(T0)
    dc = Dc(bus)
    bus.add("p1", meter(11, configured=True))
    bus.add("p2", meter(12, configured=True))
    x = bus.add("x", meter(40, configured=True, app=True))
    u = bus.add("u", meter(41, app=True))
    bus.line(["dc", "p1", "p2", "x"])
    bus.link("p2", "u")
    req, st, _ = osgp(13, h("30 00 01"))
    apdu, p = R.chain([(1, 12)], (1, 40, 0), req)
    ans = dc.request((1, 11), apdu, by_nid=False, timer_ms=R.proxy_wait_ms(p) + 1500)
    st.update(ans[:-8])
    assert ans[:3] == h("00 00 18") and st.finish() == ans[-8:]
    # FCM to the uncommissioned one: the agent addresses it by Neuron ID
    f, st, _ = fcm(13, nd=41)
    apdu, p = R.chain([(1, 12)], (nid(41),), f, addr_type=R.X.PX_NEURON_ID_COMPACT)
    ans = dc.request((1, 11), apdu, by_nid=False, timer_ms=R.proxy_wait_ms(p) + 1500)
    st.update(ans[:-8])
    assert ans[0] == 0 and st.finish() == ans[-8:]
    assert u.address() == (DOM, 1, 41)
