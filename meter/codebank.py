# Code banks and firmware download: EP08 erase and announce, EP09 download
# code packet (ET17 verification bitmap), EP10 switch code bank, the new
# image's self-confirmation and the rollback when it does not confirm.
#
# EMULATOR PROFILE. The reference names EP08/EP09/EP10, ET17 (1250 bytes,
# ET11.36), ET03.137 (image CRC), ET04.102 (safe image locked), BT03 5.6
# (code bank changed) and nothing more [reference osgp-application.md 5.4];
# parameters, result reasons, the bitmap's bit order and the trial rule are
# ours and docs/firmware-download.md gives them byte by byte.
#
# Two banks, 0 (A) and 1 (B); one is active (the running firmware, whose
# version BT01.14 and CRC ET03.137 show), the other receives downloads. Bank
# bytes live in a storage object (erase(bank), write(bank, offset, data),
# read(bank, offset, n), size): RAM by default (allocated when a download
# starts), a file in tools/codebank_store.py, flash on a board. What must
# survive a power cut: ET17 (an NV table) and the bank metadata (nv_part
# "codebank"); a packet's bytes are written before its bit is set, so a cut
# between the two costs only a resend.
from . import events
from . import procedures as P

BT01 = 1
ET03 = 2048 + 3
ET04 = 2048 + 4
ET11 = 2048 + 11
ET17 = 2048 + 17
EP08 = 2048 + 8
EP09 = 2048 + 9
EP10 = 2048 + 10
EE_SOFTWARE_CRC = 2048 + 13
EE_CODE_BANK_CHANGED = 2048 + 14
ET03_CRC = 137
ET04_SAFE_LOCKED = 102
ET11_BITMAP_SIZE = 36

IDLE = 0          # no download in progress
LOADING = 1       # inactive bank erased, image announced, packets arriving
TRIAL = 2         # switched; the new image has not confirmed itself yet

# Reasons: the first response byte of a refused EP08/EP09/EP10 (result 2 or 3).
R_BAD_LENGTH = 0x01       # parameters too short or too long
R_BAD_ANNOUNCE = 0x02     # EP08: image size or packet size out of range
R_TOO_LARGE = 0x03        # EP08: more packets than ET17 has bits, or than the bank holds
R_LOCKED = 0x04           # ET04.102 safe image locked
R_IN_TRIAL = 0x05         # the last switch still awaits the image's confirmation
R_NO_DOWNLOAD = 0x06      # EP09/EP10 without an announced image (EP08 first)
R_BAD_PACKET = 0x07       # EP09: packet number past the end, or wrong length
R_CRC_MISMATCH = 0x08     # EP10: the CRC parameter is not the announced image's
R_INCOMPLETE = 0x09       # EP10: packets missing (first missing, count follow)
R_BAD_HEADER = 0x0A       # EP10: not an image of this format / of the announced size
R_WRONG_MODEL = 0x0B      # EP10: built for another model (BT01.4)
R_BAD_CRC = 0x0C          # EP10: CRC over the bank differs from the header's
R_BAD_MAC = 0x0D          # EP10: the MAC does not verify under the download key

MAX_PACKET = 250          # bytes of code per EP09 (the PLC allows 70: 75 - 3 - 2)
BOOT_MS = 1000            # a good new image confirms itself this long after the switch
DEFAULT_TRIAL_S = 60      # a new image that has not confirmed itself by then is rolled back
META_SIZE = 24


def _u16(b, i):
    return b[i] | (b[i + 1] << 8)


class RamBankStorage:
    """Bank bytes in RAM: the default (a bank costs memory only once erased)."""
    __slots__ = ("size", "_banks")

    def __init__(self, size):
        self.size = size
        self._banks = [None, None]

    def resize(self, size):
        self.size = size
        self._banks = [None, None]

    def erase(self, bank):
        self._banks[bank] = bytearray(b"\xff" * self.size)

    def write(self, bank, offset, data):
        b = self._banks[bank]
        if b is None:
            self.erase(bank)
            b = self._banks[bank]
        b[offset:offset + len(data)] = data

    def read(self, bank, offset, n):
        b = self._banks[bank]
        if b is None:
            return b"\xff" * n
        return bytes(b[offset:offset + n])


