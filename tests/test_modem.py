"""The emulated PLC modem (tools/modem.py) and the host side of the
Layer-2 MIP link (meter/mip_link.py NodePort): a real Firmware meter runs
behind a pty pair, the modem puts it on the virtual channel, and the data
concentrator on the channel reads, writes and calls it. Plus the modem's
uplink format, CRC-error runts, local NI commands and link retries, on an
in-memory port."""
import time

import pytest

from osgp_meter import mip
from osgp_meter import lontalk as L
from osgp_meter.crc import crc16_lon
from osgp_meter.mip_link import Link, MODEL_ID, FW_VERSION
from osgp_host import ports, profile as profiles
from osgp_host.dc import LocalFleet
from osgp_host.modem import Modem, SerialMeter
from osgp_host.plc_client import PlcTimeout


class MemPort:
    """A serial port in memory: what the modem writes, and bytes to read."""

    def __init__(self):
        self.written = bytearray()
        self.pending = bytearray()

    def read(self):
        b = bytes(self.pending)
        self.pending = bytearray()
        return b

    def write(self, data):
        self.written += data

    def take(self):
        b = bytes(self.written)
        self.written = bytearray()
        return b


def meter_config(subnet=1, node=50):
    return dict(profiles.load_config(), plc_domain=b"\x42", plc_subnet=subnet, plc_node=node,
                neuron_id=bytes.fromhex("00e0000000ff"))


def test_a_meter_on_a_pty_joins_the_channel_through_the_modem():
    fleet = LocalFleet("small", exclude=("m005",))
    pty = ports.PtyPort()
    modem = Modem(fleet.channel, "m005", pty)
    meter = SerialMeter(pty.name, meter_config())
    meter.serve_in_thread()
    try:
        dc = fleet.dc(speed=1.0)         # paced: the meter lives in wall-clock time
        t0 = time.monotonic()
        assert dc.read((1, 50), "BT01") == meter.fw.meter.store.read(1, 0, 24)
        assert dc.read("m001", "BT01") == fleet.firmware["m001"].meter.store.read(1, 0, 24)
        dc.write((1, 50), "BT06", b"\x01\x02\x03", offset=2)
        assert meter.fw.meter.store.read(6, 2, 3) == b"\x01\x02\x03"
        assert dc.call((1, 50), "BP10", bytes.fromhex("03 1a 0b 1a 0c 22 38"))[0] == 0
        et04 = dc.read((1, 50), "ET04")                   # two pieces, 139 bytes
        assert len(et04) == 139 and et04[4:10] == bytes.fromhex("00e0000000ff")
        assert time.monotonic() - t0 < 20
        assert dc.stats["timeouts"] == 0
        # the modem heard the DC and the other meters too (promiscuous), sent
        # every frame up with its SNR and level, and answered the host's
        # layer-2 mode request
        assert modem.stats["up"] >= dc.stats["requests"] and modem.stats["local"] == 1
        assert modem.stats["down"] >= 6 and modem.stats["refused"] == 0
        host = meter.node
        assert host.link.stats[3] == 0 and host.crc_errors == 0
        assert meter.fw.plc.signal is not None            # ET04.90 from the SNR byte
    finally:
        meter.stop()
        pty.close()


