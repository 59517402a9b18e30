"""How much heap the default meter needs on MicroPython.

Runs tests/core/mpy_soak.py (boot the default meter, answer N secured MEP
reads) under the MicroPython unix port with `-X heapsize=…`, and bisects the
smallest heap (in 1 KB steps) at which it passes.

    python -m osgp_host.mpy_heap [--reads 1000] [--low 8] [--high 256]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _layout(tmp):
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import run_micropython
    run_micropython.layout(tmp)


def soak(heap_kb, reads, tmp):
    env = dict(os.environ, MICROPYPATH=tmp + ":.frozen")
    proc = subprocess.run([shutil.which("micropython"), "-X", "heapsize=%dK" % heap_kb,
                           os.path.join(ROOT, "tests", "core", "mpy_soak.py"), str(reads)],
                          env=env, capture_output=True, text=True, timeout=600)
    ok = proc.returncode == 0 and proc.stdout.startswith("soak:")
    return ok, (proc.stdout + proc.stderr).strip().splitlines()[-1:]


def smallest_heap(reads=1000, low=8, high=256):
    with tempfile.TemporaryDirectory() as tmp:
        _layout(tmp)
        ok, line = soak(high, reads, tmp)
        if not ok:
            raise RuntimeError("fails even with %d KB: %s" % (high, line))
        best = (high, line)
        while low < high:
            mid = (low + high) // 2
            ok, line = soak(mid, reads, tmp)
            if ok:
                high = mid
                best = (mid, line)
            else:
                low = mid + 1
        return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reads", type=int, default=1000)
    ap.add_argument("--low", type=int, default=8)
    ap.add_argument("--high", type=int, default=256)
    args = ap.parse_args(argv)
    kb, line = smallest_heap(args.reads, args.low, args.high)
    print("smallest heap: %d KB (%s)" % (kb, line[0] if line else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
