"""Bad input gets a clear, specified answer and changes nothing: property
tests (hypothesis) over the decoders this session added (CPython only).

* meter/nvlog.py (docs/persistence.md): random bytes, every truncation and
  every bit flip of a valid record stream -> exactly the longest valid
  prefix of records, never an exception; entries() -> list or ValueError.
* meter/persist.py apply(): a malformed payload -> ValueError, store untouched.
* tools/state.py: garbage / truncated / bit-flipped snapshot -> StateError,
  the meter as fresh, the lock released; the same in the journal -> the
  snapshot plus the longest good prefix, the file cut there; garbage
  session-1 JSON -> StateError, nothing applied, nothing renamed.
* meter/fwimage.py (docs/firmware-download.md): random bytes and any
  mutation of a valid image -> a problem ("header", "crc", "mac"), never
  None, never an exception.
* meter/pending.py due_of() and meter/transactions.py decode()/parse()
  (the table-level paths are in test_pending_properties.py and
  test_transaction_properties.py).
* board/devprofile.py: any JSON document -> config or a "profile: ..." ValueError.
* tools/profile.py [security] mode, [keys] download -> ProfileError.
* meter/life.py: garbage in ET99.113-122 at boot -> a defined state.
"""
import importlib.util
import io
import json
import os
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from osgp_meter import catalogue as cat
from osgp_meter import fwimage, nvlog, pending, persist
from osgp_meter import transactions as T
from osgp_meter.firmware import Firmware
from osgp_host import profile as profiles
from osgp_host.state import StateDir, StateError

T0 = 1_790_000_000_000
BT05, BT06 = 5, 6
ET03 = 2048 + 3
ET99 = 2048 + 99
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
QUICK = settings(max_examples=150, deadline=None)


def fw(**kw):
    return Firmware(dict({"mep_secure": False}, **kw), T0)


def nv_state(f):
    s = f.meter.store
    out = {t: bytes(w) for t, w in s.written.items() if s.tables[t][cat.T_FLAGS] & cat.F_NV}
    for name, (get, put) in (f.meter.nv_parts or {}).items():
        out[name] = bytes(get())
    out["_meta"] = persist.meta_bytes(f)
    return out


# -- nvlog: records --------------------------------------------------------------------

entry = st.one_of(
    st.builds(lambda tid, off, data, extra: nvlog.table_entry(tid, off + len(data) + extra, off, data),
              st.integers(0, 0xFFFF), st.integers(0, 300), st.binary(max_size=20), st.integers(0, 9)),
    st.builds(nvlog.reset_entry, st.integers(0, 0xFFFF)),
    st.builds(nvlog.part_entry, st.text("abcxyz_", max_size=8), st.binary(max_size=20)))
payloads = st.lists(entry, max_size=4).map(b"".join)


def stream(pls, seq0=1):
    """Records seq0, seq0+1, ... and the offsets where each one ends."""
    buf = b""
    ends = []
    for i, p in enumerate(pls):
        buf += nvlog.record(nvlog.K_COMMIT if i else nvlog.K_SNAPSHOT, seq0 + i, p)
        ends.append(len(buf))
    return buf, ends


def read_all(buf):
    f = io.BytesIO(buf)
    out = []
    while True:
        r = nvlog.read(f)
        if r is None:
            return out
        out.append((r[0], r[1], bytes(r[2])))


def scanned(buf):
    return [(k, s, bytes(p)) for k, s, p, e in nvlog.scan(buf)]


@QUICK
@given(st.binary(max_size=200), st.integers(0, 20))
def test_random_bytes_are_no_records(buf, start):
    """Garbage: a list (almost surely empty), the same from scan and read."""
    got = nvlog.scan(buf, start)
    end = start
    for kind, seq, payload, stop in got:
        assert stop > end and stop <= len(buf)
        end = stop
    assert nvlog.header(buf[:12]) is None or len(buf) >= 12
    if start == 0:
        assert scanned(buf) == read_all(buf)


@QUICK
@given(st.lists(payloads, min_size=1, max_size=4), st.data())
def test_a_stream_cut_anywhere_gives_exactly_the_records_before_the_cut(pls, data):
    buf, ends = stream(pls)
    records = scanned(buf)
    assert [p for _, _, p in records] == pls
    assert [e for *_, e in nvlog.scan(buf)] == ends
    for cut in range(len(buf) + 1):
        n = sum(1 for e in ends if e <= cut)
        assert scanned(buf[:cut]) == records[:n]
    cut = data.draw(st.integers(0, len(buf)))
    n = sum(1 for e in ends if e <= cut)
    assert read_all(buf[:cut]) == records[:n]
    # a torn tail of garbage after the last good record is ignored as well
    tail = data.draw(st.binary(max_size=30))
    assert scanned(buf + tail)[:len(records)] == records


