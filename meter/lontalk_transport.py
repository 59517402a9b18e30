# ISO/IEC 14908-1 transport and session layers, sans-IO: receive records
# (delivery once, duplicate detection, cached acknowledgements and
# responses, reminders), outgoing transactions (transaction IDs, retries as
# deadlines the driver polls, acknowledgement and response bookkeeping) and
# the timer tables. The node (plc_node.PlcNode) subclasses Transport and
# supplies addressing, configuration and the application.
#
# Source: the LON Stack DX transport/session/transaction-control layers
# [DX lcs_tsa.c ReceiveNewMsg, ReceiveRem, TPSendAck, SNSendResponse,
# SendNewMsg, XmitTimerExpiration, TPReceiveAck, SNReceiveResponse;
# lcs_tcs.c NewTrans, TransDone], which implement ISO/IEC 14908-1 clauses
# 8-9. Emulator-profile choices are marked and listed in docs/plc-node.md.
#
# Frames leave through self._emit(Frame); the public entry points of the node
# collect them and hand them to the driver. Nothing here raises for input
# from the wire: the node's receive() guards the whole path.
from . import lontalk as L

# transmit/repeat timer index -> ms [EX LtProxy.cpp] (= lontalk_proxy.TIMER_MS,
# not imported to keep the module small on boards); receive timer index ->
# ms, 128 x 2^(n/2) (Neuron encoding, [DX DecodeRcvTimer]).
TX_TIMER_MS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072)
RCV_TIMER_MS = (128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144,
                8192, 12288, 16384, 24576)

# services (the numbering of lontalk_proxy.SVC_*)
ACKD = 0
UNACKD_RPT = 1
UNACKD = 2
REQUEST = 3

TRANSPORT = 0
SESSION = 1

# "domain index" of a received frame: 0 or 1 (a domain-table entry), or
FLEX = 2            # no domain of this node (unconfigured node, Neuron-ID frames)
DISCOVERY = 3       # the discovery domain (emulator profile, plc_node.DISCOVERY_DOMAIN)

# receive-record states [DX TransState]
NEW = 0             # just received, not yet delivered
DELIVERED = 1       # delivered; a request still waits for its response
RESPONDED = 2       # a response is cached
DONE = 3            # null response, or a reminder said our reply arrived

DEFER = "defer"     # returned by an application handler: the response comes later (respond())

# Emulator-profile sizes (DX makes them build options).
RECEIVE_RECORDS = 16    # receive transaction records
TID_TABLE = 16          # destinations remembered by the TID allocator
TID_HOLD_MS = 24000     # [DX MIN_TABLE_TIME 24 s]
SEND_QUEUE = 8          # originated messages waiting per priority
ALT_PATH_COUNT = 1      # [DX]: the last two tries go on the alternate path

STATS = ("tx_errors", "timeouts", "rx_full", "lost", "missed")
NO_STATS = (0, 0, 0, 0, 0)


class Incoming:
    """A received frame addressed to this node. frame: the decoded Frame;
    dom: 0, 1, FLEX or DISCOVERY; service: ACKD, UNACKD_RPT, UNACKD or
    REQUEST; member: this node's member number for group frames; rr: the
    receive record (None for unacknowledged APDUs); src: (subnet, node) of
    this node as it answers in that domain; rssi/snr: as the driver gave them."""

    __slots__ = ("frame", "dom", "service", "member", "rr", "src", "rssi", "snr")

    def __init__(self, frame, dom, member, src, rssi=None, snr=None):
        self.frame = frame
        self.dom = dom
        self.service = UNACKD
        self.member = member
        self.rr = None
        self.src = src
        self.rssi = rssi
        self.snr = snr

    @property
    def apdu(self):
        return self.frame.apdu

    @property
    def multicast(self):
        """Group or broadcast addressed (the OSGP broadcast key applies)."""
        return self.frame.addr_fmt in (L.AF_GROUP, L.AF_BROADCAST)


class ReceiveRecord:
    __slots__ = ("key", "layer", "service", "tid", "apdu", "state", "response",
                 "expires", "version", "prio", "alt", "reply", "inc")

    def __init__(self):
        self.key = None


