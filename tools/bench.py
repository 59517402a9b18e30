"""`osgp-meter bench`: requests per second and bytes per meter, in one process.

What is measured (each throughput sample runs for --seconds; the samples of
all measurements alternate, A B C A B C ..., so that machine noise shows up
as spread rather than as a difference between measurements):

* MEP partial reads through the whole server path of one meter built from
  the default profile: frame bytes in -> MepServer.feed (frame parse, digest
  check, sequence window, table store read, response digest) -> frame out.
  Secured (the default) with plain and RC4-encrypted requests, RC4 through
  the pure-Python core and through `cryptography`; and the unsecured test
  mode (``mep_secure = false``: frames are length + C12 request); and the
  AES security mode (ET04.127 = 2, docs/security-modes.md: AES-128-CCM
  requests and answers), through the pure-Python AES/CCM of the core and
  through `cryptography`'s AESCCM. Requests
  are built before the clock starts, with sequence numbers +1 each, and fed
  with a virtual `now` that advances 100 ms per request (the server takes at
  most one request per 100 ms). They are fed in chunks; between chunks (off
  the clock) the server's sequence number is put back so the same frames can
  be fed again, and the answer and the server's counters are checked.
* Bytes per idle meter instance (tracemalloc growth over N instances built
  after one warm-up instance, so module-level data and shared caches are not
  counted per meter), and the same after each meter answered one request.
* The reference point: the Gurux DLMS server (package `gurux-dlms`, the
  optional extra `bench`), in process, server side only: GET of one
  register's value, logical-name referencing, WRAPPER framing, no security;
  and its bytes per idle server instance.

Numbers are for humans: tests check the structure and that every answer was
verified, never a rate. ``profile_secured()`` profiles the secured loop.
"""
import gc
import json
import platform
import statistics
import sys
import tracemalloc

from osgp_meter import access
from osgp_meter.digest import OmaDigest

# The meter side and the Gurux reference point live in their own modules;
# every name is importable from here too.
from .bench_mep import (CHUNK, READ_COUNT, READ_OFFSET, READ_TABLE, STEP_MS, T0,  # noqa: F401
                        MepCase, VerifyError, _aes_backends, _check, _clock, _expected_answer,
                        _firmware, _frame, _rc4_backends, default_config, read_request,
                        secured_request, verify_secured_answer)
from .bench_gurux import GuruxCase, _gurux_classes, gurux_available  # noqa: F401

ROUNDS = 3                  # samples per measurement
METERS = 200                # instances per memory measurement

TARGET_UNSECURED = 3.0      # x Gurux
TARGET_SECURED = 0.5        # x Gurux
TARGET_BYTES = 16 * 1024    # per idle meter


# ---------------------------------------------------------------------------
# memory
# ---------------------------------------------------------------------------

def bytes_per_instance(make, n=None, top=5):
    """tracemalloc growth per instance over n instances of make(), built
    after one warm-up instance. Returns (bytes per instance, one instance,
    [(source line, bytes per instance), ...] the top allocation sites)."""
    n = METERS if n is None else n
    keep = [None] * n
    one = make()                      # warm-up: caches, interned data, modules
    gc.collect()
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        gc.collect()
        snap0 = tracemalloc.take_snapshot()
        base = tracemalloc.get_traced_memory()[0]
        for i in range(n):
            keep[i] = make()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - base
        snap1 = tracemalloc.take_snapshot()
    finally:
        if not tracing:
            tracemalloc.stop()
    flt = [tracemalloc.Filter(False, tracemalloc.__file__)]
    sites = []
    for stat in snap1.filter_traces(flt).compare_to(snap0.filter_traces(flt), "lineno")[:top]:
        if stat.size_diff <= 0:
            break
        fr = stat.traceback[0]
        sites.append(("%s:%d" % (_short(fr.filename), fr.lineno), stat.size_diff / n))
    del keep
    return grown / n, one, sites


def _short(path):
    for mark in ("/meter/", "/tools/", "/site-packages/"):
        i = path.rfind(mark)
        if i >= 0:
            return path[i + 1:]
    return path


