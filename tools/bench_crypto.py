"""Microbenchmark of the security primitives of the core (digest, RC4, CRC).

    python -m osgp_host.bench_crypto [--seconds 1.0] [--micropython]

It measures what one secured MEP exchange costs in crypto: the OMA digest of
a 12-byte request (finish_copy) continued over a 20-byte response (finish),
and the RC4 of the same exchange (base key known, per-request key schedule,
request then response), with the pure-Python RC4 and with `cryptography`.
``--micropython`` runs the same measurements under the MicroPython unix port
(pure-Python RC4 only). The AES security mode's primitives come last
(docs/security-modes.md): one AES-128 block, AES-CCM sealing and opening of
a 64-byte message (13-byte nonce, 5-byte AAD, 8-byte tag), pure Python and,
on CPython, `cryptography`. Numbers are for humans: no test asserts on them.

This file also runs as a plain script under MicroPython (that is how
``--micropython`` works), so it sticks to the portable subset.
"""
import sys
import time

try:
    _clock = time.perf_counter

    def _elapsed(t0):
        return time.perf_counter() - t0
except AttributeError:  # MicroPython
    _clock = time.ticks_us

    def _elapsed(t0):
        return time.ticks_diff(time.ticks_us(), t0) / 1e6

from osgp_meter import cipher, crc
from osgp_meter.digest import OmaDigest

REQ = bytes.fromhex("3F0017000000002C01020304")                       # 12 bytes
RSP = bytes.fromhex("00000F0102030405060708090A0B0C0D0E0F101112")[:20]  # 20 bytes
MAK = b"\x01" * 16


def rate(fn, seconds):
    """Calls per second of fn(), measured over about `seconds`."""
    n = 1
    while True:
        t0 = _clock()
        for _ in range(n):
            fn()
        dt = _elapsed(t0)
        if dt >= seconds:
            return n / dt
        n = n * 2 if dt < seconds / 8 else int(n * seconds / dt * 1.1) + 1


def cases(key=MAK):
    d = OmaDigest(key)
    base = cipher.mep_base_key(key)
    dg = d.digest(REQ)

    def digest_exchange():
        st = d.start(REQ)
        st.finish_copy()
        st.update(RSP)
        st.finish()

    def digest_oneshot():
        d.digest(REQ)

    def rc4_exchange():
        c = cipher.mep_cipher(base, dg)
        c.crypt(REQ)
        c.crypt(RSP)

    def crypto_exchange():
        # server side of an encrypted request: key from the clear digest,
        # decrypt, digest + verify, digest the response, encrypt it
        c = cipher.mep_cipher(base, dg)
        st = d.start(c.crypt(REQ))
        st.finish_copy()
        st.update(RSP)
        st.finish()
        c.crypt(RSP)

    def crc_frame():
        crc.crc16_x25(REQ + RSP)

    return [
        ("digest 12 B one-shot (192 steps)", digest_oneshot),
        ("digest exchange 12 B req + 20 B rsp stream", digest_exchange),
        ("RC4 exchange (key schedule + 12 B + 20 B)", rc4_exchange),
        ("secured exchange, crypto only (RC4 + 2 digests)", crypto_exchange),
        ("CRC-16/X-25 of 32 B", crc_frame),
    ]


def aes_cases():
    """The AES mode's costs: one block, CCM seal / open of 64 bytes."""
    from osgp_meter import aes
    key = bytes(range(16))
    rks = aes.expand_key(key)
    c = cipher.new_aes_ccm(key)
    nonce = bytes(13)
    aad = REQ[:1] + REQ[-4:]
    msg = bytes(range(64))
    sealed = c.encrypt(nonce, msg, aad)

    def block():
        aes.encrypt_block(rks, msg[:16])

    def seal():
        c.encrypt(nonce, msg, aad)

    def open_():
        c.decrypt(nonce, sealed, aad)

    return [
        ("AES-128 block (pure Python)", block),
        ("AES-CCM seal 64 B", seal),
        ("AES-CCM open 64 B", open_),
    ]


def run_aes(seconds=1.0, out=print):
    backends = [("pure-Python AES-CCM", None)]
    if sys.implementation.name != "micropython":
        try:
            from osgp_host import crypto_backend
            backends.append(("cryptography AES-CCM", crypto_backend.aes_ccm_factory))
        except ImportError:  # pragma: no cover
            pass
    for label, factory in backends:
        old = cipher.set_aes_backend(factory)
        try:
            out("-- %s" % label)
            for name, fn in aes_cases():
                if factory is not None and "CCM" not in name:
                    continue
                r = rate(fn, seconds)
                out("%-50s %10.0f /s %8.1f us" % (name, r, 1e6 / r))
        finally:
            cipher.set_aes_backend(old)


def run(seconds=1.0, out=print):
    impl = sys.implementation.name
    backends = [("pure-Python RC4", None)]
    if impl != "micropython":
        try:
            from osgp_host import crypto_backend
            backends.append(("cryptography RC4", crypto_backend.rc4_factory))
        except ImportError:  # pragma: no cover
            pass
    out("runtime: %s %s" % (impl, sys.version.split()[0]))
    for label, factory in backends:
        old = cipher.set_rc4_backend(factory)
        try:
            out("-- %s" % label)
            for name, fn in cases():
                if factory is not None and "RC4" not in name:
                    continue
                out("%-50s %10.0f /s" % (name, rate(fn, seconds)))
        finally:
            cipher.set_rc4_backend(old)
    run_aes(seconds, out)


def _run_micropython(seconds):
    import os
    import shutil
    import subprocess
    import tempfile

    exe = shutil.which("micropython")
    if exe is None:
        sys.exit("micropython not found")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as tmp:
        os.symlink(os.path.join(root, "meter"), os.path.join(tmp, "osgp_meter"))
        env = dict(os.environ, MICROPYPATH=tmp + ":.frozen")
        cmd = [exe, "-X", "heapsize=128K", os.path.abspath(__file__), repr(seconds)]
        return subprocess.call(cmd, env=env)


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    ap.add_argument("--micropython", action="store_true", help="run under the MicroPython unix port")
    args = ap.parse_args(argv)
    if args.micropython:
        return _run_micropython(args.seconds)
    run(args.seconds)
    return 0


if __name__ == "__main__":
    if sys.implementation.name == "micropython":   # started by --micropython
        run(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0)
    else:
        sys.exit(main())
