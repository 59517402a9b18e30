"""ANSI C12.18 optical-port client (CPython, pyserial).

The client side of the meter's optical port (see docs/optical-port.md). It
reuses the core's framing: packets are built by ``osgp_meter.c1218.packetize``
and received bytes are parsed by ``osgp_meter.c1218.LinkReceiver``, the same
code the meter runs.

    import serial
    from osgp_host.optical_client import OpticalClient
    c = OpticalClient(serial.Serial("/dev/ttyUSB0", 9600))
    c.ident()
    c.negotiate(256, 4, 9600)
    c.logon(1, b"me")
    c.security(b"\\x00" * 20)
    data = c.read(1)
    c.logoff()
    c.terminate()

``port`` is anything with ``read(n)``, ``write(b)`` and a ``timeout``
attribute, e.g. a ``serial.Serial``. The client sets ``port.timeout`` to a
short poll interval; its own response timeouts are measured with ``clock``.
"""
import time

from osgp_meter import c1218
from osgp_meter.crc import c1218_cksum

RESPONSE_NAMES = {
    0x00: "ok", 0x01: "error (ERR)", 0x02: "service not supported (SNS)",
    0x03: "insufficient security clearance (ISC)", 0x04: "operation not possible (ONP)",
    0x05: "inappropriate action requested (IAR)", 0x06: "device busy (BSY)",
    0x07: "data not ready (DNR)", 0x08: "data locked (DLK)", 0x09: "renegotiate request (RNO)",
    0x0A: "invalid service sequence state (ISSS)",
}

SERVICE_NAMES = {
    0x20: "ident", 0x21: "terminate", 0x30: "full read", 0x3F: "partial read",
    0x40: "full write", 0x4F: "partial write", 0x50: "logon", 0x51: "security",
    0x52: "logoff", 0x70: "wait",
}


class OpticalError(Exception):
    """Any failure of an optical-port exchange."""


class LinkError(OpticalError):
    """Link layer failure: no ACK after the retries, no (complete) response."""


class ProtocolError(OpticalError):
    """The meter answered, but the answer is malformed (length, checksum, BT08)."""


class C1218Error(OpticalError):
    """The meter answered a service with a response code other than ok.

    ``code`` is the C12.18 response code (e.g. 0x03 ISC, 0x0A ISSS),
    ``service`` the request code that got it.
    """

    def __init__(self, code, service, detail=""):
        self.code = code
        self.service = service
        name = SERVICE_NAMES.get(service)
        if name is None:
            name = "negotiate" if 0x60 <= service <= 0x6B else "service 0x%02X" % service
        msg = "%s%s: %s (0x%02X)" % (name, detail, RESPONSE_NAMES.get(code, "response"), code)
        super().__init__(msg)


def baud_code(rate):
    """C12.18 baud-rate code of a bit rate (9600 -> 6)."""
    try:
        return c1218.BAUD_RATES.index(rate, 1)
    except ValueError:
        raise ValueError("no C12.18 baud-rate code for %r bd" % (rate,)) from None


