# AES-128 (FIPS-197), pure Python, for the boards: the block cipher under the
# AES security mode's CCM (meter/ccm.py, meter/aes_mode.py). Imported only by
# a meter in AES mode (or one that unwraps a key), never by the bare core.
#
# Portable and reasonably fast on MicroPython: the state lives in 16 local
# integers (no lists, no tuples built per round: an allocation per round
# costs MicroPython more than the round itself), SubBytes+ShiftRows+
# MixColumns are one lookup in byte tables per term (S, 2*S, 3*S: 768 bytes,
# kept as bytes literals so a frozen build leaves them in flash), and the
# key schedule is a tuple of eleven 16-byte round keys.
#
# Only the forward cipher exists: CCM, CMAC and the AES mode's key wrap never
# need the inverse cipher (CTR decrypts by encrypting).
#
# Checked against FIPS-197 Appendix A.1 (key expansion), B and C.1
# (tests/core/test_aes.py) and against OpenSSL through `cryptography`
# (tests/test_aes_vectors.py).

# S-box [FIPS-197 Fig. 7]
SBOX = (
    b"\x63\x7c\x77\x7b\xf2\x6b\x6f\xc5\x30\x01\x67\x2b\xfe\xd7\xab\x76"
    b"\xca\x82\xc9\x7d\xfa\x59\x47\xf0\xad\xd4\xa2\xaf\x9c\xa4\x72\xc0"
    b"\xb7\xfd\x93\x26\x36\x3f\xf7\xcc\x34\xa5\xe5\xf1\x71\xd8\x31\x15"
    b"\x04\xc7\x23\xc3\x18\x96\x05\x9a\x07\x12\x80\xe2\xeb\x27\xb2\x75"
    b"\x09\x83\x2c\x1a\x1b\x6e\x5a\xa0\x52\x3b\xd6\xb3\x29\xe3\x2f\x84"
    b"\x53\xd1\x00\xed\x20\xfc\xb1\x5b\x6a\xcb\xbe\x39\x4a\x4c\x58\xcf"
    b"\xd0\xef\xaa\xfb\x43\x4d\x33\x85\x45\xf9\x02\x7f\x50\x3c\x9f\xa8"
    b"\x51\xa3\x40\x8f\x92\x9d\x38\xf5\xbc\xb6\xda\x21\x10\xff\xf3\xd2"
    b"\xcd\x0c\x13\xec\x5f\x97\x44\x17\xc4\xa7\x7e\x3d\x64\x5d\x19\x73"
    b"\x60\x81\x4f\xdc\x22\x2a\x90\x88\x46\xee\xb8\x14\xde\x5e\x0b\xdb"
    b"\xe0\x32\x3a\x0a\x49\x06\x24\x5c\xc2\xd3\xac\x62\x91\x95\xe4\x79"
    b"\xe7\xc8\x37\x6d\x8d\xd5\x4e\xa9\x6c\x56\xf4\xea\x65\x7a\xae\x08"
    b"\xba\x78\x25\x2e\x1c\xa6\xb4\xc6\xe8\xdd\x74\x1f\x4b\xbd\x8b\x8a"
    b"\x70\x3e\xb5\x66\x48\x03\xf6\x0e\x61\x35\x57\xb9\x86\xc1\x1d\x9e"
    b"\xe1\xf8\x98\x11\x69\xd9\x8e\x94\x9b\x1e\x87\xe9\xce\x55\x28\xdf"
    b"\x8c\xa1\x89\x0d\xbf\xe6\x42\x68\x41\x99\x2d\x0f\xb0\x54\xbb\x16")
