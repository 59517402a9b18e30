# `osgp-meter simulate` and its Python API (tools/simulate.py) and the
# scenario format (tools/scenario.py); docs/simulate.md.
import datetime
import json
import os
import textwrap

import pytest

from osgp_meter import events
from osgp_host import cli
from osgp_host import plot as plots
from osgp_host import scenario as scen
from osgp_host import state as states
from osgp_host.simulate import Simulation, SimulationError, format_summary

START = "2026-03-01T00:00:00Z"
T0 = 1_772_323_200               # 2026-03-01T00:00:00Z
DAY = 86400


def one(entry):
    return scen.parse_entry(entry, "t")


# ---------------------------------------------------------------------------
# the parser: every action
# ---------------------------------------------------------------------------

def test_times_and_durations():
    assert scen.parse_time("2026-03-01T00:00:00Z") == T0
    assert scen.parse_time("2026-03-01T01:00:00+01:00") == T0
    assert scen.parse_time("2026-03-01 00:00") == T0
    assert scen.parse_time("2026-03-01") == T0
    assert scen.parse_time(datetime.datetime(2026, 3, 1)) == T0          # TOML datetime, naive = UTC
    assert scen.parse_time(datetime.datetime(2026, 3, 1, tzinfo=datetime.timezone.utc)) == T0
    assert scen.parse_time(datetime.date(2026, 3, 1)) == T0
    assert scen.parse_time(T0) == T0
    assert scen.parse_duration("3d2h") == 3 * DAY + 7200
    assert scen.parse_duration("1h30m15s") == 5415
    assert scen.parse_duration("2w") == 14 * DAY
    assert scen.parse_duration("3600") == scen.parse_duration(3600) == 3600
    assert scen.parse_duration("-1h", signed=True) == -3600
    assert scen.parse_duration("+90m", signed=True) == 5400
    assert scen.format_duration(3 * DAY + 7200) == "3d2h"
    assert scen.format_time(T0) == "2026-03-01 00:00:00"


def test_every_action_parses():
    a = one({"power": "off"})
    assert (a.kind, a.args, a.when) == ("power", {"on": False}, ("start", 0))
    assert one({"power": True}).args == {"on": True}
    assert one({"power": "on", "time": "2026-03-10T02:00:00Z"}).when == ("time", T0 + 9 * DAY + 7200)
    a = one({"outage": "2h30m", "after": "1d"})
    assert a.kind == "outage" and a.args == {"seconds": 9000} and a.when == ("after", DAY)
    assert one({"inject": "cover"}).args == {"kind": "cover", "params": {"on": True}}
    assert one({"inject": "magnetic", "on": False}).args["params"] == {"on": False}
    assert one({"inject": "load", "watts": 9000}).args["params"] == {"watts": 9000}
    assert one({"inject": "load", "watts": 10, "milliamps": [1, 2, 3]}).args["params"]["milliamps"] == (1, 2, 3)
    assert one({"inject": "voltage", "volts": [230, 0, 231.5]}).args["params"] == {"volts": (230, 0, 231.5)}
    assert one({"inject": "thd", "value": 80}).args["params"] == {"value": 80}
    assert one({"inject": "button"}).args["params"] == {}
    for k in ("battery", "terminal_cover", "neutral"):
        assert one({"inject": k}).args["params"] == {"on": True}
    a = one({"procedure": "EP01", "params": "00", "key": "plc", "expect": 0})
    assert a.args["number"] == 2049 and a.args["params"] == b"\x00" and a.args["key"] == "plc"
    assert a.args["expect"] == 0
    a = one({"procedure": "Remote Disconnect/Reconnect", "values": {"action": 1}})
    assert a.args["number"] == 2049 and a.args["params"] == b"\x01" and a.args["key"] == "mak"
    assert one({"procedure": "EP16", "values": {"delta": -60}}).args["params"] == (-60).to_bytes(4, "little", signed=True)
    a = one({"write": "BT53", "data": "00 3c", "offset": 4})
    assert a.args["table"] == 53 and a.args["data"] == b"\x00\x3c" and a.args["offset"] == 4
    assert one({"write": "ET30", "data": "01"}).args["table"] == 2048 + 30
    a = one({"read": "BT23", "offset": 1, "count": 4, "key": "rk"})
    assert (a.args["table"], a.args["offset"], a.args["count"], a.args["key"]) == (23, 1, 4, "rk")
    assert one({"clock": "+3600"}).args["delta"] == 3600
    assert one({"clock": "-1h"}).args["delta"] == -3600
    assert one({"clock": 60}).args["delta"] == 60
    a = one({"clock": "2026-03-10T05:00:00Z"})
    assert a.args["set"] == T0 + 9 * DAY + 5 * 3600 and a.args["delta"] is None
    a = one({"read": "BT03", "every": "6h", "times": 3, "label": "poll", "after_previous": "1h"})
    assert (a.every, a.times, a.label, a.when) == (21600, 3, "poll", ("after_previous", 3600))
    assert a.describe() == "poll"
    for a in (one({"power": "off"}), one({"inject": "load", "watts": 5}), one({"clock": "+1"}),
              one({"write": "BT53", "data": "00"}), one({"read": "BT23"}), one({"outage": "1h"}),
              one({"procedure": "EP03"}), one({"clock": "2026-03-10"})):
        assert a.describe()


