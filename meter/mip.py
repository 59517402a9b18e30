# Layer-2 MIP serial framing (MIP/U50 link: host LON stack <-> a PL/FT
# transceiver running MIP firmware), sans-IO: builders for what the host
# sends and a byte-stream parser for what it receives. [DX] lon_usb_link.h/.c,
# lon_types.h, lcs_link.c; reference lontalk-transport-security.md 5 B.
#
# Code packet (4 bytes, never byte-stuffed):
#   7E | frame code: seq(7-5) ack(4) cmd(3-0) | parameter | checksum
#   checksum: two's complement of the sum of the first 3 bytes
# Message packet (follows a Msg code packet, parameter 1):
#   length | NI command | PDU | checksum          length = 1 + len(PDU) <= 254
#   FF | NI command | length(2, MSB) | PDU | cksum (extended form)
#   checksum: two's complement of the sum of all preceding message bytes;
#   every 7E in the message, the checksum included, is sent twice.
# Layer-2 mode PDUs:
#   downlink NI 0x12: L2 header + NPDU (the transceiver appends the CRC)
#   uplink   NI 0x1A (FT): L2 header + NPDU + CRC
#            NI 0x1C (PL): phase byte + L2 header + NPDU + CRC + 2
#            transceiver-register bytes; shorter than 8 bytes = CRC error
#
# What this module does NOT do (the node/modem layer will): acknowledge
# messages, retry after the 500 ms ACK wait, skip sequence number 0 after
# the first message, detect duplicates by sequence number, resynchronise
# with NiResync, or drive the reset/layer-mode start-up. The parser reports
# seq and ack as received and leaves their meaning to that layer. The U61
# variant ("7E 00" without code packets, U20/U70 PL interfaces) is not
# implemented. The extended length form follows the DX downlink writer
# (length counts the NI command); DX's uplink comment disagrees, and the
# form is unchecked on hardware.
from .lontalk import FrameError

SYNC = 0x7E

# frame (code packet) commands [DX lon_usb_link.h LonUsbFrameCommand]
CP_NULL = 0
CP_FAIL = 1
CP_MSG = 2
CP_MSG_REQ = 3
CP_MSG_ACK = 4
CP_MSG_REJECT = 5
CP_SHORT_NI = 6
CP_RESYNC = 7
CP_NI_PASSW = 8
CP_NI_CALLBACK = 9
CP_INVALID = 14
CP_ESCAPE = 15

# network-interface commands [DX lon_types.h LonNiCommand]
NI_L2_DOWN = 0x12
NI_L2_UP = 0x1A
NI_L2_UP_MODE1 = 0x1B
NI_L2_UP_PL = 0x1C
NI_LOCAL_NM = 0x22
NI_ERROR = 0x30
NI_CRC_ERROR = 0x31
NI_RESET = 0x50
NI_ACK = 0xC0
NI_NACK = 0xC1
NI_SET_L5 = 0xD0
NI_SET_L2 = 0xD1
NI_STATUS = 0xE0
NI_LAYER_MODE = 0xE5

SHORT_MAX = 254          # largest short length (command + PDU)
EXT_MAX = 1281           # largest extended length: 1280-byte PDU + command
INTER_BYTE_MS = 1000     # partial frame dropped after this gap [DX llp_timeout]
PL_MIN = 8               # a 0x1C PDU shorter than this reports a CRC error

# parser events: ("code", seq, ack, cmd, param) for every valid code packet
# but Msg; ("msg", seq, ack, ni_cmd, pdu) for a Msg code packet and its
# message packet; ("error", reason) with reason in ERRORS.
EV_CODE = "code"
EV_MSG = "msg"
EV_ERROR = "error"
ERRORS = (
    "garbage",       # bytes outside a frame (one event per run)
    "cp_checksum",   # code packet checksum wrong
    "msg_checksum",  # message checksum wrong
    "length",        # message length 0 or above EXT_MAX
    "escape",        # a lone 7E inside a message: a new frame starts there
    "timeout",       # partial frame older than the inter-byte timeout
)

# FrameError reasons of parse_l2_uplink
UPLINK_REASONS = ("mip_crc", "mip_short", "mip_command")

_IDLE, _CODE, _PARAM, _CKSUM, _MSG, _ESC = range(6)


def _u(name, v, hi):
    if v is True or v is False or not isinstance(v, int) or v < 0 or v > hi:
        raise ValueError("%s out of range: %r" % (name, v))
    return v


def _neg(data):
    return -sum(data) & 0xFF


def code_packet(seq, ack, cmd, param=0):
    """7E | seq/ack/cmd | param | checksum."""
    fc = (_u("seq", seq, 7) << 5) | ((1 if ack else 0) << 4) | _u("cmd", cmd, 15)
    head = bytes((SYNC, fc, _u("param", param, 255)))
    return head + bytes((_neg(head),))


def message_packet(ni_cmd, pdu):
    """The byte-stuffed message packet for an NI command and its PDU."""
    _u("ni_cmd", ni_cmd, 255)
    if not isinstance(pdu, (bytes, bytearray)):
        raise ValueError("pdu: bytes expected")
    n = 1 + len(pdu)
    if n > EXT_MAX:
        raise ValueError("pdu too long: %d" % len(pdu))
    if n <= SHORT_MAX:
        raw = bytearray((n, ni_cmd))
    else:
        raw = bytearray((0xFF, ni_cmd, n >> 8, n & 0xFF))
    raw += pdu
    raw.append(_neg(raw))
    out = bytearray()
    for b in raw:
        out.append(b)
        if b == SYNC:
            out.append(SYNC)
    return bytes(out)


