# Layer-2 MIP serial framing: the worked example of lontalk-transport-
# security.md 5 B (derived from the DX driver logic, NOT checked on
# hardware), code packets, 7E doubling, the extended length form, layer-2
# uplinks, and the parser's error events and resynchronisation.
from osgp_meter import mip
from osgp_meter import lontalk as L
from osgp_meter.lontalk import FrameError


def h(text):
    return bytes.fromhex(text.replace(" ", ""))


BODY = h("01 19 01 FE 01 85 42 03 30 00 17 00 00 00 0D C7 7F 72 07 2D D8 3C FC")
FRAME = BODY + h("73 4C")
EXAMPLE = h("7E 12 01 6F") + h("18 12 01 19 01 FE 01 85 42 03 30 00 17 00 00 00 0D C7 7F 72 07 2D D8 3C FC A2")


def test_worked_example_downlink():
    # the 2.1 frame sent downlink with sequence 0: derived, not hardware-checked
    assert mip.l2_downlink(0, BODY) == EXAMPLE
    assert mip.l2_downlink(0, L.encode(L.decode(FRAME), crc=False)) == EXAMPLE


def test_worked_example_parses():
    ev = mip.Parser().feed(EXAMPLE)
    assert ev == [(mip.EV_MSG, 0, True, mip.NI_L2_DOWN, BODY)]
    assert L.decode(ev[0][4], crc=False) == L.decode(FRAME)


def test_code_packets():
    assert mip.code_packet(0, True, mip.CP_MSG, 1) == h("7E 12 01 6F")
    cp = mip.code_packet(5, False, mip.CP_SHORT_NI, mip.NI_RESET)
    assert cp[1] == (5 << 5) | 6 and sum(cp) & 0xFF == 0
    assert mip.code_packet(0, False, mip.CP_RESYNC) == h("7E 07 00 7B")
    ev = mip.Parser().feed(cp + mip.code_packet(1, True, mip.CP_MSG_ACK))
    assert ev == [(mip.EV_CODE, 5, False, mip.CP_SHORT_NI, mip.NI_RESET),
                  (mip.EV_CODE, 1, True, mip.CP_MSG_ACK, 0)]
    for bad in ((8, True, 0, 0), (0, True, 16, 0), (0, True, 0, 256)):
        try:
            mip.code_packet(*bad)
            assert False
        except ValueError:
            pass


def test_7e_is_doubled_including_the_checksum():
    pdu = h("7E 00 7E")
    pkt = mip.message_packet(0x1A, pdu)
    assert pkt == h("04 1A 7E 7E 00 7E 7E E6")          # E6 = -(04+1A+7E+00+7E)
    # a checksum of 7E is doubled as well
    for x in range(256):
        raw = bytes((2, 0x12, x))
        if -sum(raw) & 0xFF == 0x7E:
            assert mip.message_packet(0x12, bytes((x,)))[-2:] == h("7E 7E")
            break
    ev = mip.Parser().feed(mip.message(3, 0x1A, pdu))
    assert ev == [(mip.EV_MSG, 3, True, 0x1A, pdu)]


def test_length_byte_7e_is_doubled():
    pdu = bytes(0x7D)                                     # length = 0x7E
    pkt = mip.message_packet(0x12, pdu)
    assert pkt[:2] == h("7E 7E")
    assert mip.Parser().feed(mip.message(1, 0x12, pdu)) == [(mip.EV_MSG, 1, True, 0x12, pdu)]


def test_extended_length_form():
    pdu = bytes(range(256)) + bytes(44)                   # 300 bytes: 1 + 300 > 254
    pkt = mip.message_packet(0x1C, pdu)
    assert pkt[:4] == h("FF 1C 01 2D")                    # 0x012D = 301 = command + PDU
    assert mip.Parser().feed(mip.message(2, 0x1C, pdu)) == [(mip.EV_MSG, 2, True, 0x1C, pdu)]
    edge = bytes(253)                                      # 254: still the short form
    assert mip.message_packet(0x12, edge)[0] == 254
    assert mip.message_packet(0x12, edge + b"\x00")[0] == 0xFF
    try:
        mip.message_packet(0x12, bytes(mip.EXT_MAX))
        assert False
    except ValueError:
        pass


