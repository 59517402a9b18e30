"""A meter's life on the virtual channel, driven by real data concentrators
(tools/dc_topology.py) on tools/topologies/two_transformers.toml: discovered
and commissioned by dc1 (FCM), operational after dc1's first read, moved to
the other transformer where dc2 adopts it (moved, then operational after
dc2's read), decommissioned by dc2 (NM leave domain), discovered again and
commissioned again. At each step the DC reads the lifecycle record from
ET99 over the power line (docs/commissioning.md), and the meter's ET04.72
agrees with the node state the table holds."""
from osgp_host.channel import Channel
from osgp_host.topology import Topology
from osgp_host.dc_topology import Discovery, make_fleet, neuron_id_for
from osgp_meter import lifecycle_table as T
from osgp_meter import lontalk_nm as N

READ_LIFE = bytes.fromhex("3F 08 63 00 00 71 00 0A")     # ET99 offset 113, 10 bytes
ET04 = 2048 + 4
CODE = T.CODES["osgp"]


def record(dc, nid):
    """(state code, DC domain, moves) as the DC reads them from ET99."""
    rsp = dc.osgp_request(nid, READ_LIFE)
    assert rsp is not None and rsp[:3] == bytes.fromhex("00 00 0A"), (rsp, dc.last_error)
    rec = rsp[3:]
    assert rec[0] == 1
    return rec[1], bytes(rec[3:3 + rec[2]]) if rec[2] <= 6 else None, rec[9]


def test_a_meter_s_life_with_two_data_concentrators():
    ch = Channel(Topology.named("two_transformers"))
    fleet = make_fleet(ch, dc_id=["dc1", "dc2"])
    d1 = Discovery(ch, "dc1", neuron_id=bytes.fromhex("000DC0000001"), domain=b"\x01",
                   names=fleet.names, book=fleet.book)
    d2 = Discovery(ch, "dc2", neuron_id=bytes.fromhex("000DC0000002"), domain=b"\x02",
                   names=fleet.names, book=fleet.book)
    name = "a006"
    nid = neuron_id_for(name)
    fw = fleet.firmware[name]
    life = fw.meter.life
    went = []
    life.on_change = lambda l, machine, trig, src, dst: went.append((machine, trig, dst))

    def check(node_state, osgp):
        assert life.state() == (node_state, osgp), life.state()
        assert fw.meter.store.field(ET04, 72, 1) == T.CODES["node"][node_state]

    check("unconfigured", "uninstalled")
    # dc1 discovers and commissions its transformer (FCM)
    assert d1.run()["commissioned"] == 6 and d2.run()["commissioned"] == 6
    assert [w[2] for w in went if w[0] == "osgp"] == ["discovered", "commissioned"]
    check("configured", "commissioned")
    # the first authenticated read makes it operational (the answer shows the state before)
    assert record(d1, nid) == (CODE["commissioned"], b"\x01", 0)
    check("configured", "operational")
    assert record(d1, nid) == (CODE["operational"], b"\x01", 0)
    # it moves to T2 (the topology's fault at 10 min); dc1 loses it, dc2 adopts it
    ch.run(until_ms=ch.sim.start_ms + 11 * 60_000)
    assert d1.check(nids=[nid])[name] == "lost"
    assert d2.adopt() == [name]
    check("configured", "moved")
    assert life.dc == b"\x02" and life.moves == 1
    assert record(d2, nid) == (CODE["moved"], b"\x02", 1)
    check("configured", "operational")
    # dc2 decommissions it: leave domain (no answer in the domain it left; a retry may get 24)
    d2.exchange(nid, N.leave_domain(0))
    check("unconfigured", "decommissioned")
    d2.topology.meters[nid].commissioned = False        # the DC's own books
    # an all-meters round hears it again: discovered; read by Neuron ID (the lifecycle refuses
    # the request: not commissioned)
    assert nid in d2.discover_round(window=24, only_uncommissioned=True)
    check("unconfigured", "discovered")
    assert record(d2, nid) == (CODE["discovered"], b"\x02", 1)
    assert life.refused["osgp"] >= 1
    # and commissioned again by the same DC: commissioned, then operational
    assert d2.commission(nid)
    check("configured", "commissioned")
    assert record(d2, nid)[0] == CODE["commissioned"]
    check("configured", "operational")
    assert [w[2] for w in went if w[0] == "osgp"] == [
        "discovered", "commissioned", "operational", "moved", "operational", "decommissioned",
        "discovered", "commissioned", "operational"]
    # every other meter of T1 is operational or commissioned, none refused a node trigger
    for other, f in fleet.firmware.items():
        assert f.meter.life.refused["node"] == 0, other
