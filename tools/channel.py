"""The virtual PLC channel: a deterministic discrete-event simulation of one
A-band power-line channel (one transformer area = one shard) on virtual time
(host side, CPython). See docs/plc-channel.md for the model and every
parameter.

Frames are opaque bytes (L2 header + NPDU + CRC). The channel reads only
byte 0, the L2 header [WS-LON]: bit 7 priority, bit 6 alternate path (sent on
the secondary carrier), bits 5-0 delta backlog.

Node interface (the sans-IO pattern of the meter core: bytes + time in, bytes
+ next deadline out). A node is any object with::

    node.receive(frame, now_ms, rssi_db, snr_db) -> frames   # a frame reached it
    node.poll(now_ms) -> frames                               # its deadline came
    node.deadline                                             # int ms or None

``frames`` is None, one bytes object, or an iterable of bytes: frames the node
wants to send (the same as calling ``channel.transmit(node_id, frame)``).
``now_ms`` and ``deadline`` are driver time, integer ms since 1970 UTC (the
channel's ``sim.now_ms``). ``rssi_db`` is the received level in dBµV,
``snr_db`` the signal-to-noise ratio in dB at the receiver, on the frame's
carrier. After every receive/poll/hook call the channel reads ``deadline``
again. Optional hooks, used when present::

    node.attached(channel, node_id)         # when attached
    node.on_sent(frame, now_ms) -> frames   # its frame has left (end of airtime)
    node.on_line(now_ms, connected) -> frames   # taken off / put back on the line

Delivery: with ``channel.address_filter = None`` every node that decodes a
frame receives it (the node filters by address, as a transceiver's host
does). An address filter ``fn(frame) -> None | iterable of node ids`` (the
LonTalk layer provides one) limits delivery to the addressed nodes (None:
everyone), plus nodes attached with ``promiscuous=True`` (sniffers).
"""
import math
import random
from array import array

from .faults import FRAME_KINDS, Fault
from .phy import CARRIERS, PRIMARY, SECONDARY
from .sim import DEFAULT_START_MS, Simulator
from .topology import DEFAULT_TOPOLOGY, Topology, TopologyError

# port states
IDLE, CONTEND, WAIT, TX = 0, 1, 2, 3

# loss reasons (trace "loss" events)
LOSS_COLLISION = "collision"        # overlapped a frame at the receiver, no capture
LOSS_HALF_DUPLEX = "half_duplex"    # the receiver was transmitting
LOSS_NOISE = "noise"                # decoding failed (SNR / frame-length curve)
LOSS_OUT_OF_RANGE = "out_of_range"  # addressed, but below the receiver's sensitivity
LOSS_OFF_LINE = "off_line"          # receiver (or sender) off the line
LOSS_FAULT = "fault_drop"           # a drop fault
LOSS_SENDER_OFF_LINE = "sender_off_line"    # the sender left the line during the frame


def _carrier_index(c):
    if c in (0, 1):
        return c
    if c in CARRIERS:
        return CARRIERS.index(c)
    raise ValueError("carrier must be 'primary', 'secondary', 0 or 1, not %r" % (c,))


def _frames(out):
    """None | bytes | iterable of bytes -> list of bytes."""
    if out is None:
        return ()
    if isinstance(out, (bytes, bytearray, memoryview)):
        return (bytes(out),)
    return [bytes(f) for f in out]


class TraceEvent:
    """One thing that happened on the channel.

    kind:   "tx" (a transmission starts: src, frame, carrier; ``airtime_us``),
            "rx" (delivered: src -> dst, the bytes delivered, level, snr),
            "loss" (src -> dst not delivered: reason),
            "drop" (a frame never got on the air: reason "off_line", "queue_full"),
            "fault" (a fault acted: reason = its kind; frames it changed),
            "state" (reason "off_line", "on_line", "moved", "degrade", "noise" ...).
    t_us:   virtual µs since the start; ``t_ms`` driver time (ms since 1970).
    seq:    the transmission's number (tx, rx, loss, fault events of one frame share it).
    """
    __slots__ = ("t_us", "t_ms", "kind", "src", "dst", "frame", "carrier", "level",
                 "snr", "reason", "seq", "airtime_us")

    def __init__(self, t_us, t_ms, kind, src, dst=None, frame=b"", carrier=None, level=None,
                 snr=None, reason=None, seq=None, airtime_us=None):
        self.t_us, self.t_ms, self.kind, self.src, self.dst = t_us, t_ms, kind, src, dst
        self.frame, self.carrier, self.level, self.snr = frame, carrier, level, snr
        self.reason, self.seq, self.airtime_us = reason, seq, airtime_us

    def line(self):
        """Canonical one-line text (the determinism tests compare these)."""
        f = lambda v: "-" if v is None else "%.3f" % v
        return "%d %s #%s %s>%s %s %s %s %s %s" % (
            self.t_us, self.kind, "-" if self.seq is None else self.seq, self.src,
            "-" if self.dst is None else self.dst,
            "-" if self.carrier is None else CARRIERS[self.carrier][0],
            f(self.level), f(self.snr), self.reason or "-", bytes(self.frame).hex())

    def __repr__(self):
        return "TraceEvent(%s)" % self.line()


