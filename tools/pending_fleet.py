"""One pending TOU calendar for a whole fleet, active in the same second.

The data concentrator of every transformer area stages a new BT54 calendar
in each of its meters' pending copy (table 4150) with an absolute-UTC PED,
in 75-byte partial writes over the virtual PLC channel (69 calendar bytes
each after the 6-byte PED). Then the fleet runs past the activation time,
and the DCs read back from every meter, over the channel: BT54 (the new
calendar), BT04 (last activation, still-pending bits) and the newest event
28 "pending table activated" of its history log (BT74). See
docs/pending-tables.md.

    osgp-meter pending-fleet [--meters 1000] [--per-transformer 250]
                                      [--seed 1] [--metering on|off] [--json]

Exit status 0 when every meter activated in the same second and the DC read
the new calendar from all of them, 1 otherwise.
"""
import argparse
import json
import sys
import time

from osgp_meter import calendar as cal
from osgp_meter import clock
from osgp_meter import pending

BT04 = 4
BT50 = 50
BT54 = 54
BT71 = 71
BT74 = 74
PED_LEN = 6
EV_ACTIVATED = 28


class StageError(Exception):
    pass


def new_calendar(bt50, tiers=4, cal_id=2027):
    """A BT54 image for the dimensions `bt50` (the meter's BT50 bytes): one
    season, one day schedule for every day: tier 0 from 00:00, 1 from 07:00,
    2 from 17:00, 1 from 21:00 (emulator test calendar), calendar ID
    `cal_id`. Checked with the firmware's own calendar check."""
    dims = cal.Dims(bytes(bt50))
    out = bytearray(dims.size)
    at = 3 * (dims.nonrec + dims.rec)
    for tier, hh in ((0, 0), (1, 7), (min(2, tiers - 1), 17), (1, 21))[:dims.switches]:
        out[at:at + 3] = cal.encode_switch(tier, hh, 0, 0)
        at += 3
    # season 0: day schedule 0 for every day type; unused seasons: 0xFF
    at = 3 * (dims.nonrec + dims.rec + dims.switches)
    for s in range(dims.seasons):
        out[at:at + dims.day_len] = bytes((0 if s == 0 else cal.NO_SCHEDULE,) * dims.day_len)
        at += dims.day_len
    out[dims.size - 4:] = cal_id.to_bytes(4, "little")
    why = cal.check(out, dims, tiers)
    if why:
        raise ValueError("test calendar: %s" % why)
    return bytes(out)


def stage(dc, meter, tid, ped, image, max_write=None, offset=0):
    """Write `image` into table tid's pending copy with `ped`, in partial
    writes (0x4F) of max_write bytes including the PED; the offsets are the
    table's (from `offset`). Returns the number of requests. Also used by
    `osgp-meter dc write --pending` (tools/dc_life.py)."""
    max_write = max_write or dc.max_write
    step = max_write - PED_LEN
    n = 0
    for rel in range(0, len(image), step):
        chunk = image[rel:rel + step]
        off = offset + rel
        body = ped + chunk
        req = bytes((0x4F, (tid + 4096) >> 8, (tid + 4096) & 0xFF,
                     off >> 16, (off >> 8) & 0xFF, off & 0xFF,
                     len(body) >> 8, len(body) & 0xFF)) + body
        answer = dc.request(meter, req)
        n += 1
        if answer[:1] != b"\x00":
            err = StageError("%s: pending write at offset %d answered %s"
                             % (meter, off, answer.hex()))
            err.code = answer[0]
            raise err
    return n


def bt04_status(raw, n_std, n_mfg):
    """(last activation UTC seconds or None, number of records, still-pending
    table IDs) from BT04 bytes."""
    at = n_std + n_mfg
    last = pending.decode_stime(raw, at) if raw[at:at + 5] != bytes(5) else None
    n = raw[at + 5]
    still = []
    for i in range(n):
        w = raw[at + 12 + 8 * i] | raw[at + 13 + 8 * i] << 8
        if w & pending.STILL_PENDING:
            still.append(w & 0x0FFF)
    return last, n, still


