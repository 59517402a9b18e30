"""A head end's key import: `osgp-meter fleet --inventory` writes every
meter's keys, `osgp-meter dc --inventory` reads each target meter with its own
key (tools/fleet_lookup.py Inventory, tools/dc.py build_dc; docs/dc.md,
docs/fleet.md). A fleet with derived (per-meter) keys is served over CN/IP in
this process (paced, in its background thread)."""
import csv
import os
import stat

import pytest
from hypothesis import given, settings, strategies as st

from osgp_host import cli
from osgp_host.dc import DC, Target
from osgp_host.fleet import Fleet
from osgp_host.fleet_lookup import Inventory


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(fleet, CN/IP port, inventory path): 5 meters, derived keys, CN/IP."""
    inv = str(tmp_path_factory.mktemp("inv") / "inv.csv")
    fleet = Fleet({"meters": 5, "cnip_port": 0, "metering": False, "seed": 3, "speed": 20})
    assert fleet.config.keys == "derived"
    fleet.write_inventory(inv)
    fleet.start()
    try:
        yield fleet, int(fleet.stats()["shards"][0]["cnip"].rsplit(":", 1)[1]), inv
    finally:
        fleet.stop()


def _dc(port, *argv):
    return ["dc", "--cnip", "127.0.0.1:%d" % port, "--quiet"] + list(argv)


def test_inventory_file_holds_ids_addresses_and_keys(served):
    fleet, _, inv = served
    rows = list(csv.DictReader(open(inv)))
    assert [r["address"] for r in rows] == ["1/%d" % k for k in range(1, 6)]
    keys = {r["plc_key"] for r in rows}
    assert len(keys) == 5                                  # every meter its own
    for r in rows:
        ident = fleet.identity(r["id"])
        assert r["plc_key"] == ident.plc_key.hex() and r["neuron_id"] == ident.neuron_id.hex()
        assert r["serial"] == ident.serial and r["shard"] == "0" and r["transformer"] == "T1"
        assert len(r["bcast_key"]) == 24
    if os.name == "posix":                                 # secrets: owner only
        assert stat.S_IMODE(os.stat(inv).st_mode) & 0o077 == 0


def test_fleet_cli_writes_the_same_inventory(served, tmp_path, capsys):
    _, _, inv = served
    p = tmp_path / "cli.csv"
    assert cli.main(["fleet", "--meters", "5", "--seed", "3", "--metering", "off",
                     "--inventory", str(p), "--for", "0s"]) == 0
    assert "inventory: 5 meters in %s (their keys: keep it private)" % p \
        in capsys.readouterr().out
    assert p.read_text() == open(inv).read()


def test_dc_reads_every_meter_with_its_own_key(served, capsys):
    fleet, port, inv = served
    assert cli.main(_dc(port, "--inventory", inv, "read", "1/1-5", "BT01")) == 0
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert len(lines) == 5 and "warning" not in out.err
    for k, line in enumerate(lines, 1):
        serial = fleet.identity(k).serial
        assert line.startswith("1/%d: " % k)
        assert bytes.fromhex(line.split(": ")[1])[16:24] == bytes.fromhex(serial)


def test_without_the_inventory_the_meters_answer_0x0b(served, capsys):
    _, port, _ = served
    assert cli.main(_dc(port, "read", "1/1-5", "BT01")) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 5 and all("0x0B" in line for line in out)


def test_by_neuron_id(served, capsys):
    fleet, port, inv = served
    nid = fleet.identity(4).neuron_id.hex()
    assert cli.main(_dc(port, "--inventory", inv, "read", "nid:" + nid, "BT01", "--raw")) == 0
    assert bytes.fromhex(fleet.identity(4).serial).hex(" ") in capsys.readouterr().out


def test_missing_meter_falls_back_to_key_with_a_warning(served, tmp_path, capsys):
    fleet, port, inv = served
    rows = list(csv.DictReader(open(inv)))
    part = tmp_path / "part.csv"
    with open(part, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(r for r in rows if r["address"] != "1/3")
    # --key: meter 3's own key, so the fallback is seen to be used
    key3 = fleet.identity(3).plc_key.hex()
    assert cli.main(_dc(port, "--inventory", str(part), "--key", key3,
                        "read", "1/1-5", "BT01")) == 0
    err = capsys.readouterr().err
    assert "warning: 1/3 is not in %s: using --key" % part in err
    assert err.count("warning") == 1
    # no --key: the profile's key, which meter 3 does not hold
    assert cli.main(_dc(port, "--inventory", str(part), "read", "1/2-3", "BT01")) == 1
    out = capsys.readouterr()
    assert "using the profile's plc_unicast key" in out.err
    assert "1/2: 45" in out.out and "1/3: error" in out.out and "0x0B" in out.out


def test_python_api(served):
    fleet, port, inv = served
    lookup = Inventory.load(inv, port=port)
    dc = DC(cnip=("127.0.0.1", port), keys=lookup, neuron_ids=lookup.neuron_id, retries=1)
    try:
        assert dc.read("1/2", "BT01")[16:24] == bytes.fromhex(fleet.identity(2).serial)
    finally:
        dc.close()


# ---------------------------------------------------------------- shards, bad files

def _rows(n_shards, per=2, port=None):
    rows = []
    for s in range(n_shards):
        for n in range(1, per + 1):
            rows.append({"transformer": "T%d" % (s + 1), "shard": str(s),
                         "cnip_port": "" if port is None else str(port + s),
                         "address": "1/%d" % n, "neuron_id": "00e1%08x" % (s * 100 + n),
                         "plc_key": "%02x" % (s * 16 + n) * 12})
    return rows


def test_addresses_per_shard_by_port_or_shard():
    t = Target(1, 2)
    inv = Inventory(_rows(3, port=1700), port=1701)
    assert inv(t) == bytes([0x12]) * 12                     # T2, on port 1701
    assert Inventory(_rows(3), shard="T3")(t) == bytes([0x22]) * 12
    assert Inventory(_rows(3), shard="0")(t) == bytes([0x02]) * 12
    # Neuron IDs are unique across shards: any shard's meter
    assert inv(Target(neuron_id=bytes.fromhex("00e1000000c9"))) == bytes([0x21]) * 12
    said = []
    Inventory(_rows(3, port=1700), port=1702, shard="T1", warn=said.append)
    assert said == ["warning: inventory: shard T1 is on CN/IP port 1700, not 1702"]
    with pytest.raises(ValueError, match="several shards.*--shard"):
        Inventory(_rows(3))(t)
    with pytest.raises(ValueError, match="no meter of shard 'T9'"):
        Inventory(_rows(3), shard="T9")


def test_missing_target_warns_once_and_returns_none():
    said = []
    inv = Inventory(_rows(1), warn=said.append, fallback="--key")
    assert inv(Target(1, 9)) is None and inv(Target(1, 9)) is None
    assert inv.neuron_id(Target(1, 9)) is None
    assert said == ["warning: 1/9 is not in inventory: using --key"]
    assert inv.neuron_id(Target(1, 1)) == bytes.fromhex("00e100000001")


@settings(max_examples=150, deadline=None)
@given(st.fixed_dictionaries({k: st.one_of(st.none(), st.text(max_size=30),
                                           st.sampled_from(["1/1", "0/0", "00" * 12, "00" * 6]))
                              for k in ("address", "neuron_id", "plc_key", "shard",
                                        "transformer", "cnip_port")}),
       st.one_of(st.none(), st.integers(0, 65535)))
def test_any_row_gives_an_inventory_or_a_value_error(row, port):
    try:
        inv = Inventory([row], port=port)
    except ValueError as exc:
        assert "line 2" in str(exc)
        return
    assert len(inv) == 1 and len(inv.rows[0]["key"]) == 12
    assert inv(Target(neuron_id=b"\xff" * 6)) in (None, inv.rows[0]["key"])


def test_bad_inventory_rows_name_the_line(tmp_path, capsys):
    bad = [dict(_rows(1)[0], plc_key="zz"), dict(_rows(1)[0], plc_key="00" * 11),
           dict(_rows(1)[0], address="x", neuron_id=""),
           dict(_rows(1)[0], neuron_id="00e1zz"),
           dict(_rows(1)[0], address="", neuron_id="")]
    for row, msg in zip(bad, ["not hex", "12 bytes", "subnet/node", "not 6 bytes", "neither"]):
        with pytest.raises(ValueError, match="line 2: .*" + msg):
            Inventory([row])
    p = tmp_path / "bad.csv"
    p.write_text("address,plc_key\n1/1,zz\n")
    assert cli.main(["dc", "--inventory", str(p), "read", "1/1", "BT01"]) == 2
    assert "bad.csv line 2: plc_key 'zz' is not hex" in capsys.readouterr().err


def test_two_shards_any_port_need_shard(tmp_path, capsys):
    inv = str(tmp_path / "inv.csv")
    fleet = Fleet({"meters": 6, "per_transformer": 3, "cnip_port": 0, "metering": False,
                   "seed": 4, "speed": 20})
    fleet.write_inventory(inv)               # cnip_port 0: the file names no ports
    fleet.start()
    try:
        port = int(fleet.stats()["shards"][1]["cnip"].rsplit(":", 1)[1])
        assert cli.main(_dc(port, "--inventory", inv, "read", "1/2", "BT01")) == 2
        assert "several shards (T1, T2): give --shard" in capsys.readouterr().err
        assert cli.main(_dc(port, "--inventory", inv, "--shard", "T2",
                            "read", "1/1-3", "BT01")) == 0
        out = capsys.readouterr().out
        assert out.count(": 45 4d") == 3 and bytes.fromhex(fleet.identity(6).serial).hex(" ") in out
    finally:
        fleet.stop()


def test_aes_meters_with_the_inventory(tmp_path, capsys):
    """AES mode (docs/security-modes.md): the key and the nonce's Neuron ID
    both come from the inventory."""
    prof = tmp_path / "aes.toml"
    prof.write_text('[security]\nmode = "aes"\n')
    inv = str(tmp_path / "inv.csv")
    fleet = Fleet({"meters": 3, "cnip_port": 0, "metering": False, "seed": 5, "speed": 20,
                   "profile": str(prof)})
    fleet.write_inventory(inv)
    fleet.start()
    try:
        port = int(fleet.stats()["shards"][0]["cnip"].rsplit(":", 1)[1])
        argv = ["--profile", str(prof), "read", "1/1-3", "BT01"]
        assert cli.main(_dc(port, "--inventory", inv, *argv)) == 0
        assert capsys.readouterr().out.count(": 45 4d") == 3
        assert cli.main(_dc(port, *argv)) == 1
        assert capsys.readouterr().out.count("0x0B") == 3
    finally:
        fleet.stop()
