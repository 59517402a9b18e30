"""`osgp-meter bench`: requests per second and bytes per meter, in one process.

What is measured (each throughput sample runs for --seconds; the samples of
all measurements alternate, A B C A B C ..., so that machine noise shows up
as spread rather than as a difference between measurements):

* MEP partial reads through the whole server path of one meter built from
  the default profile: frame bytes in -> MepServer.feed (frame parse, digest
  check, sequence window, table store read, response digest) -> frame out.
  Secured (the default) with plain and RC4-encrypted requests, RC4 through
  the pure-Python core and through `cryptography`; and the unsecured test
  mode (``mep_secure = false``: frames are length + C12 request); and the
  AES security mode (ET04.127 = 2, docs/security-modes.md: AES-128-CCM
  requests and answers), through the pure-Python AES/CCM of the core and
  through `cryptography`'s AESCCM. Requests
  are built before the clock starts, with sequence numbers +1 each, and fed
  with a virtual `now` that advances 100 ms per request (the server takes at
  most one request per 100 ms). They are fed in chunks; between chunks (off
  the clock) the server's sequence number is put back so the same frames can
  be fed again, and the answer and the server's counters are checked.
* Bytes per idle meter instance (tracemalloc growth over N instances built
  after one warm-up instance, so module-level data and shared caches are not
  counted per meter), and the same after each meter answered one request.
* The reference point: the Gurux DLMS server (package `gurux-dlms`, the
  optional extra `bench`), in process, server side only: GET of one
  register's value, logical-name referencing, WRAPPER framing, no security;
  and its bytes per idle server instance.

Numbers are for humans: tests check the structure and that every answer was
verified, never a rate. ``profile_secured()`` profiles the secured loop.
"""
import gc
import json
import platform
import statistics
import sys
import time
import tracemalloc

from osgp_meter import access
from osgp_meter import cipher
from osgp_meter.digest import OmaDigest

T0 = 1_767_225_600_000      # virtual start time (ms): 2026-01-01T00:00:00Z
STEP_MS = 100               # the MEP server takes at most one request per 100 ms
CHUNK = 400                 # requests per timed chunk
ROUNDS = 3                  # samples per measurement
METERS = 200                # instances per memory measurement

READ_TABLE = 1              # BT01 General Manufacturer Identification
READ_OFFSET = 0
READ_COUNT = 32             # clamped to the table's size in the catalogue

TARGET_UNSECURED = 3.0      # x Gurux
TARGET_SECURED = 0.5        # x Gurux
TARGET_BYTES = 16 * 1024    # per idle meter

_clock = time.perf_counter


class VerifyError(AssertionError):
    """An answer in the benchmark was not what the meter should have sent."""


def _check(ok, what):
    if not ok:
        raise VerifyError(what)


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
            n = 0
            total = 0.0
            while True:
                k, dt = self._chunk()
                n += k
                total += dt
                if total >= seconds:
                    return n / total
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


# ---------------------------------------------------------------------------
# the Gurux DLMS reference point
# ---------------------------------------------------------------------------

_GURUX = None


def gurux_available():
    """None if gurux-dlms can be used, else the reason it cannot."""
    try:
        _gurux_classes()
    except ImportError as exc:
        return "gurux-dlms is not installed (pip install 'osgp-meter[bench]'): %s" % exc
    return None