class Transaction:
    """An originated ACKD, UNACKD_RPT or REQUEST message. dest: (kind, a, b)
    with kind an lontalk AF_* value: (AF_SUBNET_NODE, subnet, node),
    (AF_GROUP, group, size), (AF_BROADCAST, subnet, backlog 0 = 15),
    (AF_NEURON_ID, subnet, neuron_id). acks: member numbers (group) or a
    list with one entry per ACK/response; responses: [(Frame, apdu)]."""

    __slots__ = ("prio", "layer", "service", "dest", "dom", "domain", "src", "tid",
                 "apdu", "retries", "timer", "due", "count", "acks", "responses",
                 "on_done", "last", "ok", "extra")

    def __init__(self, dest, apdu, service, prio, dom, domain, src, retries, timer, on_done):
        self.prio = 1 if prio else 0
        self.service = service
        self.layer = SESSION if service == REQUEST else TRANSPORT
        self.dest = dest
        self.dom = dom
        self.domain = domain
        self.src = src
        self.tid = None
        self.apdu = apdu
        self.retries = retries
        self.timer = timer
        self.due = None
        self.count = 1
        self.acks = []
        self.responses = []
        self.on_done = on_done
        self.last = None
        self.ok = None
        # ms added to the wait after the last try [DX txTimerDeltaLast]: an
        # LTEP repeater waits longer than the hops after it (plc_repeat)
        self.extra = 0

    def wait(self):
        """The timer for the try just sent (the last one gets `extra`)."""
        return self.timer + self.extra if self.retries <= 0 else self.timer


def _waiting(rr):
    # A request whose handler deferred its response (DEFER, e.g. an LTEP
    # repeater waiting for the hops after it) keeps its record past the
    # receive timer until respond(): a retry of it stays a duplicate instead
    # of being delivered (and forwarded) a second time. (Emulator profile.)
    return rr.state == DELIVERED and rr.layer == SESSION


def _inc16(v):
    return v + 1 if v < 0xFFFF else v


