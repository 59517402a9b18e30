# The commissioning state machines (meter/lifecycle_table.py, lifecycle.py):
# the table's shape, the portable interpreter's answers and refusals, the
# node state it drives in plc_node (consistent with ET04.72 and the ND
# status at every step), and a meter's life on the small bus: discovered,
# commissioned by the FCM, operational after the first authenticated read,
# moved by another DC's domain, decommissioned by leave domain, discovered
# again; the record in ET99 read over the air and kept across a restart.
# Dual runtime, bare asserts (tests/core/plc_bus.py as the medium).
from osgp_meter import access as A
from osgp_meter import lontalk as L
from osgp_meter import lontalk_nm as N
from osgp_meter import lifecycle as LC
from osgp_meter import lifecycle_table as T
from osgp_meter import life as LIFE
from osgp_meter import plc_discovery as D
from osgp_meter.plc_node import PlcNode, REQUEST, UNACKD, DISCOVERY_DOMAIN, CONFIG_TABLE
from plc_bus import Bus
from plc_util import TABLES as PLC_TABLES, DOM, T0, KEY, BKEY, h, osgp, ET04

ET99 = CONFIG_TABLE
TABLES = dict(PLC_TABLES)
TABLES[ET99] = (123, A.ALL_KEYS, 0, 0x01, None)        # the catalogue's ET99, lifecycle record too
DCN = bytes.fromhex("00 01 02 03 04 05")
NID = bytes.fromhex("00 02 98 30 00 07")
NEW_KEY = h("A1" * 12)
# every guard true and false (tools/lifecycle.py SAMPLE_CONTEXTS has the same)
CONTEXTS = ({}, {"domains_left": 0}, {"domains_left": 1}, {"domain": b"\x01", "dc": b"\x01"},
            {"domain": b"\x02", "dc": b"\x01"}, {"domain": b"\x02", "dc": None},
            {"in_domain": True}, {"in_domain": False})


# --- the table and the interpreter ----------------------------------------------------------

def test_the_table_is_well_formed():
    for name in T.MACHINES:
        states = LC.states(name)
        assert T.INITIAL[name] in states
        assert sorted(T.CODES[name]) == sorted(states)
        codes = [T.CODES[name][s] for s in states]
        assert len(set(codes)) == len(codes)
        rows = list(LC.rows(name))
        assert rows
        for srcs, trig, dest, cond in rows:
            assert srcs, (name, trig)
            for st in srcs:
                assert st in states, (name, st)
            assert trig in LC.triggers(name), trig
            assert dest is None or dest in states, dest
            assert cond is None or cond in LC.CONDITIONS, cond
        # every trigger has a row; "*" and "!" expand to the states
        assert sorted(set(r[1] for r in rows)) == sorted(LC.triggers(name))
    assert LC.parse("x: * -> =", ("a", "b")) == (("a", "b"), "x", None, None)
    assert LC.parse("x: !a -> c if g", ("a", "b", "c")) == (("b", "c"), "x", "c", "g")
    for bad in ("x * -> a", "x: a b", "x: a ->", "x: a -> b when g", "x: a -> b if", "x : a -> b"):
        try:
            LC.parse(bad, ("a", "b"))
            assert False, bad
        except ValueError:
            pass
    # the node codes are the ET04.72 / 14908-1 ones
    assert T.CODES["node"] == {"applicationless": 3, "unconfigured": 2, "configured": 4,
                               "soft_offline": 12, "hard_offline": 6, "bypass": 140}


def test_every_state_is_reachable_from_the_initial_one():
    for name in T.MACHINES:
        seen = [T.INITIAL[name]]
        i = 0
        while i < len(seen):
            for t in LC.triggers(name):
                for ctx in CONTEXTS:
                    ok, nxt = LC.step(name, seen[i], t, ctx)
                    if ok and nxt not in seen:
                        seen.append(nxt)
            i += 1
        assert sorted(seen) == sorted(LC.states(name)), (name, seen)


