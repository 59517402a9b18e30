# Dual-runtime tests of the optical port (ANSI C12.18 server, meter/c1218.py).
#
# Expected frames are built here by hand with a slow bitwise CRC-16/X-25, so
# the tests do not trust the module's own CRC or framing code.
from osgp_meter import c1218
from osgp_meter.access import ROLE_MK, ROLE_PK, ROLE_RK, ROLE_NONE

MK = b"M" * 20
PK = b"provisioning"        # shorter than 20: zero-padded by the session
RK = b"R" * 20
KEYS = ((ROLE_MK, MK), (ROLE_PK, PK), (ROLE_RK, RK))


# -- references ----------------------------------------------------------------

def ref_crc(data):
    c = 0xFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            if c & 1:
                c = (c >> 1) ^ 0x8408
            else:
                c >>= 1
    return c ^ 0xFFFF


def frame(ctrl, seq, data):
    body = bytes([0xEE, 0x00, ctrl, seq, len(data) >> 8, len(data) & 0xFF]) + data
    c = ref_crc(body)
    return body + bytes([c & 0xFF, c >> 8])


def cks(data):
    s = 0
    for b in data:
        s += b
    return (256 - (s & 0xFF)) & 0xFF


def unframe(b):
    """Parse exactly one frame; return (ctrl, seq, data)."""
    assert b[0] == 0xEE and b[1] == 0x00, b
    n = (b[4] << 8) | b[5]
    assert len(b) == 8 + n, (len(b), n)
    c = ref_crc(b[:6 + n])
    assert b[6 + n] == c & 0xFF and b[7 + n] == c >> 8
    return b[2], b[3], b[6:6 + n]


class Exec:
    """Fake application core: records calls, returns canned responses."""

    def __init__(self, resp=b"\x00"):
        self.calls = []
        self.resp = resp
        self.fail = False

    def __call__(self, request, role, now):
        self.calls.append((bytes(request), role, now))
        if self.fail:
            raise ValueError("boom")
        return self.resp


class Peer:
    """A hand-driven client: builds frames with its own toggle bit."""

    def __init__(self, **kw):
        self.ex = Exec()
        self.s = c1218.OpticalSession(self.ex, KEYS, **kw)
        self.t = 0
        self.now = 0

    def send(self, data, ctrl=0, seq=0):
        pkt = frame(ctrl | self.t, seq, data)
        self.t ^= 0x20
        return pkt, self.s.feed(pkt, self.now)

    def ask(self, data):
        """Send one request; expect ACK + one frame; ACK it; return data."""
        pkt, out = self.send(data)
        assert out[:1] == b"\x06", out
        ctrl, seq, resp = unframe(out[1:])
        assert ctrl & 0xDF == 0 and seq == 0
        assert self.s.feed(b"\x06", self.now) == b""
        return resp

    def session(self, password=None):
        assert self.ask(b"\x20") == b"\x00\x00\x01\x00\x00"
        assert self.ask(b"\x50\x00\x07" + b"tester    ") == b"\x00"
        if password is not None:
            assert self.ask(b"\x51" + password) == b"\x00"


# -- framing -------------------------------------------------------------------

def test_crc_reference_and_builder():
    assert ref_crc(b"123456789") == 0x906E
    # the classic Ident request packet
    assert frame(0, 0, b"\x20") == bytes([0xEE, 0, 0, 0, 0, 1, 0x20, 0x13, 0x10])
    for ctrl, seq, data in ((0, 0, b""), (0x20, 0, b"\x20"), (0xC0, 3, bytes(range(200)))):
        assert c1218.build_packet(ctrl, seq, data) == frame(ctrl, seq, data)


def test_packetize_counts_down():
    pkts, t = c1218.packetize(bytes(range(10)), 4, 0x20)
    assert t == 0
    assert pkts == [frame(0xE0, 2, bytes([0, 1, 2, 3])), frame(0x80, 1, bytes([4, 5, 6, 7])),
                    frame(0xA0, 0, bytes([8, 9]))]
    pkts, t = c1218.packetize(b"\x00", 4, 0)
    assert pkts == [frame(0, 0, b"\x00")] and t == 0x20


