# Runs the dual-runtime core tests under MicroPython (or CPython).
#
# Every tests/core/test_*.py file is plain Python: module-level functions named
# test_* that use bare asserts, no fixtures. pytest collects the same files on
# CPython; this runner imports them one by one on MicroPython and prints the
# closing line "N passed, N failed". Usage (set up by tests/run_micropython.py):
#   micropython -X heapsize=128K tests/core/mpy_runner.py [module ...]
import sys
import gc

try:
    import os
    _listdir = os.listdir
except ImportError:  # pragma: no cover
    _listdir = None

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."


def _modules(argv):
    if argv:
        return argv
    names = []
    for name in _listdir(HERE):
        if name.startswith("test_") and name.endswith(".py"):
            names.append(name[:-3])
    names.sort()
    return names


def main(argv):
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    passed = failed = 0
    for modname in _modules(argv):
        mod = __import__(modname)
        for name in sorted(dir(mod)):
            if not name.startswith("test_"):
                continue
            fn = getattr(mod, name)
            if not callable(fn):
                continue
            try:
                fn()
                passed += 1
            except Exception as exc:  # report every failure, keep going
                failed += 1
                print("FAIL", modname + "." + name, repr(exc))
                if hasattr(sys, "print_exception"):
                    sys.print_exception(exc)
            gc.collect()
        del sys.modules[modname]
        gc.collect()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


sys.exit(main(sys.argv[1:]))
