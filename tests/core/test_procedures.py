# BT07/BT08 procedures on a small catalogue: layout, PSN rules, result codes,
# and the basic procedures this build implements.
from osgp_meter import access as A
from osgp_meter import clock
from osgp_meter.device import PortLimits
import minicat

NOW = 1_700_000_000_000
BIG = PortLimits("test", 1000, 1000, 0)


def call(m, number, psn, params="", role=A.ROLE_MAK, now=NOW):
    data = bytes((number & 0xFF, number >> 8, psn)) + bytes.fromhex(params)
    req = bytes((0x40, 0, 7, 0, len(data))) + data
    code = m.execute(req, role, BIG, now)
    bt08 = m.execute(bytes.fromhex("30 00 08"), A.ROLE_MAK, BIG, now)
    return code.hex(), bt08[3:].hex(" ")


def test_bt08_layout_and_unrecognized_procedure():
    m = minicat.meter()
    # EP99 is in the catalogue but not implemented: result 6, honestly
    code, bt08 = call(m, 0x0863, 7)
    assert code == "00"
    assert bt08 == "63 08 07 06" + " 00" * 12
    # a number that is not in the catalogue at all: also 6
    assert call(m, 0x0123, 8)[1].startswith("23 01 08 06")


def test_repeated_psn_is_refused_with_0x04_and_changes_nothing():
    m = minicat.meter()
    call(m, 7, 9)
    before = m.store.snapshot()
    code, _ = call(m, 7, 9)
    assert code == "04"
    assert m.store.snapshot() == before


def test_first_psn_may_not_be_255():
    m = minicat.meter()
    assert call(m, 7, 255)[0] == "04"


def test_no_authorization():
    m = minicat.meter()
    assert call(m, 7, 1, role=A.ROLE_MBK)[1].startswith("07 00 01 05")
    assert call(m, 0x0862, 2, role=A.ROLE_MBK)[1].startswith("62 08 02 06")  # allowed, not implemented


def test_change_mode_and_clear_status_flags():
    m = minicat.meter()
    assert call(m, 6, 1, "02")[1].startswith("06 00 01 00")
    assert m.store.read(3, 0, 1) == b"\x02"
    assert call(m, 6, 2, "08")[1].startswith("06 00 02 02")     # no such mode bit
    m.store.write(3, 1, b"\xff\xff\xff\xff\xff")
    call(m, 7, 3)
    assert m.store.read(3, 0, 6) == b"\x02\x00\x00\x00\xff\xff"
    call(m, 8, 4)
    assert m.store.read(3, 0, 6) == b"\x02\x00\x00\x00\x00\x00"


def test_set_date_time_moves_the_clock_only():
    m = minicat.meter()
    code, bt08 = call(m, 10, 1, "03 1A 0B 1A 0C 22 38")    # 2026-11-26 12:34:56
    assert bt08.startswith("0a 00 01 00")
    assert m.utc(NOW) == clock.from_civil(2026, 11, 26, 12, 34, 56)
    rsp = m.execute(bytes.fromhex("30 00 34"), A.ROLE_MAK, BIG, NOW + 1000)
    assert rsp.hex(" ") == "00 00 07 1a 0b 1a 0c 22 39 14"     # Thursday, GMT flag
    # time only keeps the date
    call(m, 10, 2, "01 00 00 00 01 02 03")
    assert clock.to_civil(m.utc(NOW))[:6] == (2026, 11, 26, 1, 2, 3)
    # invalid dates are refused and change nothing
    offset = m.clock_offset
    for bad in ("03 1A 02 1E 00 00 00", "03 1A 0D 01 00 00 00", "03 1A 01 01 18 00 00", "00 1A 01 01 00 00 00", "03 1A 01"):
        assert call(m, 10, 3 + len(bad), bad)[1][9:11] == "02"
        assert m.clock_offset == offset


def test_rk_may_set_the_clock_unless_et04_forbids():
    m = minicat.meter()
    assert call(m, 10, 1, "03 1A 0B 1A 0C 22 38", role=A.ROLE_RK)[1][9:11] == "00"
    m.store.write(2048 + 4, 71, b"\x01")
    assert call(m, 10, 2, "03 1A 0B 1A 0C 22 38", role=A.ROLE_RK)[1][9:11] == "05"


def test_cold_warm_start_and_clear_data():
    m = minicat.meter()
    m.store.write(40, 0, b"\x09")      # non-volatile
    m.store.write(30, 0, b"\x09")      # measured data, volatile
    call(m, 3, 1)                      # clear data
    assert 30 not in m.store.written and 40 in m.store.written
    m.store.write(30, 0, b"\x09")
    call(m, 1, 2)                      # warm start: volatile tables lost
    assert 30 not in m.store.written and 40 in m.store.written
    call(m, 0, 3)                      # cold start: everything back to the image
    assert 40 not in m.store.written
    assert m.store.read(8, 0, 4) == b"\x00\x00\x03\x00"


def test_save_configuration_calls_the_host_hook():
    m = minicat.meter()
    saved = []
    m.on_save = saved.append
    assert call(m, 2, 1)[1].startswith("02 00 01 00")
    assert saved == [m]


def test_execute_diagnostics_reports_ok():
    m = minicat.meter()
    assert call(m, 11, 1)[1] == "0b 00 01 00 00" + " 00" * 11
