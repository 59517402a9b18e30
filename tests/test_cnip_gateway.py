"""The CN/IP gateway (tools/cnip_gateway.py) seen from outside: a client made
only of a UDP socket and bytes. Nothing in the client part imports the
project: the CN/IP header, the LonTalk frame, its CRC, the OSGP request and
its OMA digest are built here by hand (a tiny independent OMA digest and
CRC-16/GENIBUS, checked first against the reference 2.1 bytes), and the
answer is taken apart by hand. Only the fleet behind the gateway comes from
the project. Plus: the DC over CN/IP, peers learned and relayed, bad
datagrams counted."""
import socket
import time

import pytest

# ----------------------------------------------------------------------------
# The client: bytes only (reference lontalk-transport-security.md 1, 2, 4.1)


def oma_digest(key, msg):
    """OMA digest, written from reference 4.1: 8 zero state bytes; N = L +
    L/2 key-byte steps per pass of 8 N message bytes; zero padding to whole
    passes (one pass for an empty message); step t: j = 7 - t % 8, key bit
    t % 8 of key[(t // 8) % N % L], n = NOT(a[j] + j), a[j] = a[j+1] + m +
    ROTL1(n) if the bit is 1 else a[j+1] + m - ROTR1(n)."""
    L = len(key)
    n = L + L // 2 if L != 6 else 6
    block = 8 * n
    msg = bytes(msg)
    total = max(1, -(-len(msg) // block)) * block
    msg = msg + bytes(total - len(msg))
    a = [0] * 8
    for t in range(total):
        j = 7 - t % 8
        bit = (key[(t // 8) % n % L] >> (t % 8)) & 1
        x = (~(a[j] + j)) & 0xFF
        if bit:
            a[j] = (a[(j + 1) % 8] + msg[t] + (((x << 1) | (x >> 7)) & 0xFF)) & 0xFF
        else:
            a[j] = (a[(j + 1) % 8] + msg[t] - (((x >> 1) | (x << 7)) & 0xFF)) & 0xFF
    return bytes(a)


def crc16_genibus(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc ^ 0xFFFF


def cnip_packet(frame, session=0x12345678, seq=1, stamp=0):
    n = 20 + len(frame)
    return (n.to_bytes(2, "big") + b"\x01\x01\x00\x00\x00\x00" + session.to_bytes(4, "big")
            + seq.to_bytes(4, "big") + stamp.to_bytes(4, "big") + frame)


def lon_request(src, dst, domain, tid, apdu):
    """L2 header (delta backlog 1), NPDU (SPDU, 2a, 1-byte domain), address,
    domain, SPDU REQUEST, APDU, CRC high byte first."""
    body = bytes((0x01, 0x19, src[0], 0x80 | src[1], dst[0], 0x80 | dst[1])) + domain \
        + bytes((tid,)) + apdu
    return body + crc16_genibus(body).to_bytes(2, "big")


def test_the_hand_written_client_parts_match_the_reference_example():
    key = bytes(range(1, 13))
    assert oma_digest(key, bytes.fromhex("30 00 17 00 00 00 0D")) == bytes.fromhex("C7 7F 72 07 2D D8 3C FC")
    assert oma_digest(bytes([0xDF] * 12), bytes.fromhex(
        "02 02 00 30 00 03 7F 30 EA 6D 00 00 00 0D 00 20 98 00 31 C3 00 08 00 00 00 00 00 11")) \
        == bytes.fromhex("DB E5 CD E5 07 B1 CB 3D")
    req = bytes.fromhex("30 00 17 00 00 00 0D") + oma_digest(key, bytes.fromhex("30 00 17 00 00 00 0D"))
    frame = lon_request((1, 126), (1, 5), b"\x42", 3, req)
    assert cnip_packet(frame) == bytes.fromhex(
        "00 2D 01 01 00 00 00 00 12 34 56 78 00 00 00 01 00 00 00 00"
        "01 19 01 FE 01 85 42 03 30 00 17 00 00 00 0D C7 7F 72 07 2D D8 3C FC 73 4C")


# ----------------------------------------------------------------------------
# The fleet behind the gateway (project code)

@pytest.fixture
def gateway():
    from osgp_host.dc import LocalFleet
    from osgp_host.cnip_gateway import CnipGateway
    fleet = LocalFleet("small", seed=2)
    gw = CnipGateway(fleet.channel, port=0)          # any free port on 127.0.0.1
    th = gw.serve_in_thread()
    yield fleet, gw
    gw.stop()
    th.join(5)


def _answers(sock, want, deadline):
    """CN/IP packets from the gateway until `want(frame)` or the deadline."""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data, _ = sock.recvfrom(2048)
        except socket.timeout:
            break
        assert len(data) >= 20 and int.from_bytes(data[:2], "big") == len(data)
        assert data[2] == 0x01 and data[3] == 0x01 and data[5] & 0x1F == 0
        frame = data[20 + 4 * data[4]:]
        if want(frame):
            return data, frame
    return None, None


def test_a_bytes_only_client_reads_bt01_over_cnip(gateway):
    fleet, gw = gateway
    key = bytes(range(1, 13))                 # the default profile's PLC unicast key
    bt01 = fleet.firmware["m003"].meter.store.read(1, 0, 24)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        # meter m003 is 1/3 in domain 42; a fresh meter holds sequence number 0
        msg = bytes.fromhex("30 00 01") + (1).to_bytes(4, "big")
        request = msg + oma_digest(key, msg)
        frame = lon_request((1, 126), (1, 3), b"\x42", 5, request)
        sock.sendto(cnip_packet(frame, seq=1), gw.address)

        def is_answer(f):
            return len(f) > 8 and f[1] == 0x19 and f[2:6] == bytes((1, 0x83, 1, 0xFE)) \
                and f[6] == 0x42 and f[7] == 0x25            # SPDU RESPONSE, tid 5
        data, f = _answers(sock, is_answer, time.monotonic() + 5)
        assert f is not None, "no answer from 1/3 over CN/IP"
        assert crc16_genibus(f[:-2]).to_bytes(2, "big") == f[-2:]
        assert f[0] & 0x3F == 0                      # a response: delta backlog 0
        apdu = f[8:-2]
        body, digest = apdu[:-8], apdu[-8:]
        assert body == bytes.fromhex("00 00 18") + bt01
        assert digest == oma_digest(key, msg + body)  # over request || response
        assert body[3:7] == b"EMUL"
        # a retry of the same bytes (same sequence number and digest) in a new
        # LonTalk transaction gets the same answer from the meter's cache
        sock.sendto(cnip_packet(lon_request((1, 126), (1, 3), b"\x42", 6, request), seq=2),
                    gw.address)
        data, f2 = _answers(sock, lambda g: len(g) > 8 and g[2:4] == bytes((1, 0x83)) and g[7] == 0x26,
                            time.monotonic() + 5)
        assert f2 is not None and f2[8:-2] == apdu
        # an old sequence number with a new request: 0x0C and the number the
        # meter holds (the digest covers request || response)
        other = bytes.fromhex("30 00 03") + (1).to_bytes(4, "big")
        sock.sendto(cnip_packet(lon_request((1, 126), (1, 3), b"\x42", 7,
                                            other + oma_digest(key, other)), seq=3), gw.address)
        data, f3 = _answers(sock, lambda g: len(g) > 8 and g[2:4] == bytes((1, 0x83)) and g[7] == 0x27,
                            time.monotonic() + 5)
        assert f3 is not None
        body3, dig3 = f3[8:-2][:-8], f3[8:-2][-8:]
        assert body3 == bytes.fromhex("0C 00 00 00 01") and dig3 == oma_digest(key, other + body3)
    finally:
        sock.close()
    assert gw.stats["injected"] == 3 and gw.stats["bad"] == 0


def test_the_dc_over_cnip_and_peer_handling(gateway):
    from osgp_host.dc import DC
    from osgp_host.plc_client import PlcTimeout
    fleet, gw = gateway
    dc = DC(cnip=gw.address, key=fleet.key, retries=0, tx_retries=1)
    try:
        assert dc.read((1, 1), "BT01") == fleet.firmware["m001"].meter.store.read(1, 0, 24)
        assert dc.call((1, 2), "BP10", bytes.fromhex("03 1a 0b 1a 0c 22 38"))[0] == 0
        with pytest.raises(PlcTimeout):
            dc.read((1, 77), "BT01")
        # a second peer registers with any datagram (a one-byte hello) and then
        # gets the channel's frames, including the DC's requests relayed
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        other.bind(("127.0.0.1", 0))
        try:
            other.sendto(b"\x00", gw.address)
            deadline = time.monotonic() + 2
            while len(gw.peers) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(gw.peers) == 2 and gw.bad.get("short") == 1
            dc.read((1, 4), "BT01", offset=0, count=4)
            seen = []
            other.settimeout(1.0)
            try:
                while len(seen) < 2:
                    seen.append(other.recvfrom(2048)[0])
            except socket.timeout:
                pass
            # the DC's request (relayed by the gateway) and the meter's answer
            assert sorted((p[20 + 3], p[20 + 5]) for p in seen) == [(0x84, 0xFE), (0xFE, 0x84)]
        finally:
            other.close()
    finally:
        dc.close()
    assert gw.stats["relayed"] >= 1


def test_a_second_dc_inside_the_process_while_the_gateway_runs_the_loop():
    # the gateway's thread runs the simulation (real time); a DC attached at
    # another position posts its requests to that loop (drive=False)
    from osgp_host.dc import LocalFleet
    from osgp_host.cnip_gateway import CnipGateway
    fleet = LocalFleet("small", exclude=("m005",))
    gw = CnipGateway(fleet.channel, port=0)
    th = gw.serve_in_thread()
    try:
        dc = fleet.dc(node_id="m005", node=125, drive=False)
        assert dc.read("m002", "BT01") == fleet.firmware["m002"].meter.store.read(1, 0, 24)
        assert dc.read("m004", "BT52", offset=0, count=6)[:1] == bytes((26,))
    finally:
        gw.stop()
        th.join(5)
