"""Seeing a meter: its load profile and registers over time as a PNG.

    osgp-meter plot --state DIR -o meter.png        # a saved meter (simulate/serve --state)
    osgp-meter plot --port /dev/pts/3 -o meter.png  # a running meter, over MEP
    osgp-meter simulate ... --plot run.png          # a whole simulated run

What a meter holds is read from its tables, the way a head-end would:
BT61/BT62/BT63 and BT64-BT67 for the load profile (every valid block, the
block in progress included), BT21/BT22 and the BT26 self-reads plus the
present BT23 for the registers over time, BT71/BT74 for the events. A
simulation records more than the meter keeps (every LP block as it closes,
registers every hour, every event), see tools/simulate.py.

The first half of this module turns table bytes into plain data (usable
without matplotlib: the simulator's summary uses it); the second half draws
that data with matplotlib, the optional extra `plot`
(pip install 'osgp-meter[plot]'). docs/simulate.md describes the picture.
"""
import datetime
import math
import sys

from osgp_meter import clock
from osgp_meter import events
from osgp_meter import loadprofile

BT21 = 21
BT22 = 22
BT23 = 23
BT26 = 26
BT27 = 27
BT61 = 61
BT62 = 62
BT63 = 63
BT64 = 64
BT71 = 71
BT74 = 74
ET66 = 2048 + 66

# NES summation sources (BT22 summation select; docs/metrology.md §2):
# (name, unit)
SUMMATION_SOURCES = {
    0: ("forward active", "Wh"), 1: ("reverse active", "Wh"),
    2: ("import reactive", "varh"), 3: ("export reactive", "varh"),
    4: ("outage duration", "s"), 5: ("outage count", ""),
    6: ("fwd + rev active", "Wh"), 7: ("fwd - rev active", "Wh"),
    8: ("pulse input 1", ""), 9: ("pulse input 2", ""), 10: ("error counter", ""),
    11: ("reactive Q1", "varh"), 12: ("reactive Q2", "varh"),
    13: ("reactive Q3", "varh"), 14: ("reactive Q4", "varh"),
    15: ("apparent Q1", "VAh"), 16: ("apparent Q2", "VAh"),
    17: ("apparent Q3", "VAh"), 18: ("apparent Q4", "VAh"),
}
# NES present-value indices (BT27 present value select; docs/metrology.md §7)
PRESENT_VALUES = {
    0: ("forward power", "W"), 1: ("reverse power", "W"),
    2: ("import reactive power", "var"), 3: ("export reactive power", "var"),
    4: ("current L1", "mA"), 5: ("current L2", "mA"), 6: ("current L3", "mA"),
    7: ("voltage L1", "mV"), 8: ("voltage L2", "mV"), 9: ("voltage L3", "mV"),
    10: ("power factor L1", "1/1000"), 11: ("frequency", "mHz"), 12: ("apparent power", "VA"),
    13: ("power factor L2", "1/1000"), 14: ("power factor L3", "1/1000"),
    18: ("forward power (CT/VT)", "W"), 19: ("reverse power (CT/VT)", "W"),
    20: ("import var (CT/VT)", "var"), 21: ("export var (CT/VT)", "var"),
    22: ("var Q1", "var"), 23: ("var Q2", "var"), 24: ("var Q3", "var"), 25: ("var Q4", "var"),
}

# LP extended interval status (docs/load-profile.md)
COMMON_DST = 1
COMMON_POWER_FAIL = 2
COMMON_CLOCK_FWD = 4
COMMON_CLOCK_BACK = 8
CH_OVERFLOW = 1
CH_PARTIAL = 2
CH_LONG = 3
CH_SKIPPED = 4


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def _u(raw, off, n):
    return int.from_bytes(bytes(raw[off:off + n]), "little")


def _s32(raw, off):
    return int.from_bytes(bytes(raw[off:off + 4]), "little", signed=True)


# ---------------------------------------------------------------------------
# load profile
# ---------------------------------------------------------------------------

