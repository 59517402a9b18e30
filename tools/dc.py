"""A data concentrator (DC) for the virtual PLC channel: a LonTalk node with
no OSGP application, commissioned in the DC's domain, that reads, writes and
runs procedures on meters with secured OSGP requests (``plc_client``), and a
Python API for test harnesses. docs/dc.md is the reference.

    from osgp_host.dc import DC, LocalFleet
    fleet = LocalFleet("small")                 # 5 commissioned meters, m001 = 1/1 ...
    dc = DC(fleet.channel, names=fleet.addresses)
    dc.read("m001", "BT01")                     # or (1, 1), "1/1", "nid:00e000000001"
    dc.write((1, 2), "ET04", b"...", offset=103)
    result, data = dc.call("1/3", "BP10", params)
    dc.for_each(fleet.meters, lambda m: dc.read(m, "BT23"), progress=print)

Where the DC sits:

* on a ``Channel`` (``DC(channel, node_id="dc")``): the DC's PlcNode is
  attached at the topology's DC position; a call drives the simulation
  itself (virtual time, as fast as possible, or paced with ``speed``), or
  waits for a loop running in another thread (``drive=False``);
* over CN/IP (``DC(cnip=("127.0.0.1", 1628))``): the DC's PlcNode runs here
  on wall-clock time and its frames travel in CN/IP data packets to a
  gateway (``osgp_host.cnip_gateway``) that puts them on the channel.

Every request is a LonTalk REQUEST (SPDU) with the LonTalk transport's own
retries (``tx_retries`` more tries of the same frame, ``timeout_ms`` apart,
the last ones on the alternate path); when that transaction fails the DC
re-sends the same OSGP bytes (same sequence number and digest) in a new
transaction, ``retries`` times (the meter answers a repeat of its last
accepted request from its cache). A meter that never answers raises
``PlcTimeout`` naming it. Answer codes 0x0B / 0x0C / others raise
``PlcAuthError`` / ``PlcSequenceError`` (after the one re-sync retry) /
``PlcError``.
"""
import argparse
import math
import os
import re
import socket
import sys
import threading
import time

from osgp_meter import cnip
from osgp_meter.access import ROLE_PLC, ROLE_BCAST
from osgp_meter import lontalk as L
from osgp_meter import lontalk_nm as N
from osgp_meter.lontalk import FrameError
from osgp_meter.plc_node import PlcNode, REQUEST, TX_TIMER_MS, AddressBook

from . import catalogue
from .plc_client import (PlcClient, PlcSecurity, PlcError, PlcTimeout, PlcAuthError,
                         PlcSequenceError, MAX_READ, MAX_WRITE)

__all__ = ["DC", "GroupSender", "Target", "LocalFleet", "ChannelLink", "CnipLink", "PlcError",
           "PlcTimeout", "PlcAuthError", "PlcSequenceError", "parse_meter", "parse_meters"]

# Emulator defaults (docs/dc.md): the reference 2.1 addresses.
DEFAULT_DOMAIN = b"\x42"
DC_SUBNET = 1
DC_NODE = 126
DC_NEURON_ID = bytes.fromhex("00 0D C0 00 00 01")
DEFAULT_KEY = bytes(range(1, 13))       # the built-in profile's plc_unicast key
DEFAULT_TIMEOUT_MS = 768                # LonTalk tx timer index 11
DEFAULT_TX_RETRIES = 3
DEFAULT_RETRIES = 2


def timer_index(ms):
    """The smallest LonTalk transmit-timer index whose time is >= ms (15,
    3072 ms, at most)."""
    for i, t in enumerate(TX_TIMER_MS):
        if t >= ms:
            return i
    return len(TX_TIMER_MS) - 1


# ---------------------------------------------------------------- addressing

class Target:
    """A meter as the DC addresses it: subnet/node (2a) in the DC's domain,
    or a Neuron ID (format 3). ``name`` is how the user called it."""

    __slots__ = ("subnet", "node", "neuron_id", "name")

    def __init__(self, subnet=None, node=None, neuron_id=None, name=None):
        if neuron_id is not None:
            neuron_id = bytes(neuron_id)
            if len(neuron_id) != 6:
                raise ValueError("a Neuron ID is 6 bytes")
        elif not (isinstance(subnet, int) and isinstance(node, int)
                  and 1 <= subnet <= 255 and 1 <= node <= 127):
            raise ValueError("subnet 1-255 and node 1-127 expected, got %r/%r" % (subnet, node))
        self.subnet = subnet
        self.node = node
        self.neuron_id = neuron_id
        self.name = name

    @property
    def key(self):
        return self.neuron_id if self.neuron_id is not None else (self.subnet, self.node)

    @property
    def dest(self):
        """The PlcNode.send destination."""
        if self.neuron_id is not None:
            return (L.AF_NEURON_ID, self.subnet or 0, self.neuron_id)
        return (L.AF_SUBNET_NODE, self.subnet, self.node)

    def address(self):
        if self.neuron_id is not None:
            return "nid:" + self.neuron_id.hex()
        return "%d/%d" % (self.subnet, self.node)

    def __str__(self):
        a = self.address()
        return a if self.name is None or self.name == a else "%s (%s)" % (self.name, a)

    def __repr__(self):
        return "Target(%s)" % self

    def __eq__(self, other):
        return isinstance(other, Target) and self.key == other.key

    def __hash__(self):
        return hash(self.key)


_SN = re.compile(r"(\d+)/(\d+)")


def parse_meter(spec, names=None):
    """A Target from: a Target, (subnet, node), 6 Neuron-ID bytes, "1/5",
    "nid:000102030405" (or 12 hex digits), or a name in ``names`` ({name:
    any of these})."""
    if isinstance(spec, Target):
        return spec
    if isinstance(spec, (bytes, bytearray)):
        return Target(neuron_id=spec)
    if isinstance(spec, tuple) and len(spec) == 2:
        return Target(spec[0], spec[1])
    text = str(spec).strip()
    if names and text in names:
        t = parse_meter(names[text])
        return Target(t.subnet, t.node, t.neuron_id, text)
    m = _SN.fullmatch(text)
    if m:
        return Target(int(m.group(1)), int(m.group(2)), name=text)
    low = text.lower()
    if low.startswith("nid:"):
        low = low[4:]
    if re.fullmatch(r"[0-9a-f]{12}", low):
        return Target(neuron_id=bytes.fromhex(low), name=text)
    raise ValueError("unknown meter %r (expected subnet/node like 1/5, nid:<12 hex digits>%s)"
                     % (text, " or a name like %s" % next(iter(names)) if names else ""))