class Transport:
    """The transport/session machinery of a LonTalk node. The subclass
    implements _deliver(inc, now), _rcv_timer(inc) and _member(dom, group).
    Containers are created on first use: an idle node holds almost nothing."""

    __slots__ = ("_rrs", "_tx", "_out", "_drops", "stats", "rr_max", "duplicates", "late",
                 "_hold")

    def _tinit(self):
        self._rrs = None              # receive records
        self._tx = None               # [in progress (2), queues (2), next tids (2), tid tables (2)]
        self._out = None
        self._drops = None
        self.stats = NO_STATS         # the five 14908-1 statistics (a list once one counts)
        self.duplicates = 0           # duplicate frames answered from a receive record
        self.late = 0                 # ACKs/responses matching no transaction
        self._hold = 0                # > 0 inside receive/poll/reset (see _release)

    # -- bookkeeping -------------------------------------------------------------
    @property
    def drops(self):
        """Dropped input by reason (a copy)."""
        return dict(self._drops) if self._drops else {}

    def _stat(self, i):
        s = self.stats
        if type(s) is tuple:
            s = self.stats = list(s)
        s[i] = _inc16(s[i])

    def _drop(self, reason):
        d = self._drops
        if d is None:
            d = self._drops = {}
        d[reason] = d.get(reason, 0) + 1

    def _flush(self):
        out = self._out
        self._out = None
        return out

    def _release(self):
        # What send()/respond() return: the frames to send now, unless they
        # are called from a hook or callback inside receive/poll/reset, where
        # the frames stay queued and go out with that call's result.
        return None if self._hold else self._flush()

    def _emit(self, f):
        try:
            b = L.encode(f)
        except ValueError:
            self._drop("tx_encode")    # e.g. a response too long for one frame
            return None
        if self._out is None:
            self._out = [b]
        else:
            self._out.append(b)
        return b

    def _txs(self):
        t = self._tx
        if t is None:
            t = self._tx = [None, None, [], [], 0, 0, [], []]
        return t

    @property
    def deadline(self):
        """When poll() next has work (driver ms), or None."""
        return self._tx_deadline()

    def _tx_deadline(self):
        t = self._tx
        if t is None:
            return None
        d = None
        for tx in (t[0], t[1]):
            if tx is not None and (d is None or tx.due < d):
                d = tx.due
        return d

    def _clear_transport(self, keep_tids=False):
        """Reset: receive records, transactions and queues are lost and the
        TID counters restart at 0 [DX]. keep_tids (a software reset): the
        per-destination TID tables stay, so no destination sees its last TID
        again [DX TransactionControlSublayerReset]."""
        self._rrs = None
        t = self._tx
        self._tx = None
        if keep_tids and t is not None and (t[6] or t[7]):
            self._txs()[6:8] = t[6:8]

    # -- receive records ---------------------------------------------------------
    def _rr_key(self, inc):
        f = inc.frame
        af = f.addr_fmt
        extra = f.dst_subnet if af == L.AF_BROADCAST else (f.group if af == L.AF_GROUP else None)
        dom = inc.dom if inc.dom < FLEX else bytes(f.domain)
        return (1 if f.prio else 0, dom, af, f.src_subnet, f.src_node, extra)

    def _rr_find(self, key, now):
        rrs = self._rrs
        if not rrs:
            return None
        found = None
        stale = False
        for rr in rrs:
            if rr.expires <= now and not _waiting(rr):
                stale = True           # its receive timer ran out
            elif rr.key == key:
                found = rr
        if stale:
            self._rrs = [rr for rr in rrs if rr.expires > now or _waiting(rr)]
        return found

    def _rr_alloc(self):
        rrs = self._rrs
        if rrs is None:
            rrs = self._rrs = []
        if len(rrs) >= self.rr_max:
            return None
        rr = ReceiveRecord()
        rrs.append(rr)
        return rr

    def _rr_init(self, rr, key, inc, layer, service, now):
        f = inc.frame
        rr.key = key
        rr.layer = layer
        rr.service = service
        rr.tid = f.tid
        rr.apdu = bytes(f.apdu) if f.apdu is not None else b""
        rr.state = NEW
        rr.response = None
        rr.expires = now + self._rcv_timer(inc)
        rr.version = f.version
        rr.prio = f.prio
        rr.alt = f.alt
        rr.inc = inc
        # Replies go back to the sender in the domain the message came in,
        # from the address this node has there (2b with our member number
        # for group messages) [DX TPSendAck, SNSendResponse].
        if f.addr_fmt == L.AF_GROUP:
            rr.reply = (L.AF_GROUP_ACK, f.group, inc.member)
        else:
            rr.reply = (L.AF_SUBNET_NODE, None, None)

    def _reply(self, rr, pdu_fmt, l4, apdu=None):
        inc = rr.inc
        f = inc.frame
        af, group, member = rr.reply
        r = L.Frame(prio=rr.prio, alt=rr.alt, backlog=0, version=rr.version, pdu_fmt=pdu_fmt,
                    addr_fmt=af, src_subnet=inc.src[0], src_node=inc.src[1],
                    dst_subnet=f.src_subnet, dst_node=f.src_node, group=group, member=member,
                    domain=bytes(f.domain), l4=l4, tid=rr.tid, apdu=apdu)
        return self._emit(r)

    def _ack(self, rr):
        self._reply(rr, L.PDU_TPDU, L.T_ACK)

    def _response(self, rr):
        if rr.response is not None:
            self._reply(rr, L.PDU_SPDU, L.S_RESPONSE, rr.response)

    def _deliver_rr(self, inc, rr, now):
        res = self._deliver(inc, now)
        rr.state = DELIVERED
        if rr.layer == SESSION:
            if res is DEFER:
                pass
            elif res is None or not isinstance(res, (bytes, bytearray)) or not res:
                rr.state = DONE            # null response: nothing goes out [DX]
            else:
                rr.response = bytes(res)
                rr.state = RESPONDED

    # -- receive: the layer-4 dispatch ---------------------------------------------
    def _transport(self, inc, now):
        f = inc.frame
        pf = f.pdu_fmt
        if pf == L.PDU_APDU:
            inc.service = UNACKD
            self._deliver(inc, now)        # no transport: nothing can answer
            return
        if pf == L.PDU_AUTH:
            self._drop("auth_pdu")        # 14908-1 authentication: not implemented
            return
        l4 = f.l4
        if pf == L.PDU_TPDU:
            if l4 == L.T_ACK:
                self._rx_reply(inc, TRANSPORT, now)
            elif l4 == L.T_ACKD:
                inc.service = ACKD
                self._rx_new(inc, TRANSPORT, now)
            elif l4 == L.T_UNACKD_RPT:
                inc.service = UNACKD_RPT
                self._rx_new(inc, TRANSPORT, now)
            else:
                inc.service = ACKD
                self._rx_rem(inc, TRANSPORT, now)
        else:
            if l4 == L.S_RESPONSE:
                self._rx_reply(inc, SESSION, now)
            elif l4 == L.S_REQUEST:
                inc.service = REQUEST
                self._rx_new(inc, SESSION, now)
            else:
                inc.service = REQUEST
                self._rx_rem(inc, SESSION, now)

    def _rx_new(self, inc, layer, now):
        """ACKD, UNACKD_RPT, REQUEST [DX ReceiveNewMsg]: a new message is
        delivered once; a duplicate (same source, domain, priority, tid,
        service and APDU while the receive record lives) is answered from the
        record: ACKD re-acknowledged, REQUEST re-answered with the cached
        response, UNACKD_RPT ignored."""
        f = inc.frame
        key = self._rr_key(inc)
        rr = self._rr_find(key, now)
        if rr is None:
            rr = self._rr_alloc()
            if rr is None:
                self._stat(2)              # receive transaction full
                self._drop("rx_full")
                return
            self._rr_init(rr, key, inc, layer, inc.service, now)
        elif (rr.tid != f.tid or rr.layer != layer or rr.service != inc.service
              or rr.apdu != bytes(f.apdu)):
            if rr.state == NEW:
                self._stat(3)              # lost: replaced before delivery
            self._rr_init(rr, key, inc, layer, inc.service, now)
        else:
            self.duplicates += 1
            rr.alt = rr.alt or f.alt
        inc.rr = rr
        if rr.state == NEW:
            self._deliver_rr(rr.inc, rr, now)
        if layer == TRANSPORT:
            if rr.state == DELIVERED and rr.service == ACKD:
                self._ack(rr)
        elif rr.state == RESPONDED:
            self._response(rr)

    def _rx_rem(self, inc, layer, now):
        """REMINDER and REM/MSG of a group transaction [DX ReceiveRem]. The
        M_List has a bit per group member (member m: bit m % 8 of byte m // 8)
        set for the members whose reply the sender has. Listed: the reply
        arrived, nothing to do. Not listed (or beyond the list): REM/MSG is
        re-acknowledged / re-answered (delivered first if it is new);
        a REMINDER is ignored, as the retry that follows it does that."""
        f = inc.frame
        reminder = f.l4 == L.T_REMINDER
        key = self._rr_key(inc)
        rr = self._rr_find(key, now)
        if rr is None and reminder:
            self._drop("reminder")
            return
        if rr is not None and (rr.tid != f.tid or rr.layer != layer
                               or (not reminder and rr.apdu != bytes(f.apdu))):
            if reminder:
                self._drop("reminder")
                return
            if rr.state == NEW:
                self._stat(3)
            self._rr_init(rr, key, inc, layer, inc.service, now)
            self._rem_new(rr, inc, layer, now)
            return
        if rr is not None and rr.service == UNACKD_RPT:
            if reminder:
                self._drop("reminder")
                return
            self._rr_init(rr, key, inc, layer, inc.service, now)
            self._rem_new(rr, inc, layer, now)
            return
        if rr is None:
            rr = self._rr_alloc()
            if rr is None:
                self._stat(2)
                self._drop("rx_full")
                return
            self._rr_init(rr, key, inc, layer, inc.service, now)
            self._rem_new(rr, inc, layer, now)
            return
        inc.rr = rr
        self.duplicates += 1
        m = inc.member
        ml = f.mlist or b""
        i = m >> 3
        listed = i < len(ml) and (ml[i] >> (m & 7)) & 1
        if listed:
            if rr.state == DELIVERED or rr.state == RESPONDED:
                rr.state = DONE
            return
        if reminder:
            return
        if rr.state == NEW:
            self._deliver_rr(rr.inc, rr, now)
        if rr.state == DELIVERED and layer == TRANSPORT:
            self._ack(rr)
        elif rr.state == RESPONDED:
            self._response(rr)

    def _rem_new(self, rr, inc, layer, now):
        # A REM/MSG without a matching record: a new message.
        inc.rr = rr
        self._deliver_rr(inc, rr, now)
        if layer == TRANSPORT:
            if rr.state == DELIVERED:
                self._ack(rr)
        elif rr.state == RESPONDED:
            self._response(rr)

    def respond(self, inc, apdu, now):
        """Send the response to a request whose handler returned DEFER (e.g.
        a repeater answering once the target has). Returns the frames (None
        when called inside receive/poll: they go out with that call's)."""
        rr = inc.rr
        if rr is None or rr.layer != SESSION or rr.state != DELIVERED or rr not in (self._rrs or ()):
            self._drop("stale_response")
            return self._release()
        if apdu:
            rr.response = bytes(apdu)
            rr.state = RESPONDED
            self._response(rr)
        else:
            rr.state = DONE
        return self._release()

    # -- receive: acknowledgements and responses to our transactions -------------
    def _rx_reply(self, inc, layer, now):
        """ACK or RESPONSE [DX TPReceiveAck, SNReceiveResponse]: it must
        match the transaction in progress at that priority (tid, layer,
        domain, and the destination: the unicast target, a 2b reply for the
        group, anything for a broadcast)."""
        f = inc.frame
        p = 1 if f.prio else 0
        tx = self._tx[p] if self._tx is not None else None
        if (tx is None or tx.layer != layer or tx.tid != f.tid or tx.service == UNACKD_RPT
                or bytes(f.domain) != tx.domain):
            self.late += 1
            return
        kind = tx.dest[0]
        if kind == L.AF_SUBNET_NODE:
            if f.addr_fmt != L.AF_SUBNET_NODE or (f.src_subnet, f.src_node) != (tx.dest[1], tx.dest[2]):
                self.late += 1
                return
        elif kind == L.AF_GROUP:
            if f.addr_fmt != L.AF_GROUP_ACK or f.group != tx.dest[1]:
                self.late += 1
                return
        elif kind == L.AF_BROADCAST:
            if tx.dest[1] and f.src_subnet and f.src_subnet != tx.dest[1]:
                self.late += 1
                return
        if kind == L.AF_GROUP:
            if f.member in tx.acks:
                return                    # a duplicate reply
            tx.acks.append(f.member)
        else:
            if tx.acks:
                return
            tx.acks.append(None)
        if layer == SESSION:
            tx.responses.append((f, bytes(f.apdu)))
        if len(tx.acks) >= tx.count:
            self._terminate(p, True, now)
        else:
            tx.due = now + tx.wait()       # [DX]: each reply restarts the timer

    # -- transmit ---------------------------------------------------------------------
    def _send(self, tx, now):
        """Queue (or start) an originated transaction."""
        t = self._txs()
        p = tx.prio
        if t[p] is None:
            self._start(tx, now)
        elif len(t[2 + p]) < SEND_QUEUE:
            t[2 + p].append(tx)
        else:
            self._drop("tx_queue_full")
            self._done(tx, False)

    def _start(self, tx, now):
        kind = tx.dest[0]
        if kind == L.AF_GROUP:
            size = tx.dest[2]
            if size == 0 and tx.service != UNACKD_RPT:
                self._drop("tx_large_group")       # large groups: unacknowledged only [DX]
                self._done(tx, False)
                return
            n = size - 1 if self._member(tx.dom, tx.dest[1]) is not None else size
            tx.count = n if n > 0 else 1
        p = tx.prio
        txs = self._txs()
        t = txs[4 + p]
        key = (tx.domain, kind, tx.dest[1],
               tx.dest[2] if kind == L.AF_SUBNET_NODE or kind == L.AF_NEURON_ID else None)
        tab = txs[6 + p]
        entry = None
        for e in tab:
            if e[0] == key:
                entry = e
                break
        if entry is not None:
            if entry[1] == t:              # never the TID this destination saw last [DX NewTrans]
                t = t + 1 if t < 15 else 1
                txs[4 + p] = t
            entry[1] = t
            entry[2] = now
        else:
            if len(tab) >= TID_TABLE:
                # DX refuses a new transaction when no entry is older than
                # 24 s; here the oldest entry makes room (emulator profile).
                old = tab[0]
                for e in tab:
                    if e[2] < old[2]:
                        old = e
                tab.remove(old)
            tab.append([key, t, now])
        tx.tid = t
        txs[p] = tx
        first = tx.retries
        self._transmit(tx, first <= ALT_PATH_COUNT and tx.service != UNACKD_RPT, True)
        tx.due = now + tx.wait()

    def _backlog(self, tx, first):
        kind = tx.dest[0]
        if tx.service == UNACKD_RPT:
            return tx.retries if first else 0
        if kind == L.AF_BROADCAST:
            return tx.dest[2] or 15
        if kind == L.AF_GROUP:
            n = tx.count - len(tx.acks)
            return n if n < 63 else 63
        return 1

    def _frame(self, tx, pdu_fmt, l4, alt, backlog, apdu=None, mlist=None):
        kind, a, b = tx.dest
        f = L.Frame(prio=bool(tx.prio), alt=alt, backlog=backlog, pdu_fmt=pdu_fmt, addr_fmt=kind,
                    src_subnet=tx.src[0], src_node=tx.src[1], domain=tx.domain, l4=l4,
                    tid=tx.tid, apdu=apdu, mlist=mlist)
        if kind == L.AF_SUBNET_NODE:
            f.dst_subnet = a
            f.dst_node = b
        elif kind == L.AF_GROUP:
            f.group = a
        elif kind == L.AF_BROADCAST:
            f.dst_subnet = a
        else:
            f.dst_subnet = a
            f.neuron_id = b
        return f

    def _l4(self, tx):
        if tx.service == REQUEST:
            return L.PDU_SPDU, L.S_REQUEST
        return L.PDU_TPDU, (L.T_UNACKD_RPT if tx.service == UNACKD_RPT else L.T_ACKD)

    def _transmit(self, tx, alt, first):
        pf, l4 = self._l4(tx)
        f = self._frame(tx, pf, l4, alt, self._backlog(tx, first), tx.apdu)
        tx.last = self._emit(f) or tx.last

    def _retry(self, tx, now):
        """The transmit (or repeat) timer expired [DX XmitTimerExpiration]."""
        p = tx.prio
        if tx.retries <= 0 or len(tx.acks) >= tx.count:
            self._terminate(p, tx.service == UNACKD_RPT or len(tx.acks) >= tx.count, now)
            return
        alt = tx.service != UNACKD_RPT and tx.retries <= ALT_PATH_COUNT + 1
        if tx.dest[0] == L.AF_GROUP and tx.service != UNACKD_RPT:
            # Group retry: the M_List covers the members up to the highest
            # that replied; up to 2 bytes it rides in a REM/MSG, longer lists
            # go in a REMINDER followed by the message itself [DX].
            n = 0
            for m in tx.acks:
                if m is not None and m // 8 + 1 > n:
                    n = m // 8 + 1
            ml = bytearray(n)
            for m in tx.acks:
                if m is not None:
                    ml[m >> 3] |= 1 << (m & 7)
            ml = bytes(ml)
            pf, l4 = self._l4(tx)
            if n <= 2:
                f = self._frame(tx, pf, L.T_REM_MSG, alt, self._backlog(tx, False), tx.apdu, ml)
                tx.last = self._emit(f) or tx.last
            else:
                self._emit(self._frame(tx, pf, L.T_REMINDER, alt, 0, None, ml))
                self._transmit(tx, alt, False)
        else:
            self._transmit(tx, alt, False)
        tx.retries -= 1
        tx.due = now + tx.wait()

    def _terminate(self, p, ok, now):
        txs = self._tx
        tx = txs[p]
        txs[p] = None
        t = txs[4 + p]
        txs[4 + p] = t + 1 if t < 15 else 1     # [DX TransDone]
        if not ok:
            self._stat(1)                  # transaction timeout
        self._done(tx, ok)
        q = txs[2 + p]
        while q and txs[p] is None and self._tx is txs:
            self._start(q.pop(0), now)

    def _done(self, tx, ok):
        tx.ok = ok
        cb = tx.on_done
        if cb is not None:
            try:
                cb(self, tx, ok)
            except Exception:
                self._drop("hook_error")

    def _poll_tx(self, now):
        for p in (1, 0):
            txs = self._tx
            tx = txs[p] if txs is not None else None
            if tx is not None and tx.due <= now:
                self._retry(tx, now)

    def _sent(self, frame, now):
        """The driver says `frame` has left: the timer of the transaction
        that sent it runs from now (emulator profile: retry timers count
        from the end of the transmission, so CSMA waits do not eat them)."""
        txs = self._tx
        if txs is None:
            return
        for tx in (txs[0], txs[1]):
            if tx is not None and tx.last is not None and tx.last == frame:
                tx.due = now + tx.wait()
