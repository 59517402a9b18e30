# The AES security mode (ET04.127 = 2, meter/aes_mode.py, an EMULATOR
# PROFILE: docs/security-modes.md) on the MEP port, dual runtime: the message
# layout both ways, every answer code (0x0B bad tag, 0x0C authenticated
# sequence report), the mode rules (RC4 refused once in AES; who may switch
# in; back to RC4 only through AES), and "a refused request changes
# nothing". The PLC port: test_aes_mode_plc.py; the Firmware wiring, ET11.90
# and the CLI: tests/test_aes_vectors.py. The meter here is wired as
# firmware.py wires it, on the small test catalogue (a 256K MicroPython heap
# does not hold the real one next to the AES code).
from osgp_meter import access as A
from osgp_meter import aes_mode as M
from osgp_meter import cipher
from osgp_meter.device import PortLimits, MEP_LIMITS, PLC_LIMITS
from osgp_meter.digest import OmaDigest
from osgp_meter.keys import KeyRing
from osgp_meter.mep import MepServer
import minicat

MAK = bytes([1] * 16)
MBK = bytes([2] * 16)
T0 = 1_790_000_000_000
ET04 = 2048 + 4
ET11 = 2048 + 11
OPTICAL = PortLimits("optical", 4096, 4096, 0xFFFF)
READ_BT01 = b"\x30\x00\x01"

_clock = [T0]


def now():
    _clock[0] += 200              # the MEP port takes one request per 100 ms
    return _clock[0]


def h(text):
    return bytes.fromhex(text)


BT01 = b"EMULOSGP-EMU" + h("10 00 31 55") + h("00 00 00 00 00 00 00 01")
TABLES = dict(minicat.TABLES)
TABLES[1] = (24, A.ALL, 0, 0x01, BT01)
TABLES[ET04] = (140, A.ALL_KEYS, A.FULL | A.ROLE_PK, 0x01, None)   # "config", as in tables/


class Fw:
    """A meter and its MEP port, wired for the AES mode as firmware.py does."""

    def __init__(self, mode, seq):
        from osgp_meter.store import TableStore
        from osgp_meter.device import Meter
        m = self.meter = Meter(TableStore(TABLES), minicat.PROCEDURES)
        keys = KeyRing({A.ROLE_MAK: MAK, A.ROLE_MBK: MBK})
        s = m.store
        self.mep = MepServer(m.executor(MEP_LIMITS), keys, (A.ROLE_MAK, A.ROLE_MBK), seq,
                             on_seq=lambda n: s.set_field(ET04, 103, 4, n))
        self.mep.mode = lambda: s.field(ET04, 127, 1)
        self.mep.ident = lambda: s.read(1, 16, 8)
        cipher.guard_security_mode(m)
        s.set_field(ET04, 127, 1, mode)


def fw(mode=2, seq=1000):
    return Fw(mode, seq)


class Mep:
    """The client side of the MEP port in AES mode (what tools/mep_client.py does)."""

    def __init__(self, f, key=MAK):
        self.f = f
        self.c = cipher.new_aes_ccm(M.derive_key(key))
        self.ident = f.meter.store.read(1, 16, 8)        # BT01.16: the serial number

    def frame(self, req, seq):
        body = M.seal_request(self.c, 0, self.ident, req, seq)
        return bytes((len(body) >> 8, len(body) & 0xFF)) + body

    def send(self, frame):
        out = self.f.mep.feed(frame, now())
        assert out[:2] == bytes((0, len(out) - 2)), out
        return out[2:]

    def ask(self, req, seq):
        """(answer bytes, plaintext response) of one exchange."""
        answer = self.send(self.frame(req, seq))
        return answer, M.open_answer(self.c, 0, self.ident, seq, answer)


def rc4_suite_frame(req, seq, key=MAK, encrypt=False):
    msg = req + seq.to_bytes(4, "big")
    dig = OmaDigest(key).digest(msg)
    if encrypt:
        msg = cipher.mep_cipher(cipher.mep_base_key(key), dig).crypt(msg)
    return bytes((0, len(msg) + 8)) + msg + dig


