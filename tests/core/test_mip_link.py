# The Layer-2 MIP link state machine (meter/mip_link.py): sequence numbers
# (0 first, then 1..7, never 0 again), ACKs, duplicates, retries as
# deadlines, MsgReject, Fail, NiResync, NI reset, and NodePort joining a
# PlcNode to the link. Dual runtime (MicroPython: --heapsize 256K).
from osgp_meter import mip
from osgp_meter import lontalk as L
from osgp_meter.crc import crc16_lon, lon_bytes
from osgp_meter.mip_link import Link, NodePort, STATS, SENT, ACKED, RETRIED, FAILED, \
    RECEIVED, DUPLICATES, ERRORS, DROPPED


def h(text):
    return bytes.fromhex(text.replace(" ", ""))


BODY = h("01 19 01 FE 01 85 42 03 30 00 17 00 00 00 0D C7 7F 72 07 2D D8 3C FC")
EXAMPLE = h("7E 12 01 6F") + h("18 12 01 19 01 FE 01 85 42 03 30 00 17 00 00 00 0D C7 7F 72 07 2D D8 3C FC A2")


def ack(seq):
    return mip.code_packet(seq, True, mip.CP_NULL, 0)


def test_first_message_is_the_worked_example():
    host = Link(host=True)
    assert host.send(mip.NI_L2_DOWN, BODY, 0)
    assert host.take() == EXAMPLE            # sequence 0, ACK flag set as DX writes it
    assert host.deadline == 500 and host.busy
    assert host.take() == b""


def test_delivery_ack_and_sequence_numbers_skip_zero():
    host = Link(host=True)
    modem = Link(host=False)
    seqs = []
    for k in range(9):
        host.send(mip.NI_L2_DOWN, bytes((k, 0x7E)), 10 * k)
        b = host.take()
        seqs.append(b[1] >> 5)
        got = modem.feed(b, 10 * k)
        assert got == [(mip.NI_L2_DOWN, bytes((k, 0x7E)))], got
        a = modem.take()
        assert a == ack(seqs[-1])
        assert host.feed(a, 10 * k + 1) == []
        assert not host.busy and host.deadline is None
    assert seqs == [0, 1, 2, 3, 4, 5, 6, 7, 1]
    assert host.stats[SENT] == 9 and host.stats[ACKED] == 9
    assert modem.stats[RECEIVED] == 9 and modem.stats[DUPLICATES] == 0
    # the modem's messages carry no ACK flag on their Msg code packet
    modem.send(mip.NI_L2_UP_PL, b"\x00" + BODY + b"\x00\x00", 100)
    b = modem.take()
    assert b[1] == (0 << 5) | mip.CP_MSG
    assert host.feed(b, 100) == [(mip.NI_L2_UP_PL, b"\x00" + BODY + b"\x00\x00")]
    assert host.take() == ack(0)


def test_lost_ack_retry_is_a_duplicate():
    host = Link(host=True)
    modem = Link(host=False)
    acks = []
    host.on_ack = lambda cmd, pdu, ok, now: acks.append((cmd, pdu, ok, now))
    host.send(mip.NI_L2_DOWN, BODY, 0)
    first = host.take()
    assert modem.feed(first, 1) == [(mip.NI_L2_DOWN, BODY)]
    modem.take()                              # the ACK is lost
    host.poll(499)
    assert host.take() == b""                 # not yet
    host.poll(500)
    again = host.take()
    assert again == first and host.stats[RETRIED] == 1 and host.deadline == 1000
    assert modem.feed(again, 501) == []       # same sequence number: not delivered again
    assert modem.stats[DUPLICATES] == 1
    a = modem.take()
    assert a == ack(0)                        # but acknowledged
    host.feed(a, 502)
    assert acks == [(mip.NI_L2_DOWN, BODY, True, 502)]
    # a new message has a new number and is delivered
    host.send(mip.NI_L2_DOWN, b"\x01\x02", 600)
    assert modem.feed(host.take(), 601) == [(mip.NI_L2_DOWN, b"\x01\x02")]


def test_retries_run_out_then_the_next_message_goes():
    host = Link(host=True, retries=2)
    done = []
    host.on_ack = lambda cmd, pdu, ok, now: done.append((pdu, ok))
    host.send(mip.NI_L2_DOWN, b"\x01", 0)
    host.send(mip.NI_L2_DOWN, b"\x02", 0)
    first = host.take()
    assert first[1] >> 5 == 0
    host.poll(500)
    assert host.take() == first
    host.poll(1000)
    assert host.take() == first
    host.poll(1500)                           # given up; the queued one starts
    nxt = host.take()
    assert done == [(b"\x01", False)]
    assert nxt[1] >> 5 == 1 and nxt.endswith(mip.message_packet(mip.NI_L2_DOWN, b"\x02"))
    assert host.stats[FAILED] == 1 and host.stats[RETRIED] == 2
    assert host.deadline == 2000
    # an ACK with the wrong number acknowledges nothing
    host.feed(ack(0), 1600)
    assert host.busy
    host.feed(ack(1), 1601)
    assert not host.busy and done[-1] == (b"\x02", True)


