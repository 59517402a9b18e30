"""Fleets (tools/fleet.py, tools/fleet_identity.py, docs/fleet.md): identity
derivation, generated topologies, shards in one process and in worker
processes behind CN/IP, per-meter injections, the state file, the CLI."""
import csv
import json
import os

import pytest

from osgp_host import cli
from osgp_host import fleet_identity as fid
from osgp_host.fleet import Fleet, FleetConfig, FleetError, generate_topology, shard_address
from osgp_meter import access

FLEETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools",
                      "fleets")


# ---------------------------------------------------------------- identity

def test_identity_is_deterministic_and_unique():
    a = fid.IdentityScheme(5)
    b = fid.IdentityScheme(5)
    n = 5000
    ids = [a.identity(k, "T1") for k in range(1, n + 1)]
    again = [b.identity(k, "T1") for k in range(1, n + 1)]
    assert [i.as_dict() for i in ids] == [i.as_dict() for i in again]
    for field in ("serial", "neuron_id", "plc_key", "mak", "mbk", "load_seed", "utility_serial"):
        values = [getattr(i, field) for i in ids]
        assert len(set(values)) == n, field
    assert all(len(i.serial) == 16 and i.serial.isdigit() for i in ids)
    assert all(i.neuron_id[:2] == fid.NEURON_PREFIX and len(i.neuron_id) == 6 for i in ids)
    assert all(len(i.plc_key) == 12 and len(i.mak) == 16 for i in ids)
    # the Neuron ID derivation inverts without a table
    assert all(a.index_of_neuron_id(i.neuron_id) == i.index for i in ids)
    assert a.index_of_neuron_id(b"\x00\x0d" + ids[0].neuron_id[2:]) is None
    # the broadcast key is shared per shard by default
    assert len({i.bcast_key for i in ids}) == 1
    assert a.identity(1, "T2").bcast_key != ids[0].bcast_key
    assert len({fid.IdentityScheme(5, broadcast="meter").identity(k).bcast_key
                for k in range(1, 50)}) == 49
    # another seed: other identities
    c = fid.IdentityScheme(6).identity(1, "T1")
    assert c.neuron_id != ids[0].neuron_id and c.plc_key != ids[0].plc_key
    assert c.serial[8:] == ids[0].serial[8:] == "00000001"


def test_selections():
    ids = ["m%03d" % k for k in range(1, 101)]
    tr = {m: ("T1" if k < 50 else "T2") for k, m in enumerate(ids)}
    assert fid.select("1-3,7", ids) == [1, 2, 3, 7]
    assert fid.select("m010-m012", ids) == [10, 11, 12]
    assert fid.select(["m005", "all"], ids) == list(range(1, 101))
    r = fid.select("random:5%", ids, seed=3, what="x")
    assert len(r) == 5 and r == fid.select("random:5%", ids, seed=3, what="x")
    assert r != fid.select("random:5%", ids, seed=4, what="x")
    assert len(fid.select("random:12", ids, seed=3)) == 12
    assert fid.select("transformer:T2", ids, transformer_of=tr) == list(range(51, 101))
    for bad in ("0-3", "90-120", "m999", "random:200", "nonsense!"):
        with pytest.raises(fid.SelectionError):
            fid.select(bad, ids)


# ---------------------------------------------------------------- topologies

def test_generated_topology_shards_and_repeater_need():
    from osgp_host.channel import Channel
    topo = generate_topology(600, seed=2)
    assert [t.id for t in topo.transformers] == ["T1", "T2", "T3"]
    shards = topo.shards()
    meters = [[n for n in s.nodes if n.role == "meter"] for s in shards]
    assert [len(m) for m in meters] == [200, 200, 200]
    assert [n.id for n in meters[0]][:2] == ["m001", "m002"] and meters[2][-1].id == "m600"
    assert all(len([n for n in s.nodes if n.role == "dc"]) == 1 for s in shards)
    # the rural feeder's far end is beyond the DC's range, its near part is not
    ch = Channel(shards[0], seed=1)
    snr = {n.id: ch.link("dc-T1", n.id).snr_db for n in meters[0]}
    far = [m for m, s in snr.items() if s < 3]
    assert 3 <= len(far) <= 40
    assert sum(1 for s in snr.values() if s > 15) > 150
    assert generate_topology(600, seed=2).nodes == topo.nodes       # deterministic
    assert len(generate_topology(100, shards=4).transformers) == 4
    assert len(generate_topology(50).transformers) == 1
    assert not any(f.id.endswith("F3") for f in generate_topology(50, rural=False).feeders)


