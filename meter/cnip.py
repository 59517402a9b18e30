# ISO/IEC 14908-4 (EIA-852, "CN/IP") data packets, sans-IO: the UDP payload
# that carries one LonTalk frame between IP-852 devices, and what Wireshark's
# cnip dissector hands to its LON dissector. [WS-CNIP] packet-cnip.c,
# [EX] LtIpPackets.h/.cpp, LtLreIpClient.cpp; reference
# lontalk-transport-security.md 2. All fields big-endian.
#
#   0  2  length       whole packet incl. this header (an MD5 trailer, if
#                      any, is not counted [EX]; we refuse such packets)
#   2  1  version      1 (EIA-852); bit 7 vendor-private, bits 6-5 zero
#   3  1  type         0x01 data (the only type this codec accepts)
#   4  1  exth         extended-header size in 32-bit words
#   5  1  flags        bit 5 security (MD5 trailer), bits 4-0 protocol:
#                      0 = ANSI/EIA-709.1 (LonTalk); bits 7-6 zero
#   6  2  vendor       0 standard, 1 Echelon private
#   8  4  session ID   chosen by the sender, constant for its session
#  12  4  sequence     per sender, incrementing; 0 = unused
#  16  4  timestamp    milliseconds, or 0
#  20  4n extended header
#  ..     payload      protocol 0: L2 header + NPDU + CRC (lontalk.encode)
#
# decode() raises FrameError(reason) and nothing else, for any input.
from .lontalk import FrameError
from . import lontalk

HEADER = 20
VERSION = 0x01
TYPE_DATA = 0x01
PROTO_LONTALK = 0
FLAG_SECURITY = 0x20
PORT = 1628              # default CN/IP port; Wireshark also decodes 1629
MAX_PACKET = 1500        # emulator limit (an Ethernet MTU)

REASONS = (
    "type",          # not a bytes-like object
    "short",         # shorter than its header (or its extended header)
    "too_long",      # longer than MAX_PACKET
    "length",        # length field differs from the packet's size
    "version",       # version byte other than 0x01
    "packet_type",   # not a data packet (0x01)
    "flags",         # reserved flag bits set
    "security",      # MD5-authenticated packet (not supported)
    "protocol",      # protocol code other than 0 (LonTalk)
    "empty",         # data packet without payload
    "internal",      # a bug in this module
)


class Packet:
    """One CN/IP data packet. ext: the extended header (4*exth bytes);
    payload: the LonTalk frame (with its CRC)."""

    __slots__ = ("session", "seq", "stamp", "vendor", "ext", "payload")

    def __init__(self, payload=b"", session=0, seq=0, stamp=0, vendor=0, ext=b""):
        self.session = session
        self.seq = seq
        self.stamp = stamp
        self.vendor = vendor
        self.ext = ext
        self.payload = payload

    def __eq__(self, other):
        return (isinstance(other, Packet) and self.session == other.session
                and self.seq == other.seq and self.stamp == other.stamp
                and self.vendor == other.vendor and self.ext == other.ext
                and self.payload == other.payload)

    def __ne__(self, other):
        return not self.__eq__(other)

    def __repr__(self):
        return "Packet(session=0x%08X, seq=%d, stamp=%d, vendor=%d, ext=%r, payload=%r)" % (
            self.session, self.seq, self.stamp, self.vendor, self.ext, self.payload)


def _u(name, v, hi):
    if v is True or v is False or not isinstance(v, int) or v < 0 or v > hi:
        raise ValueError("%s out of range: %r" % (name, v))
    return v


def _be(v, n):
    out = bytearray(n)
    for k in range(n):
        out[n - 1 - k] = (v >> (8 * k)) & 0xFF
    return out


def encode(p):
    """Packet -> bytes. Raises ValueError for out-of-range fields."""
    ext = p.ext
    if not isinstance(ext, (bytes, bytearray)) or len(ext) % 4 or len(ext) > 4 * 255:
        raise ValueError("ext: a multiple of 4 bytes, at most 1020: %r" % (ext,))
    payload = p.payload
    if not isinstance(payload, (bytes, bytearray)) or not payload:
        raise ValueError("payload: non-empty bytes expected")
    total = HEADER + len(ext) + len(payload)
    if total > MAX_PACKET:
        raise ValueError("too_long")
    out = bytearray()
    out += _be(total, 2)
    out.append(VERSION)
    out.append(TYPE_DATA)
    out.append(len(ext) // 4)
    out.append(PROTO_LONTALK)
    out += _be(_u("vendor", p.vendor, 0xFFFF), 2)
    out += _be(_u("session", p.session, 0xFFFFFFFF), 4)
    out += _be(_u("seq", p.seq, 0xFFFFFFFF), 4)
    out += _be(_u("stamp", p.stamp, 0xFFFFFFFF), 4)
    out += ext
    out += payload
    return bytes(out)


def decode(data):
    """bytes -> Packet. Raises FrameError(reason), never anything else."""
    try:
        return _decode(data)
    except FrameError:
        raise
    except Exception:
        raise FrameError("internal")


def _decode(data):
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FrameError("type")
    data = bytes(data)
    n = len(data)
    if n > MAX_PACKET:
        raise FrameError("too_long")
    if n < HEADER:
        raise FrameError("short")
    if ((data[0] << 8) | data[1]) != n:
        raise FrameError("length")
    if data[2] != VERSION:
        raise FrameError("version")
    if data[3] != TYPE_DATA:
        raise FrameError("packet_type")
    flags = data[5]
    if flags & 0xC0:
        raise FrameError("flags")
    if flags & FLAG_SECURITY:
        raise FrameError("security")
    if flags & 0x1F != PROTO_LONTALK:
        raise FrameError("protocol")
    start = HEADER + 4 * data[4]
    if start > n:
        raise FrameError("short")
    if start == n:
        raise FrameError("empty")
    return Packet(payload=data[start:], vendor=(data[6] << 8) | data[7],
                  session=int.from_bytes(data[8:12], "big"),
                  seq=int.from_bytes(data[12:16], "big"),
                  stamp=int.from_bytes(data[16:20], "big"),
                  ext=data[HEADER:start])


def wrap(frame_bytes, session=0, seq=0, stamp=0):
    """An encoded LonTalk frame (with CRC) -> CN/IP data packet bytes."""
    return encode(Packet(frame_bytes, session, seq, stamp))


def unwrap(data, crc=True):
    """CN/IP packet bytes -> (Packet, lontalk.Frame). Raises FrameError."""
    p = decode(data)
    return p, lontalk.decode(p.payload, crc)
