# The meter's ISO/IEC 14908-1 (LonTalk) node on the power line, sans-IO:
# identity and configuration (Neuron ID, two domain-table entries, the
# address table with its group memberships, node state), the address filter,
# the transport/session layers (lontalk_transport), network management and
# diagnostics, the service-pin message and originated messages; the OSGP
# application profile (plc_osgp) on top. docs/plc-node.md is the reference
# for everything here, with the emulator-profile choices in one list.
#
# Driver interface (the virtual channel's node interface, docs/plc-channel.md):
#   receive(frame, now_ms, rssi_db=None, snr_db=None) -> None | [bytes]
#   poll(now_ms) -> None | [bytes];  deadline (ms or None);  on_sent(frame, now_ms)
# Nothing raises for input from the wire: bad frames are dropped and counted
# (node.drops by reason; ISO/IEC 14908-1 statistics in node.stats).
#
# Sources: [DX] izot/lon-stack-dx lcs_network.c NetworkLayerReceive (address
# filter, flex domain), lcs_netmgmt.c (NM/ND handlers), lcs_tsa.c/lcs_tcs.c
# (transport, session); reference/lontalk-transport-security.md 1 and 3.
from . import lontalk as L
from . import lontalk_nm as N
from . import lifecycle as LC
from .lontalk import FrameError
# (ACKD .. REQUEST, DEFER, FLEX and DISCOVERY are re-exported for users of the node)
from .lontalk_transport import (Transport, Transaction, Incoming, TX_TIMER_MS, RCV_TIMER_MS,
                                ACKD, UNACKD_RPT, UNACKD, REQUEST, FLEX, DISCOVERY, DEFER,
                                RECEIVE_RECORDS, NO_STATS)

# node states, the ET04.72 codes [MEP ET04] = the 14908-1 node states [DX IzotNodeState]
APPLICATIONLESS = 3
UNCONFIGURED = 2
CONFIGURED = 4
SOFT_OFFLINE = 12        # reported only: CONFIGURED with the application offline
HARD_OFFLINE = 6
BYPASS = 140             # reported only: CONFIGURED, offline in bypass mode (emulator, below)
STATES = (UNCONFIGURED, APPLICATIONLESS, CONFIGURED, HARD_OFFLINE)

# reset causes (ND query status) [Neuron reset-cause register; DX IzotResetCause]
RESET_CLEARED = 0x00
RESET_POWER_UP = 0x01
RESET_EXTERNAL = 0x02
RESET_WATCHDOG = 0x0C
RESET_SOFTWARE = 0x14

# error-log codes [DX LonStatusCode, the 14908-1 system error codes]
ERR_INVALID_DOMAIN = 138
ERR_INVALID_ADDR_INDEX = 141
ERR_UNKNOWN_PDU = 146

# Emulator profile (docs/plc-node.md): identity constants, sizes, timers.
VERSION = 16                 # ND status "version" byte
MODEL = 0x80                 # ND status "model number" byte
DEFAULT_PROGRAM_ID = b"OSGP-EMU"
ADDR_ENTRIES = 15            # address-table entries (Neuron: 15)
MAX_APDU = 228               # application buffer [DX MAX_LON_MSG_NON_EX_LEN]
DEFAULT_NONGROUP_RCV = 12    # receive timer index: 8192 ms
DEFAULT_TX_TIMER = 11        # 768 ms between tries of an originated message
DEFAULT_RETRY = 3            # 4 tries in all
# The "global discovery domain" on which ADD/ATM frames (0x45/0x4A) travel:
# the value is not public; this 6-byte ID is an emulator choice.
DISCOVERY_DOMAIN = b"OSGPAD"

OSGP_CODES = (0x30, 0x3F, 0x40, 0x4F)
# set node mode 3 (change state) -> the lifecycle table's trigger
_CHANGE_STATE = {UNCONFIGURED: "change_state_unconfigured",
                 APPLICATIONLESS: "change_state_applicationless",
                 CONFIGURED: "change_state_configured", HARD_OFFLINE: "change_state_hard_offline"}