def test_ident_exact_bytes():
    p = Peer()
    out = p.s.feed(bytes([0xEE, 0, 0, 0, 0, 1, 0x20, 0x13, 0x10]), 0)
    assert out == b"\x06" + frame(0x00, 0, b"\x00\x00\x01\x00\x00")
    assert p.s.state == c1218.STATE_ID
    assert p.s.feed(b"\x06", 1) == b""


def test_bad_crc_is_naked_and_dropped():
    p = Peer()
    pkt = bytearray(frame(0, 0, b"\x20"))
    pkt[-1] ^= 0xFF
    assert p.s.feed(bytes(pkt), 0) == b"\x15"
    assert p.s.state == c1218.STATE_BASE
    # the retransmission goes through
    assert p.s.feed(frame(0, 0, b"\x20"), 10)[:1] == b"\x06"


def test_stray_bytes_and_split_feed():
    p = Peer()
    # wake-up bytes, a false start (EE with identity != 0), then the packet
    noise = b"\x55\x55\x55\x55\xee\x01\x02"
    out = p.s.feed(noise + frame(0, 0, b"\x20"), 0)
    assert out[:1] == b"\x06" and unframe(out[1:])[2] == b"\x00\x00\x01\x00\x00"
    p.s.feed(b"\x06", 0)
    # byte by byte
    pkt = frame(0x20, 0, b"\x50\x00\x01" + b"x" * 10)
    got = b""
    for i in range(len(pkt)):
        got += p.s.feed(pkt[i:i + 1], i)
    assert got[:1] == b"\x06" and unframe(got[1:])[2] == b"\x00"
    assert p.s.state == c1218.STATE_SESSION and p.s.user_id == 1


def test_oversized_length_is_not_a_packet():
    p = Peer(max_packet=64)
    junk = bytes([0xEE, 0, 0, 0, 0x10, 0x00])     # length 4096 > 56
    out = p.s.feed(junk + frame(0, 0, b"\x20"), 0)
    assert out[:1] == b"\x06" and p.s.state == c1218.STATE_ID


def test_duplicate_toggle_acked_not_processed():
    p = Peer()
    p.session(MK)
    p.ex.resp = b"\x00\x00\x01\x2a"
    pkt, out = p.send(b"\x30\x00\x01")
    assert out[:1] == b"\x06" and len(p.ex.calls) == 1
    # ACK lost: the client repeats the same packet (same toggle, same CRC)
    assert p.s.feed(pkt, 5) == b"\x06"
    assert len(p.ex.calls) == 1
    assert p.s.feed(b"\x06", 6) == b""
    # same toggle but new content: a new packet (toggle + CRC decide)
    p.t ^= 0x20
    pkt2, out = p.send(b"\x30\x00\x02")
    assert pkt2[2] == pkt[2] and out[:1] == b"\x06" and len(p.ex.calls) == 2


def test_full_session_byte_exact():
    p = Peer()
    assert p.ask(b"\x20") == b"\x00\x00\x01\x00\x00"
    # negotiate 128-byte packets, 2 packets, 9600 bd
    assert p.ask(b"\x61\x00\x80\x02\x06") == b"\x00\x00\x80\x02\x06"
    assert p.s.packet_size == 128 and p.s.packets == 2 and p.s.baud_code == 6
    assert p.ask(b"\x50\x12\x34" + b"operator  ") == b"\x00"
    assert p.s.user_id == 0x1234 and p.s.role == ROLE_NONE
    assert p.ask(b"\x51" + MK) == b"\x00"
    assert p.s.role == ROLE_MK
    # full read: checksum appended to the core's answer
    p.ex.resp = b"\x00\x00\x03\xaa\xbb\xcc"
    p.now = 100
    assert p.ask(b"\x30\x00\x01") == b"\x00\x00\x03\xaa\xbb\xcc" + bytes([cks(b"\xaa\xbb\xcc")])
    assert p.ex.calls[-1] == (b"\x30\x00\x01", ROLE_MK, 100)
    # partial read
    p.ex.resp = b"\x00\x00\x02\x01\x02"
    assert p.ask(b"\x3f\x08\x03\x00\x00\x10\x00\x02") == b"\x00\x00\x02\x01\x02\xfd"
    assert p.ex.calls[-1][0] == b"\x3f\x08\x03\x00\x00\x10\x00\x02"
    # full write: checksum verified and stripped
    p.ex.resp = b"\x00"
    data = b"\x11\x08\x07\x00"
    assert p.ask(b"\x40\x00\x07\x00\x04" + data + bytes([cks(data)])) == b"\x00"
    assert p.ex.calls[-1][0] == b"\x40\x00\x07\x00\x04" + data
    # partial write
    assert p.ask(b"\x4f\x00\x35\x00\x00\x02\x00\x01\x09" + bytes([cks(b"\x09")])) == b"\x00"
    assert p.ex.calls[-1][0] == b"\x4f\x00\x35\x00\x00\x02\x00\x01\x09"
    # a core error passes through unchanged, without checksum
    p.ex.resp = b"\x05"
    assert p.ask(b"\x30\x07\xff") == b"\x05"
    assert p.ask(b"\x70\x05") == b"\x00"                 # wait
    assert p.ask(b"\x52") == b"\x00"                     # logoff
    assert p.s.state == c1218.STATE_ID and p.s.user_id == 0xFFFF and p.s.role == ROLE_NONE
    assert p.ask(b"\x21") == b"\x00"                     # terminate
    assert p.s.state == c1218.STATE_BASE
    assert p.s.deadline is None
    assert len(p.ex.calls) == 5


