# Network formation on the meter's LonTalk node (sans-IO, portable):
# Automated Device Discovery (ADD), Automatic Topology Management (ATM) and
# the Fast Commission Message (FCM). docs/plc-repeating-and-discovery.md
# gives every byte and the reasons.
#
# What is established [reference lontalk-transport-security.md 3.1,
# osgp-application.md 7, the seed overview]: ADD/ATM use the foreign-frame
# codes 0x45 (data concentrator -> devices) and 0x4A (device -> data
# concentrator), unacknowledged, on a global discovery domain, with the
# originating Neuron ID at byte offset 2 of the APDU data [EX LtApdu.h];
# devices report signal strength, communication margin and hop count, can
# be discovered through repeaters (even uncommissioned ones), and the FCM
# loads the network personality in one message, at most 100 a day counted
# in ET04.128 [MEP ET04].
#
# EMULATOR PROFILE (the payloads, the FCM code and contents, the route, the
# back-off) -- not the standard, which is not public:
#
#   0x45 / 0x4A  code | type | round | origin NID(6) | n | pos | route n x 6 | body
#     origin     the Neuron ID of the node that originated the message (APDU
#                data offset 2); relays never change it
#     route      n = 0: one hop (to the origin's broadcast, or Neuron-ID
#                addressed). Else the Neuron IDs DC, proxy 1 .. proxy k,
#                destination (n <= 18: 16 proxies); pos = the index of the
#                node the frame is addressed to. Outbound (0x45) a node at
#                pos < n - 1 forwards to route[pos + 1]; inbound (0x4A) a node
#                forwards to route[pos - 1]. Every hop: Neuron-ID addressed,
#                unacknowledged, discovery domain, from 0/0. Proxies need no
#                commissioning.
#   0x45 type 1  DISCOVER: flags(b0 only uncommissioned, b1 add neighbours),
#                window W slots, slot length (10 ms units), hops, Neuron ID
#                value(6), mask(6). Matching nodes answer in slot
#                mix(seed(NID), round) mod W. Routed, the destination re-
#                broadcasts it as its own (origin = itself, hops = n - 1) and
#                relays the answers (0x4A with n = 0, that round, within the
#                window, not from a node of the route) to the DC along it.
#   0x45 type 2  ATM QUERY: flags (b1 add neighbours); the destination answers.
#   carriers     every answer, forward, relay and re-broadcast goes on the
#                carrier its trigger came on (the alternate-path bit); the DC
#                alternates carriers between rounds and tries.
#   0x4A 0x81 / 0x82  DISCOVER RESPONSE / ATM REPORT: program ID(8), state,
#                domain length, domain ID(6), subnet, node, hops, level of the
#                request as heard (dBuV, 255 unknown), its SNR (int8, 0x80
#                unknown), relay level, relay SNR (how the first relay heard
#                this report; filled by it), neighbour count, count x
#                (Neuron ID(6), SNR int8): the last nodes heard in the
#                discovery domain, most recent first.
#   FCM 0x46     in the OSGP security envelope of docs/plc-osgp-profile.md
#                (code | args | seq(4) | digest(8), RC4 optional, the meter's
#                current PLC unicast key, the ET04.0 sequence window): flags
#                (b0 keys follow, b1 domain entry 1), domain length, domain
#                ID(6), subnet, node, authentication key(6) [, PLC unicast
#                key(12), PLC broadcast key(12)]. Answer 00 done, 04 bad
#                values, 06 + 8 zero bytes: today's 100 FCMs are used up
#                (ET04.128; every FCM received counts, cleared at 00:00).
from . import access
from . import lontalk as L
from . import prng
from .lontalk import FrameError
from .lontalk_transport import UNACKD, REQUEST, DISCOVERY

OUT = 0x45               # FF_ADDP_OUT [EX LtApdu.h]
IN = 0x4A                # FF_ADDP_IN
FCM = 0x46               # emulator: the FCM code is not public

T_DISCOVER = 0x01
T_ATM_QUERY = 0x02
T_DISCOVER_RESPONSE = 0x81
T_ATM_REPORT = 0x82

