"""A MEP client (the expansion-device side of the MEP port), for the CLI and
for test harnesses. It speaks the same frames as osgp_meter.mep and reuses the
core's digest and RC4 code.

Sequence numbers: the client adds one per request. When it does not know the
meter's number it starts anywhere; the meter answers 0x0C with the number it
holds, and the client retries once with that number + 1 [MEP p.11, p.15].
A request that times out is sent again with the same bytes [MEP p.20].

AES security mode (``aes=True``, docs/security-modes.md, an emulator
profile): requests are AES-128-CCM sealed under the key derived from the MEP
key, with the meter's serial number (BT01.16, 8 bytes: ``ident``) in the
nonce; ``osgp_meter.aes_mode`` builds and checks the bytes.
"""
import os
import struct
import time

from osgp_meter import cipher
from osgp_meter.digest import OmaDigest
from osgp_meter.services import code_name

BT07 = 7
BT08 = 8


class MepError(Exception):
    """The meter answered a non-zero response code (or nothing useful)."""

    def __init__(self, code, message=None):
        self.code = code
        super().__init__(message or "meter answered 0x%02X (%s)" % (code, code_name(code)))


class MepTimeout(MepError):
    def __init__(self):
        super().__init__(-1, "no answer from the meter")


class MepClient:
    def __init__(self, port, key, seq=None, encrypt=False, retries=2, min_gap=0.1,
                 aes=False, ident=None):
        self.port = port                  # pyserial-like: read(n), write(b), timeout
        self.digest = OmaDigest(bytes(key[:16]))
        self.base = cipher.mep_base_key(key) if encrypt else None
        self.aes = None                   # AES mode: the CCM object and the nonce identity
        if aes:
            from osgp_meter import aes_mode
            self.aes = (cipher.new_aes_ccm(aes_mode.derive_key(bytes(key[:16]))),
                        bytes(ident) if ident is not None else aes_mode.NO_ID)
        self.seq = seq
        self.retries = retries
        self.min_gap = min_gap            # the meter takes one request per 100 ms
        self._last = 0.0
        self._psn = 4

    # -- one exchange ---------------------------------------------------------
    def request(self, req):
        """Send a C12 request; return the response (code + data), checked."""
        resynced = False
        if self.seq is None:
            self.seq = int.from_bytes(os.urandom(4), "big")
        while True:
            self.seq = (self.seq + 1) & 0xFFFFFFFF
            rsp = self._exchange(req, self.seq)
            if rsp[0] == 0x0C and len(rsp) == 5 and not resynced:
                self.seq = int.from_bytes(rsp[1:5], "big")
                resynced = True
                continue
            return rsp

    def _exchange(self, req, seq):
        if self.aes is not None:
            return self._exchange_aes(req, seq)
        msg = bytes(req) + struct.pack(">I", seq)
        st = self.digest.start(msg)
        dig = st.finish_copy()
        rc4 = None
        body = msg
        if self.base is not None:
            rc4 = cipher.mep_cipher(self.base, dig)
            body = rc4.crypt(msg)
        frame = struct.pack(">H", len(body) + 8) + body + dig
        for _ in range(self.retries + 1):
            self._pace()
            self.port.write(frame)
            answer = self._read_frame()
            if answer is not None:
                break
        else:
            raise MepTimeout()
        payload, rdig = answer[:-8], answer[-8:]
        if payload == b"\x0b" and rdig == bytes(8):
            raise MepError(0x0B)
        plain = rc4.crypt(payload) if rc4 is not None else payload
        st.update(plain)
        if st.finish() != rdig:
            raise MepError(0x0B, "the answer's digest does not verify (wrong key?)")
        return plain

    def _send(self, body):
        frame = struct.pack(">H", len(body)) + body
        for _ in range(self.retries + 1):
            self._pace()
            self.port.write(frame)
            answer = self._read_frame()
            if answer is not None:
                return answer
        raise MepTimeout()

    def _exchange_aes(self, req, seq):
        from osgp_meter import aes_mode
        c, ident = self.aes
        answer = self._send(aes_mode.seal_request(c, 0, ident, req, seq))
        plain = aes_mode.open_answer(c, 0, ident, seq, answer)
        if plain is None:
            raise MepError(0x0B, "the answer's tag does not verify (wrong key or serial number?)")
        if plain == b"\x0b":
            raise MepError(0x0B)
        return plain

    def _pace(self):
        wait = self._last + self.min_gap - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._last = time.monotonic()

    def _read_frame(self):
        while True:
            head = self.port.read(2)
            if len(head) < 2:
                return None
            n = (head[0] << 8) | head[1]
            if n == 0:
                continue          # an alert `00 00`, not our answer
            body = b""
            while len(body) < n:
                chunk = self.port.read(n - len(body))
                if not chunk:
                    return None
                body += chunk
            if n < 9:
                raise MepError(0x01, "answer too short: %s" % body.hex(" "))
            return body

    # -- table services ---------------------------------------------------------
    @staticmethod
    def _check(rsp):
        if rsp[0] != 0:
            raise MepError(rsp[0])
        return rsp

    def read(self, table_id, offset=None, count=None):
        if offset is None and count is None:
            rsp = self.request(struct.pack(">BH", 0x30, table_id))
        else:
            off = offset or 0
            rsp = self.request(struct.pack(">BHBHH", 0x3F, table_id, off >> 16, off & 0xFFFF, count or 0))
        self._check(rsp)
        n = (rsp[1] << 8) | rsp[2]
        return rsp[3:3 + n]

    def write(self, table_id, data, offset=None):
        data = bytes(data)
        if offset is None:
            req = struct.pack(">BHH", 0x40, table_id, len(data)) + data
        else:
            req = struct.pack(">BHBHH", 0x4F, table_id, offset >> 16, offset & 0xFFFF, len(data)) + data
        self._check(self.request(req))

    def call(self, number, params=b"", psn=None):
        """Run a procedure: write BT07, read BT08. Returns (result, data)."""
        if psn is None:
            # MEP clients use PSNs 5..9 [MEP p.52]; a PSN equal to the meter's
            # last one is refused with 0x04, so step on and try the next.
            self._psn = 5 + (self._psn - 4) % 5
            try:
                self.write(BT07, struct.pack("<HB", number, self._psn) + bytes(params))
            except MepError as exc:
                if exc.code != 0x04:
                    raise
                self._psn = 5 + (self._psn - 4) % 5
                self.write(BT07, struct.pack("<HB", number, self._psn) + bytes(params))
            psn = self._psn
        else:
            self.write(BT07, struct.pack("<HB", number, psn) + bytes(params))
        rsp = self.read(BT08)
        if (rsp[0] | (rsp[1] << 8)) & 0x0FFF != number or rsp[2] != psn:
            raise MepError(0x04, "BT08 does not hold this procedure's answer")
        return rsp[3], rsp[4:]
