# The AES security mode, ET04.127 = 2 "OSGP-AES-128-PSK" (TS 104 001 mode 2),
# on the MEP and PLC ports.
#
# EMULATOR PROFILE (docs/security-modes.md). The reference knows the mode's
# name, that it replaces the RC4/OMA-digest suite, that TS 104 001 cites
# NIST SP 800-38C (CCM) and RFC 5433 (a CMAC-based KDF), and nothing else:
# the real nonce, tag length, authenticated fields and key hierarchy were
# NOT FOUND. This module defines them, keeping the RC4 suite's framing:
#
#   request   code | CCM(args) | seq(4, MSB) | tag(8)
#   answer    code | CCM(data) | tag(8)           (0x00 .. 0x0A)
#             0C | held seq(4) | tag(8)           (sequence report: no CCM
#                                                  payload, seq authenticated)
#             0B | 00 x 8                         (bad tag: plain, as in RC4)
#   CCM       AES-128, 13-byte nonce (L = 2), 8-byte tag. The first byte
#             stays clear on both ports (PLC dispatches on it); AAD = that
#             byte, plus the sequence number for a request; the sequence
#             number is in the nonce either way.
#   nonce     flags(1) | identity(8) | seq(4, MSB)
#             flags: bit 0 answer, bit 1 sequence report (with bit 0),
#                    bit 4 PLC port, bit 5 broadcast key
#             identity: MEP: the meter's serial number (BT01.16, 8 bytes);
#                    PLC: 00 00 | the meter's Neuron ID, or 8 zero bytes for
#                    a request sent with the broadcast key (one message for
#                    every member; each member answers under its own ID)
#             seq: the request's number (request and answer), the meter's
#                    held number (sequence report)
#   key       per role, derived from the role's existing key (MAK, MBK, PLC
#             unicast, PLC broadcast): K = GKDF-128 of RFC 5433 keyed with
#             that key, the MAC being AES-CMAC-PRF-128 (RFC 4615: a 12-byte
#             key is first reduced to AES-CMAC(0^128, key)), i.e.
#             AES-CMAC(key', 00 01 | "OSGP-AES-128-PSK" | len(key)(2))
#   windows   as in RC4 mode: MEP 1..8 ahead; PLC unicast ET04.0 + 1..8,
#             broadcast (last, ET04.82 + ET04.86]; an identical retry gets
#             the cached answer
#
# Why the nonce never repeats under one key: the meter accepts each
# sequence number once (the window only moves forward), answers it once
# (retries get the same bytes), and a sequence report is a function of the
# held number alone (the same bytes for the same number). Group answers
# differ by the member's Neuron ID. A head end must not move ET04.0 or
# ET04.103 backwards under one key.
from . import cipher
from . import access

MODE_AES = cipher.MODE_AES
TAG = cipher.AES_TAG
LABEL = b"OSGP-AES-128-PSK"

F_ANSWER = 0x01
F_REPORT = 0x03
F_PLC = 0x10
F_BCAST = 0x20

AUTH_FAIL = b"\x0b" + bytes(8)       # the 0x0B answer, plain
NO_ID = bytes(8)


def _be4(n):
    return bytes((n >> 24 & 0xFF, n >> 16 & 0xFF, n >> 8 & 0xFF, n & 0xFF))


def derive_key(psk):
    """The role's 16-byte AES key from its key `psk` (any length; 12 and 16
    in practice): GKDF-128(psk, LABEL | len(psk)(2)) [RFC 5433 4], the MAC
    being AES-CMAC-PRF-128 [RFC 4615]: a 16-byte key is used as is, any other
    length is first reduced to AES-CMAC(0^128, psk)."""
    from . import ccm
    psk = bytes(psk)
    if not psk:
        raise ValueError("AES mode: empty key")
    return ccm.cmac_prf(psk, b"\x00\x01" + LABEL + len(psk).to_bytes(2, "big"))


class Suite:
    """The AES-CCM objects of a KeyRing's roles, derived on first use and
    again whenever the role's key changes (a key change procedure)."""

    __slots__ = ("keys", "_c")

    def __init__(self, keys):
        self.keys = keys
        self._c = None

    def ccm(self, role):
        key = self.keys.get(role) if self.keys is not None else None
        if key is None:
            return None
        c = self._c
        if c is None:
            c = self._c = {}
        got = c.get(role)
        if got is None or got[0] != key:
            got = c[role] = (key, cipher.new_aes_ccm(derive_key(key)))
        return got[1]


# -- message layout (both sides) ----------------------------------------------

def nonce(flags, ident, seq4):
    return bytes((flags,)) + bytes(ident) + seq4


