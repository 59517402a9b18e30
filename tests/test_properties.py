"""Bad input, property-based: no exception escapes the core, every malformed
request gets its specified answer, and a refused request leaves the meter
byte-identical (tables, clock, procedure state, sequence number)."""
import struct

from hypothesis import given, settings, strategies as st, HealthCheck

from osgp_meter import access as A
from osgp_meter import clock
from osgp_meter.device import MEP_LIMITS, PLC_LIMITS
from osgp_meter.digest import OmaDigest
from osgp_meter.firmware import Firmware
from osgp_meter import catalogue_data
from osgp_host import profile

NOW = 1_790_000_000_000
CONFIG = profile.load_config()
CONFIG["clock"] = NOW // 1000
ROLES = st.sampled_from([bit for _, bit in A.ROLE_NAMES])
TABLE_IDS = st.one_of(st.sampled_from(sorted(catalogue_data.TABLES)), st.integers(0, 0xFFFF))
LIMITS = st.sampled_from([MEP_LIMITS, PLC_LIMITS])
VALID_CODES = set(range(0x00, 0x0D))


def state(fw):
    m = fw.meter
    return (m.store.snapshot(), m.clock_offset, m.last_psn, fw.mep.seq)


def requests():
    header = st.tuples(st.sampled_from([0x30, 0x3F, 0x40, 0x4F]), TABLE_IDS,
                       st.integers(0, 0xFFFFFF), st.integers(0, 0xFFFF))
    structured = header.flatmap(lambda h: st.binary(max_size=40).map(
        lambda tail: struct.pack(">BHBHH", h[0], h[1], h[2] >> 16, h[2] & 0xFFFF, h[3]) + tail))
    truncated = structured.flatmap(lambda b: st.integers(0, len(b)).map(lambda n: b[:n]))
    return st.one_of(st.binary(max_size=64), structured, truncated)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(req=requests(), role=ROLES, limits=LIMITS)
def test_any_request_gets_a_defined_answer_and_refusals_change_nothing(req, role, limits):
    fw = Firmware(CONFIG, NOW)
    before = state(fw)
    rsp = fw.meter.execute(req, role, limits, NOW)
    assert isinstance(rsp, bytes) and rsp
    assert rsp[0] in VALID_CODES
    if rsp[0] != 0:
        assert len(rsp) == 1
        assert state(fw) == before
    elif req[0] in (0x30, 0x3F):
        assert len(rsp) == 3 + ((rsp[1] << 8) | rsp[2])
        assert state(fw) == before


@settings(max_examples=300, deadline=None)
@given(chunks=st.lists(st.binary(max_size=80), max_size=8), gaps=st.lists(st.integers(0, 300), min_size=8, max_size=8))
def test_mep_port_survives_any_bytes(chunks, gaps):
    fw = Firmware(CONFIG, NOW)
    before = state(fw)
    now = NOW
    for chunk, gap in zip(chunks, gaps):
        now += gap
        out = fw.mep.feed(chunk, now) + fw.mep.poll(now)
        # without the key nothing verifies: the only possible answer is 0x0B
        while out:
            n = (out[0] << 8) | out[1]
            assert out[2:2 + n] == b"\x0b" + bytes(8)
            out = out[2 + n:]
    assert state(fw) == before


@settings(max_examples=200, deadline=None)
@given(req=requests(), seq=st.integers(0, 0xFFFFFFFF))
def test_signed_garbage_requests_through_the_mep_port(req, seq):
    # Correctly signed frames carrying arbitrary requests: always a verifiable
    # answer; out-of-window numbers change nothing.
    fw = Firmware(CONFIG, NOW)
    key = profile.parse_key(profile.load()["keys"]["mak"], "mak")
    msg = req + struct.pack(">I", seq)
    if len(msg) + 8 > 476 or not req:
        return
    stream = OmaDigest(key).start(msg)
    dig = stream.finish_copy()
    before = state(fw)
    out = fw.mep.feed(struct.pack(">H", len(msg) + 8) + msg + dig, NOW)
    assert out, "a signed request is always answered"
    # an answer longer than one 117-byte segment comes in pieces, 25 ms apart
    t = NOW
    while fw.mep.deadline is not None and len(out) < 2 + ((out[0] << 8) | out[1]):
        t = max(t, fw.mep.deadline)
        out += fw.mep.poll(t)
    assert len(out) == 2 + ((out[0] << 8) | out[1])
    payload, rdig = out[2:-8], out[-8:]
    stream.update(payload)
    assert stream.finish() == rdig
    ahead = (seq - before[3]) & 0xFFFFFFFF
    if not 1 <= ahead <= 8:
        assert payload == b"\x0c" + struct.pack(">I", before[3])
        assert state(fw) == before


@given(st.integers(0, 2**33))
def test_clock_round_trip(seconds):
    y, mo, d, hh, mi, ss, wd = clock.to_civil(seconds)
    assert clock.from_civil(y, mo, d, hh, mi, ss) == seconds
    if 2000 <= y <= 2099:
        assert clock.decode_ltime(clock.encode_ltime(seconds)) == seconds


@given(st.binary(min_size=6, max_size=6))
def test_ltime_decoder_rejects_impossible_dates(b):
    t = clock.decode_ltime(b)
    if t is not None:
        assert clock.encode_ltime(t) == b


@given(st.binary(max_size=64))
def test_size_expression_decoder_never_raises(expr):
    from osgp_meter.catalogue import eval_size, expression_fields
    got = eval_size(expr, lambda tid, off, n: (tid + off + n) % 7)
    assert got is None or (isinstance(got, int) and got >= 0)
    assert all(len(f) == 3 for f in expression_fields(expr))


IMPLEMENTED = sorted(__import__("osgp_meter.procedures", fromlist=["IMPLEMENTED"]).IMPLEMENTED)


@settings(max_examples=400, deadline=None)
@given(number=st.one_of(st.sampled_from(IMPLEMENTED), st.integers(0, 0x0FFF)),
       psn=st.integers(0, 254), params=st.binary(max_size=12), role=ROLES)
def test_procedures_answer_a_result_code_and_failures_change_nothing_else(number, psn, params, role):
    fw = Firmware(CONFIG, NOW)
    m = fw.meter
    before = m.store.snapshot()
    offset = m.clock_offset
    data = struct.pack("<HB", number, psn) + params
    code = m.execute(struct.pack(">BHH", 0x40, 7, len(data)) + data, role, MEP_LIMITS, NOW)
    if code != b"\x00":
        assert code in (b"\x03", b"\x04")           # BT07 not writable by this key / PSN
        assert m.store.snapshot() == before
        return
    bt08 = m.store.read(8, 0, 16)
    assert (bt08[0] | bt08[1] << 8) == number and bt08[2] == psn
    result = bt08[3]
    assert 0 <= result <= 6
    if result != 0:
        after = m.store.snapshot()
        # result 1 is "accepted" (for BP13/BP15: no matching pending table,
        # [OPT p.12]): event 9 "procedure invoked" is logged (BT74, BT03 7.4)
        for tid in (7, 8) + ((3, 74) if result == 1 else ()):
            after.pop(tid, None)
            before.pop(tid, None)
        assert after == before
        assert m.clock_offset == offset