# {02} * S[x] and {03} * S[x] in GF(2^8): the MixColumns terms
M2S = (
    b"\xc6\xf8\xee\xf6\xff\xd6\xde\x91\x60\x02\xce\x56\xe7\xb5\x4d\xec"
    b"\x8f\x1f\x89\xfa\xef\xb2\x8e\xfb\x41\xb3\x5f\x45\x23\x53\xe4\x9b"
    b"\x75\xe1\x3d\x4c\x6c\x7e\xf5\x83\x68\x51\xd1\xf9\xe2\xab\x62\x2a"
    b"\x08\x95\x46\x9d\x30\x37\x0a\x2f\x0e\x24\x1b\xdf\xcd\x4e\x7f\xea"
    b"\x12\x1d\x58\x34\x36\xdc\xb4\x5b\xa4\x76\xb7\x7d\x52\xdd\x5e\x13"
    b"\xa6\xb9\x00\xc1\x40\xe3\x79\xb6\xd4\x8d\x67\x72\x94\x98\xb0\x85"
    b"\xbb\xc5\x4f\xed\x86\x9a\x66\x11\x8a\xe9\x04\xfe\xa0\x78\x25\x4b"
    b"\xa2\x5d\x80\x05\x3f\x21\x70\xf1\x63\x77\xaf\x42\x20\xe5\xfd\xbf"
    b"\x81\x18\x26\xc3\xbe\x35\x88\x2e\x93\x55\xfc\x7a\xc8\xba\x32\xe6"
    b"\xc0\x19\x9e\xa3\x44\x54\x3b\x0b\x8c\xc7\x6b\x28\xa7\xbc\x16\xad"
    b"\xdb\x64\x74\x14\x92\x0c\x48\xb8\x9f\xbd\x43\xc4\x39\x31\xd3\xf2"
    b"\xd5\x8b\x6e\xda\x01\xb1\x9c\x49\xd8\xac\xf3\xcf\xca\xf4\x47\x10"
    b"\x6f\xf0\x4a\x5c\x38\x57\x73\x97\xcb\xa1\xe8\x3e\x96\x61\x0d\x0f"
    b"\xe0\x7c\x71\xcc\x90\x06\xf7\x1c\xc2\x6a\xae\x69\x17\x99\x3a\x27"
    b"\xd9\xeb\x2b\x22\xd2\xa9\x07\x33\x2d\x3c\x15\xc9\x87\xaa\x50\xa5"
    b"\x03\x59\x09\x1a\x65\xd7\x84\xd0\x82\x29\x5a\x1e\x7b\xa8\x6d\x2c")
M3S = (
    b"\xa5\x84\x99\x8d\x0d\xbd\xb1\x54\x50\x03\xa9\x7d\x19\x62\xe6\x9a"
    b"\x45\x9d\x40\x87\x15\xeb\xc9\x0b\xec\x67\xfd\xea\xbf\xf7\x96\x5b"
    b"\xc2\x1c\xae\x6a\x5a\x41\x02\x4f\x5c\xf4\x34\x08\x93\x73\x53\x3f"
    b"\x0c\x52\x65\x5e\x28\xa1\x0f\xb5\x09\x36\x9b\x3d\x26\x69\xcd\x9f"
    b"\x1b\x9e\x74\x2e\x2d\xb2\xee\xfb\xf6\x4d\x61\xce\x7b\x3e\x71\x97"
    b"\xf5\x68\x00\x2c\x60\x1f\xc8\xed\xbe\x46\xd9\x4b\xde\xd4\xe8\x4a"
    b"\x6b\x2a\xe5\x16\xc5\xd7\x55\x94\xcf\x10\x06\x81\xf0\x44\xba\xe3"
    b"\xf3\xfe\xc0\x8a\xad\xbc\x48\x04\xdf\xc1\x75\x63\x30\x1a\x0e\x6d"
    b"\x4c\x14\x35\x2f\xe1\xa2\xcc\x39\x57\xf2\x82\x47\xac\xe7\x2b\x95"
    b"\xa0\x98\xd1\x7f\x66\x7e\xab\x83\xca\x29\xd3\x3c\x79\xe2\x1d\x76"
    b"\x3b\x56\x4e\x1e\xdb\x0a\x6c\xe4\x5d\x6e\xef\xa6\xa8\xa4\x37\x8b"
    b"\x32\x43\x59\xb7\x8c\x64\xd2\xe0\xb4\xfa\x07\x25\xaf\x8e\xe9\x18"
    b"\xd5\x88\x6f\x72\x24\xf1\xc7\x51\x23\x7c\x9c\x21\xdd\xdc\x86\x85"
    b"\x90\x42\xc4\xaa\xd8\x05\x01\x12\xa3\x5f\xf9\xd0\x91\x58\x27\xb9"
    b"\x38\x13\xb3\x33\xbb\x70\x89\xa7\xb6\x22\x92\x20\x49\xff\x78\x7a"
    b"\x8f\xf8\x80\x17\xda\x31\xc6\xb8\xc3\xb0\x77\x11\xcb\xfc\xd6\x3a")

