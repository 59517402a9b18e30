# Dual-runtime tests of the pure-Python AES-128 (meter/aes.py) and the modes
# over it (meter/ccm.py): CCM, CMAC, CMAC-PRF, and the AES mode's key
# derivation and key wrap (meter/aes_mode.py). Every vector is a published
# one, quoted with its source, except where marked "self-computed" (then it
# was checked against OpenSSL through `cryptography`: tests/test_aes_vectors.py
# does that for random inputs).
from osgp_meter import aes
from osgp_meter import ccm
from osgp_meter import aes_mode


def h(s):
    return bytes.fromhex(s.replace(" ", ""))


def enc(key):
    return aes.encryptor(h(key))


# ---- AES-128 block cipher [FIPS-197] ------------------------------------------

def test_fips197_appendix_a1_key_expansion():
    rks = aes.expand_key(h("2b7e151628aed2a6abf7158809cf4f3c"))
    assert len(rks) == 11 and rks[0] == h("2b7e151628aed2a6abf7158809cf4f3c")
    assert rks[1] == h("a0fafe1788542cb123a339392a6c7605")      # w[4..7]
    assert rks[10] == h("d014f9a8c9ee2589e13f0cc8b6630ca6")     # w[40..43]


def test_fips197_appendix_b_cipher_example():
    rks = aes.expand_key(h("2b7e151628aed2a6abf7158809cf4f3c"))
    assert aes.encrypt_block(rks, h("3243f6a8885a308d313198a2e0370734")) == \
        h("3925841d02dc09fbdc118597196a0b32")


def test_fips197_appendix_c1_aes128():
    rks = aes.expand_key(h("000102030405060708090a0b0c0d0e0f"))
    assert rks[10] == h("13111d7fe3944a17f307a78b4d2b30c5")     # round[10].k_sch
    assert aes.encrypt_block(rks, h("00112233445566778899aabbccddeeff")) == \
        h("69c4e0d86a7b0430d8cdb78070b4c55a")


def test_sp800_38a_ecb_aes128():
    # NIST SP 800-38A F.1.1, ECB-AES128.Encrypt, the four blocks
    e = enc("2b7e151628aed2a6abf7158809cf4f3c")
    for pt, ct in (("6bc1bee22e409f96e93d7e117393172a", "3ad77bb40d7a3660a89ecaf32466ef97"),
                   ("ae2d8a571e03ac9c9eb76fac45af8e51", "f5d3d58503b9699de785895a96fdbaaf"),
                   ("30c81c46a35ce411e5fbc1191a0a52ef", "43b1cd7f598ece23881b00e3ed030688"),
                   ("f69f2445df4f9b17ad2b417be66c3710", "7b0c785e27e8ad3f8223207104725dd4")):
        assert e(h(pt)) == h(ct)


def test_key_must_be_16_bytes():
    for n in (0, 12, 15, 17, 24, 32):
        try:
            aes.expand_key(bytes(n))
        except ValueError:
            pass
        else:
            assert False, n


def test_tables_are_bytes_of_256():
    for t in (aes.SBOX, aes.M2S, aes.M3S):
        assert isinstance(t, bytes) and len(t) == 256
    assert aes.SBOX[0] == 0x63 and aes.SBOX[0x53] == 0xED        # FIPS-197 5.1.1
    assert sorted(aes.SBOX) == list(range(256))                  # a permutation


# ---- CCM [SP 800-38C Appendix C, RFC 3610 section 8] ---------------------------

K38C = "404142434445464748494a4b4c4d4e4f"