def meter_holds(fw):
    """What one Firmware instance holds of its own (the rest is shared)."""
    store = fw.meter.store
    digests = fw.keys._digests
    return {
        "written_tables": len(store.written),
        "written_bytes": sum(len(w) for w in store.written.values()),
        "image_tables_shared": len(store.image),
        "catalogue_tables_shared": len(store.tables),
        "keys": len(fw.keys.keys),
        "digest_objects": len(digests) if digests else 0,
        "mep_seq": fw.mep.seq,
    }


def measure_memory(config, n=None, gurux=True):
    n = METERS if n is None else n
    out = {}
    # The core meter (the target): default profile, metering off.
    core = dict(config, metering=False)
    per, one, sites = bytes_per_instance(lambda: _firmware(core), n)
    out["meter_idle"] = {"label": "osgp meter core, idle (default profile, metering off)", "instances": n,
                         "bytes_per_instance": round(per), "holds": meter_holds(one),
                         "top_sites": sites, "target": TARGET_BYTES,
                         "meets": per <= TARGET_BYTES}
    # With the time-based subsystems: their tables (registers, self-read
    # list, load-profile blocks) are allocated at boot.
    metering = dict(config, metering=True)
    per, one, sites = bytes_per_instance(lambda: _firmware(metering), n)
    out["meter_metering"] = {"label": "osgp meter with metering, just booted", "instances": n,
                             "bytes_per_instance": round(per), "holds": meter_holds(one),
                             "top_sites": sites}

    # The same after each meter answered one secured read: the MAK digest
    # object is built on first use and ET04 (the mirrored sequence number)
    # gets its own copy.
    probe = _firmware(core)
    c12, count = read_request(probe)
    key = probe.keys.get(access.ROLE_MAK)
    seq = (probe.mep.seq + 1) & 0xFFFFFFFF
    frame, st, _ = secured_request(OmaDigest(key), None, seq, c12, False)
    expected = _expected_answer(config, count)
    verify_secured_answer(probe.mep.feed(frame, T0), st, None, expected)

    def used():
        fw = _firmware(core)
        fw.mep.feed(frame, T0)
        return fw

    per, one, sites = bytes_per_instance(used, n)
    out["meter_after_read"] = {"label": "osgp meter, after one secured read", "instances": n,
                               "bytes_per_instance": round(per), "holds": meter_holds(one),
                               "top_sites": sites}
    if gurux:
        Server = _gurux_classes()[0]
        per, one, sites = bytes_per_instance(Server, n)
        out["gurux_server_idle"] = {"label": "Gurux DLMS server, idle (1 register)", "instances": n,
                                    "bytes_per_instance": round(per), "top_sites": sites}
    return out


# ---------------------------------------------------------------------------
# the whole bench
# ---------------------------------------------------------------------------

def build_cases(config, gurux=True):
    cases = [MepCase("mep_secured_plain", "MEP secured, plain", config)]
    for bname, factory in _rc4_backends():
        cases.append(MepCase("mep_secured_rc4_" + bname, "MEP secured, RC4 (%s)" % bname,
                             config, encrypt=True, backend=(bname, factory)))
    for bname, factory in _aes_backends():
        cases.append(MepCase("mep_aes_" + bname, "MEP AES-CCM mode (%s)" % bname,
                             config, backend=(bname, factory), aes=True))
    cases.append(MepCase("mep_unsecured", "MEP unsecured (test mode)", config, secure=False))
    if gurux:
        cases.append(GuruxCase())
    return cases


