# The metering measurements of `osgp-meter bench` (tools/bench_metering.py),
# run tiny: structure and verification only, never a rate.
import json

from osgp_host import bench_metering as bm
from osgp_host import cli


def test_year_run_structure():
    r = bm.year_run(days=2)
    json.dumps(r)
    assert r["simulated_days"] == 2 and r["wall_s"] > 0 and r["acceleration"] > 0
    assert r["target"] == bm.TARGET_ACCELERATION and r["meets"] in (True, False)
    assert r["wakeups"] >= 2 * 96 and r["lp_blocks"] == 3 and r["forward_kwh"] > 0


def test_fleet_run_reads_and_checks_every_block():
    r = bm.fleet_run(meters=3, days=2)
    json.dumps(r)
    assert r["meters"] == 3 and r["days"] == 2 and r["read_at"] == "00:30 UTC"
    assert r["blocks_verified"] == 6 and r["verified"]
    # per meter: BT61 + ET21 once; per day: BT63 (1 read) + a 977-byte block in 84-byte reads (12)
    assert r["requests"] == 3 * 2 + 3 * 2 * (1 + 12)
    assert r["wall_s"] > 0 and r["per_meter_s"] > 0 and r["per_meter_day_ms"] > 0
    assert r["wakeups"] >= 3 * 2 * 96


def test_measure_quick_and_format():
    res = bm.measure(quick=True, year_days=1)
    assert res["fleet"] is None and res["fleet_skipped"]
    text = "\n".join(bm.format_lines(res))
    assert "x real time" in text and "fleet: skipped" in text
    res = bm.measure(meters=2, days=1, year_days=1)
    assert res["fleet"]["verified"]
    assert "blocks verified (all)" in "\n".join(bm.format_lines(res))


def test_bench_command_metering_mode(capsys):
    assert cli.main(["bench", "metering", "--year-days", "1", "--fleet-meters", "2",
                     "--fleet-days", "1", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res) == {"metering"}
    assert res["metering"]["year"]["simulated_days"] == 1 and res["metering"]["fleet"]["meters"] == 2
    assert cli.main(["bench", "metering", "--quick", "--year-days", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("metering") and "skipped (--quick)" in out
