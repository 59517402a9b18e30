# Dual-runtime tests of RC4 (meter/rc4.py) and the crypto interface and key
# schedules (meter/cipher.py): MEP [MEP App. B], PLC reconstruction [F5],
# the ISO/IEC 14908-1 authentication transform [DX].
from osgp_meter import cipher
from osgp_meter.rc4 import RC4
from osgp_meter.digest import OmaDigest


def h(s):
    return bytes.fromhex(s.replace(" ", ""))


# ---- RC4 ----------------------------------------------------------------------

def test_rc4_published_vectors():
    # the classic test vectors (Wikipedia "RC4" article)
    assert RC4(b"Key").crypt(b"Plaintext") == h("BB F3 16 E8 D9 40 AF 0A D3")
    assert RC4(b"Wiki").crypt(b"pedia") == h("10 21 BF 04 20")
    assert RC4(b"Secret").crypt(b"Attack at dawn") == h("45 A0 1F 64 5F C3 5B 38 35 52 54 4B 9B F5")


def test_rc4_rfc6229_keystream():
    # RFC 6229, 40-bit key 01 02 03 04 05 at offsets 0, 16 and 240
    c = RC4(h("01 02 03 04 05"))
    ks = c.keystream(256)
    assert ks[0:16] == h("b2 39 63 05 f0 3d c0 27 cc c3 52 4a 0a 11 18 a8")
    assert ks[16:32] == h("69 82 94 4f 18 fc 82 d5 89 c4 03 a4 7a 0d 09 19")
    assert ks[240:256] == h("28 cb 11 32 c9 6c e2 86 42 1d ca ad b8 b6 9e ae")
    # RFC 6229, 128-bit key 01 02 ... 10 at offset 0
    assert RC4(bytes(range(1, 17))).keystream(16) == h("9a c7 cc 9a 60 9d 1e f7 b2 93 28 99 cd e4 1b 97")


def test_rc4_continues_keystream():
    key = bytes(range(16))
    data = bytes(range(200))
    whole = RC4(key).crypt(data)
    c = RC4(key)
    out = b""
    p = 0
    for n in (0, 1, 7, 13, 50, 0, 129):
        out += c.crypt(data[p:p + n])
        p += n
    assert out == whole
    assert RC4(key).crypt(whole) == data            # decrypt = encrypt
    assert RC4(key).crypt(bytearray(data)) == whole
    assert RC4(key).crypt(memoryview(data)) == whole
    assert RC4(key).crypt(b"") == b""


def test_rc4_key_lengths():
    RC4(b"\x00")
    RC4(bytes(256))
    for bad in (0, 257):
        try:
            RC4(bytes(bad))
        except ValueError:
            pass
        else:
            assert False, bad


# ---- backend registry -----------------------------------------------------------

class CountingRC4:
    made = 0

    def __init__(self, key):
        CountingRC4.made += 1
        self.c = RC4(key)

    def crypt(self, data):
        return self.c.crypt(data)


def test_backend_registry():
    # restores whatever backend was registered before (a host may install one)
    old = cipher.set_rc4_backend(None)
    try:
        assert cipher.get_rc4_backend() is RC4
        assert isinstance(cipher.new_rc4(b"k"), RC4)
        assert cipher.set_rc4_backend(CountingRC4) is None
        assert cipher.get_rc4_backend() is CountingRC4
        n = CountingRC4.made
        assert cipher.mep_base_key(h("01" * 16)) == h("3E 83 81 B2 2E 88 7C AC BE 9C 80 58 D4 4C BC 1A")
        assert CountingRC4.made == n + 1
        assert cipher.set_rc4_backend(None) is CountingRC4
        assert cipher.get_rc4_backend() is RC4
    finally:
        cipher.set_rc4_backend(old)


# ---- MEP [MEP App. B] ------------------------------------------------------------

MAK = h("01" * 16)
MEP_BASE = h("3E 83 81 B2 2E 88 7C AC BE 9C 80 58 D4 4C BC 1A")


