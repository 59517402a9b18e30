# The Layer-2 MIP serial link as a state machine, sans-IO and portable: the
# message transfer between a host LonTalk stack and a PLC transceiver (the
# "MIP/U50 link" of reference lontalk-transport-security.md 5 B) on top of
# the framing in mip.py. Both ends use it: tools/modem.py (the emulated
# modem) and the host side (NodePort below: a PlcNode behind a modem, as a
# board running board/main.py has it). docs/connectors.md describes it.
#
# What follows [DX lon_usb_link.c]:
#   * each direction has its own 3-bit sequence number; the first message
#     after start or resync carries 0, later ones 1..7 in turn, never 0
#     again (IncrementDownlinkSequence);
#   * a message is a Msg code packet (seq, parameter 1) + its message packet;
#     a short NI command is a ShortNiCmd code packet (parameter = command);
#   * the receiver owes an ACK for each; it goes out as the next code packet
#     with the ACK flag and the acknowledged sequence number (a Null code
#     packet when nothing else is to be sent: ProcessNextDownlinkMessage);
#   * a code packet repeating the last sequence number received is a
#     duplicate: acknowledged again, not delivered (uplink_duplicate);
#   * NiResync (cmd 7) sets both sequence numbers to 0; an NI reset (0x50)
#     received restarts the sender's numbering at 0;
#   * MsgReject (cmd 5): the peer has no room; Fail (cmd 1): the message
#     failed and is not repeated (ClearUplinkTransaction);
#   * ACK wait 500 ms (DEFAULT_READ_TIMEOUT / ACK_WAIT_TIME).
# EMULATOR PROFILE (DX is silent or does otherwise):
#   * stop-and-wait: one message in flight, up to QUEUE waiting;
#   * an ACK is a Null (or MsgAck) code packet with the ACK flag and the
#     acknowledged sequence number, sent at once; only such packets
#     acknowledge, and only when the number matches the message in flight
#     (DX takes the ACK flag of any code packet, Msg included, as an ACK of
#     whatever is in flight). The ACK flag of a Msg code packet is set by
#     the host (DX sets it on every downlink Msg) and clear from the modem;
#     receivers ignore it;
#   * no ACK within ack_wait_ms: the same bytes again, `retries` times (DX
#     gives up after the first wait and later asks for an ND status), then
#     the message is dropped (stats "failed") and the next one goes;
#   * MsgReject: the same bytes again after reject_wait_ms (one of the
#     `retries`); a Resync is acknowledged with a Null ACK of sequence 0;
#   * the last received sequence number is forgotten after a resync or an
#     NI reset, so the first message after it is never a "duplicate".
from . import mip
from .lontalk import FrameError

ACK_WAIT_MS = 500        # [DX ACK_WAIT_TIME]
RETRIES = 2              # emulator: repeats after the first wait
REJECT_WAIT_MS = 100     # emulator: back-off after a MsgReject
QUEUE = 16               # emulator: messages waiting to be sent

# stats indices
SENT = 0          # messages (and short NI commands) sent, first tries
ACKED = 1         # acknowledged
RETRIED = 2       # repeats (timeouts and rejects)
FAILED = 3        # given up (retries exhausted, Fail from the peer)
RECEIVED = 4      # delivered to the user
DUPLICATES = 5    # received again, acknowledged, not delivered
ERRORS = 6        # framing errors from the parser
DROPPED = 7       # queue full on send()
STATS = ("sent", "acked", "retried", "failed", "received", "duplicates", "errors", "dropped")


