"""The AES security mode on CPython (pytest + hypothesis): the pure-Python
AES-128 / CCM / CMAC of the core against OpenSSL through `cryptography` on
random inputs, the `cryptography` backend (tools/crypto_backend.py) against
the pure-Python path byte for byte (down to whole MEP exchanges), the long
SP 800-38C example, random bytes against an AES-mode meter (no exception,
nothing changed), and the host side: Firmware wiring, ET11.90, the profile's
[security] mode, the MEP and PLC clients (docs/security-modes.md)."""
import os
import sys

import pytest
from cryptography.hazmat.primitives import cmac as c_cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from hypothesis import HealthCheck, given, settings, strategies as st

from osgp_host import crypto_backend
from osgp_host import profile as profiles
from osgp_meter import access as A
from osgp_meter import aes, ccm, cipher
from osgp_meter import aes_mode as M
from osgp_meter.firmware import Firmware

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "core"))
import plc_util as U  # noqa: E402

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
MAK = bytes([1] * 16)
MBK = bytes([2] * 16)
T0 = 1_790_000_000_000
ET04 = 2048 + 4
ET11 = 2048 + 11

key16 = st.binary(min_size=16, max_size=16)


def ecb(key):
    e = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return e.update


def openssl_cmac(key, msg):
    c = c_cmac.CMAC(algorithms.AES(key))
    c.update(msg)
    return c.finalize()


# ---- primitives against OpenSSL ---------------------------------------------------

@SETTINGS
@given(key16, st.binary(min_size=16, max_size=16))
def test_aes_block_equals_openssl(key, block):
    assert aes.encrypt_block(aes.expand_key(key), block) == ecb(key)(block)


@SETTINGS
@given(key16, st.integers(7, 13).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
       st.binary(max_size=80), st.binary(max_size=300), st.sampled_from((4, 6, 8, 10, 12, 14, 16)))