# Tables: ET04 mirrors [MEP ET04]; the configuration image lives in an
# emulator-defined table ET99 = 2147 (113 bytes, nv; tables/extended_tables.toml).
ET04 = 2048 + 4
ET04_NEURON_ID = 4
ET04_SUBNET = 10
ET04_NODE = 11
ET04_PROGRAM_ID = 14
ET04_STATE = 72
ET04_SIGNAL = 90
CONFIG_TABLE = 2048 + 99

# Configuration image (emulator profile, little-endian like table data):
#   0    1   format version (1; 0 = never written)
#   1   15   domain entry 0 (lontalk_nm.Domain encoding)
#  16   15   domain entry 1
#  31    1   node state (2, 3, 4 or 6)
#  32    1   non-group receive timer index (bits 3-0)
#  33   75   address table: 15 entries x 5 bytes (lontalk_nm.AddressEntry)
# 108    4   last accepted broadcast sequence number (UINT32)
# 112    1   flags: bit 0 = the broadcast sequence number is set
IMAGE_VERSION = 1
IMAGE_SIZE = 113


# Shared, never mutated: an unused domain entry and an unbound address entry
# (an idle node's tables are references to these; every change replaces an
# entry, except update-group-address on a group entry, which is the node's own).
NO_DOMAIN = N.Domain(bytes(6), 0, 0, 0, bytes(6), True, True, 0)
UNBOUND = N.AddressEntry(N.ADDR_UNBOUND, turnaround=0, subnet=0)
_NO_DOMAIN_BYTES = NO_DOMAIN.encode()
_UNBOUND_BYTES = UNBOUND.encode()


def _u32(b, i):
    return b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)


