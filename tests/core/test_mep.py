# The MEP port, byte for byte: the worked examples of the OSGP MEP Client
# Developer's Guide (reference/osgp-application.md 1.4, 3.1, 6.2), sequence
# window, retries, RC4 mode, framing and timing rules.
from osgp_meter import access as A
from osgp_meter import cipher
from osgp_meter.device import MEP_LIMITS
from osgp_meter.digest import OmaDigest
from osgp_meter.keys import KeyRing
from osgp_meter.mep import MepServer
import minicat

MAK = bytes([1] * 16)
MBK = bytes([2] * 16)
T0 = 1_700_000_000_000


def server(seq, meter=None):
    m = meter or minicat.meter()
    keys = KeyRing({A.ROLE_MAK: MAK, A.ROLE_MBK: MBK})
    return MepServer(m.executor(MEP_LIMITS), keys, (A.ROLE_MAK, A.ROLE_MBK), seq), m


def h(text):
    return bytes.fromhex(text)


def test_guide_example_out_of_window_sequence_gets_0x0c():
    # [MEP p.15-16]: partial read of BT23 with sequence 01020304 while the
    # meter holds 77635B90: the answer carries the meter's number, and its
    # digest covers request || response.
    s, _ = server(0x77635B90)
    out = s.feed(h("00 14 3F 00 17 00 00 00 00 2C 01 02 03 04 74 86 1F 6D 76 58 DD 56"), T0)
    assert out == h("00 0D 0C 77 63 5B 90 35 86 3C 1D F5 B9 14 82")


def test_guide_example_partial_write_answer_has_the_same_digest():
    # [MEP p.17]: write 1 byte at offset 0x1E of table 0x0832 (ET50).
    s, m = server(0x77636E2E)
    out = s.feed(h("00 15 4F 08 32 00 00 1E 00 01 01 77 63 6E 2F 86 E5 0E 26 67 D1 E6 3C"), T0)
    assert out == h("00 09 00 86 E5 0E 26 67 D1 E6 3C")
    assert m.store.read(2048 + 50, 0x1E, 1) == b"\x01"
    assert s.seq == 0x77636E2F


def test_guide_example_procedure_write_of_bt07():
    # [MEP p.53-54]: EP17 "remove MEP device" written into BT07; the write is
    # answered 00 with the request's own digest (zero-padding property).
    s, m = server(0x5B4E4301)
    out = s.feed(h("00 17 40 00 07 00 06 11 08 07 00 F8 03 5B 4E 43 09 69 7A B2 01 49 7E 9C F7"), T0)
    assert out == h("00 09 00 69 7A B2 01 49 7E 9C F7")
    assert m.store.read(8, 0, 4) == h("11 08 07 06")   # EP17 not in this catalogue: unrecognized


def request(seq, req, key=MAK, encrypt=False):
    msg = h(req) + seq.to_bytes(4, "big")
    d = OmaDigest(key)
    st = d.start(msg)
    dig = st.finish_copy()
    rc4 = None
    body = msg
    if encrypt:
        rc4 = cipher.mep_cipher(cipher.mep_base_key(key), dig)
        body = rc4.crypt(msg)
    n = len(body) + 8
    return bytes((n >> 8, n & 0xFF)) + body + dig, st, rc4


def answer(out, st, rc4=None):
    assert (out[0] << 8 | out[1]) == len(out) - 2
    payload, dig = out[2:-8], out[-8:]
    plain = rc4.crypt(payload) if rc4 is not None else payload
    st.update(plain)
    assert st.finish() == dig
    return plain


def test_sequence_window_is_eight_ahead():
    s, _ = server(100)
    for i, (seq, ok) in enumerate(((100, False), (109, False), (108, True), (108, False), (107, False), (116, True))):
        # (a different request each time: an identical one is a retry)
        frame, st, _ = request(seq, "3F 00 28 00 00 00 00 %02X" % (i + 1))
        rsp = answer(s.feed(frame, T0 + i * 1000), st)
        if ok:
            assert rsp[0] == 0
        else:
            assert rsp[0] == 0x0C


def test_sequence_wraps_around():
    s, _ = server(0xFFFFFFFE)
    frame, st, _ = request(2, "30 00 28")
    assert answer(s.feed(frame, T0), st)[0] == 0
    assert s.seq == 2


def test_mbk_is_tried_after_mak_and_limits_access():
    s, m = server(1)
    frame, st, _ = request(2, "40 00 28 00 01 09", key=MBK)
    assert answer(s.feed(frame, T0), st) == b"\x03"
    frame, st, _ = request(3, "30 00 28", key=MBK)
    assert answer(s.feed(frame, T0 + 200), st)[0] == 0


