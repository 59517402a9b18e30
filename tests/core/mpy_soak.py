# Boot the default meter and answer N secured MEP partial reads, checking every
# answer's digest. Runs under MicroPython (the heap measurement) and CPython:
#   micropython -X heapsize=128K tests/core/mpy_soak.py [N]
# Prints one line: "soak: N reads ok, boot heap B, peak heap P, free F".
import sys
import gc

from osgp_meter import access
from osgp_meter.firmware import Firmware
from osgp_meter.digest import OmaDigest

MAK = bytes([1] * 16)
T0 = 1_790_000_000_000


def mem():
    try:
        return gc.mem_alloc(), gc.mem_free()
    except AttributeError:   # CPython
        return 0, 0


def main(n):
    gc.collect()
    base = mem()[0]
    # The built-in profile's keys (tools/default_profile.toml), without TOML.
    config = {"keys": {access.ROLE_MAK: MAK, access.ROLE_MBK: bytes([2] * 16)},
              "mep_seq": 1000, "clock": T0 // 1000}
    fw = Firmware(config, T0)
    gc.collect()
    boot = mem()[0] - base
    digest = OmaDigest(MAK)
    peak = boot
    now = T0
    for i in range(n):
        seq = 1001 + i
        msg = bytes((0x3F, 0x00, 0x01, 0, 0, 0, 0, 32)) + seq.to_bytes(4, "big")
        st = digest.start(msg)
        frame = bytes((0, len(msg) + 8)) + msg + st.finish_copy()
        now += 100
        out = fw.mep.feed(frame, now)
        payload = out[2:-8]
        st.update(payload)
        if st.finish() != out[-8:] or payload[:3] != b"\x00\x00\x20":
            raise AssertionError("bad answer to read %d: %s" % (i, out))
        if i % 100 == 0:
            used = mem()[0] - base
            if used > peak:
                peak = used
    gc.collect()
    alloc, free = mem()
    print("soak: %d reads ok, boot heap %d, peak heap %d, free %d" % (n, boot, peak, free))


main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