def parse_meters(text, names=None, everyone=None):
    """A list of Targets from a comma-separated list of meters; each item
    may be a range "1/1-20" (nodes 1..20 of subnet 1) or "m001-m010"
    (names), and "all" stands for ``everyone``."""
    out = []
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        if item == "all":
            if everyone is None:
                raise ValueError("'all' needs a known fleet (--local)")
            out.extend(parse_meter(m, names) for m in everyone)
            continue
        m = re.fullmatch(r"(\d+)/(\d+)-(\d+)", item)
        if m:
            s, a, b = int(m.group(1)), int(m.group(2)), int(m.group(3))
            out.extend(Target(s, n, name="%d/%d" % (s, n)) for n in range(a, b + 1))
            continue
        m = re.fullmatch(r"([A-Za-z_]+)(\d+)-\1?(\d+)", item)
        if m and names:
            pre, a, b = m.group(1), m.group(2), m.group(3)
            width = len(a)
            out.extend(parse_meter("%s%0*d" % (pre, width, n), names)
                       for n in range(int(a), int(b) + 1))
            continue
        out.append(parse_meter(item, names))
    if not out:
        raise ValueError("no meter given")
    return out


# ---------------------------------------------------------------- links

class _Link:
    """Where the DC's PlcNode meets the line. Subclasses: _now(), _emit(frames),
    _call(fn(now) -> frames), _wait(box)."""

    def __init__(self, plc):
        self.plc = plc

    def transaction(self, dest, apdu, service=REQUEST, retry=DEFAULT_TX_RETRIES, tx_timer=11,
                    prio=False, domain=None):
        """One LonTalk transaction, to its end: (ok, Transaction or None);
        tx.responses holds every (Frame, APDU) answer (a group or broadcast
        REQUEST collects several). domain=bytes: in that domain from 0/0."""
        box = []

        def done(node, tx, ok):
            box.append((ok, tx))
            self._done()

        self._call(lambda now: self.plc.send(dest, apdu, now, service=service, prio=prio,
                                             domain=domain, retry=retry, tx_timer=tx_timer,
                                             on_done=done))
        self._wait(box)
        return box[0] if box else (False, None)

    def transact(self, dest, apdu, service=REQUEST, retry=DEFAULT_TX_RETRIES, tx_timer=11):
        """One LonTalk transaction; (ok, the first answer APDU or None)."""
        ok, tx = self.transaction(dest, apdu, service, retry, tx_timer)
        if not ok or tx is None:
            return False, None
        if service == REQUEST:
            return (True, tx.responses[0][1]) if tx.responses else (False, None)
        return True, None

    def idle(self, ms):
        """Let `ms` of (virtual or wall) time pass, receiving meanwhile."""
        self._wait(None, self._now() + int(ms))

    def _done(self):
        pass

    def now_ms(self):
        return self._now()

    def close(self):
        pass


class _ChannelPort:
    """The channel-facing object: no poll/deadline (the link keeps its own
    timer events), so the channel only delivers frames and end-of-airtime."""

    __slots__ = ("link",)

    def __init__(self, link):
        self.link = link

    def receive(self, frame, now_ms, rssi_db=None, snr_db=None):
        out = self.link.plc.receive(frame, now_ms, rssi_db, snr_db)
        self.link._arm()
        return out

    def on_sent(self, frame, now_ms):
        self.link.plc.on_sent(frame, now_ms)
        self.link._arm()
        return None


class ChannelLink(_Link):
    """The DC's node attached to a Channel at ``node_id``.

    drive=True (default): a DC call runs the simulation itself until the
    answer: event by event as fast as possible (``speed`` inf), or paced at
    ``speed`` times real time (adapters on the channel, e.g. a modem on a
    pty, get their ``add_io`` polls). drive=False: another thread runs the
    loop (a gateway, a fleet runner); calls are posted to it and wait,
    ``wall_timeout`` seconds at most."""

    SLICE_US = 20_000

    def __init__(self, channel, node_id, plc, speed=math.inf, drive=True, wall_timeout=60.0):
        super().__init__(plc)
        self.channel = channel
        self.sim = channel.sim
        self.id = node_id
        self.speed = speed
        self.drive = drive
        self.wall_timeout = wall_timeout
        self._armed = None
        self._event = threading.Event()
        channel.attach(node_id, _ChannelPort(self))
        book = getattr(channel.address_filter, "__self__", None)
        if isinstance(book, AddressBook) and node_id not in book.always:
            book.always.append(node_id)     # frames to the DC's address reach it

    def _now(self):
        return self.sim.now_ms

    def _emit(self, frames):
        if frames is None:
            return
        if isinstance(frames, (bytes, bytearray)):
            frames = (frames,)
        for f in frames:
            self.channel.transmit(self.id, f)

    def _arm(self):
        d = self.plc.deadline
        if d is None:
            self._armed = None
            return
        sim = self.sim
        t = sim.us_of_ms(d)
        if t < sim.now:
            t = sim.now
        if self._armed == t:
            return
        self._armed = t
        sim.at(t, self._fire, t)

    def _fire(self, t):
        if self._armed != t:
            return
        self._armed = None
        now = self.sim.now_ms
        self._emit(self.plc.poll(now))
        d = self.plc.deadline
        if d is not None and d <= now:          # never spin at one instant
            t = self.sim.now + 1000 - self.sim.now % 1000
            self._armed = t
            self.sim.at(t, self._fire, t)
            return
        self._arm()

    def _run_fn(self, fn):
        self._emit(fn(self.sim.now_ms))
        self._arm()

    def _call(self, fn):
        if self.drive:
            self._run_fn(fn)
        else:
            self._event.clear()
            self.sim.post(self._run_fn, fn)

    def _done(self):
        self._event.set()

    def _wait(self, box, until_ms=None):
        sim = self.sim
        if box is None:                     # idle until until_ms
            if not self.drive:
                while sim.now_ms < until_ms:
                    time.sleep(0.01)
            else:
                sim.run(until=sim.us_of_ms(until_ms), speed=self.speed)
            return
        if not self.drive:
            end = time.monotonic() + self.wall_timeout
            while not box and time.monotonic() < end:
                self._event.wait(0.05)
            return
        if self.speed == math.inf:
            step = sim.step
            while not box:
                if not step():
                    return
        else:
            while not box:      # the transaction's timer keeps an event pending
                sim.run(until=sim.now + self.SLICE_US, speed=self.speed)

    def close(self):
        self.channel.detach(self.id)


