"""The data concentrator's later-life commands (tools/dc_life.py, docs/dc.md):
pending writes with their PED, PLC transactions, AES mode, the lifecycle
record, the firmware download key, over the virtual channel (--local
topology `small`)."""
import json
import os

import pytest
from hypothesis import given, settings, strategies as st

from osgp_host import cli, dc_life
from osgp_host import profile as profiles
from osgp_host.dc import LocalFleet
from osgp_host.pending_fleet import new_calendar
from osgp_host.plc_client import PlcAuthError, PlcError
from osgp_meter import fwimage, pending
from osgp_meter import lifecycle_table as LT

BT04 = 4
BT06 = 6
BT54 = 54
ET03 = 2048 + 3
AES_PROFILE = '[security]\nmode = "aes"\n'
OTHER_DL_KEY = bytes(range(0x30, 0x40))


def _fleet(count=2, profile=None):
    return LocalFleet("small", count=count, metering=False, profile=profile)


def _store(fleet, mid):
    return fleet.firmware[mid].meter.store


def _tables(snap, *skip):
    """A store snapshot without ET04 (sequence numbers) and ET11 (key usage),
    which every request over PLC moves, and without `skip`."""
    return {k: v for k, v in snap.items() if k not in (2048 + 4, 2048 + 11) + skip}


def _aes_profile(tmp_path, extra=""):
    p = tmp_path / "aes.toml"
    p.write_text(AES_PROFILE + extra)
    return str(p)


# ---------------------------------------------------------------- pending writes

