"""The catalogue (tables/*.toml), its compiler and the CPython catalogue module.

CPython-only: uses pytest, hypothesis and the generated tools/catalogue.json.
"""
import argparse
import ast
import io
import json

import pytest
from hypothesis import given, settings, strategies as st

from osgp_host import catalogue as cat
from osgp_host import catalogue_compiler as cc
from osgp_meter import access, catalogue_data

ET = 2048


def table(label):
    entry = cat.lookup_table(label)
    assert entry is not None, label
    return entry


def size(label, dims=None):
    return cat.table_size(table(label), dims)


def dims_with(overrides):
    """Catalogue-default dimensions with some fields replaced: {(tid, off, n): value}."""
    def dims(tid, off, nbytes):
        if (tid, off, nbytes) in overrides:
            return overrides[(tid, off, nbytes)]
        return cat.catalogue().default_dims(tid, off, nbytes)
    return dims


# --- the seed's inventory ----------------------------------------------------

def test_inventory_counts():
    c = cat.catalogue().counts
    assert (c["tables"]["total"], c["tables"]["basic"], c["tables"]["extended"]) == (109, 41, 68)
    assert (c["procedures"]["total"], c["procedures"]["basic"], c["procedures"]["extended"]) == (54, 8, 46)
    assert c["procedures"]["outside_inventory"] == 8
    assert (c["events"]["total"], c["events"]["basic"], c["events"]["extended"]) == (96, 50, 46)


def test_firmware_form_has_the_same_counts():
    inventory = [t for t, e in catalogue_data.TABLES.items() if not e[3] & 0x04]
    assert len(inventory) == 109
    assert sum(1 for t in inventory if t >= ET) == 68
    # outside the seed's count: the PLC node's configuration image (ET99)
    assert sorted(t for t in catalogue_data.TABLES if t not in inventory) == [ET + 99]
    procs = catalogue_data.PROCEDURES
    assert len(procs) == 62
    assert sum(1 for _, flags in procs.values() if flags & 0x01) == 54
    assert sum(1 for _, flags in procs.values() if flags & 0x02) == 46
    assert all(bool(flags & 0x02) == (n >= ET) for n, (_, flags) in procs.items())
    assert len(catalogue_data.EVENTS) == 96
    assert sum(1 for flags in catalogue_data.EVENTS.values() if flags & 0x02) == 46


def test_basic_procedures_in_and_outside_the_inventory():
    procs = cat.catalogue().procedures
    inside = {p["number"] for p in procs if p["kind"] == "basic" and p["inventory"]}
    outside = {p["number"] for p in procs if not p["inventory"]}
    assert inside == {4, 5, 9, 10, 12, 13, 14, 15}
    assert outside == {0, 1, 2, 3, 6, 7, 8, 11}
    for p in procs:
        if not p["inventory"]:
            assert p["source"] == "c12.19"
            assert "outside the seed's count" in p["note"]


def test_numbering_rules():
    c = cat.catalogue()
    for kinds in (c.tables, c.procedures, c.events):
        for e in kinds:
            base = ET if e["kind"] == "extended" else 0
            assert e["id"] == e["number"] == base + e["kind_number"]
            assert e["label"][2:] == "%02d" % e["kind_number"] or e["label"][2:] == str(e["kind_number"])
    assert table("ET03")["id"] == 0x0803
    assert cat.lookup_procedure("EP17")["number"] == 0x0811
    assert all(e["number"] < ET for e in c.events if e["kind"] == "basic")


def test_every_entry_has_a_source_and_ref():
    c = cat.catalogue()
    for e in c.tables + c.procedures + c.events:
        assert e["source"] in cc.SOURCES, e["label"]
        assert e["layout_source"] in cc.SOURCES, e["label"]
        assert e["ref"].strip(), e["label"]
        if "emulator" in (e["source"], e["layout_source"]):
            assert "mulator" in (e["note"] or ""), e["label"]   # says it is emulator-defined