def _gurux_classes():
    """(Server class, Reply class, gurux names) built on first use.

    gurux-dlms 1.0.203's Python server calls methods that its own classes
    lack (GXServerReply.setReply/getConnectionInfo, server.notifyRead,
    onPostRead() without arguments, set/getTransaction), and its association
    setup appends a collection where it expects an object; the subclasses
    below supply those so a plain GET works. Its HDLC SNRM handling fails
    too, hence WRAPPER framing (which, like MEP's, is a length prefix with
    no CRC)."""
    global _GURUX
    if _GURUX is not None:
        return _GURUX
    from gurux_dlms import GXDLMSServer, GXDLMSClient, GXServerReply, GXReplyData
    from gurux_dlms.enums import InterfaceType, Authentication, AccessMode, MethodAccessMode, Unit
    from gurux_dlms.enums.SourceDiagnostic import SourceDiagnostic
    from gurux_dlms.objects import GXDLMSRegister, GXDLMSAssociationLogicalName

    class Reply(GXServerReply):
        def setReply(self, value):
            self.reply = value

        def getConnectionInfo(self):
            return self.connectionInfo

    class Server(GXDLMSServer):
        LN = "1.0.1.8.0.255"       # active energy import, total
        VALUE = 123456

        def __init__(self):
            super().__init__(True, InterfaceType.WRAPPER)
            reg = GXDLMSRegister(self.LN)
            reg.value = self.VALUE
            reg.scaler = 1
            reg.unit = Unit.ACTIVE_ENERGY
            assoc = GXDLMSAssociationLogicalName()
            assoc.objectList.append(reg)
            self.items.append(reg)
            self.items.append(assoc)
            self.initialize()

        def isTarget(self, serverAddress, clientAddress):
            return True

        def onValidateAuthentication(self, authentication, password):
            return SourceDiagnostic.NONE

        def onFindObject(self, objectType, sn, ln):
            return None

        def onGetAttributeAccess(self, arg):
            return AccessMode.READ_WRITE

        def onGetMethodAccess(self, arg):
            return MethodAccessMode.ACCESS

        def onPreGet(self, args):
            pass

        def onPostGet(self, args):
            pass

        def onPreRead(self, args):
            pass

        def onPostRead(self, args=None):
            pass

        def onPreWrite(self, args):
            pass

        def onPostWrite(self, args):
            pass

        def onPreAction(self, args):
            pass

        def onPostAction(self, args):
            pass

        def onConnected(self, connectionInfo):
            pass

        def onInvalidConnection(self, connectionInfo):
            pass

        def onDisconnected(self, connectionInfo):
            pass

        def notifyRead(self, *args):
            pass

        def notifyConnected(self, *args):
            pass

        def setTransaction(self, value):
            self.transaction = value

        def getTransaction(self):
            return self.transaction

    names = {"GXDLMSClient": GXDLMSClient, "GXReplyData": GXReplyData,
             "GXDLMSRegister": GXDLMSRegister, "InterfaceType": InterfaceType,
             "Authentication": Authentication}
    _GURUX = (Server, Reply, names)
    return _GURUX


class GuruxCase:
    """GET of one register's value from an associated Gurux DLMS server."""

    def __init__(self):
        Server, Reply, g = _gurux_classes()
        self.name = "gurux_get_register"
        self.label = "Gurux DLMS GET register (WRAPPER, no security)"
        self.Reply = Reply
        self.server = server = Server()
        client = g["GXDLMSClient"](True, 16, 1, g["Authentication"].NONE, None, g["InterfaceType"].WRAPPER)

        def ask(req):
            sr = Reply(bytes(req))
            server.handleRequest(sr)
            return sr.reply

        for req in client.aarqRequest():
            rd = g["GXReplyData"]()
            client.getData(ask(req), rd)
            client.parseAareResponse(rd.data)
        self.get = bytes(client.read(g["GXDLMSRegister"](Server.LN), 2)[0])
        reply = ask(self.get)
        rd = g["GXReplyData"]()
        client.getData(reply, rd)
        _check(rd.value == Server.VALUE, "Gurux answered %r, expected %r" % (rd.value, Server.VALUE))
        self.expected = bytes(reply)
        _check(bytes(ask(self.get)) == self.expected, "Gurux answers a repeated GET differently")
        self.frames = [self.get] * CHUNK
        self.verified = 1
        self.requests = 0

    def _chunk(self):
        Reply = self.Reply
        handle = self.server.handleRequest
        sr = None
        t0 = _clock()
        for f in self.frames:
            sr = Reply(f)
            handle(sr)
        dt = _clock() - t0
        _check(bytes(sr.reply) == self.expected, "Gurux answer changed")
        self.verified += 1
        n = len(self.frames)
        self.requests += n
        return n, dt

    def sample(self, seconds):
        n = 0
        total = 0.0
        while True:
            k, dt = self._chunk()
            n += k
            total += dt
            if total >= seconds:
                return n / total

    def describe(self):
        return {"secure": False, "rc4": False, "rc4_backend": None,
                "request_bytes": len(self.get), "answer_bytes": len(self.expected)}


# ---------------------------------------------------------------------------
# memory
# ---------------------------------------------------------------------------

def bytes_per_instance(make, n=None, top=5):
    """tracemalloc growth per instance over n instances of make(), built
    after one warm-up instance. Returns (bytes per instance, one instance,
    [(source line, bytes per instance), ...] the top allocation sites)."""
    n = METERS if n is None else n
    keep = [None] * n
    one = make()                      # warm-up: caches, interned data, modules
    gc.collect()
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        gc.collect()
        snap0 = tracemalloc.take_snapshot()
        base = tracemalloc.get_traced_memory()[0]
        for i in range(n):
            keep[i] = make()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - base
        snap1 = tracemalloc.take_snapshot()
    finally:
        if not tracing:
            tracemalloc.stop()
    flt = [tracemalloc.Filter(False, tracemalloc.__file__)]
    sites = []
    for stat in snap1.filter_traces(flt).compare_to(snap0.filter_traces(flt), "lineno")[:top]:
        if stat.size_diff <= 0:
            break
        fr = stat.traceback[0]
        sites.append(("%s:%d" % (_short(fr.filename), fr.lineno), stat.size_diff / n))
    del keep
    return grown / n, one, sites