def test_a_large_pending_write_is_split_each_piece_with_the_ped_and_activates():
    fleet = _fleet()
    dc = fleet.dc()
    st_ = _store(fleet, "m001")
    image = new_calendar(st_.get(50))                    # BT54, 808 bytes
    ped = dc_life.ped_after(120, self_read=True)
    assert ped == bytes((pending.CODE_RELATIVE | pending.FLAG_SELF_READ, 0, 0, 0, 2, 0))
    n = dc_life.write_pending(dc, "m001", "BT54", image, ped)
    assert n == -(-len(image) // (dc.max_write - 6))     # 69 calendar bytes a write
    assert bytes(st_.get(BT54)) != image                 # staged, not live
    got_ped, head = dc_life.read_pending(dc, "m001", "BT54", 0, 40)
    assert got_ped == ped and head == image[:40]
    dc.idle(125_000)                                     # past the relative time
    assert bytes(st_.get(BT54)) == image
    assert not fleet.firmware["m001"].meter.pending.entries
    assert dc_life.read_pending(dc, "m001", "BT54", 0, 8)[0] == bytes(6)


def test_cli_pending_write_prints_the_ped_and_refusals_change_nothing(capsys):
    assert cli.main(["dc", "--local", "--quiet", "write", "m001-m002", "BT06", "01020304",
                     "--offset", "2", "--pending", "--at", "2026-12-01T00:00Z",
                     "--self-read"]) == 0
    out = capsys.readouterr().out
    assert "m002 (1/2): BT06 pending, 4 bytes at offset 2 in 1 write, PED 10 1a 0c 01 00 00 " \
           "(at 2026-12-01T00:00Z, self-read)" in out
    # bad option combinations: a clear message, exit 2, nothing sent
    for bad in (["--pending"], ["--at", "2026-12-01T00:00Z"],
                ["--pending", "--at", "2026-12-01T00:00:30Z"],
                ["--pending", "--ped", "0102"], ["--pending", "--after", "-1"],
                ["--pending", "--self-read"]):
        assert cli.main(["dc", "--local", "--quiet", "write", "m001", "BT06", "01"] + bad) == 2
        assert "osgp-meter:" in capsys.readouterr().err
    # the meter's refusal (a PED with reserved bits: 05) is an error line, exit 1
    assert cli.main(["dc", "--local", "--quiet", "write", "m001", "BT06", "01", "--pending",
                     "--ped", "c00000000000"]) == 1
    assert "0x05" in capsys.readouterr().err


def test_a_refused_pending_write_changes_nothing():
    fleet = _fleet(1)
    dc = fleet.dc()
    meter = fleet.firmware["m001"].meter
    dc.read("m001", "BT01", 0, 4)             # operational now: ET99 stays as it is
    before = meter.store.snapshot()
    with pytest.raises(PlcError) as e:
        dc_life.write_pending(dc, "m001", "BT06", b"\x01", b"\xc0" + bytes(5))
    assert e.value.code == 0x05 and "m001" in str(e.value)
    with pytest.raises(PlcError) as e:                   # BT00 is read-only: 05
        dc_life.write_pending(dc, "m001", 0, b"\x01", dc_life.ped_after(60))
    assert e.value.code == 0x05
    with pytest.raises(ValueError):
        dc_life.write_pending(dc, "m001", BT06 + 4096, b"\x01", dc_life.ped_after(60))
    with pytest.raises(ValueError):
        dc_life.write_pending(dc, "m001", "BT06", b"\x01", b"\x01")
    assert _tables(meter.store.snapshot()) == _tables(before) and not meter.pending.entries


def test_procedure_peds_with_bp13_and_bp15():
    fleet = _fleet(1)
    dc = fleet.dc()
    st_ = _store(fleet, "m001")
    ped = dc_life.ped_procedure(bytes.fromhex("0102"))
    dc_life.write_pending(dc, "m001", "BT06", b"PEND", ped, offset=4)
    assert dc.call("m001", "BP15", dc_life.ped_procedure(b"\x09"))[0] == 1     # no match
    assert dc.call("m001", "BP13", ped)[0] == 0
    assert bytes(st_.read(BT06, 4, 4)) == b"PEND"
    # the CLI's call options give the same PED after the parameters
    args = cli.build_parser().parse_args(["dc", "call", "1/1", "BP13", "--on-procedure", "0102"])
    assert dc_life.call_params(args) == ped


def test_cli_call_takes_the_ped_as_options(capsys):
    assert cli.main(["dc", "--local", "--quiet", "call", "m001", "BP15", "--after", "3600"]) == 1
    out = capsys.readouterr().out
    assert "BP15 result 1 (accepted, not complete)" in out     # nothing staged with that PED


# ---------------------------------------------------------------- transactions

def test_txn_runs_all_or_nothing_through_et27_et28(capsys):
    fleet = _fleet(1)
    dc = fleet.dc()
    st_ = _store(fleet, "m001")
    got = dc_life.txn(dc, "m001", ["read:BT01:0:4", "write:ET03@2:4142"])
    assert got["type"] == 1 and got["number"] == 1
    assert got["records"][0][3:] == b"EMUL"
    assert bytes(st_.read(ET03, 2, 2)) == b"AB"
    before = st_.snapshot()
    got = dc_life.txn(dc, "m001", ["write:ET03@2:5858", "call:EP61"])    # EP61 refuses: 5
    assert got["type"] == 2 and got["number"] == 2
    assert bytes(st_.read(ET03, 2, 2)) == b"AB"
    assert _tables(st_.snapshot(), 2048 + 27, 2048 + 28, 7, 8) == _tables(before, 2048 + 27,
                                                                          2048 + 28, 7, 8)
    dc_life.print_txn(got, ["write:ET03@2:5858", "call:EP61"], __import__("sys").stdout)
    assert "partial responses" in capsys.readouterr().out
    assert cli.main(["dc", "--local", "--quiet", "txn", "m001-m002", "read:BT01:0:4",
                     "write:ET03@2:4142"]) == 0
    out = capsys.readouterr().out
    assert out.count("transaction 1: responses (type 1), 2 records") == 2
    assert "1  read:BT01:0:4                00 ok, 4 bytes: 45 4d 55 4c" in out
    assert cli.main(["dc", "--local", "--quiet", "txn", "m001", "call:EP61"]) == 1
    assert "procedure result 5 (no authorization)" in capsys.readouterr().out
    assert cli.main(["dc", "--local", "--quiet", "txn", "m001", "frob:BT01"]) == 2


# ---------------------------------------------------------------- AES

def test_aes_mode_read_write_call_and_key_change(tmp_path):
    fleet = _fleet(2, _aes_profile(tmp_path))
    assert fleet.aes and fleet.firmware["m001"].meter.store.field(2048 + 4, 127, 1) == 2
    dc = fleet.dc()
    assert dc.read("m001", "BT01")[:4] == b"EMUL"
    dc.write("m002", "ET03", b"AES!", offset=0)
    assert bytes(_store(fleet, "m002").read(ET03, 0, 4)) == b"AES!"
    assert dc.call("m001", "BP10", bytes.fromhex("031a0b1a0c2238"))[0] == 0
    got = dc_life.txn(dc, "m001", ["read:BT01:0:4"])
    assert got["type"] == 1
    # a DC that speaks RC4 is refused
    dc.close()
    plain = fleet.dc(aes=False)
    with pytest.raises(PlcAuthError):
        plain.read("m002", "BT01")
    plain.close()
    # without the fleet's Neuron IDs the DC learns them over NM query ID
    learn = fleet.dc(neuron_ids=None)
    assert learn.read("1/2", "BT01", 0, 4) == b"EMUL"
    assert learn.neuron_id("1/2") == fleet.firmware["m002"].plc.neuron_id
    # EP15 in AES mode: the AES key wrap, then the new key
    new = bytes.fromhex("a1a2a3a4a5a6a7a8a9aaabac")
    assert learn.change_key("m002", "EP15", 0, new, fleet.key)[0] == 0
    assert learn.read("m002", "BT01", 0, 4) == b"EMUL"


def test_cli_aes_from_the_profile_or_the_flag(tmp_path, capsys):
    prof = _aes_profile(tmp_path)
    assert cli.main(["dc", "--local", "--quiet", "--profile", prof, "read", "m001", "BT01",
                     "--raw"]) == 0
    assert "45 4d 55 4c" in capsys.readouterr().out
    assert cli.main(["dc", "--local", "--quiet", "--aes", "read", "m001", "BT01"]) == 1   # RC4 meters
    assert "0x0B" in capsys.readouterr().err


# ---------------------------------------------------------------- lifecycle

def test_lifecycle_record_and_node_state(capsys):
    fleet = _fleet(2)
    dc = fleet.dc()
    first = dc_life.lifecycle(dc, "m001")
    assert first == {"node": "configured", "node_code": 4, "version": 1,
                     "lifecycle": "commissioned", "lifecycle_code": 2, "dc_domain": "42",
                     "moves": 0}
    assert dc_life.lifecycle(dc, "m001")["lifecycle"] == "operational"
    assert cli.main(["dc", "--local", "--quiet", "lifecycle", "m001"]) == 0
    assert capsys.readouterr().out == ("m001 (1/1): node configured (4); lifecycle commissioned "
                                       "(2), DC domain 42, moved 0 times\n")
    assert cli.main(["dc", "--local", "--quiet", "lifecycle", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["address"] for r in rows] == ["1/%d" % k for k in range(1, 6)]


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=10, max_size=10), st.integers(0, 255))
def test_decode_life_names_every_code(rec, node):
    d = dc_life.decode_life(rec, node)
    assert d["node"] == {v: k for k, v in LT.CODES["node"].items()}.get(node, "code %d" % node)
    if rec[0]:
        assert d["lifecycle_code"] == rec[1] and d["moves"] == rec[9]
        assert (d["dc_domain"] is None) == (rec[2] > 6)
    dc_life.format_life(d)


