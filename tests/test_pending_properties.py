"""Pending tables, property-based (meter/pending.py): any sequence of pending
writes, reads, BP12-BP15 calls and time steps never raises, a refused
request changes nothing, BT04 always describes the pending entries, and the
non-volatile part round-trips (get -> put -> get) at every step."""
import struct

from hypothesis import given, settings, strategies as st, HealthCheck

from osgp_meter import access as A
from osgp_meter import clock, pending
from osgp_meter.device import MEP_LIMITS, PLC_LIMITS
from osgp_meter.firmware import Firmware
from osgp_host import profile

T0 = clock.from_civil(2026, 11, 26, 12, 0, 0)
NOW = T0 * 1000
WRITABLE = (2, 5, 6, 15, 53, 2048 + 3, 2048 + 5, 2048 + 97, 2048 + 80)
OTHER = (0, 4, 7, 8, 9, 54, 2048 + 99, 4000)
ROLES = st.sampled_from([bit for _, bit in A.ROLE_NAMES])
LIMITS = st.sampled_from([MEP_LIMITS, PLC_LIMITS])


def peds():
    valid = st.one_of(
        st.integers(-120, 86400 * 2).map(lambda d: pending.ped_absolute(T0 + d)),
        st.tuples(*[st.integers(0, 3)] * 5).map(lambda w: pending.ped_relative(*w)),
        st.binary(min_size=5, max_size=5).map(pending.ped_procedure),
    )
    flags = st.sampled_from([0, 0x10, 0x20, 0x30])
    good = st.tuples(valid, flags).map(lambda pf: bytes((pf[0][0] | pf[1],)) + pf[0][1:])
    bad = st.one_of(st.binary(min_size=6, max_size=6), st.just(bytes(6)))
    return st.integers(0, 9).flatmap(lambda k: good if k < 8 else bad)


def ops():
    tid = st.integers(0, 9).flatmap(lambda k: st.sampled_from(WRITABLE) if k < 7 else
                                    st.sampled_from(OTHER) if k < 9 else st.integers(0, 4095))
    offset = st.integers(0, 3).flatmap(lambda k: st.integers(0, 8) if k else st.integers(0, 120))
    skew = st.integers(0, 3).flatmap(lambda k: st.just(0) if k else st.integers(-8, 8))
    write = st.tuples(st.just("w"), st.sampled_from([0x40, 0x4F]), tid, offset,
                      peds(), st.binary(max_size=90), skew)
    read = st.tuples(st.just("r"), st.sampled_from([0x30, 0x3F]), tid, offset,
                     st.integers(0, 100))
    proc = st.tuples(st.just("p"), st.integers(12, 15), st.one_of(peds(), st.binary(max_size=8)))
    step = st.tuples(st.just("t"), st.integers(0, 86400))
    raw = st.tuples(st.just("x"), st.binary(max_size=40).map(
        lambda b: b"\x4f\x10" + b))
    return st.lists(st.one_of(write, read, proc, step, raw), max_size=14)


def request(op):
    kind = op[0]
    if kind == "w":
        _, code, tid, off, ped, data, skew = op
        body = ped + data
        n = max(0, len(body) + skew)
        tid += 4096
        if code == 0x40:
            return struct.pack(">BHH", code, tid, n) + body
        return struct.pack(">BHBHH", code, tid, off >> 16, off & 0xFFFF, n) + body
    if kind == "r":
        _, code, tid, off, count = op
        if code == 0x30:
            return struct.pack(">BH", code, tid + 4096)
        return struct.pack(">BHBHH", code, tid + 4096, off >> 16, off & 0xFFFF, count)
    return op[1]


def state(m):
    return (m.store.snapshot(), m.pending.nv_get(), m.subsystems, m.last_psn)


def check_bt04(m):
    store = m.store
    ns, nm, cap = store.field(0, 13, 1), store.field(0, 14, 1), store.field(0, 18, 1)
    b = store.get(4)
    at = ns + nm
    entries = m.pending.entries
    assert len(entries) <= cap
    recs = [(bytes(b[at + 6 + 8 * i:at + 12 + 8 * i]), b[at + 12 + 8 * i] | b[at + 13 + 8 * i] << 8)
            for i in range(b[at + 5])]
    assert b[at + 5] <= cap
    assert [r for r in recs if r[1] & 0x1000] == [(e.ped, e.tid | 0x1000) for e in entries]
    for tid in range(0, 2048 + 8 * nm):
        n, first, nbytes = (tid, 0, ns) if tid < 2048 else (tid - 2048, ns, nm)
        if (n >> 3) >= nbytes:
            continue
        bit = bool(b[first + (n >> 3)] >> (n & 7) & 1)
        assert bit == any(e.tid == tid for e in entries), tid
    timed = any(e.due is not None for e in entries)
    assert (m.pending in m.subsystems) == timed


def run_ops(m, seq, role, limits):
    now = NOW
    psn = 1
    for op in seq:
        if op[0] == "t":
            now += op[1] * 1000
            m.advance(now)
        elif op[0] == "p":
            params = op[2]
            data = bytes((op[1], 0, psn)) + params
            psn = psn % 250 + 1
            req = struct.pack(">BHH", 0x40, 7, len(data)) + data
            assert m.execute(req, A.ROLE_MAK, limits, now) == b"\x00"
            result = m.store.read(8, 3, 1)[0]
            assert result in (0, 1, 2, 3)
        else:
            req = request(op)
            if m.subsystems:
                m.advance(now)          # what execute would run first
            before = state(m)
            rsp = m.execute(req, role, limits, now)
            assert isinstance(rsp, bytes) and rsp and rsp[0] <= 0x0C
            if rsp[0] != 0:
                assert len(rsp) == 1
                assert state(m) == before
            elif req[0] in (0x30, 0x3F):
                assert len(rsp) == 3 + ((rsp[1] << 8) | rsp[2])
                assert state(m) == before
        check_bt04(m)
        raw = m.pending.nv_get()
        other = Firmware({"keys": {}, "clock": T0}, NOW).meter
        other.pending.nv_put(raw)
        assert other.pending.nv_get() == raw


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seq=ops(), role=st.one_of(st.just(A.ROLE_MAK), ROLES), limits=LIMITS)
def test_pending_requests_on_a_bare_core(seq, role, limits):
    m = Firmware({"keys": {}, "clock": T0}, NOW).meter
    run_ops(m, seq, role, limits)


CONFIG = profile.load_config()
CONFIG["clock"] = T0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seq=ops(), limits=LIMITS)
def test_pending_requests_on_a_metering_meter(seq, limits):
    m = Firmware(CONFIG, NOW).meter
    run_ops(m, seq, A.ROLE_MAK, limits)


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=80))
def test_nv_put_takes_any_bytes_or_refuses_them_whole(raw):
    m = Firmware({"keys": {}, "clock": T0}, NOW).meter
    m.execute(struct.pack(">BHBHH", 0x4F, 4096 + 6, 0, 0, 8) + pending.ped_procedure(b"k") + b"zz",
              A.ROLE_MAK, MEP_LIMITS, NOW)
    before = m.pending.nv_get()
    try:
        m.pending.nv_put(raw)
    except ValueError:
        assert m.pending.nv_get() == before
        return
    assert m.pending.nv_get() == (raw if raw else b"\x01\x00")
