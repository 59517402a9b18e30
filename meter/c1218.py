# The optical port: ANSI C12.18 as a sans-IO server (and the framing the
# CPython client reuses).
#
# Two layers live here:
#
# * the link layer [C1219] [ESPH]: packets
#       EE | identity 00 | ctrl | seq | length(2, MSB first) | data | crc(2)
#   with CRC-16/X-25 over EE..data, sent low byte first; ACK 0x06, NAK 0x15;
#   ctrl 0x80 = multi-packet, 0x40 = first packet of a multi-packet message,
#   0x20 = toggle bit; seq = packets still to come (0 on the last one).
#   LinkReceiver turns a byte stream into events; build_packet/packetize do
#   the reverse. Both are used by tools/optical_client.py as well.
# * the session (service sequence) [C1219] [OPT p.13]: base state -> Ident ->
#   [Negotiate] -> Logon -> [Security] -> table services -> Logoff ->
#   Terminate. Table services go to the application core through one
#   callable, execute(request, role, now) -> response, without the C12.18
#   table-data checksum, which is handled here.
#
# Every choice the public sources leave open is marked "emulator profile"
# below and listed in docs/optical-port.md. Time is an integer number of
# milliseconds passed in by the caller; nothing here sleeps or reads a clock.

from .crc import crc16_x25, c1218_cksum
from .access import ROLE_NONE

# --- link layer constants ---------------------------------------------------

STP = 0xEE          # start of packet
IDENTITY = 0x00     # identity byte of the optical port
ACK = 0x06
NAK = 0x15
ACK_B = b"\x06"
NAK_B = b"\x15"
CTRL_MULTI = 0x80
CTRL_FIRST = 0x40
CTRL_TOGGLE = 0x20
OVERHEAD = 8        # header (6) + CRC (2): packet size = data length + 8

DEFAULT_PACKET = 64     # C12.18 default packet size before Negotiate
DEFAULT_PACKETS = 1     # C12.18 default number of packets before Negotiate
DEFAULT_BAUD = 6        # 9600 bd

# Baud-rate codes of the Negotiate service [C1219]; index = code. Code 0
# ("externally defined") is never chosen by this server.
BAUD_RATES = (0, 300, 600, 1200, 2400, 4800, 9600, 14400, 19200, 28800, 57600)
DEFAULT_BAUDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)

# LinkReceiver events (first item of each event tuple)
EV_ACK = 1          # (EV_ACK,)
EV_NAK = 2          # (EV_NAK,)
EV_PACKET = 3       # (EV_PACKET, ctrl, seq, data, crc)
EV_BAD = 4          # (EV_BAD,): a whole packet whose CRC is wrong

# --- service codes and response codes [C1219] -------------------------------

IDENT = 0x20
TERMINATE = 0x21
FULL_READ = 0x30
PARTIAL_READ = 0x3F
FULL_WRITE = 0x40
PARTIAL_WRITE = 0x4F
LOGON = 0x50
SECURITY = 0x51
LOGOFF = 0x52
NEGOTIATE = 0x60    # 0x60..0x6B: 0x60 + number of baud-rate codes that follow
WAIT = 0x70

OK = 0x00
ERR = 0x01
SNS = 0x02
ISC = 0x03
ONP = 0x04
IAR = 0x05
BSY = 0x06
DNR = 0x07
DLK = 0x08
RNO = 0x09
ISSS = 0x0A

# Ident response: standard 0 (C12.18), version 1, revision 0, and an empty
# feature list (just the end-of-list byte 0x00). Emulator profile: the meter
# announces no optional features.
IDENT_STANDARD = 0
IDENT_VERSION = 1
IDENT_REVISION = 0

PASSWORD_LEN = 20
USER_LEN = 10
NO_USER = 0xFFFF    # "nobody logged on" as the logs record it [OPT BT74]

# --- session states -----------------------------------------------------------

STATE_BASE = "base"         # nothing open: only Ident is accepted
STATE_ID = "id"             # identified: Negotiate, Logon, Wait, Terminate
STATE_SESSION = "session"   # logged on: Security, table services, Wait, Logoff, Terminate


# --- framing ------------------------------------------------------------------