@pytest.mark.parametrize("entry, message", [
    ({"foo": 1}, "unknown action 'foo'"),
    ({"time": "2026-03-01T00:00:00Z"}, "no action"),
    ({"power": "off", "inject": "cover"}, "one action per entry"),
    ({"power": "off", "time": "2026-13-01T00:00:00Z"}, "not a valid date/time"),
    ({"power": "off", "time": "yesterday"}, "not a date/time"),
    ({"power": "off", "after": "3x"}, "not a duration"),
    ({"power": "off", "after": "-1h"}, "cannot be negative"),
    ({"power": "off", "time": "2026-03-01", "after": "1h"}, "one of time / after / after_previous"),
    ({"power": "maybe"}, "expected true/false"),
    ({"outage": "0s"}, "at least 1 s"),
    ({"inject": "smoke"}, "inject 'smoke'"),
    ({"inject": "cover", "watts": 3}, "key 'watts' does not go with inject"),
    ({"inject": "load"}, "needs watts"),
    ({"inject": "voltage"}, "needs volts"),
    ({"inject": "thd"}, "needs value"),
    ({"procedure": "EP99"}, "unknown procedure 'EP99'"),
    ({"procedure": "EP01", "params": "zz"}, "not hex"),
    ({"procedure": "EP01", "params": "00", "values": {"action": 0}}, "not both"),
    ({"procedure": "EP01", "values": {"bogus": 1}}, "unknown field"),
    ({"procedure": "EP01", "key": "admin"}, "key 'admin'"),
    ({"write": "BT999", "data": "00"}, "unknown table 'BT999'"),
    ({"write": "BT53"}, "needs data"),
    ({"write": "BT53", "data": ""}, "nothing to write"),
    ({"read": "No Such Table At All"}, "unknown table"),
    ({"read": "BT23", "on": True}, "key 'on' does not go with read"),
    ({"clock": "soon"}, "signed delta"),
    ({"power": "off", "expect": 0}, "key 'expect' does not go with power"),
    ({"power": "off", "times": 2}, "times needs every"),
    ({"power": "off", "every": "0s"}, "at least 1 s"),
    ("power off", "expected a table"),
])
def test_bad_entries_name_the_problem(entry, message):
    with pytest.raises(scen.ScenarioError) as ei:
        scen.parse_entry(entry, "file.toml: [[at]] #3")
    assert message in str(ei.value)
    assert str(ei.value).startswith("file.toml: [[at]] #3")


