# The OMA digest: the 8-byte message authentication code of OSGP.
#
# Sources: [MEP App. A] reference C code (OSGP MEP Client Developer's Guide),
# [TT] ttaubert/osgp-oma-digest, [F5] course reconstruction; the algorithm is
# restated in reference/osgp-application.md 6.2 and
# reference/lontalk-transport-security.md 4.1. Written from that description.
#
# Algorithm. A key K of k bytes (6, 12 or 16). One pass uses R key bytes
# (R = 6 for k = 6, else 1.5 k: K[0..k-1] then K[0..k/2-1]), one key bit per
# message byte, so a pass ("block") eats 8 R message bytes (48, 144, 192).
# State: 8 bytes a[0..7], all zero. The message is zero-padded to whole
# blocks; an empty message still runs one block (the C reference). Step t:
#     j = 7 - t % 8;  bit = (K[(t // 8) % R % k] >> (t % 8)) & 1
#     n = NOT(a[j] + j)
#     a[j] = a[(j+1) % 8] + m[t] + ROL1(n)      if bit
#     a[j] = a[(j+1) % 8] + m[t] - ROR1(n)      otherwise     (all mod 256)
# The digest is the final state a[0..7], a[0] first.
#
# Speed (this is the CPU bottleneck of secured requests). Everything that
# depends on a[j] alone is looked up: T[j][bit][x] = ROL1(NOT(x + j)) or
# -ROR1(NOT(x + j)) mod 256 (16 tables of 256 bytes = 4 KB, shared by every
# key, built on first use). The 8 steps that use one key byte form a "group";
# the tuple of the 8 tables a key byte value selects is cached per value (at
# most 256 tuples, shared by every key; a board with a few keys holds a few
# dozen, clear_cache() drops them), so a key is just the list of R references
# to those tuples. A group then is 8 unrolled lines
#     a7 = (a0 + m + t7[a7]) & 255; a6 = (a7 + m + t6[a6]) & 255; ...
# on local variables. The zero padding has its own loop without m.
#
# Streaming [MEP App. A]: the MEP response digest covers request || response
# as one stream, padded only at the end. OmaStream keeps the state at a group
# boundary plus < 8 pending bytes, so the request digest is a non-destructive
# finish_copy() and the response digest continues from the same state:
#     st = d.start(req); req_digest = st.finish_copy()
#     st.update(rsp); rsp_digest = st.finish()

_TABLES = None   # [ror_j0, rol_j0, ror_j1, rol_j1, ...]: index 2 j + bit
_GROUPS = None   # [key byte value] -> (T[7][b0], T[6][b1], ..., T[0][b7])


def _tables():
    global _TABLES, _GROUPS
    if _TABLES is None:
        tabs = []
        for j in range(8):
            ror = bytearray(256)
            rol = bytearray(256)
            for x in range(256):
                n = ~(x + j) & 255
                rol[x] = ((n << 1) | (n >> 7)) & 255
                ror[x] = -((n >> 1) | (n << 7)) & 255
            tabs.append(bytes(ror))
            tabs.append(bytes(rol))
        _GROUPS = [None] * 256
        _TABLES = tabs      # last: a MemoryError above leaves both unset, not half
    return _TABLES


def _group(kb):
    tabs = _TABLES or _tables()
    g = _GROUPS[kb]
    if g is None:
        # step b of a group works on state index j = 7 - b with key bit b
        g = tuple([tabs[2 * (7 - b) + ((kb >> b) & 1)] for b in range(8)])
        _GROUPS[kb] = g
    return g


def clear_cache():
    """Forget the cached group tuples (at most 256, about 12 KB on a 32-bit
    board when every byte value has been seen). Existing OmaDigest objects
    keep working; new ones rebuild what they need."""
    if _GROUPS is not None:
        for i in range(256):
            _GROUPS[i] = None


def _run(groups, s, g, msg, p, end):
    # Feed msg[p:end] (a whole number of groups) from group index g; the state
    # list s is updated in place. Returns the new group index.
    a0, a1, a2, a3, a4, a5, a6, a7 = s
    n = len(groups)
    while p < end:
        stop = g + ((end - p) >> 3)
        if stop > n:
            stop = n
        for t7, t6, t5, t4, t3, t2, t1, t0 in groups[g:stop]:
            a7 = (a0 + msg[p] + t7[a7]) & 255
            a6 = (a7 + msg[p + 1] + t6[a6]) & 255
            a5 = (a6 + msg[p + 2] + t5[a5]) & 255
            a4 = (a5 + msg[p + 3] + t4[a4]) & 255
            a3 = (a4 + msg[p + 4] + t3[a3]) & 255
            a2 = (a3 + msg[p + 5] + t2[a2]) & 255
            a1 = (a2 + msg[p + 6] + t1[a1]) & 255
            a0 = (a1 + msg[p + 7] + t0[a0]) & 255
            p += 8
        g = 0 if stop == n else stop
    s[0] = a0
    s[1] = a1
    s[2] = a2
    s[3] = a3
    s[4] = a4
    s[5] = a5
    s[6] = a6
    s[7] = a7
    return g


