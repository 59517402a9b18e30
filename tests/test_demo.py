"""`osgp-meter demo` (tools/demo.py): 50 factory-fresh meters, one DC,
discovery through repeaters, commissioning, BT01 and BT23 from every meter,
a pcap that tshark decodes (cnip + lon dissectors, no malformed packet)
matching the frames the simulation logged, byte-identical for a seed.

tshark is required (as in tests/test_tshark.py): these tests FAIL without it.
"""
import json
import shutil
import subprocess

import pytest

from osgp_host import cli
from osgp_host import pcap
from osgp_host.demo import format_summary, run_demo
from osgp_meter import lontalk as L
from osgp_meter import lontalk_nm as N

INSTALL = ("tshark is not installed; install it with: apt-get update && "
           "DEBIAN_FRONTEND=noninteractive apt-get install -y tshark")
FIELDS = ("frame.number", "frame.time_epoch", "ip.src", "cnip.seqno", "lon.prio", "lon.alt_path",
          "lon.delta_bl", "lon.pdufmt", "lon.addrfmt", "lon.srcnet", "lon.srcnode", "lon.dstnet",
          "lon.dstnode", "lon.dstgrp", "lon.grp", "lon.grpmem", "lon.uid", "lon.domain",
          "lon.tpdu_type", "lon.spdu_type", "lon.trans_no", "lon.code")


def tshark(*args):
    exe = shutil.which("tshark")
    if exe is None:
        pytest.fail(INSTALL)
    proc = subprocess.run([exe] + list(args), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo")
    res = run_demo(seed=1, pcap=str(d / "demo.pcap"), log=str(d / "demo.log"))
    res["dir"] = d
    return res


def test_demo_finds_commissions_and_reads_every_meter(demo):
    s = demo["summary"]
    json.dumps(s)
    assert s["meters"] == 50 and s["found"] == 50 and s["commissioned"] == 50
    assert s["read_ok"] == 50 and s["read_failed"] == 0
    assert s["reads"] == {"BT01": 50, "BT23": 50}
    assert sum(s["hops"].values()) == 50
    assert any(int(h) > 0 and n > 0 for h, n in s["hops"].items())      # repeaters used
    assert 0 < s["discovery_s"] and 0 < s["commissioning_s"] and 0 < s["reads_s"]
    assert s["virtual_s"] >= s["discovery_s"] + s["commissioning_s"] + s["reads_s"] - 0.01
    assert s["frames"] == len(demo["frames"]) == s["pcap_packets"]
    assert s["loss"] == sum(s["loss_reasons"].values())
    text = "\n".join(format_summary(s))
    for word in ("discovery", "commissioning", "50/50 meters read", "virtual", "wall", "frames",
                 "collisions", "pcap"):
        assert word in text
    # the log file holds the same records
    lines = (demo["dir"] / "demo.log").read_text().splitlines()
    assert [json.loads(x) for x in lines] == demo["frames"]


def _expected(rec):
    """What tshark must show for one logged frame (cf. tests/test_tshark.py)."""
    e = {"lon.prio": rec["prio"], "lon.alt_path": rec["alt"], "lon.delta_bl": rec["backlog"],
         "lon.pdufmt": rec["pdu_fmt"], "lon.srcnet": rec["src_subnet"],
         "lon.srcnode": rec["src_node"]}
    af = rec["addr_fmt"]
    e["lon.addrfmt"] = 2 if af == L.AF_GROUP_ACK else af
    if af in (L.AF_BROADCAST, L.AF_SUBNET_NODE, L.AF_NEURON_ID):
        e["lon.dstnet"] = rec["dst_subnet"]
    if af in (L.AF_SUBNET_NODE, L.AF_GROUP_ACK):
        e["lon.dstnode"] = rec["dst_node"]
    if af == L.AF_GROUP:
        e["lon.dstgrp"] = rec["group"]
    if af == L.AF_GROUP_ACK:
        e["lon.dstgrp"] = rec["dst_subnet"]
        e["lon.grp"] = rec["group"]
        e["lon.grpmem"] = rec["member"]
    if af == L.AF_NEURON_ID:
        e["lon.uid"] = rec["neuron_id"]
    if rec["domain"]:
        e["lon.domain"] = rec["domain"]
    if rec["pdu_fmt"] != L.PDU_APDU:
        e["lon.trans_no"] = rec["tid"]
    if rec["pdu_fmt"] == L.PDU_TPDU:
        e["lon.tpdu_type"] = rec["l4"]
    if rec["pdu_fmt"] == L.PDU_SPDU:
        e["lon.spdu_type"] = rec["l4"]
    code = rec["code"]
    if code is not None and code < 0x80:
        cls = N.apdu_class(code)
        e["lon.code"] = code & {N.CLASS_APP: 0x3F, N.CLASS_FOREIGN: 0x0F}.get(cls, 0xFF)
    return e


def _value(field, text):
    if field in ("lon.uid", "lon.domain"):
        return text.replace(":", "").lower()
    return int(text, 0)


def test_tshark_decodes_the_demo_pcap_as_logged(demo):
    path = demo["pcap"]
    assert tshark("-r", path, "-Y", "_ws.malformed").strip() == ""
    assert tshark("-r", path, "-Y", "_ws.expert.severity >= warning").strip() == ""
    cmd = ["-r", path, "-Y", "lon", "-T", "fields"]
    for f in FIELDS:
        cmd += ["-e", f]
    rows = [dict(zip(FIELDS, line.split("\t"))) for line in tshark(*cmd).splitlines()]
    frames = demo["frames"]
    assert len(rows) == len(frames) == len(pcap.read(path))
    kinds = set()
    for k, (rec, row) in enumerate(zip(frames, rows)):
        assert "error" not in rec
        assert int(row["frame.number"]) == k + 1
        assert round(float(row["frame.time_epoch"]) * 1000) == rec["t_ms"]
        for field, want in _expected(rec).items():
            got = row.get(field, "")
            assert got != "", (k, field, rec)
            assert _value(field, got) == want, (k, field, got, want, rec)
        kinds.add((rec["addr_fmt"], rec["pdu_fmt"], rec["code"] if rec["pdu_fmt"] in
                   (L.PDU_APDU,) else rec["l4"]))
    # the capture has discovery broadcasts, Neuron-ID requests and 2a traffic
    afs = {a for a, _, _ in kinds}
    assert {L.AF_BROADCAST, L.AF_NEURON_ID, L.AF_SUBNET_NODE} <= afs


def test_same_seed_same_pcap_bytes(demo, tmp_path):
    again = run_demo(seed=1, pcap=str(tmp_path / "again.pcap"))
    assert (tmp_path / "again.pcap").read_bytes() == open(demo["pcap"], "rb").read()
    assert again["frames"] == demo["frames"]
    other = run_demo(seed=2, pcap=str(tmp_path / "other.pcap"), tables=("BT01",))
    assert (tmp_path / "other.pcap").read_bytes() != open(demo["pcap"], "rb").read()
    assert other["summary"]["read_ok"] == 50


def test_demo_cli(tmp_path, capsys):
    p = tmp_path / "cli.pcap"
    assert cli.main(["demo", "--pcap", str(p), "--json", "--tables", "BT01",
                     "--metering", "off"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["read_ok"] == 50 and s["pcap"] == str(p) and p.stat().st_size > 24