def test_scenario_file_and_resolve(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text(textwrap.dedent("""
        [simulation]
        start = 2026-03-01T00:00:00Z     # a TOML datetime
        days = 2
        seed = 7

        [[at]]
        after = "1d"
        power = "off"

        [[at]]
        after_previous = "2h"
        power = "on"

        [[at]]
        time = "2026-03-01T12:00:00Z"
        inject = "cover"
    """))
    settings, actions = scen.load(str(p))
    assert settings == {"start": T0, "days": 2, "seed": 7}
    assert [t for t, a in scen.resolve(actions, T0)] == [T0 + DAY, T0 + DAY + 7200, T0 + 43200]
    p.write_text('[[at]]\npower = "off"\n[[scenario]]\npower = "on"\n')
    with pytest.raises(scen.ScenarioError, match="not both"):
        scen.load(str(p))
    p.write_text('[run]\ndays = 1\n')
    with pytest.raises(scen.ScenarioError, match="unknown section 'run'"):
        scen.load(str(p))
    p.write_text('[simulation]\nweeks = 1\n')
    with pytest.raises(scen.ScenarioError, match="weeks: unknown key"):
        scen.load(str(p))
    p.write_text('[[at]]\npower = "off"\npower = "on"\n')
    with pytest.raises(scen.ScenarioError, match="s.toml"):
        scen.load(str(p))


def test_example_scenarios_parse():
    folder = os.path.join(os.path.dirname(scen.__file__), "scenarios")
    files = sorted(f for f in os.listdir(folder) if f.endswith(".toml"))
    assert files
    for f in files:
        settings, actions = scen.load(os.path.join(folder, f))
        assert actions, f


# ---------------------------------------------------------------------------
# simulations
# ---------------------------------------------------------------------------

def _events(sim):
    return [e[3] for e in sim.recorder.events]


def test_two_days_with_an_outage_and_a_tamper():
    sim = Simulation(start=START, seed=3)
    sim.at("2026-03-01T10:07:00Z", power="off")
    sim.at("2026-03-01T12:00:00Z", power="on")
    sim.at("2026-03-02T08:00:00Z", inject="cover", on=True)
    sim.at("2026-03-02T08:30:00Z", inject="magnetic")
    sim.run_until("2026-03-03T00:00:00Z")
    evs = sim.recorder.events
    ev = [e[3] for e in evs]
    assert 1 in ev and 2 in ev                      # power down / up
    assert 47 in ev and 2048 + 24 in ev             # tamper, magnetic tamper (EE24)
    down = next(e for e in evs if e[3] == 1)
    up = next(e for e in evs if e[3] == 2)
    assert down[0] == T0 + 10 * 3600 + 7 * 60 and up[0] == T0 + 12 * 3600
    assert all(e[2] == 0xFFFF for e in evs if e[3] in (1, 2, 47))     # the meter's own doing
    st = sim.read("BT03")
    assert st[2] & 0x10 and st[2] & 0x08            # std bit 12 cover, std bit 11 power failure (latched)
    s = sim.summary()
    assert s["events"]["logged"] == len(evs) >= 4
    assert s["events"]["by_event"]["Tamper Attempt Detected (47)"] == 1
    lp = s["load_profile"][0]
    assert lp["set"] == 1 and lp["power_fail"] >= 1
    # 2 days of 15-min intervals, less the ones without power (10:15 .. 12:00)
    assert 2 * 96 - 9 <= lp["intervals"] <= 2 * 96 - 6
    assert s["energy_wh"]["forward"] > 0
    assert s["energy_wh"]["forward"] == sum(t["forward"] for t in s["energy_wh"]["tiers"])
    assert s["demands"][0]["name"] == "forward active" and s["demands"][0]["value"] > 0
    assert s["log"][0]["action"] == "power off" and s["wakeups"] > 0
    text = "\n".join(format_summary(s))
    assert "energy (BT23)" in text and "events logged" in text and "power off" in text
    hist = "\n".join(sim.history())
    assert "Primary Power Down (1)" in hist and "Tamper Attempt Detected (47)" in hist
    # no intervals while unpowered: the LP has a hole with the power-fail flag around it
    ints = sim.recorder.lp_sets()[0]["intervals"]
    ends = [e[0] for e in ints]
    assert T0 + 11 * 3600 not in ends
    assert any(e[1] & plots.COMMON_POWER_FAIL for e in ints)


def test_scenario_actions_through_the_meters_request_path():
    sim = Simulation(start=START, record=False, scenario=[
        {"after": "1h", "procedure": "EP01", "params": "00", "expect": 0},       # disconnect
        {"after": "2h", "procedure": "EP01", "values": {"action": 1}},           # reconnect
        {"after": "3h", "procedure": "EP01", "params": "00", "key": "rk"},       # RK may not
        {"after": "4h", "clock": "+3600", "expect": 0},
        {"after": "5h", "write": "BT53", "data": "00", "offset": 0, "expect": 0},
        {"after": "6h", "read": "BT52", "key": "plc"},
        {"after": "7h", "read": "BT64", "key": "plc", "count": 200},            # 3 PLC reads
    ])
    sim.run_for("8h")
    out = {e[2]: e[3] for e in sim.log}
    assert [e[3] for e in sim.log][:2] == ["result 0 (completed)"] * 2
    assert sim.log[2][3] == "result 5 (no authorization)"            # RK may not call EP01
    assert sim.meter.clock_offset == 3600 * 1000
    ev = [e[3] for e in events.entries(sim.meter)]
    assert 3 in ev and 4 in ev and 49 in ev and 2050 in ev
    assert out["write BT53 @0 1 bytes (MAK)"] == "ok"
    utc, label, off, code, data = sim.reads[0]
    assert label == "BT52" and code == 0 and len(data) == 7
    assert utc == T0 + 6 * 3600 + 3600                                   # the meter's clock, 1 h ahead
    assert len(sim.reads[1][4]) == 200


def test_expect_mismatch_stops_the_run():
    sim = Simulation(start=START, record=False)
    sim.after("1h", procedure="EP01", params="05", expect=0)
    with pytest.raises(SimulationError, match=r"answered result 2 \(invalid parameter\), expected 0"):
        sim.run_for("2h")
    assert sim.now == (T0 + 3600) * 1000


def test_api_at_after_do_every_and_errors():
    sim = Simulation(start=START, record=False)
    sim.at(T0 + 3600, read="BT03", every="1h", times=3)
    sim.after("30m", outage="10m")
    assert [t for t, a in sim.pending()] == [(T0 + 1800) * 1000, (T0 + 3600) * 1000]
    sim.run_for("1d")
    assert len(sim.reads) == 3 and [r[0] for r in sim.reads] == [T0 + 3600, T0 + 7200, T0 + 10800]
    assert [e[2] for e in sim.log[:2]] == ["outage 10m", "power on (end of 10m outage)"]
    assert sim.do(power="off") == "ok" and not sim.meter.powered
    sim.do(power="on")
    with pytest.raises(SimulationError, match="before the simulation's current time"):
        sim.at(START, power="off")
    with pytest.raises(SimulationError, match="first argument"):
        sim.at(T0 + 2 * DAY, power="off", after="1h")
    with pytest.raises(scen.ScenarioError, match="unknown action"):
        sim.after("1h", explode=True)
    with pytest.raises(SimulationError, match="before the current time"):
        sim.run_until(START)
    # the meter's C12 path as an API
    assert sim.call("EP03") == (0, b"")
    assert sim.write("BT53", b"\x00", 0) == 0
    assert sim.write("BT03", b"\x00") == 5                               # read-only table
    assert len(sim.read("BT01")) == 24
    with pytest.raises(SimulationError, match="unknown table"):
        sim.read("BT999")
    with pytest.raises(SimulationError, match="insufficient security clearance"):
        sim.read("BT23", key="bcast")
    fields = {f["name"]: f["value"] for f in sim.registers()}
    assert fields["data.total.summations[0]"] > 0


def test_every_repeats_until_the_end_of_the_run():
    sim = Simulation(start=START, record=False, scenario=[{"read": "BT03", "every": "6h"}])
    sim.run_for("1d")
    assert len(sim.reads) == 5                      # 00, 06, 12, 18, 24 h
    sim.run_for("12h")
    assert len(sim.reads) == 7


def test_clock_set_absolute_and_back():
    sim = Simulation(start=START, record=True)
    sim.at(T0 + 7200, clock="2026-03-01T01:00:00Z")       # an hour back, through BP10
    sim.run_for("6h")
    assert sim.meter.clock_offset == -3600 * 1000
    ints = sim.recorder.lp_sets()[0]["intervals"]
    assert any(e[1] & plots.COMMON_CLOCK_BACK for e in ints)


def test_metering_off_cannot_take_inputs(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text("[metering]\nenabled = false\n")
    sim = Simulation(profile_path=str(p), start=START, record=False)
    with pytest.raises(SimulationError, match="metering is off"):
        sim.do(inject="cover")
    sim.do(power="off")                              # outages need no supply subsystem


def test_profile_carries_a_scenario(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text(textwrap.dedent("""
        [clock]
        start = "2026-03-01T00:00:00Z"

        [[scenario]]
        after = "2h"
        inject = "cover"
    """))
    sim = Simulation(profile_path=str(p))
    assert sim.start == T0 * 1000
    assert [a.kind for t, a in sim.pending()] == ["inject"]
    sim.run_for("3h")
    assert 47 in _events(sim)
    assert Simulation(profile_path=str(p), scenario=False).pending() == []


def test_seed_changes_the_household():
    a = Simulation(start=START, seed=1, record=False).run_for("1d").summary()
    b = Simulation(start=START, seed=2, record=False).run_for("1d").summary()
    c = Simulation(start=START, seed=1, record=False).run_for("1d").summary()
    assert a["energy_wh"] == c["energy_wh"] != b["energy_wh"]


# ---------------------------------------------------------------------------
# --state
# ---------------------------------------------------------------------------

def test_state_round_trip(tmp_path):
    d = str(tmp_path / "st")
    sim = Simulation(start=START, scenario=[{"after": "1d", "inject": "cover"}])
    sim.run_for("2d")
    sim.save(d)
    assert os.path.exists(os.path.join(d, states.STATE_FILE))
    regs = sim.read("BT23")
    lp = sim.read("BT64")
    hist = sim.history()

    again = Simulation(state_dir=d)
    assert again.continued and again.now == sim.now and again.utc == sim.utc
    assert again.read("BT23") == regs and again.read("BT64") == lp and again.history() == hist
    again.run_for("1d")
    s = again.summary()
    assert s["load_profile"][0]["intervals"] == 96                    # this run's day only ...
    assert len(again.plot_data()["lp"][0]["intervals"]) == 3 * 96     # ... the plot has the history
    assert s["events"]["logged"] == sum(s["events"]["by_event"].values())
    assert "Tamper Attempt Detected (47)" not in s["events"]["by_event"]
    h = plots.lp_status(again.raw_read, 0)
    assert h[3] == plots.lp_status(sim.raw_read, 0)[3] + 1              # one more block, in sequence
    assert plots.register_values(again.read("BT23"), plots.register_map(again.raw_read))[0] > \
        plots.register_values(regs, plots.register_map(sim.raw_read))[0]

    # what `osgp-meter serve --state DIR` loads: the same tables
    from osgp_host import serve
    fw, _ = serve.build(None, d)
    store = fw.meter.store
    assert bytes(store.read(23, 0, len(regs))) == regs
    # serve catches up to the wall clock at once: the block in progress goes
    # on filling, the blocks closed before the save are untouched
    last = int.from_bytes(sim.read("BT63")[3:5], "little")
    block = int.from_bytes(sim.read("ET21")[8:12], "little")
    assert last > 0 and bytes(store.read(64, 0, last * block)) == lp[:last * block]
    assert bytes(store.read(74, 0, 11)) == bytes(sim.raw_read(74, 0, 11))


def test_cli_simulate(tmp_path, capsys):
    sc = tmp_path / "s.toml"
    sc.write_text(textwrap.dedent("""
        [[at]]
        after = "6h"
        outage = "1h"

        [[at]]
        after = "20h"
        inject = "cover"
    """))
    d = str(tmp_path / "st")
    rc = cli.main(["simulate", "--start", START, "--days", "1", "--scenario", str(sc), "--log",
                   "--registers", "--state", d, "--seed", "5"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "outage 1h" in out and "energy (BT23)" in out and "BT74 History Log" in out
    assert "data.total.summations[0]" in out and "state saved to" in out
    assert "Tamper Attempt Detected (47)" in out
    # continue from the state: starts where it stopped
    rc = cli.main(["simulate", "--days", "1", "--state", d, "--json"])
    s = json.loads(capsys.readouterr().out)
    assert rc == 0 and s["start"] == "2026-03-02 00:00:00" and s["end"] == "2026-03-03 00:00:00"
    assert s["seed"] == 1                              # the profile's: the seed is not in the state
    # errors are one line
    sc.write_text('[[at]]\nprocedure = "EP99"\n')
    assert cli.main(["simulate", "--start", START, "--scenario", str(sc)]) == 2
    assert "unknown procedure 'EP99'" in capsys.readouterr().err
    sc.write_text('[[at]]\nafter = "1h"\nprocedure = "EP01"\nparams = "07"\nexpect = 0\n')
    assert cli.main(["simulate", "--start", START, "--days", "0.1", "--scenario", str(sc)]) == 1
    assert "expected 0" in capsys.readouterr().err
    assert cli.main(["simulate", "--until", "2026-03-02T00:00:00Z"]) == 2
    assert "--until needs --start" in capsys.readouterr().err
