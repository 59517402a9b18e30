# The table services (0x30/0x3F/0x40/0x4F) on a small catalogue: exact response
# bytes, write-count semantics, reads past the end, access by key level,
# dimension-dependent sizes, and "a refused request changes nothing".
from osgp_meter import access as A
from osgp_meter.device import PortLimits, MEP_LIMITS
import minicat

NOW = 1_700_000_000_000
BIG = PortLimits("test", 1000, 1000, 0)


def run(m, hexreq, role=A.ROLE_MAK, limits=BIG):
    return m.execute(bytes.fromhex(hexreq), role, limits, NOW).hex(" ")


def test_full_read_returns_count_and_data_zero_filled():
    m = minicat.meter()
    assert run(m, "30 00 28") == "00 00 08 01 02 03 00 00 00 00 00"


def test_full_read_mep_form_with_length_is_accepted():
    m = minicat.meter()
    assert run(m, "30 00 28 00 08") == "00 00 08 01 02 03 00 00 00 00 00"


def test_partial_read_past_the_end_is_zeros():
    m = minicat.meter()
    assert run(m, "3F 00 28 00 00 01 00 04") == "00 00 04 02 03 00 00"
    assert run(m, "3F 00 28 00 01 00 00 03") == "00 00 03 00 00 00"


def test_unknown_table_is_iar_and_bad_header_is_err():
    m = minicat.meter()
    assert run(m, "30 00 63") == "05"
    assert run(m, "3F 00 28 00 00") == "01"
    assert run(m, "30") == "01"
    assert run(m, "") == "01"


def test_unknown_and_unsupported_codes():
    m = minicat.meter()
    assert run(m, "99") == "01"
    assert run(m, "31 00 28") == "02"     # indexed read: a C12.18 code not offered here


def test_pending_copy_is_recognised_but_not_served_yet():
    m = minicat.meter()
    assert run(m, "30 10 28") == "02"     # BT40 + 4096: known table, pending later
    assert run(m, "30 10 63") == "05"     # no base table: not a pending copy at all


def test_access_by_key_level():
    m = minicat.meter()
    assert run(m, "30 00 28", A.ROLE_RK) == "03"
    assert run(m, "30 00 28", A.ROLE_NONE) == "03"
    assert run(m, "30 00 00", A.ROLE_NONE).startswith("00 00 14")
    assert run(m, "40 00 28 00 01 09", A.ROLE_MBK) == "03"
    assert run(m, "40 00 28 00 01 09", A.ROLE_PK) == "00"
    assert run(m, "40 00 00 00 01 09") == "05"   # read-only for everyone


def test_write_count_semantics():
    m = minicat.meter()
    # count larger than the table: the extra bytes are ignored
    assert run(m, "40 00 28 00 0A 11 12 13 14 15 16 17 18 19 1A") == "00"
    assert run(m, "30 00 28") == "00 00 08 11 12 13 14 15 16 17 18"
    # count smaller: only `count` bytes are written
    assert run(m, "40 00 28 00 02 AA BB") == "00"
    assert run(m, "30 00 28") == "00 00 08 aa bb 13 14 15 16 17 18"
    # missing count: nothing written, no error
    assert run(m, "40 00 28") == "00"
    assert run(m, "30 00 28") == "00 00 08 aa bb 13 14 15 16 17 18"


def test_partial_write_and_its_limits():
    m = minicat.meter()
    assert run(m, "4F 00 28 00 00 06 00 04 01 02 03 04") == "00"
    assert run(m, "30 00 28") == "00 00 08 01 02 03 00 00 00 01 02"
    assert run(m, "4F 00 28 00 00 08 00 01 01") == "05"   # offset at the end
    assert run(m, "4F 00 28 00 00") == "01"


def test_port_size_limits():
    small = PortLimits("plc", 84, 75, 0xFFFE)
    m = minicat.meter()
    assert run(m, "3F 00 1E 00 00 00 00 54", limits=small).startswith("00 00 54")
    assert run(m, "3F 00 1E 00 00 00 00 55", limits=small) == "04"
    assert run(m, "4F 00 1E 00 00 00 00 4C" + " 00" * 76, limits=small) == "04"
    assert MEP_LIMITS.max_read == 465 and MEP_LIMITS.max_write == 456


def test_size_follows_dimension_table():
    m = minicat.meter()
    assert m.store.size(30) == 2 + 4 * 10
    assert run(m, "40 00 15 00 03 02 05 00") == "00"
    assert m.store.size(30) == 2 + 2 * 5
    assert run(m, "30 00 1E") == "00 00 0c" + " 00" * 12
    assert m.store.size(3) == 6


def test_refused_requests_change_nothing():
    m = minicat.meter()
    run(m, "40 00 28 00 02 AA BB")
    before = m.store.snapshot()
    for req, role in (("40 00 28 00 01 09", A.ROLE_RK), ("40 00 00 00 01 09", A.ROLE_MAK),
                      ("4F 00 28 00 00 08 00 01 01", A.ROLE_MAK), ("40 00 63 00 01 00", A.ROLE_MAK),
                      ("4F 00 28 00", A.ROLE_MAK)):
        assert run(m, req, role) != "00"
        assert m.store.snapshot() == before


def test_unwritten_tables_cost_nothing():
    m = minicat.meter()
    run(m, "30 00 28")
    run(m, "3F 00 1E 00 00 00 00 10")
    assert m.store.written == {}
