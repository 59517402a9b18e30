# LTEP repeating on the meter's LonTalk node (sans-IO, portable): the node
# as proxy repeater (strips its entry from the repeater list and forwards)
# and as proxy agent (sends the target APDU to the target with the service
# and addressing of the agent SICB, and relays the target's answer back
# along the chain). Any node is a proxy target: the agent's message is an
# ordinary message to it. docs/plc-repeating-and-discovery.md is the
# reference; the codec is lontalk_proxy.
#
# Sources: [DX] izot/lon-stack-dx lcs/lcs_proxy.c ProcessLTEP,
# ProcessLtepCompletion; [EX] izot/lon-stack-ex LtProxy.cpp (timer tables);
# reference lontalk-transport-security.md 3.1. That OSGP's Annex G
# repeating is LTEP is likely but unconfirmed.
#
#   repeater (count > 0)  next hop = the first list entry (subnet, node|path;
#                         uniform: node|path, subnet = the sender's (uniform
#                         by source) or this node's (by destination)); the
#                         APDU goes on with that entry removed, count - 1,
#                         and the tx-control byte removed when count reaches
#                         0, byte for byte otherwise; the service is the one
#                         it came with; timer = the repeater timer (or the
#                         long-timer table), retries = its retry count, and
#                         the last try waits 512 ms x (hops after the next)
#                         longer (256 for timer index 8-9, 256 flat below) [DX]
#   agent (count 0)       target by the SICB address type; service, timer
#                         and retries from the SICB [DX]
#   completion            to a REQUEST only: the next hop's answer as it came
#                         (the target's response through the agent; 0x4D or
#                         0x4C n from further down), 0x4D when an ACKD or
#                         unacknowledged forward completed, 0x4C + this node's
#                         proxy count (as received) when its forward failed
#
# EMULATOR PROFILE choices (docs/plc-repeating-and-discovery.md):
#   * Only a configured node repeats (replies come back by subnet/node);
#     received in the flex domain (Neuron-ID addressed from another
#     domain) it forwards in domain entry 0, as DX does. In the discovery
#     domain LTEP is refused: ADD/ATM have their own routes (plc_discovery).
#   * The path bits and SICB modes 1 (zero-crossing sync), 2 (alternate
#     authentication key: 14908-1 authentication is not modelled) and 3
#     (attenuate) are parsed and ignored; the transport's own alternate-path
#     rule applies. The all-agents flag is ignored.
#   * A REQUEST to a group or broadcast target relays the first response.
#   * A refused or undecodable request gets 0x4C + the count of its header.
from . import lontalk as L
from . import lontalk_proxy as X
from .lontalk import FrameError
from .lontalk_transport import REQUEST, FLEX, DEFER

MAX_PROXIES = 16        # the first proxy + 15 list entries (4-bit count)


def adjust_ms(timer, long_timer, after):
    """Extra wait on a repeater's last try, `after` = proxies after its next
    hop [DX ProcessLTEP]."""
    if long_timer or timer >= 10:
        return 512 * after
    if timer >= 8:
        return 256 * after
    return 256


def agent_wait_ms(p):
    """How long an agent may take (all its tries to the target)."""
    return (p.agent_retry + 1) * X.TIMER_MS[p.agent_timer]


def proxy_wait_ms(p):
    """How long the node that receives the Proxy `p` may take before it
    answers (success comes earlier): what the proxy source waits for."""
    n = len(p.repeaters)
    if n == 0:
        return agent_wait_ms(p)
    return (p.retry + 1) * X.hop_timeout_ms(p) + adjust_ms(p.timer, p.long_timer, n - 1)