def test_worked_examples_of_the_docs():
    # docs/security-modes.md (self-computed; tests/test_aes_vectors.py holds
    # the same bytes against OpenSSL's AES-CCM): MAK 01 x 16, serial number
    # 00 .. 01, the meter holds 1000; a full read of BT01 with sequence 1001
    assert M.derive_key(MAK) == h("11 CF 6E CA 5E B4 72 59 C4 60 C5 1E 87 FD 98 41")
    f = fw()
    c = Mep(f)
    assert c.frame(READ_BT01, 1001) == h("00 0F 30 86 9A 00 00 03 E9 AA BD A1 4A 84 AE 75 66")
    out = f.mep.feed(c.frame(READ_BT01, 1001), now())
    assert out == h("00 23 00 D4 63 68 DC 56 96 D7 95 39 79 5F B6 95 E5 BB 3D 14 4C 16 D3"
                    " 20 A4 B1 C1 78 41 2C 6F 7E B0 B6 B3 B8 74")
    # sequence 1000 (not ahead of the held 1000): the sequence report
    f = fw()
    out = f.mep.feed(h("00 0F 30 0F E1 00 00 03 E8 13 E6 41 04 71 CC 79 3C"), now())
    assert out == h("00 0D 0C 00 00 03 E8 CB 22 7A E2 5B D0 32 88")


def test_mep_read_in_aes_mode():
    f = fw()
    c = Mep(f)
    bt01 = f.meter.store.read(1, 0, 24)
    answer, rsp = c.ask(READ_BT01, 1001)
    assert rsp == h("00 00 18") + bt01
    assert answer[0] == 0x00 and answer[3:27] != bt01 and len(answer) == 3 + 24 + 8
    assert f.mep.seq == 1001 and f.meter.store.field(ET04, 103, 4) == 1001
    # the request itself: code and sequence number in clear, the table ID not
    req = c.frame(READ_BT01, 1002)
    assert req[2] == 0x30 and req[-12:-8] == h("00 00 03 EA") and req[3:5] != h("00 01")
    # a partial write, then its read-back
    _, rsp = c.ask(h("4F 08 32 00 00 04 00 03 AA BB CC"), 1003)
    assert rsp == b"\x00"
    _, rsp = c.ask(h("3F 08 32 00 00 04 00 03"), 1004)
    assert rsp == h("00 00 03 AA BB CC")


def test_mep_rc4_suite_is_refused_in_aes_mode_and_changes_nothing():
    f = fw()
    before = f.meter.store.snapshot()
    for enc in (False, True):
        out = f.mep.feed(rc4_suite_frame(h("4F 08 32 00 00 00 00 01 55"), 1001, encrypt=enc), now())
        assert out == h("00 09 0B") + bytes(8)
    assert f.meter.store.snapshot() == before and f.mep.seq == 1000
    assert f.mep.stats[1] == 2 and f.mep.stats[0] == 0


def test_mep_bad_tag_gets_0x0b_and_changes_nothing():
    f = fw()
    c = Mep(f)
    good = c.frame(h("4F 08 32 00 00 00 00 01 55"), 1001)
    before = f.meter.store.snapshot()
    for i in range(2, len(good)):               # code, args, seq and tag
        bad = bytearray(good)
        bad[i] ^= 0x04
        assert c.send(bytes(bad)) == h("0B") + bytes(8), i
    assert c.send(Mep(f, MAK[:15] + b"\x02").frame(READ_BT01, 1001)) == h("0B") + bytes(8)
    other = Mep(f)
    other.ident = bytes(7) + b"\x09"            # another meter's serial number
    assert c.send(other.frame(READ_BT01, 1001)) == h("0B") + bytes(8)
    assert f.meter.store.snapshot() == before and f.mep.seq == 1000
    assert c.send(good)[0] == 0x00              # the genuine one still works


def test_mep_out_of_window_gets_an_authenticated_sequence_report():
    f = fw()
    c = Mep(f)
    before = f.meter.store.snapshot()
    for seq in (1000, 999, 1009, 5):
        answer, rsp = c.ask(READ_BT01, seq)
        assert rsp == h("0C 00 00 03 E8"), seq
        assert answer[:5] == h("0C 00 00 03 E8") and len(answer) == 13
    assert c.send(c.frame(READ_BT01, 1009)) == answer      # a function of the held number
    assert f.meter.store.snapshot() == before and f.mep.stats[2] == 5
    # a forged report (held number changed) does not verify
    forged = answer[:4] + b"\xE9" + answer[5:]
    assert M.open_answer(c.c, 0, c.ident, 1009, forged) is None
    # 8 ahead is still in the window
    assert c.ask(READ_BT01, 1008)[1][0] == 0x00


