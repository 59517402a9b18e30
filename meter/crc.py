# Checksums of the meter's links, table-driven, tables built on first use.
#
# crc16_x25   ANSI C12.18 optical frames: reflected polynomial 0x8408
#             (x^16 + x^12 + x^5 + 1), init 0xFFFF, final XOR 0xFFFF, sent low
#             byte first; covers EE .. data. Catalogue name CRC-16/X-25, check
#             value of "123456789" = 0x906E. [ESP crc16.h] (lontalk 5D)
# crc16_lon   ISO/IEC 14908-1 (LonTalk) frames: polynomial 0x1021 MSB-first,
#             init 0xFFFF, final XOR 0xFFFF, appended high byte first; covers
#             the L2 header and the NPDU. CRC-16/GENIBUS, check 0xD64E.
#             [EX LtCUtil.c LtCRC16] (lontalk 1.4)
# c1218_cksum ANSI C12.18 table data (full/partial read and write): the two's
#             complement of the byte sum, mod 256 [C1219].
# crc32       the non-volatile log's records (nvlog.py): CRC-32 IEEE 802.3 as
#             zlib/binascii, check 0xCBF43926; binascii's where the port has
#             it, else the table below.
#
# The CRC-16s continue like zlib.crc32: pass the previous result as crc to feed
# more data; crc=0 starts afresh (init 0xFFFF = 0 XOR the final 0xFFFF).

try:
    from binascii import crc32 as _crc32
except ImportError:                  # a MicroPython port built without it
    _crc32 = None

_X25 = None
_LON = None
_C32 = None


def _x25_table():
    global _X25
    if _X25 is None:
        t = []
        for n in range(256):
            c = n
            for _ in range(8):
                c = (c >> 1) ^ 0x8408 if c & 1 else c >> 1
            t.append(c)
        _X25 = t
    return _X25


def _lon_table():
    global _LON
    if _LON is None:
        t = []
        for n in range(256):
            c = n << 8
            for _ in range(8):
                c = ((c << 1) ^ 0x1021) & 0xFFFF if c & 0x8000 else (c << 1) & 0xFFFF
            t.append(c)
        _LON = t
    return _LON


def crc16_x25(data, crc=0):
    """CRC-16/X-25 of data (C12.18). crc: a previous result to continue."""
    t = _X25 or _x25_table()
    c = crc ^ 0xFFFF
    for b in data:
        c = (c >> 8) ^ t[(c ^ b) & 255]
    return c ^ 0xFFFF


def crc16_lon(data, crc=0):
    """CRC-16 of ISO/IEC 14908-1 (CRC-16/GENIBUS). crc: a previous result."""
    t = _LON or _lon_table()
    c = crc ^ 0xFFFF
    for b in data:
        c = ((c << 8) & 0xFFFF) ^ t[(c >> 8) ^ b]
    return c ^ 0xFFFF


def x25_bytes(crc):
    """A C12.18 CRC as sent: low byte first."""
    return bytes((crc & 255, crc >> 8))


def lon_bytes(crc):
    """A 14908-1 CRC as sent: high byte first."""
    return bytes((crc >> 8, crc & 255))


def c1218_cksum(data):
    """C12.18 table-data checksum: two's complement of the byte sum mod 256,
    so that sum(data) + cksum == 0 mod 256."""
    return -sum(data) & 255


def _crc32_table():
    global _C32
    if _C32 is None:
        t = []
        for n in range(256):
            c = n
            for _ in range(8):
                c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
            t.append(c)
        _C32 = t
    return _C32


def crc32(data, crc=0):
    """CRC-32 of data, continuing from crc (as binascii.crc32)."""
    if _crc32 is not None:
        return _crc32(data, crc) & 0xFFFFFFFF
    t = _C32 or _crc32_table()
    c = crc ^ 0xFFFFFFFF
    for b in data:
        c = (c >> 8) ^ t[(c ^ b) & 255]
    return c ^ 0xFFFFFFFF
