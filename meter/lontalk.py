# ISO/IEC 14908-1 (LonTalk) frame codec, sans-IO: a frame as it travels on
# the power line (and inside CN/IP): L2 header, NPDU, layer-4 header, APDU,
# CRC-16 high byte first. Layouts and their sources: docs/plc-frames.md.
#
#   byte 0   L2 header: prio(7) alt path(6) delta backlog(5-0)
#   byte 1   NPDU header: version(7-6) PDU format(5-4) address format(3-2)
#            domain length code(1-0): 0/1/2/3 -> 0/1/3/6 bytes
#   address  0 broadcast  src subnet, 1|src node, dst subnet
#            1 group      src subnet, 1|src node, group
#            2a unicast   src subnet, 1|src node, dst subnet, 1|dst node
#            2b group ack src subnet, 0|src node, dst subnet, 1|dst node,
#                         group, member      (2a/2b: bit 7 of the src node)
#            3 Neuron ID  src subnet, 1|src node, dst subnet, Neuron ID(6)
#   domain   0, 1, 3 or 6 bytes
#   layer 4  TPDU/SPDU: auth(7) type(6-4) tid(3-0); AuthPDU: fmt(7-6)
#            type(5-4) tid(3-0); APDU format: no layer-4 header
#            version 2 ("enhanced"): one more byte, the low 8 bits of a
#            12-bit transaction number (the header nibble is the high 4)
#   body     ACKD/UNACKD_RPT/REQUEST/RESPONSE: APDU; ACK: nothing;
#            REMINDER: length, M_List; REM/MSG: length, M_List, APDU;
#            AuthPDU: 8-byte challenge/reply [+ group when fmt == 1]
#   CRC      CRC-16/GENIBUS over everything before it, high byte first
#
# [WS-LON] packet-lon.c, [DX] lcs_network.c/lcs_tsa.c, [EX] LtCUtil.c;
# reference/lontalk-transport-security.md 1.2-1.4.
#
# decode() validates everything and raises FrameError(reason) and nothing
# else, for any input; reasons are short strings the node layer counts
# drops by (REASONS). encode() range-checks every field and raises
# ValueError for a frame that decode() would refuse.
from . import crc as _crc

MAX_FRAME = 255          # bytes, L2 header through CRC (emulator limit)

# PDU formats (NPDU bits 5-4)
PDU_TPDU = 0
PDU_SPDU = 1
PDU_AUTH = 2
PDU_APDU = 3

# Address formats. 2a and 2b share wire value 2 and differ in bit 7 of the
# source node byte; here they are two logical values.
AF_BROADCAST = 0
AF_GROUP = 1
AF_SUBNET_NODE = 2       # "2a"
AF_NEURON_ID = 3
AF_GROUP_ACK = 4         # "2b": group acknowledgement/response

# Layer-4 types
T_ACKD = 0
T_UNACKD_RPT = 1
T_ACK = 2
T_REMINDER = 4
T_REM_MSG = 5
S_REQUEST = 0
S_RESPONSE = 2
S_REMINDER = 4
S_REM_MSG = 5
A_CHALLENGE = 0
A_CHALLENGE_OMA = 1
A_REPLY = 2
A_REPLY_OMA = 3

# Protocol versions
V_LEGACY = 0             # 4-bit transaction numbers (what Wireshark decodes)
V_ENHANCED = 2           # "LS enhanced mode": 12-bit transaction numbers [EX] [DX]

DOMAIN_LENGTHS = (0, 1, 3, 6)
MLIST_MAX = 8            # 64 group members, one bit each [DX lcs_tsa.c]
MEMBER_MAX = 63          # MAX_GROUP_NUMBER [DX lon_types.h]

REASONS = (
    "type",          # not a bytes-like object
    "short",         # truncated: fewer bytes than the header says
    "too_long",      # more than MAX_FRAME bytes
    "crc",           # CRC mismatch
    "version",       # protocol version 1 (encapsulated IP) or 3 (reserved)
    "selector",      # a selector/flag bit that must be 1 is 0
    "member",        # 2b group member above 63
    "l4_type",       # reserved TPDU/SPDU type
    "mlist",         # M_List length out of range
    "trailing",      # bytes after a PDU that has no APDU
    "empty_apdu",    # no APDU where one is required
    "nv_header",     # network-variable APDU shorter than its 2-byte header
    "combination",   # PDU type impossible with this address format
    "internal",      # a bug in this module (never seen in the tests)
)