class CodeBanks:
    """meter.banks. RAM state is `_missing` (a cache of ET17) and `deadline`;
    the rest is the metadata below (see meta())."""
    __slots__ = ("storage", "_key", "active", "state", "size", "psize", "crc", "versions",
                 "crcs", "trial_fails", "trial_s", "erase_pending", "deadline", "_missing")

    def __init__(self, meter, storage=None, key=None):
        self.storage = storage
        self._key = key               # None: fwimage.DEFAULT_KEY (fwimage loads with EP08)
        self.active = 0
        self.state = IDLE
        self.size = 0                 # announced image: total bytes
        self.psize = 0                # packet size
        self.crc = 0                  # announced image CRC
        st = meter.store
        # the factory image in bank A: what BT01 and ET03 say now
        self.versions = [(st.field(BT01, 14, 1) << 8) | st.field(BT01, 15, 1), 0]
        self.crcs = [st.field(ET03, ET03_CRC, 2), 0]
        self.trial_fails = False
        self.trial_s = DEFAULT_TRIAL_S
        # EP08 only records the erase; the first EP09 does it, once the empty
        # ET17 is committed (a cut can never leave bits over erased bytes)
        self.erase_pending = False
        self.deadline = None          # driver ms of the trial's end (RAM)
        self._missing = None

    @property
    def key(self):
        """The download key EP10 checks the image's MAC with."""
        k = self._key
        if k is None:
            from . import fwimage
            k = fwimage.DEFAULT_KEY
        return k

    # -- metadata (nv_part "codebank") ------------------------------------------------
    def meta(self):
        """24 bytes: format 1, active bank, state, flags (bit 0 trial image
        fails, bit 1 erase pending), image size UINT32, packet size UINT16,
        image CRC UINT16, bank A version (MSB first) and CRC, bank B version
        and CRC, trial seconds UINT16, 2 reserved."""
        v = self.versions
        c = self.crcs
        flags = (1 if self.trial_fails else 0) | (2 if self.erase_pending else 0)
        return bytes((1, self.active, self.state, flags)) + \
            self.size.to_bytes(4, "little") + bytes((
                self.psize & 255, self.psize >> 8, self.crc & 255, self.crc >> 8,
                v[0] >> 8, v[0] & 255, c[0] & 255, c[0] >> 8,
                v[1] >> 8, v[1] & 255, c[1] & 255, c[1] >> 8,
                self.trial_s & 255, self.trial_s >> 8, 0, 0))

    def restore(self, b):
        if len(b) < META_SIZE or b[0] != 1:
            return
        self.active = b[1] & 1
        self.state = b[2] if b[2] <= TRIAL else IDLE
        self.trial_fails = bool(b[3] & 1)
        self.erase_pending = bool(b[3] & 2)
        self.size = int.from_bytes(bytes(b[4:8]), "little")
        self.psize = _u16(b, 8)
        self.crc = _u16(b, 10)
        self.versions = [(b[12] << 8) | b[13], (b[16] << 8) | b[17]]
        self.crcs = [_u16(b, 14), _u16(b, 18)]
        self.trial_s = _u16(b, 20)
        self._missing = None
        # a start in TRIAL decides at the first tick: confirm, or roll back
        self.deadline = 0 if self.state == TRIAL else None

    # -- the download --------------------------------------------------------------
    @property
    def inactive(self):
        return 1 - self.active

    @property
    def packets(self):
        return (self.size + self.psize - 1) // self.psize if self.psize else 0

    def have(self, meter, n):
        return bool(meter.store.field(ET17, n >> 3, 1) & (1 << (n & 7)))

    def missing(self, meter):
        """Packets of the announced image not received yet (ET17 zeros)."""
        if self.state != LOADING:
            return 0
        if self._missing is None:
            n = self.packets
            bm = meter.store.read(ET17, 0, (n + 7) >> 3)
            got = 0
            for i in range(n):
                if bm[i >> 3] & (1 << (i & 7)):
                    got += 1
            self._missing = n - got
        return self._missing

    def first_missing(self, meter):
        for i in range(self.packets):
            if not self.have(meter, i):
                return i
        return 0xFFFF

    def _storage_for(self, size):
        s = self.storage
        if s is None:
            s = self.storage = RamBankStorage(size)
        elif s.size < size:
            grow = getattr(s, "resize", None)
            if grow is None:
                return None
            grow(size)
        return s

    def announce(self, meter, size, psize, image_crc, restart):
        """EP08 after its checks: erase and announce, or resume the same image."""
        if (self.state == LOADING and not restart and size == self.size
                and psize == self.psize and image_crc == self.crc):
            return False                      # the same image: keep what arrived
        self.state = IDLE
        self._storage_for(size)
        self.erase_pending = True             # done by the first EP09 (see __init__)
        meter.store.reset(ET17)               # all zeros: nothing received
        self.size = size
        self.psize = psize
        self.crc = image_crc
        self.state = LOADING
        self._missing = self.packets
        return True

    def store_packet(self, meter, n, data):
        """EP09 after its checks. The bytes first, then the bit."""
        if self.have(meter, n):
            return
        if self.erase_pending:
            self.storage.erase(self.inactive)
            self.erase_pending = False
        self.storage.write(self.inactive, n * self.psize, data)
        st = meter.store
        st.set_field(ET17, n >> 3, 1, st.field(ET17, n >> 3, 1) | (1 << (n & 7)))
        if self._missing is not None:
            self._missing -= 1

    # -- switching, confirmation, rollback -----------------------------------------
    def _show(self, meter, bank, now):
        """BT01 version and ET03.137 CRC follow the active bank; the alarm
        (BT03 5.6) and the Code Bank Changed event say it changed."""
        st = meter.store
        v = self.versions[bank]
        st.write(BT01, 14, bytes((v >> 8, v & 255)))
        st.set_field(ET03, ET03_CRC, 2, self.crcs[bank])
        events.alarm(meter, 5, 6, True)
        events.log(meter, EE_CODE_BANK_CHANGED, self.crcs[bank], None, meter.utc(now))

    def switch(self, meter, header, trial_s, now):
        from . import fwimage
        new = self.inactive
        self.versions[new] = header.version
        self.crcs[new] = header.crc
        self.active = new
        self.state = TRIAL
        self.trial_fails = bool(header.flags & fwimage.FLAG_FAILS_SELFTEST)
        self.trial_s = trial_s
        self.deadline = now + (trial_s * 1000 if self.trial_fails else BOOT_MS)
        self._show(meter, new, now)

    def tick(self, meter, now):
        """The new image's first run: it confirms itself, or (a failing
        image) the watchdog's timeout rolls the meter back. Returns the
        driver ms of the next thing due here, or None."""
        if self.state != TRIAL or self.deadline is None:
            return None
        if now < self.deadline:
            return self.deadline
        self.deadline = None
        self.state = IDLE
        if self.trial_fails:
            self.active = 1 - self.active
            self.trial_fails = False
            self._show(meter, self.active, now)
        return None


