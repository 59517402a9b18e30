# ISO/IEC 14908-1 APDUs: message-code classes, network-variable headers,
# network-management (NM) and network-diagnostic (ND) response-code rules,
# and codecs for the NM/ND payloads an OSGP meter answers. Layouts from
# [DX] izot/lon-stack-dx include/izot/lon_types.h, include/lcs/lcs_netmgmt.h
# and lcs/lcs_netmgmt.c (the handlers: what they read and what they send);
# per-message sources in docs/plc-frames.md. Every function works on a whole
# APDU: the message code byte first.
#
# Parsers raise FrameError with reason "nm_length" (wrong size), "nm_value"
# (a field value the handler refuses) or "nm_code" (a code this module does
# not parse); the node layer answers a *request* that fails to parse with
# the failure code (nm_failure/nd_failure) and drops anything else [DX
# NMNDRespond]. Builders raise ValueError for out-of-range fields.
from .lontalk import FrameError, same_fields

REASONS = ("nm_length", "nm_value", "nm_code")

# --- message-code classes (first APDU byte) [WS-LON] [DX lon_types.h] ------
CLASS_APP = 0            # 0x00-0x3F application message
CLASS_FOREIGN = 1        # 0x40-0x4F foreign frame
CLASS_ND = 2             # 0x50-0x5F network diagnostics
CLASS_NM = 3             # 0x60-0x7F network management
CLASS_NV = 4             # 0x80-0xFF network variable (2-byte header)

NM_EXPANDED = 0x60
NM_QUERY_ID = 0x61
NM_RESPOND_TO_QUERY = 0x62
NM_UPDATE_DOMAIN = 0x63
NM_LEAVE_DOMAIN = 0x64
NM_UPDATE_KEY = 0x65
NM_UPDATE_ADDR = 0x66
NM_QUERY_ADDR = 0x67
NM_QUERY_NV_CNFG = 0x68
NM_UPDATE_GROUP_ADDR = 0x69
NM_QUERY_DOMAIN = 0x6A
NM_UPDATE_NV_CNFG = 0x6B
NM_SET_NODE_MODE = 0x6C
NM_READ_MEMORY = 0x6D
NM_WRITE_MEMORY = 0x6E
NM_CHECKSUM_RECALC = 0x6F
NM_WINK = 0x70
NM_MEMORY_REFRESH = 0x71
NM_QUERY_SNVT = 0x72
NM_NV_FETCH = 0x73
NM_DEVICE_ESCAPE = 0x7D
NM_ROUTER_ESCAPE = 0x7E
NM_SERVICE_PIN = 0x7F
ND_QUERY_STATUS = 0x51
ND_PROXY = 0x52
ND_CLEAR_STATUS = 0x53
ND_QUERY_XCVR = 0x54
ND_QUERY_STATUS_FLEX = 0x56
FF_ADDP_OUT = 0x45       # ADDP/ATM, data concentrator -> devices [EX LtApdu.h]
FF_ADDP_IN = 0x4A        # ADDP/ATM, device -> data concentrator; payload unknown
FF_PROXY_FAIL = 0x4C     # LTEP failure response (lontalk_proxy)
FF_PROXY = 0x4D          # LTEP request and success response (lontalk_proxy)

# query-ID selectors and memory modes [DX lcs_netmgmt.h Selector, ModeType]
SEL_UNCONFIGURED = 0
SEL_SELECTED = 1
SEL_SELECTED_UNCFG = 2
MODE_ABSOLUTE = 0
MODE_READ_ONLY = 1
MODE_CONFIG = 2
MODE_STATS = 3
# set-node-mode modes [DX lon_types.h IzotNodeMode]
NODE_OFFLINE = 0
NODE_ONLINE = 1
NODE_APP_RESET = 2
NODE_CHANGE_STATE = 3
NODE_PHYSICAL_RESET = 6
# node states [DX lon_types.h IzotNodeState]
STATE_APPLICATION_UNCONFIG = 2
STATE_NO_APPLICATION_UNCONFIG = 3
STATE_CONFIG_ONLINE = 4
STATE_CONFIG_OFFLINE = 6
STATE_SOFT_OFFLINE = 12
# ND proxy sub-commands [DX lcs_netmgmt.c HandleNDProxyCommand]
PROXY_QUERY_UNCONFIG = 0
PROXY_QUERY_STATUS = 1
PROXY_QUERY_XCVR = 2