class OpticalClient:
    """C12.18 client: services as methods, link handling inside.

    OpticalClient(port, response_timeout=2.0, retries=3, ict=0.5,
                  clock=time.monotonic, poll_interval=0.05)
    """

    def __init__(self, port, response_timeout=2.0, retries=3, ict=0.5,
                 clock=time.monotonic, poll_interval=0.05, max_packet=8192):
        self.port = port
        self.response_timeout = response_timeout
        self.retries = retries
        self.clock = clock
        try:
            port.timeout = poll_interval
        except AttributeError:
            pass
        self.rx = c1218.LinkReceiver(max_packet - c1218.OVERHEAD, int(ict * 1000))
        self.events = []
        self.toggle = 0
        self.last_in = None          # (toggle, crc) of the last accepted packet
        self.packet_size = c1218.DEFAULT_PACKET
        self.packets = c1218.DEFAULT_PACKETS
        self.baud = c1218.BAUD_RATES[c1218.DEFAULT_BAUD]

    # -- link -------------------------------------------------------------

    def _ms(self):
        return int(self.clock() * 1000)

    def _event(self, deadline):
        """Next link event, or None once `deadline` (clock units) has passed."""
        while not self.events:
            if self.clock() >= deadline:
                return None
            b = self.port.read(1)
            if b:
                more = getattr(self.port, "in_waiting", 0)
                if more:
                    b += self.port.read(more)
                self.rx.feed(b, self._ms(), self.events)
        return self.events.pop(0)

    def _send_packet(self, pkt):
        for _ in range(self.retries + 1):
            self.port.write(pkt)
            deadline = self.clock() + self.response_timeout
            while True:
                ev = self._event(deadline)
                if ev is None or ev[0] == c1218.EV_NAK:
                    break                       # retransmit
                if ev[0] == c1218.EV_ACK:
                    return
                # a packet (good or bad) instead of the ACK: the meter got
                # ours and is answering, our ACK was lost (implicit ACK)
                self.events.insert(0, ev)
                return
        raise LinkError("no ACK after %d retransmissions" % self.retries)

    def _send(self, payload):
        pkts, toggle = c1218.packetize(payload, self.packet_size - c1218.OVERHEAD, self.toggle)
        if len(pkts) > self.packets:
            raise ValueError("request needs %d packets, %d negotiated" % (len(pkts), self.packets))
        self.toggle = toggle
        for pkt in pkts:
            self._send_packet(pkt)

    def _recv(self):
        # The meter retransmits an unacknowledged response itself, so wait
        # for as long as all its retries take.
        wait = self.response_timeout * (self.retries + 1)
        deadline = self.clock() + wait
        buf = None
        expect = 0
        while True:
            ev = self._event(deadline)
            if ev is None:
                raise LinkError("no response within %.1f s" % wait)
            if ev[0] == c1218.EV_BAD:
                self.port.write(c1218.NAK_B)
                continue
            if ev[0] != c1218.EV_PACKET:
                continue                        # stray ACK/NAK
            _, ctrl, seq, data, crc = ev
            self.port.write(c1218.ACK_B)
            key = (ctrl & c1218.CTRL_TOGGLE, crc)
            if key == self.last_in:
                continue                        # duplicate: acknowledged only
            self.last_in = key
            deadline = self.clock() + wait
            if not ctrl & c1218.CTRL_MULTI:
                return data
            if ctrl & c1218.CTRL_FIRST:
                buf = bytearray(data)
            elif buf is None or seq != expect:
                raise LinkError("multi-packet response out of sequence")
            else:
                buf += data
            expect = seq - 1
            if seq == 0:
                return bytes(buf)

    def request(self, payload):
        """Send one C12.18 request, return the raw response (code first).

        Raises C1218Error when the response code is not ok.
        """
        self._send(bytes(payload))
        resp = self._recv()
        if not resp:
            raise ProtocolError("empty response")
        if resp[0] != c1218.OK:
            raise C1218Error(resp[0], payload[0])
        return resp

    # -- services ---------------------------------------------------------

    def ident(self):
        """Ident: returns (standard, version, revision, feature_bytes)."""
        r = self.request(b"\x20")
        if len(r) < 5 or r[-1] != 0:
            raise ProtocolError("malformed ident response %s" % r.hex())
        return r[1], r[2], r[3], bytes(r[4:-1])

    def negotiate(self, packet_size, packets, baud=None):
        """Negotiate: returns (packet_size, packets, baud_rate) as granted.

        baud is a bit rate (9600) or None to leave the rate alone. The port's
        baudrate is switched after the response is acknowledged.
        """
        if not 0 < packet_size <= 0xFFFF or not 0 < packets <= 0xFF:
            raise ValueError("packet size or count out of range")
        req = bytes((0x60 if baud is None else 0x61, packet_size >> 8, packet_size & 0xFF, packets))
        if baud is not None:
            req += bytes((baud_code(baud),))
        r = self.request(req)
        if len(r) != 5:
            raise ProtocolError("malformed negotiate response %s" % r.hex())
        self.packet_size = (r[1] << 8) | r[2]
        self.packets = r[3]
        self._set_baud(c1218.BAUD_RATES[r[4]] if r[4] < len(c1218.BAUD_RATES) else self.baud)
        return self.packet_size, self.packets, self.baud

    def _set_baud(self, rate):
        if rate and rate != self.baud:
            self.baud = rate
            if hasattr(self.port, "baudrate"):
                self.port.baudrate = rate

    def logon(self, user_id, user=b""):
        """Logon: user ID (UINT16) and a user name of up to 10 bytes."""
        if isinstance(user, str):
            user = user.encode()
        if not 0 <= user_id <= 0xFFFF or len(user) > 10:
            raise ValueError("user id or user name out of range")
        self.request(bytes((0x50, user_id >> 8, user_id & 0xFF)) + user.ljust(10, b" "))

    def security(self, password):
        """Security: the 20-byte password (a key; shorter ones are zero-padded)."""
        password = bytes(password)
        if len(password) > 20:
            raise ValueError("password longer than 20 bytes")
        self.request(b"\x51" + password.ljust(20, b"\x00"))

    def wait(self, seconds):
        """Wait: ask the meter to keep the channel open `seconds` s."""
        if not 0 <= seconds <= 255:
            raise ValueError("wait time 0..255 s")
        self.request(bytes((0x70, seconds)))

    def read(self, table_id, offset=None, count=None):
        """Full read (offset and count None) or partial read; returns the data."""
        if not 0 <= table_id <= 0xFFFF:
            raise ValueError("table id out of range")
        tid = bytes((table_id >> 8, table_id & 0xFF))
        if offset is None and count is None:
            req = b"\x30" + tid
        else:
            if count is None or not 0 <= count <= 0xFFFF:
                raise ValueError("a partial read needs a count 0..65535")
            offset = offset or 0
            if not 0 <= offset <= 0xFFFFFF:
                raise ValueError("offset out of range")
            req = (b"\x3f" + tid + offset.to_bytes(3, "big") + count.to_bytes(2, "big"))
        r = self.request(req)
        if len(r) < 4:
            raise ProtocolError("short read response %s" % r.hex())
        n = (r[1] << 8) | r[2]
        if len(r) != n + 4:
            raise ProtocolError("read response: count %d but %d data bytes" % (n, len(r) - 4))
        data = bytes(r[3:-1])
        if c1218_cksum(data) != r[-1]:
            raise ProtocolError("read response: bad table-data checksum")
        return data

    def write(self, table_id, data, offset=None):
        """Full write (offset None) or partial write of `data`."""
        data = bytes(data)
        if not 0 <= table_id <= 0xFFFF or len(data) > 0xFFFF:
            raise ValueError("table id or data length out of range")
        tid = bytes((table_id >> 8, table_id & 0xFF))
        cnt = len(data).to_bytes(2, "big")
        if offset is None:
            req = b"\x40" + tid + cnt
        else:
            if not 0 <= offset <= 0xFFFFFF:
                raise ValueError("offset out of range")
            req = b"\x4f" + tid + offset.to_bytes(3, "big") + cnt
        self.request(req + data + bytes((c1218_cksum(data),)))

    def procedure(self, number, params=b"", psn=1):
        """Run a procedure: write BT07, read BT08; returns (result, data).

        number is the 16-bit BT07 procedure word (BPnn = nn, EPnn = 2048+nn,
        response-handling bits 12-15 included), psn the sequence number.
        """
        if not 0 <= number <= 0xFFFF or not 0 <= psn <= 0xFF:
            raise ValueError("procedure number or PSN out of range")
        self.write(7, bytes((number & 0xFF, number >> 8, psn)) + bytes(params))
        r = self.read(8)
        if len(r) < 4:
            raise ProtocolError("BT08 shorter than 4 bytes")
        proc = r[0] | (r[1] << 8)
        if (proc & 0x0FFF) != (number & 0x0FFF) or r[2] != psn:
            raise ProtocolError("BT08 answers procedure %d psn %d, not %d psn %d"
                                % (proc & 0x0FFF, r[2], number & 0x0FFF, psn))
        return r[3], bytes(r[4:])

    def logoff(self):
        self.request(b"\x52")

    def terminate(self):
        """Terminate: back to the base state and the default line settings."""
        self.request(b"\x21")
        self.packet_size = c1218.DEFAULT_PACKET
        self.packets = c1218.DEFAULT_PACKETS
        self._set_baud(c1218.BAUD_RATES[c1218.DEFAULT_BAUD])
