# Code banks and firmware download (meter/codebank.py, meter/fwimage.py):
# EP08/EP09/EP10, the ET17 bitmap, every refusal reason, the switch (BT01,
# ET03.137, BT03 5.6, event EE14), the self-confirmation and the rollback,
# and a power cut at any packet. Dual runtime, bare asserts.
from osgp_meter import access as A
from osgp_meter import catalogue_data
from osgp_meter import codebank as CB
from osgp_meter import crc
from osgp_meter import events
from osgp_meter import fwimage as FW
from osgp_meter import procedures as P
from osgp_meter.device import Meter
from osgp_meter.store import TableStore

T0 = 1_790_000_000_000
BT01 = 1
BT03 = 3
BT71 = 71
ET03 = 2048 + 3
ET04 = 2048 + 4
ET11 = 2048 + 11
ET17 = 2048 + 17
EP08, EP09, EP10 = 2048 + 8, 2048 + 9, 2048 + 10
V_OLD = 0x38C1                                   # the catalogue's BT01 firmware 3.70.1
V_NEW = FW.pack_version(3, 71, 2)
PS = 16                                          # packet size of these tests


def tables():
    # a 20-entry history log (the default 1.4 KB one is too big next to the
    # firmware in a small MicroPython heap)
    et11 = bytearray(catalogue_data.TABLES[ET11][4])
    return {BT71: bytes((0x06, 8, 19, 2, 2, 20, 0, 0, 0)), ET11: bytes(et11)}


