"""Group-addressed secure broadcasts through the virtual channel
(docs/groups-and-broadcast.md): the DC puts meters into OSGP groups with
EP27 (unicast), opens their broadcast window (ET04.82/.86), then sends
requests under the broadcast key to a group (ISO/IEC 14908 group = the
high byte) or to everyone (0xFFFF, domain-wide). Members run them,
non-members never see them; a sub-group is selected by the meters in a
group-broadcast transaction (ET27 type 3); replayed and out-of-window
broadcasts are refused and counted in ET23, which the DC reads back; the
broadcast key is rotated by a broadcast (EP15)."""

import struct

from osgp_meter import clock
from osgp_meter import events
from osgp_meter import keys as K
from osgp_meter.plc_node import UNACKD_RPT
from osgp_host.dc import LocalFleet

ET04 = 2048 + 4
ET23 = 2048 + 23
ET27 = 2048 + 27
EE45 = 2048 + 45
BASE = 5000
DELTA = 1000


def fleet_with_groups():
    fleet = LocalFleet("small", seed=4, metering=False)
    dc = fleet.dc()
    plan = {"m001": 0x0501, "m002": 0x0501, "m003": 0x0502, "m004": 0x0601}
    for m in fleet.meters:
        dc.write(m, "ET04", struct.pack("<IH", BASE, DELTA), offset=82)
        if m in plan:
            g = plan[m]
            result, data = dc.call(m, "EP27", bytes((0, g & 0xFF, g >> 8)))
            assert result == 0 and data[:2] == b"\x01\x01"          # changed, 1 ID held
    return fleet, dc


def bp10(year):
    return bytes((0x03, year - 2000, 6, 15, 12, 0, 0))      # set date and time


def year_of(fleet, m):
    fw = fleet.firmware[m]
    return clock.to_civil(fw.meter.utc(fleet.channel.now_ms))[0]


def last_proc(dc, m):
    return dc.read(m, "BT08", offset=0, count=4)


def counters(dc, m):
    return struct.unpack("<5I", dc.read(m, "ET23", offset=0, count=20))


def test_group_broadcast_reaches_exactly_the_members():
    fleet, dc = fleet_with_groups()
    # the node's 14908 group table (and its saved image) follow EP27
    groups = {m: sorted(a.group for a in fleet.firmware[m].plc.addresses if a.kind == 0x80)
              for m in fleet.meters}
    assert groups == {"m001": [5], "m002": [5], "m003": [5], "m004": [6], "m005": []}

    g5 = dc.group(0x0501, fleet.bcast_key, seq=BASE)
    g5.call("BP10", bp10(2031))
    for m in fleet.meters:
        assert (year_of(fleet, m) == 2031) == (m in ("m001", "m002", "m003")), m
        assert (last_proc(dc, m) == bytes((10, 0, g5.psn, 0))) == (m in ("m001", "m002", "m003"))
    # ET04.76 is stamped by the meters that accepted it
    fw1 = fleet.firmware["m001"]
    assert fw1.meter.store.read(ET04, 76, 6) != bytes(6)
    assert fleet.firmware["m004"].meter.store.read(ET04, 76, 6) == bytes(6)

    # a sub-group: a group-broadcast transaction (ET27 type 3) to 0x0501 goes
    # to 14908 group 5; m003 (0x0502) hears it and declines it itself
    from osgp_host import transaction
    body = transaction.build([transaction.call(10, 77, bp10(2033))], 9, groups=[0x0501])
    g5.write(ET27, body, offset=0)
    years = {m: year_of(fleet, m) for m in fleet.meters}
    assert years["m001"] == years["m002"] == 2033
    assert years["m003"] == 2031 and years["m004"] != 2031 and years["m005"] != 2031

    # leaving the group (EP27 remove): m002 no longer hears group 5
    result, data = dc.call("m002", "EP27", b"\x01\x01\x05")
    assert result == 0 and data[:2] == b"\x01\x00"
    assert not [a for a in fleet.firmware["m002"].plc.addresses if a.kind == 0x80]
    g5.call("BP10", bp10(2035))
    assert [m for m in fleet.meters if year_of(fleet, m) == 2035] == ["m001", "m003"]

    # 0xFFFF: every meter, in a group or not
    everyone = dc.group(0xFFFF, fleet.bcast_key, seq=g5.seq)
    everyone.call("BP10", bp10(2037))
    assert all(year_of(fleet, m) == 2037 for m in fleet.meters)