def build_packet(ctrl, seq, data):
    """One C12.18 packet: EE 00 ctrl seq len(2) data crc(2, low byte first)."""
    n = len(data)
    if n > 0xFFFF or not 0 <= ctrl <= 0xFF or not 0 <= seq <= 0xFF:
        raise ValueError("c1218 packet field out of range")
    body = bytes((STP, IDENTITY, ctrl, seq, n >> 8, n & 0xFF)) + bytes(data)
    c = crc16_x25(body)
    return body + bytes((c & 0xFF, c >> 8))


def packet_count(length, max_data):
    """How many packets carry `length` bytes with `max_data` data bytes each."""
    if length <= max_data:
        return 1
    return (length + max_data - 1) // max_data


def packetize(payload, max_data, toggle):
    """Split one message into packets. Returns (packets, next_toggle).

    `toggle` is 0 or CTRL_TOGGLE for the first packet; it alternates with
    every new packet. A message that fits one packet goes out with ctrl =
    toggle only; otherwise every packet has CTRL_MULTI, the first also
    CTRL_FIRST, and seq counts down to 0.
    """
    count = packet_count(len(payload), max_data)
    if count == 1:
        return [build_packet(toggle, 0, payload)], toggle ^ CTRL_TOGGLE
    if count > 256:
        raise ValueError("message needs more than 256 packets")
    out = []
    pos = 0
    for k in range(count):
        ctrl = CTRL_MULTI | toggle
        if k == 0:
            ctrl |= CTRL_FIRST
        out.append(build_packet(ctrl, count - 1 - k, payload[pos:pos + max_data]))
        pos += max_data
        toggle ^= CTRL_TOGGLE
    return out, toggle


class LinkReceiver:
    """Byte stream -> link events. Sans-IO; shared by server and client.

    feed(data, now, events) appends event tuples to `events`:
    (EV_ACK,), (EV_NAK,), (EV_PACKET, ctrl, seq, data, crc), (EV_BAD,).
    Bytes outside a packet other than ACK/NAK are skipped. A header whose
    identity byte is not 00 or whose length exceeds max_data is not a packet
    start: scanning resumes at the byte after that EE. A partial packet is
    abandoned when more than ict_ms pass between two of its bytes.
    """
    __slots__ = ("buf", "need", "last", "max_data", "ict")

    def __init__(self, max_data, ict_ms=500):
        self.max_data = max_data
        self.ict = ict_ms
        self.buf = None
        self.need = 0
        self.last = 0

    def reset(self):
        self.buf = None

    def deadline(self):
        if self.buf is None:
            return None
        return self.last + self.ict

    def expire(self, now):
        """Drop a partial packet whose inter-character time is up."""
        if self.buf is not None and now - self.last >= self.ict:
            self.buf = None
            return True
        return False

    def feed(self, data, now, events):
        self.expire(now)
        n = len(data)
        i = 0
        while i < n:
            buf = self.buf
            if buf is None:
                b = data[i]
                i += 1
                if b == STP:
                    self.buf = bytearray(b"\xee")
                    self.need = 6
                elif b == ACK:
                    events.append((EV_ACK,))
                elif b == NAK:
                    events.append((EV_NAK,))
                continue
            take = self.need - len(buf)
            if take > n - i:
                take = n - i
            buf.extend(data[i:i + take])
            i += take
            if len(buf) < self.need:
                break
            if self.need == 6:
                length = (buf[4] << 8) | buf[5]
                if buf[1] != IDENTITY or length > self.max_data:
                    # not a packet start after all: rescan what followed EE
                    rest = bytes(buf[1:]) + bytes(data[i:])
                    self.buf = None
                    data = rest
                    n = len(data)
                    i = 0
                    continue
                self.need = OVERHEAD + length
                if len(buf) < self.need:
                    continue
            # a whole packet
            self.buf = None
            end = len(buf) - 2
            got = buf[end] | (buf[end + 1] << 8)
            if crc16_x25(buf[:end]) != got:
                events.append((EV_BAD,))
            else:
                events.append((EV_PACKET, buf[2], buf[3], bytes(buf[6:end]), got))
        if self.buf is not None and n:
            self.last = now


def check_table_data(data, cksum):
    """True when `cksum` is the C12.18 checksum of the table data."""
    return c1218_cksum(data) == cksum


# --- the server session -------------------------------------------------------

def _pad(b, n, fill):
    b = bytes(b)
    if len(b) > n:
        return b[:n]
    return b + bytes((fill,)) * (n - len(b))