SP800_38C = (   # (nonce, AAD, payload, ciphertext | tag, tag length)
    ("10111213141516", "0001020304050607", "20212223", "7162015b4dac255d", 4),
    ("1011121314151617", "000102030405060708090a0b0c0d0e0f",
     "202122232425262728292a2b2c2d2e2f", "d2a1f0e051ea5f62081a7792073d593d1fc64fbfaccd", 6),
    ("101112131415161718191a1b", "000102030405060708090a0b0c0d0e0f10111213",
     "202122232425262728292a2b2c2d2e2f3031323334353637",
     "e3b201a9f5b71a7a9b1ceaeccd97e70b6176aad9a4428aa5484392fbc1b09951", 8),
)

KRFC = "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
RFC3610 = (     # packet vectors #1, #2, #3, #7: (nonce, AAD, payload, output, M)
    ("00000003020100a0a1a2a3a4a5", "0001020304050607",
     "08090a0b0c0d0e0f101112131415161718191a1b1c1d1e",
     "588c979a61c663d2f066d0c2c0f989806d5f6b61dac38417e8d12cfdf926e0", 8),
    ("00000004030201a0a1a2a3a4a5", "0001020304050607",
     "08090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
     "72c91a36e135f8cf291ca894085c87e3cc15c439c9e43a3ba091d56e10400916", 8),
    ("00000005040302a0a1a2a3a4a5", "0001020304050607",
     "08090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20",
     "51b1e5f44a197d1da46b0f8e2d282ae871e838bb64da8596574adaa76fbd9fb0c5", 8),
    ("00000009080706a0a1a2a3a4a5", "0001020304050607",
     "08090a0b0c0d0e0f101112131415161718191a1b1c1d1e",
     "0135d1b2c95f41d5d1d4fec185d166b8094e999dfed96c048c56602c97acbb7490", 10),
)


def test_ccm_sp800_38c_examples_1_to_3():
    e = enc(K38C)
    for n, a, p, out, t in SP800_38C:
        assert ccm.encrypt(e, h(n), h(p), h(a), t) == h(out)
        assert ccm.decrypt(e, h(n), h(out), h(a), t) == h(p)


def test_ccm_rfc3610_packet_vectors():
    e = enc(KRFC)
    for n, a, p, out, m in RFC3610:
        assert ccm.encrypt(e, h(n), h(p), h(a), m) == h(out)
        assert ccm.decrypt(e, h(n), h(out), h(a), m) == h(p)


def test_ccm_aes_ccm_object_matches_the_functions():
    c = ccm.AesCcm(h(KRFC), 8)
    n, a, p, out, m = RFC3610[0]
    assert c.encrypt(h(n), h(p), h(a)) == h(out)
    assert c.decrypt(h(n), h(out), h(a)) == h(p)


def test_ccm_refuses_any_change():
    e = enc(KRFC)
    n, a, p, out, m = RFC3610[0]
    n, a, out = h(n), h(a), h(out)
    for i in range(len(out)):
        bad = bytearray(out)
        bad[i] ^= 0x01
        assert ccm.decrypt(e, n, bytes(bad), a, m) is None
    assert ccm.decrypt(e, n, out, a[:-1], m) is None                 # other AAD
    assert ccm.decrypt(e, n[:-1] + b"\x00", out, a, m) is None       # other nonce
    assert ccm.decrypt(e, n, out[:-1], a, m) is None                 # truncated
    assert ccm.decrypt(e, n, out[:7], a, 8) is None                  # shorter than a tag
    assert ccm.decrypt(e, n, out, a, 10) is None                     # other tag length


def test_ccm_empty_payload_and_empty_aad():
    e = enc(K38C)
    t = ccm.encrypt(e, bytes(13), b"", b"", 8)
    assert len(t) == 8 and ccm.decrypt(e, bytes(13), t, b"", 8) == b""
    t = ccm.encrypt(e, bytes(13), b"", b"\x0c\x00\x00\x00\x01", 8)
    assert ccm.decrypt(e, bytes(13), t, b"\x0c\x00\x00\x00\x02", 8) is None