# -- the procedures ----------------------------------------------------------------------

def _refuse(result, reason, extra=b""):
    return result, bytes((reason,)) + extra


def _common(meter):
    b = meter.banks
    if b is None:
        return None, (P.UNRECOGNIZED, b"")
    if meter.store.field(ET04, ET04_SAFE_LOCKED, 1):
        return b, _refuse(P.CONFLICT, R_LOCKED)
    if b.state == TRIAL:
        return b, _refuse(P.CONFLICT, R_IN_TRIAL)
    return b, None


def erase(meter, params, role, now):
    """EP08: image size UINT32, packet size UINT16, image CRC UINT16, [flags
    UINT8: bit 0 erase even when this image is being loaded]. Answers bank
    UINT8, packets UINT16, received UINT16."""
    if meter.banks is None:
        return P.UNRECOGNIZED, b""
    if len(params) not in (8, 9):
        return _refuse(P.INVALID_PARAMETER, R_BAD_LENGTH)
    size = int.from_bytes(bytes(params[0:4]), "little")
    psize = _u16(params, 4)
    image_crc = _u16(params, 6)
    flags = params[8] if len(params) == 9 else 0
    from . import fwimage
    if not 1 <= psize <= MAX_PACKET or size < fwimage.OVERHEAD or flags & 0xFE:
        return _refuse(P.INVALID_PARAMETER, R_BAD_ANNOUNCE)
    bits = meter.store.field(ET11, ET11_BITMAP_SIZE, 2) * 8
    s = meter.banks.storage
    if ((size + psize - 1) // psize > bits
            or (s is not None and s.size < size and getattr(s, "resize", None) is None)):
        return _refuse(P.INVALID_PARAMETER, R_TOO_LARGE)
    b, refused = _common(meter)
    if refused is not None:
        return refused
    b.announce(meter, size, psize, image_crc, flags & 1)
    n = b.packets
    got = n - b.missing(meter)
    return P.COMPLETED, bytes((b.inactive, n & 255, n >> 8, got & 255, got >> 8))


