# `osgp-meter bench`: run every measurement for a few milliseconds and check
# the structure of the result and that the answers were verified. No test
# here asserts on a rate or a byte count: those are for humans.
import json

import pytest

from osgp_host import bench
from osgp_host import cli


def _row(res, name):
    for r in res["throughput"]:
        if r["name"] == name:
            return r
    raise AssertionError("no row %s in %r" % (name, [r["name"] for r in res["throughput"]]))


def test_measure_structure_and_every_answer_verified():
    res = bench.measure(seconds=0.01, rounds=2, gurux=False, meters=5)
    json.dumps(res)                                      # machine-readable as is
    assert res["rounds"] == 2 and res["gurux_skipped"]
    assert res["read"]["table"] == "BT01" and res["read"]["count"] > 0
    names = [r["name"] for r in res["throughput"]]
    assert names[0] == "mep_secured_plain"
    assert "mep_secured_rc4_pure" in names and "mep_unsecured" in names
    for r in res["throughput"]:
        assert len(r["samples"]) == 2
        assert 0 < r["min"] <= r["median"] <= r["max"]
        assert r["us_per_request"] > 0
        # every timed chunk was checked: counters, and its last answer
        assert r["verified"] and r["verified_chunks"] >= 2 and r["requests"] >= 2 * bench.CHUNK
        assert r["x_gurux"] is None and r["meets"] is None    # no reference point
    plain = _row(res, "mep_secured_plain")
    assert plain["secure"] and not plain["rc4"]
    assert plain["answer_bytes"] == 2 + 3 + res["read"]["count"] + 8
    assert _row(res, "mep_unsecured")["answer_bytes"] == 2 + 3 + res["read"]["count"]
    mem = res["memory"]
    assert "gurux_server_idle" not in mem
    idle = mem["meter_idle"]
    assert idle["instances"] == 5 and idle["bytes_per_instance"] > 0
    assert idle["holds"]["written_tables"] == 0 and idle["holds"]["digest_objects"] == 0
    used = mem["meter_after_read"]["holds"]
    assert used["digest_objects"] == 1 and used["mep_seq"] == 1
    text = bench.format_table(res)
    assert "MEP secured, plain" in text and "bytes" in text


def test_cryptography_backend_variant_and_restores_pure_path():
    from osgp_meter import cipher
    from osgp_host import crypto_backend
    crypto_backend.uninstall()      # other tests' CLI runs may have installed it process-wide
    res = bench.measure(seconds=0.01, rounds=1, gurux=False, meters=2)
    r = _row(res, "mep_secured_rc4_cryptography")
    assert r["rc4"] and r["rc4_backend"] == "cryptography" and r["verified"]
    assert cipher.set_rc4_backend(None) is None           # the bench put the default back


def test_a_wrong_answer_is_caught():
    case = bench.MepCase("t", "t", bench.default_config(), encrypt=True)
    case.sample(0.001)
    good = case.last_answer
    assert bench.verify_secured_answer(good, *case.client_state(), case.expected) == case.expected
    for i in (2, len(good) - 1):                     # a payload byte, a digest byte
        bad = good[:i] + bytes((good[i] ^ 1,)) + good[i + 1:]
        with pytest.raises(bench.VerifyError):
            bench.verify_secured_answer(bad, *case.client_state(), case.expected)
    # a server that answers differently in a later chunk is caught too
    case.last_answer = bad
    with pytest.raises(bench.VerifyError):
        case.sample(0.001)


def test_gurux_reference_point():
    assert bench.gurux_available() is None, "the test extra installs gurux-dlms"
    res = bench.measure(seconds=0.01, rounds=2, gurux=True, meters=3)
    g = _row(res, "gurux_get_register")
    assert g["verified"] and g["x_gurux"] == 1.0
    assert res["gurux_skipped"] is None
    for name, target in (("mep_secured_plain", bench.TARGET_SECURED), ("mep_unsecured", bench.TARGET_UNSECURED)):
        r = _row(res, name)
        assert r["target_x_gurux"] == target and r["x_gurux"] > 0 and r["meets"] in (True, False)
    assert res["memory"]["gurux_server_idle"]["bytes_per_instance"] > 0
    assert "Gurux" in bench.format_table(res)


def test_profile_secured_names_the_costs():
    p = bench.profile_secured(0.02, top=8)
    assert p["rate"] > 0 and p["requests"] > 0
    assert len(p["top"]) == 8
    assert any("digest.py" in name for name, _, _, _ in p["top"])
    assert "tottime" in p["text"]


def test_cli_bench_json(capsys, monkeypatch):
    monkeypatch.setattr(bench, "ROUNDS", 1)
    monkeypatch.setattr(bench, "METERS", 2)
    # small metering figures: one meter for 3 days, 3 meters for 2 days
    assert cli.main(["bench", "--json", "--seconds", "0.005", "--no-gurux",
                     "--year-days", "3", "--fleet-meters", "3", "--fleet-days", "2"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["gurux_skipped"] == "skipped (--no-gurux)"
    assert all(r["verified"] for r in res["throughput"])
