# Key changes (EP15 / EP24 / EP25, meter/keys.py, docs/key-management.md):
# the KW-RC4 wrap and its worked example, every result code, who may call,
# "the answer is still under the old key, the next request needs the new
# one" on PLC (plain and RC4) and MEP, the usage counters and their events,
# and the keys' non-volatile part.
from osgp_meter import access as A
from osgp_meter import events
from osgp_meter import keys as K
from osgp_meter import lontalk as L
from osgp_meter.keys import KeyRing
from plc_util import frame, osgp, answer, h, KEY, BKEY, T0
import bcast_util as B

ET04 = 2048 + 4
ET11 = 2048 + 11
EE31 = 2048 + 31
EE33 = 2048 + 33
NEW = bytes(range(0xA1, 0xAD))       # A1 .. AC


def state(f):
    return f.meter.store.snapshot(), dict(f.keys.keys), f.keys.encode()


def test_wrap_worked_example():
    # docs/key-management.md: EP15, key_id 0 (unicast), 01..0C -> A1..AC
    p = K.change_params(KEY, K.EP15, 0, NEW)
    assert p == h("00 66 AA 2C 01 A0 DC 71 C0 EB 62 9B F5 C6 39 22 3A BA 7D 82 63")
    assert K.unwrap(KEY, K.EP15, 0, p[1:]) == NEW
    assert K.unwrap(KEY, K.EP15, 1, p[1:]) is None             # bound to the key ID
    assert K.unwrap(KEY, K.EP24, 0, p[1:]) is None             # ... and the procedure
    assert K.unwrap(BKEY, K.EP15, 0, p[1:]) is None            # ... and the KEK
    bad = bytearray(p[1:])
    bad[3] ^= 1
    assert K.unwrap(KEY, K.EP15, 0, bytes(bad)) is None
    for kek, n in ((B.MAK, 16), (B.MK, 20)):                  # 16- and 20-byte keys
        new = bytes(range(n))
        assert K.unwrap(kek, K.EP24, 1, K.wrap(kek, K.EP24, 1, new)) == new


def plc(f, req, seq, key=KEY, encrypt=False, tid=1):
    apdu, st, base = osgp(seq, req, key, encrypt)
    out = f.plc.receive(frame(apdu=apdu, tid=tid), T0 + tid)
    return out, st, base


def bt07(number, psn, params):
    data = bytes((number & 0xFF, number >> 8, psn)) + params
    return bytes((0x40, 0, 7, 0, len(data))) + data


def test_ep15_over_plc_answers_under_the_old_key_then_takes_effect():
    for encrypt in (False, True):
        f = B.firmware()
        req = bt07(K.EP15, 5, K.change_params(KEY, K.EP15, 0, NEW))
        out, st, base = plc(f, req, 1, encrypt=encrypt)
        assert answer(out, st, base) == b"\x00"             # digest (and RC4) under the old key
        assert f.keys.get(A.ROLE_PLC) == NEW
        out, st, base = plc(f, h("30 00 01"), 2, encrypt=encrypt, tid=2)     # the old key
        assert L.decode(out[0]).apdu == b"\x0b" + bytes(8)
        out, st, base = plc(f, h("3F 00 08 00 00 00 00 04"), 2, key=NEW, encrypt=encrypt, tid=3)
        assert answer(out, st, base) == h("00 00 04 0F 08 05 00")    # BT08: EP15 completed
    # an identical retry of the change (its answer lost) is not run again:
    # the new key's window has moved on, so it is refused
    out, st, _ = plc(f, req, 1, encrypt=True, tid=4)
    assert L.decode(out[0]).apdu == b"\x0b" + bytes(8) and f.keys.get(A.ROLE_PLC) == NEW