def test_bad_digest_gets_plain_0x0b_and_changes_nothing():
    s, m = server(1)
    frame, st, _ = request(2, "40 00 28 00 01 09", key=bytes(16))
    out = s.feed(frame, T0)
    assert out == h("00 09 0B") + bytes(8)
    assert m.store.written == {} and s.seq == 1


def test_rc4_mode_request_and_encrypted_answers():
    s, m = server(10)
    frame, st, rc4 = request(11, "3F 00 28 00 00 00 00 03", encrypt=True)
    out = s.feed(frame, T0)
    assert answer(out, st, rc4) == h("00 00 03 01 02 03")
    assert out[2:5] != h("00 00 03")       # really encrypted on the wire
    # an out-of-window encrypted request: the 0x0C answer is encrypted too
    frame, st, rc4 = request(50, "30 00 28", encrypt=True)
    assert answer(s.feed(frame, T0 + 200), st, rc4) == h("0C 00 00 00 0B")


def test_identical_retry_gets_the_same_answer_without_running_twice():
    s, m = server(1)
    frame, st, _ = request(2, "4F 00 28 00 00 00 00 01 42")
    first = s.feed(frame, T0)
    m.store.write(40, 0, b"\x07")
    assert s.feed(frame, T0 + 600) == first
    assert m.store.read(40, 0, 1) == b"\x07"


def test_too_fast_requests_are_dropped():
    s, _ = server(1)
    frame, st, _ = request(2, "30 00 28")
    assert s.feed(frame, T0)
    frame, st, _ = request(3, "30 00 28")
    assert s.feed(frame, T0 + 50) == b""
    assert answer(s.feed(frame, T0 + 150), st)[0] == 0


def test_split_frame_and_inter_byte_gap():
    s, _ = server(1)
    frame, st, _ = request(2, "30 00 28")
    assert s.feed(frame[:5], T0) == b""
    assert answer(s.feed(frame[5:], T0 + 40), st)[0] == 0
    frame, st, _ = request(3, "30 00 28")
    assert s.feed(frame[:5], T0 + 1000) == b""
    assert s.feed(frame[5:], T0 + 1100) == b""     # 100 ms gap: the first part was dropped
    assert answer(s.feed(frame, T0 + 1200), st)[0] == 0


def test_long_answers_leave_in_117_byte_segments():
    s, m = server(1)
    frame, st, _ = request(2, "3F 00 1E 00 00 00 00 C8")   # 200 bytes of BT30 data
    first = s.feed(frame, T0)
    assert len(first) == 117
    assert s.deadline == T0 + 121 + 25                     # 117 bytes at 9600 Bd, then 25 ms
    assert s.poll(T0 + 100) == b""
    rest = s.poll(T0 + 146)
    out = first + rest
    assert len(out) == 2 + 3 + 200 + 8
    assert answer(out, st)[:3] == h("00 00 C8")
    assert s.deadline is None


def test_alert_every_second_while_raised_held_off_after_frames():
    s, _ = server(1)
    s.alert = True
    assert s.poll(T0) == h("00 00")
    assert s.poll(T0 + 500) == b""
    assert s.poll(T0 + 1000) == h("00 00")
    frame, st, _ = request(2, "30 00 28")
    s.feed(frame, T0 + 1500)
    assert s.poll(T0 + 2000) == b""
    assert s.poll(T0 + 2500) == h("00 00")


def test_garbage_is_dropped_without_an_answer():
    s, m = server(1)
    for junk in (h("FF FF 01 02"), h("00 05 01 02 03 04 05"), h("00 00"), h("01")):
        assert s.feed(junk, T0) == b""
        T = T0
    assert m.store.written == {} and s.seq == 1


def test_unsecured_test_mode():
    m = minicat.meter()
    s = MepServer(m.executor(MEP_LIMITS), KeyRing(), (A.ROLE_MAK,), secure=False)
    assert s.feed(h("00 03 30 00 28"), T0) == h("00 0B 00 00 08 01 02 03 00 00 00 00 00")


def test_idt_version_change_moves_the_sequence_number_by_25():
    # [MEP p.55]: clients must re-synchronise and re-read the dimensions.
    s, m = server(500)
    m.on_idt = s.idt_changed
    frame, st, _ = request(501, "4F 08 04 00 00 74 00 01 07")   # ET04.116 := 7
    assert answer(s.feed(frame, T0), st) == b"\x00"
    assert s.seq == 526
    frame, st, _ = request(502, "30 00 28")
    assert answer(s.feed(frame, T0 + 200), st) == h("0C 00 00 02 0E")
    m.bump_idt()
    assert s.seq == 551 and m.store.read(2048 + 4, 116, 1) == b"\x08"