@QUICK
@given(st.lists(payloads, min_size=1, max_size=4), st.data())
def test_a_bit_flip_ends_the_log_at_the_record_it_hit(pls, data):
    buf, ends = stream(pls)
    records = scanned(buf)
    pos = data.draw(st.integers(0, len(buf) - 1))
    bit = data.draw(st.integers(0, 7))
    bad = bytearray(buf)
    bad[pos] ^= 1 << bit
    hit = sum(1 for e in ends if e <= pos)          # index of the record holding pos
    assert scanned(bytes(bad)) == records[:hit]
    assert read_all(bytes(bad)) == records[:hit]


@QUICK
@given(st.binary(max_size=120))
def test_entries_of_a_random_payload_are_a_list_or_a_value_error(raw):
    try:
        got = nvlog.entries(raw)
    except ValueError:
        return
    assert b"".join(_encode(e) for e in got) == raw      # accepted: exactly what the codec writes


def _encode(e):
    kind, key, size, off, data = e
    if kind == nvlog.E_TABLE:
        return nvlog.table_entry(key, size, off, data)
    if kind == nvlog.E_RESET:
        return nvlog.reset_entry(key)
    return nvlog.part_entry(key, data)


@QUICK
@given(st.lists(entry, max_size=6))
def test_entries_round_trip(es):
    raw = b"".join(es)
    assert b"".join(_encode(e) for e in nvlog.entries(raw)) == raw


def test_a_table_entry_of_gigabytes_is_refused_not_allocated():
    raw = b"\x01" + (5).to_bytes(2, "little") + (0xFFFFFFFF).to_bytes(4, "little") + bytes(8)
    with pytest.raises(ValueError):
        nvlog.entries(raw)


# -- persist.apply: all or nothing -----------------------------------------------------

_BASE = fw()
_TIDS = sorted(t for t in _BASE.meter.store.tables
               if _BASE.meter.store.tables[t][cat.T_FLAGS] & cat.F_NV)[:12]
_FRESH = nv_state(_BASE)

crafted = st.lists(st.one_of(
    entry,
    st.builds(lambda tid, size, off, data: nvlog.table_entry(tid, size, off, data)[:15] + data,
              st.sampled_from(_TIDS), st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF),
              st.binary(max_size=8)),
    st.builds(lambda data: nvlog.part_entry("_meta", data), st.binary(max_size=20)),
    st.binary(max_size=6)), max_size=4).map(b"".join)


@FAST
@given(crafted)
def test_apply_of_a_malformed_payload_changes_nothing(raw):
    f = fw()
    persist.attach(f, None)
    before = nv_state(f)
    store_before = f.meter.store.snapshot()
    try:
        f.nv.apply(raw)
    except ValueError:
        assert nv_state(f) == before and f.meter.store.snapshot() == store_before
        return
    for kind, key, size, off, data in nvlog.entries(raw):       # applied: it was well formed
        if kind == nvlog.E_PART and key == "_meta":
            assert len(data) == 13


# -- tools/state.py: a state directory with damaged files -------------------------------

def _build_state():
    """A state directory's files after a snapshot and 6 commits, and the
    meter's NV state after 0..6 of those commits."""
    with tempfile.TemporaryDirectory() as d:
        f = fw()
        sd = StateDir(d, fsync=False)
        sd.open(f, load=False)
        states = [nv_state(f)]
        for i in range(6):
            f.meter.store.write((BT05, BT06, ET03)[i % 3], i * 3, bytes((i + 1,)) * (2 + i))
            f.mep.seq += 1
            f.commit()
            states.append(nv_state(f))
        sd.close()
        with open(os.path.join(d, "snapshot.nv"), "rb") as fh:
            snap = fh.read()
        with open(os.path.join(d, "journal.nv"), "rb") as fh:
            journal = fh.read()
    return snap, journal, states


SNAP, JOURNAL, STATES = _build_state()
JENDS = [e for *_, e in nvlog.scan(JOURNAL)]
assert len(JENDS) == 6


