"""Firmware download from the DC over the virtual channel (tools/fw_download.py),
the image tool, the file-backed bank storage, and property tests over the
EP08/EP09/EP10 parameters (meter/codebank.py). docs/firmware-download.md."""
import json
import os
import sys

from hypothesis import given, settings, strategies as st, HealthCheck

from osgp_meter import codebank as CB
from osgp_meter import procedures as P
from osgp_meter import access as A
from osgp_host import fw_image
from osgp_host.codebank_store import FileBankStorage
from osgp_host.dc import LocalFleet
from osgp_host.faults import Fault
from osgp_host.fw_download import Download, Refused

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "core"))
import test_codebank as core          # noqa: E402  (the core tests' meter and helpers)

REASONS = {v for k, v in vars(CB).items() if k.startswith("R_")}
V_OLD = fw_image.parse_version("3.10.21")       # the built-in profile's BT01 firmware
V_NEW = fw_image.parse_version("3.71.0")

# One transformer, a DC at its busbar and eight meters on one feeder, all in
# the DC's range (a broadcast is not repeated).
TOPOLOGY = """
name = "fw-transformer"
[[transformer]]
id = "T1"
[[feeder]]
id = "F1"
cable = "underground"
length_m = 700
[[node]]
id = "dc"
role = "dc"
transformer = "T1"
[[meters]]
feeder = "F1"
count = %d
from_m = 50
to_m = 650
"""


def fleet_of(tmp_path, n=8, seed=3):
    path = tmp_path / "fw-transformer.toml"
    path.write_text(TOPOLOGY % n)
    return LocalFleet(str(path), seed=seed, metering=False)


def version(fw):
    s = fw.meter.store
    return (s.field(1, 14, 1) << 8) | s.field(1, 15, 1)


def test_broadcast_reaches_a_transformer_repairs_by_unicast_and_a_corrupt_image_is_refused(tmp_path):
    fleet = fleet_of(tmp_path)
    meters = fleet.meters
    lossy, corrupt = meters[1:4], meters[-1]
    # seeded loss on the way to three meters (tools/faults.py)
    fleet.channel.add_fault(Fault("drop", nodes=lossy, direction="to", probability=0.25))
    dc = fleet.dc()
    image = fw_image.build("3.71.0", size=4096)
    d = Download(dc, image, [m for m in meters if m != corrupt], broadcast=True,
                 bcast_key=fleet.bcast_key)
    v0 = dc.now_ms
    results = d.run()
    assert all(r.ok for r in results.values()), results
    for m in meters[:-1]:
        fw = fleet.firmware[m]
        assert version(fw) == V_NEW and fw.meter.banks.active == 1
        assert fw.meter.store.field(2048 + 3, 137, 2) == d.header.crc
        assert fw.meter.store.field(3, 5, 1) & 0x40               # BT03 5.6
    # every packet went out once by broadcast; the lossy meters were completed
    # from their bitmaps by unicast, the others needed nothing
    assert d.stats["broadcast"] == d.packets + 1 + d.announce_repeats
    repaired = {str(t.name): r.repaired for t, r in results.items()}
    assert all(repaired[m] > 0 for m in lossy), repaired
    assert all(repaired[m] == 0 for m in meters[4:-1]), repaired
    took = dc.now_ms - v0
    # the corrupt meter heard the broadcast too; now it is fed a corrupted image
    bad = fw_image.corrupt(image)
    d2 = Download(dc, bad, [corrupt], broadcast=False, restart=True)
    r = d2.run()[dc.target(corrupt)]
    assert not r.ok and isinstance(r.error, Refused) and r.error.reason == CB.R_BAD_CRC
    fw = fleet.firmware[corrupt]
    assert version(fw) == V_OLD and fw.meter.banks.active == 0
    assert fw.meter.store.field(3, 5, 1) & 0x40 == 0
    print("\n%d meters, %d bytes in %d packets: %.1f s simulated, %d broadcast, %d repaired"
          % (len(meters) - 1, len(image), d.packets, took / 1000.0, d.stats["broadcast"],
             sum(repaired.values())))


def test_a_download_resumes_after_interruption(tmp_path):
    fleet = fleet_of(tmp_path, n=3)
    dc = fleet.dc()
    image = fw_image.build("3.71.0", size=2000)
    state = str(tmp_path / "resume.json")

    class Stop(Exception):
        pass

    def stop_at_30(d, note=None):
        if d.stats["broadcast"] >= 30:
            raise Stop()
    d = Download(dc, image, fleet.meters, broadcast=True, bcast_key=fleet.bcast_key,
                 state_file=state, progress=stop_at_30)
    try:
        d.run()
        assert False, "should have stopped"
    except Stop:
        pass
    saved = json.load(open(state))
    assert 0 < saved["broadcast_next"] < d.packets
    # a new DC process: same image, same resume file
    dc.close()
    dc = fleet.dc()
    d = Download(dc, image, fleet.meters, broadcast=True, bcast_key=fleet.bcast_key,
                 state_file=state)
    assert d.resumed
    first = d.state["broadcast_next"]
    res = d.run()
    assert all(r.ok for r in res.values()), res
    assert d.stats["broadcast"] == d.packets - first
    assert all(version(fleet.firmware[m]) == V_NEW for m in fleet.meters)