UID_LEN = 6
PID_LEN = 8
XCVR_LEN = 7


def apdu_class(code):
    if code & 0x80:
        return CLASS_NV
    if code < 0x40:
        return CLASS_APP
    if code < 0x50:
        return CLASS_FOREIGN
    if code < 0x60:
        return CLASS_ND
    return CLASS_NM


def nv_header(direction, selector):
    """Two bytes: 1, direction (bit 14), selector (bits 13-0) [WS-LON]."""
    if direction not in (0, 1) or not 0 <= selector <= 0x3FFF:
        raise ValueError("nv header out of range")
    return bytes((0x80 | (direction << 6) | (selector >> 8), selector & 0xFF))


def nv_split(apdu):
    """NV APDU -> (direction, selector, data)."""
    if len(apdu) < 2 or not apdu[0] & 0x80:
        raise FrameError("nm_length")
    return (apdu[0] >> 6) & 1, ((apdu[0] & 0x3F) << 8) | apdu[1], bytes(apdu[2:])


# --- response codes [DX lcs_netmgmt.h] ---------------------------------------

def nm_success(code):
    return (code & 0x1F) | 0x20


def nm_failure(code):
    return code & 0x1F


def nd_success(code):
    return (code & 0x0F) | 0x30


def nd_failure(code):
    return (code & 0x0F) | 0x10


def success(code):
    return nd_success(code) if apdu_class(code) == CLASS_ND else nm_success(code)


def failure(code):
    return nd_failure(code) if apdu_class(code) == CLASS_ND else nm_failure(code)


# --- small helpers ------------------------------------------------------------

def _u(name, v, hi):
    if v is True or v is False or not isinstance(v, int) or v < 0 or v > hi:
        raise ValueError("%s out of range: %r" % (name, v))
    return v


def _raw(name, v, n):
    if not isinstance(v, (bytes, bytearray)) or len(v) != n:
        raise ValueError("%s: %d bytes expected" % (name, n))
    return bytes(v)


def _need(apdu, n, exact=True):
    if (len(apdu) != n) if exact else (len(apdu) < n):
        raise FrameError("nm_length")


# --- domain table entry (15 bytes) [DX lon_types.h IzotDomain] -----------------

class Domain:
    """domain_id(6) subnet node/nonclone flags/invalid/id_len key(6).
    flags: bits 6-3 of byte 8 (DX: LS mode, DHCP, authentication type),
    kept raw. A left domain reads back as invalid with id_len 7 [DX
    HandleNMLeaveDomain fills 0xFF], so id_len is not restricted here."""

    __slots__ = ("domain_id", "subnet", "node", "nonclone", "invalid", "id_len",
                 "flags", "key")

    def __init__(self, domain_id=bytes(6), subnet=0, node=0, id_len=0, key=bytes(6),
                 nonclone=True, invalid=False, flags=0):
        self.domain_id = domain_id
        self.subnet = subnet
        self.node = node
        self.nonclone = nonclone
        self.invalid = invalid
        self.id_len = id_len
        self.flags = flags
        self.key = key

    def __eq__(self, o):
        return isinstance(o, Domain) and self.encode() == o.encode()

    def __ne__(self, o):
        return not self.__eq__(o)

    def __repr__(self):
        return "Domain(%r, subnet=%d, node=%d, id_len=%d, invalid=%r)" % (
            self.domain_id, self.subnet, self.node, self.id_len, self.invalid)

    def encode(self):
        return (_raw("domain_id", self.domain_id, 6)
                + bytes((_u("subnet", self.subnet, 255),
                         (0x80 if self.nonclone else 0) | _u("node", self.node, 127),
                         (0x80 if self.invalid else 0) | (_u("flags", self.flags, 15) << 3)
                         | _u("id_len", self.id_len, 7)))
                + _raw("key", self.key, 6))

    @staticmethod
    def decode(b):
        if len(b) != 15:
            raise FrameError("nm_length")
        return Domain(bytes(b[0:6]), b[6], b[7] & 0x7F, b[8] & 7, bytes(b[9:15]),
                      bool(b[7] & 0x80), bool(b[8] & 0x80), (b[8] >> 3) & 15)