def test_services_out_of_order_isss():
    p = Peer()
    every = (b"\x21", b"\x30\x00\x01", b"\x3f\x00\x01\x00\x00\x00\x00\x01",
             b"\x40\x00\x01\x00\x01\x01\xff", b"\x50\x00\x01" + b" " * 10, b"\x51" + MK,
             b"\x52", b"\x60\x00\x40\x01", b"\x61\x00\x40\x01\x06", b"\x70\x01")
    for req in every:                       # base state: only Ident
        assert p.ask(req) == b"\x0a", req
    assert p.s.state == c1218.STATE_BASE
    assert p.ask(b"\x20")[0] == 0
    for req in every[1:4] + (b"\x51" + MK, b"\x52", b"\x20"):   # ID state
        assert p.ask(req) == b"\x0a", req
    assert p.s.state == c1218.STATE_ID
    assert p.ask(b"\x70\x01") == b"\x00"
    assert p.ask(b"\x60\x00\x40\x01") == b"\x00\x00\x40\x01\x06"
    assert p.ask(b"\x50\x00\x01" + b" " * 10) == b"\x00"
    for req in (b"\x20", b"\x50\x00\x01" + b" " * 10, b"\x60\x00\x40\x01",
                b"\x61\x00\x40\x01\x06"):   # session state
        assert p.ask(req) == b"\x0a", req
    assert p.s.state == c1218.STATE_SESSION
    assert p.ex.calls == []


def test_wrong_password_isc_stays_logged_on():
    p = Peer()
    p.session()
    assert p.ask(b"\x51" + b"x" * 20) == b"\x03"
    assert p.s.state == c1218.STATE_SESSION and p.s.role == ROLE_NONE
    p.ex.resp = b"\x00\x00\x00"
    assert p.ask(b"\x30\x00\x00") == b"\x00\x00\x00\x00"
    assert p.ex.calls[-1][1] == ROLE_NONE
    # padded short key, and security may be repeated
    assert p.ask(b"\x51" + PK + bytes(8)) == b"\x00" and p.s.role == ROLE_PK
    assert p.ask(b"\x51" + RK) == b"\x00" and p.s.role == ROLE_RK
    p.ask(b"\x30\x00\x00")
    assert p.ex.calls[-1][1] == ROLE_RK
    assert p.ask(b"\x51" + MK[:19] + b"m") == b"\x03" and p.s.role == ROLE_NONE


def test_logon_without_security_is_role_none():
    p = Peer()
    p.session()
    p.ex.resp = b"\x03"
    assert p.ask(b"\x30\x00\x2d") == b"\x03"
    assert p.ex.calls == [(b"\x30\x00\x2d", ROLE_NONE, 0)]


def test_write_bad_checksum_err_no_execute():
    p = Peer()
    p.session(MK)
    assert p.ask(b"\x40\x00\x07\x00\x02\x01\x02\x00") == b"\x01"
    assert p.ask(b"\x4f\x00\x07\x00\x00\x01\x00\x01\x05\x00") == b"\x01"
    assert p.ex.calls == []


