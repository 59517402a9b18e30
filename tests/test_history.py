"""tools/history.py: reading a history log in chunks and rendering it with
the catalogue's event names; the `osgp-meter log` parser."""
import argparse
import json
from importlib import resources

from osgp_meter import clock, events, firmware, supply
from osgp_host import history

T0 = clock.from_civil(2026, 11, 26, 12, 0, 0) * 1000


def _doc():
    return json.loads(resources.files("osgp_host").joinpath("catalogue.json").read_text("utf-8"))


def test_read_and_render_a_full_log_in_chunks():
    fw = firmware.Firmware({"keys": {}, "clock": T0 // 1000}, T0)
    m = fw.meter
    supply.attach(m, {})
    for k in range(103):                  # 100 entries: wrapped, overflowed
        events.log(m, 20, k, 0xFFFD, T0 // 1000 + k)
    reads = []

    def read(tid, off, n):
        reads.append((tid, off, n))
        assert n <= 465
        return m.store.read(tid, off, n)

    arg_len, raw = history.read_log(read)
    assert raw == m.store.get(74) and arg_len == 2
    lines = history.render(raw, arg_len, _doc())
    assert lines[0] == "BT74 History Log: 100 entries, 100 unread, overflow"
    assert lines[1] == "2026-11-26 12:00:03  #4  MEP     Demand Reset Occurred (20)  arg=3"
    assert lines[-1] == "2026-11-26 12:01:42  #103  MEP     Demand Reset Occurred (20)  arg=102"
    assert len(reads) == 1 + 1 + 4       # BT71, header, 1400 bytes in 448-byte chunks
    # an optical port at the C12.18 default (64-byte packets): 52-byte reads
    small = history.read_log(lambda t, o, n: m.store.read(t, o, n) if n <= 52 else None, chunk=52)
    assert small == (2, raw)


def test_alternate_log_and_names():
    fw = firmware.Firmware({"keys": {}, "clock": T0 // 1000}, T0)
    m = fw.meter
    events.log(m, 20, 0)
    events.log(m, 2048 + 24, 0, 0xFFFF)           # magnetic tamper: critical
    arg_len, raw = history.read_log(lambda t, o, n: m.store.read(t, o, n), alternate=True)
    lines = history.render(raw, arg_len, _doc(), "ET79")
    assert lines == ["ET79: 1 entry, 1 unread",
                     "2026-11-26 12:00:00  #2  -       Magnetic Tamper (2072)  arg=0"]
    assert history.names(_doc())[9] == "Procedure Invoked"


def test_log_subcommand_parser():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="command")
    history.add_parser(sub)
    a = ap.parse_args(["log", "--port", "/dev/pts/3"])
    assert a.command == "log" and a.optical is False and a.alternate is False
    a = ap.parse_args(["log", "--port", "x", "--optical", "--alternate"])
    assert a.optical is True and a.alternate is True and a.level == "rk"
    a = ap.parse_args(["log", "--port", "x", "--mep", "--key", "01" * 16])
    assert a.optical is False and a.key == b"\x01" * 16