# --- address table entry (5 bytes) [DX lon_types.h IzotAddress] ----------------

ADDR_UNBOUND = 0
ADDR_SUBNET_NODE = 1
ADDR_BROADCAST = 3
ADDR_GROUP = 0x80

_AE = ("kind", "domain", "node", "subnet", "group", "size", "member", "backlog",
       "rpt_timer", "retry", "rcv_timer", "tx_timer", "turnaround")


class AddressEntry:
    """One address-table entry.
    group:       1|size(7), domain(7)|member(6-0), rpt|retry, rcv|tx, group
    subnet/node: 1, domain(7)|node(6-0), rpt|retry, tx, subnet
    broadcast:   3, domain(7)|0|backlog(5-0), rpt|retry, tx, subnet
    unbound:     0, turnaround(0/1), rpt|retry, tx, subnet byte (unused)
    Reserved bits must be zero."""

    __slots__ = _AE

    def __init__(self, kind=ADDR_UNBOUND, domain=0, node=None, subnet=None, group=None,
                 size=None, member=None, backlog=None, rpt_timer=0, retry=0,
                 rcv_timer=None, tx_timer=0, turnaround=None):
        self.kind = kind
        self.domain = domain
        self.node = node
        self.subnet = subnet
        self.group = group
        self.size = size
        self.member = member
        self.backlog = backlog
        self.rpt_timer = rpt_timer
        self.retry = retry
        self.rcv_timer = rcv_timer
        self.tx_timer = tx_timer
        self.turnaround = turnaround

    def __eq__(self, o):
        return same_fields(self, o, _AE)

    def __ne__(self, o):
        return not self.__eq__(o)

    def __repr__(self):
        return "AddressEntry(%s)" % ", ".join(
            "%s=%r" % (n, getattr(self, n)) for n in _AE if getattr(self, n) is not None)

    def encode(self):
        rr = (_u("rpt_timer", self.rpt_timer, 15) << 4) | _u("retry", self.retry, 15)
        k = self.kind
        if k == ADDR_GROUP:
            if self.subnet is not None:
                raise ValueError("a group entry has no subnet")
            return bytes((0x80 | _u("size", self.size, 127),
                          (_u("domain", self.domain, 1) << 7) | _u("member", self.member, 127),
                          rr, (_u("rcv_timer", self.rcv_timer, 15) << 4)
                          | _u("tx_timer", self.tx_timer, 15), _u("group", self.group, 255)))
        if k == ADDR_SUBNET_NODE:
            b1 = (_u("domain", self.domain, 1) << 7) | _u("node", self.node, 127)
        elif k == ADDR_BROADCAST:
            b1 = (_u("domain", self.domain, 1) << 7) | _u("backlog", self.backlog, 63)
        elif k == ADDR_UNBOUND:
            b1 = _u("turnaround", self.turnaround, 1)
        else:
            raise ValueError("kind: %r" % (k,))
        return bytes((k, b1, rr, _u("tx_timer", self.tx_timer, 15), _u("subnet", self.subnet, 255)))

    @staticmethod
    def decode(b):
        if len(b) != 5:
            raise FrameError("nm_length")
        t = b[0]
        e = AddressEntry(rpt_timer=b[2] >> 4, retry=b[2] & 15)
        if t & 0x80:
            e.kind = ADDR_GROUP
            e.size = t & 0x7F
            e.domain = b[1] >> 7
            e.member = b[1] & 0x7F
            e.rcv_timer = b[3] >> 4
            e.tx_timer = b[3] & 15
            e.group = b[4]
            return e
        if b[3] & 0xF0 or t not in (ADDR_UNBOUND, ADDR_SUBNET_NODE, ADDR_BROADCAST):
            raise FrameError("nm_value")
        e.kind = t
        e.tx_timer = b[3]
        e.subnet = b[4]
        if t == ADDR_SUBNET_NODE:
            e.domain = b[1] >> 7
            e.node = b[1] & 0x7F
        elif t == ADDR_BROADCAST:
            if b[1] & 0x40:
                raise FrameError("nm_value")
            e.domain = b[1] >> 7
            e.backlog = b[1] & 0x3F
        else:
            if b[1] > 1:
                raise FrameError("nm_value")
            e.domain = 0
            e.turnaround = b[1]
        return e


