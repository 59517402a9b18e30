"""A shard's survey: discover its meters, commission the factory-fresh ones
and read tables from every meter through the shard's data concentrator, via
repeaters where needed (host side, CPython). What `osgp-meter demo`,
`osgp-meter fleet --survey` and `osgp-meter bench fleet` run.

The network formation (ADD discovery through repeaters, FCM commissioning,
repeater path selection) is tools/dc_topology.py's; this module only
sequences it and keeps the books: meters found per hop count, time to
commission, reads that succeeded, virtual and wall time, frames and losses
on the channel.
"""
import time

from .dc import PlcError


def _phase(ch, v0, w0, f0):
    return {"virtual_s": round((ch.sim.now_ms - v0) / 1000.0, 3),
            "wall_s": round(time.perf_counter() - w0, 4),
            "frames": ch.stats["tx"] - f0}


def survey_shard(fleet, shard, tables=("BT01", "BT23"), discover=None, progress=None,
                 expected=True, **dc_kw):
    """Survey one in-process shard (see the module docstring). ``discover``:
    None = when the fleet's meters are factory-fresh (commission "none").
    ``progress(phase, done, total)`` is called along the way. ``expected``:
    the DC knows how many meters the shard has (its discovery windows are
    sized for the meters not found yet). Returns a dict:
    shard, meters, found, hops {hop count: meters}, commissioned, read_ok,
    read_failed, reads {table: ok count}, failures [(meter, table, error)],
    phases {discovery, commissioning, reads: virtual_s, wall_s, frames},
    virtual_s, wall_s, frames, collisions, loss, loss_reasons."""
    if shard.gateway is not None:
        raise ValueError("shard %s: its CN/IP gateway holds the DC position; a survey needs it "
                         "(a fleet without cnip_port)" % shard.id)
    if fleet._thread is not None:
        raise ValueError("the fleet runs paced in its background thread; a survey runs the "
                         "channel itself (a fleet without speed / cnip_port)")
    ch = shard.channel
    st0 = dict(ch.stats)
    lr0 = dict(ch.loss_reasons)
    v0, w0 = ch.sim.now_ms, time.perf_counter()
    if discover is None:
        discover = fleet.config.commission == "none"
    out = {"shard": shard.id, "meters": len(shard.meters), "tables": list(tables), "phases": {}}
    if discover:
        net = _form_network(fleet, shard, out, progress, dc_kw, expected)
        dc = net.dc
        targets = net.targets
    else:
        dc = fleet.dc(shard, **dc_kw)
        addr = shard.addresses()
        targets = [(mid, mid) for mid in shard.meters if mid in addr]
        out["found"] = len(targets)
        out["commissioned"] = len(targets)
        out["hops"] = {}
        net = None
    # reads: every table from every meter, meter by meter
    v1, w1, f1 = ch.sim.now_ms, time.perf_counter(), ch.stats["tx"]
    ok_meters = 0
    reads = {t: 0 for t in tables}
    failures = []
    for i, (mid, target) in enumerate(targets):
        good = True
        for t in tables:
            try:
                if net is not None:
                    net.read(target, t)
                else:
                    dc.read(target, t)
                reads[t] += 1
            except PlcError as exc:
                good = False
                failures.append((mid, t, str(exc)))
        ok_meters += good
        if progress is not None:
            progress("reads", i + 1, len(targets))
    out["phases"]["reads"] = _phase(ch, v1, w1, f1)
    out["read_ok"] = ok_meters
    out["read_failed"] = len(shard.meters) - ok_meters
    out["reads"] = reads
    out["failures"] = failures
    out["virtual_s"] = round((ch.sim.now_ms - v0) / 1000.0, 3)
    out["wall_s"] = round(time.perf_counter() - w0, 4)
    out["frames"] = ch.stats["tx"] - st0["tx"]
    out["collisions"] = ch.stats["collisions"] - st0["collisions"]
    out["loss"] = ch.stats["loss"] - st0["loss"]
    out["loss_reasons"] = {k: v - lr0.get(k, 0) for k, v in ch.loss_reasons.items()
                           if v - lr0.get(k, 0)}
    dc.close()
    return out


class _Network:
    """What network formation hands the reads: the DC, the meters to read
    [(meter id, DC target)] and a read(target, table) that takes the
    repeater path where one is needed."""

    def __init__(self, dc, targets, read):
        self.dc = dc
        self.targets = targets
        self.read = read