# ---------------------------------------------------------------- one process, two shards

def test_two_shard_fleet_in_one_process():
    fleet = Fleet({"meters": 30, "per_transformer": 15, "seed": 11, "metering": False})
    fleet.start()
    try:
        assert [sh.id for sh in fleet.shards] == ["T1", "T2"]
        a, b = fleet.channel(0), fleet.channel("T2")
        assert a is not b and a.sim is not b.sim
        assert fleet.shard("m020") is fleet.shards[1]
        assert fleet.shards[1].meters[0] == "m016" and fleet.shards[1].indices[0] == 16
        # direct commissioning: 1/1 .. in each shard; keys derived per meter
        assert fleet.shards[1].addresses()["m016"] == (1, 1) == shard_address(1)
        fw = fleet.firmware("m016")
        ident = fleet.identity("m016")
        assert fw.keys.get(access.ROLE_PLC) == ident.plc_key == fleet.plc_key(16)
        assert fw.keys.get(access.ROLE_MAK) == ident.mak
        assert fw.plc.neuron_id == ident.neuron_id
        assert fleet.index(ident.neuron_id) == 16
        # unwritten tables cost nothing: a fresh meter owns BT01 (its serial),
        # ET03 and ET04 (the PLC mirrors) only
        assert len(fw.meter.store.written) <= 4
        # a DC on each shard reads its meters with their own keys
        for s, meter in ((0, "m003"), (1, "m016")):
            dc = fleet.dc(s)
            bt01 = dc.read(meter, "BT01")
            assert bt01[16:24] == bytes.fromhex(fleet.identity(meter).serial)
            dc.close()
        # the shards are independent channels
        st = fleet.stats()["shards"]
        assert st[0]["frames"] > 0 and st[1]["frames"] > 0
        assert st[0]["virtual_ms"] != st[1]["virtual_ms"]
        fleet.run(for_ms=10_000)
    finally:
        fleet.stop()


def test_template_keys_and_errors():
    fleet = Fleet({"meters": 4, "identity": {"keys": "template"}, "metering": False})
    fleet.build()
    assert fleet.firmware(1).keys.get(access.ROLE_PLC) == bytes.fromhex("0102030405060708090a0b0c")
    dc = fleet.dc(0)
    assert len(dc.read("m002", "BT01")) == 24
    dc.close()
    with pytest.raises(FleetError, match="lenght"):
        Fleet({"lenght": 3})
    with pytest.raises(FleetError, match="give meters"):
        Fleet({})
    with pytest.raises(FleetError, match="50 meter positions"):
        Fleet({"meters": 60, "topology": "default"})
    with pytest.raises(FleetError, match=r"inject.*#1"):
        Fleet({"meters": 4, "inject": [{"meters": "1", "after": "1s", "outage": "soon"}]})
    with pytest.raises(FleetError, match="outside 1-4"):
        Fleet({"meters": 4, "inject": [{"meters": "9-12", "after": "1s", "outage": "1s"}]})


# ---------------------------------------------------------------- injections

def test_injections_applied_per_meter():
    cfg = FleetConfig.load(os.path.join(FLEETS, "small.toml"))
    fleet = Fleet(cfg)
    fleet.build()
    ch = fleet.channel("T1")
    i1 = ch.index["m001"]
    fleet.run(for_ms=150_000)                    # outage of m001..m003 from 2 min, 90 s
    assert ch.off_count[i1] == 1 and ch.off_count[ch.index["m004"]] == 0
    assert not fleet.firmware("m001").meter.powered
    fleet.run(for_ms=15 * 60_000)
    assert ch.off_count[i1] == 0 and fleet.firmware("m001").meter.powered
    whats = [(mid, what) for _, mid, what, _ in fleet.log]
    assert ("m001", "outage 1m30s") in whats
    assert ("m003", "power on (end of 1m30s outage)") in whats
    covers = sorted(mid for mid, w in whats if w.startswith("inject cover"))
    assert len(covers) == 4                      # random:10% of 40, seeded
    loads = sorted(mid for mid, w in whats if w.startswith("inject load"))
    assert loads == ["m%03d" % k for k in range(21, 41)]
    assert fleet.inject_stats == {"applied": 3 + 3 + 4 + 20, "failed": 0}
    # the same seed picks the same meters; the log is deterministic
    again = Fleet(cfg)
    again.run(for_ms=16.5 * 60_000)
    assert sorted(again.log) == sorted(fleet.log)
    # an outage on the channel: the DC gets no answer from a meter without supply
    f2 = Fleet({"meters": 3, "metering": False,
                "inject": [{"meters": "2", "after": "1s", "outage": "1h"},
                           {"meters": "3", "after": "2s", "read": "BT01", "key": "plc",
                            "expect": 5}]})
    f2.run(for_ms=5000)
    dc = f2.dc(0, retries=0, tx_retries=1)
    from osgp_host.dc import PlcTimeout
    with pytest.raises(PlcTimeout):
        dc.read("m002", "BT01")
    assert len(dc.read("m001", "BT01")) == 24
    assert f2.inject_stats == {"applied": 1, "failed": 1}
    assert "FAILED" in f2.log[-1][3]


