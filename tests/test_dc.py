"""The data concentrator (tools/dc.py, tools/plc_client.py) on a small
virtual channel: three Firmware meters commissioned directly
(fw.plc.commission), reads (whole tables split into 84-byte pieces, partial),
writes (split into 75-byte pieces), procedures, RC4, Neuron-ID addressing,
the 0x0C re-sync, a wrong key, retries under injected loss with the meter's
identical-retry cache, a dead meter's clear timeout, progress over many
meters, and the `osgp-meter dc --local` command."""

import pytest

from osgp_meter.firmware import Firmware
from osgp_meter.plc_node import AddressBook
from osgp_host import profile as profiles
from osgp_host.channel import Channel
from osgp_host.topology import Topology
from osgp_host.dc import DC, LocalFleet, MeterNode, Target, parse_meter, parse_meters, timer_index
from osgp_host.plc_client import (PlcError, PlcTimeout, PlcAuthError, PlcSequenceError,
                                  PlcSecurity, read_request)

DOMAIN = b"\x42"
KEY = bytes(range(1, 13))                  # the default profile's plc_unicast key
ET04 = 2048 + 4
NIDS = {"m1": bytes.fromhex("00 0A 00 00 00 01"), "m2": bytes.fromhex("00 0A 00 00 00 02"),
        "m3": bytes.fromhex("00 0A 00 00 00 03")}
ADDR = {"m1": (1, 5), "m2": (1, 6), "m3": (2, 7)}