def test_decode_life_refuses_a_short_record():
    with pytest.raises(ValueError):
        dc_life.decode_life(b"\x01\x02", 4)


# ---------------------------------------------------------------- PEDs

@settings(max_examples=200, deadline=None)
@given(st.integers(0, 255 * 604800 + 604799), st.booleans(), st.booleans())
def test_relative_peds_sum_to_the_seconds(s, sr, dr):
    ped = dc_life.ped_after(s, sr, dr)
    assert ped[1] * 604800 + ped[2] * 86400 + ped[3] * 3600 + ped[4] * 60 + ped[5] == s
    assert pending.due_of(ped, 1000) == 1000 + s
    assert dc_life.describe_ped(ped).startswith("%d s after receipt" % s)


@settings(max_examples=200, deadline=None)
@given(st.integers(946684800 // 60, 4102444740 // 60))
def test_absolute_peds_round_trip(minute):
    import time
    t = minute * 60
    iso = "%04d-%02d-%02dT%02d:%02dZ" % time.gmtime(t)[:5]
    assert dc_life.parse_utc(iso) == t
    assert dc_life.ped_at(iso) == pending.ped_absolute(t)
    assert dc_life.describe_ped(dc_life.ped_at(t)) == "at " + iso


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=6, max_size=6))
def test_describe_ped_takes_any_six_bytes(ped):
    assert isinstance(dc_life.describe_ped(ped), str)


