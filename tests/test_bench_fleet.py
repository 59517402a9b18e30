"""`osgp-meter bench fleet` (tools/bench_fleet.py): the structure of every
measurement with tiny sizes. No test here asserts a rate or a byte count."""
import json

from osgp_host import bench_fleet
from osgp_host import cli


def test_bench_fleet_structure():
    res = bench_fleet.measure(meters=6, memory_meters=8, channel_nodes=12, channel_frames=150,
                              seed=3)
    json.dumps(res)
    assert [m["metering"] for m in res["memory"]] == [False, True]
    for m in res["memory"]:
        assert m["meters"] == 8 and m["tracemalloc_bytes_per_meter"] > 0
        assert m["rss_bytes_per_meter"] >= 0 and m["build_s"] >= 0
    assert res["memory"][0]["written_tables"] <= 4
    ch = res["channel"]
    assert ch["nodes"] == 12 and ch["frames"] >= 150 and ch["frames_per_s"] > 0
    s = res["survey"]
    assert s["meters"] == 6 and s["shards"] == 1
    assert s["found"] == s["commissioned"] == s["read_ok"] == 6
    assert sum(s["hops"].values()) == 6
    assert s["virtual_s_max"] > 0 and s["wall_s"] > 0 and s["frames"] > 0
    assert "acceptance" not in res and "resident" not in res
    text = "\n".join(bench_fleet.format_lines(res))
    assert "survey: 6 meters" in text and "frames/s" in text


def test_bench_fleet_cli_and_other_modes_still_parse(capsys, monkeypatch):
    seen = {}

    def fake_measure(**kw):
        seen.update(kw)
        return {"python": "3", "machine": "x", "cpus": 1, "seed": kw["seed"],
                "channel": {"nodes": 2, "frames": 1, "frames_per_s": 1.0, "speedup": 1.0,
                            "utilisation": 0.5}}
    monkeypatch.setattr(bench_fleet, "measure", fake_measure)
    assert cli.main(["bench", "fleet", "--json", "--survey-meters", "7", "--acceptance",
                     "--processes", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["seed"] == 1
    assert seen["meters"] == 7 and seen["acceptance"] == 10_000 and seen["processes"] == 2
    assert seen["resident"] is None
    args = cli.build_parser().parse_args(["bench", "metering", "--quick"])
    assert args.mode == "metering" and args.quick
    assert cli.build_parser().parse_args(["bench"]).mode == "all"