def meter(storage=None, key=None):
    m = Meter(TableStore(catalogue_data.TABLES, tables()), catalogue_data.PROCEDURES)
    m.set_utc(T0 // 1000, T0)
    CB.attach(m, {"bank_storage": storage, "download_key": key})
    return m


def image(n=100, version=V_NEW, flags=0, key=FW.DEFAULT_KEY, model=b"OSGP-EMU"):
    return FW.build(bytes((i * 7 + 3) & 255 for i in range(n)), version, model, key, flags)


def crc_of(img):
    return img[20] | (img[21] << 8)


def call(m, number, params, now=T0, role=A.ROLE_MK):
    return P.run(m, number, bytes(params), role, now)


def announce(m, img, ps=PS, flags=None, now=T0):
    p = len(img).to_bytes(4, "little") + ps.to_bytes(2, "little") + crc_of(img).to_bytes(2, "little")
    if flags is not None:
        p += bytes((flags,))
    return call(m, EP08, p, now)


def packet(m, img, n, ps=PS, data=None, now=T0):
    if data is None:
        data = img[n * ps:(n + 1) * ps]
    return call(m, EP09, n.to_bytes(2, "little") + data, now)


def count(img, ps=PS):
    return (len(img) + ps - 1) // ps


def load(m, img, ps=PS, skip=()):
    assert announce(m, img, ps)[0] == P.COMPLETED
    for n in range(count(img, ps)):
        if n not in skip:
            assert packet(m, img, n, ps)[0] == P.COMPLETED


def switch(m, img, trial=None, now=T0):
    p = crc_of(img).to_bytes(2, "little")
    if trial is not None:
        p += trial.to_bytes(2, "little")
    return call(m, EP10, p, now)


def version(m):
    return (m.store.field(BT01, 14, 1) << 8) | m.store.field(BT01, 15, 1)


def evs(m):
    return [(e[3], e[4]) for e in events.entries(m)]


def state(m):
    return m.store.snapshot(), m.banks.meta()


# -- the image format --------------------------------------------------------------------

def test_hmac_sha256_matches_rfc4231_case_2():
    want = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    m = FW.Mac(b"Jefe")
    m.update(b"what do ya want ")
    m.update(b"for nothing?")
    assert m.digest() == bytes.fromhex(want)


def test_image_layout_and_check():
    img = image(50)
    assert len(img) == FW.HEADER + 50 + FW.MAC_LEN
    assert img[0:6] == b"OEFW\x01\x00" and img[6:8] == bytes((V_NEW >> 8, V_NEW & 255))
    assert img[8:16] == b"OSGP-EMU" and img[16:20] == bytes((50, 0, 0, 0))
    assert crc_of(img) == crc.crc16_x25(img[0:20] + img[24:74])
    assert img[74:] == FW.mac(FW.DEFAULT_KEY, img[0:74])
    h, c, problem = FW.check(lambda o, n: img[o:o + n], len(img), FW.DEFAULT_KEY)
    assert problem is None and h.version == V_NEW and c == h.crc and h.length == 50
    bad = bytearray(img)
    bad[30] ^= 1
    assert FW.check(lambda o, n: bytes(bad[o:o + n]), len(img), FW.DEFAULT_KEY)[2] == "crc"
    assert FW.check(lambda o, n: img[o:o + n], len(img), b"another key 1234")[2] == "mac"
    assert FW.check(lambda o, n: img[o:o + n], len(img) + 1, FW.DEFAULT_KEY)[2] == "header"
    assert FW.parse_header(b"OEFW\x02" + bytes(19)) is None
    assert FW.version_text(0x3155) == "3.10.21" and FW.pack_version(3, 10, 21) == 0x3155


# -- a download, the bitmap, the switch ----------------------------------------------------

def test_download_and_switch():
    m = meter()
    img = image()
    r, d = announce(m, img)
    n = count(img)
    assert r == P.COMPLETED and d == bytes((1, n, 0, 0, 0))      # bank B, n packets, 0 received
    assert m.banks.storage.size == len(img)                       # RAM sized to the image
    for i in range(n):
        r, d = packet(m, img, i)
        assert r == P.COMPLETED and d == (n - i - 1).to_bytes(2, "little")
    assert n == 9 and m.store.read(ET17, 0, 3) == b"\xff\x01\x00"     # 9 bits, LSB first
    r, d = switch(m, img)
    assert r == P.COMPLETED and d == bytes((1, V_NEW >> 8, V_NEW & 255))
    assert version(m) == V_NEW and m.store.field(ET03, 137, 2) == crc_of(img)
    assert m.store.field(BT03, 5, 1) & 0x40                       # BT03 5.6 code bank changed
    assert (CB.EE_CODE_BANK_CHANGED, crc_of(img)) in evs(m)
    assert m.banks.state == CB.TRIAL and m.banks.active == 1
    # the new image confirms itself at its first tick
    assert m.banks.tick(m, T0 + 10) == T0 + CB.BOOT_MS
    assert m.banks.tick(m, T0 + CB.BOOT_MS) is None
    assert m.banks.state == CB.IDLE and m.banks.active == 1 and version(m) == V_NEW
    # the next download goes to bank A, the old one
    assert announce(m, image(40, FW.pack_version(3, 72, 0)))[1][0] == 0


def test_bitmap_bit_order_is_lsb_first():
    m = meter()
    img = image(300)
    announce(m, img)
    for n in (0, 9, 17):
        packet(m, img, n)
    assert m.store.read(ET17, 0, 4) == bytes((0x01, 0x02, 0x02, 0))
    assert m.banks.missing(m) == count(img) - 3


def test_repeated_packet_is_accepted_and_not_rewritten():
    m = meter()
    img = image()
    announce(m, img)
    assert packet(m, img, 2)[1] == (count(img) - 1).to_bytes(2, "little")
    other = bytes(PS)
    r, d = packet(m, img, 2, data=other)
    assert r == P.COMPLETED and d == (count(img) - 1).to_bytes(2, "little")
    assert m.banks.storage.read(1, 2 * PS, PS) == img[2 * PS:3 * PS]


def test_the_same_announcement_resumes_and_the_restart_flag_erases():
    m = meter()
    img = image()
    announce(m, img)
    packet(m, img, 0)
    packet(m, img, 3)
    assert announce(m, img)[1][3:5] == bytes((2, 0))               # 2 received: kept
    assert announce(m, img, flags=1)[1][3:5] == bytes((0, 0))      # erased
    assert m.store.read(ET17, 0, 1) == b"\x00"


class FixedStorage:
    """A bank storage of fixed size, as a board's flash (no resize)."""

    def __init__(self, size):
        self.size = size
        self.banks = [bytearray(size), bytearray(size)]

    def erase(self, bank):
        self.banks[bank][:] = b"\xff" * self.size

    def write(self, bank, offset, data):
        self.banks[bank][offset:offset + len(data)] = data

    def read(self, bank, offset, n):
        return bytes(self.banks[bank][offset:offset + n])


def test_a_fixed_size_storage_takes_what_fits_and_refuses_more():
    m = meter(FixedStorage(200))
    img = image()
    r, d = announce(m, image(200))
    assert (r, d) == (P.INVALID_PARAMETER, bytes((CB.R_TOO_LARGE,)))
    load(m, img)
    assert switch(m, img)[0] == P.COMPLETED and m.banks.storage.banks[1][:len(img)] == img


# -- every refusal: a clear answer, nothing changed -------------------------------------------

def refused(m, fn, want):
    before = state(m)
    got = fn()
    assert got == want, (got, want)
    assert state(m) == before


def test_ep08_refusals():
    m = meter()
    img = image()
    L = len(img).to_bytes(4, "little")
    C = crc_of(img).to_bytes(2, "little")
    bad = (P.INVALID_PARAMETER, bytes((CB.R_BAD_LENGTH,)))
    refused(m, lambda: call(m, EP08, L + b"\x10\x00"), bad)
    refused(m, lambda: call(m, EP08, L + b"\x10\x00" + C + b"\x00\x00"), bad)
    ann = (P.INVALID_PARAMETER, bytes((CB.R_BAD_ANNOUNCE,)))
    refused(m, lambda: call(m, EP08, L + b"\x00\x00" + C), ann)                 # packet size 0
    refused(m, lambda: call(m, EP08, L + bytes((251, 0)) + C), ann)             # > 250
    refused(m, lambda: call(m, EP08, bytes((39, 0, 0, 0, 16, 0)) + C), ann)     # < header + MAC
    refused(m, lambda: call(m, EP08, L + b"\x10\x00" + C + b"\x02"), ann)       # unknown flag
    # 10,000 packets at most (ET17: 1250 bytes)
    refused(m, lambda: call(m, EP08, (10001).to_bytes(4, "little") + b"\x01\x00" + C),
            (P.INVALID_PARAMETER, bytes((CB.R_TOO_LARGE,))))
    assert call(m, EP08, (10000).to_bytes(4, "little") + b"\x01\x00" + C)[0] == P.COMPLETED
    m.store.set_field(ET04, 102, 1, 1)                   # safe image locked
    refused(m, lambda: announce(m, img), (P.CONFLICT, bytes((CB.R_LOCKED,))))
    refused(m, lambda: switch(m, img), (P.CONFLICT, bytes((CB.R_LOCKED,))))


def test_ep09_refusals():
    m = meter()
    img = image()
    refused(m, lambda: packet(m, img, 0), (P.CONFLICT, bytes((CB.R_NO_DOWNLOAD,))))
    announce(m, img)
    bad = (P.INVALID_PARAMETER, bytes((CB.R_BAD_PACKET,)))
    n = count(img)
    refused(m, lambda: call(m, EP09, b"\x00\x00"), (P.INVALID_PARAMETER, bytes((CB.R_BAD_LENGTH,))))
    refused(m, lambda: packet(m, img, n, data=b"\x00"), bad)                     # past the end
    refused(m, lambda: packet(m, img, 0, data=img[0:PS - 1]), bad)               # short
    refused(m, lambda: packet(m, img, 0, data=img[0:PS + 1]), bad)               # long
    last = len(img) - (n - 1) * PS
    refused(m, lambda: packet(m, img, n - 1, data=img[-last:] + b"\x00"), bad)   # last: the rest
    assert packet(m, img, n - 1)[0] == P.COMPLETED


def test_ep10_refusals_keep_the_old_bank():
    m = meter()
    img = image()
    refused(m, lambda: switch(m, img), (P.CONFLICT, bytes((CB.R_NO_DOWNLOAD,))))
    load(m, img, skip=(1, 5))
    refused(m, lambda: call(m, EP10, b"\x01"), (P.INVALID_PARAMETER, bytes((CB.R_BAD_LENGTH,))))
    refused(m, lambda: call(m, EP10, ((crc_of(img) + 1) & 0xFFFF).to_bytes(2, "little")),
            (P.INVALID_PARAMETER, bytes((CB.R_CRC_MISMATCH,))))
    refused(m, lambda: switch(m, img), (P.CONFLICT, bytes((CB.R_INCOMPLETE, 1, 0, 2, 0))))
    packet(m, img, 1)
    refused(m, lambda: switch(m, img), (P.CONFLICT, bytes((CB.R_INCOMPLETE, 5, 0, 1, 0))))
    assert version(m) == V_OLD and m.banks.active == 0


def _refuses_whole(img, announced, reason, logged):
    """Load `img` announcing `announced`'s size and CRC: EP10 refuses."""
    m = meter()
    assert announce(m, announced)[0] == P.COMPLETED
    for n in range(count(img)):
        packet(m, img, n)
    snap = m.store.snapshot()
    r, d = switch(m, announced)
    assert (r, d) == (P.CONFLICT, bytes((reason,)))
    assert version(m) == V_OLD and m.banks.active == 0 and m.banks.state == CB.LOADING
    assert m.store.field(BT03, 5, 1) & 0x40 == 0
    found = [e for e in evs(m) if e[0] == CB.EE_SOFTWARE_CRC]
    assert len(found) == (1 if logged else 0)
    if not logged:
        assert m.store.snapshot() == snap


def test_ep10_refuses_a_corrupt_image():
    good = image()
    bad = bytearray(good)
    bad[40] ^= 0x10                                  # body byte: the CRC finds it
    _refuses_whole(bytes(bad), good, CB.R_BAD_CRC, True)


def test_ep10_refuses_a_forged_image():
    good = image()
    forged = image(key=b"not the real key")          # right CRC, wrong MAC
    assert crc_of(forged) == crc_of(good)
    _refuses_whole(forged, good, CB.R_BAD_MAC, True)


def test_ep10_refuses_a_bad_header_and_another_model():
    good = image()
    junk = b"JUNK" + good[4:]
    _refuses_whole(junk, good, CB.R_BAD_HEADER, False)
    other = image(model=b"OTHER")
    _refuses_whole(other, other, CB.R_WRONG_MODEL, False)


def test_without_code_banks_the_procedures_are_unrecognized():
    m = Meter(TableStore(catalogue_data.TABLES, tables()), catalogue_data.PROCEDURES)
    for number in (EP08, EP09, EP10):
        assert call(m, number, bytes(8)) == (P.UNRECOGNIZED, b"")


def test_broadcast_role_may_download_and_readers_may_not():
    m = meter()
    img = image()
    p = len(img).to_bytes(4, "little") + bytes((PS, 0)) + crc_of(img).to_bytes(2, "little")
    assert call(m, EP08, p, role=A.ROLE_BCAST)[0] == P.COMPLETED
    assert call(m, EP09, b"\x00\x00" + img[:PS], role=A.ROLE_BCAST)[0] == P.COMPLETED
    assert call(m, EP09, b"\x01\x00" + img[PS:2 * PS], role=A.ROLE_RK)[0] == P.NO_AUTHORIZATION


# -- trial, confirmation, rollback ------------------------------------------------------------

def test_an_image_that_fails_its_self_test_is_rolled_back():
    m = meter()
    img = image(flags=FW.FLAG_FAILS_SELFTEST)
    load(m, img)
    assert switch(m, img, trial=30)[0] == P.COMPLETED
    assert version(m) == V_NEW and m.banks.state == CB.TRIAL
    # no second download or switch while the trial runs
    refused(m, lambda: announce(m, image(20)), (P.CONFLICT, bytes((CB.R_IN_TRIAL,))))
    refused(m, lambda: switch(m, img), (P.CONFLICT, bytes((CB.R_IN_TRIAL,))))
    assert m.banks.tick(m, T0 + 29_999) == T0 + 30_000           # not confirmed, not yet
    assert version(m) == V_NEW
    assert m.banks.tick(m, T0 + 30_000) is None                   # the watchdog's timeout
    assert version(m) == V_OLD and m.banks.active == 0 and m.banks.state == CB.IDLE
    assert m.store.field(ET03, 137, 2) == 0                       # the factory image's CRC
    changed = [e for e in evs(m) if e[0] == CB.EE_CODE_BANK_CHANGED]
    assert changed == [(CB.EE_CODE_BANK_CHANGED, crc_of(img)), (CB.EE_CODE_BANK_CHANGED, 0)]


def test_a_failing_image_is_rolled_back_at_the_next_start():
    m = meter()
    img = image(flags=FW.FLAG_FAILS_SELFTEST)
    load(m, img)
    switch(m, img)
    tabs, part = m.store.snapshot(), m.banks.meta()
    r = rebuild(tabs, part, m.banks.storage)
    assert version(r) == V_NEW and r.banks.state == CB.TRIAL and r.banks.deadline == 0
    assert r.banks.tick(r, T0 + 5) is None
    assert version(r) == V_OLD and r.banks.active == 0


def test_a_good_image_confirms_at_the_next_start():
    m = meter()
    img = image()
    load(m, img)
    switch(m, img)
    r = rebuild(m.store.snapshot(), m.banks.meta(), m.banks.storage)
    r.banks.tick(r, T0 + 5)
    assert version(r) == V_NEW and r.banks.active == 1 and r.banks.state == CB.IDLE


def test_firmware_tick_confirms_and_reports_the_deadline():
    from osgp_meter.firmware import Firmware
    fw = Firmware({"image": tables(), "codebanks": True}, T0)
    m = fw.meter
    img = image(flags=FW.FLAG_FAILS_SELFTEST)
    load(m, img)
    switch(m, img, trial=5)
    assert fw.tick(T0 + 1) == T0 + 5000
    assert fw.tick(T0 + 5000) is None and version(m) == V_OLD


# -- power loss ------------------------------------------------------------------------------

def rebuild(tabs, part, storage):
    """A meter after a power cut: the committed NV tables, the committed
    bank metadata and the bank storage (which keeps what was written)."""
    m = meter(storage)
    for tid, data in tabs.items():
        if catalogue_data.TABLES[tid][3] & 0x01:     # F_NV: RAM tables are lost
            m.store.write(tid, 0, data)
    m.banks.restore(part)
    return m


def test_power_cut_at_every_packet_resumes_from_the_bitmap():
    img = image(120)
    n = count(img)
    storage = CB.RamBankStorage(len(img))
    m = meter(storage)
    announce(m, img)
    sent = 0
    for cut in range(n):
        packet(m, img, cut)
        sent += 1
        # the cut: the bytes of the next packet reached the bank, its bit did not
        tabs, part = m.store.snapshot(), m.banks.meta()
        if cut + 1 < n:
            storage.write(1, (cut + 1) * PS, img[(cut + 1) * PS:(cut + 2) * PS])
        m = rebuild(tabs, part, storage)
        assert m.banks.state == CB.LOADING and m.banks.missing(m) == n - cut - 1
        r, d = announce(m, img)                       # the DC's resume: same image
        assert r == P.COMPLETED and d[3] | (d[4] << 8) == cut + 1
    assert sent == n and switch(m, img)[0] == P.COMPLETED and version(m) == V_NEW


def test_power_cut_mid_download_then_finish_from_the_bitmap():
    img = image(200)
    storage = CB.RamBankStorage(len(img))
    m = meter(storage)
    load(m, img, skip=range(7, count(img)))
    # a cut between the bytes and the bit of packet 7: a resend costs nothing more
    storage.write(1, 7 * PS, img[7 * PS:8 * PS])
    m = rebuild(m.store.snapshot(), m.banks.meta(), storage)
    missing = [i for i in range(count(img)) if not m.banks.have(m, i)]
    assert missing == list(range(7, count(img)))
    for i in missing:
        packet(m, img, i)
    assert switch(m, img)[0] == P.COMPLETED and m.banks.active == 1


def test_the_erase_waits_for_the_first_packet_after_a_committed_empty_bitmap():
    img = image(200)
    storage = CB.RamBankStorage(len(img))
    m = meter(storage)
    load(m, img, skip=range(5, count(img)))
    other = image(200, FW.pack_version(3, 72, 0))
    assert announce(m, other)[0] == P.COMPLETED        # a new image: erase pending
    assert storage.read(1, 0, PS) == img[0:PS]          # not erased yet
    assert m.store.read(ET17, 0, 1) == b"\x00" and m.banks.meta()[3] & 2
    # a cut here: the empty bitmap and the pending erase are what was committed
    m = rebuild(m.store.snapshot(), m.banks.meta(), storage)
    assert m.banks.erase_pending and m.banks.missing(m) == count(other)
    packet(m, other, 7)
    assert storage.read(1, 0, PS) == b"\xff" * PS and not m.banks.erase_pending
    for n in range(count(other)):
        packet(m, other, n)
    assert switch(m, other)[0] == P.COMPLETED and version(m) == FW.pack_version(3, 72, 0)
