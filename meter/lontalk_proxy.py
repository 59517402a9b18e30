# LonTalk Enhanced Proxy (LTEP) payloads: APDU code 0x4D (request, and
# success response without data) and 0x4C (failure response + the proxy
# count at which the chain failed). Sources: [EX] izot/lon-stack-ex
# Stack/include/proxyint.h, Stack/LtProxy.cpp; [DX] izot/lon-stack-dx
# include/lcs/lcs_proxy.h, lcs/lcs_proxy.c; reference
# lontalk-transport-security.md 3.1. That OSGP's Annex G repeating is LTEP
# is likely but unconfirmed.
#
#   0x4D | header | repeater list | [tx control] | agent SICB | [alt key]
#        | target address | target APDU (code + data)
#   header      count(7-4) uniform-by-source(3) all-agents(2) long-timer(1)
#               uniform-by-destination(0)
#   repeater    subnet, node(7-1)|path(0); only node|path when uniform
#   tx control  repeater timer index(7-4) retry count(3-0); present while
#               count > 0 (the last repeater strips it [EX] [DX])
#   agent SICB  mode(7-6) service(5-4) path(3) address type(2-0), then a tx
#               control byte for the agent
#   alt key     (mode 2) type(7-6: 0 std 48-bit, 1 OMA 96-bit), 6 zero bits,
#               then 6 or 12 key-delta bytes added to the domain key(s)
#   target      by address type: 0 group, size | 1 subnet, node|path |
#               2 subnet, Neuron ID(6) | 3 subnet, backlog | 4 group |
#               5 node|path (source subnet) | 6 Neuron ID | 7 node|path
#               (destination subnet)
#
# EMULATOR PROFILE: the bit positions are those of the EX declarations
# allocated most-significant-bit first, as the Neuron C compiler does (the
# header carries Neuron C hooks) and as reference 3.1 reads them. DX
# declares the same fields in the reverse order under its MSB-first
# convention, i.e. count in the LOW nibble; the sources disagree and no
# capture settles it. The positions live in this file only.
from .lontalk import FrameError, same_fields

CODE = 0x4D
FAIL = 0x4C
REASONS = ("type", "proxy_code", "proxy_short", "proxy_value")

MODE_NORMAL = 0
MODE_ZERO_SYNC = 1
MODE_ALT_KEY = 2
MODE_ATTENUATE = 3
SVC_ACKD = 0
SVC_UNACKD_RPT = 1
SVC_UNACKD = 2
SVC_REQUEST = 3
PX_GROUP = 0
PX_SUBNET_NODE = 1
PX_NEURON_ID = 2
PX_BROADCAST = 3
PX_GROUP_COMPACT = 4
PX_SUBNET_NODE_SRC = 5
PX_NEURON_ID_COMPACT = 6
PX_SUBNET_NODE_DEST = 7
KEY_STD = 0
KEY_OMA = 1

# repeater timer index -> ms, and the long-timer table [EX LtProxy.cpp]
TIMER_MS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072)
LONG_TIMER_MS = (4096, 6144, 8192, 12288, 16384)

_TARGET_LEN = (2, 2, 7, 2, 1, 1, 6, 1)      # bytes on the wire, by address type
_TARGET_N = (2, 3, 2, 2, 1, 2, 1, 2)        # values in Proxy.target
_SLOTS = ("repeaters", "uniform_src", "uniform_dest", "all_agents", "long_timer",
          "timer", "retry", "mode", "service", "path", "addr_type", "agent_timer",
          "agent_retry", "key_type", "key", "target", "apdu")