def seal_request(c, flags, ident, req, seq):
    """code | CCM(args) | seq | tag for the C12 request `req` (code + args)."""
    req = bytes(req)
    s = _be4(seq)
    out = c.encrypt(nonce(flags, ident, s), req[1:], req[:1] + s)
    return req[:1] + out[:-TAG] + s + out[-TAG:]


def open_request(c, flags, ident, msg):
    """The plaintext code | args | seq of a sealed request, or None."""
    n = len(msg)
    if n < 5 + TAG:
        return None
    s = bytes(msg[n - 4 - TAG:n - TAG])
    args = c.decrypt(nonce(flags, ident, s), bytes(msg[1:n - 4 - TAG]) + bytes(msg[n - TAG:]),
                     bytes(msg[:1]) + s)
    if args is None:
        return None
    return bytes(msg[:1]) + args + s


def seal_answer(c, flags, ident, seq, rsp):
    """code | CCM(data) | tag: the answer to request number `seq`."""
    rsp = bytes(rsp)
    return rsp[:1] + c.encrypt(nonce(flags | F_ANSWER, ident, _be4(seq)), rsp[1:], rsp[:1])


def seq_report(c, flags, ident, held):
    """0C | held | tag: the answer to a request outside the window."""
    head = b"\x0c" + _be4(held)
    return head + c.encrypt(nonce(flags | F_REPORT, ident, head[1:]), b"", head)


def open_answer(c, flags, ident, seq, answer):
    """A client's view of an answer to request `seq`: the plaintext response
    (code [data]; 0C | held for a sequence report; 0B for the plain 0x0B),
    or None when the tag does not verify."""
    answer = bytes(answer)
    if len(answer) < 1 + TAG:
        return None
    if answer == AUTH_FAIL:
        return b"\x0b"
    if answer[0] == 0x0C and len(answer) == 5 + TAG:
        head = answer[:5]
        ok = c.decrypt(nonce(flags | F_REPORT, ident, head[1:]), answer[5:], head)
        return head if ok is not None else None
    data = c.decrypt(nonce(flags | F_ANSWER, ident, _be4(seq)), answer[1:], answer[:1])
    return None if data is None else answer[:1] + data


# -- the meter's side -----------------------------------------------------------

def mode_write(meter, new, role, limits):
    """The rules of a write that changes ET04.127 to `new` (cipher's ET04
    hook): None when allowed, else the answer (03 no permission, 05 a value
    that is not a mode)."""
    old = meter.store.field(cipher.ET04, cipher.ET04_SECURITY_MODE, 1)
    if new != cipher.MODE_RC4 and new != MODE_AES:
        return b"\x05"       # 1 is reserved, the rest undefined
    if new == MODE_AES:
        # into AES: manufacturing (MK, optical) or commissioning (MAK on MEP,
        # the PLC unicast key): not PK, MBK or the broadcast key
        ok = role & (access.ROLE_MK | access.ROLE_MAK | access.ROLE_PLC)
    elif old == MODE_AES:
        # back to RC4: only an AES-authenticated request, i.e. MEP (MAK) or
        # PLC (unicast key) while the meter is in AES mode (the RC4 suite is
        # refused before it gets here); never the optical port
        ok = role & (access.ROLE_MAK | access.ROLE_PLC) and limits.name in ("mep", "plc")
    else:
        ok = True
    return None if ok else b"\x03"


def mep_request(srv, body, sig, now):
    """mep.MepServer._request for a meter in AES mode: the answer bytes."""
    suite = srv.aes
    if suite is None:
        suite = srv.aes = Suite(srv.keys)
    ident = srv.ident() if srv.ident is not None else NO_ID
    roles = srv.roles
    hint = srv._hint
    if hint is not None and hint[0] in roles:
        roles = (hint[0],) + tuple(r for r in roles if r != hint[0])
    found = None
    for role in roles:
        c = suite.ccm(role)
        plain = open_request(c, 0, ident, body) if c is not None else None
        if plain is not None:
            found = (role, c, plain)
            break
    srv._last_req = now
    if found is None:
        srv.stats[1] += 1
        return AUTH_FAIL
    role, c, plain = found
    srv._hint = (role, False)
    response, seq = srv._run(role, plain, now)
    if seq is None:
        return seq_report(c, 0, ident, srv.seq)
    answer = seal_answer(c, 0, ident, seq, response)
    srv._last_sig = sig
    srv._last_answer = answer
    return answer


