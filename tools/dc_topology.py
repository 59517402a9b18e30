"""The data concentrator's network formation and maintenance on a virtual
PLC channel (host side, CPython): Automated Device Discovery rounds
(directly, then through discovered meters as proxies, layer by layer),
commissioning (the Fast Commission Message by default, or the ISO/IEC
14908-1 multi-message way), repeater-path selection from what the meters
report (Automatic Topology Management), and adaptation when links change
(periodic ATM checks; a meter that stops answering on its path gets a new
one: direct, through its best neighbour, or found again by a targeted
discovery, e.g. after it moved to another feeder).

The message formats are the EMULATOR PROFILE of meter/plc_discovery.py and
the LTEP chains of meter/plc_repeat.py (docs/plc-repeating-and-discovery.md).
The path-selection rules are this DC's own ("the algorithm used to select
repeaters is open to innovation by DC developers" [SEED]); they are listed
in that document and in ``Topology.best_path``.

    from osgp_host.channel import Channel
    from osgp_host.dc_topology import Discovery, make_fleet

    ch = Channel()                       # tools/topologies/default.toml
    fleet = make_fleet(ch)               # 50 meters with PLC, repeating, ADD/ATM/FCM
    disc = Discovery(ch, names=fleet.names, book=fleet.book)
    result = disc.run()                  # plain data: meters, paths, hops, times
    answer = disc.exchange(nid, apdu)    # an APDU to a meter along its path
    disc.check()                         # ATM round: reroute what stopped answering

Everything here is synchronous: a call runs the channel (virtual time) until
its answer is in. Do not call it from inside a channel callback.
"""
import hashlib
import math
import time

from osgp_meter import access
from osgp_meter import lontalk as L
from osgp_meter import lontalk_nm as N
from osgp_meter import lontalk_proxy as X
from osgp_meter import plc_discovery as D
from osgp_meter import plc_repeat as R
from osgp_meter.digest import OmaDigest
from osgp_meter.plc_node import PlcNode, AddressBook, REQUEST, UNACKD

DC_NEURON_ID = bytes.fromhex("00 0D C0 00 00 01")     # emulator choice
DEFAULT_DOMAIN = b"\x42"
DEFAULT_SUBNET = 1
DC_NODE = 126
FACTORY_KEY = bytes.fromhex("0102030405060708090a0b0c")        # tools/default_profile.toml
FACTORY_BCAST = bytes.fromhex("0c0b0a090807060504030201")
MIN_MARGIN_DB = 12.0     # a 43-byte frame is lost ~0.1 % of the time at 12 dB (docs/plc-channel.md)
SLOT_MS = 150            # one discovery answer's airtime (~140 ms) plus channel access
HOP_MS = 400             # the DC's estimate of one unacknowledged hop (airtime + access)
MAX_PROXIES = R.MAX_PROXIES
BETTER_DB = 3.0          # optimise(): a path must be this much better to replace a working one


def hexid(nid):
    return bytes(nid).hex()


def neuron_id_for(node_id, prefix=b"\x00\x02\x98"):
    """The emulator's Neuron ID for a channel node id: 00 02 98, a byte for
    the letters (0x10 for "m", 0x04 for "a" ...; a CRC for longer ones), the
    number (2 bytes): m037 -> 00 02 98 10 00 25."""
    import zlib
    letters = "".join(c for c in node_id if not c.isdigit())
    digits = "".join(c for c in node_id if c.isdigit())
    if len(letters) == 1:
        tag = (0x10 + ord(letters) - ord("m")) & 0xFF
    else:
        tag = zlib.crc32(letters.encode()) & 0xFF
    n = int(digits) & 0xFFFF if digits else zlib.crc32(node_id.encode()) & 0xFFFF
    return prefix + bytes((tag,)) + n.to_bytes(2, "big")


class Fleet:
    """What make_fleet built: firmware by channel id, names by Neuron ID,
    the address book, the Discovery/Repeater objects of each meter."""

    def __init__(self):
        self.firmware = {}
        self.names = {}
        self.nids = {}
        self.book = AddressBook()
        self.roles = {}

    def node(self, node_id):
        return self.firmware[node_id].plc


def make_fleet(channel, ids=None, dc_id="dc", factory_key=FACTORY_KEY,
               factory_bcast=FACTORY_BCAST, catalogue=None):
    """A Firmware with its PLC node for every meter of the channel's topology
    (or `ids`), with LTEP repeating and ADD/ATM/FCM enabled, uncommissioned
    (as shipped), keyed with the factory PLC keys, attached to the channel
    behind an AddressBook (the DC, or every id in a list `dc_id`, always
    listens)."""
    from osgp_meter.firmware import Firmware
    from osgp_meter import catalogue_data
    fleet = Fleet()
    dcs = [dc_id] if isinstance(dc_id, str) else list(dc_id)
    if ids is None:
        ids = [n.id for n in channel.topology.nodes if n.role != "dc" and n.id not in dcs]
    tables = catalogue if catalogue is not None else catalogue_data.TABLES
    for node_id in ids:
        nid = neuron_id_for(node_id)
        fw = Firmware({"plc": True, "neuron_id": nid,
                       "keys": {access.ROLE_PLC: factory_key, access.ROLE_BCAST: factory_bcast}},
                      now=channel.now_ms, tables=tables)
        node = fw.plc
        fleet.roles[node_id] = (R.enable(node), D.enable(node))
        fleet.firmware[node_id] = fw
        fleet.names[nid] = node_id
        fleet.nids[node_id] = nid
        channel.attach(node_id, node)
        fleet.book.add(node_id, node)
    fleet.book.always = dcs
    channel.address_filter = fleet.book.filter
    return fleet


