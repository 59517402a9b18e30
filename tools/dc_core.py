# The data concentrator itself (class DC): secured OSGP reads, writes and
# procedure calls to meters over a link (the module docstring of tools/dc.py).
# Split out of tools/dc.py (docs/dc.md); importable from osgp_host.dc too.
import math

from osgp_meter import lontalk_nm as N
from osgp_meter.lontalk import FrameError
from osgp_meter.plc_node import PlcNode, REQUEST

from . import catalogue
from .plc_client import PlcClient, PlcSecurity, PlcError, PlcTimeout, MAX_READ, MAX_WRITE
from .dc_address import (DEFAULT_DOMAIN, DC_SUBNET, DC_NODE, DC_NEURON_ID, DEFAULT_KEY,
                         DEFAULT_TIMEOUT_MS, DEFAULT_TX_RETRIES, DEFAULT_RETRIES, timer_index,
                         parse_meter, table_id, procedure_number)
from .dc_link import ChannelLink, CnipLink
from .dc_group import GroupSender


# ---------------------------------------------------------------- the DC

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
