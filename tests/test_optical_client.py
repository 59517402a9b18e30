"""The CPython optical client against the core's C12.18 server, through an
in-memory loopback (a tiny fake serial port that calls session.feed), plus a
hypothesis test that arbitrary bytes never break the server."""
import pytest
from hypothesis import given, settings, strategies as st

from osgp_meter import c1218
from osgp_meter.access import ROLE_MK, ROLE_NONE, ROLE_RK
from osgp_host.optical_client import (
    C1218Error, LinkError, OpticalClient, ProtocolError, baud_code)

MK = bytes(range(1, 21))
RK = b"reader"


class Core:
    """A toy application core: tables in a dict, BT07 -> BT08 procedures."""

    def __init__(self):
        self.tables = {1: b"OSGP-EMU" + bytes(12), 23: bytes(range(200)), 7: b"", 8: bytes(4)}
        self.calls = []

    def __call__(self, req, role, now):
        self.calls.append((req, role))
        code, tid = req[0], (req[1] << 8) | req[2]
        if tid not in self.tables:
            return b"\x05"
        if role == ROLE_NONE and tid != 1:
            return b"\x03"
        t = self.tables[tid]
        if code == 0x30:
            return bytes((0, len(t) >> 8, len(t) & 0xFF)) + t
        if code == 0x3F:
            off = int.from_bytes(req[3:6], "big")
            cnt = int.from_bytes(req[6:8], "big")
            d = (t[off:off + cnt]).ljust(cnt, b"\x00")
            return bytes((0, cnt >> 8, cnt & 0xFF)) + d
        if role == ROLE_RK:
            return b"\x03"
        if code == 0x40:
            data = req[5:]
            if tid == 7:
                # procedure: echo the parameters reversed, result 0
                self.tables[8] = data[:3] + b"\x00" + data[3:][::-1]
                return b"\x00"
            self.tables[tid] = data
            return b"\x00"
        off = int.from_bytes(req[3:6], "big")
        data = req[8:]
        t = bytearray(t.ljust(off + len(data), b"\x00"))
        t[off:off + len(data)] = data
        self.tables[tid] = bytes(t)
        return b"\x00"


class Loopback:
    """Fake serial port wired to an OpticalSession; time is simulated."""

    def __init__(self, session, mangle=None):
        self.s = session
        self.now = 0
        self.buf = bytearray()
        self.timeout = None
        self.baudrate = 9600
        self.mangle = mangle        # mangle(bytes from the meter) -> bytes
        self.to_meter = bytearray()

    def clock(self):
        return self.now / 1000.0

    def _from_meter(self, b):
        if b and self.mangle:
            b = self.mangle(b)
        self.buf += b

    def write(self, b):
        self.now += 1
        self.to_meter += b
        self._from_meter(self.s.feed(bytes(b), self.now))
        return len(b)

    @property
    def in_waiting(self):
        return len(self.buf)

    def read(self, n):
        if not self.buf:
            self.now += int(self.timeout * 1000)
            d = self.s.deadline
            if d is not None and d <= self.now:
                self._from_meter(self.s.poll(self.now))
            if not self.buf:
                return b""
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


def make(mangle=None, **kw):
    core = Core()
    s = c1218.OpticalSession(core, ((ROLE_MK, MK), (ROLE_RK, RK)), **kw)
    port = Loopback(s, mangle)
    return core, s, port, OpticalClient(port, clock=port.clock)


def test_full_session():
    core, s, port, c = make(bauds=(6, 8))
    assert c.ident() == (0, 1, 0, b"")
    assert c.negotiate(128, 4, 19200) == (128, 4, 19200)
    assert port.baudrate == 19200 and s.baud_code == 8
    c.logon(0x0102, "tester")
    assert s.user_id == 0x0102
    c.security(MK)
    assert s.role == ROLE_MK
    assert c.read(1) == b"OSGP-EMU" + bytes(12)
    assert c.read(23) == bytes(range(200))                  # multi-packet response
    assert c.read(23, 195, 10) == bytes(range(195, 200)) + bytes(5)
    c.write(23, bytes(300))                                 # multi-packet request
    assert core.tables[23] == bytes(300)
    c.write(1, b"XY", offset=2)
    assert core.tables[1][:4] == b"OSXY"
    assert c.procedure(2065, b"\x01\x02\x03", psn=7) == (0, b"\x03\x02\x01")
    assert core.calls[-2][0] == b"\x40\x00\x07\x00\x06\x11\x08\x07\x01\x02\x03"
    c.wait(20)
    c.logoff()
    assert s.state == c1218.STATE_ID
    c.terminate()
    assert s.state == c1218.STATE_BASE and s.baud_code == 6 and port.baudrate == 9600
    assert all(role == ROLE_MK for _, role in core.calls)


def test_errors_carry_the_response_code():
    core, s, port, c = make()
    with pytest.raises(C1218Error) as e:
        c.read(1)
    assert e.value.code == 0x0A and e.value.service == 0x30
    assert "ISSS" in str(e.value)
    c.ident()
    c.logon(1)
    with pytest.raises(C1218Error) as e:
        c.security(b"wrong")
    assert e.value.code == 0x03
    assert c.read(1)[:4] == b"OSGP"              # open table without a key
    with pytest.raises(C1218Error) as e:
        c.read(23)
    assert e.value.code == 0x03
    c.security(RK)
    with pytest.raises(C1218Error) as e:
        c.write(23, b"x")
    assert e.value.code == 0x03
    with pytest.raises(C1218Error) as e:
        c.read(99)
    assert e.value.code == 0x05
    # 200 bytes do not fit the default 1 packet of 64 bytes
    with pytest.raises(C1218Error) as e:
        c.read(23)
    assert e.value.code == 0x04
    with pytest.raises(ValueError):
        c.write(23, bytes(100))                 # needs 2 packets, 1 negotiated
    assert baud_code(9600) == 6
    with pytest.raises(ValueError):
        baud_code(1234)


