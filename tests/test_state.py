"""A meter's state directory (tools/state.py, docs/persistence.md): snapshot
plus append-only journal, torn tails cut off, compaction by
write-temp-and-rename and what a cut in its middle leaves, the session-1
JSON format, the lock; commits restore exactly the live non-volatile state
(property test, and a metering meter over a day); `serve --state` killed
with SIGKILL right after answering keeps what it acknowledged."""
import json
import os
import re
import signal
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from osgp_meter import nvlog, persist
from osgp_meter import catalogue as cat
from osgp_meter.firmware import Firmware
from osgp_host import state as states
from osgp_host.state import StateDir, StateError

T0 = 1_790_000_000_000
BT05, BT06 = 5, 6
ET03 = 2048 + 3
ET04 = 2048 + 4


def fw(**kw):
    return Firmware(dict({"mep_secure": False}, **kw), T0)


def nv_state(f):
    s = f.meter.store
    out = {t: bytes(w) for t, w in s.written.items() if s.tables[t][cat.T_FLAGS] & cat.F_NV}
    for name, (get, put) in (f.meter.nv_parts or {}).items():
        out[name] = bytes(get())
    out["_meta"] = persist.meta_bytes(f)
    return out


def reopened(d):
    back = fw()
    sd = StateDir(d)
    assert sd.open(back)
    sd.close()
    return back


def some_commits(f, n=20, start=0):
    for i in range(start, start + n):
        f.meter.store.write((BT05, BT06, ET03)[i % 3], (i * 7) % 9, bytes((i & 255,)) * (1 + i % 5))
        if i % 4 == 0:
            f.mep.seq += 1
        f.commit()


def test_every_commit_survives_a_reopen(tmp_path):
    d = str(tmp_path / "s")
    live = fw()
    sd = StateDir(d)
    assert sd.open(live) is False            # a new directory: the first snapshot
    assert sorted(os.listdir(d)) == ["journal.nv", "snapshot.nv"]
    some_commits(live)
    live.meter.clock_offset = -123456
    live.meter.last_psn = 42
    live.commit()
    assert sd.stats["commits"] == 21
    sd.close()
    back = reopened(d)
    assert nv_state(back) == nv_state(live)
    assert back.meter.clock_offset == -123456 and back.meter.last_psn == 42


def test_a_commit_writes_only_what_changed(tmp_path):
    live = fw()
    sd = StateDir(str(tmp_path / "s"))
    sd.open(live)
    live.commit()
    before = sd.size
    live.meter.store.write(BT06, 10, b"\x01\x02\x03")
    assert live.commit() == 18                # one entry: 15 + 3 bytes
    assert sd.size - before == 12 + 18 + 4    # header, payload, CRC
    assert live.commit() == 0 and sd.size - before == 34
    sd.close()


def test_a_torn_last_record_is_ignored_and_cut_off(tmp_path):
    d = str(tmp_path / "s")
    live = fw()
    sd = StateDir(d)
    sd.open(live)
    some_commits(live, 5)
    want = nv_state(live)
    size = sd.size
    sd.close()
    rec = nvlog.record(nvlog.K_COMMIT, 6, nvlog.table_entry(BT05, 10, 0, b"torn!"))
    with open(os.path.join(d, states.JOURNAL), "ab") as f:
        f.write(rec[:len(rec) - 3])           # the cut came before the last bytes
    back = fw()
    sd = StateDir(d)
    sd.open(back)
    assert nv_state(back) == want
    assert sd.stats["torn_bytes"] == len(rec) - 3
    assert os.path.getsize(os.path.join(d, states.JOURNAL)) == size
    some_commits(back, 3, 100)                # appended after the good records: loaded next time
    want = nv_state(back)
    sd.close()
    assert nv_state(reopened(d)) == want


def test_garbage_after_the_journal_is_ignored(tmp_path):
    d = str(tmp_path / "s")
    live = fw()
    sd = StateDir(d)
    sd.open(live)
    some_commits(live, 3)
    want = nv_state(live)
    sd.close()
    with open(os.path.join(d, states.JOURNAL), "ab") as f:
        f.write(bytes(100))                   # a file system that extended the file with zeros
    assert nv_state(reopened(d)) == want