def test_events_sources():
    c = cat.catalogue()
    assert {e["source"] for e in c.events if e["kind"] == "basic"} == {"c12.19"}
    assert {e["source"] for e in c.events if e["kind"] == "extended"} == {"emulator"}
    names = {e["name"] for e in c.events}
    for seed_example in ("Magnetic Tamper", "THD Event Detected", "Prepay Credit Exhausted",
                         "Max Power Level Changed", "M-Bus Device Alarm", "M-Bus Alarm Match",
                         "Code Bank Changed", "Key Usage Threshold Reached", "Primary Power Down"):
        assert seed_example in names


# --- the generated files --------------------------------------------------------

def test_generated_files_are_not_stale():
    assert cc.stale_outputs() == []


def test_check_mode_exit_code():
    assert cc.main(["--check"]) == 0


def test_source_digest_is_over_the_toml_files():
    assert catalogue_data.SOURCE_DIGEST == cc.source_digest(cc.source_files())
    assert cat.catalogue().doc["source_digest"] == catalogue_data.SOURCE_DIGEST


def test_firmware_module_imports_only_its_reader():
    # bytes constants read through catalogue.Packed (no dicts built at import)
    tree = ast.parse(cc.FIRMWARE_OUT.read_text())
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert [(n.module, n.level, [a.name for a in n.names]) for n in imports] == [("catalogue", 1, ["Packed"])]
    assert cc.FIRMWARE_OUT.read_text().startswith(
        "# Generated by tools/catalogue_compiler.py from tables/*.toml -- do not edit.\n")


def _rpn(expr, dims):
    from osgp_meter.catalogue import eval_size
    return eval_size(expr, dims)


def test_firmware_form_agrees_with_json():
    tables = catalogue_data.TABLES

    def fw_dims(tid, off, nbytes):
        default = tables[tid][4] or b""
        return int.from_bytes(default[off:off + nbytes].ljust(nbytes, b"\x00"), "little")

    for t in cat.catalogue().tables:
        sz, read, write, flags, default = tables[t["id"]]
        assert _rpn(sz, fw_dims) == t["default_size"], t["label"]
        assert (read, write) == (t["read_mask"], t["write_mask"])
        assert flags == (0x01 if t["nv"] else 0) | (0x02 if t["data"] else 0) | (0 if t.get("inventory", True) else 0x04)
        assert (default or b"") == bytes.fromhex(t["default"] or "").rstrip(b"\x00")
        assert default is None or len(default) <= t["default_size"]


def test_bt74_size_rpn():
    # 11 + BT71.5:2 * (12 + BT71.3), byte-coded
    assert catalogue_data.TABLES[74][0] == bytes.fromhex("0100000b" "020047000502" "0100000c" "020047000301" "2b2a2b")


# --- sizes ------------------------------------------------------------------------

@pytest.mark.parametrize("label, expected", [
    ("BT00", 79), ("BT01", 24), ("BT20", 10), ("BT21", 10), ("BT50", 9), ("BT52", 7),
    ("BT53", 6), ("BT55", 9), ("BT60", 31), ("BT61", 31), ("BT63", 52), ("BT70", 9),
    ("BT71", 9), ("ET03", 143), ("ET04", 139), ("ET11", 91), ("ET21", 4 * 131),
])
def test_fixed_sizes(label, expected):
    assert table(label)["size"] == expected


@pytest.mark.parametrize("label, expected", [
    ("BT03", 4 + 6), ("BT04", 10 + 13 + 6 + 4 * 8), ("BT07", 3 + 255), ("BT08", 4 + 12),
    ("BT22", 18), ("BT23", 1 + 5 * 78), ("BT26", 6 + 12 * (2 + 6 + 391)), ("BT28", 2 * 4 + 12 * 4),
    ("BT54", 808), ("BT64", 4 * 977), ("BT65", 0), ("BT72", 8 + 19), ("BT74", 11 + 100 * 14),
    ("ET08", 20), ("ET09", 6 + 10 * 18), ("ET17", 1250), ("ET51", 2 * 10), ("ET52", 896),
    ("ET53", 1785), ("ET27", 261), ("ET28", 769), ("ET79", 11 + 50 * 14), ("ET59", 16),
])
def test_expression_sizes_with_default_dimensions(label, expected):
    assert not isinstance(table(label)["size"], int)
    assert size(label) == expected