def test_the_next_request_after_a_change_uses_the_new_key_and_a_fresh_counter():
    f = B.firmware()
    s = f.meter.store
    for i in range(3):
        plc(f, h("30 00 01"), 1 + i, tid=1 + i)
    assert s.field(ET11, 82, 4) == 3
    out, st, _ = plc(f, bt07(K.EP15, 5, K.change_params(KEY, K.EP15, 0, NEW)), 4, tid=4)
    assert answer(out, st) == b"\x00"
    assert s.field(ET11, 82, 4) == 0 and f.keys.usage[A.ROLE_PLC] == 0
    out, st, _ = plc(f, h("30 00 01"), 5, key=NEW, tid=5)
    assert answer(out, st)[0] == 0 and s.field(ET11, 82, 4) == 1
    assert (EE31, A.ROLE_PLC) in [(e[3], e[4]) for e in events.entries(f.meter)]
    assert s.field(3, 8, 1) & 0x02                           # BT03 8.1 password table written


def test_broadcast_key_changed_by_a_broadcast():
    f = B.firmware(5, (0x0501,))
    s = f.meter.store
    s.set_field(ET04, 86, 2, 100)
    new = bytes(range(0x31, 0x3D))

    def group(apdu, tid):
        return f.plc.receive(frame(addr_fmt=L.AF_GROUP, group=5, tid=tid, apdu=apdu), T0 + tid)
    apdu, st, _ = osgp(1, bt07(K.EP15, 7, K.change_params(BKEY, K.EP15, 0, NEW)), BKEY)
    assert answer(group(apdu, 1), st) == b"\x00"             # the write itself is fine ...
    assert s.read(8, 0, 4) == bytes((K.EP15 & 0xFF, K.EP15 >> 8, 7, 5))   # ... EP15 says 5
    assert f.keys.get(A.ROLE_PLC) == KEY
    apdu, st, _ = osgp(2, bt07(K.EP15, 8, K.change_params(BKEY, K.EP15, 1, new)), BKEY)
    assert answer(group(apdu, 2), st) == b"\x00"
    assert f.keys.get(A.ROLE_BCAST) == new and s.read(8, 3, 1) == b"\x00"
    apdu, st, _ = osgp(3, h("30 00 01"), BKEY)
    assert L.decode(group(apdu, 3)[0]).apdu == b"\x0b" + bytes(8)
    apdu, st, _ = osgp(3, h("30 00 01"), new)
    assert answer(group(apdu, 4), st)[0] == 0 and s.field(ET11, 86, 4) == 1


def test_result_codes_and_refusals_change_nothing():
    f = B.firmware()
    ok = K.change_params(KEY, K.EP15, 0, NEW)
    cases = (
        (K.EP15, b"", A.ROLE_PLC, 2),
        (K.EP15, ok[:-1], A.ROLE_PLC, 2),                      # short
        (K.EP15, b"\x02" + ok[1:], A.ROLE_PLC, 2),              # unknown key ID
        (K.EP24, b"\x02" + bytes(24), A.ROLE_MAK, 2),
        (K.EP25, b"\x03" + bytes(28), A.ROLE_MK, 2),
        (K.EP15, K.change_params(BKEY, K.EP15, 0, NEW), A.ROLE_PLC, 5),   # wrong KEK
        (K.EP15, ok[:5] + bytes((ok[5] ^ 1,)) + ok[6:], A.ROLE_PLC, 5),    # tampered
        (K.EP15, ok, A.ROLE_BCAST, 5),                          # broadcast key: only itself
        (K.EP15, ok, A.ROLE_PK, 5), (K.EP15, ok, A.ROLE_RK, 5), (K.EP15, ok, A.ROLE_MBK, 5),
        (K.EP24, K.change_params(B.MAK, K.EP24, 1, NEW + NEW[:4]), A.ROLE_MBK, 5),
        (K.EP25, K.change_params(B.RK, K.EP25, 2, bytes(20)), A.ROLE_RK, 5),
    )
    for number, params, role, want in cases:
        before = state(f)
        assert B.call(f, number, params, role) == (want, b""), (number, params, role)
        assert state(f) == before
    # no key ring at all, AES mode without the AES wrap: conflicts with setup
    ring = f.meter.keys
    f.meter.keys = None
    before = state(f)
    assert B.call(f, K.EP15, ok) == (3, b"") and state(f) == before
    f.meter.keys = ring
    f.meter.store.set_field(ET04, 127, 1, 2)
    old = K._aes_unwrap                       # a Firmware installs the AES suite's unwrap
    K.set_aes_unwrap(None)
    try:
        before = state(f)
        assert B.call(f, K.EP15, ok) == (3, b"") and state(f) == before
    finally:
        K.set_aes_unwrap(old)
    f.meter.store.set_field(ET04, 127, 1, 0)
    assert B.call(f, K.EP15, ok) == (0, b"") and f.keys.get(A.ROLE_PLC) == NEW


