"""`osgp-meter bench`, the meter side: one meter built from a profile,
pre-built MEP partial-read frames (secured plain / RC4, AES-CCM mode,
unsecured) and MepCase, which feeds them in timed chunks and checks the
answers. Split out of tools/bench.py (which re-exports these names)."""
import time

from osgp_meter import access
from osgp_meter import cipher
from osgp_meter.digest import OmaDigest

T0 = 1_767_225_600_000      # virtual start time (ms): 2026-01-01T00:00:00Z
STEP_MS = 100               # the MEP server takes at most one request per 100 ms
CHUNK = 400                 # requests per timed chunk

READ_TABLE = 1              # BT01 General Manufacturer Identification
READ_OFFSET = 0
READ_COUNT = 32             # clamped to the table's size in the catalogue

_clock = time.perf_counter


class VerifyError(AssertionError):
    """An answer in the benchmark was not what the meter should have sent."""


def _check(ok, what):
    if not ok:
        raise VerifyError(what)


def chunk_rate(chunk, seconds):
    """Requests per second: chunk() -> (requests, timed seconds), called
    until at least `seconds` of timed work (MepCase and GuruxCase)."""
    n = 0
    total = 0.0
    while True:
        k, dt = chunk()
        n += k
        total += dt
        if total >= seconds:
            return n / total


# ---------------------------------------------------------------------------
# the meter side
# ---------------------------------------------------------------------------

def default_config():
    """The config dict of the built-in profile (as `serve` builds it)."""
    from .profile import load_config
    return load_config()


def _firmware(config, now=T0):
    from osgp_meter.firmware import Firmware
    return Firmware(config, now)


def read_request(fw):
    """(C12 partial-read request, count, expected plain answer) for BT01."""
    size = fw.meter.store.size(READ_TABLE) or 0
    count = min(READ_COUNT, size)
    _check(count > 0, "table %d is empty in this catalogue" % READ_TABLE)
    req = bytes((0x3F, READ_TABLE >> 8, READ_TABLE & 0xFF,
                 READ_OFFSET >> 16, (READ_OFFSET >> 8) & 0xFF, READ_OFFSET & 0xFF,
                 count >> 8, count & 0xFF))
    return req, count


def _expected_answer(config, count):
    # From the profile's image, not from the store: code 00, count(2), data
    # (zeros past the end of the stored bytes).
    data = bytes(config["image"].get(READ_TABLE, b""))[READ_OFFSET:READ_OFFSET + count]
    data = data + bytes(count - len(data))
    return bytes((0, count >> 8, count & 0xFF)) + data


def _frame(body):
    n = len(body)
    return bytes((n >> 8, n & 0xFF)) + body


def secured_request(digest, base_key, seq, c12, encrypt):
    """(frame, client digest stream, client RC4 or None) of one MEP request,
    as a client builds it [MEP Table 2.4, App. A/B]."""
    msg = c12 + bytes((seq >> 24 & 0xFF, seq >> 16 & 0xFF, seq >> 8 & 0xFF, seq & 0xFF))
    st = digest.start(msg)
    dig = st.finish_copy()
    rc4 = None
    body = msg
    if encrypt:
        rc4 = cipher.mep_cipher(base_key, dig)
        body = rc4.crypt(msg)
    return _frame(body + dig), st, rc4


def verify_secured_answer(out, st, rc4, expected):
    """Check one answer frame: length, (decryption,) response digest over
    request || response, and content. Returns the plain response."""
    _check(len(out) >= 10 and (out[0] << 8 | out[1]) == len(out) - 2, "bad answer frame %s" % out.hex())
    payload, dig = out[2:-8], out[-8:]
    plain = rc4.crypt(payload) if rc4 is not None else payload
    st = st.copy()
    st.update(plain)
    _check(st.finish() == dig, "answer digest does not verify")
    _check(plain == expected, "answer %s, expected %s" % (plain.hex(), expected.hex()))
    return plain


def _aes_backends():
    """[(name, factory or None)] of AES-CCM: pure Python, cryptography if present."""
    out = [("pure", None)]
    try:
        from . import crypto_backend
        out.append(("cryptography", crypto_backend.aes_ccm_factory))
    except ImportError:
        pass
    return out


def _rc4_backends():
    """[(name, factory or None)]: pure Python always, cryptography if present."""
    out = [("pure", None)]
    try:
        from . import crypto_backend
        out.append(("cryptography", crypto_backend.rc4_factory))
    except ImportError:
        pass
    return out