def message(seq, ni_cmd, pdu, ack=True):
    """A Msg code packet (parameter 1) followed by its message packet. DX
    sets the ack flag on every downlink Msg code packet."""
    return code_packet(seq, ack, CP_MSG, 1) + message_packet(ni_cmd, pdu)


def l2_downlink(seq, body, ack=True):
    """Host -> transceiver: send body (L2 header + NPDU, no CRC:
    lontalk.encode(frame, crc=False))."""
    return message(seq, NI_L2_DOWN, body, ack)


def l2_uplink_pl(seq, frame, phase=0, xcvr=b"\x00\x00", ack=True):
    """Transceiver -> host on a PL interface: phase + frame (with CRC) +
    two transceiver-register bytes (emulator default: zeros)."""
    if len(xcvr) != 2:
        raise ValueError("xcvr: 2 bytes")
    return message(seq, NI_L2_UP_PL, bytes((_u("phase", phase, 255),)) + frame + xcvr, ack)


def l2_uplink_ft(seq, frame, ack=True):
    """Transceiver -> host on an FT interface: the frame with its CRC."""
    return message(seq, NI_L2_UP, frame, ack)


def parse_l2_uplink(ni_cmd, pdu):
    """A layer-2 uplink PDU -> (phase, frame with CRC, xcvr bytes); phase and
    xcvr are None for 0x1A. Raises FrameError: "mip_crc" for a PL runt
    (the transceiver's CRC-error report), "mip_short", "mip_command"."""
    if ni_cmd == NI_L2_UP_PL:
        if len(pdu) < PL_MIN:
            raise FrameError("mip_crc")
        return pdu[0], pdu[1:-2], pdu[-2:]
    if ni_cmd == NI_L2_UP:
        if len(pdu) < 7:
            raise FrameError("mip_short")
        return None, pdu, None
    raise FrameError("mip_command")


class Parser:
    """Byte-stream parser for what arrives on the MIP serial line.
    feed(data, now=None) -> list of events (see EV_*); never raises for
    any bytes. With now (ms) a partial frame older than timeout_ms is
    dropped with an ("error", "timeout") event."""

    __slots__ = ("timeout_ms", "_state", "_fc", "_param", "_buf", "_need",
                 "_garbage", "_last")

    def __init__(self, timeout_ms=INTER_BYTE_MS):
        self.timeout_ms = timeout_ms
        self._last = None
        self.reset()

    def reset(self):
        self._state = _IDLE
        self._fc = 0
        self._param = 0
        self._buf = bytearray()
        self._need = 0
        self._garbage = False

    def feed(self, data, now=None):
        events = []
        if now is not None:
            if (self._state != _IDLE and self._last is not None
                    and now - self._last > self.timeout_ms):
                events.append((EV_ERROR, "timeout"))
                self.reset()
            self._last = now
        for b in bytes(data):
            self._byte(b, events)
        return events

    def _byte(self, b, ev):
        st = self._state
        if st == _IDLE:
            if b == SYNC:
                self._state = _CODE
                self._garbage = False
            elif not self._garbage:
                self._garbage = True
                ev.append((EV_ERROR, "garbage"))
        elif st == _CODE:
            self._fc = b
            self._state = _PARAM
        elif st == _PARAM:
            self._param = b
            self._state = _CKSUM
        elif st == _CKSUM:
            if (SYNC + self._fc + self._param + b) & 0xFF:
                ev.append((EV_ERROR, "cp_checksum"))
                # the 7E was not a frame start: rescan the three bytes after
                # it, one of them may be the real one (code packets are not
                # byte-stuffed, so a frame can hide behind a false sync)
                self._state = _IDLE
                self._garbage = True
                for x in (self._fc, self._param, b):
                    self._byte(x, ev)
                return
            fc = self._fc
            if fc & 0x0F == CP_MSG:
                self._buf = bytearray()
                self._need = 0
                self._state = _MSG
            else:
                ev.append((EV_CODE, fc >> 5, bool(fc & 0x10), fc & 0x0F, self._param))
                self._state = _IDLE
        elif st == _MSG:
            if b == SYNC:
                self._state = _ESC
            else:
                self._data(b, ev)
        else:                                   # _ESC
            if b == SYNC:
                self._state = _MSG
                self._data(b, ev)
            else:                               # a new frame began at that 7E
                ev.append((EV_ERROR, "escape"))
                self._fc = b
                self._state = _PARAM

    def _data(self, b, ev):
        buf = self._buf
        buf.append(b)
        n = len(buf)
        if n == 1:
            if b == 0:
                self._bad(ev, "length")
                return
            if b != 0xFF:
                self._need = b + 2              # length byte .. checksum
        elif n == 4 and buf[0] == 0xFF:
            m = (buf[2] << 8) | buf[3]
            if m == 0 or m > EXT_MAX:
                self._bad(ev, "length")
                return
            self._need = m + 4
        if self._need and n == self._need:
            if sum(buf) & 0xFF:
                self._bad(ev, "msg_checksum")
                return
            fc = self._fc
            if buf[0] == 0xFF:
                cmd, pdu = buf[1], bytes(buf[4:-1])
            else:
                cmd, pdu = buf[1], bytes(buf[2:-1])
            ev.append((EV_MSG, fc >> 5, bool(fc & 0x10), cmd, pdu))
            self._buf = bytearray()
            self._state = _IDLE

    def _bad(self, ev, reason):
        ev.append((EV_ERROR, reason))
        self._buf = bytearray()
        self._state = _IDLE
