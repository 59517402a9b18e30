# Broadcast groups (EP27, ET08, meter/groups.py): wildcard matching, every
# EP27 result code, the PLC node's ISO/IEC 14908 group table following ET08,
# group-addressed delivery to members only, and the secure-broadcast window
# with its counters (ET23.0..19), ET04.76 and event EE45.
from osgp_meter import access as A
from osgp_meter import clock
from osgp_meter import events
from osgp_meter import groups as G
from osgp_meter import lontalk as L
from osgp_meter import procedures as P
from osgp_meter.plc_node import PlcNode
from osgp_meter.device import PLC_LIMITS
from plc_util import frame, osgp, answer, h, KEY, BKEY, T0
import bcast_util

ET04 = 2048 + 4
ET08 = 2048 + 8
ET23 = 2048 + 23
EP27 = 2048 + 27
EE45 = 2048 + 45


def fw(node=5, groups=()):
    return bcast_util.firmware(node, groups)


def ep27(f, action, gid=None, role=A.ROLE_PLC):
    p = bytes((action,)) if gid is None else bytes((action, gid & 0xFF, gid >> 8))
    return P.run(f.meter, EP27, p, role, T0)


def lon_groups(f):
    return sorted(a.group for a in f.plc.addresses if a.kind == 0x80)


def test_member_follows_the_wildcard_rules():
    f = fw(5, (0x0503, 0x07FF))
    m = f.meter
    assert G.ids(m) == [0x0503, 0x07FF] and G.capacity(m) == 10
    for gid, want in ((0x0503, True), (0x05FF, True), (0x0504, False), (0x0603, False),
                      (0x0701, True), (0x07FF, True), (0x07AB, True), (0xFF00, True),
                      (0xFF05, True), (0xFFFF, True), (0x0000, False), (0x0003, False)):
        assert G.member(m, gid) == want, hex(gid)
        assert G.member(m.store, gid) == want         # a TableStore works too
    ep27(f, 2)
    assert not G.member(m, 0x0503) and not G.member(m, 0x07FF) and G.member(m, 0xFFFF)


def test_ep27_results():
    f = fw()
    m = f.meter
    assert ep27(f, 0, 0x0501) == (0, b"\x01\x01")
    assert ep27(f, 0, 0x0501) == (0, b"\x00\x01")      # already held: done, nothing changed
    assert ep27(f, 1, 0x0999) == (0, b"\x00\x01")      # not held: done, nothing changed
    for p in (b"", b"\x00", b"\x00\x01", b"\x03\x01\x05", b"\x00\x00\x00", b"\x01\x00\x00",
              b"\x00\x05\xff", b"\x00\xff\xff"):
        before = m.store.snapshot()
        assert P.run(m, EP27, p, A.ROLE_PLC, T0) == (2, b""), p
        assert m.store.snapshot() == before
    for i in range(2, 11):
        assert ep27(f, 0, 0x0500 + i) == (0, bytes((1, i)))
    before = m.store.snapshot()
    assert ep27(f, 0, 0x0600) == (3, b"")               # ET08 full (ET11.18 = 10)
    assert m.store.snapshot() == before
    assert ep27(f, 1, 0x0503) == (0, b"\x01\x09")
    assert 0x0503 not in G.ids(m) and ep27(f, 0, 0x0600) == (0, b"\x01\x0a")
    assert G.ids(m)[2] == 0x0600                        # the freed slot is reused
    assert ep27(f, 2) == (0, b"\x01\x00") and G.ids(m) == [] and lon_groups(f) == []
    assert ep27(f, 2, 0x1234) == (0, b"\x00\x00")
    # who may call: the catalogue's "config" keys, not RK or the broadcast key
    assert ep27(f, 0, 0x0501, A.ROLE_RK) == (5, b"")
    assert ep27(f, 0, 0x0501, A.ROLE_BCAST) == (5, b"")
    assert ep27(f, 0, 0x0501, A.ROLE_PK)[0] == 0


def test_ep27_runs_through_bt07_and_logs_it():
    f = fw()
    data = bytes((EP27 & 0xFF, EP27 >> 8, 9, 0, 0x01, 0x05))
    req = bytes((0x40, 0, 7, 0, len(data))) + data
    assert f.meter.execute(req, A.ROLE_PLC, PLC_LIMITS, T0) == b"\x00"
    assert f.meter.store.read(8, 0, 6) == bytes((EP27 & 0xFF, EP27 >> 8, 9, 0, 1, 1))   # BT08
    assert (9, EP27) in [(e[3], e[4]) for e in events.entries(f.meter)]


def test_node_group_table_and_its_image_follow_et08():
    f = fw()
    node = f.plc
    img0 = f.meter.store.read(node.config_table, 0, 113)
    ep27(f, 0, 0x0501)
    assert lon_groups(f) == [5]
    e = [a for a in node.addresses if a.kind == 0x80][0]
    assert (e.domain, e.group, e.size, e.member) == (0, 5, 0, 0)   # a large group
    assert f.meter.store.read(node.config_table, 0, 113) != img0   # the image follows
    ep27(f, 0, 0x0502)
    ep27(f, 0, 0x07FF)
    assert lon_groups(f) == [5, 7]                       # one 14908 entry per group
    ep27(f, 1, 0x0501)
    assert lon_groups(f) == [5, 7]                       # 0x0502 still needs group 5
    ep27(f, 1, 0x0502)
    assert lon_groups(f) == [7]
    # a restarted node has the groups from its image; a new firmware from ET08
    r = PlcNode(None, None, None, f.meter.store)
    assert r.loaded and sorted(a.group for a in r.addresses if a.kind == 0x80) == [7]
    node.leave_group(7)
    assert lon_groups(f) == [] and G.sync(f.meter) == 1 and lon_groups(f) == [7]