def test_compaction_bounds_the_journal(tmp_path):
    d = str(tmp_path / "s")
    live = fw()
    sd = StateDir(d, journal_max=600)
    sd.open(live)
    some_commits(live, 200)
    assert sd.stats["compactions"] >= 5
    assert sd.size <= 600 + 100
    assert not os.path.exists(os.path.join(d, states.SNAPSHOT + ".tmp"))
    sd.close()
    assert nv_state(reopened(d)) == nv_state(live)


class Cut(Exception):
    pass


@pytest.mark.parametrize("stage", ["snapshot", "rename", "truncate"])
def test_a_cut_in_the_middle_of_a_compaction_loses_nothing(tmp_path, stage):
    d = str(tmp_path / "s")
    live = fw()

    def crash(st, fd, data):
        if st == stage:
            if fd is not None:
                os.write(fd, data[:len(data) // 2])
            raise Cut()
    sd = StateDir(d, journal_max=300)
    sd.open(live)
    sd.crash = crash
    with pytest.raises(Cut):
        some_commits(live, 50)
    # the commit that triggered the compaction was durable before it began
    want = nv_state(live)
    sd.close()
    back = fw()
    sd = StateDir(d)
    sd.open(back)
    assert nv_state(back) == want
    if stage == "truncate":                   # the new snapshot holds the journal's records
        assert sd.stats["stale_records"] > 0 and sd.stats["loaded_records"] == 0
    sd.close()


def test_a_second_process_on_the_same_directory_is_refused(tmp_path):
    d = str(tmp_path / "s")
    sd = StateDir(d)
    sd.open(fw())
    with pytest.raises(StateError, match="in use"):
        StateDir(d).open(fw())
    sd.close()
    StateDir(d).open(fw())                    # free again


def test_a_corrupt_snapshot_is_an_error_not_a_silent_reset(tmp_path):
    d = str(tmp_path / "s")
    sd = StateDir(d)
    sd.open(fw())
    sd.close()
    p = os.path.join(d, states.SNAPSHOT)
    b = bytearray(open(p, "rb").read())
    b[14] ^= 1
    open(p, "wb").write(bytes(b))
    with pytest.raises(StateError, match="corrupt"):
        StateDir(d).open(fw())


def test_the_session_1_json_state_is_migrated(tmp_path):
    d = tmp_path / "s"
    d.mkdir()
    (d / "meter-state.json").write_text(json.dumps({
        "version": 1, "tables": {"6": "41424344"}, "mep_seq": 777,
        "clock_offset_ms": -5000, "last_psn": 9}))
    assert states.exists(str(d))
    back = fw()
    sd = StateDir(str(d))
    assert sd.open(back) is True
    assert bytes(back.meter.store.read(BT06, 0, 4)) == b"ABCD"
    assert (back.mep.seq, back.meter.clock_offset, back.meter.last_psn) == (777, -5000, 9)
    sd.close()
    assert not (d / "meter-state.json").exists() and (d / "meter-state.json.migrated").exists()
    again = reopened(str(d))
    assert nv_state(again) == nv_state(back)


def test_whole_state_save_and_load(tmp_path):
    d = str(tmp_path / "s")
    live = fw()
    live.meter.store.write(BT06, 0, b"xyz")
    states.save(live, d)
    back = fw()
    assert states.load(back, d) is True
    assert nv_state(back) == nv_state(live)
    assert back.nv is None and back.meter.store.dirty is None     # no tracking left behind
    assert states.load(fw(), str(tmp_path / "none")) is False


# -- commits restore exactly what the meter holds -----------------------------------------

OPS = st.one_of(
    st.tuples(st.just("w"), st.sampled_from([BT05, BT06, ET03, ET04]), st.integers(0, 140),
              st.binary(min_size=0, max_size=40)),
    # BT21 sizes BT22..BT27: tables grow and shrink under their written bytes
    st.tuples(st.just("w"), st.just(21), st.integers(0, 9), st.binary(min_size=1, max_size=1)
              .map(lambda b: bytes((b[0] % 12,)))),
    st.tuples(st.just("w"), st.sampled_from([22, 23]), st.integers(0, 200),
              st.binary(min_size=0, max_size=40)),
    st.tuples(st.just("reset"), st.sampled_from([BT05, BT06, ET03, ET04, 21, 23])),
    st.tuples(st.just("clear")),
    st.tuples(st.just("part"), st.binary(max_size=30)),
    st.tuples(st.just("meta"), st.integers(0, 2 ** 32 - 1), st.integers(-2 ** 40, 2 ** 40)),
    st.tuples(st.just("commit")),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(OPS, max_size=40))
def test_replayed_commits_equal_the_live_state(ops):
    box = {"v": b""}

    def build():
        f = fw()
        f.meter.nv_part("test", lambda: box["v"], lambda b: box.__setitem__("v", bytes(b)))
        return f
    live = build()
    log = []
    persist.attach(live, log.append)
    snap = live.nv.snapshot()
    live.nv.loaded()
    s = live.meter.store
    for op in ops:
        if op[0] == "w":
            s.write(op[1], op[2], op[3])
        elif op[0] == "reset":
            s.reset(op[1])
        elif op[0] == "clear":
            s.clear()
        elif op[0] == "part":
            box["v"] = op[1]
        elif op[0] == "meta":
            live.mep.seq = op[1]
            live.meter.clock_offset = op[2]
        else:
            live.commit()
    live.commit()
    want = nv_state(live)
    kept = box["v"]
    box["v"] = b"garbage"
    back = build()
    persist.attach(back, None)
    back.nv.apply(snap, True)
    for p in log:
        back.nv.apply(p)
    back.nv.loaded()
    assert box["v"] == kept
    assert nv_state(back) == want


def test_a_metering_meter_restores_exactly_after_any_commit(tmp_path):
    # metrology changes its registers in place (store.own): every commit of
    # a day of ticks, reloaded, is the live state
    d = str(tmp_path / "s")
    live = Firmware({"mep_secure": False, "metering": True, "clock": T0 // 1000}, T0)
    sd = StateDir(d, fsync=False, journal_max=64 * 1024)
    sd.open(live)
    live.commit()
    now = T0
    checked = 0
    for step in range(96):
        now += 900_000
        live.tick(now)
        live.commit()
        if step % 16 == 5:
            back = Firmware({"mep_secure": False}, T0)
            StateDir(d).peek(back)
            assert nv_state(back) == nv_state(live), step
            checked += 1
    assert checked == 6 and sd.stats["commits"] >= 96
    sd.close()


# -- serve --state, killed ---------------------------------------------------------------

def test_serve_killed_right_after_answering_keeps_the_write(tmp_path):
    profile = tmp_path / "p.toml"
    profile.write_text("")
    state = str(tmp_path / "state")

    def start():
        proc = subprocess.Popen([sys.executable, "-m", "osgp_host.cli", "serve", "--profile",
                                 str(profile), "--optical", "", "--state", state],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        m = re.fullmatch(r"mep: (/dev/pts/\d+)\n", line)
        assert m, (line, proc.stderr.read() if proc.poll() is not None else "")
        return proc, m.group(1)

    def cli(*args):
        r = subprocess.run([sys.executable, "-m", "osgp_host.cli", *args], capture_output=True,
                           text=True, timeout=60)
        return r.returncode, r.stdout, r.stderr

    proc, mep = start()
    try:
        rc, out, err = cli("mep", "--port", mep, "write", "ET03", "5a5b5c")
        assert rc == 0, err
    finally:
        proc.send_signal(signal.SIGKILL)      # no clean stop: a power cut
        proc.wait()
    proc, mep = start()
    try:
        rc, out, err = cli("mep", "--port", mep, "read", "ET03", "--offset", "0", "--count", "3",
                           "--raw")
        assert rc == 0 and "5a 5b 5c" in out, (out, err)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()
