"""`osgp-meter simulate`: one meter (Firmware with metering) in virtual time,
driven through a scenario of timed injections; and the same as a Python API
for test harnesses. See docs/simulate.md.

    from osgp_host.simulate import Simulation
    sim = Simulation(start="2026-03-01T00:00:00Z")           # default profile, metering on
    sim.at("2026-03-10T02:00:00Z", power="off")
    sim.after("3d2h", inject="cover", on=True)               # from the current simulated time
    sim.run_until("2026-03-31T00:00:00Z")
    sim.read("BT23")                                         # bytes, through the meter's own C12 path
    print("\\n".join(format_summary(sim.summary())))

Virtual (driver) time is integer milliseconds since 1970 (`sim.now`); the
meter's clock is `sim.now + meter.clock_offset` (docs/time-model.md). The
loop jumps from one thing due to the next: the meter's own deadlines
(`Firmware.tick`), scenario actions and, when recording, hourly register
samples. Nothing here reads the wall clock except to pace a run (`speed`)
and to measure it.
"""
import heapq
import json
import os
import sys
import time

from osgp_meter import clock
from osgp_meter import device
from osgp_meter import events
from osgp_meter import firmware

from . import plot as plots
from . import profile as profiles
from . import scenario as scen
from . import state as states

BT07 = 7
BT08 = 8
BT74 = 74
BP10 = 10
EP16 = 2048 + 16

SIDECAR = "simulation.json"       # next to state.py's meter-state.json: the driver time
SAMPLE_S = 3600                   # register samples while recording (a run > 2 years: coarser)

RESULTS = {0: "completed", 1: "accepted", 2: "invalid parameter", 3: "conflicts with setup",
           4: "timing constraint", 5: "no authorization", 6: "unrecognized procedure"}


class SimulationError(ValueError):
    """A scenario that cannot go on: an action in the past, an answer other
    than the `expect`ed one, an input a meter without metering cannot take."""


def midnight_today():
    t = int(time.time())
    return t - t % 86400


def _seconds(when, what="time"):
    return scen.parse_time(when, what)


# ---------------------------------------------------------------------------
# recording: what the run leaves for the summary and the plot
# ---------------------------------------------------------------------------

class Recorder:
    """Keeps what the meter itself would overwrite: every load-profile block
    as it closes (the meter holds BT61 blocks, 4 days by default), register
    samples every `sample_s` seconds and every history-log entry."""

    def __init__(self, sim, sample_s=SAMPLE_S):
        self.sim = sim
        self.sample_s = sample_s
        self.next_sample = None
        store = sim.meter.store
        self.lp = {}            # set -> {"seen": seq, "intervals": [...], "closed": blocks}
        for n in range(4):
            lay = plots.lp_layout(sim.raw_read, n)
            st = plots.lp_status(sim.raw_read, n)
            # "seen": the block in progress at the last look; the blocks from
            # there up to the one now in progress have closed since. At the
            # start every block the meter holds counts as not yet seen.
            self.lp[n] = {"seen": st[3] - st[1] + 1 if lay else st[3], "intervals": [], "closed": 0}
        self.samples = []       # (meter t, fwd, rev, [tier fwd], [tier rev])
        self._rmap = None
        self._rkey = None
        self.ev_seen = store.field(BT74, 5, 4) - store.field(BT74, 1, 2)
        self.events = []        # (t, seq, user, event, arg)
        self.check()

    def check(self):
        """After each step: new closed LP blocks, new log entries."""
        store = self.sim.meter.store
        for n, rec in self.lp.items():
            seq = store.field(63, 13 * n + 5, 4)
            if seq != rec["seen"]:
                self._harvest(n, rec, seq)
        seq = store.field(BT74, 5, 4)
        if seq != self.ev_seen:
            if seq < self.ev_seen:           # BP00 restarted the numbering
                self.ev_seen = 0
            for e in events.entries(self.sim.meter):
                if e[1] > self.ev_seen:
                    self.events.append(e)
            self.ev_seen = seq

    def _harvest(self, n, rec, seq):
        read = self.sim.raw_read
        lay = plots.lp_layout(read, n)
        if lay is not None:
            st = plots.lp_status(read, n)
            for s in range(max(rec["seen"], seq - st[1] + 1), seq):
                idx = plots.block_of(st, lay, s)
                if idx is None:
                    continue
                raw = read(64 + n, idx * lay["bsize"], lay["bsize"])
                rec["intervals"] += plots.decode_block(raw, lay)
                rec["closed"] += 1
        rec["seen"] = seq

    def sample(self, now):
        meter = self.sim.meter
        if meter.metrology is not None:
            meter.metrology.update(meter, meter.utc(now))
        store = meter.store
        key = bytes(store.read(21, 0, 10)) + bytes(store.read(22, 0, 64))
        if key != self._rkey:
            self._rmap = plots.register_map(self.sim.raw_read)
            self._rkey = key
        raw = store.read(23, 0, self._rmap["size"])
        self.samples.append((meter.utc(now),) + plots.register_values(raw, self._rmap))

    def lp_sets(self):
        """Per configured set: every interval recorded during the run (closed
        blocks as harvested, then the block in progress as it is now)."""
        read = self.sim.raw_read
        out = []
        for n, rec in self.lp.items():
            lay = plots.lp_layout(read, n)
            if lay is None and not rec["intervals"]:
                continue
            intervals = list(rec["intervals"])
            channels = []
            if lay is not None:
                st = plots.lp_status(read, n)
                idx = plots.block_of(st, lay, st[3])
                if idx is not None and st[0] & 0x04:
                    raw = read(64 + n, idx * lay["bsize"], lay["bsize"])
                    intervals += plots.decode_block(raw, lay, st[5])
                channels = [plots.source_label(read, s) for s in lay["sources"]]
            out.append({"set": n, "interval_s": lay["interval_s"] if lay else 900,
                        "channels": channels, "intervals": intervals,
                        "blocks": rec["closed"] + 1})
        return out