class MeterInfo:
    """What the DC knows about one meter (plain attributes; as_dict())."""

    def __init__(self, nid, name=None):
        self.nid = bytes(nid)
        self.name = name
        self.program_id = None
        self.state = None
        self.reported = None          # (domain, subnet, node) the meter last reported
        self.subnet = None            # the address this DC gave it
        self.node = None
        self.commissioned = False     # by this DC
        self.method = None            # "fcm" or "nm"
        self.key = None               # its current PLC unicast key as the DC knows it
        self.seq = 0                  # the last OSGP sequence number the DC used
        self.path = []                # proxies (Neuron IDs) between the DC and it
        self.margin = None            # weakest link of the path, dB
        self.found_via = None         # None: heard directly; else the proxy that found it
        self.found_round = None
        self.last_seen_ms = None
        self.neighbours = []          # [(Neuron ID, SNR)] from its last ATM report
        self.lost = False
        self.path_changes = 0
        self.failures = 0

    @property
    def hops(self):
        return len(self.path)

    def as_dict(self, names=None):
        names = names or {}

        def nm(n):
            return names.get(n, hexid(n))
        return {
            "neuron_id": hexid(self.nid), "name": self.name, "subnet": self.subnet,
            "node": self.node, "commissioned": self.commissioned, "method": self.method,
            "state": self.state, "path": [nm(p) for p in self.path], "hops": self.hops,
            "margin_db": None if self.margin is None else round(self.margin, 1),
            "found_via": None if self.found_via is None else nm(self.found_via),
            "last_seen_ms": self.last_seen_ms, "lost": self.lost,
            "path_changes": self.path_changes, "seq": self.seq,
            "neighbours": [[nm(n), s] for n, s in self.neighbours],
        }


class Topology:
    """The DC's map: meters, the links it knows (directed SNR, dB, a heard
    at b) and the path-selection rules:

    1. Only known links count: measured by the DC, reported by a meter (the
       SNR of the request as it heard it, the relay SNR of its answer) or in
       a meter's neighbour list (not for a link that failed, until it is
       measured again). A link's margin is the smaller of its two
       directions when both are known, else the known one.
    2. Proxies are meters this DC has commissioned and not lost (LTEP
       addresses repeaters by subnet/node); at most 16.
    3. A path is good when its weakest link is >= min_margin. The DC takes
       the good path with the fewest proxies; among those the largest
       weakest-link margin; then the lower Neuron IDs (determinism).
    4. Without a good path: the largest weakest-link margin (fewest proxies
       at equal margins); the meter is marked weak (margin < min_margin).
    """

    def __init__(self, dc_nid, min_margin=MIN_MARGIN_DB):
        self.dc = bytes(dc_nid)
        self.min_margin = min_margin
        self.meters = {}
        self.links = {}               # (a, b) -> SNR at b of a's frames
        self.failed = set()           # links that failed, until measured again
        self._adj = {}

    def meter(self, nid, name=None):
        m = self.meters.get(nid)
        if m is None:
            m = self.meters[nid] = MeterInfo(nid, name)
        return m

    def link(self, a, b, snr, hearsay=False):
        """Record the SNR at b of a's frames. hearsay (a neighbour list,
        which may be old): ignored for a link that failed, until a frame
        over it is measured again."""
        if snr is None or a == b:
            return
        a, b = bytes(a), bytes(b)
        if hearsay:
            if (a, b) in self.failed or (b, a) in self.failed:
                return
        else:
            self.failed.discard((a, b))
            self.failed.discard((b, a))
        self.links[(a, b)] = float(snr)
        self._adj.setdefault(a, set()).add(b)
        self._adj.setdefault(b, set()).add(a)

    def margin(self, a, b):
        x = self.links.get((a, b))
        y = self.links.get((b, a))
        if x is None:
            return y
        if y is None:
            return x
        return min(x, y)

    def neighbours_of(self, nid):
        return set(self._adj.get(nid, ()))

    def path_margin(self, path, nid):
        hops = [self.dc] + list(path) + [nid]
        w = math.inf
        for a, b in zip(hops, hops[1:]):
            m = self.margin(a, b)
            if m is None:
                return None
            w = min(w, m)
        return w

    def proxies(self, exclude=None):
        return sorted(n for n, m in self.meters.items()
                      if m.commissioned and not m.lost and n != exclude)

    def best_path(self, nid, max_proxies=MAX_PROXIES):
        """(path, weakest-link margin) by the rules above, or (None, None)
        when no known link reaches the meter."""
        usable = set(self.proxies(exclude=nid))
        layer = {self.dc: (math.inf, [])}     # widest path with exactly k proxies
        fallback = None
        for k in range(max_proxies + 1):
            cand = None
            for u, (w, path) in layer.items():
                mg = self.margin(u, nid)
                if mg is None:
                    continue
                width = min(w, mg)
                if cand is None or width > cand[1] or (width == cand[1] and path < cand[0]):
                    cand = (path, width)
            if cand is not None:
                if cand[1] >= self.min_margin:
                    return cand                    # the fewest proxies among good paths
                if fallback is None or cand[1] > fallback[1]:
                    fallback = cand
            if k == max_proxies:
                break
            nxt = {}
            for u, (w, path) in layer.items():
                for v in self._adj.get(u, ()):
                    if v not in usable or v in path:
                        continue
                    width = min(w, self.margin(u, v))
                    np = path + [v]
                    cur = nxt.get(v)
                    if cur is None or width > cur[0] or (width == cur[0] and np < cur[1]):
                        nxt[v] = (width, np)
            if not nxt:
                break
            layer = nxt
        return fallback if fallback is not None else (None, None)

    def forget(self, a, b):
        """A link that failed: forgotten (both ways) until measured again."""
        self.failed.add((a, b))
        self.links.pop((a, b), None)
        self.links.pop((b, a), None)
        if a in self._adj:
            self._adj[a].discard(b)
        if b in self._adj:
            self._adj[b].discard(a)

    def hop_distribution(self):
        out = {}
        for m in self.meters.values():
            if m.commissioned and not m.lost:
                out[m.hops] = out.get(m.hops, 0) + 1
        return dict(sorted(out.items()))

    def as_dict(self, names=None):
        return {hexid(n): m.as_dict(names) for n, m in sorted(self.meters.items())}


