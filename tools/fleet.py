"""Fleets: N virtual meters from one template profile, sharded per
transformer, reachable over CN/IP (host side, CPython). docs/fleet.md is the
reference.

    from osgp_host.fleet import Fleet
    fleet = Fleet({"meters": 600, "seed": 7, "metering": False})
    fleet.start()                        # builds the shards (in this process)
    ch = fleet.channel(0)                # shard 0's Channel (transformer T1)
    dc = fleet.dc(0)                     # a DC on it, with the meters' keys
    dc.read(fleet.shards[0].meters[0], "BT01")
    fleet.run(for_ms=60_000)             # every shard, one minute of virtual time
    fleet.stop()                         # pcap closed, state saved

* **Identity**: every meter's serial number, Neuron ID, PLC unicast key,
  MEP keys and load-model seed come from the fleet seed and its index
  (tools/fleet_identity.py); the catalogue and the template's table image
  are shared and immutable; a meter pays only for the tables it writes.
* **Shards**: one per transformer (Topology.shards()), each its own Channel
  with its own Simulator, seeds and virtual clock, independent of the
  others; several shards run in one process, several processes
  (multiprocessing) share a machine. ``cnip_port`` gives shard i a CN/IP
  gateway (tools/cnip_gateway.py) on UDP port base + i.
* **Injections**: ``[[inject]]`` entries of the fleet config apply the
  scenario actions of tools/scenario.py to selected meters (``meters =
  "1-20" | "random:5%" | ...``) at their times; a power-off also takes the
  meter off the line.
* **Topology**: a file or shipped name, or generated for N meters
  (``generate_topology``): transformers of at most ``per_transformer``
  meters, each with the feeders of the default topology, its rural feeder's
  far end beyond the DC's range (repeaters needed).
"""
import heapq
import os
import threading
import time

from osgp_meter import access

from . import fleet_identity as fid
from . import scenario as scen
from .sim import DEFAULT_START_MS
# The parts live in their own modules; every name is importable from here too.
from .fleet_config import (DEFAULT_DOMAIN, FLEET_KEYS, IDENTITY_KEYS, INJECT_KEYS,  # noqa: F401
                           PER_TRANSFORMER, FleetConfig, FleetError, coerce_config)
from .fleet_topology import generate_topology, resolve_topology  # noqa: F401
from .fleet_shard import (BT01, ET03, FleetMeter, Shard, shard_address,  # noqa: F401
                          pcap_tracer, _actions_class, _enable_network, _own_identity)
from .fleet_lookup import FleetLookups
from .fleet_workers import FleetWorkers, _rss_bytes, _worker  # noqa: F401

STATE_VERSION = "2"        # the --state database's format (tools/fleet_db.py)


# ---------------------------------------------------------------- the fleet