def test_sns_err_and_malformed():
    p = Peer()
    p.session(MK)
    for code in list(range(0x31, 0x3A)) + [0x3E] + list(range(0x41, 0x4A)):
        assert p.ask(bytes([code, 0, 1, 0, 0, 0, 0, 1])) == b"\x02", code
    for req in (b"\x99", b"\x00", b"\x22", b"\x53", b"", b"\x6c\x00\x40\x01",
                b"\x30\x00", b"\x3f\x00\x01\x00", b"\x40\x00\x01\x00\x05\x01\x01",
                b"\x40\x00\x01", b"\x51" + MK[:10], b"\x52\x00", b"\x70", b"\x21\x00"):
        assert p.ask(req) == b"\x01", req
    assert p.ex.calls == []
    # the MEP form of a full read (with a length) is accepted, length dropped
    p.ex.resp = b"\x00\x00\x00"
    p.ask(b"\x30\x00\x01\x00\x10")
    assert p.ex.calls[-1][0] == b"\x30\x00\x01"


def test_execute_exception_answers_err():
    logs = []
    p = Peer(log=logs.append)
    p.session(MK)
    p.ex.fail = True
    assert p.ask(b"\x30\x00\x01") == b"\x01"
    assert len(logs) == 1


def test_negotiate_limits_and_baud():
    p = Peer(max_packet=256, max_packets=4, bauds=(6, 8))
    p.ask(b"\x20")
    # packet size and count are clamped; fastest supported offered baud wins
    pkt, out = p.send(b"\x63\x10\x00\x09\x04\x08\x0a")
    assert unframe(out[1:])[2] == b"\x00\x01\x00\x04\x08"
    assert p.s.packet_size == 256 and p.s.packets == 4
    assert p.s.baud_code == 6                 # still 9600 until the ACK
    p.s.feed(b"\x06", 0)
    assert p.s.baud_code == 8
    assert p.ask(b"\x60\x00\x08\x01") == b"\x01"          # too small a packet
    assert p.ask(b"\x60\x00\x40\x00") == b"\x01"          # zero packets
    assert p.ask(b"\x61\x00\x40\x01\x0a") == b"\x00\x00\x40\x01\x08"  # unsupported: unchanged
    pkt, out = p.send(b"\x21")
    assert unframe(out[1:])[2] == b"\x00" and p.s.state == c1218.STATE_BASE
    assert p.s.baud_code == 8                 # the Terminate response goes at 19200
    p.s.feed(b"\x06", 0)
    assert p.s.baud_code == 6 and p.s.packet_size == 64 and p.s.packets == 1


def test_multi_packet_response():
    p = Peer()
    p.ask(b"\x20")
    assert p.ask(b"\x61\x00\x40\x04\x06") == b"\x00\x00\x40\x04\x06"
    p.ask(b"\x50\x00\x01" + b" " * 10)
    data = bytes(range(100))
    p.ex.resp = b"\x00\x00\x64" + data
    want = p.ex.resp + bytes([cks(data)])      # 104 bytes = 56 + 48
    pkt, out = p.send(b"\x30\x00\x17")
    assert out[:1] == b"\x06"
    ctrl, seq, d1 = unframe(out[1:])
    assert ctrl & 0xC0 == 0xC0 and seq == 1 and len(d1) == 56
    assert p.s.feed(b"\x15", 1) == out[1:]     # NAK: same packet again
    out2 = p.s.feed(b"\x06", 2)
    ctrl2, seq2, d2 = unframe(out2)
    assert ctrl2 & 0xC0 == 0x80 and seq2 == 0 and (ctrl2 ^ ctrl) & 0x20
    assert d1 + d2 == want
    assert p.s.feed(b"\x06", 3) == b""
    assert p.s.deadline == 3 + 6000
    # too large for 4 packets of 64: ONP
    p.ex.resp = b"\x00\x01\x00" + bytes(256)
    assert p.ask(b"\x30\x00\x17") == b"\x04"