def test_bt03_follows_bt00_17():
    assert size("BT03", dims_with({(0, 17, 1): 4})) == 8     # the optical guide's 4 mfg bytes
    assert size("BT03", dims_with({(0, 17, 1): 9})) == 13    # the MEP guide's 9


def test_bt74_follows_bt71():
    assert size("BT74", dims_with({(71, 5, 2): 200})) == 11 + 200 * 14
    assert size("BT74", dims_with({(71, 3, 1): 4})) == 11 + 100 * 16


def test_bt54_matches_the_nes_calendar_size():
    assert size("BT54") == cat.catalogue().default_dims(50, 7, 2)   # BT50.7 = 808


def test_lp_data_matches_bt61_memory_length():
    memory = cat.catalogue().default_dims(61, 0, 4)
    assert sum(size(label) for label in ("BT64", "BT65", "BT66", "BT67")) == memory


def test_bt23_follows_bt21_flags():
    # no demand-reset counter, no date/time in demands: 0 + 5 * (15*4 + 2*4)
    assert size("BT23", dims_with({(21, 0, 1): 0})) == 5 * (60 + 8)


# --- BT00 ------------------------------------------------------------------------

def test_bt00_default():
    bt00 = bytes.fromhex(table("BT00")["default"]).ljust(79, b"\x00")
    assert bt00[:19] == bytes([0x02, 0x2A, 0x88]) + b"EMUL" + bytes(
        [2, 0, 255, 12, 1, 0, 10, 13, 2, 12, 6, 4])
    fields = {f["name"]: f["value"] for f in cat.decode_table(0, bt00)}
    c = cat.catalogue()

    def bits(hexset):
        data = bytes.fromhex(hexset)
        return {n for n in range(8 * len(data)) if data[n // 8] >> (n % 8) & 1}

    assert bits(fields["std_tbls_used"]) == {t["kind_number"] for t in c.tables if t["kind"] == "basic"}
    assert bits(fields["mfg_tbls_used"]) == {t["kind_number"] for t in c.tables if t["kind"] == "extended"}
    assert bits(fields["std_proc_used"]) == set(range(16))
    assert bits(fields["mfg_proc_used"]) == {p["kind_number"] for p in c.procedures if p["kind"] == "extended"}
    assert bits(fields["std_tbls_write"]) == {t["kind_number"] for t in c.tables
                                              if t["kind"] == "basic" and t["write_mask"]}
    assert bits(fields["mfg_tbls_write"]) == {t["kind_number"] for t in c.tables
                                              if t["kind"] == "extended" and t["write_mask"]}


def test_computed_event_sets():
    c = cat.catalogue()
    bt72 = bytes.fromhex(table("BT72")["default"]).ljust(27, b"\x00")
    et18 = bytes.fromhex(table("ET18")["default"]).ljust(27, b"\x00")
    for e in c.events:
        bit = e["kind_number"] + (0 if e["kind"] == "basic" else 64)
        assert bt72[bit // 8] >> (bit % 8) & 1
        assert (et18[bit // 8] >> (bit % 8) & 1) == e["critical"]


# --- access ------------------------------------------------------------------------

def test_open_tables():
    readable_without_key = {t["label"] for t in cat.catalogue().tables if t["read_mask"] & access.ROLE_NONE}
    assert readable_without_key == {"BT00", "BT01", "ET03"}


def test_key_rules():
    c = cat.catalogue()
    for label in ("BT15", "ET02", "ET17"):            # calibration / download: not RK
        assert not table(label)["read_mask"] & access.ROLE_RK
    for label in ("BT07", "ET50", "ET51", "ET52"):    # MBK writes these [MEP p.12-13]
        assert table(label)["write_mask"] & access.ROLE_MBK
    assert {t["label"] for t in c.tables if t["write_mask"] & access.ROLE_MBK} == {"BT07", "ET50", "ET51", "ET52"}
    assert {t["label"] for t in c.tables if t["write_mask"] & access.ROLE_BCAST} == {"BT07", "ET27"}
    assert {p["label"] for p in c.procedures if p["call_mask"] & access.ROLE_MBK} == {"EP16", "EP39", "EP61"}
    assert {p["label"] for p in c.procedures if p["call_mask"] & access.ROLE_RK} == {"BP10", "EP16"}
    for label in ("EP08", "EP09", "EP10", "EP15", "EP24", "EP25"):
        assert not cat.lookup_procedure(label)["call_mask"] & access.ROLE_PK
    assert all(not p["call_mask"] & access.ROLE_NONE for p in c.procedures)


# --- lookups ------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["BT23", "bt23", "BT 23", 23, "23", "0x17", "Current Register Data",
                                 "current register data", "Current Register"])
def test_lookup_table_spellings(key):
    assert cat.lookup_table(key)["id"] == 23


@pytest.mark.parametrize("key", ["ET04", "et4", 2052, "2052", "0x0804", "System Information"])
def test_lookup_extended_table_spellings(key):
    assert cat.lookup_table(key)["label"] == "ET04"


@pytest.mark.parametrize("key, label", [
    ("BP10", "BP10"), (10, "BP10"), ("Set Date and/or Time", "BP10"), ("EP17", "EP17"),
    (2065, "EP17"), ("0x0811", "EP17"), ("remove m-bus", "EP17"), ("EP08", "EP08"),
])
def test_lookup_procedure_spellings(key, label):
    assert cat.lookup_procedure(key)["label"] == label


def test_lookup_event_and_misses():
    assert cat.lookup_event("BE1")["name"] == "Primary Power Down"
    assert cat.lookup_event(2048 + 24)["name"] == "Magnetic Tamper"
    assert cat.lookup_event("EE24")["id"] == 2072
    assert cat.lookup_table("BT99") is None
    assert cat.lookup_table("no such table") is None
    assert cat.lookup_table("data") is None            # ambiguous part of a name
    assert cat.lookup_procedure("EP99") is None


# --- decoding ----------------------------------------------------------------------------

def test_decode_bt52():
    fields = {f["name"]: f for f in cat.decode_table("BT52", bytes.fromhex("18 03 0C 0E 1E 2D 0A"))}
    assert fields["clock_calendar"]["value"] == "24-03-12 14:30:45"
    assert fields["clock_calendar"]["offset"] == 0
    assert fields["time_date_qual"]["value"] == {"day_of_week": 2, "dst_flag": 1, "gmt_flag": 0,
                                                 "tm_zn_applied_flag": 0, "dst_applied_flag": 0}


def test_decode_bt01():
    data = b"NES " + b"EM-1    " + bytes.fromhex("1000 3155") + bytes.fromhex("0000000012345678")
    fields = {f["name"]: f["value"] for f in cat.decode_table(1, data)}
    assert fields["manufacturer"] == "NES "
    assert fields["ed_model"] == "EM-1    "
    assert fields["fw_version"] == {"build": 21, "minor": 10, "major": 3}     # 3.10.21 = 0x3155
    assert fields["mfg_serial_number"] == "0000000012345678"


def test_decode_partial_window_and_records():
    # BT74 from offset 9: the unread count, then entry 0 (14 bytes) and half of entry 1
    entry0 = bytes.fromhex("180101000000") + bytes.fromhex("0700 FEFF 0100 0000")
    data = bytes.fromhex("0300") + entry0 + bytes(7)
    fields = cat.decode_table("BT74", data, offset=9)
    names = [f["name"] for f in fields]
    assert names[:6] == ["nbr_unread_entries", "entries[0].time", "entries[0].seq_nbr",
                         "entries[0].user_id", "entries[0].event", "entries[0].argument"]
    byname = {f["name"]: f for f in fields}
    assert byname["nbr_unread_entries"]["value"] == 3
    assert byname["entries[0].time"]["offset"] == 11
    assert byname["entries[0].user_id"]["text"] == "65534 (PLC/G3/P2P)"
    assert byname["entries[0].event"]["value"]["event_number"] == 1
    assert byname["entries[1].time"]["complete"] and not byname["entries[1].seq_nbr"]["complete"]
    assert byname["entries[1].seq_nbr"]["value"] is None


def test_decode_uses_given_dimensions():
    # BT23 with the demand-reset counter off: summation 0 starts at offset 0
    data = (1234).to_bytes(4, "little")
    fields = cat.decode_table("BT23", data, dims=dims_with({(21, 0, 1): 0}))
    assert [(f["name"], f["value"]) for f in fields] == [("data.total.summations[0]", 1234)]
    fields = cat.decode_table("BT23", bytes([7]) + data)
    assert fields[0]["name"] == "data.nbr_demand_resets[0]" and fields[0]["value"] == 7
    # the MEP guide's example reads 44 bytes of BT23 [MEP p.44]: 1 + 10 whole summations + 3 bytes
    fields = cat.decode_table("BT23", bytes(44))
    assert fields[-2]["name"] == "data.total.summations[9]" and fields[-2]["complete"]
    assert fields[-1]["name"] == "data.total.summations[10]" and not fields[-1]["complete"]


def test_decode_past_the_end_is_empty():
    assert cat.decode_table("BT52", b"\x00" * 4, offset=7) == []
    assert cat.decode_table("BT65", b"\x00" * 4) == []     # set 2 is empty by default
    assert cat.decode_table(4096 + 52, bytes(7))[0]["name"] == "clock_calendar"   # pending copy


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(catalogue_data.TABLES)), st.binary(max_size=300), st.integers(0, 6000))
def test_decode_table_never_raises(tid, data, offset):
    fields = cat.decode_table(tid, data, offset)
    for f in fields:
        assert f["offset"] + f["size"] > offset and f["offset"] < offset + len(data)
        assert len(bytes.fromhex(f["raw"])) <= f["size"]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(catalogue_data.TABLES)), st.binary(max_size=120),
       st.integers(0, 400), st.integers(0, 60))