class Proxy:
    """A decoded 0x4D request. repeaters: list of (subnet, node, path),
    subnet None when uniform; timer/retry: the repeaters' tx control (None
    without repeaters); key_type/key: mode 2 only; target: a tuple by
    addr_type (0 (group, size), 1 (subnet, node, path), 2 (subnet, uid),
    3 (subnet, backlog), 4 (group,), 5 and 7 (node, path), 6 (uid,));
    apdu: the target APDU."""

    __slots__ = _SLOTS

    def __init__(self, repeaters=(), uniform_src=False, uniform_dest=False, all_agents=False,
                 long_timer=False, timer=None, retry=None, mode=MODE_NORMAL,
                 service=SVC_REQUEST, path=0, addr_type=PX_SUBNET_NODE, agent_timer=0,
                 agent_retry=0, key_type=None, key=None, target=(), apdu=b""):
        self.repeaters = list(repeaters)
        self.uniform_src = uniform_src
        self.uniform_dest = uniform_dest
        self.all_agents = all_agents
        self.long_timer = long_timer
        self.timer = timer
        self.retry = retry
        self.mode = mode
        self.service = service
        self.path = path
        self.addr_type = addr_type
        self.agent_timer = agent_timer
        self.agent_retry = agent_retry
        self.key_type = key_type
        self.key = key
        self.target = tuple(target)
        self.apdu = apdu

    def __eq__(self, o):
        return same_fields(self, o, _SLOTS)

    def __ne__(self, o):
        return not self.__eq__(o)

    def __repr__(self):
        return "Proxy(%s)" % ", ".join("%s=%r" % (n, getattr(self, n)) for n in _SLOTS)

    @property
    def uniform(self):
        return bool(self.uniform_src or self.uniform_dest)


def _u(name, v, hi):
    if v is True or v is False or not isinstance(v, int) or v < 0 or v > hi:
        raise ValueError("%s out of range: %r" % (name, v))
    return v


def _bit(v):
    return 1 if v else 0


def _np(node, path):
    return (_u("node", node, 127) << 1) | _u("path", path, 1)


def encode(p):
    """Proxy -> APDU bytes (0x4D first). Raises ValueError."""
    reps = p.repeaters
    count = _u("count", len(reps), 15)
    uniform = p.uniform
    out = bytearray((CODE, (count << 4) | (_bit(p.uniform_src) << 3) | (_bit(p.all_agents) << 2)
                     | (_bit(p.long_timer) << 1) | _bit(p.uniform_dest)))
    for r in reps:
        subnet, node, path = r
        if uniform:
            if subnet is not None:
                raise ValueError("uniform repeaters carry no subnet")
        else:
            out.append(_u("subnet", subnet, 255))
        out.append(_np(node, path))
    if count:
        out.append((_u("timer", p.timer, 15) << 4) | _u("retry", p.retry, 15))
    elif p.timer is not None or p.retry is not None:
        raise ValueError("timer/retry need repeaters")
    t = _u("addr_type", p.addr_type, 7)
    mode = _u("mode", p.mode, 3)
    out.append((mode << 6) | (_u("service", p.service, 3) << 4) | (_u("path", p.path, 1) << 3) | t)
    out.append((_u("agent_timer", p.agent_timer, 15) << 4) | _u("agent_retry", p.agent_retry, 15))
    if mode == MODE_ALT_KEY:
        kt = _u("key_type", p.key_type, 1)
        key = p.key
        if not isinstance(key, (bytes, bytearray)) or len(key) != (12 if kt else 6):
            raise ValueError("key: 6 (std) or 12 (OMA) bytes")
        out.append(kt << 6)
        out += key
    elif p.key_type is not None or p.key is not None:
        raise ValueError("key needs mode 2 (alternate key)")
    tg = p.target
    if len(tg) != _TARGET_N[t]:
        raise ValueError("target: %d values for address type %d" % (_TARGET_N[t], t))
    if t in (PX_GROUP, PX_BROADCAST):
        out.append(_u("target[0]", tg[0], 255))
        out.append(_u("target[1]", tg[1], 255 if t == PX_GROUP else 63))
    elif t == PX_SUBNET_NODE:
        out.append(_u("subnet", tg[0], 255))
        out.append(_np(tg[1], tg[2]))
    elif t in (PX_NEURON_ID, PX_NEURON_ID_COMPACT):
        uid = tg[-1]
        if not isinstance(uid, (bytes, bytearray)) or len(uid) != 6:
            raise ValueError("target Neuron ID: 6 bytes")
        if t == PX_NEURON_ID:
            out.append(_u("subnet", tg[0], 255))
        out += uid
    elif t == PX_GROUP_COMPACT:
        out.append(_u("group", tg[0], 255))
    else:
        out.append(_np(tg[0], tg[1]))
    if not isinstance(p.apdu, (bytes, bytearray)) or not p.apdu:
        raise ValueError("apdu: non-empty bytes")
    out += p.apdu
    return bytes(out)