def test_client_recovers_from_line_faults():
    hits = {"n": 0}

    def mangle(b):
        hits["n"] += 1
        if hits["n"] == 1:                      # ACK lost, response corrupted
            return b[1:-1] + bytes([b[-1] ^ 0xFF])
        if hits["n"] == 3:                      # response corrupted again
            return b[:-1] + bytes([b[-1] ^ 0xFF])
        return b

    core, s, port, c = make(mangle)
    assert c.ident() == (0, 1, 0, b"")
    c.logon(5)
    assert port.to_meter.count(b"\x15") == 2      # one NAK per corrupted packet
    c.security(MK)
    assert c.read(23, 0, 4) == bytes(range(4))


def test_no_meter_raises_link_error():
    class Dead:
        timeout = None
        now = 0

        def clock(self):
            return self.now / 1000.0

        def write(self, b):
            return len(b)

        def read(self, n):
            self.now += 50
            return b""

    port = Dead()
    c = OpticalClient(port, clock=port.clock)
    with pytest.raises(LinkError):
        c.ident()


def test_client_rejects_malformed_read_responses():
    core, s, port, c = make()
    c.ident()
    c.logon(1)
    c.security(MK)
    orig = s.execute

    def bad_count(req, role, now):
        r = orig(req, role, now)
        return r[:1] + b"\x00\x05" + r[3:]            # count no longer matches
    s.execute = bad_count
    with pytest.raises(ProtocolError):
        c.read(1)
    s.execute = orig

    def bad_cksum(b):
        # re-frame the meter's read response with a wrong table checksum
        if len(b) > 20 and b[0] == 0x06:
            n = (b[5] << 8) | b[6]
            data = b[7:7 + n]
            return b[:1] + c1218.build_packet(b[3], b[4], data[:-1] + bytes([data[-1] ^ 1]))
        return b
    port.mangle = bad_cksum
    with pytest.raises(ProtocolError):
        c.read(1)


# -- hypothesis: the server never raises, never calls execute without a packet --

def ref_crc(data):
    c = 0xFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ 0x8408 if c & 1 else c >> 1
    return c ^ 0xFFFF


def valid_frames(stream):
    """Number of positions in `stream` where a CRC-valid packet starts."""
    n = 0
    for i in range(len(stream) - 7):
        if stream[i] != 0xEE or stream[i + 1] != 0:
            continue
        ln = (stream[i + 4] << 8) | stream[i + 5]
        end = i + 6 + ln
        if end + 2 > len(stream):
            continue
        c = ref_crc(stream[i:end])
        if stream[end] == c & 0xFF and stream[end + 1] == c >> 8:
            n += 1
    return n


def check_output(out):
    """Server output is only ACK, NAK and well-formed packets."""
    i = 0
    while i < len(out):
        if out[i] in (0x06, 0x15):
            i += 1
            continue
        assert out[i] == 0xEE and out[i + 1] == 0
        ln = (out[i + 4] << 8) | out[i + 5]
        end = i + 6 + ln
        c = ref_crc(out[i:end])
        assert out[end] == c & 0xFF and out[end + 1] == c >> 8
        i = end + 2


def _frame(ctrl, seq, data):
    return c1218.build_packet(ctrl, seq, data)


chunk = st.one_of(
    st.binary(max_size=30),
    st.builds(_frame, st.sampled_from([0, 0x20, 0x80, 0xC0, 0xE0, 0xA0]),
              st.integers(0, 3),
              st.one_of(st.binary(max_size=20),
                        st.sampled_from([b"\x20", b"\x21", b"\x52", b"\x30\x00\x01",
                                         b"\x50\x00\x01" + b" " * 10, b"\x51" + MK,
                                         b"\x61\x00\x40\x02\x06", b"\x70\x01",
                                         b"\x40\x00\x01\x00\x01\x07\xf9"]))),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(chunk, st.integers(0, 3000), st.booleans()), max_size=25),
       st.booleans())
def test_random_bytes_never_break_the_server(chunks, logged_on):
    calls = []

    def execute(req, role, now):
        calls.append(req)
        return b"\x00\x00\x01\x07"

    s = c1218.OpticalSession(execute, ((ROLE_MK, MK),), max_packet=128, max_packets=3)
    now = 0
    if logged_on:       # start inside a session so table services are reachable
        for i, req in enumerate((b"\x20", b"\x50\x00\x01" + b" " * 10)):
            s.feed(_frame(0x20 * (i & 1), 0, req), now)
            s.feed(b"\x06", now)
        assert s.state == c1218.STATE_SESSION
    stream = b""
    for data, gap, poll in chunks:
        now += gap
        if poll and s.deadline is not None and s.deadline <= now:
            check_output(s.poll(now))
        out = s.feed(data, now)
        check_output(out)
        stream += data
        assert s.state in (c1218.STATE_BASE, c1218.STATE_ID, c1218.STATE_SESSION)
        d = s.deadline
        assert d is None or isinstance(d, int)
    assert len(calls) <= valid_frames(stream)
