"""Transactions, CPython side: property tests over random request tables
(the core never raises; a refused write changes nothing; a type-2 answer
leaves nothing of the transaction behind; answers fit their table), the
host helper (tools/transaction.py) against the core, and the CLI action
`osgp-meter mep … txn` against `osgp-meter serve`."""
import argparse
import io

from hypothesis import given, settings, strategies as st, HealthCheck

from osgp_meter import access as A
from osgp_meter import transactions as T
from osgp_meter.device import MEP_LIMITS, PortLimits
from osgp_meter.firmware import Firmware
from osgp_host import transaction as tx

NOW = 1_700_000_000_000
ET03 = 2048 + 3
ET08 = 2048 + 8
BT00 = 0
BT07 = 7
BT08 = 8
BT23 = 23
LOGS = (3, 70, 71, 72, 73, 74, 2048 + 18, 2048 + 48, 2048 + 79)
OPTICAL = PortLimits("optical", 4096, 4096, 0xFFFF)
ROLES = (A.ROLE_MAK, A.ROLE_MAK, A.ROLE_MAK, A.ROLE_MBK, A.ROLE_PLC, A.ROLE_MK, A.ROLE_RK, A.ROLE_BCAST)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def meter():
    return Firmware({"mep_secure": False}, NOW).meter


def others(m, extra=()):
    snap = m.store.snapshot()
    for tid in (T.ET52, T.ET53, T.ET27, T.ET28) + LOGS + tuple(extra):
        snap.pop(tid, None)
    return snap


tables = st.sampled_from((BT23, ET03, BT00, ET08, T.ET52, T.ET53, T.ET27, 0x0999, BT07, BT08))
requests = st.one_of(
    st.builds(lambda t, o, c: tx.read(t, o, c), tables, st.integers(0, 300), st.integers(0, 500)),
    st.builds(lambda t: tx.read(t), tables),
    st.builds(lambda t, d, o: tx.write(t, d, o), tables, st.binary(max_size=40), st.integers(0, 200)),
    st.builds(lambda t, d: tx.write(t, d), tables, st.binary(max_size=40)),
    st.builds(lambda n, p, d: tx.call(n, p, d), st.sampled_from((10, T.EP61, 2048 + 27, 0, 3, 99)),
              st.integers(0, 255), st.binary(max_size=8)),
    st.binary(min_size=1, max_size=12),
)


@st.composite
def transactions(draw):
    recs = draw(st.lists(requests, min_size=0, max_size=6))
    groups = draw(st.one_of(st.none(), st.lists(st.sampled_from((0, 0x0102, 0x01FF, 0xFFFF, 0x0305)),
                                                max_size=3)))
    body = bytearray(tx.build(recs, draw(st.integers(0, 0xFFFF)), groups))
    # Now and then a corrupted byte: size, type, a record length, the trailer.
    if draw(st.booleans()):
        i = draw(st.integers(0, len(body) - 1))
        body[i] = draw(st.integers(0, 255))
    return bytes(body)


@SETTINGS
@given(body=transactions(), role=st.sampled_from(ROLES), plc=st.booleans(),
       member=st.booleans(), locked=st.booleans())
def test_random_request_lists(body, role, plc, member, locked):
    m = meter()
    if member:
        m.store.write(ET08, 0, bytes.fromhex("0201"))
    if locked:
        m.txn.lock_role, m.txn.lock_until = A.ROLE_MBK, NOW + 5000
    req_tid, rsp_tid = (T.ET27, T.ET28) if plc else (T.ET52, T.ET53)
    before = m.store.snapshot()
    nv_before = m.txn.nv_get()
    rsp_before = bytes(m.store.get(rsp_tid))
    answer = m.execute(tx.write(req_tid, body), role, OPTICAL, NOW)
    assert isinstance(answer, bytes) and len(answer) == 1
    if answer != b"\x00":
        assert answer[0] in (3, 5, 8), answer
        assert m.store.snapshot() == before
        assert m.txn.nv_get() == nv_before
        return
    raw = bytes(m.store.get(rsp_tid))
    if raw == rsp_before:
        return                                   # incomplete (or not a transaction): nothing ran
    size = raw[0] | (raw[1] << 8)
    assert size <= m.store.size(rsp_tid)
    typ, number, groups, records = T.decode(raw[:size])
    parsed = T.parse(body[:body[0] | (body[1] << 8)])
    assert parsed is not None and number == parsed[1]
    assert m.txn.done[req_tid][0] == number
    if typ == T.DENIED:
        assert records == [] and not T.member(m, parsed[2])
        assert others(m) == others_of(before)
        return
    assert typ in (T.RESPONSES, T.PARTIAL) and len(records) == len(parsed[3])
    if typ == T.RESPONSES:
        assert all(r[:1] == b"\x00" for r in records)
    else:
        # Nothing of it stays (a refused procedure's BT07/BT08 report aside).
        call_last = T.is_call(parsed[3][-1])
        extra = (BT07, BT08) if call_last else ()
        assert others(m, extra) == others_of(before, extra)


