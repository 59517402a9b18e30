"""The `cryptography` RC4 backend gives exactly the bytes of the pure-Python one."""
import subprocess
import sys

from hypothesis import given, settings, strategies as st

from osgp_meter import cipher
from osgp_meter.digest import OmaDigest
from osgp_meter.rc4 import RC4
from osgp_host import crypto_backend
from osgp_host.crypto_backend import CryptographyRC4, KEY_SIZES, rc4_factory

h = bytes.fromhex

MAK = b"\x01" * 16
KEY_DF = b"\xdf" * 12
PLC_MSG = h("0202003000037F30EA6D0000000D0020980031C30008000000000011")


def test_no_deprecation_warning_on_import():
    # ARC4 is taken from its current home, not the deprecated one
    code = "import osgp_host.crypto_backend as m; m.rc4_factory(bytes(16)).crypt(b'x')"
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True)


def test_key_sizes():
    assert 16 in KEY_SIZES and 5 in KEY_SIZES
    assert isinstance(rc4_factory(bytes(16)), CryptographyRC4)
    assert isinstance(rc4_factory(b"Key"), RC4)       # size OpenSSL refuses


def test_published_vectors_both_backends():
    for make in (RC4, CryptographyRC4, rc4_factory):
        ks = make(h("0102030405")).crypt(bytes(256))
        assert ks[:16] == h("b2396305f03dc027ccc3524a0a1118a8")
        assert ks[240:] == h("28cb1132c96ce286421dcaadb8b69eae")
        assert make(bytes(range(1, 17))).crypt(bytes(16)) == h("9ac7cc9a609d1ef7b2932899cde41b97")
    assert rc4_factory(b"Secret").crypt(b"Attack at dawn") == h("45A01F645FC35B383552544B9BF5")


def test_install_and_osgp_vectors():
    old = crypto_backend.install()
    try:
        assert cipher.get_rc4_backend() is rc4_factory
        assert isinstance(cipher.new_rc4(bytes(16)), CryptographyRC4)
        base = cipher.mep_base_key(MAK)
        assert base == h("3E8381B22E887CACBE9C8058D44CBC1A")
        c = cipher.mep_cipher(base, h("74861F6D7658DD56"))
        assert c.crypt(h("3F0017000000002C01020304")) == h("9296314BF39C549E30DC1AAA")
        assert c.crypt(h("0C77635B90")) == h("10EEADB23D")
        pbase = cipher.plc_base_key(KEY_DF)
        dg = OmaDigest(KEY_DF).digest(PLC_MSG)
        ct = cipher.plc_encrypt(pbase, PLC_MSG, dg)
        assert ct == h("E52847CF97FD90BAA0262C509AF1C062E2FD3AF5ADC0DCC4B252F11B")
        assert cipher.plc_decrypt(pbase, ct, dg) == PLC_MSG
        crypto_backend.uninstall()
        assert cipher.get_rc4_backend() is RC4
    finally:
        cipher.set_rc4_backend(old)


keys = st.sampled_from(sorted(KEY_SIZES)).flatmap(lambda n: st.binary(min_size=n, max_size=n))


@settings(max_examples=300, deadline=None)
@given(key=keys, data=st.binary(max_size=600))
def test_backends_agree(key, data):
    assert CryptographyRC4(key).crypt(data) == RC4(key).crypt(data)


@settings(max_examples=200, deadline=None)
@given(key=keys, pieces=st.lists(st.binary(max_size=80), max_size=8))
def test_streaming_continuation_agrees(key, pieces):
    fast = CryptographyRC4(key)
    slow = RC4(key)
    whole = RC4(key).crypt(b"".join(pieces))
    out_fast = b"".join(fast.crypt(p) for p in pieces)
    out_slow = b"".join(slow.crypt(p) for p in pieces)
    assert out_fast == out_slow == whole


@settings(max_examples=100, deadline=None)
@given(key=st.binary(min_size=1, max_size=256), data=st.binary(max_size=64))
def test_factory_any_key_length(key, data):
    assert rc4_factory(key).crypt(data) == RC4(key).crypt(data)


@settings(max_examples=100, deadline=None)
@given(mep_key=st.binary(min_size=16, max_size=20), digest=st.binary(min_size=8, max_size=8),
       req=st.binary(max_size=100), rsp=st.binary(max_size=100))
def test_mep_exchange_same_on_both_backends(mep_key, digest, req, rsp):
    def run():
        base = cipher.mep_base_key(mep_key)
        c = cipher.mep_cipher(base, digest)
        return base, c.crypt(req), c.crypt(rsp)

    old = cipher.set_rc4_backend(None)
    try:
        pure = run()
        crypto_backend.install()
        fast = run()
    finally:
        cipher.set_rc4_backend(old)
    assert pure == fast
