"""The client side of the OSGP application profile on PLC (a data
concentrator's security layer): it builds request APDUs with their sequence
number and OMA digest (RC4 optional), checks the answers, applies the 0x0C
re-sync rule, and offers read / write / call on top, as ``mep_client`` does
for the MEP port. The bytes are those of docs/plc-osgp-profile.md (an
EMULATOR PROFILE: the ETSI message layout on PLC is not public); the digest
and the cipher are the core's (``osgp_meter.digest``, ``osgp_meter.cipher``),
never a copy.

    request APDU   code | args | seq(4, MSB) | digest(8)
    response APDU  response | digest(8), digest over request || response
    RC4            the first byte stays clear; request args..seq under
                   plc_key(base, request digest), response data under
                   plc_key(base, response digest); digests cover plaintext

AES security mode (``aes=True``, docs/security-modes.md, also an emulator
profile): ``code | CCM(args) | seq | tag(8)`` under the AES key derived from
the PLC key, the meter's Neuron ID in the nonce (``neuron_id``);
``osgp_meter.aes_mode`` builds and checks the bytes. A request under the
broadcast key (``broadcast=True``: group- or broadcast-addressed) carries an
all-zero identity and the broadcast flag in its nonce; each member answers
a group REQUEST under its own Neuron ID, which ``Request.verify`` takes as
``neuron_id``.

How the APDU travels is not this module's business: ``PlcClient`` takes an
``exchange(apdu) -> response APDU or None`` function (None: no answer after
the transport's own retries). ``osgp_host.dc`` supplies one that sends a
LonTalk REQUEST on a channel or over CN/IP.

Sequence numbers: one per request, +1 each time. A client that does not know
the meter's number starts from ``seq`` (default 0, so the first request
carries 1: a fresh meter's ET04.0 is 0); the meter answers 0x0C with the
number it holds and the client retries once with that number + 1 (the MEP
rule [MEP p.11, p.15], which the profile keeps on PLC). A retry of a request
that got no answer re-sends the same bytes (same sequence number and digest):
the meter answers a repeat of its last accepted request from its cache and
runs nothing.
"""
import struct

from osgp_meter import cipher
from osgp_meter.digest import OmaDigest
from osgp_meter.services import code_name

BT07 = 7
BT08 = 8
R_OK = 0x00
R_ONP = 0x04          # operation not possible (e.g. a read longer than the port allows)
R_AUTH = 0x0B
R_SEQ = 0x0C
ZERO8 = bytes(8)
MAX_READ = 84         # the PLC port's limits [SEED]; configurable per client
MAX_WRITE = 75


class PlcError(Exception):
    """The meter answered a non-zero response code (``code``), or the answer
    could not be used. ``meter`` names the target when the DC knows it."""

    def __init__(self, code, message=None, meter=None):
        self.code = code
        self.meter = meter
        text = message or "meter answered 0x%02X (%s)" % (code, code_name(code))
        if meter is not None:
            text = "%s: %s" % (meter, text)
        super().__init__(text)


class PlcTimeout(PlcError):
    """No answer: every try of the request went unanswered."""

    def __init__(self, message=None, meter=None):
        super().__init__(-1, message or "no answer from the meter", meter)


class PlcAuthError(PlcError):
    """0x0B: the meter could not verify the request (wrong key, RC4 refused,
    AES mode), or the answer's digest does not verify with our key."""

    def __init__(self, message=None, meter=None):
        super().__init__(R_AUTH, message, meter)


class PlcSequenceError(PlcError):
    """0x0C after the re-sync retry: the meter keeps refusing our sequence
    number. ``seq`` is the number the meter says it holds."""

    def __init__(self, seq, meter=None):
        self.seq = seq
        super().__init__(R_SEQ, "sequence number refused twice (meter holds %d)" % seq, meter)


def error_for(rsp, meter=None):
    """The exception for a non-OK plaintext response (code + data)."""
    code = rsp[0]
    if code == R_AUTH:
        return PlcAuthError(meter=meter)
    if code == R_SEQ and len(rsp) >= 5:
        return PlcSequenceError(int.from_bytes(rsp[1:5], "big"), meter)
    return PlcError(code, meter=meter)