# ---------------------------------------------------------------------------
# the simulation
# ---------------------------------------------------------------------------

class Simulation:
    """One meter in virtual time.

    profile_path  a profile TOML (default: the built-in profile); its
                  [[scenario]] / [[at]] entries are queued unless scenario=False
    config        a config dict (profile.load_config()) instead of a profile
    start         ISO 8601 / datetime / unix seconds: the driver time and the
                  meter clock at the start. Default: a continued state's own
                  time, else the profile's [clock] start, else midnight UTC today
    seed          the load model's seed (overrides the profile)
    scenario      a scenario file path, a list of entries (dicts) or Actions,
                  False to ignore the profile's, or None
    state_dir     continue from a saved meter (tools/state.py) when DIR holds one
    record        keep LP blocks, register samples and events for summary/plot
    speed         None: as fast as possible; X: X times real time
    """

    def __init__(self, profile_path=None, config=None, start=None, seed=None, scenario=None,
                 state_dir=None, record=True, speed=None, sample_s=SAMPLE_S):
        profile_actions = []
        profile_start = None
        if config is None:
            data = profiles.load(profile_path)
            config = profiles.to_config(data)
            profile_start = data.get("clock", {}).get("start")
            if scenario is not False:
                profile_actions = scen.from_document(data, profile_path or "built-in profile")
        else:
            profile_start = config.get("clock")
        cfg = dict(config)
        if seed is not None:
            cfg["seed"] = int(seed)
        have_state = bool(state_dir) and os.path.exists(os.path.join(state_dir, states.STATE_FILE))
        saved = _sidecar(state_dir) if have_state else None
        if start is not None:
            start_s = _seconds(start, "start")
            start_ms = start_s * 1000
        elif saved is not None:
            start_ms = saved
            start_s = start_ms // 1000
        elif profile_start is not None:
            start_s = _seconds(profile_start, "clock.start")
            start_ms = start_s * 1000
        else:
            start_s = midnight_today()
            start_ms = start_s * 1000
        self.config = cfg
        self.start = start_ms
        self.now = start_ms
        self.speed = scen.parse_speed(speed)
        self.state_dir = state_dir
        cfg["clock"] = start_s
        if have_state:
            # Tables first, then the subsystems: they rebuild their RAM from them.
            fw = firmware.Firmware(dict(cfg, metering=False), start_ms)
            states.load(fw, state_dir)
            if cfg.get("metering"):
                firmware.attach_metering(fw.meter, cfg, start_ms)
            self.continued = True
        else:
            fw = firmware.Firmware(cfg, start_ms)
            self.continued = False
        if state_dir:
            fw.meter.on_save = lambda meter: self.save(state_dir)
        self.fw = fw
        self.meter = fw.meter
        self._queue = []            # (driver ms, seq, Action, occurrences left or None)
        self._seq = 0
        self.log = []               # (driver ms, meter s, what, outcome)
        self.reads = []             # (meter s, table label, offset, code, data) of read actions
        self.wakeups = 0
        self.wall = 0.0
        self.ev_seq0 = self.meter.store.field(BT74, 5, 4)     # log entries before the run
        self.utc0 = self.utc                                   # the meter's clock at the start
        limits = {"mep": device.MEP_LIMITS, "plc": fw.plc_limits,
                  "optical": device.PortLimits("optical", cfg.get("optical_max_read", 4096),
                                               cfg.get("optical_max_write", 4096), 2)}
        self._limits = limits
        self.recorder = Recorder(self, sample_s) if record else None
        if self.recorder is not None:
            self.recorder.next_sample = self.now
        if profile_actions:
            self.load_scenario(profile_actions)
        if scenario not in (None, False):
            self.load_scenario(scenario)

    # -- time ------------------------------------------------------------
    @property
    def utc(self):
        """The meter's clock, seconds since 1970 UTC."""
        return self.meter.utc(self.now)

    # -- scheduling ------------------------------------------------------
    def _push(self, t_ms, action, left=None):
        if t_ms < self.now:
            raise SimulationError("%s: at %s, before the simulation's current time %s"
                                  % (action.origin, scen.format_time(t_ms // 1000),
                                     scen.format_time(self.now // 1000)))
        if left is None and action.every is not None:
            left = action.times
        heapq.heappush(self._queue, (t_ms, self._seq, action, left))
        self._seq += 1

    def _action(self, action, origin):
        if isinstance(action, scen.Action):
            return action
        for k in scen.WHEN_KEYS:
            if k in action:
                raise SimulationError("%s: give the time as the first argument, not %s=" % (origin, k))
        return scen.parse_entry(dict(action), origin)

    def at(self, when, **action):
        """Queue an action (the keys of a scenario entry, e.g. power="off",
        inject="cover", on=True) at an absolute time (ISO 8601, datetime or
        unix seconds)."""
        a = self._action(action, "Simulation.at(%r)" % (when,))
        self._push(_seconds(when) * 1000, a)
        return a

    def after(self, delay, **action):
        """Queue an action `delay` ("3d2h", seconds) after the current time."""
        a = self._action(action, "Simulation.after(%r)" % (delay,))
        self._push(self.now + scen.parse_duration(delay, "delay") * 1000, a)
        return a

    def do(self, **action):
        """Apply an action now; returns its outcome text."""
        a = self._action(action, "Simulation.do()")
        return self._apply(a, self.now)

    def load_scenario(self, scenario):
        """Queue a scenario: a file path, a list of entries or of Actions.
        `after` counts from the simulation's start. Returns the settings of
        a file's [simulation] table ({} otherwise)."""
        settings = {}
        if isinstance(scenario, (str, os.PathLike)):
            settings, actions = scen.load(scenario)
        else:
            items = list(scenario)
            if all(isinstance(x, scen.Action) for x in items):
                actions = items
            else:
                actions = scen.parse(items, "scenario")
        for t, a in scen.resolve(actions, self.start // 1000):
            self._push(t * 1000, a)
        return settings

    def pending(self):
        """[(driver ms, Action)] still queued, in time order."""
        return [(t, a) for t, _, a, _ in sorted(self._queue, key=lambda x: x[:2])]

    # -- running ---------------------------------------------------------
    def run_until(self, until):
        """Run to `until` (ISO 8601, datetime or unix seconds; or driver ms
        when given as an int > 10**11)."""
        end = until if isinstance(until, int) and until > 10 ** 11 else _seconds(until, "until") * 1000
        if end < self.now:
            raise SimulationError("until %s is before the current time %s"
                                  % (scen.format_time(end // 1000), scen.format_time(self.now // 1000)))
        fw = self.fw
        tick = fw.tick
        q = self._queue
        rec = self.recorder
        speed = self.speed
        w0 = time.perf_counter()
        v0 = self.now
        due = tick(self.now)
        steps = 0
        try:
            while True:
                t = due
                if q and (t is None or q[0][0] < t):
                    t = q[0][0]
                if rec is not None and (t is None or rec.next_sample < t):
                    t = rec.next_sample
                if t is None or t > end:
                    break
                if speed is not None:
                    _pace(w0, v0, t, speed)
                self.now = t
                while q and q[0][0] == t:
                    _, _, a, left = heapq.heappop(q)
                    self._apply(a, t)
                    if a.every is not None and (left is None or left > 1):
                        self._push(t + a.every * 1000, a, None if left is None else left - 1)
                if rec is not None and rec.next_sample == t:
                    rec.sample(t)
                    rec.next_sample = t + rec.sample_s * 1000
                due = tick(t)
                steps += 1
                if rec is not None:
                    rec.check()
            if speed is not None:
                _pace(w0, v0, end, speed)
            self.now = end
            tick(end)
            if rec is not None:
                rec.check()
        finally:
            self.wakeups += steps
            self.wall += time.perf_counter() - w0
        return self

    def run_for(self, duration):
        """Run for a duration ("30d", seconds) from the current time."""
        return self.run_until(self.now + scen.parse_duration(duration, "duration") * 1000)

    # -- the meter's own request path -------------------------------------
    def _port(self, key):
        role, port = scen.KEYS[key]
        return role, self._limits[port]

    def raw_read(self, tid, offset, count):
        """Table bytes straight from the store (no access check, no update)."""
        return self.meter.store.read(tid, offset, count)

    def request(self, c12, key="mak"):
        """One C12 request through Meter.execute with a key's role and its
        port's limits, at the current time. Returns the response bytes."""
        role, limits = self._port(key)
        return self.meter.execute(bytes(c12), role, limits, self.now)

    def read(self, table, offset=None, count=None, key="mak"):
        """Read a table (name, label or number) through the meter's C12 path
        in pieces the key's port allows; raises SimulationError on a refusal."""
        code, data = self._read(table, offset, count, key)
        if code:
            from osgp_meter import services
            raise SimulationError("read %s: %s" % (table, services.code_name(code)))
        return data

    def _read(self, table, offset, count, key):
        tid = _tid(table)
        role, limits = self._port(key)
        size = self.meter.store.size(tid)
        if size is None:
            return 5, b""
        off = offset or 0
        n = size - off if count is None else count
        out = bytearray()
        while n > 0:
            k = min(n, limits.max_read)
            rsp = self.meter.execute(bytes((0x3F, tid >> 8, tid & 0xFF, off >> 16, (off >> 8) & 0xFF,
                                            off & 0xFF, k >> 8, k & 0xFF)), role, limits, self.now)
            if rsp[0]:
                return rsp[0], bytes(out)
            out += rsp[3:]
            off += k
            n -= k
        return 0, bytes(out)

    def lp_block(self, n, block="newest"):
        """(offset, count) of a block of LP set n in BT(64+n): an index, or
        "newest", the newest complete block, at ((BT63.3 - 1) mod BT61.7) x
        ET21.8 [OPT p.31] (BT63.3 itself while the set is stalled)."""
        store = self.meter.store
        nblk = store.field(61, 7 + 6 * n, 2)
        bsize = store.field(2048 + 21, 131 * n + 8, 4)
        if not nblk or not bsize:
            raise SimulationError("load-profile set %d is not configured" % (n + 1))
        if block == "newest":
            last = store.field(63, 13 * n + 3, 2)
            nint = store.field(61, 7 + 6 * n + 2, 2)
            stalled = store.field(63, 13 * n + 11, 2) == nint
            block = last if stalled else (last - 1) % nblk
        if not 0 <= block < nblk:
            raise SimulationError("load-profile set %d has blocks 0..%d, not %d" % (n + 1, nblk - 1, block))
        return block * bsize, bsize

    def write(self, table, data, offset=None, key="mak"):
        """Write table bytes through the meter's C12 path: one full write
        (0x40) when it fits the port and no offset is given, else partial
        writes (0x4F) of the port's size. Returns the response code."""
        tid = _tid(table)
        role, limits = self._port(key)
        data = bytes(data)
        if offset is None and len(data) <= limits.max_write:
            req = bytes((0x40, tid >> 8, tid & 0xFF, len(data) >> 8, len(data) & 0xFF)) + data
            return self.meter.execute(req, role, limits, self.now)[0]
        off = offset or 0
        at = 0
        while at < len(data):
            chunk = data[at:at + limits.max_write]
            o = off + at
            req = bytes((0x4F, tid >> 8, tid & 0xFF, o >> 16, (o >> 8) & 0xFF, o & 0xFF,
                         len(chunk) >> 8, len(chunk) & 0xFF)) + chunk
            code = self.meter.execute(req, role, limits, self.now)[0]
            if code:
                return code
            at += len(chunk)
        return 0

    def call(self, procedure, params=b"", key="mak"):
        """Run a procedure through BT07/BT08 as a head-end does: write BT07 =
        number | PSN | parameters, read BT08. Returns (result, response
        data); result None with the table-write code when BT07 was refused."""
        number = _proc(procedure)
        psn = (self.meter.last_psn + 1) & 0xFF
        body = bytes((number & 0xFF, number >> 8, psn)) + bytes(params)
        code = self.write(BT07, body, None, key)
        if code:
            return None, bytes((code,))
        code, rsp = self._read(BT08, 0, min(self.meter.store.size(BT08) or 0,
                                             self._port(key)[1].max_read), key)
        if code or len(rsp) < 4:
            return None, bytes((code,))
        return rsp[3], _response(number, rsp[4:])

    def power(self, on):
        self.meter.set_power(bool(on), self.now)

    def inject(self, kind, **params):
        from osgp_meter import supply
        if self.meter.supply is None:
            raise SimulationError("inject %s: this meter has no supply subsystem (metering is off"
                                  " in the profile: [metering] enabled = false)" % kind)
        supply.inject(self.meter, kind, self.now, **params)

    # -- applying scenario actions ------------------------------------------
    def apply(self, a, t_ms):
        """Apply one scenario Action at driver time t_ms (ms) now: what the
        run loop does for each queued action (a fleet runner can call it
        too). Returns the outcome text; raises SimulationError when the
        answer is not the `expect`ed one."""
        return self._apply(a, t_ms)

    def _apply(self, a, t_ms):
        self.now = t_ms
        k = a.kind
        args = a.args
        outcome = "ok"
        code = None
        if k == "power":
            self.power(args["on"])
        elif k == "outage":
            self.power(False)
            on = scen.Action("power", {"on": True}, label="power on (end of %s outage)"
                             % scen.format_duration(args["seconds"]), origin=a.origin)
            self._push(t_ms + args["seconds"] * 1000, on)
        elif k == "inject":
            self.inject(args["kind"], **args["params"])
        elif k in ("procedure", "clock"):
            if k == "clock":
                if args["set"] is not None:
                    c = clock.to_civil(args["set"])
                    if not 2000 <= c[0] <= 2099:
                        raise SimulationError("%s: clock %s: BP10 takes years 2000-2099"
                                              % (a.origin, scen.format_time(args["set"])))
                    number, params = BP10, bytes((0x03, c[0] % 100, c[1], c[2], c[3], c[4], c[5]))
                else:
                    number, params = EP16, (args["delta"] & 0xFFFFFFFF).to_bytes(4, "little")
            else:
                number, params = args["number"], args["params"]
            result, data = self.call(number, params, args["key"])
            if result is None:
                from osgp_meter import services
                code = data[0]
                outcome = "BT07 write refused: %s" % services.code_name(code)
                code = 0x100 | code
            else:
                code = result
                outcome = "result %d (%s)%s" % (result, RESULTS.get(result, "?"),
                                                 ", response %s" % data.hex() if data else "")
        elif k == "write":
            code = self.write(args["table"], args["data"], args["offset"], args["key"])
            from osgp_meter import services
            outcome = services.code_name(code)
        elif k == "read":
            off, cnt = args["offset"], args["count"]
            if args.get("block") is not None:
                off, cnt = self.lp_block(args["table"] - 64, args["block"])
            code, data = self._read(args["table"], off, cnt, args["key"])
            from osgp_meter import services
            self.reads.append((self.utc, args["label"], args["offset"] or 0, code, data))
            outcome = ("%d bytes: %s" % (len(data), _short_hex(data))) if not code else services.code_name(code)
        what = a.describe()
        self.log.append((t_ms, self.utc, what, outcome))
        exp = args.get("expect") if isinstance(args, dict) else None
        if exp is not None and code != exp:
            raise SimulationError("%s at %s: %s answered %s, expected %d"
                                  % (a.origin, scen.format_time(t_ms // 1000), what, outcome, exp))
        return outcome

    # -- results -------------------------------------------------------------
    def decode(self, table):
        """The decoded fields of a table as the meter holds it (catalogue
        names, dimensions from the meter's own tables)."""
        from . import catalogue
        tid = _tid(table)
        data = self.read(tid)
        return catalogue.decode_table(tid, data, 0, plots._dims(self.raw_read))

    def registers(self):
        """BT23 decoded: [field dicts] (tools/catalogue.decode_table)."""
        return self.decode(23)

    def history(self, title="BT74 History Log"):
        """The history log as text lines (tools/history.render)."""
        from . import history as hist
        arg_len, raw = hist.read_log(self.raw_read)
        return hist.render(raw, arg_len, None, title)

    def plot_data(self, title=None):
        """What plot.plot() draws: the whole run when recording, else what
        the meter holds."""
        rec = self.recorder
        t_end = self.utc
        if rec is None:
            return plots.collect(self.read, t_end, title)
        names = plots.event_names()
        points = rec.samples[:]
        if not points or points[-1][0] != t_end:
            rec.sample(self.now)        # the end of the run
            points.append(rec.samples.pop())
        return {"title": title or "simulated meter", "lp": rec.lp_sets(),
                "registers": plots.series_of(points),
                "events": [(e[0], e[3], names.get(e[3], "Event %d" % e[3])) for e in rec.events],
                "now": t_end}

    def plot(self, path, title=None):
        return plots.plot(self.plot_data(title), path, title)

    def save(self, directory):
        """Save the meter (tools/state.py) and the driver time next to it,
        so a later Simulation(state_dir=...) continues at the same time and
        `osgp-meter serve --state DIR` continues the meter on the wall clock."""
        states.save(self.fw, directory)
        tmp = os.path.join(directory, SIDECAR + ".tmp")
        with open(tmp, "w") as f:
            json.dump({"driver_ms": self.now, "meter_utc": self.utc,
                       "meter_time": scen.format_time(self.utc)}, f)
        os.replace(tmp, os.path.join(directory, SIDECAR))

    def summary(self):
        """A dict: the run, energy per tier, maximum demands, LP, events."""
        meter = self.meter
        store = meter.store
        read = self.raw_read
        if meter.metrology is not None:
            meter.metrology.update(meter, self.utc)
        rmap = plots.register_map(read)
        raw23 = read(23, 0, rmap["size"])
        fwd, rev, tf, tr = plots.register_values(raw23, rmap)
        span = (self.now - self.start) / 1000.0
        out = {
            "start": scen.format_time(self.start // 1000), "end": scen.format_time(self.now // 1000),
            "meter_clock": scen.format_time(self.utc), "clock_offset_s": meter.clock_offset // 1000,
            "simulated_s": span, "wall_s": round(self.wall, 4),
            "acceleration": round(span / self.wall) if self.wall > 0 else None,
            "wakeups": self.wakeups, "actions": len(self.log), "powered": meter.powered,
            "seed": self.config.get("seed"),
            "energy_wh": {"forward": fwd, "reverse": rev,
                          "tiers": [{"tier": k, "forward": tf[k], "reverse": tr[k]} for k in range(len(tf))]},
            "demands": [],
        }
        for src, t_off, v_off in rmap["demands"]:
            name, unit = plots.SUMMATION_SOURCES.get(src, ("source %d" % src, ""))
            unit = {"Wh": "W", "varh": "var", "VAh": "VA"}.get(unit, unit)
            when = None
            if t_off is not None and any(raw23[t_off:t_off + 5]):
                when = scen.format_time(clock.decode_ltime(bytes(raw23[t_off:t_off + 5]) + b"\x00"))[:16]
            out["demands"].append({"source": src, "name": name, "unit": unit,
                                   "value": plots._s32(raw23, v_off) if v_off is not None else None,
                                   "time": when})
        lp = []
        rec = self.recorder
        sets = rec.lp_sets() if rec is not None else [s for s in (plots.lp_set(read, n) for n in range(4)) if s]
        for s in sets:
            # a continued meter's older blocks are in the plot, not in the counts
            ints = [e for e in s["intervals"] if e[0] > self.utc0]
            lp.append({"set": s["set"] + 1, "interval_s": s["interval_s"], "channels": len(s["channels"]),
                       "intervals": len(ints),
                       "power_fail": sum(1 for e in ints if e[1] & plots.COMMON_POWER_FAIL),
                       "clock_set": sum(1 for e in ints if e[1] & (plots.COMMON_CLOCK_FWD | plots.COMMON_CLOCK_BACK)),
                       "partial": sum(1 for e in ints if plots.CH_PARTIAL in e[2]),
                       "long": sum(1 for e in ints if plots.CH_LONG in e[2]),
                       "dst": sum(1 for e in ints if e[1] & plots.COMMON_DST),
                       "held_by_meter": plots.lp_status(read, s["set"])[1],
                       "recorded_during_run": rec is not None})
        out["load_profile"] = lp
        seq = store.field(BT74, 5, 4)
        names = plots.event_names()
        counts = {}
        evs = [e for e in (rec.events if rec is not None else events.entries(meter)) if e[1] > self.ev_seq0]
        for e in evs:
            nm = "%s (%d)" % (names.get(e[3], "Event"), e[3])
            counts[nm] = counts.get(nm, 0) + 1
        out["events"] = {"logged": seq - self.ev_seq0 if seq >= self.ev_seq0 else seq,
                         "by_event": dict(sorted(counts.items(), key=lambda kv: -kv[1]))}
        out["log"] = [{"time": scen.format_time(t // 1000), "meter_time": scen.format_time(m),
                       "action": w, "outcome": o} for t, m, w, o in self.log]
        return out


def _pace(w0, v0, t, speed):
    target = w0 + (t - v0) / 1000.0 / speed
    while True:
        d = target - time.perf_counter()
        if d <= 0:
            return
        time.sleep(min(d, 0.5))


def _sidecar(directory):
    """The driver time a simulation saved (ms), else the state file's
    modification time (a state saved by `serve`, on the wall clock)."""
    p = os.path.join(directory, SIDECAR)
    if os.path.exists(p):
        with open(p) as f:
            return int(json.load(f)["driver_ms"])
    return int(os.path.getmtime(os.path.join(directory, states.STATE_FILE)) * 1000)


def _tid(table):
    if isinstance(table, int):
        return table
    from . import catalogue
    e = catalogue.lookup_table(table)
    if e is None:
        raise SimulationError("unknown table %r" % (table,))
    return e["id"]


def _proc(procedure):
    if isinstance(procedure, int):
        return procedure
    from . import catalogue
    e = catalogue.lookup_procedure(procedure)
    if e is None:
        raise SimulationError("unknown procedure %r" % (procedure,))
    return e["number"]


def _response(number, data):
    """BT08's response data cut to the procedure's response (BT08 is a
    fixed-size table: the rest is padding). The catalogue's layout gives the
    length when it is fixed; otherwise trailing zero bytes are dropped."""
    from . import catalogue
    e = catalogue.lookup_procedure(number)
    fields = e.get("response") if e else None
    if fields and all(isinstance(f.get("size"), int) and f.get("count") != "rest" for f in fields):
        return bytes(data[:max(f["offset"] + f["size"] for f in fields)])
    return bytes(data).rstrip(b"\x00")


def _short_hex(data, n=24):
    h = bytes(data[:n]).hex()
    return h + ("..." if len(data) > n else "")


def _kwh(wh):
    return "%12.3f kWh" % (wh / 1000.0)


def format_summary(s):
    """Text lines of a summary() dict."""
    lines = []
    acc = s["acceleration"]
    lines.append("simulated %s -> %s UTC (%s); meter clock %s UTC%s"
                 % (s["start"], s["end"], scen.format_duration(int(s["simulated_s"])), s["meter_clock"],
                    "" if not s["clock_offset_s"] else " (offset %+d s)" % s["clock_offset_s"]))
    lines.append("ran in %.2f s wall: %s x real time, %d wake-ups, %d scenario actions, seed %s%s"
                 % (s["wall_s"], "{:,}".format(acc) if acc else "-", s["wakeups"], s["actions"], s["seed"],
                    "" if s["powered"] else "; the meter is unpowered at the end"))
    if s["log"]:
        lines.append("")
        lines.append("scenario actions (driver time, UTC)")
        for e in s["log"]:
            lines.append("  %s  %-44s %s" % (e["time"], e["action"], e["outcome"]))
    lines.append("")
    e = s["energy_wh"]
    lines.append("energy (BT23)            forward (import)   reverse (export)")
    lines.append("  total            %s   %s" % (_kwh(e["forward"]), _kwh(e["reverse"])))
    for t in e["tiers"]:
        lines.append("  tier %d           %s   %s" % (t["tier"], _kwh(t["forward"]), _kwh(t["reverse"])))
    if s["demands"]:
        lines.append("maximum demand (BT23 total block)")
        for d in s["demands"]:
            lines.append("  %-24s %8s %s%s" % (d["name"], d["value"], d["unit"],
                                              "  at %s UTC (interval end)" % d["time"] if d["time"] else ""))
    for lp in s["load_profile"]:
        extra = []
        for k in ("power_fail", "clock_set", "partial", "long", "dst"):
            if lp[k]:
                extra.append("%d %s" % (lp[k], k.replace("_", " ")))
        lines.append("load profile set %d: %d intervals recorded%s (%d-min, %d channels); %s; the meter"
                     " holds %d blocks" % (lp["set"], lp["intervals"],
                                          " during the run" if lp["recorded_during_run"] else "",
                                          lp["interval_s"] // 60, lp["channels"],
                                          ", ".join(extra) or "no flagged intervals", lp["held_by_meter"]))
    ev = s["events"]
    lines.append("events logged: %d%s" % (ev["logged"], ": " + ", ".join(
        "%s x%d" % kv for kv in ev["by_event"].items()) if ev["by_event"] else ""))
    return lines


# ---------------------------------------------------------------------------
# `osgp-meter simulate`
# ---------------------------------------------------------------------------

def add_parser(subparsers):
    p = subparsers.add_parser("simulate", help="run one meter in virtual time through a scenario")
    p.add_argument("--profile", help="device profile (TOML); default: the built-in profile")
    p.add_argument("--scenario", metavar="FILE", help="scenario TOML: [[at]] entries (docs/simulate.md)")
    p.add_argument("--start", metavar="ISO", help="start time, e.g. 2026-03-01T00:00:00Z (default: see docs)")
    span = p.add_mutually_exclusive_group()
    span.add_argument("--days", type=float, help="simulated days (default 1)")
    span.add_argument("--until", metavar="ISO", help="end time")
    p.add_argument("--speed", default=None, metavar="X|max",
                   help="X times real time, or max (default: as fast as possible)")
    p.add_argument("--state", metavar="DIR", help="continue from the meter saved in DIR (if any) and"
                   " save it there at the end, for `osgp-meter serve --state DIR`")
    p.add_argument("--seed", type=int, help="the load model's seed (overrides the profile)")
    p.add_argument("--log", action="store_true", help="print the history log (BT74)")
    p.add_argument("--registers", action="store_true", help="print BT23 decoded")
    p.add_argument("--plot", metavar="FILE.png", help="plot the run's load profile and registers")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    return p


def run(args, out=None):
    out = out or sys.stdout
    if args.plot:
        try:
            plots._matplotlib()
        except plots.PlotUnavailable as exc:
            print("osgp-meter simulate: %s" % exc, file=sys.stderr)
            return 2
    settings = {}
    actions = None
    if args.scenario:
        settings, actions = scen.load(args.scenario)
    speed = args.speed if args.speed is not None else settings.get("speed")
    seed = args.seed if args.seed is not None else settings.get("seed")
    start = scen.parse_time(args.start, "--start") if args.start else settings.get("start")
    until = scen.parse_time(args.until, "--until") if args.until else None
    days = args.days
    if until is None and days is None:
        until = settings.get("until")
        days = settings.get("days")
    if days is not None and days <= 0:
        raise SimulationError("--days must be > 0")
    continuing = bool(args.state) and os.path.exists(os.path.join(args.state, states.STATE_FILE))
    if start is None and not continuing:
        prof = profiles.load(args.profile).get("clock", {}).get("start")
        if prof is not None:
            start = scen.parse_time(prof, "clock.start")
        elif until is not None:
            raise SimulationError("--until needs --start (or [clock] start in the profile)")
        else:
            # default: end at midnight UTC today, so `serve --state` carries on in real time
            start = midnight_today() - int(round((days or 1) * 86400))
    sim = Simulation(profile_path=args.profile, start=start, seed=seed, state_dir=args.state,
                     speed=speed, record=True)
    if actions:
        sim.load_scenario(actions)
    end = until * 1000 if until is not None else sim.now + int(round((days or 1) * 86400 * 1000))
    interrupted = False
    try:
        sim.run_until(end)
    except KeyboardInterrupt:
        interrupted = True
    except SimulationError as exc:
        print("osgp-meter simulate: %s" % exc, file=sys.stderr)
        print("  (stopped at %s UTC)" % scen.format_time(sim.now // 1000), file=sys.stderr)
        return 1
    s = sim.summary()
    if args.registers:
        s["registers"] = [{"offset": f["offset"], "name": f["name"], "value": f["text"]} for f in sim.registers()]
    if args.log:
        s["history"] = sim.history()
    if args.json:
        print(json.dumps(s, indent=2), file=out)
    else:
        if interrupted:
            print("interrupted at %s UTC" % scen.format_time(sim.now // 1000), file=out)
        print("\n".join(format_summary(s)), file=out)
        if args.registers:
            print("\nBT23 Current Register Data (decoded)", file=out)
            for f in s["registers"]:
                print("  %5d  %-40s %s" % (f["offset"], f["name"], f["value"]), file=out)
        if args.log:
            print("", file=out)
            print("\n".join(s["history"]), file=out)
    if args.plot:
        sim.plot(args.plot, "osgp-meter simulate: %s -> %s UTC%s" % (
            s["start"][:16], s["end"][:16], " (%s)" % os.path.basename(args.scenario) if args.scenario else ""))
        print("plot written to %s" % args.plot, file=sys.stderr if args.json else out)
    if args.state:
        sim.save(args.state)
        msg = "state saved to %s (meter clock %s UTC)" % (args.state, scen.format_time(sim.utc))
        if sim.utc > time.time() + 60:
            msg += "; note: that is ahead of this machine's clock, and `serve --state` runs the meter" \
                   " on the wall clock"
        print(msg, file=sys.stderr if args.json else out)
    return 130 if interrupted else 0