def test_layer2_uplinks():
    pl = mip.l2_uplink_pl(4, FRAME, phase=2, xcvr=h("31 07"))
    ev = mip.Parser().feed(pl)
    assert ev[0][:4] == (mip.EV_MSG, 4, True, mip.NI_L2_UP_PL)
    phase, frame, xcvr = mip.parse_l2_uplink(ev[0][3], ev[0][4])
    assert (phase, frame, xcvr) == (2, FRAME, h("31 07"))
    ft = mip.Parser().feed(mip.l2_uplink_ft(4, FRAME))
    assert mip.parse_l2_uplink(ft[0][3], ft[0][4]) == (None, FRAME, None)
    for cmd, pdu, r in ((mip.NI_L2_UP_PL, bytes(7), "mip_crc"), (mip.NI_L2_UP, bytes(6), "mip_short"),
                        (0x50, bytes(10), "mip_command")):
        try:
            mip.parse_l2_uplink(cmd, pdu)
            assert False
        except FrameError as e:
            assert e.reason == r


def test_byte_at_a_time_and_back_to_back():
    p = mip.Parser()
    ev = []
    stream = EXAMPLE + mip.l2_downlink(1, BODY) + mip.code_packet(1, True, mip.CP_NULL)
    for b in stream:
        ev += p.feed(bytes((b,)))
    assert ev == [(mip.EV_MSG, 0, True, 0x12, BODY), (mip.EV_MSG, 1, True, 0x12, BODY),
                  (mip.EV_CODE, 1, True, mip.CP_NULL, 0)]


def test_error_events():
    p = mip.Parser()
    assert p.feed(h("00 01 02")) == [(mip.EV_ERROR, "garbage")]          # one event per run
    assert p.feed(h("7E 12 01 6E")) == [(mip.EV_ERROR, "cp_checksum")]
    bad = bytearray(EXAMPLE)
    bad[-1] ^= 1
    assert mip.Parser().feed(bytes(bad)) == [(mip.EV_ERROR, "msg_checksum")]
    assert mip.Parser().feed(h("7E 12 01 6F 00")) == [(mip.EV_ERROR, "length")]
    assert mip.Parser().feed(h("7E 12 01 6F FF 12 00 00")) == [(mip.EV_ERROR, "length")]
    assert mip.Parser().feed(h("7E 12 01 6F FF 12 05 03")) == [(mip.EV_ERROR, "length")]
    for r in ("garbage", "cp_checksum", "msg_checksum", "length", "escape", "timeout"):
        assert r in mip.ERRORS


def test_resync_on_a_lone_7e_inside_a_message():
    # a message cut short by a new frame: "escape", then the new frame parses
    ev = mip.Parser().feed(EXAMPLE[:12] + EXAMPLE)
    assert ev == [(mip.EV_ERROR, "escape"), (mip.EV_MSG, 0, True, 0x12, BODY)]


def test_timeout_drops_a_partial_frame():
    p = mip.Parser(timeout_ms=1000)
    assert p.feed(EXAMPLE[:10], now=0) == []
    ev = p.feed(EXAMPLE, now=1001)
    assert ev == [(mip.EV_ERROR, "timeout"), (mip.EV_MSG, 0, True, 0x12, BODY)]
    p = mip.Parser(timeout_ms=1000)
    assert p.feed(EXAMPLE[:10], now=0) == []
    assert p.feed(EXAMPLE[10:], now=1000) == [(mip.EV_MSG, 0, True, 0x12, BODY)]


def test_garbage_then_frames_recovers():
    junk = h("7E 7E 7E 12 FF 7E 00 01 7E")
    ev = mip.Parser().feed(junk + EXAMPLE + EXAMPLE + EXAMPLE)
    msgs = [e for e in ev if e[0] == mip.EV_MSG]
    assert msgs and msgs[-1] == (mip.EV_MSG, 0, True, 0x12, BODY)