class Repeater:
    """The LTEP roles of one node. stats: forwarded (as repeater), agent
    (as agent), ok, failed, refused."""

    __slots__ = ("node", "stats")

    def __init__(self, node):
        self.node = node
        self.stats = [0, 0, 0, 0, 0]
        node.register(X.CODE, self.handle)

    def _refuse(self, req, count, why):
        self.node._drop(why)
        self.stats[4] += 1
        return X.failure(count & 15) if req else None

    def handle(self, node, inc, now):
        a = bytes(inc.frame.apdu)
        req = inc.service == REQUEST
        count = a[1] >> 4 if len(a) > 1 else 0
        dom = inc.dom
        if dom == FLEX:
            dom = 0
        if dom > FLEX or not node.configured or node.domains[dom].invalid:
            return self._refuse(req, count, "ltep_domain")
        try:
            p = X.decode(a)
        except FrameError:
            return self._refuse(req, count, "ltep_bad")
        f = inc.frame
        d = node.domains[dom]
        if count:
            # proxy repeater: strip the first entry (and the tx control when
            # it was the last one), forward the rest unchanged [DX]
            es = 1 if p.uniform else 2
            body = a[2 + es:]
            c = count - 1
            if c == 0:
                body = body[1:]
            out = bytes((X.CODE, (a[1] & 0x0F) | (c << 4))) + body
            subnet, nd, _ = p.repeaters[0]
            if subnet is None:
                subnet = f.src_subnet if p.uniform_src else d.subnet
            dest = (L.AF_SUBNET_NODE, subnet, nd)
            service = inc.service
            timer = X.hop_timeout_ms(p)
            retry = p.retry
            extra = adjust_ms(p.timer, p.long_timer, c)
            self.stats[0] += 1
        else:
            t = p.addr_type
            tg = p.target
            if t == X.PX_SUBNET_NODE:
                dest = (L.AF_SUBNET_NODE, tg[0], tg[1])
            elif t == X.PX_NEURON_ID:
                dest = (L.AF_NEURON_ID, tg[0], bytes(tg[1]))
            elif t == X.PX_NEURON_ID_COMPACT:
                dest = (L.AF_NEURON_ID, 0, bytes(tg[0]))
            elif t == X.PX_SUBNET_NODE_SRC:
                dest = (L.AF_SUBNET_NODE, f.src_subnet, tg[0])
            elif t == X.PX_SUBNET_NODE_DEST:
                dest = (L.AF_SUBNET_NODE, d.subnet, tg[0])
            elif t == X.PX_GROUP:
                dest = (L.AF_GROUP, tg[0], tg[1])
            elif t == X.PX_GROUP_COMPACT:
                dest = (L.AF_GROUP, tg[0], 0)
            else:
                dest = (L.AF_BROADCAST, tg[0], tg[1])
            out = bytes(p.apdu)
            service = p.service
            timer = X.TIMER_MS[p.agent_timer]
            retry = p.agent_retry
            extra = 0
            self.stats[1] += 1
        # The completion can come at once (an unacknowledged forward, a send
        # refused): then it is the answer; else the answer is deferred.
        box = [False, None]
        rep = self

        def done(n, tx, ok):
            if ok:
                rep.stats[2] += 1
                res = X.success()
                if service == REQUEST and tx is not None and tx.responses:
                    res = tx.responses[0][1]
            else:
                rep.stats[3] += 1
                res = X.failure(count)
            if not box[0]:
                box[1] = res
            elif req:
                n.respond(inc, res, now)

        node.send(dest, out, now, service=service, prio=f.prio, dom=dom, retry=retry,
                  timer_ms=timer, last_extra_ms=extra, on_done=done)
        box[0] = True
        if box[1] is not None:
            return box[1] if req else None
        return DEFER if req else None


def _index(table, want):
    for i in range(len(table)):
        if table[i] >= want:
            return i
    return None


def enable(node):
    """Give `node` (a PlcNode) the LTEP roles; returns the Repeater."""
    return Repeater(node)


def chain(repeaters, target, apdu, addr_type=X.PX_SUBNET_NODE, service=REQUEST, timer=None,
          retry=2, long_timer=False, agent_timer=10, agent_retry=3):
    """A proxy source's 0x4D APDU for the first proxy: `repeaters` are the
    (subnet, node) of the proxies after the first one (the last is the
    agent), `target` the target address tuple of lontalk_proxy.Proxy for
    addr_type. timer None: the index whose time covers the hops after the
    first (about 600 ms a level, the long table past 3072 ms)."""
    n = len(repeaters)
    if n > MAX_PROXIES - 1:
        raise ValueError("at most %d proxies" % MAX_PROXIES)
    if n and timer is None:
        want = 600 * (n + 1)
        timer = _index(X.TIMER_MS, want)
        if timer is None:
            long_timer = True
            timer = _index(X.LONG_TIMER_MS, want)
            if timer is None:
                timer = len(X.LONG_TIMER_MS) - 1
    p = X.Proxy(repeaters=[(s, nd, 0) for s, nd in repeaters], long_timer=long_timer and n > 0,
                timer=timer if n else None, retry=retry if n else None, service=service,
                addr_type=addr_type, agent_timer=agent_timer, agent_retry=agent_retry,
                target=target, apdu=bytes(apdu))
    return X.encode(p), p