class Request:
    """One secured request: ``apdu`` (what goes on the wire, the same bytes
    on every retry), ``seq``, and what ``verify`` needs to check the answer."""

    __slots__ = ("apdu", "seq", "digest", "_stream", "_base", "_aes")

    def __init__(self, apdu, seq, digest, stream, base, aes=None):
        self.apdu = apdu
        self.seq = seq
        self.digest = digest
        self._stream = stream
        self._base = base
        self._aes = aes                    # AES mode: (CCM, nonce identity[, flags])

    def verify(self, answer, meter=None, neuron_id=None):
        """The plaintext response (code [count data]) of an answer APDU;
        raises PlcAuthError for a 0x0B answer or a digest that does not
        verify, PlcError(0x01) for an APDU too short to be an answer.
        ``neuron_id``: the answering member's (6 bytes) for a request sent
        under the broadcast key in AES mode (each answers under its own)."""
        answer = bytes(answer)
        if len(answer) < 9:
            raise PlcError(0x01, "answer too short: %s" % answer.hex(" "), meter)
        body, dig = answer[:-8], answer[-8:]
        if body == b"\x0b" and dig == ZERO8:
            raise PlcAuthError(meter=meter)
        if self._aes is not None:
            from osgp_meter import aes_mode
            c, ident = self._aes[0], self._aes[1]
            flags = self._aes[2] if len(self._aes) > 2 else aes_mode.F_PLC
            if neuron_id is not None:
                ident = b"\x00\x00" + _nid(neuron_id)
            elif flags & aes_mode.F_BCAST:
                raise ValueError("an answer to a broadcast-key request: which member's Neuron ID?")
            plain = aes_mode.open_answer(c, flags, ident, self.seq, answer)
            if plain is None:
                raise PlcAuthError("the answer's tag does not verify (wrong key or Neuron ID?)", meter)
            return plain
        plain = body
        if self._base is not None:
            plain = body[:1] + cipher.plc_decrypt(self._base, body[1:], dig)
        st = self._stream.start()
        st.update(plain)
        if st.finish() != dig:
            raise PlcAuthError("the answer's digest does not verify (wrong key?)", meter)
        return plain


def _nid(neuron_id):
    nid = bytes(neuron_id)
    if len(nid) != 6:
        raise ValueError("a Neuron ID is 6 bytes")
    return nid


class PlcSecurity:
    """Per-meter client security state: the 12-byte PLC key (unicast or
    broadcast), the last sequence number used, RC4 on or off, AES mode.

    ``broadcast``: the key is the broadcast key and the requests go group-
    or broadcast-addressed (GroupSender, fw_download.Broadcaster). In RC4
    mode that changes no byte; in AES mode the request nonce takes the
    broadcast flag and 8 zero bytes for the identity (no ``neuron_id``:
    one message for every member), docs/security-modes.md."""

    def __init__(self, key, seq=None, encrypt=False, aes=False, neuron_id=None, broadcast=False):
        key = bytes(key)
        if len(key) != 12:
            raise ValueError("a PLC key is 12 bytes (got %d)" % len(key))
        self.key = key
        self.digest = OmaDigest(key)
        self.base = cipher.plc_base_key(key) if encrypt else None
        self.seq = 0 if seq is None else seq & 0xFFFFFFFF
        self.broadcast = bool(broadcast)
        self.aes = None                    # AES mode: (CCM, nonce identity, nonce flags)
        if aes:
            from osgp_meter import aes_mode
            if broadcast:
                if neuron_id is not None:
                    raise ValueError("a broadcast-key request names no Neuron ID")
                ident, flags = aes_mode.NO_ID, aes_mode.F_PLC | aes_mode.F_BCAST
            else:
                ident = b"\x00\x00" + _nid(neuron_id if neuron_id is not None else bytes(6))
                flags = aes_mode.F_PLC
            self.aes = (cipher.new_aes_ccm(aes_mode.derive_key(key)), ident, flags)

    @property
    def encrypt(self):
        return self.base is not None

    def build(self, req, seq=None):
        """A Request for the C12 request bytes `req` (code + args) with the
        next sequence number (or `seq`)."""
        if seq is None:
            seq = self.seq = (self.seq + 1) & 0xFFFFFFFF
        if self.aes is not None:
            from osgp_meter import aes_mode
            apdu = aes_mode.seal_request(self.aes[0], self.aes[2], self.aes[1], req, seq)
            return Request(apdu, seq, apdu[-8:], None, None, self.aes)
        msg = bytes(req) + struct.pack(">I", seq)
        st = self.digest.start(msg)
        dig = st.finish_copy()
        body = msg
        if self.base is not None:
            body = msg[:1] + cipher.plc_encrypt(self.base, msg[1:], dig)
        return Request(body + dig, seq, dig, _Stream(self.digest, msg), self.base)


class _Stream:
    """The request's digest stream, restartable: Request.verify may see
    several answers (a stale one first), and each continues the request."""

    __slots__ = ("_digest", "_msg")

    def __init__(self, digest, msg):
        self._digest = digest
        self._msg = msg

    def start(self):
        return self._digest.start(self._msg)


def read_request(table, offset=None, count=None):
    """0x30 table(2) for a full read, else 0x3F table(2) offset(3) count(2)."""
    if offset is None and count is None:
        return struct.pack(">BH", 0x30, table)
    off = offset or 0
    return struct.pack(">BHBHH", 0x3F, table, off >> 16, off & 0xFFFF, count or 0)


def write_request(table, data, offset=None):
    """0x40 table(2) count(2) data for a full write, else 0x4F table(2)
    offset(3) count(2) data."""
    data = bytes(data)
    if offset is None:
        return struct.pack(">BHH", 0x40, table, len(data)) + data
    return struct.pack(">BHBHH", 0x4F, table, offset >> 16, offset & 0xFFFF, len(data)) + data