def test_reject_fail_and_queue_limit():
    host = Link(host=True, queue=2)
    host.send(mip.NI_L2_DOWN, b"\x01", 0)
    b = host.take()
    host.feed(mip.code_packet(0, False, mip.CP_MSG_REJECT, 0), 10)
    assert host.deadline == 110               # sent again after the reject wait
    host.poll(110)
    assert host.take() == b and host.stats[RETRIED] == 1
    host.feed(mip.code_packet(0, False, mip.CP_FAIL, 0), 120)
    assert not host.busy and host.stats[FAILED] == 1
    # queue of 2 waiting behind the one in flight
    assert host.send(mip.NI_L2_DOWN, b"\x02", 200)
    assert host.send(mip.NI_L2_DOWN, b"\x03", 200)
    assert host.send(mip.NI_L2_DOWN, b"\x04", 200)
    assert not host.send(mip.NI_L2_DOWN, b"\x05", 200)
    assert host.stats[DROPPED] == 1


def test_resync_restarts_both_numbers():
    host = Link(host=True)
    modem = Link(host=False)
    for k in range(3):
        host.send(mip.NI_L2_DOWN, bytes((k,)), k)
        modem.feed(host.take(), k)
        host.feed(modem.take(), k)
    host.resync(10)
    b = host.take()
    assert b == mip.code_packet(0, False, mip.CP_RESYNC, 0)
    assert modem.feed(b, 11) == []
    assert modem.take() == ack(0)
    host.feed(ack(0), 12)                     # nothing in flight: ignored
    host.send(mip.NI_L2_DOWN, b"\x09", 20)
    b = host.take()
    assert b[1] >> 5 == 0
    assert modem.feed(b, 21) == [(mip.NI_L2_DOWN, b"\x09")]   # not taken for a duplicate


def test_peer_reset_restarts_our_numbering_and_resends():
    host = Link(host=True)
    modem = Link(host=False)
    host.send(mip.NI_L2_DOWN, b"\x01", 0)
    modem.feed(host.take(), 0)
    host.feed(modem.take(), 0)
    host.send(mip.NI_L2_DOWN, b"\x02", 5)
    lost = host.take()
    assert lost[1] >> 5 == 1
    # the modem resets: its reset message (layer 2, channel 30)
    modem2 = Link(host=False)
    modem2.send(mip.NI_RESET, b"\x01\x1e", 10)
    got = host.feed(modem2.take(), 10)
    assert got == [(mip.NI_RESET, b"\x01\x1e")]
    out = host.take()
    assert out.startswith(ack(0))
    again = out[4:]
    assert again[1] >> 5 == 0 and again.endswith(mip.message_packet(mip.NI_L2_DOWN, b"\x02"))
    assert modem2.feed(again, 11) == [(mip.NI_L2_DOWN, b"\x02")]


def test_short_commands_and_byte_at_a_time():
    host = Link(host=True)
    modem = Link(host=False)
    host.send_short(mip.NI_SET_L2, 0)
    b = host.take()
    assert b == mip.code_packet(0, False, mip.CP_SHORT_NI, mip.NI_SET_L2)
    got = []
    for x in b:
        got += modem.feed(bytes((x,)), 1)
    assert got == [(mip.NI_SET_L2, b"")]
    host.feed(modem.take(), 2)
    assert not host.busy
    # a corrupted message is not acknowledged; the retry gets through
    host.send(mip.NI_L2_DOWN, BODY, 10)
    b = bytearray(host.take())
    good = bytes(b)
    b[10] ^= 0x01
    assert modem.feed(bytes(b), 11) == []
    assert modem.take() == b"" and modem.stats[ERRORS] == 1
    host.poll(510)
    assert modem.feed(host.take(), 511) == [(mip.NI_L2_DOWN, BODY)]
    assert good[1] >> 5 == 1
    assert len(STATS) == 8


def test_node_port_answers_an_osgp_read_through_the_link():
    import plc_util as U
    node, meter = U.node()
    port = NodePort(node)
    modem = Link(host=False)
    port.start(0)
    assert modem.feed(port.take(), 0) == [(mip.NI_SET_L2, b"")]
    port.feed(modem.take(), 1)
    apdu, st, base = U.osgp(13, h("30 00 01"))
    frame = U.frame(tid=3, apdu=apdu)
    modem.send(mip.NI_L2_UP_PL, b"\x00" + frame + bytes((21, 90)), 5)
    port.feed(modem.take(), 5)
    assert node.signal == 4                   # the SNR byte (21 dB) reached the node
    out = port.take()
    assert out.startswith(ack(0))
    got = modem.feed(out, 6)                  # our ACK, then the answer
    assert len(got) == 1 and got[0][0] == mip.NI_L2_DOWN
    body = got[0][1]
    resp = body + lon_bytes(crc16_lon(body))  # the modem adds the CRC
    plain = U.answer([resp], st)
    assert plain == h("00 00 18") + U.BT01
    f = L.decode(resp)
    assert (f.src_subnet, f.src_node, f.dst_subnet, f.dst_node) == (1, 5, 1, 126)
    # a PL runt is a CRC error report, not a frame
    modem.send(mip.NI_L2_UP_PL, b"\x00\x05\x50", 7)
    port.feed(modem.take(), 7)
    assert port.crc_errors == 1
    # the meter's own work runs at its deadline through `extra`
    ticks = []
    port.extra = lambda now: ticks.append(now) or None
    port.extra_due = 100
    assert port.deadline == 100
    port.poll(100)
    assert ticks == [100] and port.extra_due is None
