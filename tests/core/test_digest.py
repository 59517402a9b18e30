# Dual-runtime tests of the OMA digest (meter/digest.py): every published
# vector, plus a slow, obviously-correct reference compared with the fast
# implementation on pseudo-random keys, messages and stream splits.
from osgp_meter.digest import OmaDigest, oma_digest, clear_cache


def h(s):
    return bytes.fromhex(s.replace(" ", ""))


KEY_DF = h("DF" * 12)
KEY_MAK = h("01" * 16)


# ---- slow reference, written straight from the algorithm text -------------
# (reference/osgp-application.md 6.2, lontalk-transport-security.md 4.1)

def rol1(n):
    return ((n << 1) | (n >> 7)) & 255


def ror1(n):
    return ((n >> 1) | (n << 7)) & 255


def ref_digest(key, msg, state=None):
    k = len(key)
    r = 6 if k == 6 else k * 3 // 2
    block = 8 * r
    nblocks = (len(msg) + block - 1) // block
    if nblocks == 0:
        nblocks = 1                      # an empty message runs one block
    a = [0] * 8 if state is None else list(state)
    for t in range(nblocks * block):
        m = msg[t] if t < len(msg) else 0   # zero padding
        j = 7 - t % 8
        bit = (key[(t // 8) % r % k] >> (t % 8)) & 1
        n = ~(a[j] + j) & 255
        if bit:
            a[j] = (a[(j + 1) % 8] + m + rol1(n)) & 255
        else:
            a[j] = (a[(j + 1) % 8] + m - ror1(n)) & 255
    return bytes(a)


class Rng:
    # xorshift32: the same numbers on CPython and MicroPython
    def __init__(self, seed):
        self.x = seed

    def next(self):
        x = self.x
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.x = x
        return x

    def bytes(self, n):
        b = bytearray(n)   # one small allocation: the 128K heap fragments
        for i in range(n):
            b[i] = self.next() & 255
        return bytes(b)

    def below(self, n):
        return self.next() % n


# ---- published vectors ------------------------------------------------------

def test_plc_vector_df12():
    # [TT] [F5]; lontalk 4.2, osgp-application 6.2 vector 1
    msg = h("02 02 00 30 00 03 7F 30 EA 6D 00 00 00 0D 00 20 98 00 31 C3 00 08 00 00 00 00 00 11")
    assert len(msg) == 28
    want = h("DB E5 CD E5 07 B1 CB 3D")
    assert OmaDigest(KEY_DF).digest(msg) == want
    assert oma_digest(KEY_DF, msg) == want
    assert ref_digest(KEY_DF, msg) == want


def test_mep_request_vector():
    # [MEP p.15] RC4 example 1, default MAK 01 x 16
    req = h("3F 00 17 00 00 00 00 2C 01 02 03 04")
    want = h("74 86 1F 6D 76 58 DD 56")
    d = OmaDigest(KEY_MAK)
    assert d.digest(req) == want
    assert ref_digest(KEY_MAK, req) == want


def test_mep_response_streaming():
    # [MEP p.15-16]: response digest over request || response as one stream
    req = h("3F 00 17 00 00 00 00 2C 01 02 03 04")
    rsp = h("0C 77 63 5B 90")
    d = OmaDigest(KEY_MAK)
    st = d.start()
    st.update(req)
    assert st.finish_copy() == h("74 86 1F 6D 76 58 DD 56")
    st.update(rsp)
    assert st.finish() == h("35 86 3C 1D F5 B9 14 82")
    assert d.digest(req + rsp) == h("35 86 3C 1D F5 B9 14 82")
    # the response digested alone is the documented wrong value
    assert d.digest(rsp) == h("1A 30 11 53 E1 61 A6 49")
    # start(data) is start() + update(data)
    st = d.start(req)
    assert st.finish_copy() == h("74 86 1F 6D 76 58 DD 56")
    st.update(rsp)
    assert st.finish() == h("35 86 3C 1D F5 B9 14 82")


def test_mep_write_and_zero_response():
    # [MEP p.17]: partial write; the response 00 carries the same digest
    req = h("4F 08 32 00 00 1E 00 01 01 77 63 6E 2F")
    want = h("86 E5 0E 26 67 D1 E6 3C")
    d = OmaDigest(KEY_MAK)
    st = d.start(req)
    assert st.finish_copy() == want
    st.update(b"\x00")
    assert st.finish() == want
    assert d.digest(req + b"\x00") == want


def test_key_01_to_0c_vector():
    # our own vector, used in the lontalk 2.1 pcap
    key = bytes(range(1, 13))
    msg = h("30 00 17 00 00 00 0D")
    assert OmaDigest(key).digest(msg) == h("C7 7F 72 07 2D D8 3C FC")
    assert ref_digest(key, msg) == h("C7 7F 72 07 2D D8 3C FC")


def test_ep17_frame_vector():
    key = KEY_MAK
    msg = h("40 00 07 00 06 11 08 07 00 F8 03 5B 4E 43 09")
    assert OmaDigest(key).digest(msg) == h("69 7A B2 01 49 7E 9C F7")
    assert ref_digest(key, msg) == h("69 7A B2 01 49 7E 9C F7")


# ---- structure --------------------------------------------------------------

def test_key_lengths_and_block_size():
    assert OmaDigest(bytes(6)).block_size == 48
    assert OmaDigest(bytes(12)).block_size == 144
    assert OmaDigest(bytes(16)).block_size == 192
    for bad in (0, 5, 8, 13, 20):
        try:
            OmaDigest(bytes(bad))
        except ValueError:
            pass
        else:
            assert False, bad


def test_empty_message_runs_one_block():
    # the C reference processes one zero block even for an empty input, so
    # the digest of b"" equals the digest of one block of zeros (and is not 0)
    for k in (6, 12, 16):
        key = bytes(range(10, 10 + k))
        d = OmaDigest(key)
        e = d.digest(b"")
        assert e == d.digest(bytes(d.block_size))
        assert e == ref_digest(key, b"")
        assert e != bytes(8)
        assert d.start().finish() == e
        st = d.start()
        st.update(b"")
        assert st.finish_copy() == e


def test_padding_property():
    # zero bytes up to the block boundary leave the digest unchanged [TT];
    # one byte beyond starts a second block
    d = OmaDigest(KEY_MAK)
    msg = h("3F 00 17 00 00 00 00 2C 01 02 03 04")
    want = d.digest(msg)
    assert d.digest(msg + bytes(192 - len(msg))) == want
    assert d.digest(msg + bytes(193 - len(msg))) != want


def test_streaming_api_details():
    d = OmaDigest(KEY_DF)
    msg = bytes(range(40))
    st = d.start()
    st.update(msg[:3])
    c = st.copy()
    st.update(msg[3:])
    c.update(bytearray(msg[3:]))
    assert st.finish_copy() == c.finish_copy() == d.digest(msg)
    assert st.finish() == d.digest(msg)
    for op in ("update", "finish", "finish_copy", "copy"):
        try:
            if op == "update":
                st.update(b"x")
            else:
                getattr(st, op)()
        except ValueError:
            pass
        else:
            assert False, op
    # inputs other than bytes
    assert d.digest(bytearray(msg)) == d.digest(msg)
    assert d.digest(memoryview(msg)) == d.digest(msg)


def test_tables_are_shared_between_keys():
    from osgp_meter import digest
    a = OmaDigest(KEY_MAK)
    b = OmaDigest(h("01" * 12))
    assert a._groups[0] is b._groups[5]
    assert len(digest._tables()) == 16
    for t in digest._tables():
        assert len(t) == 256


# ---- fast vs reference on pseudo-random inputs -----------------------------

def test_fast_matches_reference_lengths_0_to_400():
    rng = Rng(0x1234567)
    sizes = (6, 12, 16)
    for n in range(401):
        key = rng.bytes(sizes[n % 3])
        msg = rng.bytes(n)
        assert OmaDigest(key).digest(msg) == ref_digest(key, msg), (key, n)
    clear_cache()   # random keys touched most byte values: free the tuples


def test_stream_split_at_every_position():
    rng = Rng(0xBEEF)
    for k in (6, 12, 16):
        key = rng.bytes(k)
        d = OmaDigest(key)
        msg = rng.bytes(400)
        whole = ref_digest(key, msg)
        assert d.digest(msg) == whole
        for p in range(len(msg) + 1):
            st = d.start()
            st.update(msg[:p])
            # the request digest does not disturb the stream
            assert st.finish_copy() == d.digest(msg[:p])
            st.update(msg[p:])
            assert st.finish() == whole, (k, p)
    clear_cache()


def test_stream_random_pieces():
    rng = Rng(0xC0FFEE)
    for trial in range(60):
        k = (6, 12, 16)[trial % 3]
        key = rng.bytes(k)
        d = OmaDigest(key)
        msg = rng.bytes(rng.below(420))
        st = d.start()
        p = 0
        while p < len(msg):
            q = p + rng.below(30)
            st.update(msg[p:q])
            p = q
            if rng.below(3) == 0:
                assert st.finish_copy() == d.digest(msg[:p])
        assert st.finish() == ref_digest(key, msg)
    clear_cache()


def test_transform_from_state():
    # transform(state, msg) is the digest started from another state
    rng = Rng(77)
    for k in (6, 12, 16):
        key = rng.bytes(k)
        d = OmaDigest(key)
        for n in (0, 1, 7, 8, 9, 47, 48, 49, 150, 200):
            state = rng.bytes(8)
            msg = rng.bytes(n)
            assert d.transform(state, msg) == ref_digest(key, msg, state)
            if n == 0:
                assert d.transform(state, msg, False) == state
            else:
                assert d.transform(state, msg, False) == ref_digest(key, msg, state)
        assert d.transform(bytes(8), b"x") == d.digest(b"x")
    clear_cache()


def test_clear_cache_keeps_digests_valid():
    d = OmaDigest(KEY_DF)
    msg = bytes(range(100))
    before = d.digest(msg)
    clear_cache()
    assert d.digest(msg) == before
    assert OmaDigest(KEY_DF).digest(msg) == before