class Link:
    """One end of a MIP link. host=True: the host side (Msg code packets
    carry the ACK flag, as DX writes them); False: the modem side.

    send(ni_cmd, pdu, now) -> False when the queue is full
    feed(data, now) -> [(ni_cmd, pdu)] delivered messages (short NI
                       commands as (cmd, b""))
    poll(now)         retries when `deadline` has come
    take()  -> bytes  everything to write to the line, then empty
    deadline          driver ms of the next retry, or None
    resync(now)       send NiResync and restart both sequence numbers
    """

    __slots__ = ("host", "ack_wait_ms", "retries", "reject_wait_ms", "queue_max", "parser",
                 "stats", "on_ack", "_seq", "_cur", "_cur_seq", "_cur_item", "_left", "_due",
                 "_queue", "_rx_last", "_out")

    def __init__(self, host=True, ack_wait_ms=ACK_WAIT_MS, retries=RETRIES,
                 reject_wait_ms=REJECT_WAIT_MS, queue=QUEUE, timeout_ms=mip.INTER_BYTE_MS):
        self.host = host
        self.ack_wait_ms = ack_wait_ms
        self.retries = retries
        self.reject_wait_ms = reject_wait_ms
        self.queue_max = queue
        self.parser = mip.Parser(timeout_ms)
        self.stats = [0, 0, 0, 0, 0, 0, 0, 0]
        self.on_ack = None        # fn(ni_cmd, pdu, ok, now): a message was acknowledged / dropped
        self._seq = 0             # sequence number of the next new message
        self._cur = None          # bytes of the message in flight
        self._cur_seq = 0
        self._cur_item = None     # (ni_cmd, pdu) in flight
        self._left = 0
        self._due = None
        self._queue = []
        self._rx_last = None      # sequence number of the last message received
        self._out = bytearray()

    # -- sending -----------------------------------------------------------------
    @property
    def deadline(self):
        return self._due

    @property
    def busy(self):
        """A message is in flight or waiting."""
        return self._cur is not None or bool(self._queue)

    def send(self, ni_cmd, pdu, now):
        """Queue a message: a Msg code packet and its message packet (NI
        command + PDU). False when the queue is full."""
        if len(self._queue) >= self.queue_max:
            self.stats[DROPPED] += 1
            return False
        self._queue.append((ni_cmd, bytes(pdu), False))
        if self._cur is None:
            self._next(now)
        return True

    def send_short(self, ni_cmd, now):
        """Queue a short NI command (a ShortNiCmd code packet, no message)."""
        if len(self._queue) >= self.queue_max:
            self.stats[DROPPED] += 1
            return False
        self._queue.append((ni_cmd, b"", True))
        if self._cur is None:
            self._next(now)
        return True

    def _next(self, now):
        if not self._queue:
            self._cur = None
            self._cur_item = None
            self._due = None
            return
        item = self._queue.pop(0)
        seq = self._seq
        ni_cmd, pdu, short = item
        if short:
            b = mip.code_packet(seq, False, mip.CP_SHORT_NI, ni_cmd)
        else:
            b = mip.message(seq, ni_cmd, pdu, self.host)
        self._cur = b
        self._cur_seq = seq
        self._cur_item = item
        self._left = self.retries
        self._due = now + self.ack_wait_ms
        self._out += b
        self.stats[SENT] += 1

    def _advance(self):
        s = (self._seq + 1) & 7
        self._seq = s if s else 1          # 0 only after start / resync [DX]

    def _finish(self, ok, now):
        item = self._cur_item
        self._advance()
        self._cur = None
        self._cur_item = None
        self._due = None
        if ok:
            self.stats[ACKED] += 1
        else:
            self.stats[FAILED] += 1
        if self.on_ack is not None and item is not None:
            self.on_ack(item[0], item[1], ok, now)
        self._next(now)

    def poll(self, now):
        due = self._due
        if due is None or now < due or self._cur is None:
            return
        if self._left > 0:
            self._left -= 1
            self.stats[RETRIED] += 1
            self._out += self._cur
            self._due = now + self.ack_wait_ms
        else:
            self._finish(False, now)

    def resync(self, now):
        """NiResync: both sequence numbers restart at 0; a message in flight
        is sent again after it."""
        self._out += mip.code_packet(0, False, mip.CP_RESYNC, 0)
        self._restart(now)

    def _restart(self, now):
        if self._cur_item is not None:
            self._queue.insert(0, self._cur_item)
        self._cur = None
        self._cur_item = None
        self._due = None
        self._seq = 0
        self._rx_last = None
        self._next(now)

    def take(self):
        out = self._out
        if not out:
            return b""
        self._out = bytearray()
        return bytes(out)

    # -- receiving ----------------------------------------------------------------
    def _ack(self, seq):
        self._out += mip.code_packet(seq, True, mip.CP_NULL, 0)

    def _incoming(self, seq, ni_cmd, pdu, out):
        self._ack(seq)
        if seq == self._rx_last:
            self.stats[DUPLICATES] += 1
            return
        self._rx_last = seq
        self.stats[RECEIVED] += 1
        out.append((ni_cmd, pdu))

    def feed(self, data, now):
        out = []
        for ev in self.parser.feed(data, now):
            kind = ev[0]
            if kind == mip.EV_MSG:
                _, seq, ack, ni_cmd, pdu = ev
                self._incoming(seq, ni_cmd, pdu, out)
                if ni_cmd == mip.NI_RESET:
                    self._peer_reset(now)
            elif kind == mip.EV_CODE:
                _, seq, ack, cmd, param = ev
                if cmd == mip.CP_NULL or cmd == mip.CP_MSG_ACK:
                    if ack and self._cur is not None and seq == self._cur_seq:
                        self._finish(True, now)
                elif cmd == mip.CP_SHORT_NI:
                    self._incoming(seq, param, b"", out)
                    if param == mip.NI_RESET:
                        self._peer_reset(now)
                elif cmd == mip.CP_RESYNC:
                    self._ack(0)
                    self._restart(now)
                elif cmd == mip.CP_MSG_REJECT:
                    if self._cur is not None:
                        self._due = now + self.reject_wait_ms   # poll() sends it again
                elif cmd == mip.CP_FAIL:
                    if self._cur is not None:
                        self._finish(False, now)
            else:
                self.stats[ERRORS] += 1
        return out

    def _peer_reset(self, now):
        # the peer restarted: our numbering restarts too [DX: an uplink NI
        # reset sets downlink_seq_number = 0]; what is in flight goes again
        self._rx_last = None
        if self._cur_item is not None:
            self._queue.insert(0, self._cur_item)
            self._cur = None
            self._cur_item = None
            self._due = None
        self._seq = 0
        if self._cur is None:
            self._next(now)