F_UNCOMMISSIONED = 0x01
F_NEIGHBOURS = 0x02
FCM_KEYS = 0x01
FCM_INDEX1 = 0x02

MAX_PROXIES = 16
MAX_ROUTE = MAX_PROXIES + 2
NEIGHBOURS = 6           # neighbour-table entries (emulator)
NO_LEVEL = 255
NO_SNR = 0x80
HEADER = 11              # code .. pos
QUERY_LEN = 16
REPORT_LEN = 24          # without neighbours
RELAY_AT = 21            # relay level, relay SNR in the report body
SLOT_UNIT_MS = 10
RELAY_SLACK_MS = 3000    # an agent relays answers until window end + this

ET04 = 2048 + 4
ET04_FCM_COUNT = 128
ET11 = 2048 + 11
FCM_PER_DAY = 100
DAY_MS = 86400000
FCM_LEN = 17
FCM_KEYS_LEN = 41
R_OK = 0x00
R_ONP = 0x04
R_BUSY = 0x06
ZERO8 = bytes(8)


def _s8(v):
    if v is None:
        return NO_SNR
    v = int(round(v))
    if v < -127:
        v = -127
    elif v > 127:
        v = 127
    return v & 0xFF


def _u8(v):
    if v is None:
        return NO_LEVEL
    v = int(round(v))
    return 0 if v < 0 else (254 if v > 254 else v)


def _snr(b):
    return None if b == NO_SNR else (b - 256 if b > 127 else b)


def _level(b):
    return None if b == NO_LEVEL else b


def _nid(v):
    if not isinstance(v, (bytes, bytearray)) or len(v) != 6:
        raise ValueError("Neuron ID: 6 bytes")
    return bytes(v)


def seed_of(nid):
    """The back-off seed of a node: mix(NID[0:4] as UINT32 MSB first,
    NID[4:6] as UINT16)."""
    return prng.mix((nid[0] << 24) | (nid[1] << 16) | (nid[2] << 8) | nid[3],
                    (nid[4] << 8) | nid[5])


def matches(nid, value, mask):
    for i in range(6):
        if (nid[i] ^ value[i]) & mask[i]:
            return False
    return True


class Message:
    """A 0x45 / 0x4A APDU: code, type, round, origin, route (list of
    Neuron IDs), pos, body (bytes)."""

    __slots__ = ("code", "type", "round", "origin", "route", "pos", "body")

    def __init__(self, code, type, round, origin, route=(), pos=0, body=b""):
        self.code = code
        self.type = type
        self.round = round
        self.origin = origin
        self.route = list(route)
        self.pos = pos
        self.body = body

    def encode(self):
        r = self.route
        n = len(r)
        if n > MAX_ROUTE or n == 1 or (n and not 0 <= self.pos < n):
            raise ValueError("route: 0 or 2..%d entries, pos inside" % MAX_ROUTE)
        if self.code not in (OUT, IN) or not 0 <= self.type <= 255 or not 0 <= self.round <= 255:
            raise ValueError("code, type or round")
        out = bytearray((self.code, self.type, self.round))
        out += _nid(self.origin)
        out.append(n)
        out.append(self.pos if n else 0)
        for x in r:
            out += _nid(x)
        out += self.body
        return bytes(out)

    def __repr__(self):
        return "Message(0x%02X, type=0x%02X, round=%d, origin=%s, route=%d@%d, body=%d)" % (
            self.code, self.type, self.round, self.origin.hex(), len(self.route), self.pos,
            len(self.body))


def decode(apdu):
    """0x45 / 0x4A APDU -> Message. Raises FrameError "add_short",
    "add_value"."""
    a = bytes(apdu)
    if len(a) < HEADER:
        raise FrameError("add_short")
    if a[0] not in (OUT, IN):
        raise FrameError("add_value")
    n = a[9]
    if n > MAX_ROUTE or n == 1 or (n and a[10] >= n):
        raise FrameError("add_value")
    end = HEADER + 6 * n
    if len(a) < end:
        raise FrameError("add_short")
    route = [a[HEADER + 6 * i:HEADER + 6 * i + 6] for i in range(n)]
    return Message(a[0], a[1], a[2], a[3:9], route, a[10], a[end:])