def test_steps_guards_and_refusals():
    assert LC.step("osgp", "uninstalled", "discover") == (True, "discovered")
    assert LC.step("osgp", "discovered", "discover") == (True, "discovered")       # accepted, stays
    assert LC.step("osgp", "uninstalled", "osgp_request") == (False, "uninstalled")
    assert LC.step("osgp", "commissioned", "osgp_request", {"in_domain": True}) == (True, "operational")
    assert LC.step("osgp", "commissioned", "osgp_request", {"in_domain": False}) == (False, "commissioned")
    assert LC.step("osgp", "operational", "commission", {"domain": b"\x02", "dc": b"\x01"}) == (True, "moved")
    same = {"domain": b"\x01", "dc": b"\x01"}
    assert LC.step("osgp", "operational", "commission", same) == (True, "operational")
    assert LC.step("node", "configured", "leave_domain", {"domains_left": 0}) == (True, "unconfigured")
    assert LC.step("node", "configured", "leave_domain", {"domains_left": 1}) == (True, "configured")
    assert LC.step("node", "applicationless", "commission") == (False, "applicationless")
    # never an exception: unknown triggers, states, machines are refused
    assert LC.step("node", "configured", "fly") == (False, "configured")
    assert LC.step("node", "nowhere", "reset") == (False, "nowhere")
    assert LC.step("nothing", "x", "y") == (False, "x")
    m = LC.Machine("osgp")
    assert m.state == "uninstalled"
    assert not m.fire("decommission") and m.refused == 1 and m.state == "uninstalled"
    assert m.last == ("uninstalled", "decommission", LIFE.REFUSED)
    assert m.fire("discover") and m.fire("commission", {"domain": b"\x42", "dc": None})
    assert m.fire("osgp_request", {"in_domain": True}) and m.state == "operational"
    assert m.fire("decommission") and m.state == "decommissioned" and m.refused == 1


def test_outcomes_cover_every_pair_with_every_context():
    for name in T.MACHINES:
        n = refused = moved = 0
        for s, t, i, ok, nxt in LC.outcomes(name, CONTEXTS):
            n += 1
            refused += not ok
            moved += ok and nxt != s
        assert n == len(LC.states(name)) * len(LC.triggers(name)) * len(CONTEXTS)
        assert refused and moved


# --- the node state in plc_node ----------------------------------------------------------

def store():
    from osgp_meter.store import TableStore
    st = TableStore(TABLES)
    st.set_field(ET04, 0, 4, 12)
    return st


def app_meter(st=None, nid=NID):
    """A PLC node with the OSGP application (minicat meter, PLC key 01..0C)
    and its Life; discovery (and the FCM) enabled."""
    from osgp_meter.device import Meter, PLC_LIMITS
    from osgp_meter.keys import KeyRing
    import minicat
    st = st if st is not None else store()
    m = Meter(st, minicat.PROCEDURES)
    n = PlcNode(nid, m.executor(PLC_LIMITS), KeyRing({A.ROLE_PLC: KEY, A.ROLE_BCAST: BKEY}), st)
    life = LIFE.attach(m, n)
    D.enable(n)
    return n, m, life


def consistent(n, life):
    code = n.store.field(ET04, 72, 1)
    assert code == n.state_code == n.status().node_state, (code, n.state_code)
    assert T.CODES["node"][life.node_state] == code
    assert n.store.field(ET99, 114, 1) == life.code or n.store.field(ET99, 113, 1) == 0
    return life.node_state


def nm_frame(apdu, tid, domain=DOM):
    return L.encode(L.Frame(pdu_fmt=L.PDU_SPDU, addr_fmt=L.AF_NEURON_ID, src_subnet=1,
                            src_node=126, dst_subnet=0, neuron_id=NID, domain=domain,
                            l4=L.S_REQUEST, tid=tid, apdu=apdu))


def nm(n, apdu, tid, domain=DOM):
    out = n.receive(nm_frame(apdu, tid, domain), T0 + tid * 100)
    return L.decode(out[0]).apdu if out else None