class _Closer:
    def __init__(self, fn=None):
        self.fn = fn

    def close(self):
        if self.fn is not None:
            self.fn()


def _form_network(fleet, shard, out, progress, dc_kw, expected=True):
    """Discovery, commissioning and path selection through
    tools/dc_topology.py (its Discovery runs the DC's own node at the
    shard's DC position); the reads then go along each meter's path with
    the key and sequence number the commissioning left."""
    from . import dc_topology as T
    from . import catalogue
    from .plc_client import PlcClient, PlcSecurity, MAX_READ
    ch = shard.channel
    scheme = fleet.scheme
    names = {scheme.neuron_id(k): mid for mid, k in zip(shard.meters, shard.indices)}
    disc = T.Discovery(ch, shard.dc_id, factory_key=lambda nid: fleet.plc_key(nid), names=names,
                       book=shard.book, **dc_kw)
    spent = {"virtual_ms": 0, "wall_s": 0.0, "frames": 0, "n": 0}
    commission = disc.commission

    def timed_commission(*a, **kw):
        v, w, f = ch.sim.now_ms, time.perf_counter(), ch.stats["tx"]
        try:
            return commission(*a, **kw)
        finally:
            spent["virtual_ms"] += ch.sim.now_ms - v
            spent["wall_s"] += time.perf_counter() - w
            spent["frames"] += ch.stats["tx"] - f
            spent["n"] += 1
            if progress is not None:
                progress("commissioning", spent["n"], len(shard.meters))
    disc.commission = timed_commission
    n = len(shard.meters)
    # The DC is told how many meters to expect (the head end's meter list).
    run_kw = {"expected": n} if expected and n > 24 else {}
    v0, w0, f0 = ch.sim.now_ms, time.perf_counter(), ch.stats["tx"]
    if progress is not None:
        progress("discovery", 0, n)
    summary = disc.run(**run_kw)
    total = _phase(ch, v0, w0, f0)
    out["phases"]["formation"] = total
    out["phases"]["commissioning"] = {"virtual_s": round(spent["virtual_ms"] / 1000.0, 3),
                                      "wall_s": round(spent["wall_s"], 4),
                                      "frames": spent["frames"]}
    out["phases"]["discovery"] = {
        "virtual_s": round(total["virtual_s"] - spent["virtual_ms"] / 1000.0, 3),
        "wall_s": round(total["wall_s"] - spent["wall_s"], 4),
        "frames": total["frames"] - spent["frames"]}
    topo = disc.topology
    out["found"] = summary["discovered"]
    out["commissioned"] = summary["commissioned"]
    out["weak"] = summary.get("weak", 0)
    out["hops"] = {str(h): n for h, n in sorted(summary["hops"].items())}
    out["discovery_stats"] = dict(summary.get("stats", {}))
    by_name = {m.name: m for m in topo.meters.values()}
    targets = [(mid, by_name[mid].nid) for mid in shard.meters
               if mid in by_name and by_name[mid].commissioned]
    clients = {}

    def client(nid):
        c = clients.get(nid)
        if c is None:
            m = topo.meters[nid]

            def exchange(apdu, nid=nid):
                ans = disc.exchange(nid, apdu)
                if ans is None:                 # once more, the same bytes
                    ans = disc.exchange(nid, apdu)
                return ans
            dims = {}

            def size_of(table):
                entry = catalogue.lookup_table(table)
                if entry is None:
                    return None
                if isinstance(entry["size"], int):
                    return entry["size"]

                def dim(tid, offset, nbytes):
                    got = dims.get(tid)
                    if got is None:
                        e = catalogue.lookup_table(tid)
                        whole = e is not None and isinstance(e["size"], int) and \
                            e["size"] <= MAX_READ
                        got = dims[tid] = (0, c.read(tid)) if whole else \
                            (offset, c.read(tid, offset, nbytes))
                    base, raw = got
                    return int.from_bytes(raw[offset - base:offset - base + nbytes], "little")
                return catalogue.table_size(entry, dim)
            c = clients[nid] = PlcClient(exchange, PlcSecurity(m.key, m.seq), size_of=size_of,
                                         name=m.name)
        return c

    def read(nid, table):
        from .dc import table_id
        c = client(nid)
        try:
            return c.read(table_id(table))
        finally:
            topo.meters[nid].seq = c.security.seq       # the DC's books stay in step
    return _Network(_Closer(), targets, read)