# --- node status (ND query status answer, 15 bytes) [DX NDQueryStat] ----------

_ST = ("tx_errors", "timeouts", "rx_full", "lost", "missed", "reset_cause",
       "node_state", "version", "error_log", "arch")


class Status:
    """Five 16-bit statistics (big-endian), reset cause, node state,
    firmware version, last error, architecture."""

    __slots__ = _ST

    def __init__(self, tx_errors=0, timeouts=0, rx_full=0, lost=0, missed=0,
                 reset_cause=0, node_state=STATE_CONFIG_ONLINE, version=0, error_log=0, arch=0):
        self.tx_errors = tx_errors
        self.timeouts = timeouts
        self.rx_full = rx_full
        self.lost = lost
        self.missed = missed
        self.reset_cause = reset_cause
        self.node_state = node_state
        self.version = version
        self.error_log = error_log
        self.arch = arch

    def __eq__(self, o):
        return isinstance(o, Status) and self.encode() == o.encode()

    def __ne__(self, o):
        return not self.__eq__(o)

    def encode(self):
        out = bytearray()
        for n in _ST[:5]:
            v = _u(n, getattr(self, n), 0xFFFF)
            out.append(v >> 8)
            out.append(v & 0xFF)
        for n in _ST[5:]:
            out.append(_u(n, getattr(self, n), 255))
        return bytes(out)

    @staticmethod
    def decode(b):
        if len(b) != 15:
            raise FrameError("nm_length")
        return Status(*([(b[2 * k] << 8) | b[2 * k + 1] for k in range(5)] + list(b[10:15])))


# --- the one request builder a meter uses (the others: lontalk_nm_client) -----

def service_pin(uid, pid):
    """0x7F Neuron ID(6) program ID(8): sent unacknowledged, domain-wide
    broadcast, domain length 0 [DX ManualServiceRequestMessage]."""
    return bytes((NM_SERVICE_PIN,)) + _raw("uid", uid, UID_LEN) + _raw("pid", pid, PID_LEN)


# --- request parser (what the meter receives) ---------------------------------