class Fleet(FleetLookups, FleetWorkers):
    """N meters from one template, sharded per transformer (module docstring).

    ``Fleet(config, **overrides)``: config is a FleetConfig, a TOML path, a
    dict (docs/fleet.md) or None; overrides are [fleet] keys (meters=...,
    seed=...). ``only``: build just these shard indices (worker processes).

    | member | |
    |---|---|
    | ``start()`` | build the shards (processes = 1) and, when paced (a finite speed, or CN/IP), run them in a background thread; processes > 1: start the workers |
    | ``run(until_ms=None, for_ms=None)`` | run every in-process shard as fast as possible (each to the same driver time) |
    | ``stop()`` | stop the loop or the workers, close gateways and captures, save the state |
    | ``meters`` | every meter id, in fleet order (index k = position + 1) |
    | ``shards`` | the in-process Shard objects |
    | ``channel(shard)`` / ``shard(s)`` | by index, transformer id or meter id |
    | ``firmware(meter)`` / ``node(meter)`` | a meter's Firmware / FleetMeter |
    | ``identity(meter)`` | its Identity (by id, index or Neuron ID) |
    | ``key_for(target)`` | the PLC unicast key of a DC Target (what ``DC(keys=...)`` takes) |
    | ``dc(shard, **kw)`` | a DC on a shard's channel with the meters' keys and names |
    | ``stats()`` | per shard: frames, losses, virtual time; injections |
    | ``log`` | the injections applied: (driver ms, meter id, what, outcome) |
    """

    def __init__(self, config=None, only=None, **overrides):
        from . import profile as profiles
        self.config = cfg = coerce_config(config, **overrides)
        self.topology = topo = resolve_topology(cfg)
        positions = [n.id for n in topo.nodes if n.role == "meter"]
        if cfg.meters is not None:
            if cfg.meters > len(positions):
                raise FleetError("%s: %d meters, but the topology %s has %d meter positions"
                                 % (cfg.source, cfg.meters, topo.name or topo.source,
                                    len(positions)))
            positions = positions[:cfg.meters]
        self.meters = positions
        self._index = {mid: k + 1 for k, mid in enumerate(positions)}
        self.transformer_of = {n.id: n.transformer for n in topo.nodes}
        self.transformers = [tr.id for tr in topo.transformers]
        if cfg.shards is not None and cfg.topology not in (None, "generate") \
                and cfg.shards != len(self.transformers):
            raise FleetError("%s: shards = %d, but the topology has %d transformers"
                             % (cfg.source, cfg.shards, len(self.transformers)))
        self.scheme = cfg.scheme
        start = cfg.start if cfg.start is not None else (
            topo.start_ms if topo.start_ms is not None else DEFAULT_START_MS)
        self.start_ms = start
        data = profiles.load(cfg.profile and cfg.path(cfg.profile))
        tmpl = profiles.to_config(data)
        if not data.get("clock", {}).get("start"):
            tmpl["clock"] = start // 1000
        if cfg.metering is not None:
            tmpl["metering"] = cfg.metering
        self.template = tmpl
        self.metering = bool(tmpl.get("metering"))
        self._bt01 = bytes(tmpl["image"].get(BT01, bytes(24)))
        self._et03 = ET03 in tmpl["image"]
        self.log = []
        self.inject_stats = {"applied": 0, "failed": 0}
        self._seq = 0
        self._bcast_keys = {}
        self._actions = None
        self.shards = []
        self._by_id = {}
        self._only = None if only is None else set(only)
        self._thread = None
        self._stop = threading.Event()
        self._workers = []
        self._built = False
        self._db = None
        try:
            self._selections = [fid.select(e["meters"], self.meters, cfg.seed, where,
                                           self.transformer_of)
                                for e, _, _, where in cfg.inject]
        except fid.SelectionError as exc:
            raise FleetError(str(exc)) from None
        # shard topologies, in transformer order; which process runs which
        self._shard_topos = topo.shards() if len(topo.transformers) > 1 else [topo]
        self.shard_ids = [s.transformers[0].id for s in self._shard_topos]
        self.assignment = [i % cfg.processes for i in range(len(self._shard_topos))]
        self.remote = cfg.processes > 1 and only is None

    # -- building ------------------------------------------------------------------
    def build(self):
        """Build the in-process shards (idempotent; nothing when worker
        processes run them)."""
        if self._built or self.remote:
            return self
        self._built = True
        import gc
        was = gc.isenabled()
        gc.disable()            # a bulk build: the cyclic collector would rescan it again and again
        try:
            self._build()
        finally:
            if was:
                gc.enable()
        return self

    def _build(self):
        cfg = self.config
        saved_ms = {}
        if cfg.state:
            from .fleet_db import FleetDB, FleetDBError
            self._db = FleetDB(cfg.path(cfg.state))
            try:
                self._db.check_fleet({"seed": str(cfg.seed), "meters": str(len(self.meters)),
                                      "version": STATE_VERSION})
            except FleetDBError as exc:
                self._db.close()
                self._db = None
                raise FleetError(str(exc)) from None
            saved_ms = self._db.shard_times()
        wanted = set(self.meters)
        # injections: per meter index, [(t_ms, Action)]
        plan = {}
        for (e, action, spread, where), sel in zip(cfg.inject, self._selections):
            t0 = scen.resolve([action], self.start_ms // 1000)[0][0] * 1000
            rng = fid._rng(cfg.seed, "spread/%s" % where) if spread else None
            for k in sel:
                dt = rng.randrange(spread * 1000) if rng is not None else 0
                plan.setdefault(k, []).append((t0 + dt, action))
        for i, stopo in enumerate(self._shard_topos):
            if self._only is not None and i not in self._only:
                continue
            sh = Shard(self, i, stopo, saved_ms.get(self.shard_ids[i], self.start_ms))
            now = sh.sim.now_ms
            local = 0
            for spec in stopo.nodes:
                if spec.id not in wanted:
                    continue
                local += 1
                k = self._index[spec.id]
                fm = self._make_meter(sh, spec.id, k, local, now)
                for t, action in plan.get(k, ()):
                    if t >= now:
                        self._seq += 1
                        left = action.times if action.every is not None else None
                        fm.push(t, self._seq, action, left)
                sh.channel.attach(spec.id, fm)
                sh.book.add(spec.id, fm.plc)
                sh.meters.append(spec.id)
                sh.indices.append(k)
            self.shards.append(sh)
            self._by_id[sh.id] = sh
            self._by_id[i] = sh
        if cfg.pcap:
            for sh in self.shards:
                self._open_pcap(sh)
        return self

    def _make_meter(self, sh, mid, k, local, now):
        from osgp_meter.firmware import Firmware
        ident = self.scheme.identity(k, sh.id)
        tmpl = self.template
        keys = dict(tmpl["keys"])
        if self.config.keys == "derived":
            keys[access.ROLE_PLC] = ident.plc_key
            keys[access.ROLE_MAK] = ident.mak
            keys[access.ROLE_MBK] = ident.mbk
        keys[access.ROLE_BCAST] = self._bcast(ident, sh.id)
        c = dict(tmpl, keys=keys, seed=ident.load_seed, plc=True, neuron_id=ident.neuron_id)
        if self.config.commission == "direct":
            s, n = shard_address(local)
            c["plc_domain"] = self.config.domain
            c["plc_subnet"] = s
            c["plc_node"] = n
        if self._db is None:
            fw = Firmware(c, now)
            _own_identity(fw, ident, self._bt01, self._et03)
        else:
            db = self._db

            def restore(fw):
                # the saved state, through the firmware's restore hook: before
                # the PLC node, the features and the metering read it
                _own_identity(fw, ident, self._bt01, self._et03)
                db.open_meter(k, mid, fw)
            # code-bank bytes in the database too: a download resumes after a cut
            fw = Firmware(dict(c, restore=restore, bank_storage=db.bank_storage(k)), now)
        _enable_network(fw.plc)
        return FleetMeter(fw, now, sh, mid)

    def _open_pcap(self, sh):
        from .pcap import PcapWriter
        path = self.config.path(self.config.pcap)
        if len(self._shard_topos) > 1:
            stem, ext = os.path.splitext(path)
            path = "%s.%s%s" % (stem, sh.id, ext or ".pcap")
        sh.pcap = PcapWriter(path)
        sh.pcap_path = path
        sh.channel.add_tracer(pcap_tracer(sh.pcap, sh.channel))

    # -- lookups, inventory, keys, dc(): tools/fleet_lookup.py (FleetLookups)

    # -- injections ----------------------------------------------------------------------
    def _apply_due(self, fm, now_ms):
        if self._actions is None:
            self._actions = _actions_class()
        q = fm.inj
        while q and q[0][0] <= now_ms:
            t, _, a, left = heapq.heappop(q)
            act = self._actions(fm, t, self)
            try:
                outcome = act.apply(a, t)
                self.inject_stats["applied"] += 1
            except (ValueError, KeyError) as exc:    # SimulationError, a refused action
                outcome = "FAILED: %s" % exc
                self.inject_stats["failed"] += 1
            self.log.append((t, fm.id, a.describe(), outcome))
            if a.every is not None and (left is None or left > 1):
                self._seq += 1
                fm.push(t + a.every * 1000, self._seq, a, None if left is None else left - 1)
        if not q:
            fm.inj = None
        fm.due = fm.fw.tick(now_ms)

    def _set_line(self, fm, on):
        """A meter without supply is off the line (and back on with it)."""
        ch = fm.shard.channel
        i = ch.index[fm.id]
        off = ch.off_count[i] > 0
        if off == (not on):
            return
        # The channel's own offline switch (also used by its offline faults).
        ch._set_offline(i, not on)

    # -- running ---------------------------------------------------------------------------
    @property
    def paced(self):
        return self.config.speed is not None or self.config.cnip_port is not None

    def start(self):
        """Build and start (see the class docstring). Returns self."""
        cfg = self.config
        if self.remote:
            if not self._workers:
                self._start_workers()
            return self
        self.build()
        if cfg.cnip_port is not None:
            from .cnip_gateway import CnipGateway
            for sh in self.shards:
                if sh.gateway is not None:
                    continue
                if sh.dc_id is None:
                    raise FleetError("shard %s has no DC position for its CN/IP gateway" % sh.id)
                sh.port = cfg.cnip_port + sh.index if cfg.cnip_port else 0
                sh.gateway = CnipGateway(sh.channel, sh.dc_id, host=cfg.cnip_host, port=sh.port,
                                         session=fid._u32(cfg.seed, "cnip/%s" % sh.id))
                sh.port = sh.gateway.address[1]
                sh.gateway.start()
        if self.paced and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="fleet", daemon=True)
            self._thread.start()
        return self

    def _loop(self, until_ms=None):
        """Run every shard paced at `speed` times real time (1 with CN/IP
        and no speed): each shard's simulator steps to the common target."""
        speed = self.config.speed or 1.0
        sims = [sh.sim for sh in self.shards]
        w0 = time.monotonic()
        v0 = [s.now for s in sims]
        while not self._stop.is_set():
            el = int((time.monotonic() - w0) * speed * 1e6)
            done = True
            for s, v in zip(sims, v0):
                target = v + el
                if until_ms is not None:
                    target = min(target, s.us_of_ms(until_ms))
                    done = done and target >= s.us_of_ms(until_ms)
                else:
                    done = False
                s.run(until=target)
            if until_ms is not None and done:
                return
            nxt = [s.next_time() for s in sims]
            nxt = [t - v for t, v in zip(nxt, v0) if t is not None]
            wait = 0.005
            if nxt:
                wait = min(wait, max(0.0, min(nxt) / (speed * 1e6) - (time.monotonic() - w0)))
            self._stop.wait(wait if wait > 0 else 0)

    def run(self, until_ms=None, for_ms=None):
        """Run every in-process shard as fast as possible (independently) up
        to driver time until_ms, or for_ms more virtual ms. Paced fleets
        (speed set) run at their speed. Returns self."""
        if self.remote:
            if not self._workers:
                self.start()
            if for_ms is not None:
                until_ms = max(s["virtual_ms"] for s in self.stats()["shards"]) + int(for_ms)
            if until_ms is None:
                raise FleetError("run(): give until_ms or for_ms")
            self.call_workers("run", until_ms)
            return self
        self.build()
        if for_ms is not None:
            until_ms = max(sh.sim.now_ms for sh in self.shards) + int(for_ms) if self.shards else None
        if until_ms is None:
            raise FleetError("run(): give until_ms or for_ms")
        if self._thread is not None:            # paced in the background: wait for it
            while self._thread.is_alive() and min(sh.sim.now_ms for sh in self.shards) < until_ms:
                time.sleep(0.02)
            return self
        if self.config.speed is not None:
            self._stop.clear()
            self._loop(until_ms)
            return self
        for sh in self.shards:
            sh.channel.run(until_ms=until_ms)
        return self

    def stop(self, save=True):
        """Stop the loop / workers, close gateways and captures, save state."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        if self._workers:
            self._stop_workers()
        for sh in self.shards:
            if sh.gateway is not None:
                sh.gateway.close()
                sh.gateway = None
            if sh.pcap is not None:
                sh.pcap.close()
                sh.pcap = None
        if self._db is not None:
            if save:
                # every answered request is committed already; this commits
                # the rest (ticks, overheard frames) and the shards' times
                with self._db.batch():
                    self._db.commit_all()
                    self._db.save_shard_times({sh.id: sh.sim.now_ms for sh in self.shards})
            self._db.close()
            self._db = None
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- reporting -----------------------------------------------------------------------
    def stats(self):
        if self._workers:
            return self._worker_stats()
        return {"meters": len(self.meters), "shards": [sh.stats() for sh in self.shards],
                "injections": dict(self.inject_stats), "metering": self.metering,
                "commission": self.config.commission}

    # -- worker processes: tools/fleet_workers.py (FleetWorkers)


# ---------------------------------------------------------------- survey

def survey(fleet, shard, tables=("BT01", "BT23"), discover=None, progress=None, **dc_kw):
    """Discover, commission (when the meters are factory-fresh) and read
    ``tables`` from every meter of a shard through its DC, via repeaters
    where needed; returns a dict of what happened (see docs/fleet.md).
    The discovery and commissioning are tools/dc_topology.py's."""
    from .fleet_survey import survey_shard
    return survey_shard(fleet, fleet.shard(shard) if not isinstance(shard, Shard) else shard,
                        tables=tables, discover=discover, progress=progress, **dc_kw)


# ---------------------------------------------------------------- the CLI: tools/fleet_cli.py

from .fleet_cli import (add_parser, config_from_args, run, summarise_surveys,  # noqa: E402,F401
                        format_survey, _range)