def test_aes_mode_uses_the_installed_unwrap():
    f = B.firmware()
    f.meter.store.set_field(ET04, 127, 1, 2)
    seen = []

    def unwrap(meter, number, key_id, target, role, blob):
        seen.append((number, key_id, target, role, len(blob)))
        return None if blob[0] == 0xEE else blob[:12]
    old = K._aes_unwrap
    K.set_aes_unwrap(unwrap)
    try:
        assert B.call(f, K.EP15, b"\x01\xee" + bytes(19)) == (5, b"")
        assert B.call(f, K.EP15, b"\x01" + NEW + bytes(8)) == (0, b"")
        assert f.keys.get(A.ROLE_BCAST) == NEW
        assert seen == [(K.EP15, 1, A.ROLE_BCAST, A.ROLE_PLC, 20)] * 2
    finally:
        K.set_aes_unwrap(old)


def test_mep_and_optical_keys():
    from osgp_meter.mep import MepServer
    from osgp_meter.device import MEP_LIMITS
    from osgp_meter.digest import OmaDigest
    f = B.firmware()
    srv = MepServer(f.meter.executor(MEP_LIMITS), f.keys, (A.ROLE_MAK, A.ROLE_MBK), 0)
    new_mak = bytes(range(16))
    clock = [T0]

    def mep(req, seq, key):
        msg = req + seq.to_bytes(4, "big")
        st = OmaDigest(key).start(msg)
        body = msg + st.finish_copy()
        clock[0] += 1000                                      # >= 100 ms between requests
        out = srv._request(body, clock[0])
        st.update(out[:-8])
        return out[:-8], out[-8:] == st.finish()
    assert mep(bt07(K.EP24, 5, K.change_params(B.MAK, K.EP24, 1, new_mak)), 1, B.MAK) == (b"\x00", True)
    assert f.keys.get(A.ROLE_MAK) == new_mak
    assert mep(h("30 00 01"), 2, B.MAK)[0] == b"\x0b"        # the old MAK: refused
    assert mep(h("30 00 01"), 2, new_mak)[1]                 # the new one: served
    # optical: MK changes RK; the session's password list follows (next logon)
    new_rk = b"NEWREADER" + bytes(11)
    assert B.call(f, K.EP25, K.change_params(B.RK, K.EP25, 2, new_rk), A.ROLE_MK) == (0, b"")
    assert (A.ROLE_RK, new_rk) in f.optical.keys and (A.ROLE_RK, B.RK) not in f.optical.keys
    # a key that is not installed is wrapped under the caller's key
    f.keys.set(A.ROLE_PK, None)
    new_pk = b"P" * 20
    assert B.call(f, K.EP25, K.change_params(B.MK, K.EP25, 1, new_pk), A.ROLE_MK) == (0, b"")
    assert f.keys.get(A.ROLE_PK) == new_pk
    assert (EE31, A.ROLE_MAK) in [(e[3], e[4]) for e in events.entries(f.meter)]