def others_of(snap, extra=()):
    snap = dict(snap)
    for tid in (T.ET52, T.ET53, T.ET27, T.ET28) + LOGS + tuple(extra):
        snap.pop(tid, None)
    return snap


@SETTINGS
@given(data=st.binary(max_size=300), offset=st.integers(0, 1000), role=st.sampled_from(ROLES),
       plc=st.booleans())
def test_random_bytes_into_request_tables(data, offset, role, plc):
    m = meter()
    tid = T.ET27 if plc else T.ET52
    before = m.store.snapshot()
    answer = m.execute(tx.write(tid, data, offset), role, OPTICAL, NOW)
    assert len(answer) == 1
    if answer != b"\x00":
        assert m.store.snapshot() == before


@SETTINGS
@given(recs=st.lists(st.binary(min_size=1, max_size=30), min_size=1, max_size=8),
       number=st.integers(0, 0xFFFF),
       groups=st.one_of(st.none(), st.lists(st.integers(1, 0xFFFF), min_size=1, max_size=10)))
def test_build_parse_round_trip(recs, number, groups):
    body = tx.build(recs, number, groups)
    got = tx.decode(body + bytes(5))
    assert got == {"size": len(body), "type": 3 if groups else 0, "number": number,
                   "groups": groups, "records": recs}
    if not any(T.is_call(r) for r in recs[:-1]):
        assert T.parse(body) == (got["type"], number, groups, recs)


def test_builder_reproduces_the_worked_example():
    assert tx.build([tx.read(BT23, 0, 44)], 2) == bytes.fromhex("11 00 00 02 00 08 00 3F 00 17 00 00 00 00 2C 02 00")


class CoreClient:
    """MepClient's read/write, straight into a meter (no framing)."""

    def __init__(self, m, role=A.ROLE_MAK):
        self.m = m
        self.role = role

    def read(self, tid, offset=None, count=None):
        rsp = self.m.execute(tx.read(tid, offset, count), self.role, MEP_LIMITS, NOW)
        assert rsp[0] == 0, rsp
        return rsp[3:]

    def write(self, tid, data, offset=None):
        rsp = self.m.execute(tx.write(tid, data, offset), self.role, MEP_LIMITS, NOW)
        assert rsp == b"\x00", rsp


def test_run_through_a_client_splits_and_reassembles():
    m = meter()
    reads = [tx.read(BT23, 0, 400)] * 4                 # 1624 bytes of answers, read back in pieces
    got = tx.run(CoreClient(m), [tx.write(ET03, b"hello")] + reads, 40)
    assert got["type"] == T.RESPONSES and got["number"] == 40
    codes = tx.answers(got["records"])
    assert codes[0] == (0, None) and all(c == 0 and len(d) == 400 for c, d in codes[1:])
    # The same number and content again: not run again; ET53 still holds its answer.
    m.store.write(ET03, 0, b"other")
    assert tx.run(CoreClient(m), [tx.write(ET03, b"hello")] + reads, 40) == got
    assert m.store.read(ET03, 0, 5) == b"other"
    m.store.reset(T.ET53)                               # the response table is RAM: a power cut
    try:
        tx.run(CoreClient(m), [tx.write(ET03, b"hello")] + reads, 40)
        raise AssertionError("a transaction that did not run must not read as one")
    except ValueError as exc:
        assert "not run" in str(exc)