class CnipLink(_Link):
    """The DC's node on wall-clock time, its frames in CN/IP data packets
    (ISO/IEC 14908-4, meter/cnip.py) to and from a gateway over UDP."""

    def __init__(self, plc, gateway=("127.0.0.1", cnip.PORT), bind=("127.0.0.1", 0), session=None):
        super().__init__(plc)
        self.gateway = gateway
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(bind)
        self.session = session if session is not None else int.from_bytes(os.urandom(4), "big")
        self.seq = 0
        self.drops = {}

    def _now(self):
        return int(time.time() * 1000)

    def _emit(self, frames):
        if frames is None:
            return
        if isinstance(frames, (bytes, bytearray)):
            frames = (frames,)
        for f in frames:
            self.seq = self.seq % 0xFFFFFFFF + 1
            pkt = cnip.encode(cnip.Packet(bytes(f), self.session, self.seq, self._now() & 0xFFFFFFFF))
            self.sock.sendto(pkt, self.gateway)

    def _call(self, fn):
        self._emit(fn(self._now()))

    def _wait(self, box, until_ms=None):
        plc = self.plc
        while not box:
            now = self._now()
            if until_ms is not None and now >= until_ms:
                return
            d = plc.deadline
            if d is not None and d <= now:
                self._emit(plc.poll(now))
                continue
            t = d if d is not None else (until_ms if until_ms is not None else now + 1000)
            if until_ms is not None and until_ms < t:
                t = until_ms
            self.sock.settimeout(max(0.001, (t - now) / 1000.0))
            try:
                data, _ = self.sock.recvfrom(2048)
            except socket.timeout:
                if d is None and until_ms is None:
                    return                    # nothing pending and nothing heard
                continue
            try:
                pkt = cnip.decode(data)
            except FrameError as e:
                self.drops[e.reason] = self.drops.get(e.reason, 0) + 1
                continue
            self._emit(plc.receive(pkt.payload, self._now()))

    def close(self):
        self.sock.close()


# ---------------------------------------------------------------- the DC

def table_id(table):
    """A table number from an int or a catalogue name (BT01, ET04, "Clock")."""
    if isinstance(table, int):
        return table
    entry = catalogue.lookup_table(table)
    if entry is None:
        raise ValueError("no table %r in the catalogue" % (table,))
    return entry["id"]


def procedure_number(proc):
    if isinstance(proc, int):
        return proc
    entry = catalogue.lookup_procedure(proc)
    if entry is None:
        raise ValueError("no procedure %r in the catalogue" % (proc,))
    return entry["number"]