class FrameError(Exception):
    """A frame (or packet) that must be dropped; .reason is one of REASONS
    (or of the CN/IP and APDU reason lists)."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


_SLOTS = ("prio", "alt", "backlog", "version", "pdu_fmt", "addr_fmt",
          "src_subnet", "src_node", "dst_subnet", "dst_node", "group", "member",
          "neuron_id", "domain", "l4", "auth", "tid", "auth_fmt", "auth_group",
          "value", "mlist", "apdu")


def same_fields(a, b, names):
    """Field-by-field equality of two records of the same class (the codec
    classes here, in lontalk_nm and lontalk_proxy compare this way)."""
    if type(a) is not type(b):
        return False
    for name in names:
        if getattr(a, name) != getattr(b, name):
            return False
    return True


class Frame:
    """One decoded LonTalk frame. Fields a format does not carry are None
    (auth: False). dst_subnet: broadcast target (0 = whole domain), 2a/2b
    destination, or the routing subnet of a Neuron-ID frame. l4: the TPDU,
    SPDU or AuthPDU type (None in APDU format). auth_fmt/auth_group/value:
    AuthPDU only. mlist: REMINDER and REM/MSG only. apdu: bytes, or None
    for ACK, REMINDER and AuthPDU."""

    __slots__ = _SLOTS

    def __init__(self, prio=False, alt=False, backlog=0, version=V_LEGACY,
                 pdu_fmt=PDU_APDU, addr_fmt=AF_BROADCAST, src_subnet=0, src_node=0,
                 dst_subnet=None, dst_node=None, group=None, member=None,
                 neuron_id=None, domain=b"", l4=None, auth=False, tid=None,
                 auth_fmt=None, auth_group=None, value=None, mlist=None, apdu=None):
        self.prio = prio
        self.alt = alt
        self.backlog = backlog
        self.version = version
        self.pdu_fmt = pdu_fmt
        self.addr_fmt = addr_fmt
        self.src_subnet = src_subnet
        self.src_node = src_node
        self.dst_subnet = dst_subnet
        self.dst_node = dst_node
        self.group = group
        self.member = member
        self.neuron_id = neuron_id
        self.domain = domain
        self.l4 = l4
        self.auth = auth
        self.tid = tid
        self.auth_fmt = auth_fmt
        self.auth_group = auth_group
        self.value = value
        self.mlist = mlist
        self.apdu = apdu

    def __eq__(self, other):
        return same_fields(self, other, _SLOTS)

    def __ne__(self, other):
        return not self.__eq__(other)

    def __repr__(self):
        parts = []
        for name in _SLOTS:
            v = getattr(self, name)
            if v is not None:
                parts.append("%s=%r" % (name, v))
        return "Frame(%s)" % ", ".join(parts)


# --- rules shared by encode and decode ------------------------------------

def _carries_apdu(f):
    if f.pdu_fmt == PDU_APDU:
        return True
    if f.pdu_fmt == PDU_AUTH:
        return False
    return f.l4 not in (T_ACK, T_REMINDER) if f.pdu_fmt == PDU_TPDU else f.l4 != S_REMINDER


def _has_mlist(f):
    return f.pdu_fmt in (PDU_TPDU, PDU_SPDU) and f.l4 in (T_REMINDER, T_REM_MSG)


def _rules(f):
    """The cross-field rules: a reason string, or None. Sources:
    ACK/RESPONSE travel in 2a or 2b, and 2b carries only those and the
    challenges of group messages [DX lcs_tsa.c TPSendAck, SNSendResponse,
    InitiateChallenge]; REMINDER and REM/MSG exist for group messages only
    [DX lcs_tsa.c XmitTimerExpiration, ReceiveRem]; acknowledgements and
    responses are never authenticated [DX TPSendAck, SNSendResponse];
    challenges and replies are unicast (2a/2b, or Neuron ID for a reply to
    an unconfigured challenger) [DX InitiateChallenge, SendReplyToChallenge]."""
    pf, l4, af = f.pdu_fmt, f.l4, f.addr_fmt
    ack_like = (pf == PDU_TPDU and l4 == T_ACK) or (pf == PDU_SPDU and l4 == S_RESPONSE)
    if ack_like and (af not in (AF_SUBNET_NODE, AF_GROUP_ACK) or f.auth):
        return "combination"
    if af == AF_GROUP_ACK and not (ack_like or pf == PDU_AUTH):
        return "combination"
    if _has_mlist(f) and af != AF_GROUP:
        return "combination"
    if pf == PDU_AUTH and af not in (AF_SUBNET_NODE, AF_GROUP_ACK, AF_NEURON_ID):
        return "combination"
    if _has_mlist(f):
        n = len(f.mlist)
        if n > MLIST_MAX or (l4 == T_REMINDER and n == 0):
            return "mlist"
    if _carries_apdu(f):
        if not f.apdu:
            return "empty_apdu"
        if f.apdu[0] & 0x80 and len(f.apdu) < 2:
            return "nv_header"
    return None


# --- encode -----------------------------------------------------------------

def _u(name, v, hi, lo=0):
    if v is True or v is False or not isinstance(v, int) or v < lo or v > hi:
        raise ValueError("%s out of range: %r" % (name, v))
    return v


def _b(name, v):
    if v is True or v == 1:
        return 1
    if v is False or v == 0:
        return 0
    raise ValueError("%s must be a bool: %r" % (name, v))


def _bytes(name, v, sizes):
    if not isinstance(v, (bytes, bytearray)) or len(v) not in sizes:
        raise ValueError("%s: bytes of length %r expected, got %r" % (name, sizes, v))
    return bytes(v)


def _unused(f, names):
    for name in names:
        if getattr(f, name) is not None:
            raise ValueError("%s is not carried by this frame" % name)


def encode(f, crc=True):
    """Frame -> bytes (with the CRC unless crc=False, e.g. for a MIP downlink
    where the transceiver appends it). Raises ValueError."""
    out = bytearray()
    out.append((_b("prio", f.prio) << 7) | (_b("alt", f.alt) << 6) | _u("backlog", f.backlog, 63))
    if f.version not in (V_LEGACY, V_ENHANCED):
        raise ValueError("version must be 0 or 2: %r" % (f.version,))
    pf = _u("pdu_fmt", f.pdu_fmt, 3)
    af = _u("addr_fmt", f.addr_fmt, 4)
    dom = f.domain
    if not isinstance(dom, (bytes, bytearray)) or len(dom) not in DOMAIN_LENGTHS:
        raise ValueError("domain: 0, 1, 3 or 6 bytes expected: %r" % (dom,))
    out.append((f.version << 6) | (pf << 4) | ((2 if af == AF_GROUP_ACK else af) << 2)
               | DOMAIN_LENGTHS.index(len(dom)))
    out.append(_u("src_subnet", f.src_subnet, 255))
    node = _u("src_node", f.src_node, 127)
    out.append(node if af == AF_GROUP_ACK else 0x80 | node)
    if af == AF_BROADCAST:
        out.append(_u("dst_subnet", f.dst_subnet, 255))
        _unused(f, ("dst_node", "group", "member", "neuron_id"))
    elif af == AF_GROUP:
        out.append(_u("group", f.group, 255))
        _unused(f, ("dst_subnet", "dst_node", "member", "neuron_id"))
    elif af == AF_SUBNET_NODE:
        out.append(_u("dst_subnet", f.dst_subnet, 255))
        out.append(0x80 | _u("dst_node", f.dst_node, 127))
        _unused(f, ("group", "member", "neuron_id"))
    elif af == AF_GROUP_ACK:
        out.append(_u("dst_subnet", f.dst_subnet, 255))
        out.append(0x80 | _u("dst_node", f.dst_node, 127))
        out.append(_u("group", f.group, 255))
        out.append(_u("member", f.member, MEMBER_MAX))
        _unused(f, ("neuron_id",))
    else:
        out.append(_u("dst_subnet", f.dst_subnet, 255))
        out += _bytes("neuron_id", f.neuron_id, (6,))
        _unused(f, ("dst_node", "group", "member"))
    out += dom
    if pf == PDU_APDU:
        _unused(f, ("l4", "tid", "auth_fmt", "auth_group", "value", "mlist"))
        if f.auth:
            raise ValueError("auth is not carried by an APDU-format frame")
    else:
        tmax = 15 if f.version == V_LEGACY else 4095
        tid = _u("tid", f.tid, tmax)
        if pf == PDU_AUTH:
            l4 = _u("l4", f.l4, 3)
            afmt = _u("auth_fmt", f.auth_fmt, 3)
            if f.auth:
                raise ValueError("auth is not carried by an AuthPDU")
            out.append((afmt << 6) | (l4 << 4) | (tid >> 8 if tmax > 15 else tid))
        else:
            l4 = _u("l4", f.l4, 7)
            if l4 not in ((0, 1, 2, 4, 5) if pf == PDU_TPDU else (0, 2, 4, 5)):
                raise ValueError("reserved layer-4 type %d" % l4)
            _unused(f, ("auth_fmt", "auth_group", "value"))
            out.append((_b("auth", f.auth) << 7) | (l4 << 4) | (tid >> 8 if tmax > 15 else tid))
        if tmax > 15:
            out.append(tid & 0xFF)
        if pf == PDU_AUTH:
            out += _bytes("value", f.value, (8,))
            if f.auth_fmt == AF_GROUP:
                out.append(_u("auth_group", f.auth_group, 255))
            else:
                _unused(f, ("auth_group",))
            _unused(f, ("mlist", "apdu"))
        elif _has_mlist(f):
            ml = _bytes("mlist", f.mlist, range(MLIST_MAX + 1))
            out.append(len(ml))
            out += ml
        else:
            _unused(f, ("mlist",))
    if _carries_apdu(f):
        if not isinstance(f.apdu, (bytes, bytearray)):
            raise ValueError("apdu: bytes expected: %r" % (f.apdu,))
        out += f.apdu
    else:
        _unused(f, ("apdu",))
    why = _rules(f)
    if why:
        raise ValueError(why)
    if crc:
        out += _crc.lon_bytes(_crc.crc16_lon(out))
    if len(out) > MAX_FRAME:
        raise ValueError("too_long")
    return bytes(out)


# --- decode -----------------------------------------------------------------

def decode(data, crc=True):
    """bytes -> Frame. Raises FrameError(reason), never anything else.
    crc=False: the input carries no CRC (a MIP downlink PDU)."""
    try:
        return _decode(data, crc)
    except FrameError:
        raise
    except Exception:          # a bug; still, nothing else may escape
        raise FrameError("internal")


def _decode(data, crc):
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FrameError("type")
    data = bytes(data)
    n = len(data)
    if n > MAX_FRAME:
        raise FrameError("too_long")
    if n < (7 if crc else 5):
        raise FrameError("short")
    if crc:
        if _crc.crc16_lon(data[:-2]) != ((data[-2] << 8) | data[-1]):
            raise FrameError("crc")
        n -= 2
    b0, b1 = data[0], data[1]
    f = Frame(prio=bool(b0 & 0x80), alt=bool(b0 & 0x40), backlog=b0 & 0x3F)
    version = b1 >> 6
    if version not in (V_LEGACY, V_ENHANCED):
        raise FrameError("version")
    f.version = version
    f.pdu_fmt = pf = (b1 >> 4) & 3
    wire_af = (b1 >> 2) & 3
    dlen = DOMAIN_LENGTHS[b1 & 3]
    f.src_subnet = data[2]
    sn = data[3]
    f.src_node = sn & 0x7F
    i = 4
    if wire_af == 2:
        af = AF_SUBNET_NODE if sn & 0x80 else AF_GROUP_ACK
        need = 2 if af == AF_SUBNET_NODE else 4
    else:
        if not sn & 0x80:
            raise FrameError("selector")
        af = wire_af
        need = 1 if af != AF_NEURON_ID else 7
    f.addr_fmt = af
    if i + need + dlen > n:
        raise FrameError("short")
    if af == AF_BROADCAST:
        f.dst_subnet = data[i]
    elif af == AF_GROUP:
        f.group = data[i]
    elif af == AF_NEURON_ID:
        f.dst_subnet = data[i]
        f.neuron_id = data[i + 1:i + 7]
    else:
        f.dst_subnet = data[i]
        dn = data[i + 1]
        if not dn & 0x80:
            raise FrameError("selector")
        f.dst_node = dn & 0x7F
        if af == AF_GROUP_ACK:
            f.group = data[i + 2]
            f.member = data[i + 3]
            if f.member > MEMBER_MAX:
                raise FrameError("member")
    i += need
    f.domain = data[i:i + dlen]
    i += dlen
    if pf != PDU_APDU:
        extra = 1 if version == V_ENHANCED else 0
        if i + 1 + extra > n:
            raise FrameError("short")
        h = data[i]
        i += 1
        tid = h & 0x0F
        if extra:
            tid = (tid << 8) | data[i]
            i += 1
        f.tid = tid
        if pf == PDU_AUTH:
            f.auth_fmt = h >> 6
            f.l4 = (h >> 4) & 3
            if i + 8 > n:
                raise FrameError("short")
            f.value = data[i:i + 8]
            i += 8
            if f.auth_fmt == AF_GROUP:
                if i >= n:
                    raise FrameError("short")
                f.auth_group = data[i]
                i += 1
        else:
            f.auth = bool(h & 0x80)
            f.l4 = l4 = (h >> 4) & 7
            if l4 not in ((0, 1, 2, 4, 5) if pf == PDU_TPDU else (0, 2, 4, 5)):
                raise FrameError("l4_type")
            if _has_mlist(f):
                if i >= n:
                    raise FrameError("short")
                m = data[i]
                i += 1
                if m > MLIST_MAX:
                    raise FrameError("mlist")
                if i + m > n:
                    raise FrameError("short")
                f.mlist = data[i:i + m]
                i += m
    if _carries_apdu(f):
        f.apdu = data[i:n]
    elif i < n:
        raise FrameError("trailing")
    why = _rules(f)
    if why:
        raise FrameError(why)
    return f