class _Secure:
    """The OSGP security envelope of docs/plc-osgp-profile.md for the FCM
    (and for a read in tests): code | args | seq(4) | digest(8)."""

    @staticmethod
    def build(key, seq, req):
        msg = bytes(req) + (seq & 0xFFFFFFFF).to_bytes(4, "big")
        st = OmaDigest(key).start(msg)
        dig = st.finish_copy()
        return msg + dig, st

    @staticmethod
    def verify(st, answer):
        """The plaintext response, or None (short, bad digest, 0B/06 with
        zero digest)."""
        if answer is None or len(answer) < 9:
            return None
        body, dig = answer[:-8], answer[-8:]
        st.update(body)
        if st.finish() != dig:
            return None
        return body


class Discovery:
    """The DC's discovery, commissioning and topology management on one
    channel. See the module docstring; every public call returns plain data.

    channel     the virtual PLC channel (tools/channel.py)
    dc_id       the DC's position in the topology
    node        the DC's PlcNode (None: one is made, commissioned and attached)
    neuron_id, domain, subnet, dc_node   the DC's identity when it makes the node
    factory_key the PLC unicast key of a meter fresh from the factory: bytes,
                or fn(Neuron ID) -> bytes
    master      secret from which the DC derives each meter's new unicast key,
                the shared broadcast key and the domain's authentication key
    min_margin  dB (Topology rule 3)
    method      "fcm" (default) or "nm" (update domain, set node mode)
    names       {Neuron ID: channel id} for readable results
    book        the channel's AddressBook (the DC is added to `always`)
    log         fn(text) for progress lines
    """

    def __init__(self, channel, dc_id="dc", node=None, neuron_id=DC_NEURON_ID,
                 domain=DEFAULT_DOMAIN, subnet=DEFAULT_SUBNET, dc_node=DC_NODE,
                 factory_key=FACTORY_KEY, master=b"osgp-emulator-dc", min_margin=MIN_MARGIN_DB,
                 method="fcm", names=None, book=None, log=None, slot_ms=SLOT_MS):
        self.channel = channel
        self.dc_id = dc_id
        if node is None:
            node = PlcNode(neuron_id)
            node.commission(domain, subnet, dc_node)
            channel.attach(dc_id, node)
        self.node = node
        self.nid = node.neuron_id
        a = node.address()
        self.domain, self.subnet, self.dc_node = a
        self.factory_key = factory_key
        self.master = bytes(master)
        self.method = method
        self.names = dict(names or {})
        self.log = log
        self.slot_ms = slot_ms
        self.topology = Topology(self.nid, min_margin)
        self.round = 0
        self.expected = None     # meters the head end expects (run(expected=))
        self._carrier = 0
        self.inbox = []
        self._want = None
        self.last_error = None
        self.stats = {"rounds": 0, "proxy_rounds": 0, "fcm": 0, "nm": 0, "atm": 0,
                      "exchanges": 0, "failed": 0, "rerouted": 0, "found": 0, "lost": 0}
        self.times = {}
        self._next_addr = (subnet, 0)
        node.register(D.IN, self._on_in)
        if book is not None and dc_id not in book.always:
            book.always = list(book.always) + [dc_id]

    # -- keys and addresses (the DC's own emulator choices) ------------------------
    def unicast_key(self, nid):
        return hashlib.sha256(self.master + b"/unicast/" + bytes(nid)).digest()[:12]

    def broadcast_key(self):
        return hashlib.sha256(self.master + b"/broadcast").digest()[:12]

    def auth_key(self):
        return hashlib.sha256(self.master + b"/auth").digest()[:6]

    def _factory(self, nid):
        f = self.factory_key
        return f(nid) if callable(f) else bytes(f)

    def _assign(self, m):
        if m.subnet is not None:
            return m.subnet, m.node
        used = {(x.subnet, x.node) for x in self.topology.meters.values() if x.subnet}
        used.add((self.subnet, self.dc_node))
        s, n = self._next_addr
        while True:
            n += 1
            if n > 127:
                s, n = s + 1, 1
            if s > 255:
                raise RuntimeError("no subnet/node address left")
            if (s, n) not in used:
                break
        self._next_addr = (s, n)
        m.subnet, m.node = s, n
        return s, n

    # -- running the channel ---------------------------------------------------------
    @property
    def now(self):
        return self.channel.now_ms

    def _tx(self, frames):
        for f in frames or ():
            self.channel.transmit(self.dc_id, f)

    def _run_until(self, done, timeout_ms):
        end = self.now + int(timeout_ms)
        while not done() and self.now < end:
            self.channel.run(until_ms=end)
        return done()

    def _say(self, text):
        if self.log is not None:
            self.log(text)

    def _name(self, nid):
        return self.names.get(nid, hexid(nid))

    # -- inbound ADD/ATM ---------------------------------------------------------------
    def _on_in(self, node, inc, now):
        try:
            m = D.decode(inc.frame.apdu)
            r = D.Report.decode(m.body)
        except Exception:
            return None
        if m.route and (m.pos != 0 or m.route[0] != self.nid):
            return None
        self.inbox.append((now, m, r, inc.snr))
        w = self._want
        if w is not None and w(m):
            self.channel.sim.stop()
        return None

    def _learn(self, now, m, r, snr):
        """Fold one report into the topology; returns the MeterInfo."""
        topo = self.topology
        x = bytes(m.origin)
        info = topo.meter(x, self.names.get(x))
        info.program_id = r.program_id
        info.state = r.state
        info.reported = (r.domain, r.subnet, r.node)
        info.last_seen_ms = now
        route = [bytes(v) for v in m.route]
        if not route:
            topo.link(self.nid, x, r.snr)
            topo.link(x, self.nid, snr)
        else:
            topo.link(route[1], self.nid, snr)
            last = route[-1] if route[-1] != x else route[-2]
            topo.link(last, x, r.snr)
            topo.link(x, last, r.relay_snr)
        if r.neighbours:
            info.neighbours = [(bytes(n), s) for n, s in r.neighbours]
            for n, s in r.neighbours:
                topo.link(n, x, s, hearsay=True)
        return info

    def _next_round(self):
        self.round = self.round % 255 + 1
        return self.round

    def _send_out(self, msg, to=None, alt=False):
        # routed: to the first proxy; else to `to` by Neuron ID, or broadcast;
        # alt: on the secondary carrier (the meters answer on the carrier
        # they were asked on)
        apdu = msg.encode()
        if msg.route:
            to = msg.route[1]
        dest = (L.AF_BROADCAST, 0, 0) if to is None else (L.AF_NEURON_ID, 0, bytes(to))
        self._tx(self.node.send(dest, apdu, self.now, service=UNACKD,
                                domain=self.node.discovery_domain, alt=alt))

    def _route(self, path, nid):
        return [self.nid] + list(path) + [bytes(nid)] if path else []

    # -- ADD ------------------------------------------------------------------------------
    def discover_round(self, via=None, window=32, only_uncommissioned=True, value=bytes(6),
                       mask=bytes(6), neighbours=False, alt=None):
        """One DISCOVER round, broadcast by the DC (via None) or by the meter
        `via` (reached along its path). alt None: the carriers alternate from
        round to round (primary first), as the unacknowledged-repeated
        service alternates them on power line [PLDB p.11]. Returns the
        Neuron IDs that answered, and folds their reports into the topology."""
        if alt is None:
            alt = bool(self._carrier)
            self._carrier ^= 1
        rid = self._next_round()
        flags = (D.F_UNCOMMISSIONED if only_uncommissioned else 0) | \
            (D.F_NEIGHBOURS if neighbours else 0)
        slot = max(1, min(255, self.slot_ms // D.SLOT_UNIT_MS))
        q = D.Query(flags, window, slot, 0, bytes(value), bytes(mask))
        hops = 0
        if via is None:
            msg = D.Message(D.OUT, D.T_DISCOVER, rid, self.nid, (), 0, q.encode())
            self.stats["rounds"] += 1
        else:
            p = self.topology.meters[via]
            route = [self.nid] + list(p.path) + [bytes(via)]
            hops = len(route) - 1
            msg = D.Message(D.OUT, D.T_DISCOVER, rid, self.nid, route, 1, q.encode())
            self.stats["proxy_rounds"] += 1
        start = len(self.inbox)
        self._send_out(msg, alt=alt)
        wait = window * slot * D.SLOT_UNIT_MS + HOP_MS * (2 * hops + 2) + 1000
        self.channel.run(for_ms=wait)
        got = []
        for now, m, r, snr in self.inbox[start:]:
            if m.round == rid and m.type == D.T_DISCOVER_RESPONSE:
                info = self._learn(now, m, r, snr)
                if info.found_round is None:
                    info.found_round = rid
                    info.found_via = via
                got.append(info.nid)
        del self.inbox[start:]
        return got

    def _window(self, expect):
        # When the head end told the DC how many meters to expect, the window
        # covers every meter not found yet; otherwise it is sized by the
        # meters still to place, which collides past ~60 meters per DC.
        if self.expected:
            expect = max(expect, self.expected - len(self.topology.meters))
            return max(8, min(255, 2 * expect + 8))
        return max(8, min(128, 2 * expect + 8))

    def _unplaced(self):
        return [m for m in self.topology.meters.values() if not m.commissioned and not m.lost]

    # -- commissioning ------------------------------------------------------------------
    def commission(self, nid, path=None, method=None):
        """Commission one meter along `path` (default: its best path) with
        the FCM (or NM); True when it answered OK."""
        m = self.topology.meters[nid]
        method = method or self.method
        if path is None:
            path, margin = self.topology.best_path(nid)
            if path is None:
                return False
        else:
            margin = self.topology.path_margin(path, nid)
        s, n = self._assign(m)
        old = (m.path, m.margin)
        m.path, m.margin = list(path), margin
        ok = self._fcm(m) if method == "fcm" else self._nm_commission(m)
        if ok:
            m.commissioned = True
            m.method = method
            m.lost = False
            m.last_seen_ms = self.now
            self._say("commissioned %s as %d/%d (%s), path %s" % (
                self._name(nid), s, n, method, [self._name(p) for p in path] or "direct"))
        else:
            m.path, m.margin = old
            m.failures += 1
            self.stats["failed"] += 1
            self._say("commissioning %s failed: %s" % (self._name(nid), self.last_error))
        return ok

    def _fcm(self, m):
        # the meter's current key: what the DC gave it, else the factory key;
        # a meter commissioned by another DC of the same head end (moved in
        # from another transformer) has the key derived for it
        keys = [m.key if m.key is not None else self._factory(m.nid)]
        new = self.unicast_key(m.nid)
        if new not in keys:
            keys.append(new)
        req = D.fcm_request(self.domain, m.subnet, m.node, self.auth_key(), new,
                            self.broadcast_key())
        for key in keys:
            resync = True
            while True:
                seq = (m.seq + 1) & 0xFFFFFFFF
                apdu, st = _Secure.build(key, seq, req)
                self.stats["fcm"] += 1
                ans = self.exchange(m.nid, apdu, by_nid=True)
                body = _Secure.verify(st, ans)
                if body is None:
                    self.last_error = "fcm: %s" % ("no answer" if ans is None else ans.hex())
                    if ans is not None and ans[:1] == b"\x0b":
                        break                          # not this key: the next one
                    return False
                if body[0] == 0x0C and len(body) == 5 and resync:
                    m.seq = int.from_bytes(body[1:5], "big")      # re-sync, once
                    resync = False
                    continue
                m.seq = seq
                if body[0] != 0x00:
                    self.last_error = "fcm: answer 0x%02X" % body[0]
                    return False
                m.key = new
                return True
        return False

    def _nm_commission(self, m):
        d = N.Domain(self.domain + bytes(6 - len(self.domain)), m.subnet, m.node,
                     len(self.domain), self.auth_key())
        steps = ((N.update_domain(0, d), 0x23),
                 (N.set_node_mode(N.NODE_CHANGE_STATE, N.STATE_CONFIG_ONLINE), 0x2C),
                 (N.set_node_mode(N.NODE_ONLINE), 0x2C))
        for apdu, want in steps:
            self.stats["nm"] += 1
            ans = self.exchange(m.nid, apdu, by_nid=True)
            if ans != bytes((want,)):
                self.last_error = "nm: %r" % ans
                return False
        if m.key is None:
            m.key = self._factory(m.nid)      # NM does not touch the OSGP keys
        return True

    def commission_ready(self, accept_weak=False):
        """Commission every known, uncommissioned meter whose best path is
        good (or any path, accept_weak), nearest first. Returns how many."""
        done = 0
        for _ in range(len(self.topology.meters) + 1):
            best = []
            for m in self._unplaced():
                if m.failures >= 3:
                    continue
                path, margin = self.topology.best_path(m.nid)
                if path is None:
                    continue
                if margin >= self.topology.min_margin or accept_weak:
                    best.append((len(path), -margin, m.nid, path))
            if not best:
                break
            best.sort()
            progress = False
            for hops, _, nid, path in best:
                if self.commission(nid, path):
                    done += 1
                    progress = True
            if not progress:
                break
        return done

    # -- exchanges along a path -------------------------------------------------------------
    def request(self, dest, apdu, timer_ms=768, retry=3):
        """A REQUEST from the DC's node; the response APDU or None."""
        box = []
        sim = self.channel.sim

        def done(n, tx, ok):
            box.append(tx.responses[0][1] if ok and tx is not None and tx.responses else None)
            sim.stop()
        self._tx(self.node.send(dest, apdu, self.now, service=REQUEST, retry=retry,
                                timer_ms=timer_ms, on_done=done))
        self._run_until(lambda: box, timer_ms * (retry + 1) + 2000)
        return box[0] if box else None

    def exchange(self, nid, apdu, path=None, by_nid=None):
        """Send `apdu` (an OSGP, NM or FCM request) to the meter along its path
        (or `path`) as a REQUEST; returns the meter's response APDU, or None
        (self.last_error says where the chain broke)."""
        m = self.topology.meters[bytes(nid)]
        path = m.path if path is None else list(path)
        if by_nid is None:
            by_nid = not m.commissioned
        self.stats["exchanges"] += 1
        self.last_error = None
        if not path:
            dest = (L.AF_NEURON_ID, 0, m.nid) if by_nid else (L.AF_SUBNET_NODE, m.subnet, m.node)
            ans = self.request(dest, apdu)
            if ans is None:
                self.last_error = "no answer from %s" % self._name(m.nid)
            return ans
        ps = [self.topology.meters[p] for p in path]
        if any(not p.commissioned for p in ps):
            raise ValueError("LTEP proxies must be commissioned")
        if by_nid:
            target, at = (m.nid,), X.PX_NEURON_ID_COMPACT
        else:
            target, at = (m.subnet, m.node, 0), X.PX_SUBNET_NODE
        capdu, p = R.chain([(q.subnet, q.node) for q in ps[1:]], target, apdu, addr_type=at)
        wait = R.proxy_wait_ms(p) + 1500
        ans = self.request((L.AF_SUBNET_NODE, ps[0].subnet, ps[0].node), capdu,
                           timer_ms=max(768, -(-wait // 3)), retry=2)
        if ans is None:
            self.last_error = "no answer from the first proxy %s" % self._name(path[0])
            return None
        if len(ans) == 2 and ans[0] == X.FAIL:
            i = len(path) - 1 - ans[1]
            nxt = path[i + 1] if i + 1 < len(path) else m.nid
            self.last_error = "chain broken after %s (towards %s)" % (
                self._name(path[i]) if i >= 0 else "?", self._name(nxt))
            return None
        if ans == bytes((X.CODE,)):
            return ans
        m.last_seen_ms = self.now
        return ans

    def osgp_request(self, nid, req):
        """One OSGP request (C12 code and arguments, e.g. 30 00 01) to the
        meter along its path, in the security envelope with its current key
        and the next sequence number (re-synced once on 0x0C). Returns the
        plaintext response (code [count data]) or None."""
        m = self.topology.meters[bytes(nid)]
        key = m.key if m.key is not None else self._factory(m.nid)
        for _ in range(2):
            seq = (m.seq + 1) & 0xFFFFFFFF
            apdu, st = _Secure.build(key, seq, req)
            body = _Secure.verify(st, self.exchange(m.nid, apdu))
            if body is None:
                return None
            if body[0] == 0x0C and len(body) == 5:
                m.seq = int.from_bytes(body[1:5], "big")
                continue
            m.seq = seq
            return body
        return None

    def exchange_for(self, nid):
        """fn(apdu) -> answer APDU or None for this meter (plc_client.PlcClient's
        `exchange`)."""
        nid = bytes(nid)
        return lambda apdu: self.exchange(nid, apdu)

    # -- ATM --------------------------------------------------------------------------------
    def atm(self, nid, path=None, neighbours=True, tries=2):
        """An ATM query to the meter along its path (or `path`); the Report or
        None. The report is folded into the topology."""
        m = self.topology.meters[bytes(nid)]
        path = m.path if path is None else list(path)
        route = self._route(path, m.nid)
        for t in range(tries):
            rid = self._next_round()
            msg = D.Message(D.OUT, D.T_ATM_QUERY, rid, self.nid, route, 1 if route else 0,
                            bytes((D.F_NEIGHBOURS if neighbours else 0,)))
            start = len(self.inbox)
            self._want = lambda x, rid=rid: x.round == rid and x.type == D.T_ATM_REPORT
            self.stats["atm"] += 1
            self._send_out(msg, to=m.nid, alt=t % 2 == 1)      # retries on the secondary
            self._run_until(lambda: any(x[1].round == rid and x[1].type == D.T_ATM_REPORT
                                        for x in self.inbox[start:]),
                            HOP_MS * 2 * (len(path) + 1) + 1200)
            self._want = None
            for now, mm, r, snr in self.inbox[start:]:
                if mm.round == rid and mm.type == D.T_ATM_REPORT and bytes(mm.origin) == m.nid:
                    del self.inbox[start:]
                    self._learn(now, mm, r, snr)
                    return r
            del self.inbox[start:]
        return None

    # -- the whole formation ------------------------------------------------------------------
    def run(self, patience=2, max_direct_rounds=8, first_window=64, expected=None):
        """Discover, commission and map every meter the DC can reach; returns
        summary() plus the times it took (virtual and wall). `expected`: how
        many meters the head end knows are there (sizes the answer windows)."""
        if expected:
            self.expected = expected
            first_window = max(first_window, min(255, 2 * expected + 8))
            max_direct_rounds = max(max_direct_rounds, 16)
        t0 = time.perf_counter()
        v0 = self.now
        quiet = 0
        rounds = 0
        window = first_window
        while quiet < patience and rounds < max_direct_rounds:
            new = [n for n in self.discover_round(window=window)
                   if self.topology.meters[n].found_round == self.round]
            rounds += 1
            self._say("direct round %d: %d new" % (self.round, len(new)))
            quiet = 0 if new else quiet + 1
            self.commission_ready()
            window = self._window(len(self._unplaced()))
        v_direct = self.now
        tried = set()
        for layer in range(1, MAX_PROXIES + 1):
            frontier = [m for m in self.topology.meters.values()
                        if m.commissioned and not m.lost and m.hops == layer - 1
                        and m.nid not in tried]
            if not frontier:
                break
            frontier.sort(key=lambda m: (m.margin if m.margin is not None else 0, m.nid))
            quiet = 0
            for p in frontier:
                if quiet >= patience and not self._unplaced():
                    break
                tried.add(p.nid)
                got = self.discover_round(via=p.nid, window=self._window(len(self._unplaced())))
                new = [n for n in got if self.topology.meters[n].found_round == self.round]
                self._say("layer %d via %s: %d answered, %d new" % (
                    layer, self._name(p.nid), len(got), len(new)))
                placed = self.commission_ready()
                quiet = 0 if (new or placed) else quiet + 1
        self.commission_ready(accept_weak=True)
        self.times = {"discovery_virtual_ms": self.now - v0,
                      "direct_virtual_ms": v_direct - v0,
                      "wall_s": round(time.perf_counter() - t0, 3)}
        return self.summary()

    def adopt(self, window=None):
        """A DISCOVER round for every meter, commissioned or not: a meter
        that answers from another domain (moved in from another transformer,
        or commissioned by someone else) is commissioned into this DC's
        domain. Returns the names commissioned."""
        n = len(self.topology.meters)
        got = self.discover_round(window=window or self._window(n + 4),
                                  only_uncommissioned=False)
        todo = []
        for nid in got:
            m = self.topology.meters[nid]
            dom, sub, nd = m.reported
            if m.commissioned and not m.lost and dom == self.domain and (sub, nd) == (m.subnet, m.node):
                continue
            m.commissioned = False
            m.lost = False
            m.path = []
            todo.append(nid)
        self.commission_ready()
        self.commission_ready(accept_weak=True)
        return [self._name(x) for x in todo if self.topology.meters[x].commissioned]

    def summary(self):
        topo = self.topology
        ms = topo.meters.values()
        return {
            "dc": hexid(self.nid),
            "discovered": len(topo.meters),
            "commissioned": sum(1 for m in ms if m.commissioned),
            "lost": sum(1 for m in ms if m.lost),
            "weak": sum(1 for m in ms if m.commissioned and m.margin is not None
                        and m.margin < topo.min_margin),
            "hops": topo.hop_distribution(),
            "stats": dict(self.stats),
            "times": dict(self.times),
            "meters": topo.as_dict(self.names),
        }

    def paths(self):
        """{name or Neuron ID hex: [proxy names]} of the commissioned meters."""
        return {self._name(n): [self._name(p) for p in m.path]
                for n, m in sorted(self.topology.meters.items()) if m.commissioned}

    # -- maintenance ----------------------------------------------------------------------------
    def set_path(self, nid, path):
        m = self.topology.meters[nid]
        old = list(m.path)
        path = list(path)
        if path == old:
            return
        m.path = path
        m.margin = self.topology.path_margin(path, nid)
        m.path_changes += 1
        self._say("path of %s: %s -> %s" % (self._name(nid), [self._name(p) for p in old] or "direct",
                                              [self._name(p) for p in path] or "direct"))
        # meters reached through it follow its new path (or get their best
        # one when that would loop or grow past 16 proxies)
        for o in self.topology.meters.values():
            if nid in o.path:
                i = o.path.index(nid)
                np = path + o.path[i:]
                if len(np) > MAX_PROXIES or o.nid in np or len(set(np)) != len(np):
                    np, _ = self.topology.best_path(o.nid)
                    if np is None:
                        continue
                o.path = list(np)
                o.margin = self.topology.path_margin(np, o.nid)

    def check(self, nids=None):
        """ATM round: query every commissioned meter (or `nids`) along its
        path, nearest first; a meter that does not answer is adapted
        (adapt()); a lost meter is searched for again. Returns {name: "ok" |
        "rerouted" | "found" | "weak" | "lost"}."""
        todo = [m.nid for m in self.topology.meters.values() if m.commissioned] if nids is None \
            else [bytes(n) for n in nids]
        out = {}
        done = set()
        while True:
            rest = [n for n in todo if n not in done]
            if not rest:
                break
            rest.sort(key=lambda n: (self.topology.meters[n].hops, n))
            nid = rest[0]
            done.add(nid)
            m = self.topology.meters[nid]
            r = None if m.lost else self.atm(nid)
            if r is not None:
                m.margin = self.topology.path_margin(m.path, nid)
                out[self._name(nid)] = "ok"
                continue
            out[self._name(nid)] = self.adapt(nid)
        return out

    def adapt(self, nid):
        """A meter that did not answer on its path: try direct, then through
        its neighbours (best resulting path first), then a targeted discovery
        (directly, then through every proxy, edge first). Returns "rerouted",
        "weak" (only a path under min_margin answered), "found" (by the
        targeted discovery, or a lost meter answering again) or "lost"."""
        topo = self.topology
        m = topo.meters[nid]
        old = list(m.path)
        back = "found" if m.lost else "rerouted"      # a lost meter answering again
        weak = None
        topo.forget(old[-1] if old else self.nid, nid)     # the path's last link failed
        tried = {tuple(old)} if not m.lost else set()
        cands = [[]]
        nbs = set(n for n, _ in m.neighbours) | topo.neighbours_of(nid)
        for c in sorted(nbs):
            if c == self.nid or c == nid or c not in topo.meters:
                continue
            cm = topo.meters[c]
            if not cm.commissioned or cm.lost or nid in cm.path or len(cm.path) + 1 > MAX_PROXIES:
                continue
            cands.append(cm.path + [c])

        def score(path):
            w = topo.path_margin(path, nid)
            return (len(path), -(w if w is not None else -999), path)
        cands = sorted(cands, key=score)
        for path in cands[:8]:
            if tuple(path) in tried:
                continue
            tried.add(tuple(path))
            if self.atm(nid, path=path) is None:
                topo.forget(path[-1] if path else self.nid, nid)
                continue
            w = topo.path_margin(path, nid)
            if w is not None and w >= topo.min_margin:
                m.lost = False
                self.set_path(nid, path)
                self.stats["rerouted"] += 1
                return back
            if weak is None or (w or -999) > weak[1]:
                weak = (path, w if w is not None else -999)
        if self.find(nid):
            path, w = topo.best_path(nid)
            if path is not None:
                m.lost = False
                self.set_path(nid, path)
                self.stats["found"] += 1
                return "found"
        if weak is not None:
            m.lost = False
            self.set_path(nid, weak[0])
            self.stats["rerouted"] += 1
            return "weak"
        m.lost = True
        self.stats["lost"] += 1
        self._say("lost %s" % self._name(nid))
        return "lost"

    def find(self, nid, probes=None):
        """A targeted discovery of one meter (Neuron ID value and full mask,
        answer at once): directly, then through each proxy, edge first (the
        weakest margin to the DC first). True when it answered."""
        nid = bytes(nid)
        mask = b"\xff" * 6
        if nid in self.discover_round(window=0, only_uncommissioned=False, value=nid, mask=mask):
            return True
        ps = [self.topology.meters[p] for p in self.topology.proxies(exclude=nid)]
        ps = [p for p in ps if nid not in p.path]
        ps.sort(key=lambda p: (p.margin if p.margin is not None else 0, -p.hops, p.nid))
        for p in ps[:probes]:
            if nid in self.discover_round(via=p.nid, window=0, only_uncommissioned=False,
                                          value=nid, mask=mask):
                self._say("found %s through %s" % (self._name(nid), self._name(p.nid)))
                return True
        return False

    def optimise(self):
        """Recompute every commissioned meter's best path from what the DC
        knows now; switch only to a path with fewer proxies or BETTER_DB more
        margin (a working path is not traded for a marginal gain). Returns
        {name: new path} of the changes."""
        out = {}
        for nid, m in sorted(self.topology.meters.items()):
            if not m.commissioned or m.lost:
                continue
            path, w = self.topology.best_path(nid)
            if path is None or path == m.path:
                continue
            cur = self.topology.path_margin(m.path, nid)
            good = w >= self.topology.min_margin
            if (good and len(path) < len(m.path)) or cur is None or w >= cur + BETTER_DB:
                self.set_path(nid, path)
                out[self._name(nid)] = [self._name(p) for p in path]
        return out

    def maintain(self, for_ms, every_ms=15 * 60 * 1000):
        """Run the channel for `for_ms`, an ATM check() every `every_ms`.
        Returns the list of check() results."""
        end = self.now + for_ms
        out = []
        while self.now < end:
            self.channel.run(until_ms=min(end, self.now + every_ms))
            out.append(self.check())
        return out