class LinkInfo:
    """One directed link at a moment: sender -> receiver on a carrier."""
    __slots__ = ("src", "dst", "carrier", "attenuation_db", "level_dbuv", "noise_dbuv",
                 "snr_db", "heard")

    def __init__(self, src, dst, carrier, attenuation_db, level_dbuv, noise_dbuv, snr_db, heard):
        self.src, self.dst, self.carrier = src, dst, carrier
        self.attenuation_db, self.level_dbuv = attenuation_db, level_dbuv
        self.noise_dbuv, self.snr_db, self.heard = noise_dbuv, snr_db, heard

    def loss(self, phy, nbytes):
        """Loss probability of a frame of nbytes on this link (1.0 if not heard)."""
        return phy.frame_loss(self.snr_db, nbytes) if self.heard else 1.0

    def __repr__(self):
        return ("LinkInfo(%s>%s %s att=%.1f dB level=%.1f dBuV noise=%.1f dBuV snr=%.1f dB%s)"
                % (self.src, self.dst, CARRIERS[self.carrier], self.attenuation_db,
                   self.level_dbuv, self.noise_dbuv, self.snr_db, "" if self.heard else " unheard"))


class _Port:
    """A node's attachment: its MAC state and its transmit queue."""
    __slots__ = ("idx", "id", "node", "queue", "state", "token", "access_at", "win0",
                 "prio_slot", "poll_at", "promiscuous", "on_sent", "on_line", "receive", "poll")

    def __init__(self, idx, node_id, prio_slot):
        self.idx = idx
        self.id = node_id
        self.node = None
        self.queue = []
        self.state = IDLE
        self.token = 0
        self.access_at = None
        self.win0 = None
        self.prio_slot = prio_slot
        self.poll_at = None
        self.promiscuous = False
        self.on_sent = self.on_line = self.receive = self.poll = None


class _Tx:
    __slots__ = ("seq", "src", "frame", "n", "carrier", "start", "end", "delta", "ids", "lvl",
                 "mask", "overlaps", "lvl_map", "cut")

    def __init__(self, seq, src, frame, carrier, start, end, row):
        self.seq = seq
        self.src = src
        self.frame = frame
        self.n = len(frame)
        self.carrier = carrier
        self.start = start
        self.end = end
        self.delta = frame[0] & 0x3F
        self.ids, self.lvl, self.mask = row
        self.overlaps = None
        self.lvl_map = None
        self.cut = False

    def level_at(self, r):
        m = self.lvl_map
        if m is None:
            m = self.lvl_map = dict(zip(self.ids, self.lvl))
        return m.get(r)


