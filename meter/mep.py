# The MEP port (multipurpose expansion port), server side, sans-IO.
#
# Frame [MEP Table 2.4/2.5]:
#   request:  length(2, MSB) | C12 request | seq(4, MSB) | digest(8)
#   response: length(2, MSB) | response code [+ count(2) + data] | digest(8)
# `length` counts everything after itself, at most 476 bytes [MEP p.8]. The
# request digest covers code..seq; the response digest covers request ||
# response as one stream [MEP App. A]. RC4 is optional per message: the
# server finds out by trying, and answers in kind; 0x0B answers are plain,
# 0x0C answers follow the request's mode [MEP App. B].
#
# Sequence numbers [MEP p.11]: a request is accepted when its number is 1..8
# ahead of the last accepted one; anything else gets 0x0C with the number the
# server holds. Emulator profile: an exact repeat of the last accepted
# request (same number and digest: a client retrying after a lost answer, as
# the guide tells it to) gets the same answer again without running twice.
#
# Timing [MEP p.20-21]: a partial frame is dropped after a 50 ms gap between
# bytes; at most one request per 100 ms (earlier ones are dropped unanswered);
# answers over 117 bytes leave in 117-byte segments with 25 ms pauses; while
# an alert is raised the server sends `00 00` once a second, held off for a
# second after any received frame.
#
# Emulator profiles (documented in docs/mep-port.md): a request too short to
# hold a sequence number and digest is dropped; a 0x0B answer carries eight
# zero bytes where the digest would be (no key matched, so none can be used);
# `secure=False` runs the port without sequence numbers and digests, for
# benchmarks and debugging only.
#
# AES security mode (ET04.127 = 2): requests are AES-CCM sealed instead and
# go through meter/aes_mode.py, loaded then; an RC4/digest request fails its
# tag check and gets 0x0B (docs/security-modes.md). `secure=False` skips
# this too.
from . import cipher

MAX_FRAME = 476
SEGMENT = 117
SEGMENT_PAUSE_MS = 25
INTER_BYTE_MS = 50
MIN_REQUEST_GAP_MS = 100
ALERT_PERIOD_MS = 1000
ALERT = b"\x00\x00"

_ZERO_DIGEST = bytes(8)


def frame(body):
    """length(2, MSB) + body."""
    n = len(body)
    return bytes((n >> 8, n & 0xFF)) + body