def parse_request(apdu):
    """NM/ND request APDU -> (code, args). args per code:
    0x61 (selector, mode|None, offset, data)  0x62 (flag,)
    0x63 (index, Domain)   0x64 (index,)     0x65 (index, delta)
    0x66 (index, AddressEntry)  0x67 (index,)  0x69 (AddressEntry,)
    0x6A (index,)          0x6C (mode, state|None)  0x70 (subcmd|None,)
    0x7F (uid, pid)        0x51 ()  0x53 ()  0x54 ()
    0x52 (subcmd, address|None, uid|None)
    Raises FrameError("nm_length" | "nm_value" | "nm_code")."""
    if not apdu:
        raise FrameError("nm_length")
    c = apdu[0]
    n = len(apdu)
    if c == NM_QUERY_ID:
        if n == 2:
            args = (apdu[1], None, 0, b"")
        else:
            _need(apdu, 6, False)
            if n != 6 + apdu[5]:
                raise FrameError("nm_length")
            args = (apdu[1], apdu[2], (apdu[3] << 8) | apdu[4], bytes(apdu[6:]))
            if args[1] > MODE_CONFIG:       # DX: statistics-relative fails
                raise FrameError("nm_value")
        if args[0] > SEL_SELECTED_UNCFG:
            raise FrameError("nm_value")
        return c, args
    if c == NM_RESPOND_TO_QUERY:
        _need(apdu, 2)
        if apdu[1] > 1:
            raise FrameError("nm_value")
        return c, (apdu[1],)
    if c == NM_UPDATE_DOMAIN:
        _need(apdu, 17)
        return c, (apdu[1], Domain.decode(apdu[2:]))
    if c in (NM_LEAVE_DOMAIN, NM_QUERY_ADDR, NM_QUERY_DOMAIN):
        _need(apdu, 2)
        return c, (apdu[1],)
    if c == NM_UPDATE_KEY:
        _need(apdu, 8)
        return c, (apdu[1], bytes(apdu[2:]))
    if c == NM_UPDATE_ADDR:
        _need(apdu, 7)
        return c, (apdu[1], AddressEntry.decode(apdu[2:]))
    if c == NM_UPDATE_GROUP_ADDR:
        _need(apdu, 6)
        return c, (AddressEntry.decode(apdu[1:]),)
    if c == NM_SET_NODE_MODE:
        _need(apdu, 2, False)
        if apdu[1] == NODE_CHANGE_STATE:
            _need(apdu, 3)
            return c, (apdu[1], apdu[2])
        _need(apdu, 2)
        return c, (apdu[1], None)
    if c == NM_WINK:
        if n > 2:
            raise FrameError("nm_length")
        return c, (apdu[1] if n == 2 else None,)
    if c == NM_SERVICE_PIN:
        _need(apdu, 1 + UID_LEN + PID_LEN)
        return c, (bytes(apdu[1:7]), bytes(apdu[7:15]))
    if c in (ND_QUERY_STATUS, ND_CLEAR_STATUS, ND_QUERY_XCVR):
        _need(apdu, 1)
        return c, ()
    if c == ND_PROXY:
        if n == 2:
            return c, (apdu[1], None, None)
        _need(apdu, 7, False)
        if n != (13 if apdu[2] == 2 else 7):
            raise FrameError("nm_length")
        return c, (apdu[1], bytes(apdu[2:7]), bytes(apdu[7:]) if n == 13 else None)
    raise FrameError("nm_code")


# --- responses (what the meter sends back) ------------------------------------

def ok(code, payload=b""):
    """Success response: the success code for request code, then payload."""
    return bytes((success(code),)) + bytes(payload)


def fail(code):
    """Failure response: one byte [DX NMNDRespond]."""
    return bytes((failure(code),))


def id_response(uid, pid):
    """Query ID success (0x21), also the ND proxy query-unconfig answer
    (use ok(ND_PROXY, uid + pid))."""
    return ok(NM_QUERY_ID, _raw("uid", uid, UID_LEN) + _raw("pid", pid, PID_LEN))


# The request builders a data concentrator or tool uses, and the response
# parser, are in lontalk_nm_client.py: a meter does not load them (about
# 4 KB of MicroPython heap); N.query_id etc. still work, loaded on first use.
def __getattr__(name):
    if name[0] != "_":          # not __path__ & co: the import machinery asks those
        from . import lontalk_nm_client
        if hasattr(lontalk_nm_client, name):
            return getattr(lontalk_nm_client, name)
    raise AttributeError(name)