def _damage(data, buf):
    """Garbage, a truncation or a bit flip of buf."""
    how = data.draw(st.sampled_from(["garbage", "cut", "flip", "tail"]))
    if how == "garbage":
        return data.draw(st.binary(max_size=80))
    if how == "cut":
        return buf[:data.draw(st.integers(0, max(0, len(buf) - 1)))]
    if how == "tail":
        at = data.draw(st.integers(0, len(buf)))
        return buf[:at] + data.draw(st.binary(min_size=1, max_size=40))
    b = bytearray(buf)
    b[data.draw(st.integers(0, len(b) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    return bytes(b)


def _write(d, snap, journal):
    for name, b in (("snapshot.nv", snap), ("journal.nv", journal)):
        with open(os.path.join(d, name), "wb") as fh:
            fh.write(b)


@FAST
@given(st.data())
def test_a_damaged_snapshot_is_a_state_error_and_the_meter_stays_fresh(data):
    snap = _damage(data, SNAP)
    with tempfile.TemporaryDirectory() as d:
        _write(d, snap, JOURNAL)
        f = fw()
        sd = StateDir(d, fsync=False)
        if nvlog.check(snap) is not None and bytes(nvlog.check(snap)[2]) == bytes(nvlog.check(SNAP)[2]):
            return                       # "tail": garbage after an intact record is not damage
        with pytest.raises(StateError, match="corrupt"):
            sd.open(f)
        assert nv_state(f) == _FRESH                       # nothing half-restored
        assert f.nv is None and f.meter.store.dirty is None
        with open(os.path.join(d, "journal.nv"), "rb") as fh:
            assert fh.read() == JOURNAL                    # nothing on disk touched
        with pytest.raises(StateError, match="corrupt"):   # the lock was released
            StateDir(d, fsync=False).open(fw())
        with pytest.raises(StateError, match="corrupt"):
            StateDir(d).peek(fw())


@FAST
@given(st.data())
def test_a_damaged_journal_keeps_the_longest_good_prefix(data):
    journal = _damage(data, JOURNAL)
    good = scanned(journal)
    keep = 0
    while keep < len(good) and keep < 6 and good[keep] == scanned(JOURNAL)[keep]:
        keep += 1
    # garbage can only hold a record by a 2^-32 chance: the good prefix is what survived
    expect_end = JENDS[keep - 1] if keep else 0
    with tempfile.TemporaryDirectory() as d:
        _write(d, SNAP, journal)
        peeked = fw()
        StateDir(d).peek(peeked)
        f = fw()
        sd = StateDir(d, fsync=False)
        assert sd.open(f)
        assert nv_state(f) == STATES[keep] == nv_state(peeked)
        assert sd.seq == keep + sd.base
        sd.close()
        with open(os.path.join(d, "journal.nv"), "rb") as fh:
            assert fh.read() == JOURNAL[:expect_end]        # the bad tail cut off


def test_a_good_crc_over_malformed_entries_ends_the_journal(tmp_path):
    d = str(tmp_path)
    bad = nvlog.record(nvlog.K_COMMIT, 3, b"\x09garbage")
    _write(d, SNAP, JOURNAL[:JENDS[1]] + bad + JOURNAL[JENDS[2]:])
    f = fw()
    sd = StateDir(d, fsync=False)
    assert sd.open(f)
    assert nv_state(f) == STATES[2]
    sd.close()
    assert os.path.getsize(os.path.join(d, "journal.nv")) == JENDS[1]


def test_a_good_crc_over_a_malformed_snapshot_is_a_state_error(tmp_path):
    d = str(tmp_path)
    _write(d, nvlog.record(nvlog.K_SNAPSHOT, 0, b"\x01\x05\x00"), b"")
    f = fw()
    with pytest.raises(StateError, match="corrupt snapshot payload"):
        StateDir(d, fsync=False).open(f)
    assert nv_state(f) == _FRESH
    with pytest.raises(StateError, match="corrupt snapshot payload"):
        StateDir(d).peek(fw())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.text(max_size=6),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=8)
legacy_docs = st.one_of(
    json_values,
    st.fixed_dictionaries({"version": st.just(1)}, optional={
        "tables": st.one_of(json_values, st.dictionaries(
            st.sampled_from(["5", "6", "2051", "x", "-1"]),
            st.one_of(st.just("0102"), st.text("0123456789abcdefz ", max_size=6), json_values),
            max_size=3)),
        "mep_seq": json_values, "clock_offset_ms": json_values, "last_psn": json_values}))


@FAST
@given(legacy_docs, st.booleans())
def test_a_garbage_session_1_state_is_refused_whole(doc, raw):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "meter-state.json")
        with open(path, "wb") as fh:
            fh.write(b"\xff{not json" if raw else json.dumps(doc).encode())
        f = fw()
        try:
            StateDir(d, fsync=False).open(f)
        except StateError as exc:
            assert "meter-state.json" in str(exc)
            assert nv_state(f) == _FRESH
            assert os.path.exists(path) and not os.path.exists(os.path.join(d, "snapshot.nv"))
            return
        assert not raw and os.path.exists(path + ".migrated")


# -- fwimage ---------------------------------------------------------------------------

KEY = fwimage.DEFAULT_KEY
IMAGE = fwimage.build(bytes(range(37)), 0x3155)


def verify(img, size=None, key=KEY):
    b = bytes(img)
    return fwimage.check(lambda off, n: b[off:off + n], len(b) if size is None else size, key)


def test_the_valid_image_verifies_and_every_byte_changed_fails():
    assert verify(IMAGE)[2] is None
    for pos in range(len(IMAGE)):
        for x in (0x01, 0x80, 0xFF):
            bad = bytearray(IMAGE)
            bad[pos] ^= x
            assert verify(bad)[2] in ("header", "crc", "mac"), (pos, x)
    assert verify(IMAGE, key=b"another key 16 b")[2] == "mac"


@QUICK
@given(st.binary(max_size=120), st.integers(0, 200))
def test_random_bytes_are_an_invalid_image(raw, size):
    for s in (len(raw), size):
        h, c, problem = verify(raw, s)
        assert problem in ("header", "crc", "mac")
    assert fwimage.parse_header(raw[:24]) is None or len(raw) >= 24


@QUICK
@given(st.binary(min_size=0, max_size=60), st.data())
def test_a_mutated_valid_image_never_verifies(body, data):
    img = fwimage.build(body, 0x1234)
    assert verify(img)[2] is None
    how = data.draw(st.sampled_from(["set", "insert", "delete", "cut", "append"]))
    pos = data.draw(st.integers(0, len(img) - 1))
    b = bytearray(img)
    if how == "set":
        v = data.draw(st.integers(0, 255).filter(lambda v: v != img[pos]))
        b[pos] = v
    elif how == "insert":
        b[pos:pos] = bytes((data.draw(st.integers(0, 255)),))
    elif how == "delete":
        del b[pos]
    elif how == "cut":
        b = b[:pos]
    else:
        b += data.draw(st.binary(min_size=1, max_size=4))
    assert verify(b)[2] in ("header", "crc", "mac")


# -- pending PEDs, transaction lists ------------------------------------------------------

@QUICK
@given(st.binary(min_size=6, max_size=6), st.integers(0, 2**32))
def test_any_ped_decodes_to_a_time_none_or_invalid(ped, t):
    due = pending.due_of(ped, t)
    assert due is None or due == -1 or (isinstance(due, int) and due >= t)
    assert (due is None) == (ped[0] & 0xCF == pending.CODE_PROCEDURE)
    s = pending.decode_stime(ped, 1)
    assert s is None or isinstance(s, int)


@QUICK
@given(st.one_of(st.binary(max_size=60),
                 st.binary(max_size=40).map(lambda b: bytes((len(b) + 7) % 256 for _ in (0,))
                                            + b"\x00" + b[:1] + b"\x07\x00" + b + b"\x07\x00")))
def test_decode_of_random_bytes_is_none_or_an_exact_split(buf):
    got = T.decode(buf)
    if got is None:
        return
    typ, number, groups, records = got
    again = bytes((typ, number & 255, number >> 8))
    if groups is not None:
        again += bytes((len(groups),)) + b"".join(g.to_bytes(2, "little") for g in groups)
    again += b"".join(len(r).to_bytes(2, "little") + r for r in records)
    again += number.to_bytes(2, "little")
    assert (len(again) + 2).to_bytes(2, "little") + again == bytes(buf)
    p = T.parse(buf)
    assert p is None or p == got
    assert T.complete(bytes(buf) + bytes(5), len(buf) + 5) == bytes(buf)


# -- board/devprofile.py ----------------------------------------------------------------

def _devprofile():
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location("_devprofile_t", os.path.join(here, "board", "devprofile.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


DEVPROFILE = _devprofile()
meter_sections = st.one_of(json_values, st.dictionaries(
    st.sampled_from(["keys", "image", "neuron_id", "plc_domain", "download_key", "plc_groups",
                     "mep_seq"]),
    st.one_of(json_values, st.just("0102"),
              st.dictionaries(st.sampled_from(["mak", "pk", "zz", "1", "x"]),
                              st.one_of(st.just("0a0b"), json_values), max_size=2)),
    max_size=4))


@QUICK
@given(st.one_of(json_values, st.fixed_dictionaries(
    {}, optional={"board": st.one_of(json_values, st.fixed_dictionaries(
        {}, optional={"plc": json_values, "mep": json_values})), "meter": meter_sections})))
def test_any_json_profile_is_a_config_or_a_clear_error(doc):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "profile.json")
        with open(path, "w") as fh:
            json.dump(doc, fh)
        try:
            board, cfg = DEVPROFILE.load(path)
        except ValueError as exc:
            assert str(exc).startswith("profile: ")
            return
    assert isinstance(board, dict) and isinstance(cfg, dict)
    for k in ("neuron_id", "plc_domain", "download_key"):
        assert k not in cfg or cfg[k] is None or isinstance(cfg[k], bytes)
    assert all(isinstance(v, bytes) for v in cfg.get("keys", {}).values())


# -- tools/profile.py: [security] mode, [keys] download --------------------------------------

_DEFAULT = profiles.load()


@QUICK
@given(st.one_of(json_values, st.sampled_from(["rc4", "aes", "AES", "des", ""])),
       st.one_of(json_values, st.text("0123456789abcdef", max_size=34),
                 st.text(max_size=20).map(lambda t: "ascii:" + t)),
       st.sampled_from(["mode", "download", "security-table", "keys-table"]))
def test_security_mode_and_download_key_values(mode, key, where):
    if where == "mode":
        over = {"security": {"mode": mode}}
    elif where == "download":
        over = {"keys": {"download": key}}
    else:
        over = {where.split("-")[0]: mode}
    data = profiles._merge(_DEFAULT, over)
    try:
        cfg = profiles.to_config(data)
    except profiles.ProfileError as exc:
        assert str(exc).split(":")[0] in ("security", "security.mode", "keys", "keys.download") \
            or str(exc).startswith("keys.")
        return
    if where == "mode":
        assert mode in ("rc4", "aes")
    if where == "download":
        assert len(cfg["download_key"]) == 16


def test_wrong_security_values_name_the_key():
    for over, msg in (({"security": {"mode": ["aes"]}}, "security.mode"),
                      ({"security": "aes"}, "security: a table"),
                      ({"keys": {"download": 5}}, "keys.download"),
                      ({"keys": {"download": "ascii:\u00e9"}}, "keys.download"),
                      ({"keys": {"download": "00"}}, "keys.download: 16 bytes")):
        with pytest.raises(profiles.ProfileError, match=msg):
            profiles.to_config(profiles._merge(_DEFAULT, over))


# -- meter/life.py: ET99.113-122 garbage at boot ------------------------------------------

NID = bytes.fromhex("00 02 98 30 00 09")
_NODE_IMAGE = bytes(Firmware({"plc": True, "neuron_id": NID, "codebanks": False}).meter.store.get(ET99))[:113]


@FAST
@given(st.binary(min_size=10, max_size=10), st.lists(
    st.sampled_from(["commission", "decommission", "osgp_request", "discover"]), max_size=4))
def test_garbage_lifecycle_record_at_boot_is_a_defined_state(rec, triggers):
    from osgp_meter import life as L
    f = Firmware({"plc": True, "neuron_id": NID, "codebanks": False,
                  "image": {ET99: _NODE_IMAGE + rec}})
    life = f.meter.life
    valid = rec[0] == L.REC_VERSION and rec[1] in L._OSGP_NAMES
    assert life.osgp == (L._OSGP_NAMES[rec[1]] if valid else "uninstalled")
    assert life.dc is None or (isinstance(life.dc, bytes) and len(life.dc) <= 6)
    assert 0 <= life.moves <= 255 and isinstance(life.code, int)
    assert life.state() == (life.node_state, life.osgp)
    for t in triggers:
        ctx = {"domain": b"\x42", "dc": life.dc, "in_domain": True}
        assert life.fire(t, ctx) in (True, False)
        assert life.osgp in L._OSGP_NAMES.values()


# -- a code bank holding a mutated image never switches (EP08/EP09/EP10) ---------------------

def _bank_meter():
    from osgp_meter import codebank as CB
    from osgp_meter import catalogue_data
    from osgp_meter.device import Meter
    from osgp_meter.store import TableStore
    m = Meter(TableStore(catalogue_data.TABLES, {}), catalogue_data.PROCEDURES)
    m.set_utc(T0 // 1000, T0)
    CB.attach(m, {"download_key": KEY})
    return m


def _call(m, number, params):
    from osgp_meter import access as A
    from osgp_meter import procedures as P
    got = P.run(m, 2048 + number, bytes(params), A.ROLE_MK, T0)
    assert isinstance(got, tuple) and len(got) == 2 and isinstance(got[0], int)
    return got


@FAST
@given(st.binary(min_size=0, max_size=50), st.data())
def test_a_downloaded_image_changed_in_any_byte_is_refused_with_a_reason(body, data):
    from osgp_meter import codebank as CB
    from osgp_meter import procedures as P
    img = fwimage.build(body, fwimage.pack_version(3, 71, 2), model=b"OSGP-EMU")
    pos = data.draw(st.integers(0, len(img) - 1))
    bad = bytearray(img)
    bad[pos] ^= data.draw(st.integers(1, 255))
    crc = img[20:22]
    m = _bank_meter()
    before_bt01 = bytes(m.store.get(1))
    ps = 16
    assert _call(m, 8, len(bad).to_bytes(4, "little") + ps.to_bytes(2, "little") + crc)[0] == P.COMPLETED
    for n in range((len(bad) + ps - 1) // ps):
        assert _call(m, 9, n.to_bytes(2, "little") + bad[n * ps:(n + 1) * ps])[0] == P.COMPLETED
    code, reason = _call(m, 10, crc)
    assert code != P.COMPLETED and len(reason) >= 1
    assert reason[0] in (CB.R_BAD_HEADER, CB.R_WRONG_MODEL, CB.R_BAD_CRC, CB.R_BAD_MAC)
    assert bytes(m.store.get(1)) == before_bt01                 # no switch: the version stays


@FAST
@given(st.lists(st.tuples(st.sampled_from([8, 9, 10]), st.binary(max_size=24)), max_size=6))
def test_random_download_procedure_parameters_get_a_result_and_a_reason(calls):
    from osgp_meter import procedures as P
    m = _bank_meter()
    for number, params in calls:
        before = m.store.snapshot(), m.banks.meta()
        code, resp = _call(m, number, params)
        if code in (P.INVALID_PARAMETER, P.CONFLICT):
            assert len(resp) >= 1                                 # the reason byte
            if number != 10:
                assert (m.store.snapshot(), m.banks.meta()) == before


@QUICK
@given(st.one_of(st.binary(max_size=80), st.builds(
    lambda body, pos, x: bytes(b ^ (x if i == pos % (40 + len(body)) else 0)
                               for i, b in enumerate(fwimage.build(body, 0x3155))),
    st.binary(max_size=30), st.integers(0, 69), st.integers(1, 255))))
def test_fw_image_describe_says_invalid_with_a_problem(raw):
    from osgp_host import fw_image
    d = fw_image.describe(raw)
    assert d["valid"] is False and d["problem"]


# -- a snapshot whose nv_part bytes are garbage (a good CRC) ----------------------------------

_PART_CFG = {"mep_secure": False, "plc": True, "neuron_id": NID, "codebanks": True}


def _parts_snapshot():
    f = Firmware(dict(_PART_CFG), T0)
    persist.attach(f, None)
    return f.nv.snapshot(), {k: bytes(v[0]()) for k, v in f.meter.nv_parts.items()}


PART_SNAP, PARTS = _parts_snapshot()


@FAST
@given(st.sampled_from(sorted(PARTS)), st.data())
def test_garbage_nv_part_bytes_boot_or_fail_with_the_parts_own_error(name, data):
    """A part's put() takes its bytes or refuses them with a ValueError that
    names the part (pending: "pending: bad NV record"); never another
    exception from deep inside the boot."""
    good = PARTS[name]
    raw = data.draw(st.one_of(st.binary(max_size=40),
                              st.integers(0, len(good)).map(lambda n: good[:n])))
    with tempfile.TemporaryDirectory() as d:
        _write(d, nvlog.record(nvlog.K_SNAPSHOT, 0, PART_SNAP + nvlog.part_entry(name, raw)), b"")
        box = {}

        def restore(fw_):
            box["sd"] = StateDir(d, fsync=False)
            box["sd"].open(fw_)
        try:
            f = Firmware(dict(_PART_CFG, restore=restore), T0)
        except ValueError as exc:
            assert str(exc).startswith(name), exc
            return
        finally:
            if "sd" in box:
                box["sd"].close()
        f.tick(T0 + 60_000)
        persist.attach(f, None)
        assert nvlog.entries(f.nv.snapshot()) is not None
