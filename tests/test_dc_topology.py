"""The data concentrator's discovery, commissioning and topology management
(tools/dc_topology.py) on the virtual channel with real meter firmware and
PLC nodes: tools/topologies/default.toml (50 meters, the far end of F3 out
of the DC's range), small.toml, two_transformers.toml. Seeded; every run is
deterministic."""
import time

import pytest

from osgp_host.channel import Channel
from osgp_host.topology import Topology
from osgp_host.dc_topology import Discovery, make_fleet, neuron_id_for
from osgp_meter import access

BT01_READ = bytes.fromhex("30 00 01")


def form(topology=None, seed=1, **kw):
    if isinstance(topology, str):
        topology = Topology.named(topology)
    ch = Channel(topology, seed=seed)
    fleet = make_fleet(ch)
    disc = Discovery(ch, names=fleet.names, book=fleet.book, **kw)
    t0 = time.perf_counter()
    res = disc.run()
    res["wall_with_setup_s"] = time.perf_counter() - t0
    return ch, fleet, disc, res


@pytest.fixture
def net():
    return form()


def nid(name):
    return neuron_id_for(name)


def read_bt01(disc, fleet, name):
    rsp = disc.osgp_request(nid(name), BT01_READ)
    assert rsp is not None, disc.last_error
    want = fleet.firmware[name].meter.store.read(1, 0, 24)
    assert rsp[0] == 0 and rsp[3:] == want
    return rsp


def test_discovery_finds_and_commissions_all_50_meters(net):
    ch, fleet, disc, res = net
    assert res["discovered"] == 50 and res["commissioned"] == 50 and res["lost"] == 0
    hops = res["hops"]
    assert sum(hops.values()) == 50 and hops.get(1, 0) >= 2
    meters = res["meters"]
    for name in ("m049", "m050"):                  # below the DC's decoding range
        assert meters[nid(name).hex()]["hops"] >= 1
    assert all(m["margin_db"] >= disc.topology.min_margin for m in meters.values())
    # each meter holds what the FCM gave it
    for name, fw in fleet.firmware.items():
        m = meters[nid(name).hex()]
        node = fw.plc
        assert node.address() == (b"\x42", m["subnet"], m["node"])
        assert node.osgp.keys.get(access.ROLE_PLC) == disc.unicast_key(nid(name))
        assert node.osgp.keys.get(access.ROLE_BCAST) == disc.broadcast_key()
        assert fw.meter.store.field(2048 + 4, 128, 1) == 1            # ET04.128: one FCM today
    print("\nhop distribution:", hops, "times:", res["times"],
          "wall incl. the DC: %.3f s" % res["wall_with_setup_s"], "frames:", ch.stats["tx"])
    print("repeated:", {k: v for k, v in disc.paths().items() if v})


def test_formation_is_deterministic():
    a = form(seed=3)[3]
    b = form(seed=3)[3]
    for r in (a, b):
        r.pop("wall_with_setup_s")
        r["times"].pop("wall_s")
    assert a == b