def test_modem_uplink_format_and_local_commands():
    fleet = LocalFleet("small", exclude=("m003",))
    port = MemPort()
    modem = Modem(fleet.channel, "m003", port)
    host = Link(host=True)
    ch = fleet.channel
    # host asks for status and layer-2 mode
    host.send_short(mip.NI_STATUS, 0)
    port.pending += host.take()
    modem._io(0)
    got = host.feed(port.take(), 0)
    assert got == [(mip.NI_STATUS, bytes((MODEL_ID, FW_VERSION, 1, 0)))]
    port.pending += host.take()              # the host's ACK
    modem._io(0)
    assert not modem.link.busy
    host.send_short(mip.NI_SET_L2, 1)
    port.pending += host.take()
    modem._io(0)
    assert host.feed(port.take(), 1) == [(mip.NI_SET_L2, b"")]
    port.pending += host.take()
    modem._io(0)
    # a DC read of m001 on the channel: the modem at m003 hears request and answer
    dc = fleet.dc()
    dc.read("m001", "BT01", offset=0, count=4)
    up = host.feed(port.take(), 2)
    assert [c for c, _ in up] == [mip.NI_L2_UP_PL]      # stop-and-wait: one at a time
    phase, frame, xcvr = mip.parse_l2_uplink(*up[0])
    assert phase == 0 and crc16_lon(frame[:-2]) == int.from_bytes(frame[-2:], "big")
    f = L.decode(frame)
    assert (f.src_subnet, f.src_node, f.dst_node) == (1, 126, 1)
    link = ch.link("dc", "m003")
    assert xcvr == bytes((round(link.snr_db), round(link.level_dbuv)))
    port.pending += host.take()              # ACK: the next uplink (the answer) follows
    modem._io(0)
    up = host.feed(port.take(), 3)
    f = L.decode(mip.parse_l2_uplink(*up[0])[1])
    assert (f.src_node, f.dst_node) == (1, 126)
    # a corrupted frame reaches the host as a runt (a CRC error report)
    port.pending += host.take()
    modem._io(0)
    modem.receive(b"\x01\x02\x03\x04\x05\x06\x07", ch.now_ms, 80.0, 20.0)
    up = host.feed(port.take(), 4)
    assert up[0][1] == bytes((0, 20, 80))
    with pytest.raises(L.FrameError):
        mip.parse_l2_uplink(*up[0])
    assert modem.stats["crc"] == 1
    # NI reset: the modem restarts its link and announces layer 2, channel 30
    port.pending += host.take()
    modem._io(0)
    host.send_short(mip.NI_RESET, 5)
    port.pending += host.take()
    modem._io(0)
    got = host.feed(port.take(), 5)
    assert (mip.NI_RESET, bytes((1, 30))) in got


def test_modem_repeats_an_unacknowledged_uplink_and_a_downlink_reaches_the_channel():
    fleet = LocalFleet("small", exclude=("m002",))
    port = MemPort()
    modem = Modem(fleet.channel, "m002", port)
    ch = fleet.channel
    modem.receive(bytes.fromhex("01 19 01 FE 01 85 42 03 30 00 17 00 00 00 0D C7 7F 72 07 2D D8 3C FC 73 4C"),
                  ch.now_ms, 90.0, 30.0)
    first = port.take()
    ch.run(for_ms=600)                       # no ACK: the same bytes again after 500 ms
    assert port.take() == first and modem.link.stats[2] == 1
    # a downlink from the host: the modem adds the CRC and transmits from m002
    host = Link(host=True)
    body = bytes.fromhex("01 19 01 FE 01 81 42 03 30 00 01 00 00 00 01") + bytes(8)
    host.send(mip.NI_L2_DOWN, body, 0)
    seen = []
    ch.add_tracer(lambda ev: seen.append(ev) if ev.kind == "tx" else None)
    port.pending += host.take()
    modem._io(0)
    ch.run(for_ms=500)
    assert [ev.src for ev in seen][:1] == ["m002"]
    assert seen[0].frame == body + crc16_lon(body).to_bytes(2, "big")
    assert modem.stats["down"] == 1


def test_a_meter_behind_a_dead_modem_times_out():
    fleet = LocalFleet("small", exclude=("m004",))
    port = MemPort()                         # nobody reads the modem's uplinks
    Modem(fleet.channel, "m004", port)
    dc = fleet.dc(retries=0, tx_retries=1, speed=50.0)
    with pytest.raises(PlcTimeout) as e:
        dc.read((1, 60), "BT01")
    assert "1/60" in str(e.value)