def test_mep_retry_gets_the_same_answer_without_running_twice():
    f = fw()
    c = Mep(f)
    frame = c.frame(h("4F 08 32 00 00 00 00 01 55"), 1001)
    first = c.send(frame)
    assert c.send(frame) == first and f.mep.stats[0] == 1


def test_mep_mbk_in_aes_mode():
    f = fw()
    c = Mep(f, MBK)
    assert c.ask(READ_BT01, 1001)[1][:3] == h("00 00 18")
    # MBK may not write ET04 (the catalogue), so it cannot leave AES mode
    assert c.ask(h("4F 08 04 00 00 7F 00 01 00"), 1002)[1] == b"\x03"
    assert f.meter.store.field(ET04, 127, 1) == 2


def test_switching_into_aes_over_rc4_mep_then_rc4_is_refused():
    f = fw(0)
    seq = 1001
    frame = rc4_suite_frame(h("4F 08 04 00 00 7F 00 01 02"), seq, encrypt=True)
    out = f.mep.feed(frame, now())
    # answered in the request's own suite (RC4, digest over request || 00)
    msg = h("4F 08 04 00 00 7F 00 01 02") + seq.to_bytes(4, "big")
    dig = OmaDigest(MAK).digest(msg)
    rc4 = cipher.mep_cipher(cipher.mep_base_key(MAK), dig)
    rc4.crypt(msg)
    assert out == h("00 09") + rc4.crypt(b"\x00") + OmaDigest(MAK).digest(msg + b"\x00")
    assert f.meter.store.field(ET04, 127, 1) == 2
    assert f.mep.feed(frame, now()) == out                 # a retry: the same answer
    assert f.mep.feed(rc4_suite_frame(READ_BT01, 1002), now()) == h("00 09 0B") + bytes(8)
    assert Mep(f).ask(READ_BT01, 1002)[1][:3] == h("00 00 18")


def test_who_may_switch_into_aes_mode():
    f = fw(0)
    m = f.meter
    w = h("4F 08 04 00 00 7F 00 01 02")
    before = m.store.snapshot()
    assert m.execute(w, A.ROLE_PK, OPTICAL, T0) == b"\x03"      # PK may write ET04, not this
    assert m.execute(w, A.ROLE_MBK, MEP_LIMITS, T0) == b"\x03"
    for v in (1, 3, 0xFF):                                      # 1 reserved, others undefined
        assert m.execute(w[:-1] + bytes((v,)), A.ROLE_MK, OPTICAL, T0) == b"\x05"
    assert m.store.snapshot() == before
    # a full ET04 write by PK that leaves ET04.127 as it is: allowed
    assert m.execute(h("4F 08 04 00 00 7E 00 02 00 00"), A.ROLE_PK, OPTICAL, T0) == b"\x00"
    for role, limits in ((A.ROLE_MK, OPTICAL), (A.ROLE_MAK, MEP_LIMITS), (A.ROLE_PLC, PLC_LIMITS)):
        m.store.set_field(ET04, 127, 1, 0)
        assert m.execute(w, role, limits, T0) == b"\x00" and m.store.field(ET04, 127, 1) == 2


def test_back_to_rc4_only_through_an_aes_request():
    f = fw()
    m = f.meter
    back = h("4F 08 04 00 00 7F 00 01 00")
    before = m.store.snapshot()
    assert m.execute(back, A.ROLE_MK, OPTICAL, T0) == b"\x03"    # not over the optical port
    assert m.execute(back, A.ROLE_PK, OPTICAL, T0) == b"\x03"
    assert m.store.snapshot() == before
    c = Mep(f)
    answer, rsp = c.ask(back, 1001)
    assert rsp == b"\x00" and len(answer) == 9 and answer != h("00") + bytes(8)   # AES-sealed
    assert m.store.field(ET04, 127, 1) == 0
    rc4 = rc4_suite_frame(READ_BT01, 1002)
    out = f.mep.feed(rc4, now())
    assert out[2:5] == h("00 00 18")                             # RC4 mode again
    assert c.send(c.frame(READ_BT01, 1003)) == h("0B") + bytes(8)