def test_decode_table_never_raises_with_other_dimensions(tid, data, offset, value):
    cat.decode_table(tid, data, offset, dims=lambda *_: value)


# --- procedures ------------------------------------------------------------------------------

def test_ep17_worked_example():
    # [MEP p.53]: BT07 data 11 08 07 00 F8 03 = EP17, PSN 7, remove, handle 0x03F8
    assert cat.procedure_request("EP17", 7, {"action": 0, "handle": 0x03F8}) == bytes.fromhex("11 08 07 00 F8 03")
    params = {f["name"]: f["value"] for f in cat.decode_params("EP17", bytes.fromhex("00 F8 03"))}
    assert params == {"action": 0, "handle": 0x03F8}


def test_bp10_parameters():
    raw = cat.encode_params("BP10", {"set_mask": {"set_time": 1, "set_date": 1},
                                     "date_time": (24, 3, 12, 14, 30, 0), "time_date_qual": 2})
    assert raw == bytes.fromhex("03 18030C0E1E00 02")
    assert cat.decode_params("BP10", raw)[1]["value"] == "24-03-12 14:30:00"


def test_bp15_ped_and_responses():
    raw = cat.encode_params("BP15", {"ped": {"event_code": 0, "self_read": 1, "storage": "1803010000"}})
    assert raw == bytes.fromhex("10 1803010000")
    assert cat.encode_response("EP13", {"balance": -5}) == (-5).to_bytes(4, "little", signed=True)
    assert cat.decode_response("EP13", bytes.fromhex("FBFFFFFF"))[0]["value"] == -5
    assert cat.encode_params("EP09", {"packet_number": 3, "data": b"\x01\x02"}) == bytes.fromhex("0300 0102")
    with pytest.raises(ValueError):
        cat.encode_params("EP17", {"handle": 0x10000})
    with pytest.raises(ValueError):
        cat.encode_params("EP17", {"nonsense": 1})