class DC:
    """A data concentrator (see the module docstring and docs/dc.md).

    channel / node_id      attach to this Channel at this topology position
    cnip                   (host, port) of a CN/IP gateway instead of a channel
    domain, subnet, node   the DC's own LonTalk address (default 0x42, 1/126)
    neuron_id              the DC node's Neuron ID
    key / keys             the PLC unicast key (12 bytes) for every meter, or
                           keys = {meter spec: key} / keys(target) -> key
                           (None: `key`), e.g. a fleet inventory file read
                           back (fleet_lookup.Inventory) or Fleet.keys_of
    seq                    the sequence number to start every meter from (0:
                           the first request carries 1; the 0x0C rule re-syncs)
    encrypt                RC4 on every request
    retries                application-level re-sends of the same OSGP bytes
    timeout_ms             wait for an answer to one transmission (the LonTalk
                           tx timer, rounded up to its table: 16 ... 3072 ms)
    tx_retries             LonTalk retries within one transaction (0-15)
    max_read / max_write   the PLC size limits (84 / 75): whole tables are
                           split into pieces of at most these sizes
    speed, drive           how a channel DC runs the simulation (ChannelLink)
    names                  {name: meter spec}, e.g. LocalFleet.addresses
    progress               default progress(done, total, target, result) for
                           for_each
    aes                    AES security mode on every request (unicast and,
                           by default, group(): docs/security-modes.md); the
                           unicast nonce takes the
                           meter's Neuron ID: from the address, `neuron_ids`
                           ({meter spec: 6 bytes} or fn(target)), else asked
                           over NM query ID once (dc_life.query_neuron_id)
    """

    def __init__(self, channel=None, node_id="dc", cnip=None, domain=DEFAULT_DOMAIN,
                 subnet=DC_SUBNET, node=DC_NODE, neuron_id=DC_NEURON_ID, key=DEFAULT_KEY,
                 keys=None, seq=None, encrypt=False, retries=DEFAULT_RETRIES,
                 timeout_ms=DEFAULT_TIMEOUT_MS, tx_retries=DEFAULT_TX_RETRIES,
                 max_read=MAX_READ, max_write=MAX_WRITE, speed=math.inf, drive=True,
                 names=None, progress=None, bind=("127.0.0.1", 0), aes=False, neuron_ids=None):
        self.plc = PlcNode(neuron_id)
        self.plc.commission(domain, subnet, node)
        if (channel is None) == (cnip is None):
            raise ValueError("a DC needs a channel or a CN/IP gateway address (one of them)")
        if channel is not None:
            self.link = ChannelLink(channel, node_id, self.plc, speed, drive)
        else:
            self.link = CnipLink(self.plc, cnip, bind)
        self.key = bytes(key)
        self.keys = keys
        self.seq = seq
        self.encrypt = encrypt
        self.retries = retries
        self.timeout_ms = timeout_ms
        self.tx_timer = timer_index(timeout_ms)
        if not 0 <= tx_retries <= 15:
            raise ValueError("tx_retries: 0-15")
        self.tx_retries = tx_retries
        self.max_read = max_read
        self.max_write = max_write
        self.names = names
        self.progress = progress
        self._clients = {}
        self._dims = {}
        self.aes = bool(aes)
        self.neuron_ids = neuron_ids
        self._nids = {}
        self.stats = dict(requests=0, transactions=0, retries=0, timeouts=0, answers=0)

    # -- meters ----------------------------------------------------------------------
    def target(self, meter):
        return parse_meter(meter, self.names)

    def _key_for(self, t):
        keys = self.keys
        if keys is None:
            return self.key
        if callable(keys):
            k = keys(t)
            return self.key if k is None else k
        for spec, k in keys.items():
            if parse_meter(spec, self.names) == t:
                return k
        return self.key

    def client(self, meter):
        """The PlcClient (sequence number, PSN, key) of a meter."""
        t = self.target(meter)
        c = self._clients.get(t.key)
        if c is None:
            sec = PlcSecurity(self._key_for(t), self.seq, self.encrypt, self.aes,
                              self.neuron_id(t) if self.aes else None)
            c = PlcClient(lambda apdu, t=t: self.exchange(t, apdu), sec,
                          max_read=self.max_read, max_write=self.max_write,
                          size_of=lambda table, t=t: self._size_of(t, table), name=str(t))
            self._clients[t.key] = c
        elif t.name is not None and c.name != str(t):
            c.name = str(t)
        return c

    def neuron_id(self, meter):
        """The meter's Neuron ID (AES mode's nonce): its address, then
        `neuron_ids`, else learnt over NM query ID once (tools/dc_life.py)."""
        t = self.target(meter)
        if t.neuron_id is not None:
            return t.neuron_id
        nid = self._nids.get(t.key)
        if nid is None and self.neuron_ids is not None:
            if callable(self.neuron_ids):
                nid = self.neuron_ids(t)
            else:
                nid = next((v for k, v in self.neuron_ids.items()
                            if parse_meter(k, self.names) == t), None)
        if nid is None:
            from .dc_life import query_neuron_id
            nid = query_neuron_id(self, t)
        self._nids[t.key] = bytes(nid)
        return self._nids[t.key]

    def forget(self, meter):
        """Drop what the DC knows about a meter (sequence number, sizes)."""
        t = self.target(meter)
        self._clients.pop(t.key, None)
        self._dims.pop(t.key, None)

    @property
    def now_ms(self):
        return self.link.now_ms()

    # -- transport -----------------------------------------------------------------
    def exchange(self, meter, apdu):
        """Send an application APDU as a LonTalk REQUEST and return the
        answer APDU, or None when every try failed: the transaction's own
        tx_retries, then `retries` more transactions with the same bytes."""
        t = self.target(meter)
        st = self.stats
        st["requests"] += 1
        for attempt in range(1 + self.retries):
            if attempt:
                st["retries"] += 1
            st["transactions"] += 1
            ok, answer = self.link.transact(t.dest, apdu, REQUEST, self.tx_retries, self.tx_timer)
            if ok and answer is not None:
                st["answers"] += 1
                return answer
        st["timeouts"] += 1
        return None

    def transaction(self, dest, apdu, service=REQUEST, retries=None, timeout_ms=None,
                    prio=False, domain=None):
        """Any LonTalk message from the DC's node (network management, group
        and broadcast requests, foreign frames such as discovery): dest as
        PlcNode.send takes it, or a meter spec. Runs to the transaction's end;
        (ok, Transaction with .responses)."""
        if not (isinstance(dest, tuple) and len(dest) == 3):
            dest = self.target(dest).dest
        return self.link.transaction(dest, apdu, service,
                                     self.tx_retries if retries is None else retries,
                                     self.tx_timer if timeout_ms is None else timer_index(timeout_ms),
                                     prio, domain)

    def idle(self, ms):
        """Let ms of time pass (virtual on a channel, wall over CN/IP) while
        the DC's node receives (its hooks, e.g. dc.plc.on_message or
        dc.plc.register(code, fn), see unsolicited messages)."""
        self.link.idle(ms)

    # -- OSGP services ---------------------------------------------------------------
    def request(self, meter, req):
        """A raw C12 request (code + args); the checked plaintext answer."""
        return self.client(meter).request(bytes(req))

    def read(self, meter, table, offset=None, count=None, size=None):
        """Table bytes: whole (split into max_read pieces when the table is
        larger, its size from the catalogue with the meter's own dimension
        fields) or offset/count."""
        return self.client(meter).read(table_id(table), offset, count, size)

    def write(self, meter, table, data, offset=None):
        """Write table bytes: one full write (0x40) when offset is None and
        the data fit max_write, else partial writes (0x4F) of at most
        max_write bytes from offset (0); a split write is not atomic."""
        tid = table_id(table)
        t = self.target(meter)
        self.client(t).write(tid, data, offset)
        d = self._dims.get(t.key)
        if d:
            d.pop(tid, None)                 # a dimension may have changed

    def call(self, meter, procedure, params=b"", psn=None):
        """Run a procedure (BT07 write, BT08 read): (result, response data)."""
        return self.client(meter).call(procedure_number(procedure), params, psn)

    def status(self, meter):
        """ND query status (0x51): the meter node's lontalk_nm.Status.
        Raises PlcTimeout (no answer) or PlcError (a failure response)."""
        t = self.target(meter)
        answer = self.exchange(t, N.nd_query_status())
        if answer is None:
            raise PlcTimeout(meter=str(t))
        try:
            ok, value = N.parse_response(N.ND_QUERY_STATUS, answer)
        except FrameError as e:
            raise PlcError(0x01, "bad ND status answer (%s)" % e.reason, str(t)) from None
        if not ok:
            raise PlcError(0x04, "ND query status refused", str(t))
        return value

    def _size_of(self, t, table):
        entry = catalogue.lookup_table(table)
        if entry is None:
            return None
        size = entry["size"]
        if isinstance(size, int):
            return size
        cache = self._dims.setdefault(t.key, {})
        client = self.client(t)

        def dims(tid, offset, nbytes):
            # the dimension table is read once, whole when it is small (BT00,
            # BT21, BT61 ...), else the field alone; cached until a write to it
            got = cache.get(tid)
            if got is None or offset + nbytes > len(got[1]) + got[0] or offset < got[0]:
                e = catalogue.lookup_table(tid)
                whole = e is not None and isinstance(e["size"], int) and e["size"] <= self.max_read
                got = (0, client.read(tid)) if whole else (offset, client.read(tid, offset, nbytes))
                cache[tid] = got
            base, raw = got
            return int.from_bytes(raw[offset - base:offset - base + nbytes], "little")
        return catalogue.table_size(entry, dims)

    # -- many meters -------------------------------------------------------------------
    def for_each(self, meters, fn, progress=None):
        """fn(target) for every meter in turn; returns [(target, result or
        the PlcError it raised)]. progress(done, total, target, result) after
        each (default: self.progress)."""
        targets = [self.target(m) for m in meters]
        progress = progress or self.progress
        out = []
        for i, t in enumerate(targets):
            try:
                r = fn(t)
            except PlcError as exc:
                r = exc
            out.append((t, r))
            if progress is not None:
                progress(i + 1, len(targets), t, r)
        return out

    def read_all(self, meters, table, offset=None, count=None, progress=None):
        """{target: bytes or PlcError} for every meter."""
        return dict(self.for_each(meters, lambda t: self.read(t, table, offset, count), progress))

    def change_key(self, meter, procedure, key_id, new_key, kek):
        """EP15 / EP24 / EP25 on one meter (docs/key-management.md): the new
        key wrapped under `kek` (the key it replaces), written to BT07 under
        the current key; when it is the DC's own key for that meter (EP15,
        key_id 0) the DC switches to the new key before reading BT08, and
        keeps it in `keys`. Returns (result, response data)."""
        import struct
        from osgp_meter import keys as keymgmt
        number = procedure_number(procedure)
        t = self.target(meter)
        c = self.client(t)
        body = keymgmt.change_params(kek, number, key_id, new_key)
        if self.aes:                                   # AES mode's wrap (docs/security-modes.md)
            from osgp_meter import aes_mode
            body = bytes((key_id,)) + aes_mode.wrap_key(kek, number, key_id, new_key)
        for attempt in (0, 1):
            c.psn = c.psn % 255 + 1
            try:
                c.write(7, struct.pack("<HB", number, c.psn) + body)
                break
            except PlcError as exc:
                if exc.code != 0x04 or attempt:       # 0x04: the meter's last PSN, step once
                    raise
        if number == keymgmt.EP15 and key_id == 0:
            sec = c.security
            c.security = PlcSecurity(new_key, sec.seq, sec.encrypt, self.aes,
                                     self.neuron_id(t) if self.aes else None)
            if self.keys is None:
                self.keys = {}
            if isinstance(self.keys, dict):
                self.keys[t] = bytes(new_key)
        rsp = c.read(8, size=self.max_read)
        if len(rsp) < 4 or (rsp[0] | (rsp[1] << 8)) & 0x0FFF != number or rsp[2] != c.psn:
            raise PlcError(0x04, "BT08 does not hold this procedure's answer", str(t))
        return rsp[3], rsp[4:]

    def group(self, group_id, key, seq=0, repeat=1, aes=None, size=None):
        """A GroupSender: secured requests to an OSGP group ID under the
        broadcast key (docs/groups-and-broadcast.md); AES mode as the DC's
        (``aes``), answered group REQUESTs with ``size`` (see GroupSender)."""
        return GroupSender(self, group_id, key, seq, repeat, aes, size)

    def close(self):
        self.link.close()