def test_cli_action_output():
    m = meter()
    ns = argparse.Namespace(requests=["write:ET03:414243", "read:ET03:0:3", "call:EP61:01"],
                            number=None, group=None)
    out = io.StringIO()
    assert tx.run_cli(CoreClient(m), ns, out) == 0
    text = out.getvalue()
    assert "transaction 1: responses (type 1), 3 records" in text
    assert "00 ok, 3 bytes: 41 42 43" in text
    ns = argparse.Namespace(requests=["write:ET03:58", "write:BT00:01"], number=None, group=None)
    out = io.StringIO()
    assert tx.run_cli(CoreClient(m), ns, out) == 1
    assert "partial" in out.getvalue() and "05 inappropriate action" in out.getvalue()
    assert m.store.read(ET03, 0, 1) == b"A"


def test_cli_txn_against_serve(tmp_path):
    from test_serve import Served, cli
    s = Served(tmp_path, "")
    try:
        rc, out, err = cli("mep", "--port", s.ports["mep"], "txn", "read:BT23:0:44", "write:ET03:414243",
                           "read:ET03:0:3")
        assert rc == 0, err
        assert "responses (type 1), 3 records" in out and "41 42 43" in out, out
        rc, out, err = cli("mep", "--port", s.ports["mep"], "txn", "read:NOPE")
        assert rc == 2 and "no table" in err
    finally:
        assert s.stop() == 0


def test_exactly_once_across_restarts_of_a_state_directory(tmp_path):
    """The real persistence path (tools/state.py, as `serve --state` boots):
    a transaction that ran is not run again after a restart; one whose
    trailing number reached storage without running runs at the next boot,
    once."""
    from osgp_host import state as states

    def life(fn):
        sd = states.StateDir(str(tmp_path / "st"), fsync=False)
        fw = Firmware({"mep_secure": False, "restore": sd.open}, NOW)
        try:
            return fn(fw)
        finally:
            fw.commit()
            sd.close()

    body = tx.build([tx.write(ET03, b"once"), tx.read(ET03, 0, 4)], 77)
    life(lambda fw: fw.meter.execute(tx.write(T.ET52, body), A.ROLE_MAK, MEP_LIMITS, NOW))
    empty = bytes(1785)

    def not_rerun(fw):
        assert bytes(fw.meter.store.get(T.ET53)) == empty
        assert fw.meter.store.read(ET03, 0, 4) == b"once"
        assert fw.meter.txn.done[T.ET52][0] == 77
    life(not_rerun)

    unrun = tx.build([tx.write(ET03, b"boot")], 78)
    life(lambda fw: fw.meter.store.write(T.ET52, 0, unrun))      # stored, the run cut off

    def ran_at_boot(fw):
        assert tx.decode(fw.meter.store.get(T.ET53))["type"] == T.RESPONSES
        assert fw.meter.store.read(ET03, 0, 4) == b"boot"
        fw.meter.store.write(ET03, 0, b"mine")                   # would be overwritten by a re-run
    life(ran_at_boot)

    def once(fw):
        assert bytes(fw.meter.store.get(T.ET53)) == empty
        assert fw.meter.store.read(ET03, 0, 4) == b"mine"
    life(once)


def test_plc_transaction_from_the_dc_over_the_virtual_channel():
    """ET27/ET28 end to end: the data concentrator writes the list in
    75-byte pieces over the power line and reads ET28 back in 84-byte ones."""
    from test_dc import small_channel, ADDR
    from osgp_host.dc import DC
    ch, fws = small_channel()
    dc = DC(ch, "dc", names=ADDR)

    class Bound:                         # tx.run's client: read/write of one meter
        def read(self, tid, offset=None, count=None):
            return dc.read("m2", tid, offset, count)

        def write(self, tid, data, offset=None):
            return dc.write("m2", tid, data, offset)

    reqs = [tx.write(ET03, b"over the line"), tx.read(ET03, 0, 13), tx.read(BT23, 0, 80)]
    got = tx.run(Bound(), reqs, 5, port="plc", max_write=75, max_read=84)
    assert got["type"] == T.RESPONSES and got["number"] == 5
    codes = tx.answers(got["records"])
    assert codes[1] == (0, b"over the line") and len(codes[2][1]) == 80
    assert fws["m2"].meter.store.read(ET03, 0, 13) == b"over the line"
    assert fws["m1"].meter.store.read(ET03, 0, 13) != b"over the line"