def _short(path):
    for mark in ("/meter/", "/tools/", "/site-packages/"):
        i = path.rfind(mark)
        if i >= 0:
            return path[i + 1:]
    return path


def meter_holds(fw):
    """What one Firmware instance holds of its own (the rest is shared)."""
    store = fw.meter.store
    digests = fw.keys._digests
    return {
        "written_tables": len(store.written),
        "written_bytes": sum(len(w) for w in store.written.values()),
        "image_tables_shared": len(store.image),
        "catalogue_tables_shared": len(store.tables),
        "keys": len(fw.keys.keys),
        "digest_objects": len(digests) if digests else 0,
        "mep_seq": fw.mep.seq,
    }


def measure_memory(config, n=None, gurux=True):
    n = METERS if n is None else n
    out = {}
    # The core meter (the target): default profile, metering off.
    core = dict(config, metering=False)
    per, one, sites = bytes_per_instance(lambda: _firmware(core), n)
    out["meter_idle"] = {"label": "osgp meter core, idle (default profile, metering off)", "instances": n,
                         "bytes_per_instance": round(per), "holds": meter_holds(one),
                         "top_sites": sites, "target": TARGET_BYTES,
                         "meets": per <= TARGET_BYTES}
    # With the time-based subsystems: their tables (registers, self-read
    # list, load-profile blocks) are allocated at boot.
    metering = dict(config, metering=True)
    per, one, sites = bytes_per_instance(lambda: _firmware(metering), n)
    out["meter_metering"] = {"label": "osgp meter with metering, just booted", "instances": n,
                             "bytes_per_instance": round(per), "holds": meter_holds(one),
                             "top_sites": sites}

    # The same after each meter answered one secured read: the MAK digest
    # object is built on first use and ET04 (the mirrored sequence number)
    # gets its own copy.
    probe = _firmware(core)
    c12, count = read_request(probe)
    key = probe.keys.get(access.ROLE_MAK)
    seq = (probe.mep.seq + 1) & 0xFFFFFFFF
    frame, st, _ = secured_request(OmaDigest(key), None, seq, c12, False)
    expected = _expected_answer(config, count)
    verify_secured_answer(probe.mep.feed(frame, T0), st, None, expected)

    def used():
        fw = _firmware(core)
        fw.mep.feed(frame, T0)
        return fw

    per, one, sites = bytes_per_instance(used, n)
    out["meter_after_read"] = {"label": "osgp meter, after one secured read", "instances": n,
                               "bytes_per_instance": round(per), "holds": meter_holds(one),
                               "top_sites": sites}
    if gurux:
        Server = _gurux_classes()[0]
        per, one, sites = bytes_per_instance(Server, n)
        out["gurux_server_idle"] = {"label": "Gurux DLMS server, idle (1 register)", "instances": n,
                                    "bytes_per_instance": round(per), "top_sites": sites}
    return out


# ---------------------------------------------------------------------------
# the whole bench
# ---------------------------------------------------------------------------

def build_cases(config, gurux=True):
    cases = [MepCase("mep_secured_plain", "MEP secured, plain", config)]
    for bname, factory in _rc4_backends():
        cases.append(MepCase("mep_secured_rc4_" + bname, "MEP secured, RC4 (%s)" % bname,
                             config, encrypt=True, backend=(bname, factory)))
    for bname, factory in _aes_backends():
        cases.append(MepCase("mep_aes_" + bname, "MEP AES-CCM mode (%s)" % bname,
                             config, backend=(bname, factory), aes=True))
    cases.append(MepCase("mep_unsecured", "MEP unsecured (test mode)", config, secure=False))
    if gurux:
        cases.append(GuruxCase())
    return cases