def test_ccm_parameter_errors():
    e = enc(K38C)
    for nonce, tag in ((bytes(6), 8), (bytes(14), 8), (bytes(13), 3), (bytes(13), 7),
                       (bytes(13), 18)):
        try:
            ccm.encrypt(e, nonce, b"x", b"", tag)
        except ValueError:
            pass
        else:
            assert False, (len(nonce), tag)
    try:    # a 13-byte nonce leaves 2 length bytes: at most 65535 bytes
        ccm.encrypt(e, bytes(13), bytes(65536), b"", 8)
    except ValueError:
        pass
    else:
        assert False


# ---- CMAC [RFC 4493] and AES-CMAC-PRF-128 [RFC 4615] ----------------------------

def test_cmac_rfc4493_examples():
    e = enc("2b7e151628aed2a6abf7158809cf4f3c")
    m = h("6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51"
          "30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710")
    assert ccm.cmac(e, b"") == h("bb1d6929e95937287fa37d129b756746")
    assert ccm.cmac(e, m[:16]) == h("070a16b46b4d4144f79bdd9dd04a287c")
    assert ccm.cmac(e, m[:40]) == h("dfa66747de9ae63030ca32611497c827")
    assert ccm.cmac(e, m) == h("51f0bebf7e3b9d92fc49741779363cfe")


def test_cmac_prf_rfc4615_vectors():
    m = h("000102030405060708090a0b0c0d0e0f10111213")
    assert ccm.cmac_prf(h("000102030405060708090a0b0c0d0e0fedcb"), m) == \
        h("84a348a4a45d235babfffc0d2b4da09a")
    assert ccm.cmac_prf(h("000102030405060708090a0b0c0d0e0f"), m) == \
        h("980ae87b5f4c9c5214f5b6a8455e4c2d")
    assert ccm.cmac_prf(h("00010203040506070809"), m) == h("290d9e112edb09ee141fcf64c0b72f3d")


# ---- the AES mode's key derivation and key wrap (emulator profile) --------------

def test_derive_key_self_computed_vectors():
    # docs/security-modes.md; self-computed, held to OpenSSL's CMAC in
    # tests/test_aes_vectors.py
    assert aes_mode.derive_key(bytes([1] * 16)) == h("11cf6eca5eb47259c460c51e87fd9841")
    assert aes_mode.derive_key(bytes(range(1, 13))) == h("92b8f8868d60f12f6caba40e4af43341")
    assert aes_mode.derive_key(bytes([2] * 16)) != aes_mode.derive_key(bytes([1] * 16))


def test_key_wrap_round_trip_and_binding():
    kek = bytes([1] * 16)
    new = bytes(range(0xA1, 0xB1))
    blob = aes_mode.wrap_key(kek, 2048 + 24, 1, new)
    assert len(blob) == 16 + 8 and blob[:16] != new
    assert blob == aes_mode.wrap_key(kek, 2048 + 24, 1, new)         # deterministic
    assert aes_mode.unwrap_key(kek, 2048 + 24, 1, blob) == new
    assert aes_mode.unwrap_key(kek, 2048 + 24, 0, blob) is None      # bound to the key ID
    assert aes_mode.unwrap_key(kek, 2048 + 15, 1, blob) is None      # ... the procedure
    assert aes_mode.unwrap_key(bytes([2] * 16), 2048 + 24, 1, blob) is None   # ... the KEK
    for i in range(len(blob)):
        bad = bytearray(blob)
        bad[i] ^= 0x80
        assert aes_mode.unwrap_key(kek, 2048 + 24, 1, bytes(bad)) is None
    assert aes_mode.unwrap_key(kek, 2048 + 24, 1, blob[:8]) is None
    for n in (12, 16, 20):                         # PLC, MEP, optical key lengths
        k = bytes(range(n))
        b = aes_mode.wrap_key(bytes(range(1, 13)), 2048 + 15, 0, k)
        assert len(b) == n + 8 and aes_mode.unwrap_key(bytes(range(1, 13)), 2048 + 15, 0, b) == k