class GroupSender:
    """Secured OSGP requests from a DC to the meters of an OSGP group ID
    (docs/groups-and-broadcast.md; an emulator profile): under the broadcast
    key, one sequence number each (the first carries seq + 1; the meters
    accept (last, ET04.82 + ET04.86]), unacknowledged-repeated (``repeat``
    more copies; 0: unacknowledged), to ISO/IEC 14908 group YY for 0xYYzz or
    domain-wide for 0xFFxx (osgp_meter.groups.destination). A plain request
    reaches every meter of group YY; a sub-group is selected by the meters
    themselves in a group-broadcast transaction (ET27 type 3). Nobody
    answers: read results back by unicast. Procedure calls take their PSN
    from one counter shared by every GroupSender (128 ... 255, away from the
    unicast clients' low numbers): a meter refuses a BT07 write whose PSN
    equals its last one, and a broadcast cannot see that refusal.

    AES mode (``aes``, default the DC's: docs/security-modes.md): the
    requests are sealed under the AES key derived from the broadcast key,
    the nonce carrying the broadcast flag and an all-zero identity. ``size``
    (the ISO/IEC 14908 group's size, its members joined with their member
    numbers): the requests go as group REQUESTs instead and every member
    answers, under its own Neuron ID in AES mode; ``answers`` then holds
    {Target: plaintext response or PlcError} of the last request and
    ``refused`` counts the members that answered 0x0B (e.g. an RC4 request
    to meters in AES mode)."""

    _psn = [127]

    def __init__(self, dc, group_id, key, seq=0, repeat=1, aes=None, size=None):
        from osgp_meter import groups
        from osgp_meter.lontalk import AF_GROUP
        self.dc = dc
        self.group_id = group_id & 0xFFFF
        self.dest = groups.destination(self.group_id)
        self.aes = bool(getattr(dc, "aes", False) if aes is None else aes)
        self.security = PlcSecurity(key, seq, aes=self.aes, broadcast=True)
        self.repeat = repeat
        self.psn = None               # the PSN of the last call
        self.sent = 0
        self.size = size
        if size is not None:
            if self.dest[0] != AF_GROUP or not 1 <= size <= 64:
                raise ValueError("answered group requests: a 14908 group (not 0xFFxx) of 1-64")
            self.dest = (AF_GROUP, self.dest[1], size)
        self.answers = {}
        self.refused = 0

    @property
    def seq(self):
        """The sequence number of the last request sent."""
        return self.security.seq

    def send(self, req):
        """One C12 request (code + args); returns its APDU."""
        from osgp_meter.plc_node import UNACKD, UNACKD_RPT
        r = self.security.build(bytes(req))
        self.sent += 1
        if self.size is not None:
            self._collect(r)
            return r.apdu
        self.dc.transaction(self.dest, r.apdu, UNACKD_RPT if self.repeat else UNACKD,
                            retries=self.repeat, timeout_ms=96)
        self.dc.idle(200 * (1 + self.repeat))      # let the copies leave before the next
        return r.apdu

    def _collect(self, r):
        """A group REQUEST: each member's answer, checked under its own
        Neuron ID (AES) into ``answers``. A member's 0x0C (outside its
        broadcast window) is its answer too: a broadcast is not re-synced."""
        # members answer at once and collide: retries (the M_List names who
        # is still missing; a member re-sends its cached answer) at least the DC's
        _, tx = self.dc.transaction(self.dest, r.apdu, REQUEST,
                                    retries=min(15, max(self.repeat, self.dc.tx_retries)))
        self.answers = {}
        for f, apdu in (tx.responses if tx is not None else ()):
            at = (f.src_subnet, f.src_node)
            name = next((k for k, v in (self.dc.names or {}).items()
                         if parse_meter(v).key == at), None)
            t = Target(at[0], at[1], name=name)
            try:
                nid = self.dc.neuron_id(t) if self.aes else None
                self.answers[t] = r.verify(apdu, str(t), nid)
            except PlcError as exc:
                self.answers[t] = exc
                if exc.code == 0x0B:
                    self.refused += 1

    def change_key(self, new_key, kek=None):
        """EP15 key_id 1 by broadcast: every member's broadcast key becomes
        `new_key`, wrapped under `kek` (default: the key this sender uses)
        as the mode wants (AES: aes_mode.wrap_key); the sender then goes on
        with the new key and its sequence numbers."""
        from osgp_meter import keys as keymgmt
        kek = self.security.key if kek is None else bytes(kek)
        if self.aes:
            from osgp_meter import aes_mode
            params = b"\x01" + aes_mode.wrap_key(kek, keymgmt.EP15, 1, new_key)
        else:
            params = keymgmt.change_params(kek, keymgmt.EP15, 1, new_key)
        apdu = self.call(keymgmt.EP15, params)
        self.security = PlcSecurity(new_key, self.security.seq, aes=self.aes, broadcast=True)
        return apdu

    def write(self, table, data, offset=None):
        from .plc_client import write_request
        return self.send(write_request(table_id(table), data, offset))

    def call(self, procedure, params=b""):
        """A procedure: a BT07 write (its result is each meter's BT08)."""
        import struct
        from .plc_client import write_request
        p = GroupSender._psn
        p[0] = 128 if p[0] >= 255 else p[0] + 1
        self.psn = p[0]
        return self.send(write_request(7, struct.pack("<HB", procedure_number(procedure), self.psn)
                                       + bytes(params)))