def download(meter, params, role, now):
    """EP09: packet number UINT16, then the packet's bytes (packet size, the
    last one the rest). Answers packets still missing UINT16."""
    b = meter.banks
    if b is None:
        return P.UNRECOGNIZED, b""
    if len(params) < 3:
        return _refuse(P.INVALID_PARAMETER, R_BAD_LENGTH)
    if b.state != LOADING:
        return _refuse(P.CONFLICT, R_NO_DOWNLOAD)
    n = _u16(params, 0)
    want = b.psize if n < b.packets - 1 else b.size - n * b.psize
    if n >= b.packets or len(params) - 2 != want:
        return _refuse(P.INVALID_PARAMETER, R_BAD_PACKET)
    b.store_packet(meter, n, params[2:])
    return P.COMPLETED, b.missing(meter).to_bytes(2, "little")


def switch(meter, params, role, now):
    """EP10: image CRC UINT16 (the announced one), [trial seconds UINT16: how
    long a new image has to confirm itself; 0 or absent: 60]. Answers the
    new active bank UINT8 and its firmware version (MSB first)."""
    if meter.banks is None:
        return P.UNRECOGNIZED, b""
    if len(params) not in (2, 4):
        return _refuse(P.INVALID_PARAMETER, R_BAD_LENGTH)
    b, refused = _common(meter)
    if refused is not None:
        return refused
    if b.state != LOADING:
        return _refuse(P.CONFLICT, R_NO_DOWNLOAD)
    if _u16(params, 0) != b.crc:
        return _refuse(P.INVALID_PARAMETER, R_CRC_MISMATCH)
    left = b.missing(meter)
    if left:
        return _refuse(P.CONFLICT, R_INCOMPLETE,
                       b.first_missing(meter).to_bytes(2, "little") + left.to_bytes(2, "little"))
    from . import fwimage
    bank = b.inactive
    storage = b.storage
    h, found, problem = fwimage.check(lambda off, n: storage.read(bank, off, n), b.size, b.key)
    if problem == "header" or h.crc != b.crc:
        return _refuse(P.CONFLICT, R_BAD_HEADER)
    if not fwimage.model_matches(h.model, meter.store.read(BT01, 4, 8)):
        return _refuse(P.CONFLICT, R_WRONG_MODEL)
    if problem is not None:
        # the bank does not hold what was announced: a meter-detected fault
        events.log(meter, EE_SOFTWARE_CRC, found, None, meter.utc(now))
        return _refuse(P.CONFLICT, R_BAD_CRC if problem == "crc" else R_BAD_MAC)
    trial = _u16(params, 2) if len(params) == 4 else 0
    b.switch(meter, h, trial or DEFAULT_TRIAL_S, now)
    return P.COMPLETED, bytes((b.active, h.version >> 8, h.version & 255))


P.register(EP08, erase)
P.register(EP09, download)
P.register(EP10, switch)


def attach(meter, config=None):
    """meter.banks, the procedures' state, with its non-volatile part.
    config: bank_storage (an object as RamBankStorage), download_key (bytes)."""
    config = config or {}
    b = meter.banks = CodeBanks(meter, config.get("bank_storage"), config.get("download_key"))
    meter.nv_part("codebank", b.meta, b.restore)
    return b