def test_procedure_layouts_fit_bt00_limits():
    for p in cat.catalogue().procedures:
        fixed = [f for f in p["params"] if f.get("count") != "rest"]
        assert sum(f["size"] for f in fixed) <= 255, p["label"]
        assert sum(f["size"] for f in p["response"]) <= 12, p["label"]


# --- the compiler's validation -----------------------------------------------------------------

def test_expression_parser():
    node = cc.parse_expr("11 + BT71.5:2 * (12 + BT71.3)")
    assert cc.to_rpn(node) == [11, ("f", 71, 5, 2), 12, ("f", 71, 3, 1), "+", "*", "+"]
    assert cc.parse_expr(cc.to_text(node)) == node
    assert cc.to_rpn(cc.parse_expr("2 * 3 + 0x10")) == [22]
    dims = lambda tid, off, n: {(2059, 18): 10}.get((tid, off), 0)   # ET11.18
    assert cc.evaluate(cc.parse_expr("min(ET11.18, 4) + max(1, 2) + bits(255, 4, 2)"), dims) == 4 + 2 + 3
    for bad in ("BT71.5:9", "1 +", "foo(1)", "bits(BT71.1, BT71.2, 1)", "1 / 0"):
        with pytest.raises(ValueError):
            cc.parse_expr(bad)


