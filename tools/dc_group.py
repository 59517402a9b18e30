# GroupSender: a DC's secured OSGP requests to an OSGP group ID under the
# broadcast key (docs/groups-and-broadcast.md).
# Split out of tools/dc.py (docs/dc.md); importable from osgp_host.dc too.
from osgp_meter.plc_node import REQUEST

from .plc_client import PlcSecurity, PlcError
from .dc_address import Target, parse_meter, table_id, procedure_number


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
