"""The board in the loop, without hardware: board/main.py, unchanged, runs
under the MicroPython unix port with tests/board/machine.py, its UARTs on
pseudo-terminals. Its PLC UART talks Layer-2 MIP to the emulated PLC modem
(tools/modem.py) on the virtual channel, where a data concentrator
discovers, commissions and reads it like a virtual meter; a MEP client
reads it on its other UART; a SIGKILL in the middle of a MEP write loop
loses no acknowledged write; the service-pin button sends the 14908-1
service-pin message.

The channel runs paced at real time (the board lives on the wall clock)."""
import random
import shutil
import threading

import pytest

from osgp_meter import lontalk as L
from osgp_host import ports
from osgp_host.board_loop import BoardProcess, MasterPort, device_profile
from osgp_host.channel import Channel
from osgp_host.dc_topology import Discovery, make_fleet
from osgp_host.mep_client import MepClient, MepError
from osgp_host.modem import Modem
from osgp_host.topology import Topology

pytestmark = pytest.mark.skipif(shutil.which("micropython") is None,
                                reason="needs the MicroPython unix port")

BOARD_NID = bytes.fromhex("00e0b0a4d001")
MAK = bytes([1] * 16)
BT06 = 6
SLOTS = 20                   # BT06 is 80 bytes: 20 four-byte slots


def paced(channel, speed=1.0):
    """Make every channel.run (the DC's and discovery's) run paced: the
    modem's serial side is polled only then, and the board lives in wall time."""
    run = channel.run

    def run_paced(until_ms=None, for_ms=None, speed_=None, max_events=None, **kw):
        return run(until_ms=until_ms, for_ms=for_ms, speed=speed, max_events=max_events)
    channel.run = run_paced


def bt01(body):
    assert body[0] == 0 and (body[1] << 8 | body[2]) == 24
    return body[3:27]


def test_board_discovered_commissioned_read_and_reset_loses_nothing(tmp_path):
    ch = Channel(Topology.named("small"))
    fleet = make_fleet(ch, ids=["m001"])              # a virtual meter beside the board
    pty = ports.PtyPort()
    modem = Modem(ch, "m003", pty)                    # the board's PLC modem at m003
    mep = MasterPort(timeout=0.6)
    profile = device_profile("pico", neuron_id=BOARD_NID)
    board = BoardProcess(str(tmp_path / "board"), plc_tty=pty.name, mep_tty=mep.name,
                         profile=profile)
    paced(ch)
    try:
        board.start()
        # -- discovered and commissioned over the virtual PLC -------------------------
        names = dict(fleet.names)
        names[BOARD_NID] = "board"
        disc = Discovery(ch, names=names, book=fleet.book)
        for _ in range(4):
            disc.discover_round(window=8)
            if BOARD_NID in disc.topology.meters and len(disc.topology.meters) == 2:
                break
        assert BOARD_NID in disc.topology.meters, board.text()
        disc.commission_ready(accept_weak=True)
        info = disc.topology.meters[BOARD_NID]
        assert info.commissioned and (info.subnet, info.node) != (None, None)
        # -- read over PLC with the key the commissioning gave it ---------------------
        want = bytes.fromhex(profile["meter"]["image"]["1"])
        assert bt01(disc.osgp_request(BOARD_NID, bytes.fromhex("300001"))) == want
        et04 = disc.osgp_request(BOARD_NID, bytes.fromhex("3f 0804 000004 0006"))
        assert et04[3:9] == BOARD_NID
        m001 = fleet.nids["m001"]
        assert disc.osgp_request(m001, bytes.fromhex("300001"))[0] == 0   # like any other
        assert modem.stats["down"] >= 3 and modem.stats["local"] >= 1
        # -- read over MEP --------------------------------------------------------------
        client = MepClient(mep, MAK, seq=None, retries=1)
        assert client.read(1) == want
        # -- a reset in the middle of a MEP write loop ------------------------------------
        acked = {}                    # slot -> last acknowledged value
        inflight = {}
        # The kill comes at a random moment once three writes are acknowledged
        # (counting from there, not from the start, keeps a loaded machine's
        # slower writes from making the test about timing).
        killer = threading.Timer(random.uniform(0.0, 1.0), board.kill)
        i = 0
        failed = 0
        while failed == 0 and i < 200:
            i += 1
            slot = i % SLOTS
            inflight = {slot: i}
            try:
                client.write(BT06, i.to_bytes(4, "little"), offset=4 * slot)
            except MepError:
                failed += 1
                break
            acked[slot] = i
            inflight = {}
            if len(acked) == 3 and not killer.is_alive() and not killer.finished.is_set():
                killer.start()
        if not killer.finished.is_set() and not killer.is_alive():
            killer.start()          # never reached three writes: kill now, the assert says why
        killer.join()
        assert failed and len(acked) >= 3, "the kill came too late: %d writes" % i
        board.start()                                  # the board boots again from flash
        mep.flush_input()
        data = client.read(BT06)
        for slot, value in acked.items():
            got = int.from_bytes(data[4 * slot:4 * slot + 4], "little")
            assert got == value or inflight.get(slot) == got, (slot, value, got)
        # the commissioning (address, keys, sequence numbers) survived too
        assert bt01(disc.osgp_request(BOARD_NID, bytes.fromhex("300001"))) == want
        # -- the service-pin button -----------------------------------------------------------
        seen = []

        def tracer(ev):
            if ev.kind == "tx" and ev.src == "m003":
                try:
                    f = L.decode(ev.frame)
                except L.FrameError:
                    return
                if f.apdu[:1] == b"\x7f":
                    seen.append(f.apdu)
        ch.add_tracer(tracer)
        board.set_button(True)
        ch.run(for_ms=400)
        board.set_button(False)
        ch.run(for_ms=800)
        assert len(seen) == 1 and seen[0][1:7] == BOARD_NID
        assert "Traceback" not in board.text() and "WDT" not in board.text()
    finally:
        board.kill()
        mep.close()
        pty.close()