def _raw(tables=(), procedures=(), events=(), records=()):
    meta = {"roles": {"full": ["MK", "MAK", "PLC"]}, "access": {}}
    raw = {"meta": meta, "record": list(records), "table": list(tables),
           "procedure": list(procedures), "event": list(events)}
    for kind in ("record", "table", "procedure", "event"):
        for e in raw[kind]:
            e["_file"] = "test.toml"
    return raw


def _table(**kw):
    t = {"id": "BT52", "name": "Clock", "source": "osgp-guide", "ref": "[MEP]", "nv": False,
         "read": ["full"], "size": 7, "fields": [{"name": "t", "type": "LTIME_DATE"},
                                                 {"name": "q", "type": "UINT8"}]}
    t.update(kw)
    return t


def test_compiler_accepts_a_minimal_catalogue():
    cc.Builder(_raw([_table()])).build()


@pytest.mark.parametrize("change, message", [
    ({"source": "wikipedia"}, "source"),
    ({"ref": ""}, "ref"),
    ({"size": 8}, "layout ends at 7"),
    ({"size": 6}, "past the size"),
    ({"fields": [{"name": "t", "type": "FLOAT9"}]}, "unknown type"),
    ({"fields": [{"name": "t", "type": "UINT8", "offset": 2}]}, "gap"),
    ({"size": "BT99.1"}, "missing table"),
    ({"read": ["ROOT"]}, "unknown role"),
    ({"source": "emulator"}, "note"),
    ({"default": "00" * 8}, "longer than the table"),
    ({"acess": "open"}, "unknown key"),
])
def test_compiler_rejects(change, message):
    with pytest.raises(cc.CatalogueError) as err:
        cc.Builder(_raw([_table(**change)])).build()
    assert message in str(err.value)


def test_compiler_rejects_duplicates_and_size_formula_mismatch():
    with pytest.raises(cc.CatalogueError, match="duplicate"):
        cc.Builder(_raw([_table(), _table()])).build()
    dim = _table(id="BT71", name="Actual Log", size=9, fields=[{"name": "b", "type": "BYTES", "count": 9}])
    bad = _table(id="BT74", name="Log", size="11 + BT71.5:2 * 14",
                 fields=[{"name": "h", "type": "BYTES", "count": 11},
                         {"name": "e", "type": "BYTES", "count": "BT71.5:2 * (12 + BT71.3)"}])
    with pytest.raises(cc.CatalogueError, match="disagree"):
        cc.Builder(_raw([dim, bad])).build()