class PlcNode(Transport):
    """One LonTalk node (see docs/plc-node.md for the full contract).

    neuron_id   6 bytes; None: ET04.4 from the store (zeros without one)
    execute     execute(request, role, now) -> response: the OSGP tables
                (None: no OSGP application)
    keys        a KeyRing (the PLC unicast and broadcast keys)
    store       the TableStore: ET04/ET11 mirrors and the configuration table
    program_id  8 bytes; None: ET04.14, else DEFAULT_PROGRAM_ID

    Hooks (attributes, None by default):
    on_reset(node, cause, mode, now)   after set-node-mode reset / leaving the last domain
    on_wink(node, now)                 a wink request
    on_config(node)                    after every configuration change
    on_message(node, inc, now)         application APDUs nobody else takes;
                                       returns a response APDU, None or DEFER
    register(code, fn(node, inc, now))  APDU codes handled first (foreign
                                       frames 0x45/0x4A/0x4D ...; any state;
                                       the only path in the discovery domain)
    """

    __slots__ = ("store", "config_table", "neuron_id", "program_id", "domains", "addresses",
                 "state", "nongroup_rcv", "online", "selected", "reset_cause", "error_log",
                 "winks", "signal", "discovery_domain", "max_apdu", "bcast_seq", "last_tx",
                 "on_reset", "on_wink", "on_config", "on_message", "handlers",
                 "_pending_reset", "osgp", "loaded", "_timers", "bypass", "life")

    def __init__(self, neuron_id=None, execute=None, keys=None, store=None, program_id=None,
                 config_table=CONFIG_TABLE):
        self._tinit()
        self.rr_max = RECEIVE_RECORDS
        self.store = store
        self.config_table = config_table
        st = store if store is not None and store.exists(ET04) else None
        if neuron_id is None:
            neuron_id = st.read(ET04, ET04_NEURON_ID, 6) if st is not None else bytes(6)
        if len(neuron_id) != 6:
            raise ValueError("Neuron ID must be 6 bytes")
        self.neuron_id = bytes(neuron_id)
        if program_id is None and st is not None:
            program_id = st.read(ET04, ET04_PROGRAM_ID, 8)
            if program_id == bytes(8):
                program_id = None
        if program_id is None:
            program_id = DEFAULT_PROGRAM_ID
        if len(program_id) != 8:
            raise ValueError("program ID must be 8 bytes")
        self.program_id = bytes(program_id)
        self.domains = [NO_DOMAIN, NO_DOMAIN]
        self.addresses = [UNBOUND] * ADDR_ENTRIES
        self.state = UNCONFIGURED
        self.nongroup_rcv = DEFAULT_NONGROUP_RCV
        self.online = True
        self.bypass = False      # bypass mode (ET04.72 140): see _go
        self.life = None         # life.Life (meter.life): told of every node trigger
        self.selected = False
        self.reset_cause = RESET_POWER_UP
        self.error_log = 0
        self.winks = 0
        self.signal = None
        self.discovery_domain = DISCOVERY_DOMAIN
        self.max_apdu = MAX_APDU
        self.bcast_seq = None
        self.last_tx = None
        self.on_reset = None
        self.on_wink = None
        self.on_config = None
        self.on_message = None
        self.handlers = None
        self._pending_reset = None
        self._timers = None
        self.osgp = None
        self.loaded = self._load()
        if execute is not None:
            from .plc_osgp import OsgpPlc
            self.osgp = OsgpPlc(execute, keys, store, self)
        self._mirror()

    # -- state -----------------------------------------------------------------
    @property
    def configured(self):
        return self.state == CONFIGURED or self.state == HARD_OFFLINE

    @property
    def state_code(self):
        """The node state as ND query status and ET04.72 report it."""
        if self.state == CONFIGURED and not self.online:
            return BYPASS if self.bypass else SOFT_OFFLINE
        return self.state

    @property
    def app_runs(self):
        """The application (OSGP) takes messages: unconfigured with an
        application, or configured and online (or in bypass mode)."""
        return self.state == UNCONFIGURED or (self.state == CONFIGURED and
                                               (self.online or self.bypass))

    def _go(self, trigger, ctx=None):
        """Run a node-state trigger through the lifecycle table
        (meter/lifecycle_table.py, machine "node"): the table alone decides
        the next state; False when it refuses (nothing changes). The state
        is kept as (state, online, bypass): soft offline = CONFIGURED
        offline, bypass = CONFIGURED offline in bypass mode (emulator
        profile: the application keeps running; RAM only, like soft
        offline). The caller saves the configuration."""
        src = LC.node_name(self.state_code)
        ok, dst = LC.step("node", src, trigger, ctx)
        if ok and dst != src:
            code = LC.node_code(dst)
            if code == SOFT_OFFLINE or code == BYPASS:
                self.state, self.online, self.bypass = CONFIGURED, False, code == BYPASS
            else:
                self.state, self.online, self.bypass = code, True, False
        if self.life is not None:
            self.life.node_changed(self, trigger, src, dst if ok else None, ctx)
        return ok

    def fire(self, trigger):
        """A host-side node trigger ("load_application", "unload_application",
        "bypass_on", "bypass_off" ...): True when the table takes it."""
        ok = self._go(trigger)
        if ok:
            self._save()
        return ok

    def register(self, code, fn):
        """Handle APDUs starting with `code` with fn(node, inc, now) -> a
        response APDU, None or DEFER; fn None removes it."""
        h = self.handlers
        if h is None:
            h = self.handlers = {}
        if fn is None:
            h.pop(code, None)
        else:
            h[code] = fn

    def address(self, dom=0):
        """(domain ID, subnet, node) of domain entry dom, or None."""
        d = self.domains[dom]
        if d.invalid:
            return None
        return bytes(d.domain_id[:d.id_len]), d.subnet, d.node

    # -- configuration, persistence ----------------------------------------------
    def commission(self, domain_id, subnet, node, key=None, index=0, now=None):
        """Configure domain entry `index` and go configured, online: what a
        data concentrator's commissioning does over NM, for a host that
        starts meters already commissioned. False (nothing changed) when the
        lifecycle table refuses it (an applicationless node)."""
        if not LC.step("node", LC.node_name(self.state_code), "commission")[0]:
            self._go("commission")               # reported as refused
            return False
        domain_id = bytes(domain_id)
        if len(domain_id) not in L.DOMAIN_LENGTHS:
            raise ValueError("domain ID: 0, 1, 3 or 6 bytes")
        d = N.Domain(domain_id + bytes(6 - len(domain_id)), subnet, node, len(domain_id),
                     bytes(key) if key is not None else bytes(6))
        d.encode()                 # range checks
        self.domains[index] = d
        self._go("commission")
        self._save()
        return True

    def join_group(self, group, member, size=0, dom=0, rcv_timer=DEFAULT_NONGROUP_RCV,
                   tx_timer=DEFAULT_TX_TIMER, retry=DEFAULT_RETRY, index=None):
        """Make this node member `member` of `group` (an address-table group
        entry; `size` 0 = a large group, unacknowledged only)."""
        e = N.AddressEntry(N.ADDR_GROUP, domain=dom, group=group, size=size, member=member,
                           rcv_timer=rcv_timer, tx_timer=tx_timer, retry=retry)
        e.encode()
        if index is None:
            for i, a in enumerate(self.addresses):
                if a.kind == N.ADDR_GROUP and a.domain == dom and a.group == group:
                    index = i
                    break
        if index is None:
            for i, a in enumerate(self.addresses):
                if a.kind == N.ADDR_UNBOUND:
                    index = i
                    break
        if index is None:
            raise ValueError("address table full")
        self.addresses[index] = e
        self._save()

    def leave_group(self, group, dom=0):
        """Drop the address-table entry of `group` (added for OSGP groups,
        meter/groups.py); False when this node was not a member."""
        for i, a in enumerate(self.addresses):
            if a.kind == N.ADDR_GROUP and a.domain == dom and a.group == group:
                self.addresses[i] = UNBOUND
                self._save()
                return True
        return False

    def image(self):
        """The configuration image (IMAGE_SIZE bytes, layout above)."""
        out = bytearray(IMAGE_SIZE)
        out[0] = IMAGE_VERSION
        out[1:16] = self.domains[0].encode()
        out[16:31] = self.domains[1].encode()
        out[31] = self.state
        out[32] = self.nongroup_rcv & 15
        p = 33
        for e in self.addresses:
            out[p:p + 5] = e.encode()
            p += 5
        b = self.bcast_seq
        if b is not None:
            out[108:112] = (b & 0xFFFFFFFF).to_bytes(4, "little")
            out[112] = 1
        return bytes(out)

    def load_image(self, img):
        """Take a configuration image; False (nothing changed) when it is not
        a valid one."""
        try:
            if len(img) < IMAGE_SIZE or img[0] != IMAGE_VERSION or img[31] not in STATES:
                return False
            doms = []
            for i in (1, 16):
                b = bytes(img[i:i + 15])
                doms.append(NO_DOMAIN if b == _NO_DOMAIN_BYTES else N.Domain.decode(b))
            addrs = []
            for i in range(ADDR_ENTRIES):
                b = bytes(img[33 + 5 * i:38 + 5 * i])
                addrs.append(UNBOUND if b == _UNBOUND_BYTES else N.AddressEntry.decode(b))
        except FrameError:
            return False
        self.domains = doms
        self.addresses = addrs
        self.state = img[31]
        self.nongroup_rcv = img[32] & 15
        self.bcast_seq = _u32(img, 108) if img[112] & 1 else None
        return True

    def _load(self):
        s = self.store
        if s is None or not s.exists(self.config_table):
            return False
        return self.load_image(s.read(self.config_table, 0, IMAGE_SIZE))

    def _store_image(self):
        s = self.store
        if s is not None and s.exists(self.config_table):
            s.write(self.config_table, 0, self.image())

    def _save(self):
        # a configuration change: image, ET04 mirrors, then on_config
        self._store_image()
        self._mirror()
        if self.on_config is not None:
            self.on_config(self)

    def _set(self, off, data):
        s = self.store
        if s.read(ET04, off, len(data)) != data:
            s.write(ET04, off, data)

    def _mirror(self):
        # ET04.4 Neuron ID, .10/.11 subnet/node (domain 0), .14 program ID,
        # .72 node state; written only when they differ (an unchanged ET04
        # costs no per-meter copy).
        s = self.store
        if s is None or not s.exists(ET04):
            return
        d = self.domains[0]
        sn = bytes((0, 0)) if d.invalid else bytes((d.subnet, d.node))
        self._set(ET04_NEURON_ID, self.neuron_id)
        self._set(ET04_SUBNET, sn)
        self._set(ET04_PROGRAM_ID, self.program_id)
        self._set(ET04_STATE, bytes((self.state_code,)))

    def _signal(self, snr):
        # ET04.90 PLC signal quality from the SNR of frames addressed to this
        # node (emulator mapping: < 6 dB 1, < 12 dB 2, < 18 dB 3, else 4).
        if snr is None:
            return
        q = 1 if snr < 6 else (2 if snr < 12 else (3 if snr < 18 else 4))
        if q != self.signal:
            self.signal = q
            s = self.store
            if s is not None and s.exists(ET04):
                s.set_field(ET04, ET04_SIGNAL, 1, q)

    # -- address filter ---------------------------------------------------------------
    def _member(self, dom, group):
        if dom >= FLEX:
            return None
        for a in self.addresses:
            if a.kind == N.ADDR_GROUP and a.domain == dom and a.group == group:
                return a.member
        return None

    def _rcv_timer(self, inc):
        f = inc.frame
        if f.addr_fmt == L.AF_GROUP:
            best = 0
            for a in self.addresses:
                if a.kind == N.ADDR_GROUP and a.domain == inc.dom and a.group == f.group:
                    if RCV_TIMER_MS[a.rcv_timer] > best:
                        best = RCV_TIMER_MS[a.rcv_timer]
            if best:
                return best
        return RCV_TIMER_MS[self.nongroup_rcv]

    def _match(self, f, rssi, snr):
        """Is the frame for this node? [DX NetworkLayerReceive] Returns an
        Incoming, or None (the reason counted in drops)."""
        configured = self.configured
        dom = f.domain
        idx = FLEX
        if configured:
            for i in (0, 1):
                d = self.domains[i]
                if not d.invalid and d.id_len == len(dom) and d.domain_id[:d.id_len] == dom:
                    idx = i
                    break
        if idx == FLEX and dom == self.discovery_domain:
            idx = DISCOVERY
        af = f.addr_fmt
        me = (0, 0)
        if idx < FLEX:
            d = self.domains[idx]
            me = (d.subnet, d.node)
            if f.src_subnet == me[0] and f.src_node == me[1] and af != L.AF_GROUP_ACK:
                self._drop("own")
                return None
        member = None
        if af == L.AF_BROADCAST:
            if idx < FLEX and f.dst_subnet and f.dst_subnet != me[0]:
                self._drop("address")
                return None
        elif af == L.AF_GROUP:
            member = self._member(idx, f.group)
            if member is None:
                self._drop("address" if idx < FLEX else "domain")
                return None
        elif af == L.AF_NEURON_ID:
            if f.neuron_id != self.neuron_id:
                self._drop("address")
                return None
        else:
            if idx >= FLEX:
                self._drop("domain")
                return None
            if f.dst_subnet != me[0] or f.dst_node != me[1]:
                self._drop("address")
                return None
        if af != L.AF_BROADCAST and af != L.AF_NEURON_ID:
            if not configured:
                self._drop("unconfigured")
                return None
        elif idx == FLEX and configured and af != L.AF_NEURON_ID:
            self._drop("domain")
            return None
        return Incoming(f, idx, member, me, rssi, snr)

    # -- driver interface -------------------------------------------------------------
    def receive(self, frame, now_ms, rssi_db=None, snr_db=None):
        """A frame heard on the line (L2 header .. CRC). Returns the frames to
        send (a list) or None."""
        self._hold += 1           # hooks' send()/respond() frames leave with ours
        try:
            self._receive(frame, now_ms, rssi_db, snr_db)
        finally:
            self._hold -= 1
        return self._flush()

    def _receive(self, frame, now_ms, rssi_db, snr_db):
        try:
            try:
                f = L.decode(frame)
            except FrameError as e:
                self._drop(e.reason)
                if e.reason == "crc":
                    self._stat(0)          # transmission error
                elif e.reason == "too_long":
                    self._stat(4)          # missed: no buffer that large
                return
            inc = self._match(f, rssi_db, snr_db)
            if inc is None:
                return
            self._signal(snr_db)
            if f.apdu is not None and len(f.apdu) > self.max_apdu:
                self._stat(3)              # lost: larger than the application buffer
                self._drop("apdu_too_long")
                return
            self._transport(inc, now_ms)
        except Exception:
            self._drop("internal")
        self._after(now_ms)

    def poll(self, now_ms):
        self._hold += 1
        try:
            try:
                self._poll_timers(now_ms)
                self._poll_tx(now_ms)
            except Exception:
                self._drop("internal")
            self._after(now_ms)
        finally:
            self._hold -= 1
        return self._flush()

    @property
    def deadline(self):
        """When poll() next has work (driver ms), or None: the transport's
        retries and the timers set with later()."""
        d = self._tx_deadline()
        t = self._timers
        if t and (d is None or t[0][0] < d):
            d = t[0][0]
        return d

    # -- timers (extension point added for plc_discovery: a reply sent after a
    # random back-off, a relay window that closes) ----------------------------
    def later(self, when, fn):
        """Call fn(node, now) from poll() once driver time reaches `when`
        (ms). fn may send(); its frames go out with poll's. Returns a handle
        for cancel()."""
        t = self._timers
        if t is None:
            t = self._timers = []
        item = [when, fn]
        i = len(t)
        while i > 0 and t[i - 1][0] > when:     # sorted by time, FIFO among equals
            i -= 1
        t.insert(i, item)
        return item

    def cancel(self, handle):
        t = self._timers
        if t is not None:
            for i in range(len(t)):
                if t[i] is handle:
                    del t[i]
                    return

    def _poll_timers(self, now):
        t = self._timers
        while t and t[0][0] <= now:
            item = t.pop(0)
            try:
                item[1](self, now)
            except Exception:
                self._drop("hook_error")

    def on_sent(self, frame, now_ms):
        self._sent(frame, now_ms)
        return None

    def _after(self, now):
        cause = self._pending_reset
        if cause is not None:
            self._pending_reset = None
            self._reset(now, cause[0], cause[1])   # the caller flushes (a reply may be waiting)

    def reset(self, now, cause=RESET_SOFTWARE, mode=None):
        """A node reset: receive records, transactions (their on_done gets
        False), the selected flag and soft-offline are lost; configuration
        stays. Calls on_reset. Returns frames (from hooks that send)."""
        self._hold += 1
        try:
            self._reset(now, cause, mode)
        finally:
            self._hold -= 1
        return self._flush()

    def _reset(self, now, cause, mode):
        lost = []
        txs = self._tx
        if txs is not None:
            for p in (0, 1):
                if txs[p] is not None:
                    lost.append(txs[p])
                lost.extend(txs[2 + p])
        self._clear_transport(cause == RESET_SOFTWARE or cause == RESET_CLEARED)
        self._timers = None                # later() timers are lost with the RAM
        for tx in lost:
            self._done(tx, False)
        self._go("reset")                  # soft offline and bypass end here
        self.selected = False
        self.reset_cause = cause
        self._mirror()
        if self.on_reset is not None:
            self.on_reset(self, cause, mode, now)

    # -- originating ---------------------------------------------------------------------
    def service_pin(self, now=None):
        """The service-pin message: 0x7F Neuron ID program ID, unacknowledged,
        domain-wide broadcast, domain length 0, source 0/0 [DX
        ManualServiceRequestMessage]. Returns the frames."""
        self._emit(L.Frame(backlog=0, pdu_fmt=L.PDU_APDU, addr_fmt=L.AF_BROADCAST, src_subnet=0,
                           src_node=0, dst_subnet=0, domain=b"",
                           apdu=N.service_pin(self.neuron_id, self.program_id)))
        return self._release()

    def send(self, dest, apdu, now, service=ACKD, prio=False, dom=0, domain=None,
             retry=DEFAULT_RETRY, tx_timer=DEFAULT_TX_TIMER, on_done=None,
             timer_ms=None, last_extra_ms=0, alt=False):
        """Originate a message. dest: (AF_SUBNET_NODE, subnet, node),
        (AF_GROUP, group, size), (AF_BROADCAST, subnet, backlog),
        (AF_NEURON_ID, subnet, neuron_id). service: ACKD, UNACKD_RPT,
        REQUEST or UNACKD. In domain entry `dom`, or with `domain` (bytes)
        in that domain from source 0/0 (flex). tx_timer: index into
        TX_TIMER_MS (the repeat timer for UNACKD_RPT); retry: 0-15.
        timer_ms (added for LTEP repeating): the timer in ms instead of
        tx_timer (the long-timer table); last_extra_ms: added to the wait
        after the last try [DX txTimerDeltaLast]. alt (added for ADD/ATM):
        an UNACKD frame goes on the alternate path (secondary carrier);
        other services keep the transport's rule (the last two tries).
        on_done(node, tx, ok) at the end (tx.responses for a REQUEST);
        node.last_tx is the Transaction. Returns the frames to send now
        (None from inside a hook or callback: they leave with that call's)."""
        try:
            apdu = bytes(apdu)
            if domain is None:
                d = self.domains[dom]
                if d.invalid or not self.configured:
                    raise ValueError("domain entry %d not in use" % dom)
                domain = bytes(d.domain_id[:d.id_len])
                src = (d.subnet, d.node)
            else:
                domain = bytes(domain)
                src = (0, 0)
                dom = FLEX
            if len(domain) not in L.DOMAIN_LENGTHS or not apdu:
                raise ValueError("bad domain or empty APDU")
            kind = dest[0]
            if kind not in (L.AF_SUBNET_NODE, L.AF_GROUP, L.AF_BROADCAST, L.AF_NEURON_ID):
                raise ValueError("bad destination")
            if not 0 <= retry <= 15 or not 0 <= tx_timer <= 15:
                raise ValueError("retry and tx_timer: 0-15")
            tx = Transaction(dest, apdu, service, prio, dom, domain, src, retry,
                             TX_TIMER_MS[tx_timer] if timer_ms is None else int(timer_ms),
                             on_done)
            tx.extra = int(last_extra_ms)
            self.last_tx = tx
            if service == UNACKD:
                tx.tid = 0
                f = self._frame(tx, L.PDU_APDU, None, bool(alt), 0, apdu)
                f.tid = None
                self._done(tx, self._emit(f) is not None)
            else:
                self._send(tx, now)
        except Exception:
            self._drop("tx_error")
            if on_done is not None:
                on_done(self, None, False)
        return self._release()

    # -- application dispatch ------------------------------------------------------------
    def _deliver(self, inc, now):
        apdu = inc.frame.apdu
        if not apdu:
            return None
        code = apdu[0]
        h = self.handlers
        if h is not None:
            h = h.get(code)
            if h is not None:
                return h(self, inc, now)
        if inc.dom == DISCOVERY:
            self._drop("discovery")
            return None
        if 0x50 <= code < 0x80:
            return self._nm(inc, now)
        if not self.app_runs:
            self._drop("offline")
            return None
        if self.osgp is not None and code in OSGP_CODES:
            if self.life is None:
                return self.osgp.handle(inc, now)
            done = self.osgp.stats[0]
            answer = self.osgp.handle(inc, now)
            if self.osgp.stats[0] != done:       # authenticated and executed
                self.life.osgp_request(inc.dom < FLEX)
            return answer
        if self.on_message is not None:
            return self.on_message(self, inc, now)
        self._drop("unhandled")
        return None

    # -- network management and diagnostics [DX lcs_netmgmt.c] --------------------------------
    def status(self):
        s = self.stats
        return N.Status(s[0], s[1], s[2], s[3], s[4], self.reset_cause, self.state_code,
                        VERSION, self.error_log, MODEL)

    def clear_status(self):
        self.stats = NO_STATS
        self.reset_cause = RESET_CLEARED
        self.error_log = 0

    def _readonly(self):
        # The part of the Neuron read-only structure query-ID memory matching
        # can compare (mode 1): Neuron ID at 0, program ID at 13 (emulator).
        return self.neuron_id + bytes(5) + b"\xff\xff" + self.program_id

    def _fail(self, code, err=None):
        if err is not None:
            self.error_log = err
        return N.fail(code)

    def _nm(self, inc, now):
        # network management and diagnostics (plc_nm.py): loaded with the
        # first NM/ND message, so a node that boots commissioned from its
        # saved image and is never managed does not carry it
        from . import plc_nm
        return plc_nm.handle(self, inc, now)