def measure(seconds=2.0, rounds=None, gurux=True, meters=None, config=None):
    """Run every measurement; returns the result dict (what --json prints).
    rounds / meters default to ROUNDS / METERS."""
    rounds = ROUNDS if rounds is None else rounds
    meters = METERS if meters is None else meters
    if config is None:
        config = default_config()
    skipped = None
    if gurux:
        skipped = gurux_available()
        if skipped:
            gurux = False
    else:
        skipped = "skipped (--no-gurux)"
    cases = build_cases(config, gurux)
    samples = {c.name: [] for c in cases}
    for _ in range(rounds):              # A B C ... A B C ...
        for c in cases:
            gc.collect()
            samples[c.name].append(c.sample(seconds))
    probe = cases[0]
    result = {
        "runtime": "%s %s" % (sys.implementation.name, platform.python_version()),
        "machine": "%s %s" % (platform.system(), platform.machine()),
        "seconds": seconds,
        "rounds": rounds,
        "read": {"table": "BT%02d" % READ_TABLE, "table_id": READ_TABLE,
                 "offset": READ_OFFSET, "count": probe.count, "c12_request": probe.c12.hex()},
        "gurux": None if skipped else "gurux-dlms WRAPPER, logical names, GET register value",
        "gurux_skipped": skipped,
        "throughput": [],
    }
    ref = None
    if gurux:
        ref = statistics.median(samples["gurux_get_register"])
    for c in cases:
        s = samples[c.name]
        med = statistics.median(s)
        row = {"name": c.name, "label": c.label, "samples": [round(x, 1) for x in s],
               "min": round(min(s), 1), "median": round(med, 1), "max": round(max(s), 1),
               "spread": round((max(s) - min(s)) / med, 3) if med else None,
               "us_per_request": round(1e6 / med, 2) if med else None,
               "requests": c.requests, "verified_chunks": c.verified,
               "verified": c.verified > 0}
        row.update(c.describe())
        target = None
        if c.name.startswith("mep_secured"):
            target = TARGET_SECURED
        elif c.name == "mep_unsecured":
            target = TARGET_UNSECURED
        row["target_x_gurux"] = target
        if ref and c.name != "gurux_get_register":
            row["x_gurux"] = round(med / ref, 3)
            row["x_gurux_min"] = round(min(s) / ref, 3)
            row["meets"] = med / ref >= target if target else None
        else:
            row["x_gurux"] = 1.0 if c.name == "gurux_get_register" else None
            row["meets"] = None
        result["throughput"].append(row)
    result["memory"] = measure_memory(config, meters, gurux)
    return result


def _verdict(meets):
    return "n/a" if meets is None else ("meets" if meets else "misses")


def format_table(res):
    lines = []
    lines.append("osgp-meter bench: %s on %s; %d rounds x %.2f s per measurement, alternating"
                 % (res["runtime"], res["machine"], res["rounds"], res["seconds"]))
    rd = res["read"]
    lines.append("request: MEP partial read %s offset %d count %d (C12 %s), default profile, MAK"
                 % (rd["table"], rd["offset"], rd["count"], rd["c12_request"]))
    if res["gurux_skipped"]:
        lines.append("Gurux reference: %s" % res["gurux_skipped"])
    lines.append("")
    hdr = "%-46s %9s %9s %9s %7s %8s %7s  %s" % (
        "throughput (requests/s)", "median", "min", "max", "noise", "us/req", "xGurux", "target")
    lines.append(hdr)
    lines.append("-" * len(hdr))
    for r in res["throughput"]:
        x = "%.2f" % r["x_gurux"] if r["x_gurux"] is not None else "-"
        tgt = ""
        if r["target_x_gurux"]:
            tgt = ">= %.1fx %s" % (r["target_x_gurux"], _verdict(r["meets"]))
        lines.append("%-46s %9.0f %9.0f %9.0f %6.1f%% %8.1f %7s  %s" % (
            r["label"], r["median"], r["min"], r["max"], 100 * (r["spread"] or 0),
            r["us_per_request"], x, tgt))
    lines.append("(noise = (max - min) / median over the rounds; every chunk's last answer was"
                 " checked, the server counters too)")
    lines.append("")
    mem = res["memory"]
    lines.append("memory (tracemalloc growth / instance, %d instances after one warm-up)"
                 % mem["meter_idle"]["instances"])
    for key in ("meter_idle", "meter_metering", "meter_after_read", "gurux_server_idle"):
        m = mem.get(key)
        if m is None:
            continue
        tgt = ""
        if "target" in m:
            tgt = "target <= %d: %s" % (m["target"], _verdict(m["meets"]))
        lines.append("  %-44s %8d bytes   %s" % (m["label"], m["bytes_per_instance"], tgt))
        if "holds" in m:
            h = m["holds"]
            lines.append("      holds: %d written tables (%d bytes), %d digest objects, %d keys;"
                         " shared: %d image tables, %d catalogue tables"
                         % (h["written_tables"], h["written_bytes"], h["digest_objects"], h["keys"],
                            h["image_tables_shared"], h["catalogue_tables_shared"]))
        if m["top_sites"]:
            lines.append("      top: " + ", ".join("%s %.0f" % s for s in m["top_sites"][:4]))
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# profiling the secured path
# ---------------------------------------------------------------------------