def test_mep_base_key():
    assert cipher.mep_base_key(MAK) == MEP_BASE
    # a 20-byte key field: only the first 16 bytes count [MEP p.12-13]
    assert cipher.mep_base_key(MAK + h("AA BB CC DD")) == MEP_BASE
    # = the RC4 keystream under the MEP key XOR the constant key
    ks = RC4(MAK).keystream(16)
    assert cipher.mep_base_key(MAK) == bytes([ks[i] ^ cipher.MEP_CONST_KEY[i] for i in range(16)])
    try:
        cipher.mep_base_key(bytes(15))
    except ValueError:
        pass
    else:
        assert False


def test_mep_per_request_key():
    dg = h("74 86 1F 6D 76 58 DD 56")
    k = cipher.mep_key(MEP_BASE, dg)
    assert k == h("4A 05 9E DF 58 D0 A1 FA BE 9C 80 58 D4 4C BC 1A")
    for bad in (bytes(7), bytes(9)):
        try:
            cipher.mep_key(MEP_BASE, bad)
        except ValueError:
            pass
        else:
            assert False


def test_mep_exchange_round_trip():
    # client and server of one encrypted MEP exchange [MEP App. B]: the digest
    # is over the plaintext, the response continues the request's RC4 state
    d = OmaDigest(MAK)
    req = h("3F 00 17 00 00 00 00 2C 01 02 03 04")
    rsp = h("0C 77 63 5B 90")
    st = d.start(req)
    req_dg = st.finish_copy()
    assert req_dg == h("74 86 1F 6D 76 58 DD 56")
    client = cipher.mep_cipher(MEP_BASE, req_dg)
    wire_req = client.crypt(req)
    assert wire_req != req
    # self-computed regression value (cross-checked against `cryptography`
    # in tests/test_crypto_backend.py); not printed in the guide
    assert wire_req == h("92 96 31 4B F3 9C 54 9E 30 DC 1A AA")
    # server: key from the clear digest, decrypt, verify
    server = cipher.mep_cipher(cipher.mep_base_key(MAK), req_dg)
    plain = server.crypt(wire_req)
    assert plain == req
    sst = d.start(plain)
    assert sst.finish_copy() == req_dg
    wire_rsp = server.crypt(rsp)
    assert wire_rsp == h("10 EE AD B2 3D")
    sst.update(rsp)
    rsp_dg = sst.finish()
    assert rsp_dg == h("35 86 3C 1D F5 B9 14 82")
    # client decrypts the response by continuing its own state
    assert client.crypt(wire_rsp) == rsp
    # the response is NOT encrypted with a fresh key
    assert wire_rsp != cipher.mep_cipher(MEP_BASE, req_dg).crypt(rsp)
    st.update(rsp)
    assert st.finish() == rsp_dg


# ---- PLC reconstruction [F5] (?) --------------------------------------------------

KEY_DF = h("DF" * 12)
PLC_MSG = h("02 02 00 30 00 03 7F 30 EA 6D 00 00 00 0D 00 20 98 00 31 C3 00 08 00 00 00 00 00 11")
PLC_DIGEST = h("DB E5 CD E5 07 B1 CB 3D")
PLC_BASE = h("C3 3E F2 FF B0 AA AE 76 ED 03 9A D0 80 4D 67 AA")
PLC_RC4KEY = h("18 DB 3F 1A B7 1B 65 4B ED 03 9A D0 80 4D 67 AA")
PLC_CIPHER = h("E5 28 47 CF 97 FD 90 BA A0 26 2C 50 9A F1 C0 62 E2 FD 3A F5 AD C0 DC C4 B2 52 F1 1B")


def test_plc_key_schedule_vectors():
    # lontalk-transport-security.md 4.3 cross-check table (self-computed)
    base = cipher.plc_base_key(KEY_DF)
    assert base == PLC_BASE
    assert OmaDigest(KEY_DF).digest(PLC_MSG) == PLC_DIGEST
    assert cipher.plc_key(base, PLC_DIGEST) == PLC_RC4KEY
    ct = cipher.plc_encrypt(base, PLC_MSG, PLC_DIGEST)
    assert ct == PLC_CIPHER
    assert cipher.plc_decrypt(base, ct, PLC_DIGEST) == PLC_MSG
    try:
        cipher.plc_base_key(bytes(16))
    except ValueError:
        pass
    else:
        assert False