def lp_layout(read, n):
    """Set n's layout from BT61 (and BT62 for its sources), or None when the
    set is off. read(table, offset, count) -> bytes."""
    bt61 = read(BT61, 0, 31)
    flags = _u(bt61, 4, 2)
    d = 7 + 6 * n
    nblk, nint, nch, code = _u(bt61, d, 2), _u(bt61, d + 2, 2), bt61[d + 4], bt61[d + 5]
    seconds = loadprofile.interval_seconds(code)
    if not (nblk and nint and nch and seconds):
        return None
    ext, isz, ss_off, ss_size, hdr, bsize = loadprofile.layout(flags, nint, nch)
    off = 0
    for k in range(n):
        off += 3 * bt61[7 + 6 * k + 4] + 1 + ((flags >> (6 + k)) & 1) * 4 * bt61[7 + 6 * k + 4]
    ctl = read(BT62, off, 3 * nch)
    sources = [ctl[3 * c + 1] for c in range(nch)]
    return {"set": n, "flags": flags, "blocks": nblk, "intervals": nint, "channels": nch,
            "code": code, "interval_s": seconds, "ext": ext, "isz": isz, "ss_off": ss_off,
            "ss_size": ss_size, "hdr": hdr, "bsize": bsize, "sources": sources}


def source_label(read, sid):
    """(name, unit) of an LP source ID (docs/load-profile.md "Sources")."""
    if 112 <= sid < 164:
        sid = read(ET66, sid - 112, 1)[0]
    if sid < 64:
        nes = read(BT22, sid, 1)[0]
        name, unit = SUMMATION_SOURCES.get(nes, ("summation source %d" % nes, ""))
        return name, unit
    if sid < 112:
        n_pd = read(BT21, 8, 1)[0]
        nes = read(BT27, n_pd + sid - 64, 1)[0]
        name, unit = PRESENT_VALUES.get(nes, ("present value %d" % nes, ""))
        return name, unit
    return "source %d" % sid, ""


def decode_block(raw, lay, valid=None):
    """Intervals of one block image (closed: valid = NINT; the block in
    progress: valid = BT63.11) -> [(end s, common flags, [channel status],
    [values])] for the slots that were recorded (simple status bit set; every
    slot up to `valid` without simple status)."""
    nint = lay["intervals"]
    v = nint if valid is None else valid
    if v <= 0:
        return []
    end = clock.decode_ltime(bytes(raw[0:5]) + b"\x00")
    step = lay["interval_s"]
    ext, isz, ss_off, ss_size, hdr, nch = (lay["ext"], lay["isz"], lay["ss_off"], lay["ss_size"],
                                           lay["hdr"], lay["channels"])
    out = []
    for i in range(min(v, nint)):
        if ss_size and not (raw[ss_off + (i >> 3)] >> (i & 7)) & 1:
            continue
        o = hdr + i * isz
        common = 0
        sts = []
        if ext:
            common = raw[o] >> 4
            for p in range(1, nch + 1):
                b = raw[o + (p >> 1)]
                sts.append(b & 0x0F if p & 1 else b >> 4)
        else:
            sts = [0] * nch
        if not ss_size and sts and all(s == CH_SKIPPED for s in sts):
            continue
        vals = [_s32(raw, o + ext + 4 * c) for c in range(nch)]
        out.append((end - (v - 1 - i) * step, common, sts, vals))
    return out


def lp_status(read, n):
    """BT63 of set n: (flags, valid blocks, last block index, last sequence
    number, unread blocks, valid intervals in the last block)."""
    h = read(BT63, 13 * n, 13)
    return h[0], _u(h, 1, 2), _u(h, 3, 2), _u(h, 5, 4), _u(h, 9, 2), _u(h, 11, 2)


def block_of(status, lay, seq):
    """Index of the block with sequence number `seq`, or None if not held."""
    _, valid, last, last_seq, _, _ = status
    back = last_seq - seq
    if back < 0 or back >= valid:
        return None
    return (last - back) % lay["blocks"]


