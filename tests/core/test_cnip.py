# CN/IP (ISO/IEC 14908-4) data packets: the verified example of
# lontalk-transport-security.md 2.1 byte for byte, the header fields, the
# extended header, every FrameError reason and the encoder's range checks.
from osgp_meter import cnip
from osgp_meter import lontalk as L
from osgp_meter.lontalk import FrameError


def h(text):
    return bytes.fromhex(text.replace(" ", ""))


HEADER = h("00 2D 01 01 00 00 00 00 12 34 56 78 00 00 00 01 00 00 00 00")
FRAME = h("01 19 01 FE 01 85 42 03 30 00 17 00 00 00 0D C7 7F 72 07 2D D8 3C FC 73 4C")
PACKET = HEADER + FRAME


def reason(data):
    try:
        cnip.decode(data)
    except FrameError as e:
        return e.reason
    return None


def test_reference_2_1_round_trips_byte_exactly():
    assert len(PACKET) == 45
    p = cnip.decode(PACKET)
    assert (p.session, p.seq, p.stamp, p.vendor, p.ext) == (0x12345678, 1, 0, 0, b"")
    assert p.payload == FRAME
    assert cnip.encode(p) == PACKET
    assert cnip.wrap(FRAME, session=0x12345678, seq=1) == PACKET


def test_unwrap_gives_the_lontalk_frame():
    p, f = cnip.unwrap(PACKET)
    assert p.seq == 1
    assert (f.src_subnet, f.src_node, f.dst_subnet, f.dst_node, f.tid) == (1, 126, 1, 5, 3)
    assert L.encode(f) == FRAME


def test_fields_are_big_endian_and_full_width():
    p = cnip.Packet(FRAME, session=0xFFFFFFFF, seq=0x01020304, stamp=0xA0B0C0D0, vendor=1)
    data = cnip.encode(p)
    assert data[6:8] == h("00 01")
    assert data[8:12] == h("FF FF FF FF")
    assert data[12:16] == h("01 02 03 04")
    assert data[16:20] == h("A0 B0 C0 D0")
    assert cnip.decode(data) == p


def test_extended_header_round_trip():
    ext = h("0A 00 00 01 0A 00 00 02 06 5C 00 00")     # Echelon form: IP, NAT IP, port, unused
    p = cnip.Packet(FRAME, session=7, seq=2, ext=ext)
    data = cnip.encode(p)
    assert data[4] == 3 and data[0:2] == h("00 39")
    assert data[20:32] == ext and data[32:] == FRAME
    assert cnip.decode(data) == p


def test_reasons():
    assert reason(None) == "type"
    assert reason(HEADER[:19]) == "short"
    assert reason(bytes(cnip.MAX_PACKET + 1)) == "too_long"
    assert reason(h("00 2C") + PACKET[2:]) == "length"
    assert reason(PACKET + b"\x00") == "length"
    for i, v, r in ((2, 0x00, "version"), (2, 0x81, "version"), (3, 0x03, "packet_type"),
                    (3, 0x7F, "packet_type"), (5, 0x40, "flags"), (5, 0x20, "security"),
                    (5, 0x01, "protocol"), (5, 0x02, "protocol")):
        bad = bytearray(PACKET)
        bad[i] = v
        assert reason(bytes(bad)) == r, (i, v, r)
    bad = bytearray(PACKET)
    bad[4] = 7                                          # 28 bytes of ext header > packet
    assert reason(bytes(bad)) == "short"
    assert reason(h("00 14") + HEADER[2:]) == "empty"
    for r in ("type", "short", "too_long", "length", "version", "packet_type", "flags",
              "security", "protocol", "empty"):
        assert r in cnip.REASONS


def test_unwrap_reports_lontalk_reasons_too():
    bad = bytearray(PACKET)
    bad[-1] ^= 1
    try:
        cnip.unwrap(bytes(bad))
        assert False
    except FrameError as e:
        assert e.reason == "crc"


def test_encode_range_checks():
    for kw in (dict(session=1 << 32), dict(seq=-1), dict(stamp=1 << 32), dict(vendor=0x10000),
               dict(ext=b"\x00"), dict(seq=True)):
        try:
            cnip.encode(cnip.Packet(FRAME, **kw))
            assert False, kw
        except ValueError:
            pass
    for payload in (b"", bytes(cnip.MAX_PACKET)):
        try:
            cnip.encode(cnip.Packet(payload))
            assert False
        except ValueError:
            pass