def plc_request(o, apdu, role, want, now):
    """plc_osgp.OsgpPlc.handle for a meter in AES mode: the answer APDU, or
    None (no answer wanted)."""
    suite = o.aes
    if suite is None:
        suite = o.aes = Suite(o.keys)
    node = o.node
    me = b"\x00\x00" + (bytes(node.neuron_id) if node is not None else bytes(6))
    bcast = role == access.ROLE_BCAST
    flags = F_PLC | F_BCAST if bcast else F_PLC
    c = suite.ccm(role)
    plain = open_request(c, flags, NO_ID if bcast else me, apdu) if c is not None else None
    if plain is None:
        # counted as refused when it is a valid request of the RC4 suite
        rc4 = o._verify(role, apdu[:-8], apdu[-8:], False) or o._verify(role, apdu[:-8], apdu[-8:], True)
        o.stats[4 if rc4 else 1] += 1
        if bcast and o.on_broadcast is not None:
            o.on_broadcast(3, None, now)
        return AUTH_FAIL if want else None
    n = len(plain)
    seq = (plain[n - 4] << 24) | (plain[n - 3] << 16) | (plain[n - 2] << 8) | plain[n - 1]
    ok, cur = o._window(role, seq, now)
    answer = None
    if not ok:
        o.stats[2] += 1
        if want:
            answer = seq_report(c, flags, me, cur)
        return answer
    o.stats[0] += 1
    o._accept(role, seq, now)
    response = bytes(o.execute(plain[:n - 4], role, now))
    if want:
        answer = seal_answer(c, flags, me, seq, response)
    if o._last is None:
        o._last = {}
    o._last[role] = (bytes(apdu[-12:]), answer)
    return answer


# -- key changes in AES mode (keys.py EP15 / EP24 / EP25) ------------------------
#
# params = key_id | wrapped new key (n bytes) | check(8), as in RC4 mode; the
# wrap is a synthetic-IV construction (deterministic authenticated
# encryption, RFC 5297's idea with CMAC and CTR, 64-bit check):
#   K      = derive_key(KEK), KEK = the key being replaced, else the key
#            that authenticated the request (keys.py's rule)
#   Km, Ke = AES-CMAC(K, 01 | "OSGP-AES-KW"), AES-CMAC(K, 02 | "OSGP-AES-KW")
#   check  = AES-CMAC(Km, EP number (UINT16 LE) | key_id | new key)[:8]
#   wrapped = new key XOR AES(Ke, check | 00 00 00 00 | i (UINT32 MSB)), i = 0, 1
# The meter decrypts with the check it got, recomputes it and compares, so a
# wrong KEK or a changed byte gives None (result 5). The same key wrapped
# twice gives the same bytes, and no two keys share a key stream.

_KW = b"OSGP-AES-KW"


def _kw_parts(kek, number, key_id):
    from . import aes, ccm
    k = aes.encryptor(derive_key(kek))
    km = aes.encryptor(ccm.cmac(k, b"\x01" + _KW))
    ke = aes.encryptor(ccm.cmac(k, b"\x02" + _KW))
    head = bytes((number & 0xFF, number >> 8 & 0xFF, key_id))
    return ccm, km, ke, head


def _kw_stream(ke, check, n):
    out = b""
    i = 0
    while len(out) < n:
        out += ke(bytes(check) + bytes(4) + _be4(i))
        i += 1
    return out[:n]


def wrap_key(kek, number, key_id, new_key):
    """wrapped new key | check(8): the bytes after key_id in the params of a
    key change (procedure `number`) in AES mode."""
    ccm, km, ke, head = _kw_parts(kek, number, key_id)
    new_key = bytes(new_key)
    check = ccm.cmac(km, head + new_key)[:8]
    return ccm._xor(new_key, _kw_stream(ke, check, len(new_key))) + check


def unwrap_key(kek, number, key_id, blob):
    """The new key from wrapped | check, or None when the check fails."""
    blob = bytes(blob)
    if len(blob) < 9:
        return None
    ccm, km, ke, head = _kw_parts(kek, number, key_id)
    wrapped, check = blob[:-8], blob[-8:]
    new = ccm._xor(wrapped, _kw_stream(ke, check, len(wrapped)))
    if not ccm._eq(ccm.cmac(km, head + new)[:8], check):
        return None
    return new


def keys_unwrap(meter, number, key_id, target, role, blob):
    """keys.set_aes_unwrap's function (through cipher.aes_unwrap_key)."""
    ring = meter.keys
    if ring is None:
        return None
    kek = ring.get(target)
    if kek is None:
        kek = ring.get(role)
    if kek is None:
        return None
    return unwrap_key(kek, number, key_id, blob)