def measure(seconds=2.0, rounds=None, gurux=True, meters=None, config=None):
    """Run every measurement; returns the result dict (what --json prints).
    rounds / meters default to ROUNDS / METERS."""
    rounds = ROUNDS if rounds is None else rounds
    meters = METERS if meters is None else meters
    if config is None:
        config = default_config()
    skipped = None
    if gurux:
        skipped = gurux_available()
        if skipped:
            gurux = False
    else:
        skipped = "skipped (--no-gurux)"
    cases = build_cases(config, gurux)
    samples = {c.name: [] for c in cases}
    for _ in range(rounds):              # A B C ... A B C ...
        for c in cases:
            gc.collect()
            samples[c.name].append(c.sample(seconds))
    probe = cases[0]
    result = {
        "runtime": "%s %s" % (sys.implementation.name, platform.python_version()),
        "machine": "%s %s" % (platform.system(), platform.machine()),
        "seconds": seconds,
        "rounds": rounds,
        "read": {"table": "BT%02d" % READ_TABLE, "table_id": READ_TABLE,
                 "offset": READ_OFFSET, "count": probe.count, "c12_request": probe.c12.hex()},
        "gurux": None if skipped else "gurux-dlms WRAPPER, logical names, GET register value",
        "gurux_skipped": skipped,
        "throughput": [],
    }
    ref = None
    if gurux:
        ref = statistics.median(samples["gurux_get_register"])
    for c in cases:
        s = samples[c.name]
        med = statistics.median(s)
        row = {"name": c.name, "label": c.label, "samples": [round(x, 1) for x in s],
               "min": round(min(s), 1), "median": round(med, 1), "max": round(max(s), 1),
               "spread": round((max(s) - min(s)) / med, 3) if med else None,
               "us_per_request": round(1e6 / med, 2) if med else None,
               "requests": c.requests, "verified_chunks": c.verified,
               "verified": c.verified > 0}
        row.update(c.describe())
        target = None
        if c.name.startswith("mep_secured"):
            target = TARGET_SECURED
        elif c.name == "mep_unsecured":
            target = TARGET_UNSECURED
        row["target_x_gurux"] = target
        if ref and c.name != "gurux_get_register":
            row["x_gurux"] = round(med / ref, 3)
            row["x_gurux_min"] = round(min(s) / ref, 3)
            row["meets"] = med / ref >= target if target else None
        else:
            row["x_gurux"] = 1.0 if c.name == "gurux_get_register" else None
            row["meets"] = None
        result["throughput"].append(row)
    result["memory"] = measure_memory(config, meters, gurux)
    return result


def _verdict(meets):
    return "n/a" if meets is None else ("meets" if meets else "misses")


def format_table(res):
    lines = []
    lines.append("osgp-meter bench: %s on %s; %d rounds x %.2f s per measurement, alternating"
                 % (res["runtime"], res["machine"], res["rounds"], res["seconds"]))
    rd = res["read"]
    lines.append("request: MEP partial read %s offset %d count %d (C12 %s), default profile, MAK"
                 % (rd["table"], rd["offset"], rd["count"], rd["c12_request"]))
    if res["gurux_skipped"]:
        lines.append("Gurux reference: %s" % res["gurux_skipped"])
    lines.append("")
    hdr = "%-46s %9s %9s %9s %7s %8s %7s  %s" % (
        "throughput (requests/s)", "median", "min", "max", "noise", "us/req", "xGurux", "target")
    lines.append(hdr)
    lines.append("-" * len(hdr))
    for r in res["throughput"]:
        x = "%.2f" % r["x_gurux"] if r["x_gurux"] is not None else "-"
        tgt = ""
        if r["target_x_gurux"]:
            tgt = ">= %.1fx %s" % (r["target_x_gurux"], _verdict(r["meets"]))
        lines.append("%-46s %9.0f %9.0f %9.0f %6.1f%% %8.1f %7s  %s" % (
            r["label"], r["median"], r["min"], r["max"], 100 * (r["spread"] or 0),
            r["us_per_request"], x, tgt))
    lines.append("(noise = (max - min) / median over the rounds; every chunk's last answer was"
                 " checked, the server counters too)")
    lines.append("")
    mem = res["memory"]
    lines.append("memory (tracemalloc growth / instance, %d instances after one warm-up)"
                 % mem["meter_idle"]["instances"])
    for key in ("meter_idle", "meter_metering", "meter_after_read", "gurux_server_idle"):
        m = mem.get(key)
        if m is None:
            continue
        tgt = ""
        if "target" in m:
            tgt = "target <= %d: %s" % (m["target"], _verdict(m["meets"]))
        lines.append("  %-44s %8d bytes   %s" % (m["label"], m["bytes_per_instance"], tgt))
        if "holds" in m:
            h = m["holds"]
            lines.append("      holds: %d written tables (%d bytes), %d digest objects, %d keys;"
                         " shared: %d image tables, %d catalogue tables"
                         % (h["written_tables"], h["written_bytes"], h["digest_objects"], h["keys"],
                            h["image_tables_shared"], h["catalogue_tables_shared"]))
        if m["top_sites"]:
            lines.append("      top: " + ", ".join("%s %.0f" % s for s in m["top_sites"][:4]))
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# profiling the secured path
# ---------------------------------------------------------------------------