# ---------------------------------------------------------------- state

def test_state_file_keeps_meters_and_time(tmp_path):
    db = str(tmp_path / "fleet.db")
    cfg = {"meters": 6, "seed": 4, "metering": False, "commission": "none", "state": db}
    fleet = Fleet(cfg)
    fleet.build()
    assert not fleet.firmware("m002").plc.configured
    fleet.firmware("m002").plc.commission(b"\x42", 3, 7)
    fleet.run(for_ms=60_000)
    t = fleet.channel(0).sim.now_ms
    fleet.stop()
    back = Fleet(cfg)
    back.build()
    assert back.channel(0).sim.now_ms == t
    assert back.firmware("m002").plc.address()[1:] == (3, 7)
    assert not back.firmware("m003").plc.configured
    back.stop(save=False)
    with pytest.raises(FleetError, match="another fleet"):
        Fleet(dict(cfg, seed=5)).build()


# ---------------------------------------------------------------- processes + CN/IP

def test_worker_processes_behind_cnip():
    from osgp_host.dc import DC
    fleet = Fleet({"meters": 20, "per_transformer": 10, "processes": 2, "cnip_port": 0,
                   "metering": False, "seed": 9})
    fleet.start()
    try:
        st = fleet.stats()
        assert st["processes"] == 2 and [s["shard"] for s in st["shards"]] == ["T1", "T2"]
        inv = {r["id"]: r for r in fleet.inventory()}
        m = inv["m014"]
        assert (m["transformer"], m["address"]) == ("T2", "1/4")
        host, port = st["shards"][1]["cnip"].split(":")
        dc = DC(cnip=(host, int(port)), key=bytes.fromhex(m["plc_key"]), retries=1)
        try:
            assert dc.read(m["address"], "BT01")[16:24] == bytes.fromhex(m["serial"])
        finally:
            dc.close()
        with pytest.raises(FleetError, match="another process"):
            fleet.channel(1)
    finally:
        fleet.stop()


# ---------------------------------------------------------------- CLI

def test_cli_fleet(tmp_path, capsys):
    inv = tmp_path / "inv.csv"
    pc = tmp_path / "f.pcap"
    assert cli.main(["fleet", os.path.join(FLEETS, "small.toml"), "--for", "3m", "--json",
                     "--inventory", str(inv), "--pcap", str(pc), "--metering", "off"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["meters"] == 40 and len(out["shards"]) == 2 and not out["metering"]
    assert out["injections"]["applied"] > 0
    rows = list(csv.DictReader(open(inv)))
    assert len(rows) == 40 and rows[0]["id"] == "m001" and len(rows[0]["plc_key"]) == 24
    assert (tmp_path / "f.T1.pcap").exists() and (tmp_path / "f.T2.pcap").exists()
    assert cli.main(["fleet", "--meters", "5", "--topology", "nope"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_cli_fleet_survey_in_worker_processes(capsys):
    assert cli.main(["fleet", "--meters", "30", "--per-transformer", "15", "--survey",
                     "--processes", "2", "--tables", "BT01", "--metering", "off",
                     "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    s = out["survey"]
    assert s["shards"] == 2 and s["meters"] == 30
    assert s["found"] == s["commissioned"] == s["read_ok"] == 30
    assert out["commission"] == "none" and out["processes"] == 2


def test_paced_fleet_in_a_background_thread():
    fleet = Fleet({"meters": 6, "metering": False, "speed": 50})
    fleet.build()
    dc = fleet.dc(0, drive=False)            # DCs first, then the loop thread starts
    fleet.start()
    try:
        assert fleet._thread is not None
        assert len(dc.read("m004", "BT01")) == 24
        v = fleet.channel(0).sim.now_ms
        fleet.run(for_ms=500)                # waits for the background loop
        assert fleet.channel(0).sim.now_ms >= v + 500
    finally:
        fleet.stop()
    assert fleet._thread is None