# --- the CLI ---------------------------------------------------------------------------------

def _cli(*argv):
    ap = argparse.ArgumentParser()
    cat.add_parser(ap.add_subparsers(dest="command"))
    out = io.StringIO()
    assert cat.run(ap.parse_args(["catalogue", *argv]), out) == 0
    return out.getvalue()


def test_cli_json():
    doc = json.loads(_cli("--json"))
    assert doc["counts"]["tables"]["basic"] == 41
    assert doc["counts"]["procedures"]["outside_inventory"] == 8
    assert sum(doc["counts"]["events"]["by_source"].values()) == 96
    assert doc["counts"]["tables"]["total"] == 109 and doc["counts"]["tables"]["outside_inventory"] == 1
    assert len(doc["tables"]) == 110 and len(doc["procedures"]) == 62 and len(doc["events"]) == 96
    bp10 = [p for p in doc["procedures"] if p["label"] == "BP10"][0]
    assert isinstance(bp10["implemented"], bool)
    only = json.loads(_cli("--json", "--kind", "events"))
    assert set(only) == {"counts", "events"}


def test_cli_listing():
    text = _cli()
    assert "BT74  History Log Data" in text and "size = 11 + BT71.5:2 * (12 + BT71.3)" in text
    assert "EP17" in text and "Magnetic Tamper" in text
    assert "109 = 41 basic + 68 extended" in text
    assert "54 = 8 basic + 46 extended, plus 8 outside the inventory" in text


# --- the packed firmware form (catalogue_render.pack <-> meter/catalogue.Packed) ---

_IDS = st.one_of(st.integers(0, 255), st.integers(ET, ET + 400))


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(_IDS, st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 7),
                                       st.one_of(st.integers(0, 0xFFFE), st.binary(min_size=1, max_size=40)),
                                       st.binary(max_size=60)), min_size=1, max_size=40),
       st.lists(st.integers(-5, 3 * ET), max_size=30))
def test_packed_tables_round_trip(entries, probes):
    from osgp_host.catalogue_render import pack, table_entry
    from osgp_meter.catalogue import Packed
    want = {tid: (size, rd, wr, fl, default or None) for tid, (rd, wr, fl, size, default) in entries.items()}
    got = Packed(pack([table_entry(tid, rd, wr, fl, size, default)
                       for tid, (rd, wr, fl, size, default) in entries.items()], 0, 13))
    assert list(got) == sorted(want) and len(got) == len(want)
    assert dict(got.items()) == want
    for tid in probes + sorted(want) + [t + 4096 for t in want]:
        assert got.get(tid) == want.get(tid) and (tid in got) == (tid in want)


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(_IDS, st.tuples(st.integers(0, 255), st.integers(0, 255)), min_size=1, max_size=60))
def test_packed_procedures_and_events_round_trip(entries):
    from osgp_host.catalogue_render import pack
    from osgp_meter.catalogue import Packed
    procs = Packed(pack([(n, bytes(v), b"") for n, v in entries.items()], 1, 4))
    events = Packed(pack([(n, bytes(v[:1]), b"") for n, v in entries.items()], 2, 3))
    assert dict(procs.items()) == entries
    assert dict(events.items()) == {n: v[0] for n, v in entries.items()}


def test_pack_refuses_what_does_not_fit():
    from osgp_host.catalogue_render import pack, table_entry
    with pytest.raises(cc.CatalogueError):
        table_entry(1, 0, 0, 0, 0xFFFF, b"")
    with pytest.raises(cc.CatalogueError):
        pack([(n, b"\x00", b"") for n in range(300)], 2, 3)