def test_bad_times_are_refused_clearly():
    for bad in ("2026-13-01T00:00Z", "2026-02-30T00:00Z", "2026-12-01", "1999-12-01T00:00Z",
                "2026-12-01T24:00Z", "2026-12-01T00:00:01Z"):
        with pytest.raises(ValueError):
            dc_life.parse_utc(bad)
    with pytest.raises(ValueError):
        dc_life.ped_at(61)
    with pytest.raises(ValueError):
        dc_life.ped_after(256 * 604800)
    with pytest.raises(ValueError):
        dc_life.ped_procedure(bytes(6))


# ---------------------------------------------------------------- download key

def test_the_download_key_comes_from_the_profile(tmp_path, capsys):
    assert profiles.load_config()["download_key"] == fwimage.DEFAULT_KEY
    prof = tmp_path / "dl.toml"
    prof.write_text('[keys]\ndownload = "%s"\n' % OTHER_DL_KEY.hex())
    assert profiles.load_config(str(prof))["download_key"] == OTHER_DL_KEY
    bad = tmp_path / "bad.toml"
    bad.write_text('[keys]\ndownload = "0102"\n')
    with pytest.raises(profiles.ProfileError):
        profiles.load_config(str(bad))
    # fw-image build signs with the profile's key; the meters of that profile take it
    from osgp_host import fw_image
    img = tmp_path / "fw.img"
    assert fw_image.main(["build", "--version", "3.71.0", "--size", "120", "--profile", str(prof),
                          "-o", str(img)]) == 0
    assert fw_image.main(["inspect", str(img), "--profile", str(prof)]) == 0
    assert fw_image.main(["inspect", str(img)]) == 1          # not the emulator's key
    fleet = LocalFleet("small", count=1, metering=False, profile=str(prof))
    assert fleet.firmware["m001"].meter.banks.key == OTHER_DL_KEY
    capsys.readouterr()
    base = ["dc", "--local", "--quiet", "--profile", str(prof), "download", str(img),
            "--meters", "m001", "--resume-file", "none"]
    assert cli.main(base) == 0
    assert "warning" not in capsys.readouterr().err
    # an image signed with another key: dc download warns, the meter refuses it (0x0D)
    img2 = tmp_path / "fw2.img"
    assert fw_image.main(["build", "--version", "3.71.1", "--size", "120", "-o", str(img2)]) == 0
    assert cli.main(["dc", "--local", "--profile", str(prof), "download", str(img2),
                     "--meters", "m001", "--resume-file", "none"]) == 1
    err = capsys.readouterr().err
    assert "does not verify under the profile's download key" in err
    assert os.path.exists(str(img2))