class Query:
    """The DISCOVER body: flags, window (slots), slot (10 ms units), hops,
    value, mask (Neuron ID filter)."""

    __slots__ = ("flags", "window", "slot", "hops", "value", "mask")

    def __init__(self, flags=0, window=0, slot=15, hops=0, value=bytes(6), mask=bytes(6)):
        self.flags = flags
        self.window = window
        self.slot = slot
        self.hops = hops
        self.value = value
        self.mask = mask

    def encode(self):
        for v, hi in ((self.flags, 255), (self.window, 255), (self.slot, 255), (self.hops, 255)):
            if not 0 <= v <= hi:
                raise ValueError("query field out of range")
        return bytes((self.flags, self.window, self.slot, self.hops)) + _nid(self.value) + _nid(self.mask)

    @staticmethod
    def decode(b):
        if len(b) < QUERY_LEN:
            raise FrameError("add_short")
        return Query(b[0], b[1], b[2], b[3], bytes(b[4:10]), bytes(b[10:16]))


class Report:
    """The 0x4A body. level/relay_level: dBuV or None; snr/relay_snr: dB or
    None; neighbours: [(Neuron ID, SNR dB)]."""

    __slots__ = ("program_id", "state", "domain", "subnet", "node", "hops", "level", "snr",
                 "relay_level", "relay_snr", "neighbours")

    def __init__(self, program_id=bytes(8), state=0, domain=b"", subnet=0, node=0, hops=0,
                 level=None, snr=None, relay_level=None, relay_snr=None, neighbours=()):
        self.program_id = program_id
        self.state = state
        self.domain = domain
        self.subnet = subnet
        self.node = node
        self.hops = hops
        self.level = level
        self.snr = snr
        self.relay_level = relay_level
        self.relay_snr = relay_snr
        self.neighbours = list(neighbours)

    def encode(self):
        d = bytes(self.domain)
        if len(d) not in L.DOMAIN_LENGTHS or len(self.program_id) != 8:
            raise ValueError("domain or program ID")
        nb = self.neighbours
        if len(nb) > 255:
            raise ValueError("neighbours")
        out = bytearray(self.program_id)
        out += bytes((self.state & 0xFF, len(d)))
        out += d + bytes(6 - len(d))
        out += bytes((self.subnet & 0xFF, self.node & 0x7F, self.hops & 0xFF, _u8(self.level),
                      _s8(self.snr), _u8(self.relay_level), _s8(self.relay_snr), len(nb)))
        for nid, snr in nb:
            out += _nid(nid)
            out.append(_s8(snr))
        return bytes(out)

    @staticmethod
    def decode(b):
        if len(b) < REPORT_LEN:
            raise FrameError("add_short")
        dl = b[9]
        if dl not in L.DOMAIN_LENGTHS:
            raise FrameError("add_value")
        m = b[23]
        if len(b) < REPORT_LEN + 7 * m:
            raise FrameError("add_short")
        nb = []
        for i in range(m):
            p = REPORT_LEN + 7 * i
            nb.append((bytes(b[p:p + 6]), _snr(b[p + 6])))
        return Report(bytes(b[0:8]), b[8], bytes(b[10:10 + dl]), b[16], b[17], b[18],
                      _level(b[19]), _snr(b[20]), _level(b[21]), _snr(b[22]), nb)


