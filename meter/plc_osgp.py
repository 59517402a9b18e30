# The OSGP application profile on the PLC port, sans-IO: C12 table services
# in LonTalk APDUs with sequence numbers, OMA digests and optional RC4.
#
# EMULATOR PROFILE. ETSI TS 104 001 clause 9 (the OSGP message layout on
# PLC) is not public. This follows the hypothesis of reference
# lontalk-transport-security.md 3.2 and keeps the MEP port's rules [MEP]
# wherever PLC needs one; docs/plc-osgp-profile.md gives it byte by byte.
#
#   request APDU   code | args | seq(4, MSB) | digest(8)
#                  code: 0x30, 0x3F, 0x40, 0x4F, used directly as the LonTalk
#                  message code; digest = OMA digest (12-byte PLC key) over
#                  code..seq, nothing prefixed (the MEP form, so the MEP and
#                  reference test vectors carry over)
#   response APDU  response | digest(8); digest over request || response as
#                  one stream (code..seq of the request, then the response)
#   RC4            optional per request, detected by trying (plain first, or
#                  the mode the last request used). The first APDU byte (the
#                  message code, the response code) stays clear: the LonTalk
#                  layer dispatches on it, so an encrypted code could land in
#                  the NM range. The request's args..seq are RC4 under
#                  plc_key(base, request digest), the response's data under
#                  plc_key(base, response digest) [F5]: each message carries
#                  its own key in its clear digest; digests cover plaintext.
#                  0x0B answers are plain; 0x0C answers follow the request.
#   keys           unicast / Neuron-ID addressed: the PLC unicast key
#                  (ROLE_PLC); group / broadcast addressed: the broadcast
#                  key (ROLE_BCAST)
#   sequence       unicast: 1..8 ahead of ET04.0 (then ET04.0 := seq), else
#                  0x0C + ET04.0 (MSB first). Broadcast: accepted when in
#                  (last, ET04.82 + ET04.86], last = the last accepted
#                  broadcast number (ET04.82 before the first), else 0x0C +
#                  last. Arithmetic modulo 2^32.
#   replay         an identical retry (same seq and digest as the last
#                  accepted request for that key) gets the cached answer and
#                  runs nothing
#   answers        only to REQUESTs (group requests too, in 2b); ACKD,
#                  UNACKD_RPT and UNACKD requests run without an answer
#   ET04.12 bit 3  "disable PLC encryption": RC4 requests are not tried (they
#                  fail the digest check: 0x0B); plain ones work
#   ET04.127 = 2   AES (OSGP-AES-128-PSK): requests are AES-CCM sealed
#                  instead (meter/aes_mode.py, loaded then; same windows,
#                  retries and counters); every request of this RC4/OMA-
#                  digest suite is refused with a plain 0x0B (stats[4])
#   key usage      KeyRing.note_use per accepted request, mirrored into
#                  ET11.82 (unicast) / ET11.86 (broadcast); on_key_usage
#                  fires at 80 % and 100 % of ET04.123
from . import access
from . import cipher
from .lontalk_transport import REQUEST

ET04 = 2048 + 4
ET04_SEQ = 0
ET04_FLAGS = 12
ET04_BCAST_BASE = 82
ET04_BCAST_DELTA = 86
ET04_MAX_KEY_USE = 123
ET04_SECURITY_MODE = 127
ET11 = 2048 + 11
ET11_UNICAST_USE = 82
ET11_BCAST_USE = 86

FLAG_NO_ENCRYPTION = 0x08    # ET04.12 bit 3
MODE_RC4 = 0
MODE_AES = 2
WINDOW = 8
MIN_REQUEST = 1 + 4 + 8      # code, sequence number, digest

R_AUTH = 0x0B
R_SEQ = 0x0C
_M = 0xFFFFFFFF
_ZERO = bytes(8)