def test_replayed_and_out_of_window_broadcasts_are_refused_and_counted():
    fleet, dc = fleet_with_groups()
    g6 = dc.group(0x06FF, fleet.bcast_key, seq=BASE)          # m004 only
    first = g6.call("BP10", bp10(2031))
    g6.call("BP10", bp10(2032))
    assert year_of(fleet, "m004") == 2032
    # the first one again: replayed (behind the last accepted number)
    dc.transaction(g6.dest, first, UNACKD_RPT, retries=1, timeout_ms=96)
    dc.idle(400)
    assert year_of(fleet, "m004") == 2032
    # beyond ET04.82 + ET04.86
    far = dc.group(0x06FF, fleet.bcast_key, seq=BASE + DELTA + 10)
    far.call("BP10", bp10(2039))
    assert year_of(fleet, "m004") == 2032
    assert counters(dc, "m004") == (2, 1, 1, 0, BASE + DELTA + 11)
    log = [(e[3], e[4]) for e in events.entries(fleet.firmware["m004"].meter) if e[3] == EE45]
    assert log == [(EE45, BASE + 1), (EE45, (BASE + DELTA + 11) & 0xFFFF)]
    # a broadcast under another key: bad digest
    wrong = dc.group(0x06FF, bytes(12), seq=BASE + 50)
    wrong.call("BP10", bp10(2040))
    assert counters(dc, "m004")[3] == 1 and year_of(fleet, "m004") == 2032
    # meters outside group 6 never saw any of it
    for m in ("m001", "m002", "m003", "m005"):
        assert counters(dc, m) == (0, 0, 0, 0, 0)


def test_broadcast_key_rotated_by_a_broadcast():
    fleet, dc = fleet_with_groups()
    old = fleet.bcast_key
    new = bytes(range(0x61, 0x6D))
    g5 = dc.group(0x05FF, old, seq=BASE)
    g5.call("EP15", K.change_params(old, K.EP15, 1, new))
    members = ("m001", "m002", "m003")
    for m in fleet.meters:
        assert (fleet.firmware[m].keys.get(0x40) == new) == (m in members), m
        assert (fleet.firmware[m].meter.nv_parts["keys"][0]().find(new) > 0) == (m in members)
    assert all(last_proc(dc, m)[3] == 0 for m in members)
    # the old key no longer works there; the new one does, its counter fresh
    stale = dc.group(0x05FF, old, seq=g5.seq)
    stale.call("BP10", bp10(2031))
    assert not any(year_of(fleet, m) == 2031 for m in members)
    fresh = dc.group(0x05FF, new, seq=g5.seq + 1)
    fresh.call("BP10", bp10(2032))
    assert all(year_of(fleet, m) == 2032 for m in members)
    for m in members:
        assert struct.unpack("<I", dc.read(m, "ET11", offset=86, count=4))[0] == 1


def test_dc_changes_a_meters_unicast_key_and_carries_on_with_it():
    fleet = LocalFleet("small", seed=4, metering=False)
    dc = fleet.dc()
    new = bytes.fromhex("a1a2a3a4a5a6a7a8a9aaabac")
    for _ in range(3):
        dc.read("m001", "BT01")
    assert struct.unpack("<I", dc.read("m001", "ET11", offset=82, count=4))[0] == 4
    assert dc.change_key("m001", "EP15", 0, new, fleet.key) == (0, bytes(12))
    fw = fleet.firmware["m001"]
    assert fw.keys.get(0x20) == new and fw.meter.nv_parts["keys"][0]().find(new) > 0
    dc.forget("m001")                                   # a fresh client takes the new key too
    assert dc.read("m001", "BT01") == fw.meter.store.get(1)
    # the counter restarted with the new key: the BT08 read, the BT01 read, this read
    assert struct.unpack("<I", dc.read("m001", "ET11", offset=82, count=4))[0] == 3
    assert dc.read("m002", "BT01") == fleet.firmware["m002"].meter.store.get(1)   # others: old key
    # a wrong wrap key: refused (5), nothing changed, the DC keeps its key
    assert dc.change_key("m002", "EP24", 1, bytes(16), bytes(16))[0] == 5
    assert fleet.firmware["m002"].keys.get(0x08) == bytes([1] * 16)