class MepCase:
    """One MEP throughput measurement: a meter, pre-built frames, a checker."""

    def __init__(self, name, label, config, secure=True, encrypt=False, backend=("pure", None),
                 aes=False):
        self.name = name
        self.label = label
        self.secure = secure
        self.encrypt = encrypt
        self.aes = aes                # AES security mode: backend is an AES-CCM factory
        self.backend_name, self.backend = backend
        cfg = dict(config)
        cfg["mep_secure"] = secure
        self.fw = fw = _firmware(cfg)
        self.mep = fw.mep
        self.base_seq = fw.mep.seq
        c12, self.count = read_request(fw)
        self.c12 = c12
        expected = _expected_answer(config, self.count)
        self.now = T0
        if aes:
            from osgp_meter import aes_mode
            fw.meter.store.set_field(2048 + 4, 127, 1, 2)          # ET04.127 = AES
            old = cipher.set_aes_backend(self.backend)
            try:
                self._aes = (cipher.new_aes_ccm(aes_mode.derive_key(fw.keys.get(access.ROLE_MAK))),
                             fw.mep.ident())
            finally:
                cipher.set_aes_backend(old)
            self.frames = [_frame(aes_mode.seal_request(self._aes[0], 0, self._aes[1], c12,
                                                         (self.base_seq + 1 + i) & 0xFFFFFFFF))
                           for i in range(CHUNK)]
        elif secure:
            key = fw.keys.get(access.ROLE_MAK)
            _check(key is not None, "the profile has no MAK")
            d = OmaDigest(key)
            base = cipher.mep_base_key(key)
            frames = []
            for i in range(CHUNK):
                seq = (self.base_seq + 1 + i) & 0xFFFFFFFF
                f, st, rc4 = secured_request(d, base, seq, c12, encrypt)
                frames.append(f)
            self.frames = frames
            # The last frame of every chunk is checked in full once (digest,
            # decryption, content); after that its answer bytes must repeat.
            self._last_stream = st
            self._base = base
        else:
            self.frames = [_frame(c12)] * CHUNK
        self.expected = expected
        self.last_answer = None       # verified bytes of the chunk's last answer
        self.verified = 0             # answers checked
        self.requests = 0
        self.request_bytes = len(self.frames[-1])

    def client_state(self):
        """(digest stream, RC4 or None) of the client after sending the last
        frame of a chunk: what it needs to check that frame's answer."""
        rc4 = None
        if self.encrypt:
            f = self.frames[-1]
            rc4 = cipher.mep_cipher(self._base, f[-8:])
            rc4.crypt(bytes(len(f) - 10))          # past the request
        return self._last_stream.copy(), rc4

    def _chunk(self):
        mep = self.mep
        mep.seq = self.base_seq       # off the clock: the same frames again
        stats = list(mep.stats)
        feed = mep.feed
        now = self.now
        out = None
        t0 = _clock()
        for f in self.frames:
            now += STEP_MS
            out = feed(f, now)
        dt = _clock() - t0
        self.now = now
        n = len(self.frames)
        # Every request answered, none refused for its digest or sequence
        # number, none dropped; the last answer right.
        _check(mep.stats[0] - stats[0] == n and mep.stats[1:] == stats[1:],
               "%s: server counters %r -> %r" % (self.name, stats, list(mep.stats)))
        if self.last_answer is None:
            if self.aes:
                from osgp_meter import aes_mode
                seq = (self.base_seq + len(self.frames)) & 0xFFFFFFFF
                _check(aes_mode.open_answer(self._aes[0], 0, self._aes[1], seq, out[2:]) == self.expected,
                       "AES answer does not verify")
            elif self.secure:
                verify_secured_answer(out, *self.client_state(), expected=self.expected)
            else:
                _check(out == _frame(self.expected), "unsecured answer %s" % out.hex())
            self.last_answer = out
            self.answer_bytes = len(out)
        else:
            _check(out == self.last_answer, "%s: answer changed" % self.name)
        self.verified += 1
        self.requests += n
        return n, dt

    def sample(self, seconds):
        """Requests per second over at least `seconds` of timed feeding."""
        if self.aes:
            old = cipher.set_aes_backend(self.backend)
            old_rc4 = cipher.set_rc4_backend(None)
        else:
            old = cipher.set_rc4_backend(self.backend)
        try:
            return chunk_rate(self._chunk, seconds)
        finally:
            if self.aes:
                cipher.set_aes_backend(old)
                cipher.set_rc4_backend(old_rc4)
            else:
                cipher.set_rc4_backend(old)

    def describe(self):
        return {"secure": self.secure, "rc4": self.encrypt,
                "rc4_backend": self.backend_name if self.encrypt else None,
                "aes_backend": self.backend_name if self.aes else None,
                "request_bytes": self.request_bytes,
                "answer_bytes": getattr(self, "answer_bytes", None)}