class OsgpPlc:
    """stats: answered (accepted), bad digest, bad sequence, dropped (too
    short), refused (AES mode)."""

    __slots__ = ("execute", "keys", "store", "node", "seq", "stats", "on_key_usage", "on_broadcast",
                 "_last", "_hint", "_bases", "_et04", "_et11", "aes")

    def __init__(self, execute, keys, store=None, node=None):
        self.execute = execute
        self.keys = keys
        self.store = store
        self.node = node              # holds the broadcast sequence (node.bcast_seq) and saves it
        self.on_key_usage = None      # fn(role, usage, limit, now)
        # fn(outcome, seq, now) for every broadcast-key request: 0 accepted,
        # 1 replayed, 2 out of window, 3 bad digest (meter/groups.py counts them)
        self.on_broadcast = None
        self.stats = [0, 0, 0, 0, 0]
        self._last = None             # {role: (seq + digest, answer)}
        self._hint = 0                # bit per role: RC4 verified last (try it first)
        self._bases = None            # {role: (key, PLC RC4 base key)}
        self.aes = None               # AES mode: aes_mode.Suite, made on first use
        self._et04 = store is not None and store.exists(ET04)
        self._et11 = store is not None and store.exists(ET11)
        self.seq = store.field(ET04, ET04_SEQ, 4) if self._et04 else 0
        if self._et11 and keys is not None:
            # the usage counters survive a restart in ET11
            keys.usage[access.ROLE_PLC] = store.field(ET11, ET11_UNICAST_USE, 4)
            keys.usage[access.ROLE_BCAST] = store.field(ET11, ET11_BCAST_USE, 4)

    def _field(self, off, n):
        return self.store.field(ET04, off, n) if self._et04 else 0

    def _base(self, role):
        key = self.keys.get(role)
        if key is None:
            return None
        b = self._bases
        if b is None:
            b = self._bases = {}
        got = b.get(role)
        if got is None or got[0] != key:
            got = (key, cipher.plc_base_key(key))
            b[role] = got
        return got[1]

    def _verify(self, role, msg, digest, encrypted):
        keys = self.keys
        d = keys.digest(role) if keys is not None else None
        if d is None:
            return None
        plain = msg
        if encrypted:
            base = self._base(role)
            if base is None:
                return None
            plain = msg[:1] + cipher.plc_decrypt(base, msg[1:], digest)
        st = d.start(plain)
        if st.finish_copy() != digest:
            return None
        return st, plain

    def handle(self, inc, now):
        """An OSGP request APDU in `inc` (plc_node's Incoming). Returns the
        response APDU, or None (no answer)."""
        apdu = bytes(inc.frame.apdu)
        want = inc.service == REQUEST
        role = access.ROLE_BCAST if inc.multicast else access.ROLE_PLC
        if len(apdu) < MIN_REQUEST:
            self.stats[3] += 1
            return None
        sig = apdu[-12:]
        last = self._last.get(role) if self._last is not None else None
        if last is not None and last[0] == sig:      # a retry of the last accepted request
            return last[1] if want else None
        if self._field(ET04_SECURITY_MODE, 1) == MODE_AES:
            from . import aes_mode    # loaded by the first AES request only
            return aes_mode.plc_request(self, apdu, role, want, now)
        msg = apdu[:-8]
        digest = apdu[-8:]
        modes = (False,)
        if not self._field(ET04_FLAGS, 1) & FLAG_NO_ENCRYPTION:
            modes = (True, False) if self._hint & role else (False, True)
        found = None
        enc = False
        for enc in modes:
            found = self._verify(role, msg, digest, enc)
            if found is not None:
                break
        if found is None:
            self.stats[1] += 1
            if role == access.ROLE_BCAST and self.on_broadcast is not None:
                self.on_broadcast(3, None, now)
            return b"\x0b" + _ZERO if want else None
        st, plain = found
        self._hint = (self._hint | role) if enc else (self._hint & ~role)
        n = len(plain)
        seq = (plain[n - 4] << 24) | (plain[n - 3] << 16) | (plain[n - 2] << 8) | plain[n - 1]
        ok, cur = self._window(role, seq, now)
        # the answer is keyed as the request was, even if it changes the key (EP15)
        rbase = self._base(role) if enc and want else None
        if not ok:
            self.stats[2] += 1
            response = bytes((R_SEQ,)) + cur.to_bytes(4, "big")
        else:
            self.stats[0] += 1
            self._accept(role, seq, now)
            response = bytes(self.execute(plain[:n - 4], role, now))
        answer = None
        if want:
            st.update(response)
            dig = st.finish()
            if enc:
                response = response[:1] + cipher.plc_encrypt(rbase, response[1:], dig)
            answer = response + dig
        if ok:
            if self._last is None:
                self._last = {}
            self._last[role] = (sig, answer)
        return answer

    def _window(self, role, seq, now):
        """(ok, cur): is `seq` in the key's window, and the number the meter
        holds (what a 0x0C answer reports)."""
        node = self.node
        if role == access.ROLE_PLC:
            if self._et04:
                self.seq = self.store.field(ET04, ET04_SEQ, 4)
            cur = self.seq
            ahead = (seq - cur) & _M
            ok = 0 < ahead <= WINDOW
        else:
            base = self._field(ET04_BCAST_BASE, 4)
            top = (base + self._field(ET04_BCAST_DELTA, 2)) & _M
            cur = node.bcast_seq if node is not None and node.bcast_seq is not None else base
            room = (top - cur) & _M
            ahead = (seq - cur) & _M
            ok = 0 < ahead <= room < 0x80000000
        if role == access.ROLE_BCAST and self.on_broadcast is not None:
            # replayed: at or behind the last accepted number; else beyond the window
            self.on_broadcast(0 if ok else (1 if ahead == 0 or ahead >= 0x80000000 else 2),
                              seq, now)
        return ok, cur

    def _accept(self, role, seq, now):
        store = self.store
        if role == access.ROLE_PLC:
            self.seq = seq
            if self._et04:
                store.set_field(ET04, ET04_SEQ, 4, seq)
        elif self.node is not None:
            self.node.bcast_seq = seq
            self.node._store_image()      # survives a restart; not a configuration change
        keys = self.keys
        if self._et11:
            # ET11 is the counter's home: it may have been restored from NV since
            keys.usage[role] = store.field(ET11, ET11_UNICAST_USE if role == access.ROLE_PLC
                                           else ET11_BCAST_USE, 4)
        used = keys.note_use(role)
        if self._et11:
            store.set_field(ET11, ET11_UNICAST_USE if role == access.ROLE_PLC else ET11_BCAST_USE,
                            4, used)
        limit = self._field(ET04_MAX_KEY_USE, 4)
        if limit and self.on_key_usage is not None and (used == limit or used == (4 * limit + 4) // 5):
            self.on_key_usage(role, used, limit, now)