def test_multi_packet_request():
    p = Peer()
    p.ask(b"\x20")
    p.ask(b"\x61\x00\x40\x03\x06")
    p.ask(b"\x50\x00\x01" + b" " * 10)
    p.ask(b"\x51" + MK)
    data = bytes(range(90))
    req = b"\x40\x00\x07\x00\x5a" + data + bytes([cks(data)])   # 96 bytes
    part1, part2 = req[:56], req[56:]
    pkt, out = p.send(part1, 0xC0, 1)
    assert out == b"\x06" and p.ex.calls == []
    pkt, out = p.send(part2, 0x80, 0)
    assert out[:1] == b"\x06" and unframe(out[1:])[2] == b"\x00"
    assert p.ex.calls == [(req[:-1], ROLE_MK, 0)]
    p.s.feed(b"\x06", 0)
    # a continuation that does not follow is dropped with the partial message
    pkt, out = p.send(part1, 0xC0, 1)
    pkt, out = p.send(part2, 0x80, 5)
    assert out == b"\x06" and len(p.ex.calls) == 1
    # more packets than negotiated (3): ACKed, then answered ONP
    for seq in (3, 2, 1):
        pkt, out = p.send(b"\x40", 0xC0 if seq == 3 else 0x80, seq)
        assert out == b"\x06"
    pkt, out = p.send(b"\x00", 0x80, 0)
    assert unframe(out[1:])[2] == b"\x04" and len(p.ex.calls) == 1


def test_inter_character_timeout():
    p = Peer()
    pkt = frame(0, 0, b"\x20")
    assert p.s.feed(pkt[:4], 0) == b""
    assert p.s.deadline == 500
    assert p.s.poll(499) == b""
    assert p.s.feed(pkt[4:6], 499) == b""
    assert p.s.deadline == 999
    assert p.s.poll(999) == b""
    assert p.s.deadline is None
    # the tail arriving late is not a packet
    assert p.s.feed(pkt[6:], 1000) == b""
    assert p.s.state == c1218.STATE_BASE
    # and a late tail fed without poll is dropped too
    assert p.s.feed(pkt[:4], 2000) == b""
    assert p.s.feed(pkt[4:], 2600) == b""
    assert p.s.feed(pkt, 2700)[:1] == b"\x06"


def test_response_retries_then_base():
    p = Peer()
    pkt, out = p.send(b"\x20")
    resp = out[1:]
    assert p.s.deadline == 2000
    assert p.s.poll(1999) == b""
    for k in (1, 2, 3):
        assert p.s.poll(2000 * k) == resp
        assert p.s.deadline == 2000 * (k + 1)
    assert p.s.state == c1218.STATE_ID
    assert p.s.poll(8000) == b""            # given up; traffic timer long past
    assert p.s.state == c1218.STATE_BASE
    assert p.s.deadline is None


def test_new_packet_is_implicit_ack():
    p = Peer()
    pkt, out = p.send(b"\x20")              # response not ACKed
    out = p.s.feed(frame(p.t, 0, b"\x50\x00\x02" + b" " * 10), 10)
    assert out[:1] == b"\x06" and unframe(out[1:])[2] == b"\x00"
    assert p.s.user_id == 2


def test_channel_traffic_timeout_and_wait():
    p = Peer()
    p.now = 1000
    p.session(MK)
    assert p.s.deadline == 7000
    assert p.s.poll(6999) == b""
    assert p.s.state == c1218.STATE_SESSION
    p.now = 6999
    assert p.ask(b"\x70\x0a") == b"\x00"    # wait 10 s
    assert p.s.deadline == 16999
    assert p.s.poll(16998) == b"" and p.s.state == c1218.STATE_SESSION
    assert p.s.poll(16999) == b""
    assert p.s.state == c1218.STATE_BASE and p.s.role == ROLE_NONE
    assert p.s.user_id == 0xFFFF and p.s.deadline is None
    # a table request after the timeout is out of sequence
    p.now = 17000
    assert p.ask(b"\x30\x00\x01") == b"\x0a"
    # a late request fed without poll sees the timeout first
    p.ask(b"\x20")
    p.now = 30000
    assert p.ask(b"\x50\x00\x01" + b" " * 10) == b"\x0a"


def test_instances_are_cheap():
    # __slots__ on both classes (MicroPython ignores it, CPython drops __dict__)
    assert "tx" in c1218.OpticalSession.__slots__
    assert "buf" in c1218.LinkReceiver.__slots__