def test_group_addressed_download_reaches_the_group_only(tmp_path):
    fleet = fleet_of(tmp_path, n=3)
    for m in fleet.meters[:2]:
        fleet.firmware[m].plc.join_group(7, 0, size=0)     # 14908-1 group 7
    dc = fleet.dc()
    image = fw_image.build("3.71.0", size=600)
    d = Download(dc, image, fleet.meters, broadcast=True, bcast_key=fleet.bcast_key, group=7)
    res = {t.name: r for t, r in d.run().items()}
    assert all(r.ok for r in res.values())
    assert res["m001"].repaired == res["m002"].repaired == 0
    assert res["m003"].repaired == d.packets                 # not in the group: all by unicast


def test_unicast_download_of_a_failing_image_rolls_back(tmp_path):
    fleet = fleet_of(tmp_path, n=2)
    dc = fleet.dc()
    image = fw_image.build("3.71.1", size=300, fails_self_test=True)
    r = Download(dc, image, ["m001"], trial=5).run()[dc.target("m001")]
    assert r.ok and r.repaired > 0
    fw = fleet.firmware["m001"]
    assert version(fw) == fw_image.parse_version("3.71.1")
    dc.idle(6000)                                   # the trial runs out: rollback
    assert version(fw) == V_OLD and fw.meter.banks.active == 0
    assert dc.read("m001", "BT01")[14:16] == bytes((V_OLD >> 8, V_OLD & 255))


def test_cli_download_and_image_tool(tmp_path, capsys):
    from osgp_host import cli
    img = str(tmp_path / "fw.img")
    assert fw_image.main(["build", "--version", "3.71.0", "--size", "1000", "-o", img]) == 0
    assert fw_image.main(["inspect", img]) == 0
    out = capsys.readouterr().out
    assert "3.71.0" in out and "valid            True" in out
    bad = str(tmp_path / "bad.img")
    assert fw_image.main(["corrupt", img, "-o", bad]) == 0
    assert fw_image.main(["inspect", bad]) == 1
    assert cli.main(["dc", "--local", "download", img, "--meters", "m001-m003", "--broadcast",
                     "--resume-file", "none"]) == 0
    cap = capsys.readouterr()
    assert cap.out.count("switched to bank B, version 3.71.0") == 3
    assert "packets broadcast" in cap.err and "virtual" in cap.err
    assert cli.main(["dc", "--local", "--quiet", "download", bad, "--meters", "m002",
                     "--resume-file", "none"]) == 1
    assert "image CRC does not verify" in capsys.readouterr().out


def test_file_bank_storage_survives_a_restart(tmp_path):
    img = core.image(500)
    store = FileBankStorage(str(tmp_path / "banks"), size=1024)
    m = core.meter(store)
    core.load(m, img, skip=range(10, core.count(img)))
    tabs, part = m.store.snapshot(), m.banks.meta()
    # a new process: new storage object on the same files
    m = core.rebuild(tabs, part, FileBankStorage(str(tmp_path / "banks"), size=1024))
    r, d = core.announce(m, img)
    assert r == P.COMPLETED and d[3] == 10
    for n in range(10, core.count(img)):
        core.packet(m, img, n)
    assert core.switch(m, img)[0] == P.COMPLETED
    assert open(str(tmp_path / "banks" / "bank-b.bin"), "rb").read()[:len(img)] == img


# -- property tests: a refusal changes nothing -----------------------------------------------

def _loading_meter(skip=(3,)):
    m = core.meter()
    img = core.image(100)
    core.load(m, img, skip=skip)
    return m, img


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(number=st.sampled_from([CB.EP08, CB.EP09, CB.EP10]), params=st.binary(max_size=40),
       loading=st.booleans(), role=st.sampled_from([A.ROLE_MK, A.ROLE_BCAST, A.ROLE_RK, A.ROLE_PLC]))
def test_any_parameters_get_a_clear_answer_and_a_refusal_changes_nothing(number, params, loading, role):
    if loading:
        m, img = _loading_meter()
    else:
        m = core.meter()
    before = core.state(m)
    result, data = P.run(m, number, params, role, core.T0)
    assert result in (P.COMPLETED, P.INVALID_PARAMETER, P.CONFLICT, P.NO_AUTHORIZATION)
    if result != P.COMPLETED:
        assert core.state(m) == before
        if result != P.NO_AUTHORIZATION:
            assert len(data) >= 1 and data[0] in REASONS


@settings(max_examples=100, deadline=None)
@given(n=st.integers(0, 0xFFFF), data=st.binary(min_size=1, max_size=40))
def test_ep09_takes_exactly_the_announced_packets(n, data):
    m, img = _loading_meter(skip=range(0, 20))
    packets = core.count(img)
    before = core.state(m)
    result, resp = core.packet(m, img, n, data=data)
    want = core.PS if n < packets - 1 else len(img) - n * core.PS
    if n < packets and len(data) == want:
        assert result == P.COMPLETED and m.banks.have(m, n)
    else:
        assert (result, resp) == (P.INVALID_PARAMETER, bytes((CB.R_BAD_PACKET,)))
        assert core.state(m) == before