# ---------------------------------------------------------------- a local fleet

def meter_address(k):
    """(subnet, node) of the k-th meter (1-based) of a local fleet: 1/1 ..
    1/100, 2/1 ... (emulator choice; the DC is 1/126)."""
    return 1 + (k - 1) // 100, 1 + (k - 1) % 100


def meter_neuron_id(k):
    """The k-th local meter's Neuron ID: 00 E0 + k (4 bytes), emulator."""
    return bytes((0x00, 0xE0)) + k.to_bytes(4, "big")


class MeterNode:
    """A Firmware meter on the channel: its PLC node plus the meter's own
    time-based work (fw.tick at the meter's deadlines)."""

    __slots__ = ("fw", "plc", "due")

    def __init__(self, fw, now_ms):
        self.fw = fw
        self.plc = fw.plc
        self.due = fw.tick(now_ms)

    def _due(self):
        due = self.due
        b = self.fw.meter.banks          # a new image's confirmation (meter/codebank.py)
        if b is not None and b.deadline is not None and (due is None or b.deadline < due):
            return b.deadline
        return due

    @property
    def deadline(self):
        d = self.plc.deadline
        due = self._due()
        if due is not None and (d is None or due < d):
            return due
        return d

    def receive(self, frame, now_ms, rssi_db=None, snr_db=None):
        out = self.plc.receive(frame, now_ms, rssi_db, snr_db)
        # a request may have scheduled work (a pending table's activation
        # second, docs/pending-tables.md): ask the meter again when to wake it
        self.due = self.fw.tick(now_ms)
        return out

    def poll(self, now_ms):
        due = self._due()
        if due is not None and due <= now_ms:
            self.due = self.fw.tick(now_ms)
        return self.plc.poll(now_ms)

    def on_sent(self, frame, now_ms):
        return self.plc.on_sent(frame, now_ms)


class LocalFleet:
    """A channel with a Firmware meter at every meter position of a topology,
    commissioned directly (node.commission; discovery is another module's
    job) in ``domain`` at meter_address(k), and an AddressBook filter that
    always lets the DC position hear. ``addresses``: {position id: (subnet,
    node)}; ``meters``: position ids in order; ``firmware``: {id: Firmware}.
    ``exclude``: positions left without a meter (e.g. for a modem)."""

    def __init__(self, topology="small", seed=None, profile=None, domain=DEFAULT_DOMAIN,
                 count=None, metering=None, exclude=()):
        from osgp_meter.firmware import Firmware
        from . import profile as profiles
        from .channel import Channel
        from .topology import Topology
        if isinstance(topology, str) and not os.path.exists(topology):
            topology = Topology.named(topology)
        self.channel = ch = Channel(topology, seed)
        topo = ch.topology
        self.dc_id = next((n.id for n in topo.nodes if n.role == "dc"), None)
        data = profiles.load(profile)
        cfg = profiles.to_config(data)
        if not data.get("clock", {}).get("start"):
            cfg["clock"] = ch.now_ms // 1000      # the meters' clocks start at virtual 0
        if metering is not None:
            cfg["metering"] = metering
        self.key = cfg["keys"].get(ROLE_PLC, DEFAULT_KEY)
        self.bcast_key = cfg["keys"].get(ROLE_BCAST)     # broadcasts (tools/fw_download.py)
        self.aes = data.get("security", {}).get("mode") == "aes"    # meters in AES mode
        self.neuron_ids = {}                              # {(subnet, node): Neuron ID}
        self.domain = bytes(domain)
        self.book = AddressBook()
        self.meters = []
        self.addresses = {}
        self.firmware = {}
        k = 0
        for spec in topo.nodes:
            if spec.role == "dc" or spec.id in exclude:
                continue
            if count is not None and k >= count:
                break
            k += 1
            subnet, node = meter_address(k)
            c = dict(cfg, plc=True, neuron_id=meter_neuron_id(k), plc_domain=self.domain,
                     plc_subnet=subnet, plc_node=node)
            fw = Firmware(c, ch.now_ms)
            ch.attach(spec.id, MeterNode(fw, ch.now_ms))
            self.book.add(spec.id, fw.plc)
            self.meters.append(spec.id)
            self.addresses[spec.id] = (subnet, node)
            self.neuron_ids[(subnet, node)] = c["neuron_id"]
            self.firmware[spec.id] = fw
        if self.dc_id is not None:
            self.book.always.append(self.dc_id)
        ch.address_filter = self.book.filter

    def dc(self, **kw):
        """A DC at the topology's DC position, with this fleet's key, names,
        security mode and Neuron IDs."""
        kw.setdefault("key", self.key)
        kw.setdefault("aes", self.aes)
        kw.setdefault("neuron_ids", lambda t: self.neuron_ids.get(t.key))
        kw.setdefault("names", self.addresses)
        kw.setdefault("domain", self.domain)
        return DC(self.channel, kw.pop("node_id", self.dc_id or "dc"), **kw)