def test_network_management_moves_the_node_state_and_et04_72_follows():
    n, m, life = app_meter()
    changes = []
    life.on_change = lambda l, mach, trig, src, dst: changes.append((mach, trig, src, dst))
    assert consistent(n, life) == "unconfigured" and life.osgp == "uninstalled"
    d = N.Domain(DOM + bytes(5), 1, 7, 1, b"AUTHK!")
    steps = (
        (N.update_domain(0, d), b"\x23", "unconfigured"),
        (N.set_node_mode(N.NODE_CHANGE_STATE, 4), b"\x2c", "configured"),
        (N.set_node_mode(N.NODE_OFFLINE), b"\x2c", "soft_offline"),
        (N.set_node_mode(N.NODE_CHANGE_STATE, 4), b"\x2c", "soft_offline"),   # the mode stays [DX]
        (N.set_node_mode(N.NODE_CHANGE_STATE, 6), b"\x2c", "hard_offline"),
        (N.set_node_mode(N.NODE_OFFLINE), b"\x2c", "hard_offline"),
        (N.set_node_mode(N.NODE_ONLINE), b"\x2c", "configured"),
        (N.set_node_mode(N.NODE_CHANGE_STATE, 3), b"\x2c", "applicationless"),
        (N.set_node_mode(N.NODE_CHANGE_STATE, 4), b"\x0c", "applicationless"),  # refused: failure
        (N.set_node_mode(N.NODE_CHANGE_STATE, 2), b"\x2c", "unconfigured"),
        (N.set_node_mode(N.NODE_CHANGE_STATE, 4), b"\x2c", "configured"),
    )
    tid = 1
    for apdu, want, state in steps:
        assert nm(n, apdu, tid) == want, (apdu, state)
        assert consistent(n, life) == state, (apdu, life.node_state)
        tid = tid % 15 + 1
    assert life.refused["node"] == 1
    assert life.last == ("osgp", "decommissioned", "commission", "commissioned")
    # the OSGP lifecycle followed: commissioned, decommissioned (applicationless), commissioned
    assert [c[1:] for c in changes if c[0] == "osgp"] == [
        ("commission", "uninstalled", "commissioned"),
        ("decommission", "commissioned", "decommissioned"),
        ("commission", "decommissioned", "commissioned")]
    # leave the last domain: unconfigured (and a reset), decommissioned
    assert nm(n, N.leave_domain(0), tid, domain=b"\x99") == b"\x24"
    assert consistent(n, life) == "unconfigured" and life.osgp == "decommissioned"


def test_a_refused_trigger_changes_nothing():
    n, m, life = app_meter()
    n.commission(DOM, 1, 7)
    assert nm(n, N.set_node_mode(N.NODE_CHANGE_STATE, 3), 1) == b"\x2c"
    before = n.store.snapshot()
    img = n.image()
    assert nm(n, N.set_node_mode(N.NODE_CHANGE_STATE, 6), 2) == b"\x0c"     # applicationless
    assert n.commission(DOM, 1, 9) is False                                  # no application
    assert not n.fire("bypass_on") and not n.fire("unload_application")
    assert n.store.snapshot() == before and n.image() == img
    assert not life.fire("osgp_request", {"in_domain": True})
    assert life.refused["osgp"] == 1 and n.store.snapshot() == before
    # an FCM reaches an applicationless node (its handler runs in every state): 04, and the
    # node, its image and the lifecycle record stay (only the FCM count and ET04.0 move)
    apdu, st, _ = osgp(13, D.fcm_request(DOM, 1, 9, b"AUTHK!"), KEY)
    ans = nm(n, apdu, 3)
    st.update(ans[:-8])
    assert ans[:1] == b"\x04" and st.finish() == ans[-8:]
    assert n.image() == img and n.store.read(ET99, 0, 123) == before[ET99]
    assert n.store.field(ET04, 72, 1) == 3 and life.state() == ("applicationless", "decommissioned")


def test_bypass_mode_is_140_keeps_the_application_and_ends_at_a_reset():
    n, m, life = app_meter()
    assert not n.fire("bypass_on")                       # unconfigured: refused
    n.commission(DOM, 1, 7)
    assert not n.fire("bypass_off")
    assert n.fire("bypass_on") and consistent(n, life) == "bypass" and n.app_runs
    assert nm(n, N.set_node_mode(N.NODE_OFFLINE), 1) == b"\x2c"
    assert consistent(n, life) == "soft_offline" and not n.app_runs
    assert n.fire("bypass_on") and consistent(n, life) == "bypass"
    n.reset(T0)
    assert consistent(n, life) == "configured" and n.app_runs
    assert n.fire("bypass_on") and n.fire("bypass_off") and consistent(n, life) == "configured"
    assert life.osgp == "commissioned"                   # none of this touched the lifecycle


# --- a meter's life on the bus --------------------------------------------------------------