def test_ccm_equals_openssl_aesccm(key, nonce, aad, msg, tag):
    ref = AESCCM(key, tag_length=tag)
    want = ref.encrypt(nonce, msg, aad or None)
    assert ccm.encrypt(aes.encryptor(key), nonce, msg, aad, tag) == want
    # CCM over any ECB block function: here OpenSSL's
    assert ccm.encrypt(ecb(key), nonce, msg, aad, tag) == want
    assert ccm.decrypt(aes.encryptor(key), nonce, want, aad, tag) == msg
    if want:
        bad = bytearray(want)
        bad[len(bad) // 2] ^= 0x01
        assert ccm.decrypt(aes.encryptor(key), nonce, bytes(bad), aad, tag) is None


@SETTINGS
@given(key16, st.binary(max_size=100))
def test_cmac_equals_openssl(key, msg):
    assert ccm.cmac(aes.encryptor(key), msg) == openssl_cmac(key, msg)


@SETTINGS
@given(st.binary(min_size=1, max_size=24))
def test_derive_key_is_the_documented_gkdf(psk):
    # docs/security-modes.md: AES-CMAC-PRF-128(psk, 00 01 | label | len(psk))
    y = psk if len(psk) == 16 else openssl_cmac(bytes(16), psk)
    want = openssl_cmac(y, b"\x00\x01OSGP-AES-128-PSK" + len(psk).to_bytes(2, "big"))
    assert M.derive_key(psk) == want


def test_ccm_sp800_38c_example_4_long_aad():
    # SP 800-38C C.4: 65536 bytes of AAD (the six-byte length encoding), 14-byte tag
    a = bytes(i & 0xFF for i in range(65536))
    out = ccm.encrypt(aes.encryptor(bytes.fromhex("404142434445464748494a4b4c4d4e4f")),
                      bytes.fromhex("101112131415161718191a1b1c"), bytes(range(0x20, 0x40)), a, 14)
    assert out == bytes.fromhex("69915dad1e84c6376a68c2967e4dab615ae0fd1faec44cc484828529463ccf72"
                                "b4ac6bec93e8598e7f0dadbcea5b")


# ---- the backend -------------------------------------------------------------------

@pytest.fixture
def backend():
    old = cipher.set_aes_backend(None)
    yield
    cipher.set_aes_backend(old)


@SETTINGS
@given(key16, st.binary(min_size=13, max_size=13), st.binary(max_size=40), st.binary(max_size=200))
def test_backend_and_pure_python_give_the_same_bytes(backend, key, nonce, aad, msg):
    pure = cipher.new_aes_ccm(key)
    fast = crypto_backend.aes_ccm_factory(key)
    out = pure.encrypt(nonce, msg, aad)
    assert fast.encrypt(nonce, msg, aad) == out
    assert fast.decrypt(nonce, out, aad) == msg == pure.decrypt(nonce, out, aad)
    bad = out[:-1] + bytes((out[-1] ^ 1,))
    assert fast.decrypt(nonce, bad, aad) is None and pure.decrypt(nonce, bad, aad) is None


def test_install_registers_both_backends(backend):
    old_rc4 = crypto_backend.install()
    try:
        assert isinstance(cipher.new_aes_ccm(MAK), crypto_backend.CryptographyAesCcm)
    finally:
        crypto_backend.uninstall()
        cipher.set_rc4_backend(old_rc4)
    assert type(cipher.new_aes_ccm(MAK)).__name__ == "AesCcm"


def firmware(mode=2, seq=1000):
    f = Firmware({"keys": {A.ROLE_MAK: MAK, A.ROLE_MBK: MBK}, "mep_seq": seq,
                  "clock": T0 // 1000}, T0)
    if mode:
        f.meter.store.set_field(ET04, 127, 1, mode)
    return f


def exchange(f, req, seq, now, key=MAK):
    c = cipher.new_aes_ccm(M.derive_key(key))
    ident = f.meter.store.read(1, 16, 8)
    body = M.seal_request(c, 0, ident, req, seq)
    out = f.mep.feed(len(body).to_bytes(2, "big") + body, now)
    return out, M.open_answer(c, 0, ident, seq, out[2:])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(("30 00 01", "3F 00 17 00 00 00 00 20", "30 08 04",
                                  "4F 08 32 00 00 02 00 02 AB CD", "30 00 63")),
                min_size=1, max_size=4))
def test_mep_exchanges_are_identical_with_either_backend(backend, reqs):
    outs = []
    for factory in (None, crypto_backend.aes_ccm_factory):
        cipher.set_aes_backend(factory)
        f = firmware()
        outs.append([exchange(f, bytes.fromhex(r), 1001 + i, T0 + 200 * i)[0]
                     for i, r in enumerate(reqs)])
    assert outs[0] == outs[1]


# ---- the meter under random input --------------------------------------------------

@SETTINGS
@given(st.binary(max_size=60))
def test_open_request_never_raises(data):
    c = cipher.new_aes_ccm(MAK)
    assert M.open_request(c, 0, bytes(8), data) is None or len(data) >= 13
    M.open_answer(c, 0, bytes(8), 1, data)


AES_METER = firmware()


@SETTINGS
@given(st.binary(min_size=13, max_size=80))
def test_random_frames_to_an_aes_meter_change_nothing(body):
    f = AES_METER
    before = f.meter.store.snapshot()
    now = T0 + 10_000_000 + f.mep.stats[1] * 1000
    out = f.mep.feed(len(body).to_bytes(2, "big") + body, now)
    assert out == b"\x00\x09\x0b" + bytes(8)
    assert f.meter.store.snapshot() == before


AES_NODE = U.node(seq=12)


@SETTINGS
@given(st.sampled_from((0x30, 0x3F, 0x40, 0x4F)), st.binary(min_size=12, max_size=60))
def test_random_apdus_to_an_aes_plc_node_change_nothing(code, rest):
    from osgp_meter import lontalk as L
    n, m = AES_NODE
    m.store.set_field(ET04, 127, 1, 2)
    before = m.store.snapshot()
    out = n.receive(U.frame(apdu=bytes((code,)) + rest, tid=len(rest) % 16), U.T0)
    assert out and L.decode(out[0]).apdu == b"\x0b" + bytes(8)
    assert m.store.snapshot() == before


# ---- the host side ---------------------------------------------------------------------

def test_firmware_wiring_and_supported_modes():
    f = firmware(0)
    assert f.meter.store.field(ET11, 90, 1) == 0x05                  # RC4 + AES [MEP ET11]
    assert f.mep.mode() == 0 and f.mep.ident() == f.meter.store.read(1, 16, 8)
    f.meter.store.set_field(ET04, 127, 1, 2)
    out, rsp = exchange(f, b"\x30\x00\x01", 1001, T0)
    assert rsp == b"\x00\x00\x18" + f.meter.store.read(1, 0, 24)


def test_aes_code_is_not_loaded_by_a_meter_in_rc4_mode():
    code = ("import sys; from osgp_meter.firmware import Firmware; "
            "f = Firmware({'keys': {8: bytes(16)}}, 0); "
            "f.mep.feed(bytes(15), 0); "
            "print(sorted(m for m in sys.modules if m.startswith('osgp_meter.a') or "
            "m == 'osgp_meter.ccm'))")
    import subprocess
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['osgp_meter.access']"


def test_profile_security_mode():
    data = profiles.load()
    assert profiles.to_config(data)["image"].get(ET04) is None        # rc4: catalogue default
    data["security"] = {"mode": "aes"}
    image = profiles.to_config(data)["image"]
    f = Firmware({"image": image, "keys": {A.ROLE_MAK: MAK}}, T0)
    assert f.meter.store.field(ET04, 127, 1) == 2
    assert f.meter.store.field(ET04, 116, 1) == 1                    # the other defaults kept
    data["security"] = {"mode": "des"}
    with pytest.raises(profiles.ProfileError):
        profiles.to_config(data)


class Loop:
    """A pyserial-like port onto a Firmware's MEP server, 200 ms a request
    (one clock per meter, whichever client talks)."""
    clocks = {}

    def __init__(self, f):
        self.f = f
        self.buf = b""

    def write(self, data):
        now = self.clocks[id(self.f)] = self.clocks.get(id(self.f), T0) + 200
        self.buf += self.f.mep.feed(data, now)

    def read(self, n):
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def test_mep_client_in_aes_mode():
    from osgp_host.mep_client import MepClient, MepError
    f = firmware()
    ident = f.meter.store.read(1, 16, 8)
    c = MepClient(Loop(f), MAK, seq=5, aes=True, ident=ident, min_gap=0)
    assert c.read(1) == f.meter.store.read(1, 0, 24)                 # after a 0x0C re-sync
    assert c.seq == 1001
    c.write(2048 + 50, b"\x12\x34", offset=2)
    assert c.read(2048 + 50, 2, 2) == b"\x12\x34"
    with pytest.raises(MepError) as exc:
        MepClient(Loop(f), MAK, seq=c.seq, min_gap=0).read(1)        # RC4 suite: refused
    assert exc.value.code == 0x0B
    with pytest.raises(MepError) as exc:
        MepClient(Loop(f), MAK, seq=c.seq, aes=True, ident=b"\x99" * 8, min_gap=0).read(1)
    assert exc.value.code == 0x0B                                    # wrong serial number
    # back to RC4 through an AES-authenticated write of ET04.127
    c.write(ET04, b"\x00", offset=127)
    assert MepClient(Loop(f), MAK, seq=c.seq, min_gap=0).read(1)[:4] == b"EMUL"


def test_plc_client_in_aes_mode():
    from osgp_host.plc_client import PlcClient, PlcSecurity, PlcAuthError
    n, m = U.node(seq=12)
    m.store.set_field(ET04, 127, 1, 2)
    t = [U.T0]

    def exchange_fn(apdu):
        from osgp_meter import lontalk as L
        t[0] += 100
        out = n.receive(U.frame(apdu=apdu, tid=(t[0] // 100) % 16), t[0])
        return L.decode(out[0]).apdu if out else None

    sec = PlcSecurity(U.KEY, seq=3, aes=True, neuron_id=U.NID)
    c = PlcClient(exchange_fn, sec)
    assert c.read(1, size=24) == U.BT01 and c.resyncs == 1 and sec.seq == 13
    c.write(41, b"\x01\x02", offset=0)
    assert c.read(41, 0, 2) == b"\x01\x02"
    with pytest.raises(PlcAuthError):
        PlcClient(exchange_fn, PlcSecurity(U.KEY, seq=sec.seq)).read(1, size=24)
    with pytest.raises(PlcAuthError):
        PlcClient(exchange_fn, PlcSecurity(U.KEY, seq=sec.seq, aes=True,
                                           neuron_id=bytes(6))).read(1, size=24)