def decode(apdu):
    """0x4D APDU -> Proxy. Raises FrameError: "proxy_code", "proxy_short",
    "proxy_value" (non-zero reserved key bits or unknown key type)."""
    if not isinstance(apdu, (bytes, bytearray, memoryview)):
        raise FrameError("type")
    a = bytes(apdu)
    n = len(a)
    if not n or a[0] != CODE:
        raise FrameError("proxy_code")
    if n < 2:
        raise FrameError("proxy_short")
    h = a[1]
    p = Proxy(uniform_src=bool(h & 8), all_agents=bool(h & 4), long_timer=bool(h & 2),
              uniform_dest=bool(h & 1))
    count = h >> 4
    uniform = p.uniform
    i = 2
    if i + count * (1 if uniform else 2) + (1 if count else 0) + 2 > n:
        raise FrameError("proxy_short")
    for _ in range(count):
        if uniform:
            subnet = None
        else:
            subnet = a[i]
            i += 1
        p.repeaters.append((subnet, a[i] >> 1, a[i] & 1))
        i += 1
    if count:
        p.timer, p.retry = a[i] >> 4, a[i] & 15
        i += 1
    s = a[i]
    p.mode, p.service, p.path, p.addr_type = s >> 6, (s >> 4) & 3, (s >> 3) & 1, s & 7
    p.agent_timer, p.agent_retry = a[i + 1] >> 4, a[i + 1] & 15
    i += 2
    if p.mode == MODE_ALT_KEY:
        if i >= n:
            raise FrameError("proxy_short")
        k = a[i]
        if k & 0x3F or k >> 6 > KEY_OMA:
            raise FrameError("proxy_value")
        p.key_type = k >> 6
        klen = 12 if p.key_type else 6
        if i + 1 + klen > n:
            raise FrameError("proxy_short")
        p.key = a[i + 1:i + 1 + klen]
        i += 1 + klen
    t = p.addr_type
    m = _TARGET_LEN[t]
    if i + m >= n:                      # the target APDU needs a byte too
        raise FrameError("proxy_short")
    b = a[i:i + m]
    if t in (PX_GROUP, PX_BROADCAST):
        if t == PX_BROADCAST and b[1] > 63:
            raise FrameError("proxy_value")
        p.target = (b[0], b[1])
    elif t == PX_SUBNET_NODE:
        p.target = (b[0], b[1] >> 1, b[1] & 1)
    elif t == PX_NEURON_ID:
        p.target = (b[0], b[1:7])
    elif t == PX_NEURON_ID_COMPACT:
        p.target = (b,)
    elif t == PX_GROUP_COMPACT:
        p.target = (b[0],)
    else:
        p.target = (b[0] >> 1, b[0] & 1)
    p.apdu = a[i + m:]
    return p


def failure(count):
    """0x4C + the proxy count at which the chain failed."""
    return bytes((FAIL, _u("count", count, 15)))


def success():
    return bytes((CODE,))


def parse_result(apdu):
    """A response to a 0x4D request -> (True, None) or (False, count)."""
    if apdu == bytes((CODE,)):
        return True, None
    if len(apdu) == 2 and apdu[0] == FAIL and apdu[1] <= 15:
        return False, apdu[1]
    raise FrameError("proxy_code")


def hop_timeout_ms(p):
    """The transaction timer a repeater uses for its hop (index 0-15, or
    the long table when long_timer is set) [EX LtProxy.cpp RptTimerValue]."""
    if p.long_timer:
        return LONG_TIMER_MS[min(p.timer, len(LONG_TIMER_MS) - 1)]
    return TIMER_MS[p.timer]