def _us(fn, seconds):
    n = 64
    while True:
        t0 = _clock()
        for _ in range(n):
            fn()
        dt = _clock() - t0
        if dt >= seconds:
            return 1e6 * dt / n
        n *= 2


def secured_stages(seconds=0.2, config=None):
    """The secured plain read taken apart, each stage timed alone (µs per
    call, no profiler overhead): [(stage, µs)], the whole feed() last."""
    if config is None:
        config = default_config()
    case = MepCase("stages", "stages", config)
    whole = 1e6 / case.sample(seconds)
    fw = case.fw
    d = fw.keys.digest(access.ROLE_MAK)
    f = case.frames[0]
    msg = f[2:-8]
    c12 = msg[:-4]
    execute = fw.mep.execute
    resp = execute(c12, access.ROLE_MAK, T0)
    st0 = d.start(msg)

    def response_digest():
        st = st0.copy()
        st.update(resp)
        st.finish()

    return [
        ("request digest check (start + finish_copy)", _us(lambda: d.start(msg).finish_copy(), seconds)),
        ("response digest (continue + finish)", _us(response_digest, seconds)),
        ("C12 partial read (services + store)", _us(lambda: execute(c12, access.ROLE_MAK, T0), seconds)),
        ("sequence mirror into ET04 (on_seq)", _us(lambda: fw._mep_seq_changed(fw.mep.seq), seconds)),
        ("whole MepServer.feed, secured plain", whole),
    ]


def profile_secured(seconds=2.0, encrypt=False, backend=None, top=15, config=None, sort="tottime"):
    """Run the secured MEP loop under cProfile for about `seconds`.

    backend: None (pure-Python RC4) or "cryptography". Returns a dict:
    "rate" (requests/s under the profiler, slower than without it), "top"
    [(function, ncalls, tottime s, share of the total)], and "text" (the
    pstats listing), and "stages": secured_stages() (µs per stage, timed
    without the profiler, which inflates the many small calls)."""
    import cProfile
    import io
    import pstats

    if config is None:
        config = default_config()
    bk = ("pure", None)
    if backend == "cryptography":
        from . import crypto_backend
        bk = ("cryptography", crypto_backend.rc4_factory)
    case = MepCase("profile", "profile", config, encrypt=encrypt, backend=bk)
    case.sample(min(0.05, seconds))           # warm up, verify
    prof = cProfile.Profile()
    prof.enable()
    rate = case.sample(seconds)
    prof.disable()
    buf = io.StringIO()
    st = pstats.Stats(prof, stream=buf)
    st.sort_stats(sort).print_stats(top)
    total = st.total_tt or 1.0
    rows = []
    for (fn, line, func), (cc, nc, tt, ct, callers) in st.stats.items():
        rows.append(("%s:%d(%s)" % (_short(fn), line, func), nc, tt, ct))
    rows.sort(key=lambda r: r[2] if sort == "tottime" else r[3], reverse=True)
    return {"rate": rate, "requests": case.requests,
            "stages": secured_stages(min(0.2, seconds), config),
            "top": [(name, nc, round(tt, 4), round(tt / total, 3)) for name, nc, tt, ct in rows[:top]],
            "text": buf.getvalue()}


def run(args):
    """Entry point of `osgp-meter bench` (mode all / metering / mep; the
    metering measurements are tools/bench_metering.py)."""
    from . import bench_metering
    mode = getattr(args, "mode", "all")
    if mode == "fleet":                 # tools/bench_fleet.py, docs/fleet.md
        from . import bench_fleet
        return bench_fleet.run(args)
    res = {}
    if mode != "metering":
        res = measure(seconds=args.seconds, gurux=not args.no_gurux)
    if mode != "mep":
        res["metering"] = bench_metering.measure(
            quick=getattr(args, "quick", False), meters=getattr(args, "fleet_meters", bench_metering.FLEET_METERS),
            days=getattr(args, "fleet_days", bench_metering.FLEET_DAYS),
            year_days=getattr(args, "year_days", bench_metering.YEAR_DAYS))
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        text = []
        if mode != "metering":
            text.append(format_table(res))
        if "metering" in res:
            text.append("\n".join(bench_metering.format_lines(res["metering"])))
        print("\n\n".join(text))
    return 0