def fcm_request(domain_id, subnet, node, auth_key=bytes(6), unicast=None, broadcast=None,
                index=0):
    """The FCM's code and arguments (the OSGP envelope adds seq and digest)."""
    d = bytes(domain_id)
    if len(d) not in L.DOMAIN_LENGTHS or not 1 <= subnet <= 255 or not 1 <= node <= 127 \
            or index not in (0, 1) or len(auth_key) != 6:
        raise ValueError("FCM: bad domain, subnet, node, index or key")
    keys = unicast is not None or broadcast is not None
    out = bytearray((FCM, (FCM_KEYS if keys else 0) | (FCM_INDEX1 if index else 0), len(d)))
    out += d + bytes(6 - len(d))
    out += bytes((subnet, node))
    out += bytes(auth_key)
    if keys:
        if unicast is None or broadcast is None or len(unicast) != 12 or len(broadcast) != 12:
            raise ValueError("FCM: both 12-byte PLC keys")
        out += bytes(unicast) + bytes(broadcast)
    return bytes(out)


def parse_fcm(req):
    """(index, domain ID, subnet, node, auth key, unicast, broadcast) or None."""
    if len(req) < FCM_LEN or req[0] != FCM:
        return None
    flags = req[1]
    dl = req[2]
    if flags & ~(FCM_KEYS | FCM_INDEX1) or dl not in L.DOMAIN_LENGTHS:
        return None
    if len(req) != (FCM_KEYS_LEN if flags & FCM_KEYS else FCM_LEN):
        return None
    subnet, node = req[9], req[10]
    if not 1 <= subnet <= 255 or not 1 <= node <= 127:
        return None
    uk = bk = None
    if flags & FCM_KEYS:
        uk, bk = bytes(req[17:29]), bytes(req[29:41])
    return (1 if flags & FCM_INDEX1 else 0, bytes(req[3:3 + dl]), subnet, node,
            bytes(req[11:17]), uk, bk)