# ---------------------------------------------------------------- the CLI

def _int(text):
    return int(text, 0)


def _hex(text):
    try:
        return bytes.fromhex(text.replace(" ", "").replace(":", ""))
    except ValueError:
        raise argparse.ArgumentTypeError("not hex: %r" % text) from None


def _hostport(text, default_port=cnip.PORT):
    """"HOST:PORT", "HOST" or "PORT" -> (host, port); 127.0.0.1 and 1628 by default."""
    text = str(text)
    if text.isdigit():
        return "127.0.0.1", int(text)
    host, sep, port = text.rpartition(":")
    if not sep:
        return text or "127.0.0.1", default_port
    return host or "127.0.0.1", int(port)


def add_parser(sub):
    """`osgp-meter dc …`."""
    d = sub.add_parser("dc", help="data concentrator: read/write/call meters over PLC",
                       description="A data concentrator on the virtual PLC channel: over CN/IP "
                                   "to a gateway (default 127.0.0.1:1628, e.g. `osgp-meter "
                                   "gateway`), or on a channel it hosts itself (--local).")
    where = d.add_mutually_exclusive_group()
    where.add_argument("--cnip", metavar="HOST[:PORT]", default=None,
                       help="CN/IP gateway to talk through (default 127.0.0.1:1628)")
    where.add_argument("--local", action="store_true",
                       help="host a channel with a commissioned meter at every meter position "
                            "of --topology")
    d.add_argument("--topology", default="small",
                   help="--local: a topology name (small, default, hidden) or file (default small)")
    d.add_argument("--seed", type=int, help="channel seed (--local)")
    d.add_argument("--profile", help="device profile: the meters' (--local) and the default key")
    d.add_argument("--key", type=_hex, help="the 12-byte PLC unicast key as hex")
    d.add_argument("--inventory", metavar="CSV", help="per-meter keys from a fleet inventory "
                   "(`osgp-meter fleet --inventory`); meters it lacks use --key / the profile's")
    d.add_argument("--shard", help="--inventory: the shard (transformer id or index) whose "
                   "subnet/node addresses to use (default: the one on the --cnip port)")
    d.add_argument("--encrypt", action="store_true", help="RC4-encrypt requests")
    d.add_argument("--aes", action="store_true", default=None,
                   help="AES security mode (default: when the profile's [security] mode is aes)")
    d.add_argument("--seq", type=_int, help="sequence number to start from (default 0; 0x0C re-syncs)")
    d.add_argument("--retries", type=int, default=DEFAULT_RETRIES,
                   help="re-sends of the same request after a failed transaction (default 2)")
    d.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT_MS, metavar="MS",
                   help="wait for an answer to one transmission (default 768 ms)")
    d.add_argument("--tx-retries", type=int, default=DEFAULT_TX_RETRIES,
                   help="LonTalk retries within one transaction (default 3)")
    d.add_argument("--domain", type=_hex, default=DEFAULT_DOMAIN, help="domain ID as hex (default 42)")
    d.add_argument("--address", default="%d/%d" % (DC_SUBNET, DC_NODE),
                   help="the DC's subnet/node (default 1/126)")
    d.add_argument("--max-read", type=int, default=MAX_READ)
    d.add_argument("--max-write", type=int, default=MAX_WRITE)
    d.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    acts = d.add_subparsers(dest="action", required=True)
    meters_help = "meters: 1/5, 1/1-20, nid:<12 hex>, names like m005 or m001-m010 (--local), all"
    r = acts.add_parser("read", help="read a table (whole, or --offset/--count)")
    r.add_argument("meters", help=meters_help)
    r.add_argument("table", help="BTnn, ETnn, a number, or a catalogue name")
    r.add_argument("--offset", type=_int)
    r.add_argument("--count", type=_int)
    r.add_argument("--raw", action="store_true", help="hex only, no decoded fields")
    w = acts.add_parser("write", help="write a table (whole, or from --offset)")
    w.add_argument("meters", help=meters_help)
    w.add_argument("table")
    w.add_argument("data", type=_hex, help="table bytes as hex, little-endian as stored")
    w.add_argument("--offset", type=_int)
    from . import dc_life       # pending writes, PEDs, txn, lifecycle (docs/dc.md)
    dc_life.add_write_arguments(w)
    c = acts.add_parser("call", help="run a procedure through BT07/BT08")
    c.add_argument("meters", help=meters_help)
    c.add_argument("procedure", help="BPnn, EPnn, a number, or a catalogue name")
    c.add_argument("params", nargs="?", type=_hex, default=b"", help="parameters as hex")
    c.add_argument("--psn", type=_int)
    dc_life.add_ped_arguments(c, "BP13/BP15 (a PED after the parameters)")
    dc_life.add_parsers(acts, meters_help)
    disc = acts.add_parser("discover", help="--local: discover and commission factory-fresh meters, "
                                            "print the topology (paths, hops, margins)")
    disc.add_argument("--json", action="store_true")
    dl = acts.add_parser("download", help="firmware download: EP08/EP09 (broadcast and/or "
                                          "unicast), ET17 repairs, EP10 (docs/firmware-download.md)")
    from . import fw_download
    fw_download.add_arguments(dl)
    s = acts.add_parser("status", help="ND query status of meters (reachability, counters)")
    s.add_argument("meters", nargs="?", default=None, help=meters_help + " (default: all, --local)")
    return d


class _Progress:
    """The one-line progress display on stderr ("read 37/50, 1 failed")."""

    def __init__(self, verb, err=None, quiet=False):
        self.verb = verb
        self.err = err or sys.stderr
        self.quiet = quiet
        self.failed = 0
        self.tty = hasattr(self.err, "isatty") and self.err.isatty()
        self._last = 0.0

    def __call__(self, done, total, target, result):
        if isinstance(result, Exception):
            self.failed += 1
        if self.quiet or total < 2 or not self.tty:
            return
        now = time.monotonic()
        if done == total or now - self._last > 0.1:
            self._last = now
            self.err.write("\r%s %d/%d%s" % (self.verb, done, total,
                                             ", %d failed" % self.failed if self.failed else ""))
            self.err.flush()

    def end(self, total, virtual_s, wall_s):
        if self.quiet:
            return
        if self.tty and total > 1:
            self.err.write("\r")
        took = ("%.1f s virtual, %.2f s wall" % (virtual_s, wall_s) if virtual_s is not None
                else "%.2f s" % wall_s)
        self.err.write("%s %d/%d meters: %d ok, %d failed (%s)\n"
                       % (self.verb, total, total, total - self.failed, self.failed, took))
        self.err.flush()


