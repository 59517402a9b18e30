# tools/plot.py: the data read from a meter's tables and the PNG (no pixel
# assertions: it is a PNG, and it is not empty).
import importlib.util
import os
import sys

import pytest

from osgp_host import cli
from osgp_host import plot as plots
from osgp_host.simulate import Simulation

START = "2026-03-01T00:00:00Z"
T0 = 1_772_323_200
PNG = b"\x89PNG\r\n\x1a\n"


def _need_matplotlib():
    assert importlib.util.find_spec("matplotlib"), "the test extra installs matplotlib (osgp-meter[test])"


def _sim():
    sim = Simulation(start=START, seed=2, scenario=[
        {"after": "10h", "outage": "1h"},
        {"after": "1d2h", "clock": "+1h"},
        {"after": "1d5h", "inject": "cover"},
    ])
    return sim.run_for("2d")


def test_data_of_a_run_and_of_the_tables():
    sim = _sim()
    run = sim.plot_data("t")
    lp = run["lp"][0]
    assert lp["set"] == 0 and lp["interval_s"] == 900
    assert lp["channels"] == [("forward active", "Wh"), ("reverse active", "Wh")]
    assert 170 < len(lp["intervals"]) < 192
    assert any(e[1] & plots.COMMON_POWER_FAIL for e in lp["intervals"])
    assert any(e[1] & plots.COMMON_CLOCK_FWD for e in lp["intervals"])
    ends = [e[0] for e in lp["intervals"]]
    assert ends == sorted(ends) and all(e % 900 == 0 for e in ends)
    reg = run["registers"]
    assert len(reg["time"]) == 49 and reg["fwd"] == sorted(reg["fwd"]) and reg["fwd"][-1] > 0
    assert len(reg["tiers_fwd"]) == 4
    assert reg["fwd"][-1] == sum(t[-1] for t in reg["tiers_fwd"])
    assert ("Tamper Attempt Detected" in [e[2] for e in run["events"]])
    # what the meter itself holds: the same intervals (the run is shorter than its 4 blocks)
    held = plots.collect(sim.read, sim.utc)
    assert held["lp"][0]["intervals"] == lp["intervals"]
    assert held["registers"]["fwd"][-1] == reg["fwd"][-1]
    assert len(held["registers"]["time"]) == 3                 # 2 daily self-reads + now


def test_plot_writes_a_png(tmp_path):
    _need_matplotlib()
    sim = _sim()
    out = str(tmp_path / "run.png")
    assert sim.plot(out, "a test run") == out
    with open(out, "rb") as f:
        head = f.read(8)
    assert head == PNG and os.path.getsize(out) > 10_000
    # an empty meter still draws
    empty = str(tmp_path / "empty.png")
    plots.plot({"lp": [], "registers": {"time": []}, "events": []}, empty)
    assert open(empty, "rb").read(8) == PNG


def test_cli_plot_and_simulate_plot(tmp_path, capsys):
    _need_matplotlib()
    d = str(tmp_path / "st")
    png = str(tmp_path / "sim.png")
    assert cli.main(["simulate", "--start", START, "--days", "1", "--state", d, "--plot", png]) == 0
    assert "plot written to" in capsys.readouterr().out
    assert open(png, "rb").read(8) == PNG
    png2 = str(tmp_path / "state.png")
    assert cli.main(["plot", "--state", d, "-o", png2]) == 0
    assert "96 LP intervals" in capsys.readouterr().out
    assert open(png2, "rb").read(8) == PNG and os.path.getsize(png2) > 0
    assert cli.main(["plot", "--state", str(tmp_path / "nothing"), "-o", png2]) == 2
    assert "no saved meter" in capsys.readouterr().err


def test_without_matplotlib_one_clear_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.dates", None)
    with pytest.raises(plots.PlotUnavailable, match=r"pip install 'osgp-meter\[plot\]'"):
        plots.plot({"lp": [], "registers": {"time": []}, "events": []}, str(tmp_path / "x.png"))
    assert cli.main(["simulate", "--start", START, "--days", "1", "--plot", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "matplotlib is not installed" in err[0] and "osgp-meter[plot]" in err[0]
    assert cli.main(["plot", "--state", str(tmp_path), "-o", str(tmp_path / "x.png")]) == 2
    assert "osgp-meter[plot]" in capsys.readouterr().err
    assert not os.path.exists(str(tmp_path / "x.png"))