class Discovery:
    """ADD/ATM/FCM on one node. neighbours(): the table, most recent first.
    stats: answered, forwarded, relayed, reports, fcm, fcm_refused, dropped.
    tz_offset_ms: local time - UTC for the FCM counter's midnight."""

    __slots__ = ("node", "seed", "nmax", "table", "tick", "relay", "pending", "last",
                 "stats", "tz_offset_ms", "day", "fcm_count", "_exec", "_clear")

    def __init__(self, node, neighbours=NEIGHBOURS, tz_offset_ms=0):
        self.node = node
        self.seed = seed_of(node.neuron_id)
        self.nmax = neighbours
        self.table = []              # [Neuron ID, SNR, tick]
        self.tick = 0
        self.relay = None            # (round, route, until) while an agent
        self.pending = None          # a scheduled discovery response
        self.last = None             # (origin, round) last answered
        self.stats = {"answered": 0, "forwarded": 0, "relayed": 0, "reports": 0, "fcm": 0,
                      "fcm_refused": 0, "dropped": 0}
        self.tz_offset_ms = tz_offset_ms
        self.day = None
        self.fcm_count = 0
        self._clear = None
        self._exec = None
        node.register(OUT, self._out)
        node.register(IN, self._in)
        node.register(FCM, self._fcm)
        if node.osgp is not None:
            self._exec = node.osgp.execute
            node.osgp.execute = self._execute

    # -- helpers ----------------------------------------------------------------
    def _no(self, why):
        self.stats["dropped"] += 1
        self.node._drop(why)
        return None

    def _send(self, nid, apdu, now, alt):
        # on the carrier the triggering frame came on (alt: the secondary)
        dest = (L.AF_BROADCAST, 0, 0) if nid is None else (L.AF_NEURON_ID, 0, nid)
        self.node.send(dest, apdu, now, service=UNACKD, domain=self.node.discovery_domain,
                       alt=alt)

    def slot(self, round, window):
        """The back-off slot of this node for a round: mix(seed, round) mod W."""
        return prng.mix(self.seed, round) % window if window else 0

    def _heard(self, nid, inc):
        if inc.snr is None or nid == self.node.neuron_id:
            return
        self.tick += 1
        t = self.table
        snr = int(round(inc.snr))
        for e in t:
            if e[0] == nid:
                e[1] = snr
                e[2] = self.tick
                return
        if len(t) >= self.nmax:
            old = t[0]
            for e in t:
                if e[2] < old[2]:
                    old = e
            t.remove(old)
        t.append([bytes(nid), snr, self.tick])

    def neighbours(self):
        t = sorted(self.table, key=lambda e: -e[2])
        return [(e[0], e[1]) for e in t]

    def report(self, hops, inc, neighbours=False):
        n = self.node
        d = n.domains[0]
        dom, sub, nd = b"", 0, 0
        if n.configured and not d.invalid:
            dom, sub, nd = bytes(d.domain_id[:d.id_len]), d.subnet, d.node
        return Report(n.program_id, n.state_code, dom, sub, nd, hops, inc.rssi, inc.snr,
                      None, None, self.neighbours() if neighbours else ())

    # -- 0x45: outbound ------------------------------------------------------------
    def _out(self, node, inc, now):
        if inc.dom != DISCOVERY:
            return self._no("add_domain")
        try:
            m = decode(inc.frame.apdu)
        except FrameError:
            return self._no("add_bad")
        me = node.neuron_id
        n = len(m.route)
        try:
            if n:
                if m.pos == 0 or m.route[m.pos] != me:
                    return self._no("add_route")
                self._heard(m.route[m.pos - 1], inc)
                if m.pos < n - 1:
                    m.pos += 1
                    self.stats["forwarded"] += 1
                    self._send(m.route[m.pos], m.encode(), now, inc.frame.alt)
                elif m.type == T_DISCOVER:
                    self._agent(m, now, inc.frame.alt)
                elif m.type == T_ATM_QUERY:
                    self._reply(m, inc, now, n - 2)
                return None
            self._heard(m.origin, inc)
            if m.origin == me:
                return None
            if m.type == T_DISCOVER:
                self._discover(m, inc, now)
            elif m.type == T_ATM_QUERY and inc.frame.addr_fmt == L.AF_NEURON_ID:
                self._reply(m, inc, now, 0)
        except (FrameError, ValueError):
            return self._no("add_bad")
        return None

    def _reply(self, m, inc, now, hops):
        flags = m.body[0] if m.body else 0
        body = self.report(hops, inc, flags & F_NEIGHBOURS).encode()
        me = self.node.neuron_id
        self.stats["reports"] += 1
        if m.route:
            r = Message(IN, T_ATM_REPORT, m.round, me, m.route, len(m.route) - 2, body)
            self._send(r.route[r.pos], r.encode(), now, inc.frame.alt)
        else:
            self._send(m.origin, Message(IN, T_ATM_REPORT, m.round, me, (), 0, body).encode(), now,
                       inc.frame.alt)

    def _discover(self, m, inc, now):
        q = Query.decode(m.body)
        node = self.node
        if q.flags & F_UNCOMMISSIONED and node.configured:
            return
        if not matches(node.neuron_id, q.value, q.mask):
            return
        key = (bytes(m.origin), m.round)
        if self.last == key:
            return                                  # heard twice: one answer
        self.last = key
        body = self.report(q.hops, inc, q.flags & F_NEIGHBOURS).encode()
        apdu = Message(IN, T_DISCOVER_RESPONSE, m.round, node.neuron_id, (), 0, body).encode()
        origin = bytes(m.origin)
        alt = inc.frame.alt
        if self.pending is not None:
            node.cancel(self.pending)
            self.pending = None
        self.stats["answered"] += 1
        if node.life is not None:
            node.life.fire("discover")              # the lifecycle: uninstalled -> discovered
        s = self.slot(m.round, q.window)
        if s == 0:
            self._send(origin, apdu, now, alt)
            return
        disc = self

        def fire(n, t):
            disc.pending = None
            disc._send(origin, apdu, t, alt)
        self.pending = node.later(now + s * q.slot * SLOT_UNIT_MS, fire)

    def _agent(self, m, now, alt):
        q = Query.decode(m.body)
        q.hops = len(m.route) - 1
        self.relay = (m.round, list(m.route), now + q.window * q.slot * SLOT_UNIT_MS + RELAY_SLACK_MS)
        self.stats["forwarded"] += 1
        b = Message(OUT, T_DISCOVER, m.round, self.node.neuron_id, (), 0, q.encode())
        self._send(None, b.encode(), now, alt)

    # -- 0x4A: inbound -------------------------------------------------------------
    def _in(self, node, inc, now):
        if inc.dom != DISCOVERY:
            return self._no("add_domain")
        try:
            m = decode(inc.frame.apdu)
        except FrameError:
            return self._no("add_bad")
        me = node.neuron_id
        n = len(m.route)
        if n == 0:
            self._heard(m.origin, inc)
            r = self.relay
            if (r is None or m.round != r[0] or now > r[2] or m.type != T_DISCOVER_RESPONSE
                    or inc.frame.addr_fmt != L.AF_NEURON_ID):
                return self._no("add_unexpected")
            if m.origin in r[1]:
                return self._no("add_route_member")      # a proxy of this route: known
            m.route = r[1]
            m.pos = len(r[1]) - 1
        elif m.pos == 0 or m.pos >= n - 1 or m.route[m.pos] != me:
            return self._no("add_route")
        else:
            self._heard(m.route[m.pos + 1], inc)
        b = m.body
        if len(b) >= REPORT_LEN and b[RELAY_AT] == NO_LEVEL and b[RELAY_AT + 1] == NO_SNR:
            m.body = b[:RELAY_AT] + bytes((_u8(inc.rssi), _s8(inc.snr))) + b[RELAY_AT + 2:]
        m.pos -= 1
        self.stats["relayed"] += 1
        self._send(m.route[m.pos], m.encode(), now, inc.frame.alt)
        return None

    # -- FCM ------------------------------------------------------------------------
    def _count(self):
        s = self.node.store
        if s is not None and s.exists(ET04):
            return s.field(ET04, ET04_FCM_COUNT, 1)
        return self.fcm_count

    def _set_count(self, v):
        self.fcm_count = v
        s = self.node.store
        if s is not None and s.exists(ET04):
            s.set_field(ET04, ET04_FCM_COUNT, 1, v)

    def _midnight(self, node, now):
        self.day = (now + self.tz_offset_ms) // DAY_MS
        self._set_count(0)

    def _fcm(self, node, inc, now):
        req = inc.service == REQUEST
        osgp = node.osgp
        if osgp is None or inc.multicast:
            return self._no("fcm")
        day = (now + self.tz_offset_ms) // DAY_MS
        cnt = self._count()
        if day != self.day:
            if self.day is not None:
                cnt = 0                 # a midnight passed without the timer (a reset)
            self.day = day
        if cnt >= FCM_PER_DAY:
            self.stats["fcm_refused"] += 1
            return bytes((R_BUSY,)) + ZERO8 if req else None
        self._set_count(cnt + 1)
        if self._clear != day:          # clear ET04.128 at the coming midnight
            self._clear = day
            node.later((day + 1) * DAY_MS - self.tz_offset_ms, self._midnight)
        return osgp.handle(inc, now)

    def _execute(self, request, role, now):
        if request and request[0] == FCM:
            return self._commission(request)
        return self._exec(request, role, now)

    def _commission(self, req):
        v = parse_fcm(req)
        if v is None:
            return bytes((R_ONP,))
        index, dom, subnet, nd, key, uk, bk = v
        node = self.node
        try:
            if node.commission(dom, subnet, nd, key, index) is False:
                return bytes((R_ONP,))              # the lifecycle table refused it
        except ValueError:
            return bytes((R_ONP,))
        if uk is not None:
            keys = node.osgp.keys
            keys.set(access.ROLE_PLC, uk)
            keys.set(access.ROLE_BCAST, bk)
            s = node.store
            if s is not None and s.exists(ET11):
                s.set_field(ET11, 82, 4, 0)          # the new keys' usage counters
                s.set_field(ET11, 86, 4, 0)
        self.stats["fcm"] += 1
        return bytes((R_OK,))


def enable(node, neighbours=NEIGHBOURS, tz_offset_ms=0):
    """Give `node` (a PlcNode) ADD/ATM and the FCM; returns the Discovery."""
    return Discovery(node, neighbours, tz_offset_ms)
