"""Fleet worker processes (docs/fleet.md, ``processes`` > 1): starting
them, asking them (run, stats, survey, memory) and stopping them, and the
worker's own loop. A mixin of Fleet (tools/fleet.py), moved here to keep
that module short."""
import os

from .fleet_config import FleetError


class FleetWorkers:
    """Fleet's worker-process methods (see Fleet's docstring)."""

    # -- worker processes ----------------------------------------------------------------
    def _start_workers(self):
        import multiprocessing as mp
        # fork where there is one: a harness script without a __main__ guard
        # works, and the parent holds no shards to copy
        methods = mp.get_all_start_methods()
        ctx = mp.get_context("fork" if "fork" in methods else "spawn")
        d = self.config.to_dict()
        for p in range(self.config.processes):
            mine = [i for i, a in enumerate(self.assignment) if a == p]
            if not mine:
                continue
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(d, mine, child), name="fleet-%d" % p,
                               daemon=True)
            proc.start()
            self._workers.append((proc, parent, mine))
        for proc, conn, mine in self._workers:
            try:
                msg = conn.recv()
            except EOFError:
                msg = ("error", "the worker process died (exit code %s)" % proc.exitcode)
            if msg[0] == "error":
                self._stop_workers()
                raise FleetError("worker for shards %s: %s" % (mine, msg[1]))

    def _ask(self, what, *args):
        out = []
        for proc, conn, mine in self._workers:
            conn.send((what,) + args)
        for proc, conn, mine in self._workers:
            msg = conn.recv()
            if msg[0] == "error":
                raise FleetError("worker for shards %s: %s" % (mine, msg[1]))
            out.append(msg[1])
        return out

    def _worker_stats(self):
        parts = self._ask("stats")
        shards = sorted((s for p in parts for s in p["shards"]), key=lambda s: s["index"])
        inj = {"applied": sum(p["injections"]["applied"] for p in parts),
               "failed": sum(p["injections"]["failed"] for p in parts)}
        return {"meters": len(self.meters), "shards": shards, "injections": inj,
                "metering": self.metering, "commission": self.config.commission,
                "processes": len(self._workers)}

    def call_workers(self, what, *args):
        """Run a worker command ("run", until_ms | "survey", options) in every
        worker process; their answers, in process order."""
        return self._ask(what, *args)

    def _stop_workers(self):
        for proc, conn, mine in self._workers:
            try:
                conn.send(("stop",))
            except (OSError, BrokenPipeError):
                pass
        for proc, conn, mine in self._workers:
            try:
                if conn.poll(30):
                    conn.recv()
            except (EOFError, OSError):
                pass
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
        self._workers = []


def _worker(d, shards, conn):
    """A worker process: its shards of the fleet, commands from the pipe."""
    from .fleet import Fleet, survey
    try:
        fleet = Fleet(d, only=shards)
        fleet.start()
        conn.send(("ready", [sh.stats() for sh in fleet.shards]))
    except Exception as exc:        # reported to the parent, which raises
        conn.send(("error", "%s: %s" % (type(exc).__name__, exc)))
        return
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            fleet.stop()
            return
        try:
            if msg[0] == "stop":
                fleet.stop()
                conn.send(("ok", fleet.stats()))
                return
            if msg[0] == "stats":
                conn.send(("ok", fleet.stats()))
            elif msg[0] == "run":
                fleet.run(until_ms=msg[1])
                conn.send(("ok", fleet.stats()))
            elif msg[0] == "survey":
                conn.send(("ok", [survey(fleet, sh, **msg[1]) for sh in fleet.shards]))
            elif msg[0] == "memory":
                import resource
                conn.send(("ok", {"rss": _rss_bytes(), "peak": resource.getrusage(
                    resource.RUSAGE_SELF).ru_maxrss * 1024}))
            else:
                conn.send(("error", "unknown command %r" % (msg[0],)))
        except Exception as exc:
            conn.send(("error", "%s: %s" % (type(exc).__name__, exc)))


def _rss_bytes():
    """Resident set size of this process, bytes (Linux /proc; else peak)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