def test_key_usage_events_and_the_expiration_alarm():
    f = B.firmware()
    s = f.meter.store
    s.set_field(ET04, 123, 4, 5)                              # max key usage: 5
    for i in range(5):
        plc(f, h("30 00 01"), 1 + i, tid=1 + i)
        if i == 2:
            assert not s.field(3, 8, 1) & 0x04
    got = [(e[3], e[4], e[2]) for e in events.entries(f.meter) if e[3] == EE33]
    assert got == [(EE33, 80 << 8, 0xFFFE), (EE33, 100 << 8, 0xFFFE)]
    assert s.field(3, 8, 1) & 0x04                            # BT03 8.2 key expiration pending
    out, st, _ = plc(f, bt07(K.EP15, 5, K.change_params(KEY, K.EP15, 0, NEW)), 6, tid=6)
    assert answer(out, st) == b"\x00"
    assert not s.field(3, 8, 1) & 0x04 and s.field(ET11, 82, 4) == 0


def test_keys_survive_a_restart_through_their_nv_part():
    f = B.firmware()
    assert B.call(f, K.EP15, K.change_params(KEY, K.EP15, 0, NEW)) == (0, b"")
    for i in range(2):
        plc(f, h("30 00 01"), 1 + i, key=NEW, tid=1 + i)
    saved = f.meter.nv_parts["keys"][0]()
    assert saved[0] == 1 and NEW in saved and len(saved) == 1 + 7 * 2 + 12 + 12 + 16 + 16 + 3 * 20
    # power cut: a fresh meter from the profile keys, then the saved part and tables
    g = B.firmware(store=f.meter.store)
    assert g.keys.get(A.ROLE_PLC) == KEY
    g.meter.nv_parts["keys"][1](saved)
    assert g.keys.get(A.ROLE_PLC) == NEW and g.keys.encode() == saved
    out, st, _ = plc(g, h("30 00 01"), 3, key=NEW, tid=3)
    assert answer(out, st)[0] == 0 and g.meter.store.field(ET11, 82, 4) == 3
    # a damaged part changes nothing
    for bad in (b"", b"\x02", b"\x01\x20\x0c" + bytes(5), b"\x01\x20\x10" + bytes(16)):
        assert not g.keys.load(bad) and g.keys.encode() == saved
    ring = KeyRing()
    assert ring.load(saved) and ring.get(A.ROLE_RK) == B.RK and ring.usage == {}


def test_worked_example_on_the_wire():
    # docs/key-management.md: DC 1/126 -> meter 1/5, domain 42, ET04.0 = 12
    f = B.firmware()
    f.meter.store.set_field(ET04, 0, 4, 12)
    req = h("00 19 01 FE 01 85 42 03 40 00 07 00 18 0F 08 05 00 66 AA 2C 01 A0 DC 71 C0 EB 62 9B"
            " F5 C6 39 22 3A BA 7D 82 63 00 00 00 0D 2D AD 6F 7B 96 BC 2C 7B A3 77")
    assert f.plc.receive(req, T0) == [h("00 19 01 85 01 FE 42 23 00 2D AD 6F 7B 96 BC 2C 7B 45 3A")]
    assert f.keys.get(A.ROLE_PLC) == NEW
    out = f.plc.receive(frame(apdu=h("30 00 01 00 00 00 0E 4C 88 EC 6E 3F 96 23 12"), tid=4), T0 + 1)
    assert L.decode(out[0]).apdu[:4] == h("00 00 18 45")


def test_a_truncated_keys_part_is_refused():
    ring = KeyRing({A.ROLE_RK: B.RK, A.ROLE_PLC: KEY})
    img = ring.encode()
    assert img == b"\x01\x04\x14" + B.RK + b"\x20\x0c" + KEY
    other = KeyRing({A.ROLE_MK: B.MK})
    for n in range(len(img)):
        whole = n in (1, 23)                  # "01" (an empty ring), the RK entry alone
        assert other.load(img[:n]) == whole
        assert (other.get(A.ROLE_MK) == B.MK) != whole
        other = KeyRing({A.ROLE_MK: B.MK})