class OpticalSession:
    """One optical port, server side (the meter). See docs/optical-port.md.

    OpticalSession(execute, keys, max_packet=512, max_packets=8,
                   bauds=DEFAULT_BAUDS, ict_ms=500, response_ms=2000,
                   traffic_ms=6000, retries=3, log=None)

    execute(request, role, now) -> response: the C12 table service, request
        and response without the C12.18 table-data checksum.
    keys: sequence of (role, password) pairs; passwords are zero-padded to
        20 bytes; the first match wins.
    Public: feed(data, now) -> bytes, poll(now) -> bytes, deadline, state,
        role, user_id, baud_code, packet_size, packets.
    """
    __slots__ = (
        "execute", "keys", "max_packet", "max_packets", "bauds", "resp_ms",
        "traffic_ms", "retries", "log", "rx",
        "state", "role", "user_id", "baud_code", "packet_size", "packets",
        "last_toggle", "last_crc", "asm", "asm_next", "asm_over",
        "tx", "tx_tries", "tx_deadline", "tx_toggle", "tx_baud",
        "last_rx", "idle_ms",
    )

    def __init__(self, execute, keys, max_packet=512, max_packets=8,
                 bauds=DEFAULT_BAUDS, ict_ms=500, response_ms=2000,
                 traffic_ms=6000, retries=3, log=None):
        if max_packet < DEFAULT_PACKET or max_packet > 8192:
            raise ValueError("max_packet must be 64..8192")
        if max_packets < 1 or max_packets > 255:
            raise ValueError("max_packets must be 1..255")
        self.execute = execute
        keys = tuple(keys)      # the caller's tuple is shared when no padding is needed
        for role, pw in keys:
            if len(pw) != PASSWORD_LEN or not isinstance(pw, bytes):
                keys = tuple((r, _pad(p, PASSWORD_LEN, 0)) for r, p in keys)
                break
        self.keys = keys
        self.max_packet = max_packet
        self.max_packets = max_packets
        self.bauds = bauds
        self.resp_ms = response_ms
        self.traffic_ms = traffic_ms
        self.retries = retries
        self.log = log
        self.rx = LinkReceiver(max_packet - OVERHEAD, ict_ms)
        self.tx = None
        self.last_rx = 0
        self._base()

    # -- public API -------------------------------------------------------

    def feed(self, data, now):
        """Bytes received from the optical port at time `now` (ms).

        Returns the bytes to transmit now (possibly empty).
        """
        out = bytearray()
        self._timers(now, out)
        events = []
        self.rx.feed(data, now, events)
        for ev in events:
            kind = ev[0]
            if kind == EV_PACKET:
                self._packet(ev[1], ev[2], ev[3], ev[4], now, out)
            elif kind == EV_BAD:
                out.append(NAK)
            elif self.tx is not None:
                self.last_rx = now
                if kind == EV_ACK:
                    self._acked(now, out)
                else:
                    self._retransmit(now, out)
        return bytes(out)

    def poll(self, now):
        """Run the timers that are due at `now`; returns bytes to transmit."""
        out = bytearray()
        self._timers(now, out)
        return bytes(out)

    @property
    def deadline(self):
        """Next time (ms) poll() must be called, or None."""
        d = self.rx.deadline()
        if self.tx is not None:
            t = self.tx_deadline
        elif self.state != STATE_BASE or self.asm is not None:
            t = self.last_rx + self.idle_ms
        else:
            return d
        if d is None or t < d:
            return t
        return d

    # -- state ------------------------------------------------------------

    def _base(self):
        """Back to the base state with the default line settings."""
        self.state = STATE_BASE
        self.role = ROLE_NONE
        self.user_id = NO_USER
        self.baud_code = DEFAULT_BAUD
        self.packet_size = DEFAULT_PACKET
        self.packets = DEFAULT_PACKETS
        self.last_toggle = -1
        self.last_crc = -1
        self.asm = None
        self.asm_next = 0
        self.asm_over = False
        self.tx = None
        self.tx_tries = 0
        self.tx_deadline = 0
        self.tx_toggle = 0
        self.tx_baud = -1
        self.idle_ms = self.traffic_ms

    def _timers(self, now, out):
        self.rx.expire(now)
        if self.tx is not None:
            if now >= self.tx_deadline:
                self._retransmit(now, out)
        if self.tx is None and (self.state != STATE_BASE or self.asm is not None):
            if now - self.last_rx >= self.idle_ms:
                if self.log:
                    self.log("c1218: channel traffic timeout, back to base state")
                self._base()

    # -- link: sending ------------------------------------------------------

    def _send(self, payload, now, out):
        """Queue one response message and transmit its first packet."""
        max_data = self.packet_size - OVERHEAD
        if packet_count(len(payload), max_data) > self.packets:
            # emulator profile: a response that needs more packets than
            # negotiated is answered ONP (operation not possible)
            payload = bytes((ONP,))
        pkts, self.tx_toggle = packetize(payload, max_data, self.tx_toggle)
        pkts.reverse()              # pop() from the end = next packet
        self.tx = pkts
        self.tx_tries = 0
        self.tx_deadline = now + self.resp_ms
        out.extend(pkts[-1])

    def _acked(self, now, out):
        tx = self.tx
        tx.pop()
        if tx:
            self.tx_tries = 0
            self.tx_deadline = now + self.resp_ms
            out.extend(tx[-1])
        else:
            self._tx_done()

    def _tx_done(self):
        self.tx = None
        if self.tx_baud >= 0:
            self.baud_code = self.tx_baud   # the line changes after the ACK
            self.tx_baud = -1

    def _retransmit(self, now, out):
        if self.tx_tries >= self.retries:
            if self.log:
                self.log("c1218: no ACK after %d retries, response dropped" % self.retries)
            self.tx = None
            self.tx_baud = -1
            if self.state == STATE_BASE:
                self.baud_code = DEFAULT_BAUD
            return
        self.tx_tries += 1
        self.tx_deadline = now + self.resp_ms
        out.extend(self.tx[-1])

    # -- link: receiving ----------------------------------------------------

    def _packet(self, ctrl, seq, data, crc, now, out):
        self.last_rx = now
        self.idle_ms = self.traffic_ms
        toggle = ctrl & CTRL_TOGGLE
        if toggle == self.last_toggle and crc == self.last_crc:
            out.append(ACK)         # duplicate: acknowledge, do not process
            return
        self.last_toggle = toggle
        self.last_crc = crc
        out.append(ACK)
        if self.tx is not None:
            # The client sends something new while we wait for an ACK: if
            # we were on our last packet it got it (implicit ACK), else it
            # gave up on the rest. Either way the transmission is over.
            if len(self.tx) == 1:
                self._tx_done()
            else:
                self.tx = None
                self.tx_baud = -1
        if not ctrl & CTRL_MULTI:
            self.asm = None
            self._request(data, now, out)
            return
        if ctrl & CTRL_FIRST:
            # emulator profile: more packets than negotiated are ACKed and
            # dropped, and the whole message is answered ONP
            self.asm_over = seq + 1 > self.packets
            self.asm = bytearray() if self.asm_over else bytearray(data)
            self.asm_next = seq - 1
            if seq == 0:
                self._assembled(now, out)
            return
        if self.asm is None or seq != self.asm_next:
            # a continuation that does not follow: drop the partial message
            self.asm = None
            return
        if not self.asm_over:
            self.asm.extend(data)
        self.asm_next = seq - 1
        if seq == 0:
            self._assembled(now, out)

    def _assembled(self, now, out):
        req = bytes(self.asm)
        self.asm = None
        if self.asm_over:
            self._send(bytes((ONP,)), now, out)
        else:
            self._request(req, now, out)

    # -- services -----------------------------------------------------------

    def _request(self, req, now, out):
        resp = self._service(req, now)
        if req and req[0] == TERMINATE and resp == b"\x00":
            # Back to base at once; the Terminate response still waits for
            # its ACK (a repeated Terminate stays a duplicate), and the line
            # keeps its rate until that ACK.
            toggle, baud = self.tx_toggle, self.baud_code
            last_t, last_c = self.last_toggle, self.last_crc
            self._base()
            self.tx_toggle = toggle
            self.last_toggle, self.last_crc = last_t, last_c
            if baud != DEFAULT_BAUD:
                self.baud_code = baud
                self.tx_baud = DEFAULT_BAUD
        self._send(resp, now, out)

    def _service(self, req, now):
        if not req:
            return bytes((ERR,))
        code = req[0]
        n = len(req)
        state = self.state
        if code == IDENT:
            if state != STATE_BASE:
                return bytes((ISSS,))
            if n != 1:
                return bytes((ERR,))
            self.state = STATE_ID
            return bytes((OK, IDENT_STANDARD, IDENT_VERSION, IDENT_REVISION, 0))
        if (0x31 <= code <= 0x39) or code == 0x3E or (0x41 <= code <= 0x49):
            return bytes((SNS,))
        if code in (FULL_READ, PARTIAL_READ, FULL_WRITE, PARTIAL_WRITE):
            if state != STATE_SESSION:
                return bytes((ISSS,))
            return self._table(req, now)
        if code == TERMINATE:
            if state == STATE_BASE:
                return bytes((ISSS,))
            if n != 1:
                return bytes((ERR,))
            return bytes((OK,))     # _request() returns to base once sent
        if NEGOTIATE <= code <= NEGOTIATE + 11:
            if state != STATE_ID:
                return bytes((ISSS,))
            return self._negotiate(req)
        if code == LOGON:
            if state != STATE_ID:
                return bytes((ISSS,))
            if n != 3 + USER_LEN:
                return bytes((ERR,))
            self.user_id = (req[1] << 8) | req[2]   # not checked [OPT p.13]
            self.role = ROLE_NONE
            self.state = STATE_SESSION
            return bytes((OK,))
        if code == SECURITY:
            if state != STATE_SESSION:
                return bytes((ISSS,))
            if n != 1 + PASSWORD_LEN:
                return bytes((ERR,))
            pw = req[1:]
            role = ROLE_NONE
            for r, key in self.keys:
                if key == pw:
                    role = r
                    break
            self.role = role
            return bytes((OK if role != ROLE_NONE else ISC,))
        if code == LOGOFF:
            if state != STATE_SESSION:
                return bytes((ISSS,))
            if n != 1:
                return bytes((ERR,))
            self.state = STATE_ID
            self.role = ROLE_NONE
            self.user_id = NO_USER
            return bytes((OK,))
        if code == WAIT:
            if state == STATE_BASE:
                return bytes((ISSS,))
            if n != 2:
                return bytes((ERR,))
            # emulator profile: the idle time allowed until the next packet
            # becomes max(channel traffic timeout, the requested seconds)
            ms = req[1] * 1000
            if ms > self.idle_ms:
                self.idle_ms = ms
            return bytes((OK,))
        return bytes((ERR,))

    def _negotiate(self, req):
        nb = req[0] - NEGOTIATE
        if len(req) != 4 + nb:
            return bytes((ERR,))
        size = (req[1] << 8) | req[2]
        count = req[3]
        if size < OVERHEAD + 1 or count == 0:
            return bytes((ERR,))
        if size > self.max_packet:
            size = self.max_packet
        if count > self.max_packets:
            count = self.max_packets
        # emulator profile: of the offered codes we support, take the fastest;
        # with none offered or none supported the rate stays as it is
        baud = self.baud_code
        best = 0
        for k in range(4, 4 + nb):
            c = req[k]
            if c in self.bauds and 0 < c < len(BAUD_RATES) and BAUD_RATES[c] > best:
                best = BAUD_RATES[c]
                baud = c
        self.packet_size = size
        self.packets = count
        if baud != self.baud_code:
            self.tx_baud = baud     # applied when the response is acknowledged
        return bytes((OK, size >> 8, size & 0xFF, count, baud))

    def _table(self, req, now):
        code = req[0]
        n = len(req)
        if code == FULL_READ:
            # the MEP form carries a 2-byte length too; accept and drop it
            if n != 3 and n != 5:
                return bytes((ERR,))
            creq = req[:3]
        elif code == PARTIAL_READ:
            if n != 8:
                return bytes((ERR,))
            creq = req
        else:
            hdr = 5 if code == FULL_WRITE else 8
            if n < hdr + 1:
                return bytes((ERR,))
            count = (req[hdr - 2] << 8) | req[hdr - 1]
            if n != hdr + count + 1:
                return bytes((ERR,))
            # emulator profile: a bad table-data checksum answers ERR and
            # the core is not called
            if c1218_cksum(req[hdr:n - 1]) != req[n - 1]:
                return bytes((ERR,))
            creq = req[:n - 1]
        try:
            resp = self.execute(creq, self.role, now)
        except Exception as exc:   # rule 5: no exception leaves the core
            if self.log:
                self.log("c1218: execute failed: %r" % (exc,))
            return bytes((ERR,))
        if not resp:
            return bytes((ERR,))
        if resp[0] == OK and (code == FULL_READ or code == PARTIAL_READ):
            return bytes(resp) + bytes((c1218_cksum(resp[3:]),))
        return bytes(resp)
