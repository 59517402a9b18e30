"""The issue-5 must-show for pending tables: a fleet of 1,000 meters receives
one pending TOU calendar (BT54's pending copy, absolute-UTC PED) over the
virtual PLC channel; every meter activates it in the same simulated second
(BT04's last activation and the history log's event 28, both read through
the DCs), and the DCs read the new calendar back from all of them.
(tools/pending_fleet.py, docs/pending-tables.md). No timed assertions."""
import io

from osgp_meter import clock, pending
from osgp_host import pending_fleet
from osgp_host.fleet import Fleet


def test_1000_meters_activate_one_pending_calendar_in_the_same_second():
    r = pending_fleet.run(meters=1000, per_transformer=250, seed=1, metering=True)
    assert r["failures"] == []
    assert r["transformers"] == 4 and r["stage_requests"] == 1000 * 12   # 808 bytes / 69
    assert r["activated_in_time"] == 1000           # by their own clocks, before any read
    assert r["event28_meters"] == 1000
    t = clock.to_civil(r["activation_utc"])
    iso = "%04d-%02d-%02dT%02d:%02d:%02dZ" % t[0:6]
    assert r["activation_seconds"] == [iso] and r["activation_spread_s"] == 0
    assert r["bt04_last_activation"] == [iso]
    assert r["calendar_read_ok"] == 1000
    assert r["ok"]


def test_the_command_reports_and_exits_0():
    out = io.StringIO()
    assert pending_fleet.main(["--meters", "40", "--per-transformer", "20", "--metering", "off"],
                              out) == 0
    text = out.getvalue()
    assert "40 meters in 2 transformer areas" in text
    assert "event 28 in 40/40 meters" in text and "(spread 0 s)" in text
    assert "every meter activated in the same second" in text


def test_a_dc_stages_reads_back_and_activates_by_procedure_over_plc():
    fleet = Fleet({"meters": 3, "seed": 5, "metering": True, "rural": False})
    fleet.start()
    try:
        dc = fleet.dc(0)
        store = fleet.firmware("m001").meter.store
        image = pending_fleet.new_calendar(store.get(50), store.field(21, 7, 1), cal_id=77)
        ped = pending.ped_procedure(b"TARIF")
        assert pending_fleet.stage(dc, "m002", 54, ped, image) == 12
        # the pending copy reads back PED + data; offset 3, count 10 = 4 bytes
        answer = dc.request("m002", bytes.fromhex("3F 1036 000003 000A"))
        assert answer == b"\x00\x00\x0a" + ped + image[3:7]
        assert dc.read("m002", 54) != image                     # not yet
        assert dc.call("m002", "BP13", pending.ped_procedure(b"OTHER"))[0] == 1
        assert dc.call("m002", "BP13", ped)[0] == 0
        assert dc.read("m002", 54) == image
        assert fleet.firmware("m002").meter.tou.cal.cal_id == 77
        assert dc.read("m001", 54) != image                     # only m002 had it
    finally:
        fleet.stop(save=False)