def _print_table(tid, data, offset, raw, out, prefix=""):
    entry = catalogue.lookup_table(tid)
    label = entry["label"] if entry else "table %d" % tid
    name = entry["name"] if entry else ""
    print("%s%s %s: %d bytes from offset %d" % (prefix, label, name, len(data), offset), file=out)
    print("  hex: %s" % (data.hex(" ") or "(none)"), file=out)
    if raw or entry is None:
        return
    for field in catalogue.decode_table(tid, data, offset):
        print("  %5d  %-32s %s" % (field["offset"], field["name"], field["text"]), file=out)


def build_dc(args, err=None):
    """(dc, fleet or None) from the parsed `osgp-meter dc` options."""
    from . import profile as profiles
    m = _SN.fullmatch(args.address)
    if not m:
        raise ValueError("--address: subnet/node expected, got %r" % args.address)
    common = dict(encrypt=args.encrypt, seq=args.seq, retries=args.retries,
                  timeout_ms=args.timeout, tx_retries=args.tx_retries, domain=args.domain,
                  subnet=int(m.group(1)), node=int(m.group(2)), max_read=args.max_read,
                  max_write=args.max_write)
    if getattr(args, "aes", None) is not None:
        common["aes"] = args.aes
    inv = _inventory(args, err)
    if inv is not None:
        common["keys"] = inv
    if args.local:
        fleet = LocalFleet(args.topology, args.seed, args.profile, args.domain)
        if args.key is not None:
            common["key"] = args.key
        return fleet.dc(**common), fleet
    key = args.key
    data = profiles.load(args.profile)
    common.setdefault("aes", data.get("security", {}).get("mode") == "aes")
    if key is None:
        key = profiles.parse_key(data["keys"]["plc_unicast"], "plc_unicast")
    if inv is not None:
        common["neuron_ids"] = inv.neuron_id      # AES nonces without an NM query
    return DC(cnip=_hostport(args.cnip or "127.0.0.1"), key=key, **common), None


def _inventory(args, err=None):
    """`--inventory CSV` (a fleet's, docs/fleet.md) as a DC `keys` function, or None."""
    path = getattr(args, "inventory", None)
    if not path:
        return None
    from .fleet_lookup import Inventory
    err = err or sys.stderr
    port = None if args.local else _hostport(args.cnip or "127.0.0.1")[1]
    fallback = "--key" if args.key is not None else "the profile's plc_unicast key"

    def warn(msg):
        print(msg, file=err)
        err.flush()
    return Inventory.load(path, port=port, shard=getattr(args, "shard", None), warn=warn,
                          fallback=fallback)


def run(args, out=None, err=None):
    """`osgp-meter dc …`; returns the exit status (0: every meter answered OK)."""
    from . import crypto_backend
    out = out or sys.stdout
    err = err or sys.stderr
    if args.action == "discover":
        from . import dc_discover
        return dc_discover.run(args, out, err)
    if args.action == "download":
        from . import fw_download, dc_life
        dc_life.check_image(args, err)        # the profile's download key (warning only)
        return fw_download.run(args, out, err)
    if args.action == "group":
        from . import dc_life
        return dc_life.run_group(args, out, err)
    crypto_backend.install()
    dc, fleet = build_dc(args, err)
    try:
        spec = args.meters if args.meters is not None else "all"
        targets = parse_meters(spec, dc.names, fleet.meters if fleet else None)
        many = len(targets) > 1
        from . import dc_life
        verb = {"read": "read", "write": "wrote", "call": "called",
                "status": "status"}.get(args.action) or dc_life.VERBS[args.action]
        prog = _Progress(verb, err, args.quiet)
        v0, w0 = dc.now_ms, time.monotonic()

        life_fn = dc_life.action(args, dc, out, many)    # write --pending, txn, lifecycle
        if life_fn is not None:
            fn = life_fn
        elif args.action == "read":
            tid = table_id(args.table)

            def fn(t):
                data = dc.read(t, tid, args.offset, args.count)
                if many:
                    print("%s: %s" % (t, data.hex(" ")), file=out)
                else:
                    _print_table(tid, data, args.offset or 0, args.raw, out, "%s " % t)
                return data
        elif args.action == "write":
            tid = table_id(args.table)

            def fn(t):
                dc.write(t, tid, args.data, args.offset)
                print("%s: %s written, %d bytes at offset %d" % (
                    t, args.table, len(args.data), args.offset or 0), file=out)
        elif args.action == "call":
            number = procedure_number(args.procedure)
            params = dc_life.call_params(args)    # + the PED of --at/--after/... (BP13/BP15)

            def fn(t):
                result, data = dc.call(t, number, params, args.psn)
                print("%s: %s result %d (%s), data %s" % (
                    t, args.procedure, result, RESULTS.get(result, "?"), data.hex(" ") or "-"),
                    file=out)
                if result:
                    raise PlcError(0x04, "procedure result %d" % result, str(t))
                return result
        else:
            def fn(t):
                s0 = dc.now_ms
                st = dc.status(t)
                print("%s: answered in %d ms; state %d, reset cause 0x%02X, tx errors %d, "
                      "timeouts %d, rx full %d, lost %d, missed %d" % (
                          t, dc.now_ms - s0, st.node_state, st.reset_cause, st.tx_errors,
                          st.timeouts, st.rx_full, st.lost, st.missed), file=out)
                return st
        results = dc.for_each(targets, fn, prog)
        for t, r in results:
            if isinstance(r, PlcError):
                print("%s: error: %s" % (t, r), file=out if many else err)
        prog.end(len(targets), (dc.now_ms - v0) / 1000.0 if fleet else None, time.monotonic() - w0)
        failed = sum(1 for _, r in results if isinstance(r, PlcError))
        return 0 if not failed else 1
    finally:
        dc.close()


RESULTS = {0: "completed", 1: "accepted, not complete", 2: "invalid parameter",
           3: "conflicts with setup", 4: "timing constraint", 5: "no authorization",
           6: "unrecognized procedure"}
