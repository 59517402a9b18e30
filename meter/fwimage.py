# The firmware image format of the emulated meter, and its checks.
#
# EMULATOR PROFILE (docs/firmware-download.md): no public source gives an OSGP
# image layout. The reference names only the image CRC (ET03.137, a UINT16)
# and a 16-byte image MAC (the MEP switchover in AES mode [MEP EP19 type 9]).
#
#   off  size  field
#   0    4     magic "OEFW" (4F 45 46 57)
#   4    1     format version, 1
#   5    1     flags: bit 0 = the image fails its self-test (test images, to
#              show a rollback); bits 1-7 zero
#   6    2     firmware version, MSB first, packed as BT01.14 (3.10.21 = 0x3155)
#   8    8     model, ARRAY[8] CHAR, must equal BT01.4 (left-justified, NUL/space padded)
#   16   4     body length L, UINT32 LE
#   20   2     image CRC, UINT16 LE: CRC-16/X-25 (crc.crc16_x25) over bytes 0..19
#              then the body; this is the value ET03.137 shows for the active bank
#   22   2     reserved, zero
#   24   L     body (opaque to the meter)
#   24+L 16    MAC: HMAC-SHA256(download key, bytes 0 .. 24+L-1)[:16]
#
# HMAC-SHA256 because MicroPython ports have hashlib.sha256 (not hmac, not
# AES-CMAC); the HMAC is written out here so boards need nothing more.
# Everything streams: a meter checks its bank in CHUNK-byte reads.
import hashlib

from . import crc

MAGIC = b"OEFW"
FORMAT = 1
HEADER = 24
MAC_LEN = 16
OVERHEAD = HEADER + MAC_LEN
FLAG_FAILS_SELFTEST = 0x01
CHUNK = 64
# The emulator's default download key (16 bytes; config "download_key").
DEFAULT_KEY = b"OSGP-EMU-DL-KEY1"

_BLOCK = 64          # SHA-256 block size


def _pads(key):
    key = bytes(key)
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key + bytes(_BLOCK - len(key))
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


class Mac:
    """Streaming HMAC-SHA256 (RFC 2104), truncated by the caller."""
    __slots__ = ("_inner", "_opad")

    def __init__(self, key):
        ipad, self._opad = _pads(key)
        self._inner = hashlib.sha256(ipad)

    def update(self, data):
        self._inner.update(bytes(data))

    def digest(self):
        return hashlib.sha256(self._opad + self._inner.digest()).digest()


def mac(key, data):
    m = Mac(key)
    m.update(data)
    return m.digest()[:MAC_LEN]


class Header:
    __slots__ = ("flags", "version", "model", "length", "crc")

    def __init__(self, flags, version, model, length, image_crc):
        self.flags = flags
        self.version = version
        self.model = model
        self.length = length
        self.crc = image_crc

    @property
    def size(self):
        """The whole image: header, body and MAC."""
        return HEADER + self.length + MAC_LEN


def parse_header(head):
    """A Header from the first 24 bytes, or None when they are not one."""
    if len(head) < HEADER or bytes(head[0:4]) != MAGIC or head[4] != FORMAT:
        return None
    if head[5] & ~FLAG_FAILS_SELFTEST or head[22] or head[23]:
        return None
    return Header(head[5], (head[6] << 8) | head[7], bytes(head[8:16]),
                  int.from_bytes(bytes(head[16:20]), "little"),
                  head[20] | (head[21] << 8))


def model_matches(a, b):
    """CHAR[8] models, ignoring NUL/space padding."""
    return bytes(a).rstrip(b"\x00 ") == bytes(b).rstrip(b"\x00 ")


def check(read, size, key):
    """Verify an image of `size` bytes that read(offset, n) returns.
    Returns (header, computed CRC, problem): problem is None when the image
    is good, else "header", "crc" or "mac"."""
    head = bytes(read(0, HEADER))
    h = parse_header(head)
    if h is None or h.size != size:
        return h, 0, "header"
    c = crc.crc16_x25(head[0:20])
    m = Mac(key)
    m.update(head)
    off = HEADER
    end = HEADER + h.length
    while off < end:
        n = end - off if end - off < CHUNK else CHUNK
        chunk = read(off, n)
        c = crc.crc16_x25(chunk, c)
        m.update(chunk)
        off += n
    if c != h.crc:
        return h, c, "crc"
    if m.digest()[:MAC_LEN] != bytes(read(end, MAC_LEN)):
        return h, c, "mac"
    return h, c, None


def build(body, version, model=b"OSGP-EMU", key=DEFAULT_KEY, flags=0):
    """A complete image (host tools and tests; boards only check)."""
    body = bytes(body)
    model = bytes(model)[:8]
    model = model + b" " * (8 - len(model))
    head = (MAGIC + bytes((FORMAT, flags, (version >> 8) & 0xFF, version & 0xFF)) + model
            + len(body).to_bytes(4, "little"))
    c = crc.crc16_x25(body, crc.crc16_x25(head))
    head = head + bytes((c & 0xFF, c >> 8, 0, 0))
    return head + body + mac(key, head + body)


def pack_version(major, minor, build_no):
    """BT01 packing: bits 15-12 major, 11-5 minor, 4-0 build [OPT BT01]."""
    return ((major & 0x0F) << 12) | ((minor & 0x7F) << 5) | (build_no & 0x1F)


def version_text(v):
    return "%d.%02d.%d" % (v >> 12, (v >> 5) & 0x7F, v & 0x1F)
