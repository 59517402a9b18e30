# Dual-runtime tests of meter/crc.py: catalogue check values, frame examples,
# and a slow bitwise reference for each CRC.
from osgp_meter import crc


def h(s):
    return bytes.fromhex(s.replace(" ", ""))


CHECK = b"123456789"


# ---- slow bitwise references, straight from the parameter sets -----------------

def ref_x25(data):
    # reflected: poly 0x1021 reversed = 0x8408, LSB first
    c = 0xFFFF
    for b in data:
        for i in range(8):
            bit = ((b >> i) & 1) ^ (c & 1)
            c >>= 1
            if bit:
                c ^= 0x8408
    return c ^ 0xFFFF


def ref_genibus(data):
    # non-reflected: poly 0x1021, MSB first
    c = 0xFFFF
    for b in data:
        for i in range(7, -1, -1):
            bit = ((b >> i) & 1) ^ (c >> 15)
            c = (c << 1) & 0xFFFF
            if bit:
                c ^= 0x1021
    return c ^ 0xFFFF


def test_check_values():
    assert crc.crc16_x25(CHECK) == 0x906E      # CRC-16/X-25
    assert crc.crc16_lon(CHECK) == 0xD64E      # CRC-16/GENIBUS
    assert ref_x25(CHECK) == 0x906E
    assert ref_genibus(CHECK) == 0xD64E
    assert crc.crc16_x25(b"") == 0
    assert crc.crc16_lon(b"") == 0


def test_incremental():
    for f in (crc.crc16_x25, crc.crc16_lon):
        for p in range(len(CHECK) + 1):
            assert f(CHECK[p:], f(CHECK[:p])) == f(CHECK)
        assert f(bytearray(CHECK)) == f(memoryview(CHECK)) == f(CHECK)


def test_tables_against_bitwise_reference():
    data = bytes(range(256)) + bytes(range(255, -1, -1))
    assert crc.crc16_x25(data) == ref_x25(data)
    assert crc.crc16_lon(data) == ref_genibus(data)
    for b in range(256):
        one = bytes((b,))
        assert crc.crc16_x25(one) == ref_x25(one)
        assert crc.crc16_lon(one) == ref_genibus(one)


def test_c1218_frame():
    # an ANSI C12.18 Identification request: EE, identity 00, control 00,
    # sequence 00, length 00 01, data 20 (Ident), CRC low byte first
    body = h("EE 00 00 00 00 01 20")
    c = crc.crc16_x25(body)
    assert c == ref_x25(body) == 0x1013
    frame = body + crc.x25_bytes(c)
    assert frame == h("EE 00 00 00 00 01 20 13 10")
    # the receiver's check: the CRC over the frame including its CRC is the
    # X-25 residue (register 0xF0B8, 0x0F47 after the final XOR)
    assert crc.crc16_x25(frame) == 0x0F47
    # a full read of table 1 (30 00 01), toggle bit 0x20 set in control
    body = h("EE 00 20 00 00 03 30 00 01")
    frame = body + crc.x25_bytes(crc.crc16_x25(body))
    assert frame[-2:] == bytes((ref_x25(body) & 255, ref_x25(body) >> 8))
    assert crc.crc16_x25(frame) == 0x0F47


def test_lontalk_frame():
    # lontalk-transport-security.md 2.1: L2 header + NPDU + APDU of the
    # verified tshark example, CRC 73 4C appended high byte first
    body = h("01 19 01 FE 01 85 42 03 30 00 17 00 00 00 0D C7 7F 72 07 2D D8 3C FC")
    assert len(body) == 23
    c = crc.crc16_lon(body)
    assert c == ref_genibus(body) == 0x734C
    assert crc.lon_bytes(c) == h("73 4C")
    # over frame + CRC the GENIBUS residue is constant
    assert crc.crc16_lon(body + crc.lon_bytes(c)) == crc.crc16_lon(CHECK + crc.lon_bytes(0xD64E))


def test_c1218_cksum():
    data = h("00 01 02 FF 80")
    k = crc.c1218_cksum(data)
    assert (sum(data) + k) & 255 == 0
    assert k == 0x7E
    assert crc.c1218_cksum(b"") == 0
    assert crc.c1218_cksum(b"\x01") == 0xFF