def small_channel(seed=1, metering=False, seq=None):
    """dc + m1..m3, 40 dB apart (30 dB SNR: no noise losses); each meter a
    Firmware with its PLC node, commissioned directly."""
    topo = Topology.matrix(["dc", "m1", "m2", "m3"],
                           {(a, b): 40 for a in ("dc", "m1", "m2", "m3")
                            for b in ("dc", "m1", "m2", "m3") if a < b})
    ch = Channel(topo, seed)
    cfg = dict(profiles.load_config(), metering=metering, clock=ch.now_ms // 1000)
    book = AddressBook()
    fws = {}
    for mid in ("m1", "m2", "m3"):
        fw = Firmware(dict(cfg, plc=True, neuron_id=NIDS[mid]), ch.now_ms)
        if seq is not None:
            fw.meter.store.set_field(ET04, 0, 4, seq)
        fw.plc.commission(DOMAIN, *ADDR[mid])
        ch.attach(mid, MeterNode(fw, ch.now_ms))
        book.add(mid, fw.plc)
        fws[mid] = fw
    ch.address_filter = book.filter
    return ch, fws


def table(fw, tid, offset=0, n=None):
    st = fw.meter.store
    return st.read(tid, offset, st.size(tid) - offset if n is None else n)


def test_read_write_call_on_three_meters():
    ch, fws = small_channel()
    dc = DC(ch, "dc", names=ADDR)
    for mid, fw in fws.items():
        assert dc.read(mid, "BT01") == table(fw, 1)
    # a whole table larger than 84 bytes: 84 + 55, checked against the store
    # (ET04.0, the PLC sequence number, moves with every request)
    c = dc.client("m2")
    n0 = c.requests
    et04 = dc.read("m2", "ET04")
    assert len(et04) == 139 and et04[4:] == table(fws["m2"], ET04)[4:]
    assert c.requests - n0 == 2
    # partial read
    assert dc.read((2, 7), ET04, offset=4, count=6) == NIDS["m3"]
    # a full write larger than 75 bytes goes in two partial writes
    data = bytes(range(80))
    n0 = c.requests
    dc.write("m2", "BT06", data)
    assert c.requests - n0 == 2
    assert table(fws["m2"], 6) == data
    assert dc.read("m2", "BT06") == data
    # a small write: one full write
    dc.write("1/5", "BT06", b"\x11\x22", offset=3)
    assert table(fws["m1"], 6, 3, 2) == b"\x11\x22"
    # a procedure: BP10 set date/time (mask, then the time)
    params = bytes.fromhex("03 1a 0b 1a 0c 22 38")       # 2026-11-26 12:34:56
    result, resp = dc.call("m3", "BP10", params)
    assert result == 0
    bt52 = dc.read("m3", "BT52")
    assert bt52[:6] == bytes((26, 11, 26, 12, 34, 56))
    # the PSN steps; a second call works (two consecutive PSNs must differ)
    assert dc.call("m3", 10, params)[0] == 0
    assert dc.stats["timeouts"] == 0 and dc.stats["retries"] == 0


def test_whole_table_of_variable_size_uses_the_meters_dimensions():
    fleet = LocalFleet("small", metering=True)
    dc = fleet.dc()
    fw = fleet.firmware["m002"]
    c = dc.client("m002")
    data = dc.read("m002", "BT23")
    # the size comes from BT21 read from the meter (one read), then 5 pieces
    assert len(data) == fw.meter.store.size(23) and c.requests == 6
    again = dc.read("m002", "BT23")
    assert len(again) == len(data) and c.requests == 11     # dimensions cached


def test_rc4_and_neuron_id_addressing():
    ch, fws = small_channel()
    dc = DC(ch, "dc", encrypt=True)
    assert dc.read(NIDS["m1"], "BT01") == table(fws["m1"], 1)
    assert dc.read("nid:" + NIDS["m2"].hex(), "ET04", offset=4, count=6) == NIDS["m2"]
    assert fws["m1"].plc.osgp._hint          # the meter verified an RC4 request
    dc.write((2, 7), "BT06", b"\x5a" * 3, offset=0)
    assert table(fws["m3"], 6, 0, 3) == b"\x5a" * 3


def test_sequence_resync_and_a_wrong_key():
    ch, fws = small_channel(seq=1000)
    dc = DC(ch, "dc", names=ADDR)
    assert dc.read("m1", "BT01") == table(fws["m1"], 1)
    c = dc.client("m1")
    assert c.resyncs == 1 and c.requests == 2 and c.security.seq == 1001
    assert fws["m1"].meter.store.field(ET04, 0, 4) == 1001
    dc.read("m1", "BT01")
    assert c.resyncs == 1 and c.security.seq == 1002
    # the wrong key for m2: the meter answers 0x0B (plain, zero digest)
    dc.forget("m2")
    dc.keys = {"m2": bytes(12)}
    with pytest.raises(PlcAuthError) as e:
        dc.read("m2", "BT01")
    assert e.value.code == 0x0B and "m2" in str(e.value)
    # the client numbers requests from the given start
    r = PlcSecurity(KEY, seq=5).build(read_request(1))
    assert r.seq == 6 and r.apdu[:7] == bytes.fromhex("30 00 01 00 00 00 06")


def test_retries_under_loss_succeed_and_the_meter_runs_once():
    ch, fws = small_channel(seed=3)
    dc = DC(ch, "dc", names=ADDR)
    dc.read("m1", "BT01")                 # sequence number known, channel warm
    # every frame from m1 is dropped for the next 5 virtual seconds: the
    # first transaction (4 tries, 768 ms apart) fails, the DC re-sends the
    # same OSGP bytes in a new one and the meter answers from its cache
    now = ch.sim.now // 1000
    ch.drop(1.0, nodes=["m1"], direction="from", at_ms=now, until_ms=now + 5000)
    osgp = fws["m1"].plc.osgp
    accepted = osgp.stats[0]
    before = fws["m1"].meter.store.field(ET04, 0, 4)
    dc.write("m1", "BT06", b"\x42", offset=0)
    assert table(fws["m1"], 6, 0, 1) == b"\x42"
    assert dc.stats["retries"] >= 1 and dc.stats["timeouts"] == 0
    assert osgp.stats[0] == accepted + 1               # executed once
    assert fws["m1"].meter.store.field(ET04, 0, 4) == before + 1
    # random loss on every frame: reads keep succeeding
    ch.drop(0.3)
    for k in range(10):
        for mid, fw in fws.items():
            assert dc.read(mid, "BT01") == table(fw, 1)
    assert dc.stats["timeouts"] == 0
    assert ch.loss_reasons.get("fault_drop", 0) > 0


def test_a_dead_meter_times_out_with_a_clear_error():
    ch, fws = small_channel()
    dc = DC(ch, "dc", names=ADDR, retries=1, tx_retries=2, timeout_ms=500)
    assert timer_index(500) == 10 and dc.tx_timer == 10      # 512 ms
    t0 = dc.now_ms
    with pytest.raises(PlcTimeout) as e:
        dc.read("1/9", "BT01")            # nobody at 1/9
    msg = str(e.value)
    assert "1/9" in msg and "no answer" in msg and e.value.code == -1
    # 2 transactions x 3 tries x 512 ms
    assert 2 * 3 * 512 <= dc.now_ms - t0 < 2 * 3 * 512 + 1000
    assert dc.stats["timeouts"] == 1 and dc.stats["retries"] == 1
    # a real meter taken off the line
    ch.take_offline(["m2"], at_ms=ch.sim.now // 1000)
    with pytest.raises(PlcTimeout) as e:
        dc.read("m2", "BT01")
    assert "m2 (1/6)" in str(e.value)
    # the others still answer; for_each reports each outcome and progress
    seen = []
    out = dc.for_each(["m1", "m2", "m3"], lambda t: dc.read(t, "BT01"),
                      progress=lambda done, total, t, r: seen.append((done, total, str(t), type(r).__name__)))
    assert [type(r).__name__ for _, r in out] == ["bytes", "PlcTimeout", "bytes"]
    assert seen == [(1, 3, "m1 (1/5)", "bytes"), (2, 3, "m2 (1/6)", "PlcTimeout"),
                    (3, 3, "m3 (2/7)", "bytes")]


def test_error_codes_become_exceptions():
    ch, fws = small_channel()
    dc = DC(ch, "dc", names=ADDR)
    with pytest.raises(PlcError) as e:
        dc.read("m1", 1999)               # no such table
    assert e.value.code not in (0, -1, 0x0B, 0x0C)
    with pytest.raises(PlcError) as e:
        dc.write("m1", "BT01", b"\x00")   # read-only
    assert e.value.code != 0
    # a partial read above the PLC limit is split by the client, never sent
    got = dc.read("m1", ET04, offset=0, count=139)
    assert got[4:] == table(fws["m1"], ET04)[4:]
    with pytest.raises(PlcSequenceError):
        raise PlcSequenceError(5)


def test_addresses_and_meter_lists():
    names = {"m001": (1, 1), "m002": (1, 2), "m010": (1, 10)}
    assert parse_meter("1/5") == Target(1, 5)
    assert parse_meter((1, 5)).address() == "1/5"
    assert parse_meter("m002", names) == Target(1, 2)
    assert str(parse_meter("m002", names)) == "m002 (1/2)"
    assert parse_meter("nid:0001020304ff").neuron_id == bytes.fromhex("0001020304ff")
    assert [t.address() for t in parse_meters("1/1-3,2/9")] == ["1/1", "1/2", "1/3", "2/9"]
    assert [t.address() for t in parse_meters("m001-m002", names)] == ["1/1", "1/2"]
    assert len(parse_meters("all", names, list(names))) == 3
    for bad in ("1/200", "x", "0/1"):
        with pytest.raises(ValueError):
            parse_meter(bad)


def test_cli_local_read_status_and_call(capsys):
    from osgp_host import cli
    assert cli.main(["dc", "--local", "--quiet", "read", "m001", "BT01"]) == 0
    out = capsys.readouterr().out
    assert "m001 (1/1) BT01" in out and "45 4d 55 4c" in out
    assert cli.main(["dc", "--local", "read", "all", "BT01", "--offset", "0", "--count", "4"]) == 0
    cap = capsys.readouterr()
    assert cap.out.count("45 4d 55 4c") == 5
    assert "read 5/5 meters: 5 ok, 0 failed" in cap.err
    assert cli.main(["dc", "--local", "status"]) == 0
    assert capsys.readouterr().out.count("answered in") == 5
    assert cli.main(["dc", "--local", "--retries", "0", "--tx-retries", "0", "read",
                     "m001,1/99", "BT01"]) == 1
    cap = capsys.readouterr()
    assert "1/99: error: 1/99: no answer from the meter" in cap.out
    assert cli.main(["dc", "--local", "call", "m002", "BP10", "031a0b1a0c2238"]) == 0
    assert "result 0 (completed)" in capsys.readouterr().out
    assert cli.main(["dc", "--local", "write", "m003", "BT06", "0102", "--offset", "1"]) == 0
    assert "BT06 written, 2 bytes at offset 1" in capsys.readouterr().out


def test_generic_transactions_and_idle_time():
    from osgp_meter import lontalk as L
    from osgp_meter import lontalk_nm as N
    from osgp_meter.plc_node import UNACKD
    ch, fws = small_channel()
    dc = DC(ch, "dc", names=ADDR)
    # an ND request to one meter, and a domain-wide broadcast request: every
    # meter answers, the transaction ends at the first answer
    ok, tx = dc.transaction("m3", N.nd_query_status())
    assert ok and len(tx.responses) == 1 and tx.responses[0][0].src_node == 7
    ok, tx = dc.transaction((L.AF_BROADCAST, 0, 3), N.nd_query_status())
    assert ok and tx.responses and tx.responses[0][1][0] == 0x31
    # unsolicited messages reach the DC's node while time passes
    heard = []
    dc.plc.register(0x10, lambda node, inc, now: heard.append((inc.frame.src_node, bytes(inc.apdu))))
    t0 = dc.now_ms
    for mid in ("m1", "m2"):
        for f in fws[mid].plc.send((L.AF_SUBNET_NODE, 1, 126), b"\x10" + mid.encode(), ch.now_ms,
                                   service=UNACKD):
            ch.transmit(mid, f)
    dc.idle(2000)
    assert dc.now_ms == t0 + 2000
    assert sorted(heard) == [(5, b"\x10m1"), (6, b"\x10m2")]