def test_aes_over_cnip_learns_neuron_ids_and_a_fleet_dc_follows_its_profile(tmp_path):
    from osgp_host.cnip_gateway import CnipGateway
    from osgp_host.dc import DC
    from osgp_host.fleet import Fleet
    prof = _aes_profile(tmp_path)
    fleet = _fleet(2, prof)
    gw = CnipGateway(fleet.channel, port=0)
    th = gw.serve_in_thread()
    try:
        dc = DC(cnip=gw.address, key=fleet.key, aes=True, retries=1, tx_retries=1)
        try:
            assert dc.read((1, 2), "BT01", 0, 4) == b"EMUL"     # Neuron ID asked over NM first
            assert dc.neuron_id((1, 2)) == fleet.firmware["m002"].plc.neuron_id
            assert dc_life.lifecycle(dc, (1, 1))["node"] == "configured"
        finally:
            dc.close()
    finally:
        gw.stop()
        th.join(5)
    f = Fleet({"meters": 2, "seed": 1, "metering": False, "profile": prof})
    f.start()
    try:
        d = f.dc(0)
        assert d.aes and d.read(list(d.names)[0], "BT01", 0, 4) == b"EMUL"
    finally:
        f.stop(save=False)


# ---------------------------------------------------------------- key changes and groups

def test_change_key_defaults_the_kek_to_the_key_it_replaces(capsys):
    from osgp_meter import access
    fleet = _fleet(1)
    dc = fleet.dc()
    ring = fleet.firmware["m001"].meter.keys
    new_rk = bytes(range(20))
    kek = dc_life.default_kek(dc, "m001", 2048 + 25, 2)                 # RK, zero-padded
    assert kek == b"READONLY" + bytes(12)
    assert dc.change_key("m001", "EP25", 2, new_rk, kek)[0] == 0
    assert ring.get(access.ROLE_RK) == new_rk
    assert dc_life.default_kek(dc, "m001", 2048 + 15, 0) == fleet.key
    assert dc_life.default_kek(dc, "m001", 2048 + 15, 9) is None
    assert cli.main(["dc", "--local", "--quiet", "change-key", "m001-m002", "EP15", "0",
                     "a1a2a3a4a5a6a7a8a9aaabac"]) == 0
    assert capsys.readouterr().out.count("EP15 key 0 (plc_unicast) changed, result 0") == 2
    assert cli.main(["dc", "--local", "--quiet", "change-key", "m001", "EP24", "1",
                     "00" * 16, "--kek", "ff" * 16]) == 1          # wrong KEK: the check fails
    assert "NOT changed, result 5" in capsys.readouterr().out
    assert cli.main(["dc", "--local", "--quiet", "change-key", "m001", "EP15", "7", "00"]) == 2


def test_a_group_call_activates_pending_copies_in_every_member(capsys):
    fleet = _fleet(2)
    dc = fleet.dc()
    ped = dc_life.ped_procedure(b"\x07")
    for m in ("m001", "m002"):
        dc_life.write_pending(dc, m, "BT06", b"GRP!", ped, offset=8)
    assert dc_life.open_window(dc, ["m001", "m002"], 5000) == []
    g = dc_life.group_send(dc, 0xFFFF, "call", "BP13", ped, key=fleet.bcast_key, seq=5000)
    for m in ("m001", "m002"):
        assert dc_life.group_check(dc, m, g, "call", "BP13")[0] == 0
        assert bytes(_store(fleet, m).read(BT06, 8, 4)) == b"GRP!"
    # the CLI: BP14 to everyone, read back; a write the broadcast key may not do
    assert cli.main(["dc", "--local", "--quiet", "group", "0xFFFF", "call", "BP14",
                     "--members", "m001-m002"]) == 0
    assert capsys.readouterr().out.count("BP14 result 0 (completed)") == 2
    assert cli.main(["dc", "--local", "--quiet", "group", "0xFFFF", "write", "BT06", "0102",
                     "--members", "m001"]) == 1
    assert "NOT written" in capsys.readouterr().out
    assert cli.main(["dc", "--local", "--quiet", "group", "0x0501", "call", "BP14",
                     "--members", "m001"]) == 1                     # not a member
    assert "BT08 does not hold the group call's answer" in capsys.readouterr().out