class AddressBook:
    """The channel's address_filter for a shard of PlcNodes: filter(frame)
    -> the ids of the nodes that may accept it (a superset; each node still
    filters), plus `always` (e.g. the data concentrator); None (everybody)
    for frames that do not decode, which every hearer counts. The index is
    rebuilt after any node's configuration changes (via node.on_config)."""

    def __init__(self):
        self.nodes = {}
        self.always = []
        self._index = None

    def add(self, node_id, node):
        self.nodes[node_id] = node
        prev = node.on_config
        book = self

        def changed(n):
            book._index = None
            if prev is not None:
                prev(n)
        node.on_config = changed
        self._index = None

    def remove(self, node_id):
        self.nodes.pop(node_id, None)
        self._index = None

    def _build(self):
        sn = {}
        grp = {}
        sub = {}
        nid = {}
        loose = []        # unconfigured: broadcasts in any domain
        for i, n in self.nodes.items():
            nid.setdefault(n.neuron_id, []).append(i)
            if not n.configured:
                loose.append(i)
                continue
            for k in (0, 1):
                d = n.domains[k]
                if d.invalid:
                    continue
                dom = bytes(d.domain_id[:d.id_len])
                sn.setdefault((dom, d.subnet, d.node), []).append(i)
                sub.setdefault((dom, d.subnet), []).append(i)
                sub.setdefault((dom, 0), []).append(i)
                for a in n.addresses:
                    if a.kind == N.ADDR_GROUP and a.domain == k:
                        grp.setdefault((dom, a.group), []).append(i)
        self._index = (sn, grp, sub, nid, loose)
        return self._index

    def filter(self, data):
        try:
            f = L.decode(data)
        except FrameError:
            return None
        sn, grp, sub, nid, loose = self._index or self._build()
        dom = bytes(f.domain)
        af = f.addr_fmt
        if af == L.AF_NEURON_ID:
            out = nid.get(f.neuron_id, [])
        elif af == L.AF_BROADCAST:
            if dom == DISCOVERY_DOMAIN:
                out = list(self.nodes)
            else:
                out = sub.get((dom, f.dst_subnet), []) + loose
        elif af == L.AF_GROUP:
            out = grp.get((dom, f.group), [])
        else:
            out = sn.get((dom, f.dst_subnet, f.dst_node), [])
        return out + self.always if self.always else out