def encrypt_block(rks, block):
    """E(K, block): the 16-byte ciphertext of a 16-byte block under the
    round keys of expand_key(K) [FIPS-197 5.1]."""
    S = SBOX
    M2 = M2S
    M3 = M3S
    k0, k1, k2, k3, k4, k5, k6, k7, k8, k9, k10, k11, k12, k13, k14, k15 = rks[0]
    s0 = block[0] ^ k0
    s1 = block[1] ^ k1
    s2 = block[2] ^ k2
    s3 = block[3] ^ k3
    s4 = block[4] ^ k4
    s5 = block[5] ^ k5
    s6 = block[6] ^ k6
    s7 = block[7] ^ k7
    s8 = block[8] ^ k8
    s9 = block[9] ^ k9
    s10 = block[10] ^ k10
    s11 = block[11] ^ k11
    s12 = block[12] ^ k12
    s13 = block[13] ^ k13
    s14 = block[14] ^ k14
    s15 = block[15] ^ k15
    # rounds 1-8 in pairs (s -> t -> s), round 9 (s -> t), then the last
    for i in (1, 3, 5, 7):
        k0, k1, k2, k3, k4, k5, k6, k7, k8, k9, k10, k11, k12, k13, k14, k15 = rks[i]
        t0 = M2[s0] ^ M3[s5] ^ S[s10] ^ S[s15] ^ k0
        t1 = S[s0] ^ M2[s5] ^ M3[s10] ^ S[s15] ^ k1
        t2 = S[s0] ^ S[s5] ^ M2[s10] ^ M3[s15] ^ k2
        t3 = M3[s0] ^ S[s5] ^ S[s10] ^ M2[s15] ^ k3
        t4 = M2[s4] ^ M3[s9] ^ S[s14] ^ S[s3] ^ k4
        t5 = S[s4] ^ M2[s9] ^ M3[s14] ^ S[s3] ^ k5
        t6 = S[s4] ^ S[s9] ^ M2[s14] ^ M3[s3] ^ k6
        t7 = M3[s4] ^ S[s9] ^ S[s14] ^ M2[s3] ^ k7
        t8 = M2[s8] ^ M3[s13] ^ S[s2] ^ S[s7] ^ k8
        t9 = S[s8] ^ M2[s13] ^ M3[s2] ^ S[s7] ^ k9
        t10 = S[s8] ^ S[s13] ^ M2[s2] ^ M3[s7] ^ k10
        t11 = M3[s8] ^ S[s13] ^ S[s2] ^ M2[s7] ^ k11
        t12 = M2[s12] ^ M3[s1] ^ S[s6] ^ S[s11] ^ k12
        t13 = S[s12] ^ M2[s1] ^ M3[s6] ^ S[s11] ^ k13
        t14 = S[s12] ^ S[s1] ^ M2[s6] ^ M3[s11] ^ k14
        t15 = M3[s12] ^ S[s1] ^ S[s6] ^ M2[s11] ^ k15
        k0, k1, k2, k3, k4, k5, k6, k7, k8, k9, k10, k11, k12, k13, k14, k15 = rks[i + 1]
        s0 = M2[t0] ^ M3[t5] ^ S[t10] ^ S[t15] ^ k0
        s1 = S[t0] ^ M2[t5] ^ M3[t10] ^ S[t15] ^ k1
        s2 = S[t0] ^ S[t5] ^ M2[t10] ^ M3[t15] ^ k2
        s3 = M3[t0] ^ S[t5] ^ S[t10] ^ M2[t15] ^ k3
        s4 = M2[t4] ^ M3[t9] ^ S[t14] ^ S[t3] ^ k4
        s5 = S[t4] ^ M2[t9] ^ M3[t14] ^ S[t3] ^ k5
        s6 = S[t4] ^ S[t9] ^ M2[t14] ^ M3[t3] ^ k6
        s7 = M3[t4] ^ S[t9] ^ S[t14] ^ M2[t3] ^ k7
        s8 = M2[t8] ^ M3[t13] ^ S[t2] ^ S[t7] ^ k8
        s9 = S[t8] ^ M2[t13] ^ M3[t2] ^ S[t7] ^ k9
        s10 = S[t8] ^ S[t13] ^ M2[t2] ^ M3[t7] ^ k10
        s11 = M3[t8] ^ S[t13] ^ S[t2] ^ M2[t7] ^ k11
        s12 = M2[t12] ^ M3[t1] ^ S[t6] ^ S[t11] ^ k12
        s13 = S[t12] ^ M2[t1] ^ M3[t6] ^ S[t11] ^ k13
        s14 = S[t12] ^ S[t1] ^ M2[t6] ^ M3[t11] ^ k14
        s15 = M3[t12] ^ S[t1] ^ S[t6] ^ M2[t11] ^ k15
    k0, k1, k2, k3, k4, k5, k6, k7, k8, k9, k10, k11, k12, k13, k14, k15 = rks[9]
    t0 = M2[s0] ^ M3[s5] ^ S[s10] ^ S[s15] ^ k0
    t1 = S[s0] ^ M2[s5] ^ M3[s10] ^ S[s15] ^ k1
    t2 = S[s0] ^ S[s5] ^ M2[s10] ^ M3[s15] ^ k2
    t3 = M3[s0] ^ S[s5] ^ S[s10] ^ M2[s15] ^ k3
    t4 = M2[s4] ^ M3[s9] ^ S[s14] ^ S[s3] ^ k4
    t5 = S[s4] ^ M2[s9] ^ M3[s14] ^ S[s3] ^ k5
    t6 = S[s4] ^ S[s9] ^ M2[s14] ^ M3[s3] ^ k6
    t7 = M3[s4] ^ S[s9] ^ S[s14] ^ M2[s3] ^ k7
    t8 = M2[s8] ^ M3[s13] ^ S[s2] ^ S[s7] ^ k8
    t9 = S[s8] ^ M2[s13] ^ M3[s2] ^ S[s7] ^ k9
    t10 = S[s8] ^ S[s13] ^ M2[s2] ^ M3[s7] ^ k10
    t11 = M3[s8] ^ S[s13] ^ S[s2] ^ M2[s7] ^ k11
    t12 = M2[s12] ^ M3[s1] ^ S[s6] ^ S[s11] ^ k12
    t13 = S[s12] ^ M2[s1] ^ M3[s6] ^ S[s11] ^ k13
    t14 = S[s12] ^ S[s1] ^ M2[s6] ^ M3[s11] ^ k14
    t15 = M3[s12] ^ S[s1] ^ S[s6] ^ M2[s11] ^ k15
    k0, k1, k2, k3, k4, k5, k6, k7, k8, k9, k10, k11, k12, k13, k14, k15 = rks[10]
    return bytes((S[t0] ^ k0, S[t5] ^ k1, S[t10] ^ k2, S[t15] ^ k3,
                  S[t4] ^ k4, S[t9] ^ k5, S[t14] ^ k6, S[t3] ^ k7,
                  S[t8] ^ k8, S[t13] ^ k9, S[t2] ^ k10, S[t7] ^ k11,
                  S[t12] ^ k12, S[t1] ^ k13, S[t6] ^ k14, S[t11] ^ k15))


_RCON = b"\x01\x02\x04\x08\x10\x20\x40\x80\x1b\x36"


def expand_key(key):
    """The AES-128 key schedule [FIPS-197 5.2]: a tuple of 11 round keys of
    16 bytes (round 0 is the key itself)."""
    if len(key) != 16:
        raise ValueError("AES-128 key must be 16 bytes")
    S = SBOX
    w = bytearray(176)
    w[0:16] = key
    for i in range(16, 176, 4):
        a = w[i - 4]
        b = w[i - 3]
        c = w[i - 2]
        d = w[i - 1]
        if i % 16 == 0:     # RotWord, SubWord, Rcon
            a, b, c, d = S[b] ^ _RCON[i // 16 - 1], S[c], S[d], S[a]
        w[i] = w[i - 16] ^ a
        w[i + 1] = w[i - 15] ^ b
        w[i + 2] = w[i - 14] ^ c
        w[i + 3] = w[i - 13] ^ d
    return tuple(bytes(w[i:i + 16]) for i in range(0, 176, 16))


def encryptor(key):
    """enc(block) -> E(key, block): the ECB block function ccm.py runs on."""
    rks = expand_key(key)

    def enc(block):
        return encrypt_block(rks, block)
    return enc