def test_osgp_read_of_bt01_three_hops_away(net):
    ch, fleet, disc, res = net
    read_bt01(disc, fleet, "m007")                            # direct
    read_bt01(disc, fleet, "m050")                            # through its repeater
    chain = [nid("m040"), nid("m044"), nid("m047")]
    disc.set_path(nid("m050"), chain)
    assert disc.topology.meters[nid("m050")].hops == 3
    seen = []
    tr = ch.add_tracer(lambda ev: seen.append(ev.src) if ev.kind == "tx" else None)
    read_bt01(disc, fleet, "m050")
    ch.remove_tracer(tr)
    assert seen == ["dc", "m040", "m044", "m047", "m050", "m047", "m044", "m040"], seen
    # the chain breaks at m044: the DC learns where (0x4C with the proxy count)
    ch.take_offline(["m044"], at_ms=ch.sim.now // 1000)
    ch.run(for_ms=1)
    assert disc.osgp_request(nid("m050"), BT01_READ) is None
    assert disc.last_error == "chain broken after m040 (towards m044)"


def test_a_degraded_link_makes_the_dc_pick_a_new_path(net):
    ch, fleet, disc, res = net
    assert set(disc.check().values()) == {"ok"}
    assert disc.paths()["m046"] == []
    ch.degrade(60, link=["dc", "m046"], at_ms=ch.sim.now // 1000)
    ch.run(for_ms=1)
    out = disc.check()
    assert out["m046"] == "rerouted"
    assert {k for k, v in out.items() if v != "ok"} == {"m046"}
    path = disc.paths()["m046"]
    assert len(path) == 1 and path[0] != "m046"
    for name in ("m046", "m049"):                  # and the meters behind it follow
        assert disc.paths()[name][0] == path[0]
        read_bt01(disc, fleet, name)
    # optimise: the meters behind m046 get one-proxy paths again, and it stays put
    disc.optimise()
    assert all(len(disc.paths()[n]) == 1 for n in ("m046", "m047", "m048", "m049", "m050"))
    assert set(disc.check().values()) == {"ok"} and disc.optimise() == {}
    read_bt01(disc, fleet, "m050")


def test_a_moved_meter_is_found_again(net):
    ch, fleet, disc, res = net
    assert disc.paths()["m005"] == []
    ch.move("m005", at_ms=ch.sim.now // 1000, feeder="F3", at_m=2700)
    ch.run(for_ms=1)
    out = disc.check()
    assert out["m005"] in ("rerouted", "found")
    assert disc.paths()["m005"] != []
    read_bt01(disc, fleet, "m005")
    assert disc.summary()["lost"] == 0


def test_a_meter_nobody_hears_near_its_old_place_is_found_by_a_targeted_discovery(net):
    ch, fleet, disc, res = net
    n5 = nid("m005")
    ch.move("m005", at_ms=ch.sim.now // 1000, feeder="F3", at_m=2750)
    ch.run(for_ms=1)
    topo = disc.topology
    topo.meters[n5].neighbours = []                  # the DC knows no neighbour of it
    for other in list(topo.neighbours_of(n5)):
        topo.forget(other, n5)
    assert disc.check([n5]) == {"m005": "found"}
    path = disc.paths()["m005"]
    assert path and all(p.startswith("m04") or p == "m050" for p in path)   # a proxy on F3
    read_bt01(disc, fleet, "m005")


def test_a_meter_off_the_line_is_lost_then_found():
    ch, fleet, disc, res = form("small")
    assert res["commissioned"] == 5
    ch.take_offline(["m003"], at_ms=ch.sim.now // 1000, until_ms=ch.sim.now // 1000 + 60_000)
    ch.run(for_ms=1)
    assert disc.check()["m003"] == "lost"
    ch.run(for_ms=60_000)
    assert disc.check()["m003"] == "found"
    assert disc.summary()["lost"] == 0
    read_bt01(disc, fleet, "m003")


def test_multi_message_commissioning():
    ch, fleet, disc, res = form("small", method="nm")
    assert res["commissioned"] == 5 and disc.stats["nm"] == 15 and disc.stats["fcm"] == 0
    for name in fleet.firmware:
        assert res["meters"][nid(name).hex()]["method"] == "nm"
        assert fleet.firmware[name].meter.store.field(2048 + 4, 128, 1) == 0
        read_bt01(disc, fleet, name)               # NM leaves the factory OSGP keys


def test_a_meter_moved_to_another_transformer_is_adopted_there():
    ch = Channel(Topology.named("two_transformers"))
    fleet = make_fleet(ch, dc_id=["dc1", "dc2"])
    d1 = Discovery(ch, "dc1", neuron_id=bytes.fromhex("000DC0000001"), domain=b"\x01",
                   names=fleet.names, book=fleet.book)
    d2 = Discovery(ch, "dc2", neuron_id=bytes.fromhex("000DC0000002"), domain=b"\x02",
                   names=fleet.names, book=fleet.book)
    assert d1.run()["commissioned"] == 6 and d2.run()["commissioned"] == 6
    ch.run(until_ms=ch.sim.start_ms + 11 * 60_000)        # a006 moves to T2 at 10 min
    assert d1.check(nids=[nid("a006")])["a006"] == "lost"
    assert d2.adopt() == ["a006"]
    assert fleet.node("a006").address()[0] == b"\x02"
    read_bt01(d2, fleet, "a006")