def lp_set(read, n, lay=None):
    """Everything set n holds: {"set", "interval_s", "channels" [(name,
    unit)], "intervals" [...], "blocks"} (oldest first, the block in progress
    last), or None when the set is off."""
    lay = lay or lp_layout(read, n)
    if lay is None:
        return None
    st = lp_status(read, n)
    intervals = []
    seqs = range(st[3] - st[1] + 1, st[3] + 1)
    for seq in seqs:
        idx = block_of(st, lay, seq)
        raw = read(BT64 + n, idx * lay["bsize"], lay["bsize"])
        intervals += decode_block(raw, lay, st[5] if seq == st[3] else None)
    return {"set": n, "interval_s": lay["interval_s"],
            "channels": [source_label(read, s) for s in lay["sources"]],
            "intervals": intervals, "blocks": len(seqs)}


# ---------------------------------------------------------------------------
# registers (BT21/BT22 select what BT23 holds)
# ---------------------------------------------------------------------------

def _dims(read):
    def dims(tid, off, n):
        return int.from_bytes(bytes(read(tid, off, n)).ljust(n, b"\x00"), "little")
    return dims


def register_map(read):
    """Where forward/reverse active energy sit in a BT23 image:
    {"fwd": offset or None, "rev": ..., "tiers": [(fwd offset, rev offset)],
    "size": BT23 bytes, "demands": [(source, time offset, value offset)]}."""
    from . import catalogue
    dims = _dims(read)
    nsum = read(BT21, 3, 1)[0]
    sel = read(BT22, 0, nsum)
    size = catalogue.table_size(catalogue.lookup_table(BT23), dims)
    fields = catalogue.decode_table(BT23, bytes(size), 0, dims)
    by = {f["name"]: f["offset"] for f in fields}
    fwd = [i for i in range(nsum) if sel[i] == 0]
    rev = [i for i in range(nsum) if sel[i] == 1]

    def at(prefix, idx):
        return by.get("%ssummations[%d]" % (prefix, idx[0])) if idx else None

    tiers = []
    k = 0
    while "data.tiers[%d].summations[0]" % k in by:
        p = "data.tiers[%d]." % k
        tiers.append((at(p, fwd), at(p, rev)))
        k += 1
    ndem = read(BT21, 4, 1)[0]
    dsel = read(BT22, nsum, ndem) if ndem else b""
    demands = []
    for j in range(ndem):
        demands.append((dsel[j], by.get("data.total.demands[%d].event_time[0]" % j),
                        by.get("data.total.demands[%d].demand[0]" % j)))
    return {"fwd": at("data.total.", fwd), "rev": at("data.total.", rev), "tiers": tiers,
            "size": size, "demands": demands}


def register_values(raw, rmap, base=0):
    """(fwd Wh, rev Wh, [tier fwd], [tier rev]) from a BT23 image at `base`."""
    def val(off):
        return _s32(raw, base + off) if off is not None else 0
    return (val(rmap["fwd"]), val(rmap["rev"]), [val(f) for f, r in rmap["tiers"]],
            [val(r) for f, r in rmap["tiers"]])


def registers_over_time(read, now_t):
    """Register points a meter holds: every BT26 self-read (its time and
    BT23 snapshot) and the present BT23 at meter time now_t ->
    {"time": [...], "fwd": [...], "rev": [...], "tiers_fwd": [[...]], "tiers_rev": [[...]]}."""
    rmap = register_map(read)
    points = []
    if read(BT21, 2, 1)[0]:                         # self-reads configured
        n = read(BT21, 2, 1)[0]
        head = read(BT26, 0, 6)
        valid, last = head[1], head[2]
        has_bidn = 2 if read(BT21, 4, 1)[0] else 0
        esz = has_bidn + 5 + 1 + rmap["size"]
        for k in range(min(valid, n)):
            idx = (last - valid + 1 + k) % n
            raw = read(BT26, 6 + idx * esz, esz)
            t = clock.decode_ltime(bytes(raw[has_bidn:has_bidn + 5]) + b"\x00")
            points.append((t,) + register_values(raw, rmap, has_bidn + 6))
    points.append((now_t,) + register_values(read(BT23, 0, rmap["size"]), rmap))
    points.sort(key=lambda p: p[0])
    return series_of(points)