def last_event(dc, meter, event, window=6):
    """(LTIME seconds, argument) of the newest `event` among the last
    `window` entries of the meter's history log, read through the DC (BT71
    for the entry size, the BT74 header, then one read of the entries), or
    None."""
    bt71 = dc.read(meter, BT71, 0, 9)
    arg_len, n = bt71[3], bt71[5] | bt71[6] << 8
    head = dc.read(meter, BT74, 0, 11)
    valid, last = head[1] | head[2] << 8, head[3] | head[4] << 8
    if not valid or not n:
        return None
    size = 12 + arg_len
    first = max(0, last - window + 1)
    raw = dc.read(meter, BT74, 11 + first * size, (last - first + 1) * size)
    for i in range(last - first, -1, -1):
        e = raw[i * size:(i + 1) * size]
        if (e[10] | e[11] << 8) & 0x0FFF == event:
            return clock.decode_ltime(e), int.from_bytes(e[12:12 + arg_len], "little")
    return None


def run(meters=1000, per_transformer=250, seed=1, metering=True, lead_s=None,
        progress=None):
    """The whole exercise; returns a dict of figures (see main)."""
    from .fleet import Fleet
    w0 = time.perf_counter()
    fleet = Fleet({"meters": meters, "seed": seed, "metering": metering,
                   "per_transformer": per_transformer, "rural": False})
    fleet.start()
    build_s = time.perf_counter() - w0
    shards = fleet.shards
    start_ms = min(sh.sim.now_ms for sh in shards)
    fw0 = fleet.firmware(fleet.meters[0])
    store = fw0.meter.store
    image = new_calendar(store.get(BT50), max(1, store.field(21, 7, 1)))
    # The activation time is chosen before anything is sent, as a head end
    # does: the staging must be over by then (checked below).
    if lead_s is None:
        lead_s = max(600, 6 * per_transformer + 300)
    t_act = ((start_ms // 1000 + lead_s) // 60 + 1) * 60
    ped = pending.ped_absolute(t_act)
    out = {"meters": meters, "transformers": len(shards), "metering": bool(metering),
           "seed": seed, "calendar_bytes": len(image), "ped": ped.hex(),
           "activation_utc": t_act, "build_wall_s": round(build_s, 2)}

    # 1. staging, area by area (each on its own channel and clock)
    w1 = time.perf_counter()
    requests = 0
    failures = []
    staged_by = []
    dcs = []
    for sh in shards:
        dc = fleet.dc(sh.index)
        dcs.append(dc)
        for mid in sh.meters:
            try:
                requests += stage(dc, mid, BT54, ped, image)
            except Exception as exc:        # PlcError, StageError: reported, not fatal
                failures.append((mid, "stage: %s" % exc))
            if progress:
                progress("stage", mid)
        staged_by.append(sh.sim.now_ms)
    out["stage_wall_s"] = round(time.perf_counter() - w1, 2)
    out["stage_requests"] = requests
    out["stage_virtual_s"] = round((max(staged_by) - start_ms) / 1000, 1)
    late = [sh.id for sh, t in zip(shards, staged_by) if fw0.meter.utc(t) >= t_act]
    if late:
        failures.append(("-", "staging ended after the activation time in %s" % ",".join(late)))

    # 2. every area runs past the activation second
    w2 = time.perf_counter()
    fleet.run(until_ms=fw0.meter.physical_ms(t_act) + 5000)
    out["run_wall_s"] = round(time.perf_counter() - w2, 2)
    # before any request reaches them again: activated by their own clocks
    # (the host looks into the meters here; everything below goes over PLC)
    out["activated_in_time"] = sum(
        1 for mid in fleet.meters
        if bytes(fleet.firmware(mid).meter.store.get(BT54)) == image
        and not fleet.firmware(mid).meter.pending.entries)

    # 3. read back through the DCs: BT54, BT04, event 28
    w3 = time.perf_counter()
    seconds = {}
    bt04_seconds = {}
    calendar_ok = 0
    for sh, dc in zip(shards, dcs):
        for mid in sh.meters:
            try:
                got = dc.read(mid, BT54)
                if bytes(got) == image:
                    calendar_ok += 1
                else:
                    failures.append((mid, "BT54 is not the new calendar"))
                bt00 = dc.read(mid, 0, 13, 2)
                last, n, still = bt04_status(dc.read(mid, BT04), bt00[0], bt00[1])
                bt04_seconds[mid] = last
                if still:
                    failures.append((mid, "BT04: still pending %s" % still))
                ev = last_event(dc, mid, EV_ACTIVATED)
                if ev is None or ev[1] != BT54:
                    failures.append((mid, "no event 28 for BT54 in the history log"))
                else:
                    seconds[mid] = ev[0]
            except Exception as exc:
                failures.append((mid, "read back: %s" % exc))
            if progress:
                progress("read", mid)
    out["read_wall_s"] = round(time.perf_counter() - w3, 2)
    end_ms = max(sh.sim.now_ms for sh in shards)
    out["virtual_s"] = round((end_ms - start_ms) / 1000, 1)
    out["calendar_read_ok"] = calendar_ok
    distinct = sorted(set(seconds.values()))
    out["event28_meters"] = len(seconds)
    out["activation_seconds"] = [_iso(s) for s in distinct]
    out["activation_spread_s"] = (distinct[-1] - distinct[0]) if distinct else None
    out["bt04_last_activation"] = sorted(set(_iso(s) if s else "-" for s in bt04_seconds.values()))
    frames = sum(sh.stats().get("frames", 0) for sh in shards) if hasattr(shards[0], "stats") else None
    out["frames"] = frames
    out["wall_s"] = round(time.perf_counter() - w0, 2)
    out["failures"] = [list(f) for f in failures]
    out["ok"] = (not failures and len(seconds) == meters and calendar_ok == meters
                 and out["activated_in_time"] == meters
                 and distinct == [t_act] and set(bt04_seconds.values()) == {t_act})
    fleet.stop(save=False)
    return out


def _iso(t):
    c = clock.to_civil(t)
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % c[0:6]


def report(r, out=sys.stdout):
    p = lambda *a: print(*a, file=out)
    p("pending calendar: %d meters in %d transformer areas, metering %s"
      % (r["meters"], r["transformers"], "on" if r["metering"] else "off"))
    p("  staged        BT54 pending copy (%d bytes, PED %s), %d partial writes over PLC, "
      "%.1f s virtual, %.2f s wall" % (r["calendar_bytes"], r["ped"], r["stage_requests"],
                                       r["stage_virtual_s"], r["stage_wall_s"]))
    p("  activation    %s: event 28 in %d/%d meters at %s (spread %s s); BT04 last activation %s"
      % (_iso(r["activation_utc"]), r["event28_meters"], r["meters"],
         ", ".join(r["activation_seconds"]) or "-", r["activation_spread_s"],
         ", ".join(r["bt04_last_activation"])))
    p("  in time       %d/%d meters held the new calendar %s after it, before any further request"
      % (r["activated_in_time"], r["meters"], "5 s"))
    p("  read back     new calendar from %d/%d meters through the DCs, %.2f s wall"
      % (r["calendar_read_ok"], r["meters"], r["read_wall_s"]))
    p("  time          %.1f s virtual, %.2f s wall (build %.2f s)"
      % (r["virtual_s"], r["wall_s"], r["build_wall_s"]))
    for f in r["failures"][:10]:
        p("  FAILED %s: %s" % tuple(f))
    p("  result        %s" % ("every meter activated in the same second" if r["ok"] else "FAILED"))


def main(argv=None, out=sys.stdout):
    ap = argparse.ArgumentParser(prog="osgp-meter pending-fleet",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--meters", type=int, default=1000)
    ap.add_argument("--per-transformer", type=int, default=250)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--metering", choices=("on", "off"), default="on")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    r = run(args.meters, args.per_transformer, args.seed, args.metering == "on")
    if args.json:
        print(json.dumps(r, indent=1), file=out)
    else:
        report(r, out)
    return 0 if r["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