# -- the board's modules on CPython (they are MicroPython-clean, and plain
#    Python runs them too) -------------------------------------------------------------

def _board_module(name):
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "board", name + ".py")
    spec = importlib.util.spec_from_file_location("board_" + name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _firmware(config=None):
    from osgp_meter.firmware import Firmware
    from osgp_host import profile as profiles
    cfg = dict(profiles.load_config(), metering=False, plc=False)
    cfg.update(config or {})
    return Firmware(cfg, 1_790_000_000_000)


def _nv(tmp_path, limit=16384):
    """Boot a Firmware from the flash directory as board/main.py does."""
    import sys
    sys.modules.setdefault("flashstore", _board_module("flashstore"))
    nvstate = _board_module("nvstate")
    store = sys.modules["flashstore"].FlashStore(str(tmp_path / "nv"), limit)
    box = []

    def restore(fw):
        box.append(nvstate.NvState(fw, store, every_ms=60000))
        box[0].restore(0)
    fw = _firmware({"restore": restore})
    nv = box[0]
    nv.start(0)
    return fw, store, nv


def test_flash_commits_only_changes_and_nothing_when_nothing_changed(tmp_path):
    fw, store, nv = _nv(tmp_path)
    writes = store.writes
    assert nv.commit(1, True) == 0 and store.writes == writes       # nothing changed
    fw.meter.store.write(BT06, 8, b"\x11\x22")
    n = nv.commit(2, True)
    assert 0 < n < 40 and store.writes == writes + 1                # two bytes, not the table
    assert nv.commit(3, True) == 0
    fw.mep.seq += 1
    assert 0 < nv.commit(4, True) < 40                              # the meta part only
    # a fresh boot from the same flash has it all
    fw2, _, nv2 = _nv(tmp_path)
    assert fw2.meter.store.read(BT06, 8, 2) == b"\x11\x22" and fw2.mep.seq == fw.mep.seq
    # tick-only commits wait for every_ms; answers never wait
    fw2.meter.store.write(BT06, 0, b"\x01")
    assert nv2.commit(10, False) == 0 and nv2.commit(60001, False) > 0
    fw2.meter.store.write(BT06, 0, b"\x02")
    assert nv2.commit(60002, False) == 0 and nv2.commit(60003, True) > 0


def test_flash_torn_record_is_ignored_and_the_log_compacts(tmp_path):
    import os
    fw, store, nv = _nv(tmp_path)
    fw.meter.store.write(BT06, 0, b"\xAA")
    nv.commit(1, True)
    log = str(tmp_path / "nv" / "log")
    good = os.path.getsize(log)
    fw.meter.store.write(BT06, 1, b"\xBB")
    nv.commit(2, True)
    with open(log, "r+b") as f:                   # a reset in the middle of the append
        f.truncate(good + 7)
    fw2, store2, nv2 = _nv(tmp_path)
    assert fw2.meter.store.read(BT06, 0, 2) == b"\xAA\x00"
    assert not store2.torn and os.path.getsize(log) == store2.size    # compacted at boot
    # the torn tail was replaced by a snapshot at boot: appends are reachable again
    fw2.meter.store.write(BT06, 2, b"\xCC")
    nv2.commit(3, True)
    fw3, _, _ = _nv(tmp_path)
    assert fw3.meter.store.read(BT06, 0, 3) == b"\xAA\x00\xCC"


def test_flash_log_is_compacted_past_its_limit(tmp_path):
    import os
    fw, store, nv = _nv(tmp_path, limit=600)
    for i in range(40):
        fw.meter.store.write(BT06, i, bytes((i + 1,)))
        nv.commit(i, True)
        assert os.path.getsize(str(tmp_path / "nv" / "log")) < 600 + 200
    assert not os.path.exists(str(tmp_path / "nv" / "new"))
    fw2, _, _ = _nv(tmp_path, limit=600)
    assert fw2.meter.store.read(BT06, 0, 40) == bytes(range(1, 41))


def test_flash_keeps_keys_installed_by_commissioning(tmp_path):
    from osgp_meter import access
    fw, store, nv = _nv(tmp_path)
    fw.keys.set(access.ROLE_PLC, bytes(range(12)))
    nv.commit(1, True)
    fw2, _, _ = _nv(tmp_path)
    assert fw2.keys.get(access.ROLE_PLC) == bytes(range(12))


def test_device_profile_round_trip_and_presets():
    import json
    from osgp_host import profile as profiles
    from osgp_host.board_loop import device_profile, board_files, preset
    devprofile = _board_module("devprofile")
    for name in ("pico", "esp32"):
        doc = json.loads(json.dumps(device_profile(name, neuron_id=BOARD_NID)))
        b = doc["board"]
        assert {"plc", "mep", "led", "button", "wdt_ms"} <= set(b)
        assert b["plc"]["uart"] != b["mep"]["uart"]
        cfg = devprofile.meter_config(doc["meter"])
        want = profiles.load_config()
        want.pop("clock")
        for k, v in want.items():
            assert cfg[k] == v, k
        assert cfg["neuron_id"] == BOARD_NID
        assert preset(name)["board"]["name"] == name
    assert preset("pico")["board"]["led"] == "LED" and preset("esp32")["board"]["led"] == 2
    files = board_files()
    assert files[0] == "main.py"
    import os
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    assert all(os.path.exists(os.path.join(root, "board", f)) for f in files)


def test_status_led_and_debounced_button():
    import sys
    import types
    pins = {}

    class Pin:
        IN, OUT, PULL_UP = 0, 1, 1

        def __init__(self, id, mode=-1, pull=-1):
            self.id, self.v = id, 1
            pins[id] = self

        def value(self, v=None):
            if v is None:
                return self.v
            self.v = v
    sys.modules["machine"] = types.SimpleNamespace(Pin=Pin)
    try:
        status = _board_module("status")
    finally:
        del sys.modules["machine"]
    s = status.Status({"led": "LED", "button": 15, "button_active": 0}, 0)
    assert pins["LED"].v == 1                              # booting: on
    s.state = status.FRESH
    s.update(100)
    assert pins["LED"].v == 1
    s.update(600)
    assert pins["LED"].v == 0                              # 1 Hz
    b = pins[15]
    presses = []
    t = 1000
    for level in (0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 1):   # bounces
        b.v = level
        t += 10
        presses.append(s.update(t))
    assert presses.count(True) == 1


def test_a_failed_flash_write_is_not_acknowledged_and_the_next_commit_repairs(tmp_path):
    import os
    fw, store, nv = _nv(tmp_path)
    fw.meter.store.write(BT06, 0, b"\x01")
    log = str(tmp_path / "nv" / "log")
    real_open = open

    def full(path, mode="r", *a, **k):          # the flash fills up halfway through
        f = real_open(path, mode, *a, **k)
        if "a" in mode:
            w = f.write
            f.write = lambda b: (w(b[:5]), (_ for _ in ()).throw(OSError(28, "no space")))
        return f
    import builtins
    builtins.open = full
    try:
        try:
            nv.commit(1, True)
            assert False, "the commit must fail"
        except OSError:
            pass
    finally:
        builtins.open = real_open
    assert store.torn and fw.meter.store.dirty          # nothing counted as committed
    assert nv.commit(2, True) > 0 and not store.torn   # a snapshot replaces the log
    fw2, _, _ = _nv(tmp_path)
    assert fw2.meter.store.read(BT06, 0, 1) == b"\x01" and os.path.getsize(log) > 0