def test_plc_base_key_uses_first_six_key_bytes():
    # (?) [F5] reads only key bytes 0..5 for T
    assert cipher.plc_base_key(h("DF" * 6 + "00" * 6)) == PLC_BASE
    assert cipher.plc_base_key(h("DF" * 5 + "00" * 7)) != PLC_BASE


# ---- ISO/IEC 14908-1 authentication transform [DX] --------------------------------

def rol1(n):
    return ((n << 1) | (n >> 7)) & 255


def ror1(n):
    return ((n >> 1) | (n << 7)) & 255


def ref_transform(key, challenge, apdu, one_pass=False):
    # written from the description: state = challenge, bytes taken from the
    # end of the APDU, whole passes while bytes remain (one_pass: at least
    # one pass, the [F5] do-while)
    k = len(key)
    r = 6 if k == 6 else 18
    a = list(challenge)
    size = len(apdu)
    first = True
    while size > 0 or (first and one_pass):
        first = False
        for i in range(r):
            for j in range(7, -1, -1):
                if size > 0:
                    size -= 1
                    m = apdu[size]
                else:
                    m = 0
                n = ~(a[j] + j) & 255
                if (key[i % k] >> (7 - j)) & 1:
                    a[j] = (a[(j + 1) % 8] + m + rol1(n)) & 255
                else:
                    a[j] = (a[(j + 1) % 8] + m - ror1(n)) & 255
    return bytes(a)


def seq(n, seed):
    b = bytearray(n)
    x = seed
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        b[i] = x >> 16 & 255
    return bytes(b)


def test_auth_transform_matches_reference():
    for n in (0, 1, 5, 8, 47, 48, 49, 100, 143, 144, 145, 300):
        for k in (6, 12):
            key = seq(k, n + k)
            ch = seq(8, 1000 + n)
            apdu = seq(n, 7 * n + 1)
            assert cipher.auth_transform(key, ch, apdu) == ref_transform(key, ch, apdu), (k, n)
            assert cipher.auth_transform(key, ch, apdu, None, True) == ref_transform(key, ch, apdu, True)


def test_auth_transform_properties():
    key6 = h("11 22 33 44 55 66")
    ch = h("01 02 03 04 05 06 07 08")
    # [DX]: an empty APDU runs no pass
    assert cipher.auth_transform(key6, ch, b"") == ch
    # the PLC key schedule is T(c) = one pass over zeros [F5]: the same as
    # the [DX] transform over 48 zero bytes (exactly one classic pass)
    t1 = cipher.auth_transform(KEY_DF[:6], cipher.PLC_C1, bytes(48))
    t2 = cipher.auth_transform(KEY_DF[:6], cipher.PLC_C2, bytes(48))
    assert t1 + t2 == PLC_BASE
    assert cipher.auth_transform(KEY_DF[:6], cipher.PLC_C1, b"", None, True) == t1
    # from a zero state, the transform of a message is the OMA digest of the
    # reversed message (same step function, other byte order)
    for key in (key6, bytes(range(1, 13))):
        msg = h("30 00 17 00 00 00 0D")
        rev = bytes(reversed(msg))
        assert cipher.auth_transform(key, bytes(8), rev) == OmaDigest(key).digest(msg)
    # OMA mode: the 9-byte OMA address prefixes the APDU
    key12 = bytes(range(1, 13))
    oma = h("FF FF FF FF FF FF FF FF FF")
    apdu = h("30 00 17")
    assert cipher.auth_transform(key12, ch, apdu, oma) == ref_transform(key12, ch, oma + apdu)
    for bad in ((bytes(16), ch, apdu, None), (key12, ch, apdu, bytes(8)), (key6, bytes(7), apdu, None)):
        try:
            cipher.auth_transform(*bad)
        except ValueError:
            pass
        else:
            assert False