# Modem identity in its status answer (emulator): the DX status reply is
# model ID, firmware version x 10, layer mode, status (0 = ready).
MODEL_ID = 0x30
FW_VERSION = 10
LAYER2 = 1
CHANNEL_CUSTOM = 30      # the reset message's channel type ID (reference 5 B: 30 = custom)


class NodePort:
    """The host side of a PLC modem: a LonTalk node (plc_node.PlcNode or
    anything with its driver interface) behind a Layer-2 MIP link. Frames
    the node sends go down as NI 0x12 (L2 header + NPDU, the modem adds the
    CRC); PL uplinks (NI 0x1C: phase, frame with CRC, SNR and level bytes)
    reach node.receive(frame, now, rssi_db=level, snr_db=snr); other uplink
    messages are counted in `other`. Portable: a board's main loop and the
    CPython test host run the same code.

        port = NodePort(fw.plc)
        port.start(now)                     # layer-2 mode request
        loop: uart.write(port.take()); port.feed(uart.read(), now)
              port.poll(now) when now >= port.deadline
    """

    __slots__ = ("node", "link", "other", "crc_errors", "extra_due", "extra")

    def __init__(self, node, link=None):
        self.node = node
        self.link = link if link is not None else Link(host=True)
        self.other = 0
        self.crc_errors = 0
        self.extra = None         # optional fn(now) -> next due, e.g. the meter's tick
        self.extra_due = None

    def start(self, now):
        """Ask the modem for layer-2 mode (NI 0xD1 as a short command)."""
        self.link.send_short(mip.NI_SET_L2, now)

    @property
    def deadline(self):
        d = self.link.deadline
        n = self.node.deadline
        if n is not None and (d is None or n < d):
            d = n
        e = self.extra_due
        if e is not None and (d is None or e < d):
            d = e
        return d

    def _down(self, frames, now):
        if frames is None:
            return
        if isinstance(frames, (bytes, bytearray)):
            frames = (frames,)
        for f in frames:
            # the modem appends the CRC: send L2 header + NPDU
            self.link.send(mip.NI_L2_DOWN, bytes(f[:-2]), now)
            on_sent = getattr(self.node, "on_sent", None)
            if on_sent is not None:
                # emulator: the node's retry timer runs from the hand-over to
                # the modem (a Layer-2 MIP reports no end of transmission)
                self._down(on_sent(f, now), now)

    def feed(self, data, now):
        for ni_cmd, pdu in self.link.feed(data, now):
            if ni_cmd == mip.NI_L2_UP_PL or ni_cmd == mip.NI_L2_UP:
                try:
                    phase, frame, xcvr = mip.parse_l2_uplink(ni_cmd, pdu)
                except FrameError:
                    self.crc_errors += 1
                    continue
                snr = level = None
                if xcvr is not None:
                    snr = xcvr[0]
                    level = xcvr[1]
                self._down(self.node.receive(frame, now, level, snr), now)
            else:
                self.other += 1

    def poll(self, now):
        e = self.extra_due
        if e is not None and e <= now and self.extra is not None:
            self.extra_due = self.extra(now)
        self.link.poll(now)
        d = self.node.deadline
        if d is not None and d <= now:
            self._down(self.node.poll(now), now)

    def take(self):
        return self.link.take()