class Channel:
    """One virtual PLC channel.

    ``Channel(topology, seed)``: topology is a Topology, a path to a TOML file,
    or None (tools/topologies/default.toml). Nodes named in the topology are on
    the line from the start (silent until an object is attached with
    ``attach``). ``seed`` (default: the topology's ``seed``, else 0) drives
    every random choice (MAC slots, decoding losses, faults) through PRNG
    streams derived from it. ``sim``: share a Simulator with other channels
    (several shards in one process); ``start_ms``: driver time at virtual 0.
    """

    def __init__(self, topology=None, seed=None, sim=None, start_ms=None):
        if topology is None:
            topology = DEFAULT_TOPOLOGY
        if not isinstance(topology, Topology):
            topology = Topology.load(topology)
        self.topology = topo = topology
        if sim is None:
            sim = Simulator(start_ms if start_ms is not None else
                            (topo.start_ms if topo.start_ms is not None else DEFAULT_START_MS))
        self.sim = sim
        if seed is None:
            seed = topo.seed if topo.seed is not None else 0
        self.seed = seed
        self.phy = phy = topo.phy
        self.mac = mac = topo.mac
        self.rng_mac = random.Random("osgp-plc/%s/mac" % seed)
        self.rng_loss = random.Random("osgp-plc/%s/loss" % seed)
        self.rng_fault = random.Random("osgp-plc/%s/fault" % seed)
        self.geo = topo.geometry()
        self.ids = [n.id for n in topo.nodes]
        self.index = {nid: i for i, nid in enumerate(self.ids)}
        n = len(self.ids)
        g = topo.grid
        self.sensitivity = g.sensitivity_dbuv
        self.tx_level = [g.tx_level_dbuv if s.tx_level_dbuv is None else s.tx_level_dbuv
                         for s in topo.nodes]
        self.ports = [_Port(i, nid, topo.nodes[i].priority_slot) for i, nid in enumerate(self.ids)]
        self.off_count = [0] * n
        self.node_extra = [0.0] * n
        self.pair_extra = {}            # (s, r, c) -> dB added
        self.pair_abs = {}              # (s, r, c) -> attenuation replacing the geometry
        self._pairs_of = {}             # s -> set of r with a pair entry
        for l in topo.links:
            a, b = self.index[l.a], self.index[l.b]
            for c in ((0, 1) if l.carrier is None else (l.carrier,)):
                for s, r in ((a, b),) if l.directed else ((a, b), (b, a)):
                    if l.attenuation_db is not None:
                        self.pair_abs[(s, r, c)] = l.attenuation_db
                    if l.extra_db:
                        self.pair_extra[(s, r, c)] = self.pair_extra.get((s, r, c), 0.0) + l.extra_db
                    self._pairs_of.setdefault(s, set()).add(r)
        # link rows, built lazily per sender and carrier: (ids, levels, mask)
        self._rows = [[None, None] for _ in range(n)]
        self._positions = {}            # node index -> (transformer, feeder, at_m) after moves
        self._move_back = {}
        self._tc = "H" if n < 65536 else "I"
        # MAC timing (µs) and state
        self.b1tx = phy.us(mac.beta1_tx_bits)
        self.b1rx = phy.us(mac.beta1_rx_bits)
        self.b2 = max(1, phy.us(mac.beta2_bits))
        self.packet_cycle = max(1, phy.us(mac.packet_cycle_bits))
        self.nprio = mac.priority_slots
        self.wbase = mac.w_base
        self.blmax = mac.backlog_max
        self.bl = [1] * n               # backlog estimate
        self.blt = [0] * n              # packet-cycle timer start (last activity / change)
        self.base = [0] * n             # start of the slot grid: end of last activity + beta1
        self.bl_overflow = [False] * n
        self._airtime = [phy.airtime_us(k) for k in range(300)]
        self._s50 = {}
        self._ongoing = []
        self._contending = {}
        self._waiting = {}
        self._seq = 0
        # noise by local hour
        self._noise_cache = {}
        self._hour_key = None
        self._noise_now = None
        self._fault_noise = []
        self._offset_min = int(round(g.utc_offset_h * 60))
        # tracing, faults, stats
        self._tracers = []
        self.address_filter = None
        self._promiscuous = []
        self._frame_faults = []
        self.faults = []
        self.stats = dict(tx=0, tx_bytes=0, airtime_us=0, deliveries=0, loss=0,
                          collisions=0, deferrals=0, drops=0, faults=0)
        self.loss_reasons = {}
        for f in topo.faults:
            self.add_fault(f)

    # ------------------------------------------------------------------ nodes

    def attach(self, node_id, node, promiscuous=False):
        """Put ``node`` (see the module docstring) at the topology's ``node_id``."""
        i = self._idx(node_id)
        p = self.ports[i]
        if p.node is not None:
            raise ValueError("node %r already has an object attached" % node_id)
        p.node = node
        p.promiscuous = bool(promiscuous)
        if p.promiscuous:
            self._promiscuous = sorted(self._promiscuous + [i])
        p.receive = node.receive
        p.poll = getattr(node, "poll", None)
        p.on_sent = getattr(node, "on_sent", None)
        p.on_line = getattr(node, "on_line", None)
        hook = getattr(node, "attached", None)
        if hook is not None:
            hook(self, node_id)
        self._schedule_poll(p)
        return node

    def detach(self, node_id):
        """Remove the object at node_id (the position stays, silent)."""
        p = self.ports[self._idx(node_id)]
        if p.promiscuous:
            self._promiscuous.remove(p.idx)
            p.promiscuous = False
        p.node = None
        p.receive = p.poll = p.on_sent = p.on_line = None
        p.poll_at = None

    def node(self, node_id):
        return self.ports[self._idx(node_id)].node

    def _idx(self, node_id):
        try:
            return self.index[node_id]
        except KeyError:
            raise KeyError("no node %r in topology %s" % (node_id, self.topology.source)) from None

    def transmit(self, node_id, frame, now_ms=None):
        """Queue ``frame`` (bytes: L2 header + NPDU + CRC) for sending by node_id.

        The frame goes through the node's MAC (CSMA) at ``now_ms`` (driver
        time; None or a past time: now). Returns False when it was dropped
        (node off the line, queue full)."""
        frame = bytes(frame)
        if not frame:
            raise ValueError("an empty frame cannot be sent")
        if len(frame) > 255:
            raise ValueError("frame of %d bytes is longer than 255" % len(frame))
        p = self.ports[self._idx(node_id)]
        if now_ms is not None:
            t = self.sim.us_of_ms(now_ms)
            if t > self.sim.now:
                self.sim.at(t, self._enqueue, p, frame)
                return True
        return self._enqueue(p, frame)

    def _enqueue(self, p, frame):
        i = p.idx
        if self.off_count[i]:
            self._drop(p, frame, LOSS_OFF_LINE)
            return False
        if len(p.queue) >= self.mac.queue_limit:
            self._drop(p, frame, "queue_full")
            return False
        p.queue.append(frame)
        if p.state == IDLE:
            self._try_access(p)
        return True

    def _drop(self, p, frame, reason):
        self.stats["drops"] += 1
        if self._tracers:
            self._trace(TraceEvent(self.sim.now, self.sim.now_ms, "drop", p.id, None, frame,
                                   reason=reason))

    def _emit(self, p, out):
        if out is not None:
            for f in _frames(out):
                self._enqueue(p, f)

    def _schedule_poll(self, p):
        node = p.node
        if node is None or p.poll is None:
            return
        d = getattr(node, "deadline", None)
        if callable(d):
            d = d()
        if d is None:
            p.poll_at = None
            return
        sim = self.sim
        t = sim.us_of_ms(d)
        if t < sim.now:
            t = sim.now
        if p.poll_at == t:
            return
        p.poll_at = t
        sim.at(t, self._do_poll, p, t)

    def _do_poll(self, p, t):
        if p.poll_at != t or p.poll is None:
            return
        p.poll_at = None
        now_ms = self.sim.now_ms
        out = p.poll(now_ms)
        if out is not None:
            self._emit(p, out)
        d = getattr(p.node, "deadline", None)
        if callable(d):
            d = d()
        if d is not None and d <= now_ms:
            # a node asking to be polled again at or before the time it was just
            # polled would spin; it gets the next millisecond instead.
            p.poll_at = self.sim.now + 1000 - self.sim.now % 1000
            self.sim.at(p.poll_at, self._do_poll, p, p.poll_at)
            return
        self._schedule_poll(p)

    # ------------------------------------------------------------------ running

    def run(self, until_ms=None, for_ms=None, speed=math.inf, max_events=None):
        """Run the simulation: up to driver time ``until_ms``, or ``for_ms`` more
        virtual ms, or (neither) until nothing is left to do. ``speed``:
        math.inf as fast as possible, X: X times real time."""
        sim = self.sim
        until = None
        if until_ms is not None:
            until = sim.us_of_ms(until_ms)
        if for_ms is not None:
            until = sim.now + int(for_ms) * 1000
        return sim.run(until=until, speed=speed, max_events=max_events)

    @property
    def now_ms(self):
        return self.sim.now_ms

    # ------------------------------------------------------------------ links

    def _level(self, s, r, c):
        """Received level (dBµV) of s at r on carrier c, or None (not connected)."""
        if s == r:
            return None
        a = self.pair_abs.get((s, r, c))
        if a is None:
            a = self.geo.att(s, r, c)
            if a == math.inf:
                return None
        return (self.tx_level[s] - a - self.node_extra[s] - self.node_extra[r]
                - self.pair_extra.get((s, r, c), 0.0))

    def _row(self, s, c):
        row = self._rows[s][c]
        if row is None:
            row = self._rows[s][c] = self._build_row(s, c)
        return row

    def _build_row(self, s, c):
        n = len(self.ids)
        mask = bytearray(n)
        if self.off_count[s]:
            return array(self._tc), array("d"), mask
        sens = self.sensitivity
        txs = self.tx_level[s]
        nes = self.node_extra[s]
        ne = self.node_extra
        off = self.off_count
        cand, atts = self.geo.row(s, c, txs - sens - nes + 1e-9)
        pairs = self._pairs_of.get(s)
        lv = [txs - a - nes - ne[j] for j, a in zip(cand, atts)]
        if pairs is None and not any(off):
            keep = [m for m, L in enumerate(lv) if L >= sens]
        else:
            keep = [m for m, L in enumerate(lv) if L >= sens and not off[cand[m]]
                    and (pairs is None or cand[m] not in pairs)]
        if len(keep) == len(lv):
            ids, lvl = cand, lv
        else:
            ids = [cand[m] for m in keep]
            lvl = [lv[m] for m in keep]
        if pairs is not None:
            for j in sorted(pairs):
                if off[j]:
                    continue
                L = self._level(s, j, c)
                if L is not None and L >= sens:
                    ids.append(j)
                    lvl.append(L)
        for j in ids:
            mask[j] = 1
        return array(self._tc, ids), array("d", lvl), mask

    def _patch(self, s, r):
        """Bring r's entry in s's rows up to date (after a change)."""
        for c in (0, 1):
            row = self._rows[s][c]
            if row is None:
                continue
            ids, lvl, mask = row
            L = None if (self.off_count[s] or self.off_count[r]) else self._level(s, r, c)
            ok = L is not None and L >= self.sensitivity
            if mask[r]:
                k = ids.index(r)
                if ok:
                    lvl[k] = L
                else:
                    del ids[k]
                    del lvl[k]
                    mask[r] = 0
            elif ok:
                ids.append(r)
                lvl.append(L)
                mask[r] = 1

    def _refresh_node(self, i):
        """Node i changed (moved, on/off the line, degraded): its rows, and its
        entry in every other built row."""
        self._rows[i] = [None, None]
        for s in range(len(self.ids)):
            if s != i:
                self._patch(s, i)
        self._noise_cache.clear()
        self._hour_key = None

    def link(self, a, b, carrier=PRIMARY, at_ms=None):
        """The directed link a -> b on ``carrier`` now (or at driver time at_ms,
        for the time-of-day noise): a LinkInfo."""
        c = _carrier_index(carrier)
        s, r = self._idx(a), self._idx(b)
        L = self._level(s, r, c)
        noise = self._noise_for(at_ms)[c][r]
        if L is None:
            return LinkInfo(a, b, c, math.inf, -math.inf, noise, -math.inf, False)
        att = self.tx_level[s] - L
        heard = (L >= self.sensitivity and not self.off_count[s] and not self.off_count[r])
        return LinkInfo(a, b, c, att, L, noise, L - noise, heard)

    def neighbours(self, node_id, carrier=PRIMARY):
        """Ids of the nodes that hear node_id on ``carrier`` (above the floor)."""
        ids, _, _ = self._row(self._idx(node_id), _carrier_index(carrier))
        return [self.ids[j] for j in ids]

    def link_matrix(self, carrier=PRIMARY, at_ms=None):
        """{sender id: {receiver id: SNR dB}} for every heard pair on ``carrier``
        (the data concentrator's topology view)."""
        c = _carrier_index(carrier)
        noise = self._noise_for(at_ms)[c]
        out = {}
        for s in range(len(self.ids)):
            ids, lvl, _ = self._row(s, c)
            out[self.ids[s]] = {self.ids[j]: L - noise[j] for j, L in
                                sorted(zip(ids, lvl))}
        return out

    def backlog(self, node_id):
        """The node's backlog estimate now (1..63)."""
        return self._bl_now(self._idx(node_id), self.sim.now)

    def airtime_us(self, nbytes):
        return self._airtime[nbytes] if nbytes < len(self._airtime) else self.phy.airtime_us(nbytes)

    # ------------------------------------------------------------------ noise

    def _hour(self, t_us):
        m = (self.sim.start_ms + t_us // 1000) // 60_000 + self._offset_min
        return (m // 60) % 24

    def _noise_for(self, at_ms=None):
        t = self.sim.now if at_ms is None else self.sim.us_of_ms(at_ms)
        return self._noise_table(self._hour(t))

    def _noise_table(self, h):
        tab = self._noise_cache.get(h)
        if tab is not None:
            return tab
        topo = self.topology
        geo = self.geo
        bg = topo.grid.noise_dbuv
        sources = []
        for z in topo.noise:
            lv = z.level_at_hour(h)
            if lv is not None:
                sources.append((geo.point(z.transformer, z.feeder, z.at_m), lv, z.carriers))
        for f in self._fault_noise:
            car = (True, True) if f.carrier is None else (f.carrier == 0, f.carrier == 1)
            sources.append((geo.point(f.transformer, f.feeder, f.at_m), f.level_dbuv, car))
        tab = []
        for c in (0, 1):
            col = []
            for i, spec in enumerate(topo.nodes):
                p = 10.0 ** (bg[c] / 10.0)
                if spec.noise_dbuv is not None:
                    p += 10.0 ** (spec.noise_dbuv[c] / 10.0)
                for pt, lv, car in sources:
                    if car[c]:
                        a = geo.att_points(pt, geo.pos[i], c)
                        if a != math.inf:
                            p += 10.0 ** ((lv - a) / 10.0)
                col.append(10.0 * math.log10(p))
            tab.append(col)
        self._noise_cache[h] = tab
        return tab

    def _s50_of(self, n):
        v = self._s50.get(n)
        if v is None:
            v = self._s50[n] = self.phy.snr_for_loss(0.5, n)
        return v

    # ------------------------------------------------------------------ MAC

    def _bl_now(self, i, t):
        """Backlog of node i at time t, after the idle (packet-cycle) decrements."""
        b = self.bl[i]
        el = t - self.blt[i]
        pc = self.packet_cycle
        if el >= pc and b > 1:
            k = el // pc
            b = b - k if b - k > 1 else 1
            self.bl[i] = b
            self.blt[i] += k * pc
        return b

    def _busy(self, i, t):
        """Does node i sense a transmission that started before t?"""
        for o in self._ongoing:
            if o.start < t and o.mask[i]:
                return True
        return False

    def _try_access(self, p):
        """p has a frame at the head of its queue and is idle: contend."""
        t = self.sim.now
        i = p.idx
        if self._busy(i, t):
            p.state = WAIT
            self._waiting[i] = p
            return
        base = self.base[i]
        b2 = self.b2
        frame = p.queue[0]
        if frame[0] & 0x80 and p.prio_slot:
            ts = base + (p.prio_slot - 1) * b2
            if ts < t:
                ts = base + -(-(t - base) // b2) * b2
            p.win0 = None
        else:
            g0 = base + self.nprio * b2
            if t > g0:
                g0 += -(-(t - g0) // b2) * b2
            w = self._bl_now(i, t) * self.wbase
            ts = g0 + self.rng_mac.randrange(w) * b2
            p.win0 = g0
        p.token += 1
        p.state = CONTEND
        p.access_at = ts
        self._contending[i] = p
        self.sim.at(ts, self._access, p, p.token)

    def _waited_slots(self, p, t):
        """W_base idle randomising slots passed while waiting: backlog - 1 each."""
        if p.win0 is None or t <= p.win0:
            return
        k = ((t - p.win0) // self.b2) // self.wbase
        if k:
            i = p.idx
            b = self._bl_now(i, t)
            self.bl[i] = b - k if b - k > 1 else 1
            self.blt[i] = t

    def _access(self, p, token):
        if token != p.token or p.state != CONTEND:
            return
        t = self.sim.now
        i = p.idx
        del self._contending[i]
        if self._busy(i, t):            # cannot happen (deferred at the other's start); safe
            self._waited_slots(p, t)
            p.state = WAIT
            self._waiting[i] = p
            return
        self._waited_slots(p, t)
        self._start_tx(p, t)

    def _start_tx(self, p, t):
        i = p.idx
        frame = p.queue.pop(0)
        c = SECONDARY if frame[0] & 0x40 else PRIMARY
        n = len(frame)
        air = self._airtime[n] if n < len(self._airtime) else self.phy.airtime_us(n)
        seq = self._seq
        self._seq = seq + 1
        tx = _Tx(seq, i, frame, c, t, t + air, self._row(i, c))
        ongoing = self._ongoing
        if ongoing:
            tx.overlaps = list(ongoing)
            for o in ongoing:
                if o.overlaps is None:
                    o.overlaps = [tx]
                else:
                    o.overlaps.append(tx)
        ongoing.append(tx)
        p.state = TX
        p.token += 1
        st = self.stats
        st["tx"] += 1
        st["tx_bytes"] += n
        st["airtime_us"] += air
        # nodes that hear it and were waiting for their slot defer
        if self._contending:
            mask = tx.mask
            for q in list(self._contending.values()):
                if mask[q.idx] and q.access_at != t:
                    q.token += 1
                    del self._contending[q.idx]
                    self._waited_slots(q, t)
                    q.state = WAIT
                    self._waiting[q.idx] = q
                    st["deferrals"] += 1
        if self._tracers:
            self._trace(TraceEvent(t, self.sim.now_ms, "tx", p.id, None, frame, c, seq=seq,
                                   airtime_us=air))
        self.sim.at(t + air, self._end_tx, tx)

    def _collisions(self, tx):
        """{receiver index: reason} for the receivers of tx that lose it to
        another transmission overlapping it in time."""
        lost = {}
        cross = self.phy.cross_carrier_collisions
        cap = self.phy.capture_db
        mask = tx.mask
        interferers = []
        for o in tx.overlaps:
            if mask[o.src]:
                lost[o.src] = LOSS_HALF_DUPLEX
            if cross or o.carrier == tx.carrier:
                interferers.append(o)
        if interferers:
            for r, L in zip(tx.ids, tx.lvl):
                if r in lost:
                    continue
                worst = None
                for o in interferers:
                    if o.mask[r]:
                        lo = o.level_at(r)
                        if worst is None or lo > worst:
                            worst = lo
                if worst is not None and L - worst < cap:
                    lost[r] = LOSS_COLLISION
        if len(lost) and any(v == LOSS_COLLISION for v in lost.values()):
            self.stats["collisions"] += 1
        return lost

    def _end_tx(self, tx):
        sim = self.sim
        t = sim.now
        s = tx.src
        c = tx.carrier
        self._ongoing.remove(tx)
        lost = self._collisions(tx) if tx.overlaps else None
        if tx.cut:
            lost = dict.fromkeys(tx.ids, LOSS_SENDER_OFF_LINE)
        h = self._hour(t)
        if h != self._hour_key:
            self._hour_key = h
            self._noise_now = self._noise_table(h)
        nz = self._noise_now[c]
        d = tx.delta
        thr = self._s50_of(tx.n)
        bl, blt, base = self.bl, self.blt, self.base
        pc = self.packet_cycle
        blmax = self.blmax
        b1 = t + self.b1rx
        # every node that heard the frame: backlog estimate, idle timing
        if lost is None:
            for r, L in zip(tx.ids, tx.lvl):
                b = bl[r]
                el = t - blt[r]
                if el >= pc and b > 1:
                    b -= el // pc
                    if b < 1:
                        b = 1
                if L - nz[r] >= thr:
                    if d:
                        b += d
                        if b > blmax:
                            b = blmax
                            self.bl_overflow[r] = True
                    elif b > 1:
                        b -= 1
                bl[r] = b
                blt[r] = t
                base[r] = b1
        else:
            for r, L in zip(tx.ids, tx.lvl):
                b = bl[r]
                el = t - blt[r]
                if el >= pc and b > 1:
                    b -= el // pc
                    if b < 1:
                        b = 1
                if r not in lost and L - nz[r] >= thr:
                    if d:
                        b += d
                        if b > blmax:
                            b = blmax
                            self.bl_overflow[r] = True
                    elif b > 1:
                        b -= 1
                bl[r] = b
                blt[r] = t
                if r in lost and lost[r] == LOSS_HALF_DUPLEX:
                    continue
                base[r] = b1
        # the sender
        b = self._bl_now(s, t)
        if d:
            b += d
            if b > blmax:
                b = blmax
                self.bl_overflow[s] = True
        elif b > 1:
            b -= 1
        bl[s] = b
        blt[s] = t
        base[s] = t + self.b1tx
        p = self.ports[s]
        p.state = IDLE
        # deliveries
        self._deliver_all(tx, lost, nz)
        if p.on_sent is not None and not self.off_count[s]:
            self._emit(p, p.on_sent(tx.frame, sim.now_ms))
            self._schedule_poll(p)
        if p.state == IDLE and p.queue and not self.off_count[s]:
            self._try_access(p)
        # nodes waiting for the channel to go idle
        if self._waiting:
            for q in list(self._waiting.values()):
                if not self._busy(q.idx, t + 1):
                    del self._waiting[q.idx]
                    q.state = IDLE
                    if q.queue:
                        self._try_access(q)

    # ------------------------------------------------------------------ delivery

    def _deliver_all(self, tx, lost, nz):
        ports = self.ports
        flt = self.address_filter
        targets = None
        if flt is not None:
            want = flt(tx.frame)
            if want is not None:
                targets = []
                seen = set()
                for nid in want:
                    j = self.index.get(nid)
                    if j is not None and j != tx.src and j not in seen:
                        seen.add(j)
                        targets.append(j)
                for j in self._promiscuous:
                    if j not in seen and j != tx.src:
                        targets.append(j)
        if targets is None:
            for r, L in zip(tx.ids, tx.lvl):
                if ports[r].receive is not None:
                    self._deliver_one(tx, r, L, lost, nz)
            return
        mask = tx.mask
        for r in targets:
            if not mask[r]:
                if ports[r].receive is not None:
                    reason = LOSS_OFF_LINE if self.off_count[r] else LOSS_OUT_OF_RANGE
                    self._loss(tx, r, reason, None, None)
                continue
            if ports[r].receive is not None:
                self._deliver_one(tx, r, self._level(tx.src, r, tx.carrier), lost, nz)

    def _loss(self, tx, r, reason, level, snr):
        self.stats["loss"] += 1
        lr = self.loss_reasons
        lr[reason] = lr.get(reason, 0) + 1
        if self._tracers:
            self._trace(TraceEvent(self.sim.now, self.sim.now_ms, "loss", self.ids[tx.src],
                                   self.ids[r], tx.frame, tx.carrier, level, snr, reason, tx.seq))

    def _deliver_one(self, tx, r, L, lost, nz):
        snr = L - nz[r]
        if lost is not None and r in lost:
            self._loss(tx, r, lost[r], L, snr)
            return
        u = self.rng_loss.random()
        if u < self.phy.frame_loss(snr, tx.n):
            self._loss(tx, r, LOSS_NOISE, L, snr)
            return
        frame = tx.frame
        delay = 0
        copies = 0
        gap = 0
        if self._frame_faults:
            t_ms = self.sim.now // 1000
            sid, rid = self.ids[tx.src], self.ids[r]
            rng = self.rng_fault
            for f in self._frame_faults:
                if not f.active(t_ms) or not f.matches(sid, rid):
                    continue
                if f.probability < 1.0 and rng.random() >= f.probability:
                    continue
                self.stats["faults"] += 1
                k = f.kind
                if k == "drop":
                    self._fault_trace(tx, r, frame, "drop")
                    self._loss(tx, r, LOSS_FAULT, L, snr)
                    return
                if k == "corrupt":
                    pos = f.byte if f.byte is not None else rng.randrange(len(frame))
                    pos %= len(frame)
                    x = f.xor if f.xor is not None else rng.randrange(1, 256)
                    b = bytearray(frame)
                    b[pos] ^= x
                    frame = bytes(b)
                    self._fault_trace(tx, r, frame, "corrupt")
                elif k == "delay":
                    delay += f.delay_ms
                    self._fault_trace(tx, r, frame, "delay")
                elif k == "duplicate":
                    copies += f.copies
                    gap = f.delay_ms
                    self._fault_trace(tx, r, frame, "duplicate")
        if delay == 0:
            self._deliver(tx, r, frame, L, snr)
        else:
            self.sim.at(self.sim.now + delay * 1000, self._deliver, tx, r, frame, L, snr)
        for k in range(1, copies + 1):
            self.sim.at(self.sim.now + (delay + k * gap) * 1000, self._deliver, tx, r, frame, L, snr)

    def _fault_trace(self, tx, r, frame, kind):
        if self._tracers:
            self._trace(TraceEvent(self.sim.now, self.sim.now_ms, "fault", self.ids[tx.src],
                                   self.ids[r], frame, tx.carrier, reason=kind, seq=tx.seq))

    def _deliver(self, tx, r, frame, L, snr):
        p = self.ports[r]
        if p.receive is None:
            return
        if self.off_count[r]:
            self._loss(tx, r, LOSS_OFF_LINE, L, snr)
            return
        st = self.stats
        st["deliveries"] += 1
        if self._tracers:
            self._trace(TraceEvent(self.sim.now, self.sim.now_ms, "rx", self.ids[tx.src], p.id,
                                   frame, tx.carrier, L, snr, seq=tx.seq))
        out = p.receive(frame, self.sim.now_ms, L, snr)
        if out is not None:
            self._emit(p, out)
        self._schedule_poll(p)

    # ------------------------------------------------------------------ tracing

    def add_tracer(self, fn):
        """Call ``fn(TraceEvent)`` for everything that happens (see TraceEvent)."""
        self._tracers.append(fn)
        return fn

    def remove_tracer(self, fn):
        self._tracers.remove(fn)

    def _trace(self, ev):
        for fn in self._tracers:
            fn(ev)

    def _state_trace(self, node_id, reason):
        if self._tracers:
            self._trace(TraceEvent(self.sim.now, self.sim.now_ms, "state", node_id, reason=reason))

    # ------------------------------------------------------------------ faults

    def add_fault(self, fault):
        """Add a Fault (tools/faults.py); times are virtual ms since the start."""
        for x in (fault.nodes or ()) + (fault.link or ()):
            self._idx(x)
        self.faults.append(fault)
        if fault.kind in FRAME_KINDS:
            self._frame_faults.append(fault)
            return fault
        if fault.kind in ("move", "noise"):
            try:
                self.geo.point(fault.transformer, fault.feeder, fault.at_m)
            except KeyError as exc:
                raise TopologyError("fault %s: %s is not in the topology" % (fault.name, exc)) from None
        for a, b in fault.windows or [(0, None)]:
            self.sim.at(max(self.sim.now, a * 1000), self._state_on, fault, b)
        return fault

    def _state_on(self, f, window_end):
        t_ms = self.sim.now // 1000
        if f.every_ms is not None:
            # periodic: on for for_ms, next period at every_ms (inside the window)
            off_at = t_ms + f.for_ms
            nxt = t_ms + f.every_ms
            self.sim.at(off_at * 1000, self._state_off, f)
            if window_end is None or nxt < window_end:
                self.sim.at(nxt * 1000, self._state_on, f, window_end)
        elif window_end is not None:
            self.sim.at(window_end * 1000, self._state_off, f)
        self._apply_state(f, True)

    def _state_off(self, f):
        self._apply_state(f, False)

    def _apply_state(self, f, on):
        k = f.kind
        if k == "offline":
            for nid in f.nodes:
                self._set_offline(self._idx(nid), on)
        elif k == "degrade":
            db = f.db if on else -f.db
            carriers = (0, 1) if f.carrier is None else (f.carrier,)
            if f.nodes is not None:
                for nid in f.nodes:
                    i = self._idx(nid)
                    self.node_extra[i] += db
                    self._refresh_node(i)
                    self._state_trace(nid, "degrade" if on else "restore")
            elif f.link is not None:
                a, b = self._idx(f.link[0]), self._idx(f.link[1])
                pairs = [(a, b)] if f.directed else [(a, b), (b, a)]
                for s, r in pairs:
                    for c in carriers:
                        v = self.pair_extra.get((s, r, c), 0.0) + db
                        if abs(v) < 1e-9:
                            self.pair_extra.pop((s, r, c), None)
                        else:
                            self.pair_extra[(s, r, c)] = v
                    self._pairs_of.setdefault(s, set()).add(r)
                    self._rows[s] = [None, None]
                self._state_trace("%s-%s" % f.link, "degrade" if on else "restore")
            else:
                for i in range(len(self.ids)):
                    self.node_extra[i] += db / 2.0
                for i in range(len(self.ids)):
                    self._rows[i] = [None, None]
                self._state_trace("*", "degrade" if on else "restore")
        elif k == "noise":
            if on:
                self._fault_noise.append(f)
            else:
                self._fault_noise.remove(f)
            self._noise_cache.clear()
            self._hour_key = None
            self._state_trace(f.name, "noise_on" if on else "noise_off")
        elif k == "move":
            nid = f.nodes[0]
            i = self._idx(nid)
            if on:
                self._move_back[id(f)] = self._position_of(i)
                tr = f.transformer
                if f.feeder is not None:
                    tr = self.topology.feeder(f.feeder).transformer
                self._move(i, tr, f.feeder, f.at_m)
            else:
                old = self._move_back.pop(id(f))
                self._move(i, *old)

    def _position_of(self, i):
        spec = self.topology.nodes[i]
        cur = self._positions.get(i)
        return cur if cur is not None else (spec.transformer, spec.feeder, spec.at_m)

    def _move(self, i, transformer, feeder, at_m):
        self.geo.move(i, transformer, feeder, at_m)
        self._positions[i] = (transformer, feeder, at_m)
        self._refresh_node(i)
        self._state_trace(self.ids[i], "moved to %s" % (
            "%s busbar" % transformer if feeder is None else "%s@%gm" % (feeder, at_m)))

    def _set_offline(self, i, off):
        was = self.off_count[i] > 0
        self.off_count[i] += 1 if off else -1
        now_off = self.off_count[i] > 0
        if was == now_off:
            return
        p = self.ports[i]
        t = self.sim.now
        if now_off:
            for o in self._ongoing:
                if o.src == i:
                    o.cut = True
            p.token += 1
            self._contending.pop(i, None)
            self._waiting.pop(i, None)
            if p.state != TX:
                p.state = IDLE
            for fr in p.queue:
                self._drop(p, fr, LOSS_OFF_LINE)
            p.queue = []
        else:
            self.bl[i] = 1
            self.blt[i] = t
            self.base[i] = t
        self._refresh_node(i)
        self._state_trace(p.id, "off_line" if now_off else "on_line")
        if p.on_line is not None:
            self._emit(p, p.on_line(self.sim.now_ms, not now_off))
            self._schedule_poll(p)

    # scripting helpers (all times: virtual ms since the start) -------------------

    def drop(self, probability=1.0, **kw):
        return self.add_fault(Fault("drop", probability=probability, **kw))

    def delay(self, delay_ms, probability=1.0, **kw):
        return self.add_fault(Fault("delay", delay_ms=delay_ms, probability=probability, **kw))

    def duplicate(self, probability=1.0, copies=1, delay_ms=0, **kw):
        return self.add_fault(Fault("duplicate", probability=probability, copies=copies,
                                    delay_ms=delay_ms, **kw))

    def corrupt(self, probability=1.0, **kw):
        return self.add_fault(Fault("corrupt", probability=probability, **kw))

    def take_offline(self, nodes, at_ms=0, until_ms=None):
        return self.add_fault(Fault("offline", nodes=nodes, at_ms=at_ms, until_ms=until_ms))

    def degrade(self, db, at_ms=0, until_ms=None, **kw):
        return self.add_fault(Fault("degrade", db=db, at_ms=at_ms, until_ms=until_ms, **kw))

    def move(self, node, at_ms, feeder=None, at_m=0.0, transformer=None, until_ms=None):
        return self.add_fault(Fault("move", nodes=[node], at_ms=at_ms, until_ms=until_ms,
                                    feeder=feeder, at_m=at_m, transformer=transformer))

    def add_noise(self, level_dbuv, feeder=None, at_m=0.0, transformer=None, carrier=None,
                  at_ms=0, until_ms=None, name=None):
        return self.add_fault(Fault("noise", level_dbuv=level_dbuv, feeder=feeder, at_m=at_m,
                                    transformer=transformer, carrier=carrier, at_ms=at_ms,
                                    until_ms=until_ms, name=name))