class MepServer:
    __slots__ = (
        "execute", "keys", "roles", "seq", "secure", "baud", "on_seq",
        "_buf", "_last_byte", "_last_req", "_last_sig", "_last_answer",
        "_queue", "alert", "_alert_at", "stats", "_hint", "mode", "ident", "aes",
    )

    def __init__(self, execute, keys, roles, seq=0, secure=True, baud=9600, on_seq=None):
        # execute(request, role, now) -> response; keys: a KeyRing; roles:
        # the roles tried, in order (MAK before MBK [MEP p.12]).
        self.execute = execute
        self.keys = keys
        self.roles = roles
        self.seq = seq & 0xFFFFFFFF
        self.secure = secure
        self.baud = baud
        self.on_seq = on_seq          # called with the new number after each accept
        self._buf = b""
        self._last_byte = None
        self._last_req = None         # time of the last request answered
        self._last_sig = None         # seq + digest of the last accepted request
        self._last_answer = None
        self._queue = None            # [(due, bytes), ...] segments still to send
        self.alert = False
        self._alert_at = None
        self.stats = [0, 0, 0, 0]     # answered, bad digest, bad sequence, dropped
        self._hint = None             # (role, encrypted) of the last verified request
        # AES security mode (meter/aes_mode.py, docs/security-modes.md): mode()
        # -> ET04.127 and ident() -> the 8-byte nonce identity, both set by
        # the firmware; aes: the derived keys, made on the first AES request.
        self.mode = None
        self.ident = None
        self.aes = None

    # -- the driver's side ---------------------------------------------------
    def feed(self, data, now):
        """Bytes received at `now` (ms). Returns the bytes to send now."""
        buf = self._buf
        if buf and self._last_byte is not None and now - self._last_byte > INTER_BYTE_MS:
            buf = b""                 # the rest of that frame never came
            self.stats[3] += 1
        buf = buf + data if buf else bytes(data)
        self._last_byte = now
        out = b""
        while len(buf) >= 2:
            n = (buf[0] << 8) | buf[1]
            if n == 0:
                buf = buf[2:]         # a zero length carries nothing
                continue
            if n > MAX_FRAME:
                buf = b""             # not a frame: wait for the line to go quiet
                self.stats[3] += 1
                break
            if len(buf) < 2 + n:
                break
            body = buf[2:2 + n]
            buf = buf[2 + n:]
            self._alert_at = now + ALERT_PERIOD_MS
            answer = self._request(body, now)
            if answer:
                out += self._send(answer, now)
        self._buf = buf
        return out

    def poll(self, now):
        """Bytes due at `now`: queued segments, or the alert."""
        out = b""
        q = self._queue
        while q and q[0][0] <= now:
            out += q.pop(0)[1]
        if not q:
            self._queue = None
        if self.alert and not self._queue:
            at = self._alert_at
            if at is None or now >= at:
                out += ALERT
                self._alert_at = now + ALERT_PERIOD_MS
        return out

    @property
    def deadline(self):
        """When poll() next has something to do (ms), or None."""
        if self._queue:
            return self._queue[0][0]
        if self.alert:
            return self._alert_at if self._alert_at is not None else 0
        return None

    def idt_changed(self):
        """The IDT version changed: add 25 to the sequence number, so clients
        get 0x0C, re-synchronise and re-read the dimensions [MEP p.55]."""
        self.seq = (self.seq + 25) & 0xFFFFFFFF
        self._last_sig = None
        if self.on_seq is not None:
            self.on_seq(self.seq)

    # -- internals -------------------------------------------------------------
    def _send(self, answer, now):
        data = frame(answer)
        if len(data) <= SEGMENT:
            return data
        # 117-byte segments, each followed by a 25 ms pause after it has left
        # the wire (10 bits a byte at the port's baud rate).
        q = []
        at = now
        for i in range(SEGMENT, len(data), SEGMENT):
            at += (SEGMENT * 10000) // self.baud + SEGMENT_PAUSE_MS
            q.append((at, data[i:i + SEGMENT]))
        self._queue = q
        return data[:SEGMENT]

    def _verify(self, msg, digest, role, encrypted):
        """(role, digest stream, RC4 state or None, plaintext) if the digest
        verifies under this key and mode, else None."""
        keys = self.keys
        d = keys.digest(role)
        if d is None:
            return None
        rc4 = None
        plain = msg
        if encrypted:
            rc4 = cipher.mep_cipher(keys.mep_base(role), digest)
            plain = rc4.crypt(msg)
        st = d.start(plain)
        if st.finish_copy() != digest:
            return None
        return (role, st, rc4, plain)

    def _request(self, body, now):
        last = self._last_req
        if last is not None and now - last < MIN_REQUEST_GAP_MS:
            self.stats[3] += 1
            return None
        if not self.secure:
            self._last_req = now
            self.stats[0] += 1
            return self.execute(body, self.roles[0], now)
        if len(body) < 13:
            self.stats[3] += 1
            return None
        sig = body[-12:]
        if sig == self._last_sig:     # a retry of the last answered request
            self._last_req = now
            return self._last_answer
        mode = self.mode
        if mode is not None and mode() == cipher.MODE_AES:
            from . import aes_mode    # loaded by the first AES request only
            return aes_mode.mep_request(self, body, sig, now)
        msg = body[:-8]
        digest = body[-8:]
        found = None
        # Try the key and mode that verified last time first: a client keeps
        # to one of them, so a request usually costs one digest check.
        hint = self._hint
        if hint is not None:
            found = self._verify(msg, digest, hint[0], hint[1])
        if found is None:
            for encrypted in (False, True):
                for role in self.roles:
                    if hint is not None and hint[0] == role and hint[1] == encrypted:
                        continue
                    found = self._verify(msg, digest, role, encrypted)
                    if found is not None:
                        break
                if found is not None:
                    break
        self._last_req = now
        if found is None:
            self.stats[1] += 1
            return b"\x0b" + _ZERO_DIGEST
        role, st, rc4, plain = found
        self._hint = (role, rc4 is not None)
        response, seq = self._run(role, plain, now)
        st.update(response)
        answer = (rc4.crypt(response) if rc4 is not None else response) + st.finish()
        if seq is not None:
            self._last_sig = sig
            self._last_answer = answer
        return answer

    def _run(self, role, plain, now):
        """A verified request (code .. seq): (response, seq) when its number
        is in the window and it ran, else (0x0C answer, None)."""
        n = len(plain)
        seq = (plain[n - 4] << 24) | (plain[n - 3] << 16) | (plain[n - 2] << 8) | plain[n - 1]
        ahead = (seq - self.seq) & 0xFFFFFFFF
        if ahead == 0 or ahead > 8:
            self.stats[2] += 1
            s = self.seq
            return bytes((0x0C, s >> 24, (s >> 16) & 0xFF, (s >> 8) & 0xFF, s & 0xFF)), None
        self.seq = seq
        if self.on_seq is not None:
            self.on_seq(seq)
        self.stats[0] += 1
        return self.execute(plain[:n - 4], role, now), seq