def series_of(points):
    """[(t, fwd, rev, [tier fwd], [tier rev])] -> the register series dict."""
    ntiers = max((len(p[3]) for p in points), default=0)
    return {"time": [p[0] for p in points], "fwd": [p[1] for p in points],
            "rev": [p[2] for p in points],
            "tiers_fwd": [[p[3][k] if k < len(p[3]) else 0 for p in points] for k in range(ntiers)],
            "tiers_rev": [[p[4][k] if k < len(p[4]) else 0 for p in points] for k in range(ntiers)]}


# ---------------------------------------------------------------------------
# events
# ---------------------------------------------------------------------------

def history(read):
    """The BT74 entries: [(t, seq, user, event, arg)] oldest first."""
    from . import history as hist
    arg_len, raw = hist.read_log(read)
    return events.decode(raw, arg_len)[2]


def event_names():
    from . import history as hist
    return hist.names()


CONFIG_TABLES = (BT21, BT22, BT27, BT61, BT62, BT71, ET66)


def memo(read):
    """`read` with the answers for the configuration tables remembered: the
    decoders ask for the same dimension fields many times, and over a serial
    port each one is a request."""
    cache = {}

    def cached(tid, off, n):
        if tid not in CONFIG_TABLES:
            return read(tid, off, n)
        key = (tid, off, n)
        got = cache.get(key)
        if got is None:
            got = cache[key] = bytes(read(tid, off, n))
        return got
    return cached


def collect(read, now_t, title=None):
    """The plot data of what a meter holds (see plot())."""
    read = memo(read)
    lp = []
    for n in range(4):
        s = lp_set(read, n)
        if s is not None:
            lp.append(s)
    names = event_names()
    evs = [(e[0], e[3], names.get(e[3], "Event %d" % e[3])) for e in history(read)]
    return {"title": title or "meter", "lp": lp, "registers": registers_over_time(read, now_t),
            "events": evs, "now": now_t}


# ---------------------------------------------------------------------------
# drawing
# ---------------------------------------------------------------------------

INSTALL_HINT = "matplotlib is not installed: pip install 'osgp-meter[plot]' (or pip install matplotlib)"


def _matplotlib():
    try:
        from matplotlib.figure import Figure
        import matplotlib.dates as mdates
    except ImportError:
        raise PlotUnavailable(INSTALL_HINT) from None
    return Figure, mdates


def _dt(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).replace(tzinfo=None)


def _fmt_day(t):
    return _dt(t).strftime("%Y-%m-%d %H:%M")


def _gapped(intervals, step, ch):
    """x, y of a channel with a NaN where intervals are missing (so the line
    breaks over outages and skipped slots)."""
    xs, ys = [], []
    prev = None
    for end, common, sts, vals in intervals:
        if prev is not None and end - prev > step:
            xs.append(_dt(prev + step))
            ys.append(math.nan)
        xs.append(_dt(end))
        ys.append(vals[ch] if ch < len(vals) else math.nan)
        prev = end
    return xs, ys