def test_groups_a_dc_joined_stay_when_ep27_leaves_others():
    f = fw()
    f.plc.join_group(9, 3, size=4)                       # e.g. a DC's own group over NM
    ep27(f, 0, 0x0901)
    e = [a for a in f.plc.addresses if a.kind == 0x80][0]
    assert (e.group, e.member, e.size) == (9, 3, 4)      # kept as it was
    ep27(f, 0, 0x0A01)
    ep27(f, 1, 0x0A01)
    assert lon_groups(f) == [9]


def test_full_address_table_is_a_conflict():
    f = fw()
    for g in range(100, 115):
        f.plc.join_group(g, 0)
    before = f.meter.store.snapshot()
    assert ep27(f, 0, 0x0501) == (3, b"")
    assert f.meter.store.snapshot() == before and G.ids(f.meter) == []
    assert ep27(f, 0, 0x6401)[0] == 0                    # group 100: already joined, no entry needed


def test_et08_writes_follow_the_node_and_refuse_0xffxx():
    f = fw(5, (0x0501,))
    m = f.meter
    w = bytes((0x4F, ET08 >> 8, ET08 & 0xFF, 0, 0, 0, 0, 4)) + bytes((0x01, 0x06, 0x01, 0x07))
    assert m.execute(w, A.ROLE_PLC, PLC_LIMITS, T0) == b"\x00"
    assert G.ids(m) == [0x0601, 0x0701] and lon_groups(f) == [6, 7]
    before = m.store.snapshot()
    bad = bytes((0x4F, ET08 >> 8, ET08 & 0xFF, 0, 0, 2, 0, 2)) + bytes((0x01, 0xFF))
    assert m.execute(bad, A.ROLE_PLC, PLC_LIMITS, T0) == b"\x05"
    assert m.store.snapshot() == before and lon_groups(f) == [6, 7]
    assert m.execute(w[:3] + bytes(3) + b"\x00\x04" + bytes(4), A.ROLE_PLC, PLC_LIMITS, T0) == b"\x00"
    assert G.ids(m) == [] and lon_groups(f) == []


def group_req(f, apdu, group=5, tid=1, now=T0, service=L.S_REQUEST):
    return f.plc.receive(frame(pdu_fmt=L.PDU_SPDU, addr_fmt=L.AF_GROUP, group=group,
                               l4=service, tid=tid, apdu=apdu), now)


def test_group_request_runs_in_members_only():
    f = fw(5, (0x0501,))
    f.meter.store.set_field(ET04, 86, 2, 100)            # broadcast window D
    apdu, st, _ = osgp(1, h("30 00 01"), key=BKEY)
    assert answer(group_req(f, apdu), st)[0] == 0
    assert f.plc.osgp.stats[0] == 1
    apdu, st, _ = osgp(2, h("30 00 01"), key=BKEY)
    assert group_req(f, apdu, group=6, tid=2) is None    # not in 14908 group 6: dropped
    assert f.plc.drops.get("address") == 1 and f.plc.osgp.stats[0] == 1
    ep27(f, 1, 0x0501)                                   # leaves group 5
    assert group_req(f, apdu, tid=3) is None and f.plc.drops.get("address") == 2
    ep27(f, 0, 0x05FF)                                   # joins again (every sub-group of 5)
    assert answer(group_req(f, apdu, tid=4), st)[0] == 0 and f.plc.osgp.stats[0] == 2


def test_secure_broadcast_window_counters_and_receipt_time():
    f = fw(5, (0x0501,))
    m = f.meter
    m.store.set_field(ET04, 82, 4, 1000)                 # base B
    m.store.set_field(ET04, 86, 2, 10)                   # delta D: accept (last, 1010]
    now = T0 + 5000
    apdu, st, _ = osgp(1003, h("30 00 01"), key=BKEY)
    assert answer(group_req(f, apdu, now=now), st)[0] == 0
    assert G.counters(m) == (1, 0, 0, 0, 0)
    assert m.store.read(ET04, 76, 6) == clock.encode_ltime(now // 1000)
    cases = ((1003, 1, "replayed"), (1002, 1, "behind"), (1011, 2, "beyond B+D"),
             (5000, 2, "far beyond"))
    for i, (seq, kind, why) in enumerate(cases):
        apdu, st, _ = osgp(seq, h("30 00 03"), key=BKEY)
        assert answer(group_req(f, apdu, tid=2 + i, now=now + 1000), st) == h("0C 00 00 03 EB"), why
    assert G.counters(m) == (1, 2, 2, 0, 5000)
    assert m.store.read(ET04, 76, 6) == clock.encode_ltime(now // 1000)   # only acceptances
    logged = [(e[3], e[4]) for e in events.entries(m) if e[3] == EE45]
    assert logged == [(EE45, 1003), (EE45, 1002), (EE45, 1011), (EE45, 5000)]
    bad = osgp(1004, h("30 00 01"), key=KEY)[0]          # the unicast key on a group frame
    assert group_req(f, bad, tid=9) is not None and G.counters(m)[3] == 1
    apdu, st, _ = osgp(1010, h("30 00 01"), key=BKEY)     # the top of the window
    assert answer(group_req(f, apdu, tid=10), st)[0] == 0 and G.counters(m)[0] == 2
    # the counters are a table a head end reads (status: every reading key)
    r = m.execute(bytes((0x3F, ET23 >> 8, ET23 & 0xFF, 0, 0, 0, 0, 20)), A.ROLE_PLC, PLC_LIMITS, T0)
    assert r[3:] == bytes.fromhex("02000000 02000000 02000000 01000000 88130000")