def _tail(groups, s, g):
    # Zero padding from group g to the end of the block; s is not changed.
    a0, a1, a2, a3, a4, a5, a6, a7 = s
    for t7, t6, t5, t4, t3, t2, t1, t0 in groups[g:]:
        a7 = (a0 + t7[a7]) & 255
        a6 = (a7 + t6[a6]) & 255
        a5 = (a6 + t5[a5]) & 255
        a4 = (a5 + t4[a4]) & 255
        a3 = (a4 + t3[a3]) & 255
        a2 = (a3 + t2[a2]) & 255
        a1 = (a2 + t1[a1]) & 255
        a0 = (a1 + t0[a0]) & 255
    return bytes((a0, a1, a2, a3, a4, a5, a6, a7))


def _finish(groups, s, g, pending, fed):
    # Digest of the stream (state s at group g, pending < 8 bytes, fed: any
    # byte seen at all). s is not changed.
    if pending:
        s = list(s)
        g = _run(groups, s, g, pending + bytes(8 - len(pending)), 0, 8)
        if g == 0:
            return bytes(s)
    elif g == 0 and fed:
        return bytes(s)
    return _tail(groups, s, g)


class OmaDigest:
    """The OMA digest under one key (6, 12 or 16 bytes)."""

    __slots__ = ("_groups",)

    def __init__(self, key):
        k = len(key)
        if k == 6:
            r = 6
        elif k == 12 or k == 16:
            r = k + (k >> 1)
        else:
            raise ValueError("OMA digest key must be 6, 12 or 16 bytes")
        self._groups = [_group(key[i % k]) for i in range(r)]

    @property
    def block_size(self):
        """Message bytes per pass (48, 144 or 192)."""
        return 8 * len(self._groups)

    def digest(self, msg):
        """The 8-byte digest of msg (zero-padded; empty -> one block)."""
        groups = self._groups
        s = [0, 0, 0, 0, 0, 0, 0, 0]
        whole = len(msg) & ~7
        g = _run(groups, s, 0, msg, 0, whole) if whole else 0
        return _finish(groups, s, g, bytes(msg[whole:]), len(msg))

    def start(self, data=None):
        """A stream from the zero state; data (optional) is fed first."""
        st = OmaStream(self._groups, [0, 0, 0, 0, 0, 0, 0, 0])
        if data:
            st.update(data)
        return st

    def transform(self, state, msg, empty_pass=True):
        """Run the step function from an 8-byte start state over msg, in order,
        zero-padded to whole passes; an empty msg runs one pass only if
        empty_pass. The building block of the ISO/IEC 14908-1 transform (see
        cipher.auth_transform) and the PLC RC4 key schedule."""
        if len(state) != 8:
            raise ValueError("state must be 8 bytes")
        groups = self._groups
        s = list(state)
        whole = len(msg) & ~7
        g = _run(groups, s, 0, msg, 0, whole) if whole else 0
        if not msg and not empty_pass:
            return bytes(s)
        return _finish(groups, s, g, bytes(msg[whole:]), len(msg))


class OmaStream:
    """An OMA digest over a stream fed in pieces (request || response)."""

    __slots__ = ("_groups", "_s", "_g", "_pend", "_fed")

    def __init__(self, groups, s, g=0, pend=b"", fed=False):
        self._groups = groups
        self._s = s
        self._g = g
        self._pend = pend
        self._fed = fed

    def update(self, data):
        """Feed more bytes (no padding in between)."""
        if self._groups is None:
            raise ValueError("stream finished")
        if not data:
            return
        self._fed = True
        pend = self._pend
        if pend:
            data = pend + data
        whole = len(data) & ~7
        if whole:
            self._g = _run(self._groups, self._s, self._g, data, 0, whole)
        self._pend = bytes(data[whole:])

    def finish_copy(self):
        """The digest of everything fed so far; the stream carries on."""
        if self._groups is None:
            raise ValueError("stream finished")
        return _finish(self._groups, self._s, self._g, self._pend, self._fed)

    def finish(self):
        """The digest of everything fed; the stream is closed."""
        d = self.finish_copy()
        self._groups = None
        return d

    def copy(self):
        """An independent stream in the same position."""
        if self._groups is None:
            raise ValueError("stream finished")
        return OmaStream(self._groups, list(self._s), self._g, self._pend, self._fed)


def oma_digest(key, msg):
    """One-shot OMA digest (builds the key schedule each call)."""
    return OmaDigest(key).digest(msg)