def plot(data, path, title=None, width=13.0):
    """Draw `data` (collect() or Simulation.plot_data()) into a PNG at
    `path`: the load profile (first set with intervals) with status markers,
    the registers (forward/reverse, per tier) and an event strip. Returns the
    path. Raises PlotUnavailable without matplotlib."""
    Figure, mdates = _matplotlib()
    lp = next((s for s in data.get("lp", []) if s["intervals"]), None)
    reg = data.get("registers") or {"time": []}
    evs = data.get("events") or []
    kinds = {}
    for t, ev, name in evs:
        kinds.setdefault((ev, name), []).append(t)
    rows = sorted(kinds, key=lambda k: (min(kinds[k]), k[0]))
    if len(rows) > 14:                        # the most frequent, in time order
        keep = set(sorted(rows, key=lambda k: -len(kinds[k]))[:14])
        rows = [k for k in rows if k in keep]
    ratios = [3.0, 2.0] + ([0.35 + 0.22 * len(rows)] if rows else [])
    fig = Figure(figsize=(width, 3.2 * 2 + (0.6 + 0.3 * len(rows) if rows else 0) + 0.8), dpi=100)
    axes = fig.subplots(len(ratios), 1, sharex=True, gridspec_kw={"height_ratios": ratios})
    fig.suptitle(title or data.get("title") or "osgp-meter", fontsize=13, fontweight="bold")

    # 1. load profile
    ax = axes[0]
    if lp is not None:
        step = lp["interval_s"]
        units = sorted({u for _, u in lp["channels"] if u})
        ints = lp["intervals"]
        long_run = ints[-1][0] - ints[0][0] > 14 * 86400
        for c, (name, unit) in enumerate(lp["channels"]):
            xs, ys = _gapped(ints, step, c)
            line = ax.step(xs, ys, where="pre", lw=0.6 if long_run else 0.9,
                           alpha=0.35 if long_run else 1.0,
                           label="ch %d: %s (%s)" % (c, name, unit or "-"))[0]
            if long_run:
                # over weeks the intervals are a blur: the daily mean shows the shape
                days = {}
                for e in ints:
                    if c < len(e[3]):
                        days.setdefault((e[0] - 1) // 86400, []).append(e[3][c])
                dx = [_dt(d * 86400 + 43200) for d in sorted(days)]
                dy = [sum(days[d]) / len(days[d]) for d in sorted(days)]
                ax.plot(dx, dy, lw=1.8, color=line.get_color(), alpha=1.0,
                        label="ch %d: daily mean per interval" % c)
        marks = (
            ("power fail in the interval", lambda e: e[1] & COMMON_POWER_FAIL, 0.105, "v", "tab:red"),
            ("clock set forward", lambda e: e[1] & COMMON_CLOCK_FWD, 0.065, ">", "tab:orange"),
            ("clock set backward", lambda e: e[1] & COMMON_CLOCK_BACK, 0.065, "<", "tab:purple"),
            ("partial / long interval", lambda e: any(s in (CH_PARTIAL, CH_LONG) for s in e[2]),
             0.025, "|", "tab:gray"),
            ("overflow", lambda e: any(s == CH_OVERFLOW for s in e[2]), 0.025, "x", "black"),
        )
        tr = ax.get_xaxis_transform()
        marked = 0
        for label, test, y, marker, color in marks:
            xs = [_dt(e[0]) for e in lp["intervals"] if test(e)]
            if xs:
                ax.scatter(xs, [y] * len(xs), transform=tr, marker=marker, color=color, s=36,
                           label="%s (%d)" % (label, len(xs)), zorder=5, clip_on=False)
                marked += 1
        ax.set_ylabel("energy per %d-min interval\n(%s)" % (step // 60, " / ".join(units) or "-"))
        ax.set_title("Load profile, data set %d (BT%d): %d intervals, %d-minute interval, "
                     "interval end times" % (lp["set"] + 1, 64 + lp["set"], len(lp["intervals"]),
                                             step // 60), fontsize=10, loc="left")
        # room under the data for the status markers (a band at the bottom)
        lo = min([0] + [v for e in lp["intervals"] for v in e[3]])
        hi = max([1] + [v for e in lp["intervals"] for v in e[3]])
        span = hi - lo
        if marked:
            ax.set_ylim(lo - 0.16 * span, hi + 0.04 * span)
            ax.axhspan(lo - 0.16 * span, lo - 0.02 * span, color="0.93", zorder=0)
        else:
            ax.set_ylim(lo - 0.03 * span, hi + 0.04 * span)
        ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, framealpha=0.9,
                  title="channels / interval status", title_fontsize=8)
    else:
        ax.text(0.5, 0.5, "no load-profile intervals", transform=ax.transAxes, ha="center")
        ax.set_title("Load profile", fontsize=10, loc="left")
    ax.grid(True, alpha=0.3)

    # 2. registers
    ax = axes[1]
    if reg["time"]:
        xs = [_dt(t) for t in reg["time"]]
        marker = "o" if len(xs) < 40 else None
        ax.plot(xs, [v / 1000 for v in reg["fwd"]], lw=2.0, color="tab:blue", marker=marker,
                ms=3, label="forward (import) total")
        ax.plot(xs, [v / 1000 for v in reg["rev"]], lw=2.0, color="tab:green", marker=marker,
                ms=3, label="reverse (export) total")
        colors = ("tab:cyan", "tab:olive", "tab:pink", "tab:brown", "tab:gray", "gold", "navy", "teal")
        for k, ys in enumerate(reg["tiers_fwd"]):
            if any(ys):
                ax.plot(xs, [v / 1000 for v in ys], lw=1.1, ls="--", color=colors[k % len(colors)],
                        label="forward, tier %d" % k)
        for k, ys in enumerate(reg["tiers_rev"]):
            if any(ys):
                ax.plot(xs, [v / 1000 for v in ys], lw=1.1, ls=":", color=colors[k % len(colors)],
                        label="reverse, tier %d" % k)
        ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, framealpha=0.9,
                  title="registers", title_fontsize=8)
        ax.set_title("Registers (BT23 active energy; %d readings)" % len(xs), fontsize=10, loc="left")
    else:
        ax.text(0.5, 0.5, "no register readings", transform=ax.transAxes, ha="center")
    ax.set_ylabel("energy (kWh)")
    ax.grid(True, alpha=0.3)

    # 3. events
    if rows:
        ax = axes[2]
        for i, key in enumerate(rows):
            ts = kinds[key]
            ax.scatter([_dt(t) for t in ts], [i] * len(ts), marker="o", s=22, zorder=3)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels(["%s (%d) x%d" % (k[1], k[0], len(kinds[k])) for k in rows], fontsize=8)
        ax.yaxis.tick_right()           # the names go where the legends are
        ax.set_ylabel("event")
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.invert_yaxis()
        ax.set_title("History log events (BT74)", fontsize=10, loc="left")
        ax.grid(True, axis="x", alpha=0.3)

    last = axes[-1]
    loc = mdates.AutoDateLocator()
    last.xaxis.set_major_locator(loc)
    last.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    last.set_xlabel("time (meter clock, UTC)")
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


# ---------------------------------------------------------------------------
# `osgp-meter plot`
# ---------------------------------------------------------------------------

def add_parser(subparsers):
    p = subparsers.add_parser("plot", help="plot a meter's load profile and registers to a PNG")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--state", metavar="DIR", help="a saved meter (simulate/serve --state DIR)")
    src.add_argument("--port", help="a running meter's MEP port (device path or pyserial URL)")
    p.add_argument("-o", "--output", default="meter.png", metavar="FILE.png",
                   help="where to write the PNG (default meter.png)")
    p.add_argument("--profile", help="the meter's profile (keys; with --state: its tables)")
    p.add_argument("--title", help="title of the picture")
    p.add_argument("--baud", type=int, default=9600)
    p.add_argument("--timeout", type=float, default=0.5)
    return p


def run(args, out=None):
    out = out or sys.stdout
    try:
        _matplotlib()
    except PlotUnavailable as exc:
        print("osgp-meter plot: %s" % exc, file=sys.stderr)
        return 2
    if args.state:
        from .simulate import Simulation
        import os
        from . import state as states
        if not os.path.exists(os.path.join(args.state, states.STATE_FILE)):
            print("osgp-meter plot: no saved meter in %s" % args.state, file=sys.stderr)
            return 2
        sim = Simulation(profile_path=args.profile, state_dir=args.state, record=False,
                         scenario=False)
        data = collect(sim.read, sim.meter.utc(sim.now), args.title or "meter state %s" % args.state)
    else:
        from . import client_cli, crypto_backend
        crypto_backend.install()
        ns = type("Args", (), {"key": None, "profile": args.profile, "basic": False, "port": args.port,
                               "baud": args.baud, "timeout": args.timeout, "seq": None,
                               "encrypt": False})()
        client = client_cli._mep_client(ns)
        from . import history as hist

        def read(tid, off, n):
            got = b""
            while n > 0:
                k = min(n, hist.CHUNK)
                got += client.read(tid, off, k)
                off += k
                n -= k
            return got
        now_t = clock.decode_ltime(read(52, 0, 6))
        data = collect(read, now_t, args.title or "meter on %s" % args.port)
    plot(data, args.output)
    n = sum(len(s["intervals"]) for s in data["lp"])
    print("plot written to %s (%d LP intervals, %d register readings, %d events)"
          % (args.output, n, len(data["registers"]["time"]), len(data["events"])), file=out)
    return 0