def _us(fn, seconds):
    n = 64
    while True:
        t0 = _clock()
        for _ in range(n):
            fn()
        dt = _clock() - t0
        if dt >= seconds:
            return 1e6 * dt / n
        n *= 2


def secured_stages(seconds=0.2, config=None):
    """The secured plain read taken apart, each stage timed alone (µs per
    call, no profiler overhead): [(stage, µs)], the whole feed() last."""
    if config is None:
        config = default_config()
    case = MepCase("stages", "stages", config)
    whole = 1e6 / case.sample(seconds)
    fw = case.fw
    d = fw.keys.digest(access.ROLE_MAK)
    f = case.frames[0]
    msg = f[2:-8]
    c12 = msg[:-4]
    execute = fw.mep.execute
    resp = execute(c12, access.ROLE_MAK, T0)
    st0 = d.start(msg)

    def response_digest():
        st = st0.copy()
        st.update(resp)
        st.finish()

    return [
        ("request digest check (start + finish_copy)", _us(lambda: d.start(msg).finish_copy(), seconds)),
        ("response digest (continue + finish)", _us(response_digest, seconds)),
        ("C12 partial read (services + store)", _us(lambda: execute(c12, access.ROLE_MAK, T0), seconds)),
        ("sequence mirror into ET04 (on_seq)", _us(lambda: fw._mep_seq_changed(fw.mep.seq), seconds)),
        ("whole MepServer.feed, secured plain", whole),
    ]


def profile_secured(seconds=2.0, encrypt=False, backend=None, top=15, config=None, sort="tottime"):
    """Run the secured MEP loop under cProfile for about `seconds`.

    backend: None (pure-Python RC4) or "cryptography". Returns a dict:
    "rate" (requests/s under the profiler, slower than without it), "top"
    [(function, ncalls, tottime s, share of the total)], and "text" (the
    pstats listing), and "stages": secured_stages() (µs per stage, timed
    without the profiler, which inflates the many small calls)."""
    import cProfile
    import io
    import pstats

    if config is None:
        config = default_config()
    bk = ("pure", None)
    if backend == "cryptography":
        from . import crypto_backend
        bk = ("cryptography", crypto_backend.rc4_factory)
    case = MepCase("profile", "profile", config, encrypt=encrypt, backend=bk)
    case.sample(min(0.05, seconds))           # warm up, verify
    prof = cProfile.Profile()
    prof.enable()
    rate = case.sample(seconds)
    prof.disable()
    buf = io.StringIO()
    st = pstats.Stats(prof, stream=buf)
    st.sort_stats(sort).print_stats(top)
    total = st.total_tt or 1.0
    rows = []
    for (fn, line, func), (cc, nc, tt, ct, callers) in st.stats.items():
        rows.append(("%s:%d(%s)" % (_short(fn), line, func), nc, tt, ct))
    rows.sort(key=lambda r: r[2] if sort == "tottime" else r[3], reverse=True)
    return {"rate": rate, "requests": case.requests,
            "stages": secured_stages(min(0.2, seconds), config),
            "top": [(name, nc, round(tt, 4), round(tt / total, 3)) for name, nc, tt, ct in rows[:top]],
            "text": buf.getvalue()}


def run(args):
    """Entry point of `osgp-meter bench` (mode all / metering / mep; the
    metering measurements are tools/bench_metering.py)."""
    from . import bench_metering
    mode = getattr(args, "mode", "all")
    if mode == "fleet":                 # tools/bench_fleet.py, docs/fleet.md
        from . import bench_fleet
        return bench_fleet.run(args)
    res = {}
    if mode != "metering":
        res = measure(seconds=args.seconds, gurux=not args.no_gurux)
    if mode != "mep":
        res["metering"] = bench_metering.measure(
            quick=getattr(args, "quick", False), meters=getattr(args, "fleet_meters", bench_metering.FLEET_METERS),
            days=getattr(args, "fleet_days", bench_metering.FLEET_DAYS),
            year_days=getattr(args, "year_days", bench_metering.YEAR_DAYS))
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        text = []
        if mode != "metering":
            text.append(format_table(res))
        if "metering" in res:
            text.append("\n".join(bench_metering.format_lines(res["metering"])))
        print("\n\n".join(text))
    return 0
