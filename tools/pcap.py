"""pcap capture of LonTalk frames as CN/IP over UDP/IPv4, for Wireshark/tshark.

Wireshark's LON dissector only runs beneath CN/IP (reference
lontalk-transport-security.md 1.1, 1.5), so each frame is written as

    IPv4 header (20) | UDP header (8) | CN/IP data header (20) | frame + CRC

with link type LINKTYPE_RAW (101): the record starts at the IPv4 header, no
Ethernet header to invent MAC addresses for. Ports 1628/1629 decode
automatically; any other port needs ``-d udp.port==N,cnip``.

Deterministic by construction: the pcap timestamp and the CN/IP timestamp
come from the simulation time passed in (integer ms), the CN/IP session ID of
a sender is a CRC-32 of its "ip:port" (or one fixed value you pass), each
sender has its own sequence counter starting at 1, and the IPv4 ID counts
packets. The same inputs give a byte-identical file. Only the stdlib.

    with PcapWriter("plc.pcap") as w:
        w.write(frame_bytes, now_ms, src="10.0.1.5", dst="10.0.1.126")

    tshark -r plc.pcap -V -Y lon
"""
import struct
import zlib

from osgp_meter import cnip

LINKTYPE_RAW = 101
MAGIC = 0xA1B2C3D4            # microsecond timestamps; the file is written little-endian
SNAPLEN = 65535
DEFAULT_SRC = "10.0.0.1"
DEFAULT_DST = "10.0.0.2"


def ip_bytes(addr):
    parts = [int(x) for x in addr.split(".")]
    if len(parts) != 4 or any(not 0 <= x <= 255 for x in parts):
        raise ValueError("IPv4 address expected: %r" % (addr,))
    return bytes(parts)


def node_ip(subnet, node, net=10):
    """A stable address for a LonTalk node: net.0.subnet.node."""
    return "%d.0.%d.%d" % (net, subnet, node)


def _checksum(data):
    if len(data) % 2:
        data += b"\x00"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def udp_ipv4(payload, src, dst, sport, dport, ident=0, ttl=64):
    """An IPv4 datagram carrying payload in UDP, both checksums computed."""
    s, d = ip_bytes(src), ip_bytes(dst)
    ulen = 8 + len(payload)
    if ulen > 0xFFFF - 20:
        raise ValueError("payload too long")
    pseudo = s + d + struct.pack("!BBH", 0, 17, ulen)
    udp = struct.pack("!HHHH", sport, dport, ulen, 0) + payload
    uc = _checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", uc) + udp[8:]
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, ident & 0xFFFF, 0, ttl, 17, 0, s, d)
    hdr = hdr[:10] + struct.pack("!H", _checksum(hdr)) + hdr[12:]
    return hdr + udp


def session_for(src, sport):
    """The deterministic CN/IP session ID of a sender."""
    return zlib.crc32(("%s:%d" % (src, sport)).encode()) & 0xFFFFFFFF


class PcapWriter:
    """Write LonTalk frames into a pcap file (path or binary file object).

    session: None (per-sender CRC-32 of "ip:port") or one fixed 32-bit ID.
    stamp: put the simulation time (ms, mod 2**32) into the CN/IP timestamp
    field (True) or 0 (False)."""

    def __init__(self, target, src=DEFAULT_SRC, dst=DEFAULT_DST, sport=cnip.PORT,
                 dport=cnip.PORT, session=None, stamp=True):
        self._own = isinstance(target, (str, bytes)) or hasattr(target, "__fspath__")
        self._f = open(target, "wb") if self._own else target
        self.src, self.dst, self.sport, self.dport = src, dst, sport, dport
        self.session = session
        self.stamp = stamp
        self._seq = {}
        self._ident = 0
        self.count = 0
        self._f.write(struct.pack("<IHHiIII", MAGIC, 2, 4, 0, 0, SNAPLEN, LINKTYPE_RAW))

    def write(self, frame, now_ms, src=None, dst=None, sport=None, dport=None):
        """One encoded LonTalk frame (with its CRC) sent at now_ms."""
        if now_ms < 0:
            raise ValueError("now_ms must be >= 0")
        src = src or self.src
        dst = dst or self.dst
        sport = self.sport if sport is None else sport
        dport = self.dport if dport is None else dport
        key = (src, sport)
        seq = self._seq.get(key, 0) % 0xFFFFFFFF + 1      # 1 .. 2**32-1; 0 = unused
        self._seq[key] = seq
        session = session_for(src, sport) if self.session is None else self.session
        pkt = cnip.encode(cnip.Packet(bytes(frame), session, seq,
                                      now_ms & 0xFFFFFFFF if self.stamp else 0))
        self._ident += 1
        datagram = udp_ipv4(pkt, src, dst, sport, dport, self._ident)
        sec, ms = divmod(int(now_ms), 1000)
        self._f.write(struct.pack("<IIII", sec, ms * 1000, len(datagram), len(datagram)))
        self._f.write(datagram)
        self.count += 1
        return pkt

    def close(self):
        if self._own and self._f is not None:
            self._f.close()
        self._f = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Record:
    """One packet read back: time (ms), addresses, ports, CN/IP bytes."""

    __slots__ = ("ms", "src", "dst", "sport", "dport", "payload")

    def __init__(self, ms, src, dst, sport, dport, payload):
        self.ms, self.src, self.dst, self.sport, self.dport, self.payload = ms, src, dst, sport, dport, payload

    def __repr__(self):
        return "Record(%d ms, %s:%d -> %s:%d, %d bytes)" % (
            self.ms, self.src, self.sport, self.dst, self.dport, len(self.payload))


def read(source):
    """Read a pcap written by PcapWriter (LINKTYPE_RAW, IPv4/UDP; either
    byte order, micro- or nanosecond magic) -> list of Record."""
    data = source if isinstance(source, (bytes, bytearray)) else open(source, "rb").read()
    if len(data) < 24:
        raise ValueError("not a pcap file")
    for endian in ("<", ">"):
        magic, = struct.unpack(endian + "I", data[:4])
        if magic in (0xA1B2C3D4, 0xA1B23C4D):
            break
    else:
        raise ValueError("not a pcap file")
    scale = 1000 if magic == 0xA1B2C3D4 else 1000000
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    if linktype != LINKTYPE_RAW:
        raise ValueError("link type %d: only LINKTYPE_RAW (101) is read" % linktype)
    out, i = [], 24
    while i + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack(endian + "IIII", data[i:i + 16])
        pkt = data[i + 16:i + 16 + incl]
        i += 16 + incl
        if len(pkt) < 28 or pkt[0] >> 4 != 4 or pkt[9] != 17:
            continue
        ihl = (pkt[0] & 15) * 4
        sport, dport, ulen = struct.unpack("!HHH", pkt[ihl:ihl + 6])
        src = ".".join(str(b) for b in pkt[12:16])
        dst = ".".join(str(b) for b in pkt[16:20])
        out.append(Record(sec * 1000 + frac // scale, src, dst, sport, dport,
                          bytes(pkt[ihl + 8:ihl + ulen])))
    return out