class Dc:
    def __init__(self, bus, domain=DOM, name="dc"):
        self.node = n = bus.add(name, PlcNode(DCN))
        n.commission(domain, 1, 126)
        self.bus = bus
        self.name = name
        self.got = []
        n.register(D.IN, lambda node, inc, now: self.got.append(D.decode(inc.frame.apdu)))

    def discover(self, round):
        q = D.Query(0, 4, 15, 0, bytes(6), bytes(6)).encode()
        apdu = D.Message(D.OUT, D.T_DISCOVER, round, DCN, (), 0, q).encode()
        self.bus.send(self.name, self.node.send((L.AF_BROADCAST, 0, 0), apdu, self.bus.now,
                                                service=UNACKD, domain=DISCOVERY_DOMAIN))
        self.bus.run(for_ms=2000)
        return [m.origin for m in self.got if m.round == round]

    def request(self, apdu, by_nid=True, to=(1, 7)):
        got = []
        dest = (L.AF_NEURON_ID, 0, NID) if by_nid else (L.AF_SUBNET_NODE, to[0], to[1])
        self.bus.send(self.name, self.node.send(dest, apdu, self.bus.now, service=REQUEST,
                                                retry=1, timer_ms=1000,
                                                on_done=lambda n, tx, ok: got.append(tx.responses)))
        self.bus.run(for_ms=3000)
        return got[0][0][1] if got and got[0] else None

    def osgp(self, seq, req, key, by_nid=False, to=(1, 7)):
        apdu, st, _ = osgp(seq, req, key)
        ans = self.request(apdu, by_nid, to)
        if ans is None:
            return None
        st.update(ans[:-8])
        assert st.finish() == ans[-8:]
        return ans[:-8]


READ_LIFE = h("3F 08 63 00 00 71 00 0A")          # ET99, offset 113, 10 bytes


def test_a_meter_s_life_on_the_bus_and_after_a_restart():
    bus = Bus(T0)
    dc = Dc(bus)
    n = bus.add("m", app_meter()[0])
    life = n.life
    bus.link("dc", "m")
    seen = [life.osgp]
    assert dc.discover(1) == [NID]
    seen.append(life.osgp)
    # an OSGP read by Neuron ID before commissioning is answered, the lifecycle refuses it
    assert dc.osgp(13, h("30 00 01"), KEY, by_nid=True)[0] == 0
    assert life.osgp == "discovered" and life.refused["osgp"] == 1
    # the FCM commissions (new keys); the first authenticated read makes it operational
    ans = dc.osgp(14, D.fcm_request(DOM, 1, 7, b"AUTHK!", NEW_KEY, h("B2" * 12)), KEY, by_nid=True)
    assert ans == b"\x00"
    seen.append(life.osgp)
    rec = dc.osgp(15, READ_LIFE, NEW_KEY)
    # the answer is computed before its own trigger: it still says commissioned
    assert rec[:3] == h("00 00 0A") and rec[3:] == h("01 02 01 42") + bytes(5) + b"\x00"
    seen.append(life.osgp)
    assert dc.osgp(16, READ_LIFE, NEW_KEY)[3:5] == h("01 03")                      # now operational
    # another DC's domain (NM update domain): moved; its first read: operational again
    d2 = N.Domain(b"\x43" + bytes(5), 2, 9, 1, b"OTHER!")
    assert dc.request(N.update_domain(0, d2)) == b"\x23"
    seen.append(life.osgp)
    assert life.dc == b"\x43" and life.moves == 1
    # (the DC joins that domain to go on talking to it)
    dc.node.commission(b"\x43", 2, 126)
    assert dc.osgp(17, READ_LIFE, NEW_KEY, to=(2, 9))[3:] == h("01 05 01 43") + bytes(5) + b"\x01"
    seen.append(life.osgp)
    # a restart (same store): the lifecycle is back, and consistent with ET04.72
    n2, m2, life2 = app_meter(n.store)
    assert life2.state() == ("configured", "operational") and life2.dc == b"\x43" and life2.moves == 1
    consistent(n2, life2)
    # decommissioned by leave domain; discovered again
    bus.nodes["m"] = n2
    dc.request(N.leave_domain(0))       # no answer in the domain it left; the retry gets 24
    seen.append(life2.osgp)
    consistent(n2, life2)
    assert dc.discover(2) == [NID]
    seen.append(life2.osgp)
    assert seen == ["uninstalled", "discovered", "commissioned", "operational", "moved",
                    "operational", "decommissioned", "discovered"], seen
    assert n2.store.field(ET99, 114, 1) == T.CODES["osgp"]["discovered"]