def read_data(rsp):
    """Table bytes of an OK read response (00 count(2) data)."""
    n = (rsp[1] << 8) | rsp[2] if len(rsp) >= 3 else 0
    if len(rsp) < 3 + n:
        raise PlcError(0x01, "read answer shorter than its count: %s" % rsp.hex(" "))
    return rsp[3:3 + n]


class PlcClient:
    """read / write / call on one meter through ``exchange(apdu) -> answer
    APDU or None``. Mirrors ``mep_client.MepClient``.

    ``max_read`` / ``max_write``: the PLC port's limits (84 / 75 bytes, the
    seed's figures); whole-table reads and writes larger than that are split
    into partial ones. ``size_of(table) -> int or None``: the table's size
    when known (the DC asks the catalogue, with the meter's own dimension
    fields); without it a whole-table read is one 0x30 request.
    """

    def __init__(self, exchange, key, seq=None, encrypt=False, resync=True,
                 max_read=MAX_READ, max_write=MAX_WRITE, size_of=None, name=None):
        self.exchange = exchange
        self.security = key if isinstance(key, PlcSecurity) else PlcSecurity(key, seq, encrypt)
        self.resync = resync
        self.max_read = max_read
        self.max_write = max_write
        self.size_of = size_of
        self.name = name
        self.psn = 0
        self.requests = 0          # requests sent (re-syncs included)
        self.resyncs = 0

    # -- one exchange -----------------------------------------------------------
    def request(self, req):
        """Send a C12 request; the plaintext answer (code [count data]),
        digest checked. Raises PlcTimeout, PlcAuthError, PlcSequenceError
        (0x0C twice); other codes are returned for the caller to judge."""
        resynced = False
        while True:
            r = self.security.build(req)
            self.requests += 1
            answer = self.exchange(r.apdu)
            if answer is None:
                raise PlcTimeout(meter=self.name)
            rsp = r.verify(answer, self.name)
            if rsp[0] == R_SEQ and len(rsp) == 5:
                held = int.from_bytes(rsp[1:5], "big")
                if self.resync and not resynced:
                    self.security.seq = held       # the next request carries held + 1
                    self.resyncs += 1
                    resynced = True
                    continue
                raise PlcSequenceError(held, self.name)
            return rsp

    def _check(self, rsp):
        if rsp[0] != R_OK:
            raise error_for(rsp, self.name)
        return rsp

    # -- table services -----------------------------------------------------------
    def read(self, table, offset=None, count=None, size=None):
        """Table bytes. offset and/or count: a partial read (offset 0, count
        max_read by default), split when count > max_read. Neither: the whole
        table, in pieces of max_read bytes when its size (``size`` or
        ``size_of``) is larger than that; a table of unknown size is read
        with 0x30."""
        if offset is None and count is None:
            if size is None and self.size_of is not None:
                size = self.size_of(table)
            if size is None or size <= self.max_read:
                return read_data(self._check(self.request(read_request(table))))
            offset, count = 0, size
        offset = offset or 0
        if count is None:
            count = self.max_read
        out = bytearray()
        while True:
            n = min(count - len(out), self.max_read)
            out += read_data(self._check(self.request(read_request(table, offset + len(out), n))))
            if len(out) >= count:
                return bytes(out)

    def write(self, table, data, offset=None):
        """Write table bytes: a full write (0x40) when offset is None and the
        data fit in max_write, else partial writes (0x4F) of at most
        max_write bytes from `offset` (0). A split write is not atomic: a
        failure leaves the pieces before it written."""
        data = bytes(data)
        if offset is None and len(data) <= self.max_write:
            self._check(self.request(write_request(table, data)))
            return
        offset = offset or 0
        done = 0
        while True:
            piece = data[done:done + self.max_write]
            self._check(self.request(write_request(table, piece, offset + done)))
            done += len(piece)
            if done >= len(data):
                return

    def call(self, number, params=b"", psn=None):
        """Run a procedure: write BT07 (number(2, LE) | PSN | parameters),
        read BT08 (number(2) | PSN | result | response data). Returns
        (result, data). Consecutive PSNs must differ [MEP p.52]: the client
        steps its own PSN (1..255) and, when the meter refuses the write with
        0x04 (a PSN equal to its last one), steps once more and tries again."""
        params = bytes(params)
        if psn is None:
            self.psn = self.psn % 255 + 1
            try:
                self.write(BT07, struct.pack("<HB", number, self.psn) + params)
            except PlcError as exc:
                if exc.code != R_ONP:
                    raise
                self.psn = self.psn % 255 + 1
                self.write(BT07, struct.pack("<HB", number, self.psn) + params)
            psn = self.psn
        else:
            self.write(BT07, struct.pack("<HB", number, psn) + params)
        rsp = self.read(BT08, size=self.max_read)      # BT08 fits one read
        if len(rsp) < 4 or (rsp[0] | (rsp[1] << 8)) & 0x0FFF != number or rsp[2] != psn:
            raise PlcError(R_ONP, "BT08 does not hold this procedure's answer", self.name)
        return rsp[3], rsp[4:]
