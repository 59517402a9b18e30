"""The power-fail harness: kill a meter at random points, restart it from its
state, and prove that nothing acknowledged is lost and nothing is
half-applied (docs/persistence.md).

    osgp-meter power-fail --kills 300 [--seed 1] [--store dir|sqlite]

A parent process (modules preloaded) forks one child per "life". The child
opens the state (state directory or fleet SQLite database), does what a
meter does at boot (an unrun transaction resumes), then runs a seeded
workload, op after op, each one followed by `fw.commit()` and an
acknowledgement on a pipe. It dies by SIGKILL: from the parent at a random
moment, or from inside the commit itself (a torn journal record, a record
written but not fsynced, a compaction cut before or after its rename).

The parent runs the same workload on a reference meter in memory, booted at
the start of each life from the state the previous check proved right (both
sides restart alike), and keeps its non-volatile state after every op.
After each death it loads the state as a restart would and checks that it
equals the reference state after the last acknowledged op, or after the one
op beyond it (committed, killed before the acknowledgement left) — never
anything else: an acknowledged op lost, or an op half-applied or applied
twice (a write, a transaction, an activation, a code packet), cannot match.
It also checks that the download bitmap (ET17) claims no packet whose bytes
are not in the bank file. The next life continues from the op the state
holds. `--bench` measures commit costs instead.

The workload mixes: partial writes of 1-100 bytes to NV tables; the MEP
sequence number, the clock and procedure PSNs (the meta); transactions
(ET52, written in 1-3 chunks, some with a failing request: rolled back);
pending tables with relative, absolute and procedure-only activation
(activated by later requests, ticks and BP12); firmware downloads (EP08 announce, sometimes a restart, EP09
packets in random order with repeats, EP10 switch, the trial's end).
"""
import argparse
import os
import random
import select
import shutil
import signal
import struct
import sys
import tempfile
import time

from osgp_meter import access
from osgp_meter import catalogue as cat
from osgp_meter import pending
from osgp_meter import persist
from osgp_meter.codebank import RamBankStorage
from osgp_meter.device import PortLimits
from osgp_meter.firmware import Firmware

from . import state as states
from .codebank_store import FileBankStorage

BANK_SIZE = 4096               # bytes per code bank (the workload's images are < 700)

T0 = 1_790_000_000_000          # driver ms of op 0
MAK = access.ROLE_MAK
LIMITS = PortLimits("power-fail", 4096, 4096, 0)
BT05, BT06 = 5, 6
BT07 = 7
ET03 = 2048 + 3
ET17 = 2048 + 17
ET52 = 2048 + 52
ET55 = 2048 + 55
EP08, EP09, EP10 = 2048 + 8, 2048 + 9, 2048 + 10
PLAIN = ((BT05, 10), (BT06, 80), (ET03, 130), (ET55, 128))      # NV, MAK-writable, no hooks
STAGES = ("append", "append", "append", "fsync", "snapshot", "rename", "truncate")
KINDS = ("write", "meta", "txn", "pending", "download", "tick")
# episodes per kind (a download episode is ~20 ops, a write one ~3)
WEIGHTS = {"write": 6, "meta": 3, "txn": 5, "pending": 6, "download": 1, "tick": 1}


def u16(n):
    return bytes((n & 0xFF, (n >> 8) & 0xFF))


def c12_write(tid, data, offset=0):
    n = len(data)
    return bytes((0x4F, tid >> 8, tid & 0xFF, offset >> 16, (offset >> 8) & 0xFF, offset & 0xFF,
                  n >> 8, n & 0xFF)) + bytes(data)


def c12_call(number, psn, params=b""):
    data = u16(number) + bytes((psn,)) + params
    return bytes((0x40, 0, BT07, len(data) >> 8, len(data) & 0xFF)) + data


def txn_body(number, records):
    body = b"".join(u16(len(r)) + r for r in records)
    return u16(7 + len(body)) + b"\x00" + u16(number) + body + u16(number)


# -- the workload ------------------------------------------------------------------------

class Workload:
    """The seeded op list: op i is a tuple; run(fw, i) applies it at driver
    time T0 + i s. Generated in episodes, independent of the meter's state,
    so a restarted meter and the reference run the same ops."""

    def __init__(self, seed, kinds=KINDS, reannounce=0.2):
        self.rng = random.Random(seed)
        self.reannounce = reannounce    # share of downloads announced again midway (restart flag)
        self.kinds = kinds
        self.ops = []
        self.images = {}          # image CRC -> bytes
        self.txn_no = 0
        self.version = 0x3900

    def op(self, i):
        while len(self.ops) <= i:
            self._episode()
        return self.ops[i]

    def _episode(self):
        r = self.rng
        kind = r.choices(self.kinds, [WEIGHTS[k] for k in self.kinds])[0]
        add = self.ops.append
        if kind == "write":
            for _ in range(r.randint(1, 6)):
                tid, size = r.choice(PLAIN)
                n = r.randint(1, min(100, size))
                off = r.randint(0, size - n)
                add(("write", tid, off, bytes(r.getrandbits(8) for _ in range(n))))
        elif kind == "meta":
            add(r.choice((("seq", r.randint(1, 1000)), ("clock", r.randint(-7200, 7200)),
                          ("psn", r.getrandbits(8)))))
        elif kind == "txn":
            self.txn_no = (self.txn_no + 1) & 0xFFFF
            recs = []
            for _ in range(r.randint(1, 4)):
                tid, size = r.choice(PLAIN)
                n = r.randint(1, min(40, size))
                off = r.randint(0, size - n)
                recs.append(c12_write(tid, bytes(r.getrandbits(8) for _ in range(n)), off))
            if r.random() < 0.25:
                recs.insert(r.randint(0, len(recs)), c12_write(1, b"\x00"))   # BT01: refused
            body = txn_body(self.txn_no, recs)
            cuts = sorted(r.sample(range(1, len(body)), min(r.randint(0, 2), len(body) - 1)))
            at = 0
            for c in cuts + [len(body)]:
                add(("txn", at, body[at:c]))
                at = c
        elif kind == "pending":
            # activation: `delay` s after receipt, at a minute's start, or by BP12
            mode = r.choice(("rel", "rel", "abs", "proc"))
            tid, size = r.choice(((BT05, 10), (BT06, 80)))
            for _ in range(r.randint(1, 2)):
                n = r.randint(1, min(16, size))
                off = r.randint(0, size - n)
                add(("pending", mode, r.randint(1, 4), tid, off,
                     bytes(r.getrandbits(8) for _ in range(n))))
            if mode == "proc":
                add(("bp12",))
            for _ in range(r.randint(0, 3)):
                add(("tick",))
        elif kind == "download":
            from osgp_meter import fwimage
            self.version += 1
            body = bytes(r.getrandbits(8) for _ in range(r.randint(100, 600)))
            img = fwimage.build(body, self.version)
            crc = img[20] | (img[21] << 8)
            self.images[crc] = img
            ps = r.choice((32, 50, 64))
            n = (len(img) + ps - 1) // ps
            add(("ep08", len(img), ps, crc, 0))
            order = list(range(n)) + [r.randrange(n) for _ in range(r.randint(0, 3))]
            r.shuffle(order)
            restart = r.randrange(len(order)) if r.random() < self.reannounce else None
            for k, p in enumerate(order):
                if k == restart:
                    add(("ep08", len(img), ps, crc, 1))       # erase again, mid-download
                add(("ep09", p, img[p * ps:(p + 1) * ps]))
            if restart is not None:                       # what the restart erased
                for p in range(n):
                    add(("ep09", p, img[p * ps:(p + 1) * ps]))
            add(("ep10", crc))
            add(("tick",))
            add(("tick",))
        else:
            add(("tick",))

    def run(self, fw, i):
        """Apply op i; returns the meter's answer (bytes) or None for a tick."""
        op = self.op(i)
        now = T0 + i * 1000
        k = op[0]
        m = fw.meter
        if k == "write":
            return m.execute(c12_write(op[1], op[3], op[2]), MAK, LIMITS, now)
        if k == "txn":
            return m.execute(c12_write(ET52, op[2], op[1]), MAK, LIMITS, now)
        if k == "pending":
            mode, delay, tid, off, data = op[1:]
            if mode == "rel":
                ped = pending.ped_relative(seconds=delay)
            elif mode == "abs":
                ped = pending.ped_absolute((m.utc(now) // 60 + 1) * 60)
            else:
                ped = pending.ped_procedure(b"pf")
            return m.execute(c12_write(4096 + tid, ped + data, off), MAK, LIMITS, now)
        if k == "bp12":
            return m.execute(c12_call(12, i & 0xFF), MAK, LIMITS, now)
        if k == "seq":
            fw.mep.seq = (fw.mep.seq + op[1]) & 0xFFFFFFFF
            fw._mep_seq_changed(fw.mep.seq)
            return b"\x00"
        if k == "clock":
            m.set_utc(m.utc(now) + op[1], now)
            return b"\x00"
        if k == "psn":
            return m.execute(c12_call(2048 + 61, op[1], b"\x00"), MAK, LIMITS, now)   # EP61 unlock
        if k == "ep08":
            p = op[1].to_bytes(4, "little") + u16(op[2]) + u16(op[3]) + bytes((op[4],))
            return m.execute(c12_call(EP08, i & 0xFF, p), MAK, LIMITS, now)
        if k == "ep09":
            return m.execute(c12_call(EP09, i & 0xFF, u16(op[1]) + op[2]), MAK, LIMITS, now)
        if k == "ep10":
            return m.execute(c12_call(EP10, i & 0xFF, u16(op[1])), MAK, LIMITS, now)
        fw.tick(now)
        return None


def new_firmware(storage=None, restore=None, now=T0):
    return Firmware({"mep_secure": False, "codebanks": True, "bank_storage": storage,
                     "restore": restore}, now)


def nv_state(fw):
    """The whole non-volatile state: NV tables, parts, meta."""
    store = fw.meter.store
    out = {}
    for tid in sorted(store.written):
        if store.tables[tid][cat.T_FLAGS] & cat.F_NV:
            out[tid] = bytes(store.written[tid])
    for name, (get, put) in sorted((fw.meter.nv_parts or {}).items()):
        out[name] = bytes(get())
    out["_meta"] = persist.meta_bytes(fw)
    return out


def _diff(a, b):
    keys = sorted(set(a) | set(b), key=str)
    return [k for k in keys if a.get(k) != b.get(k)]


# -- the storages ---------------------------------------------------------------------------

class DirStore:
    """A state directory (tools/state.py)."""
    name = "dir"
    stages = STAGES

    def __init__(self, path, fsync, journal_max):
        self.path = path
        self.fsync = fsync
        self.journal_max = journal_max

    def open(self, fw, crash):
        sd = states.StateDir(self.path, fsync=self.fsync, journal_max=self.journal_max, crash=crash)
        sd.open(fw)
        return sd

    def peek(self, fw):
        states.StateDir(self.path).peek(fw)

    def banks(self):
        """The code-bank bytes: files next to the state (what flash is on a
        board; tools/codebank_store.py), synced when the state is."""
        return FileBankStorage(os.path.join(self.path, "banks"), BANK_SIZE, fsync=self.fsync)

    def release(self):
        pass

    def sizes(self):
        out = {}
        for n in (states.SNAPSHOT, states.JOURNAL):
            p = os.path.join(self.path, n)
            out[n] = os.path.getsize(p) if os.path.exists(p) else 0
        return out


class SqliteStore:
    """One meter in a fleet database (tools/fleet_db.py)."""
    name = "sqlite"
    stages = ("append", "append", "fsync", "snapshot")

    def __init__(self, path, fsync, journal_max):
        self.path = path
        self.db = os.path.join(path, "fleet.db")
        self.fsync = fsync
        self.journal_max = journal_max
        self.fdb = None

    def _fdb(self):
        from . import fleet_db
        if self.fdb is None:
            self.fdb = fleet_db.FleetDB(self.db, durable=self.fsync, journal_max=self.journal_max)
        return self.fdb

    def open(self, fw, crash):
        db = self._fdb()
        db.open_meter(1, "m1", fw)
        db.crash = crash
        return db

    def peek(self, fw):
        from . import fleet_db
        fleet_db.peek(self.db, 1, fw)

    def banks(self):
        """The code-bank bytes: rows of the database (as a fleet keeps them)."""
        return self._fdb().bank_storage(1, BANK_SIZE)

    def release(self):
        if self.fdb is not None:
            self.fdb.close()
            self.fdb = None

    def sizes(self):
        out = {}
        for n in ("fleet.db", "fleet.db-wal"):
            p = os.path.join(self.path, n)
            out[n] = os.path.getsize(p) if os.path.exists(p) else 0
        return out


# -- the lives --------------------------------------------------------------------------------

def _child(store, work, start, wfd, plan, ack_first=False):
    """One life: boot from the state, run ops from `start`, ack each."""
    stage, target, cut = plan
    seen = {}
    at = [start - 1]            # the op being committed (start - 1: the boot)

    def crash(st, fd, data):
        # append/fsync: the commit of op `target` (or the first one after it
        # that writes anything); compaction stages: the target-th compaction.
        if stage is None or st != stage:
            return
        seen[st] = seen.get(st, 0) + 1
        if (at[0] >= target) if st in ("append", "fsync") else (seen[st] >= target):
            if fd is not None and data is not None and st in ("append", "snapshot"):
                os.write(fd, data[:int(len(data) * cut)])     # a torn write
            os.kill(os.getpid(), signal.SIGKILL)

    storage = store.banks()
    held = []
    # a boot: the state goes back through the firmware's restore hook; the
    # features' parts get their bytes as they register; an unrun transaction
    # would resume (transactions.attach)
    fw = new_firmware(storage, lambda f: held.append(store.open(f, crash)), T0 + start * 1000)
    fw.commit()
    os.write(wfd, b"R")
    i = start
    while True:
        at[0] = i
        work.run(fw, i)
        if ack_first:
            os.write(wfd, struct.pack("<I", i))
            fw.commit()
        else:
            fw.commit()                   # committed = acknowledged: the commit first
            os.write(wfd, struct.pack("<I", i))
        i += 1


class Harness:
    def __init__(self, seed=1, store="dir", path=None, fsync=False, journal_max=4096,
                 max_delay_ms=25.0, hook_share=0.5, kinds=KINDS, reannounce=0.2, out=None):
        self.seed = seed
        self.tmp = None
        if path is None:
            path = self.tmp = tempfile.mkdtemp(prefix="power-fail-")
        os.makedirs(path, exist_ok=True)
        cls = SqliteStore if store == "sqlite" else DirStore
        self.store = cls(path, fsync, journal_max)
        self.work = Workload(seed, kinds, reannounce)
        # The reference: the same ops, in memory, booted at the start of every
        # life from the state the last check proved right (so both sides boot
        # alike: what a restart itself does, e.g. a pending table overdue
        # after the cut activating at restoration, is the same on both).
        self.ref_work = Workload(seed, kinds, reannounce)
        self.ref_storage = RamBankStorage(BANK_SIZE)
        self.ref = new_firmware(self.ref_storage)
        self.ref_at = -1
        self.states = {-1: nv_state(self.ref)}
        self.activations = set()
        self.boot = None              # the verified state to boot the next life from (payload)
        # The scout: the same ops on a meter that never restarts, run ahead
        # to find where the interesting ops are (the kill targets).
        self.scout_work = Workload(seed, kinds, reannounce)
        self.scout = new_firmware(RamBankStorage(BANK_SIZE))
        self.scout_at = -1
        self.scout_acts = set()
        self.ack_first = False        # a broken driver (acknowledges, then commits): must be caught
        self.rng = random.Random(seed * 7919 + 1)
        self.max_delay = max_delay_ms / 1000.0
        self.hook_share = hook_share
        self.out = out
        self.next_op = 0
        self.stats = {"kills": 0, "hook_kills": 0, "signal_kills": 0, "states_checked": 0,
                      "acked_ops": 0, "losses": 0, "bitmap_errors": 0,
                      "beyond_ack": 0, "in_flight": {}, "failures": []}

    def close(self):
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)

    @staticmethod
    def _advance(fw, work, i, acts):
        m = fw.meter
        before = (len(m.pending.entries), m.banks.state)
        work.run(fw, i)
        if before[0] > len(m.pending.entries) or (before[1] == 2 and m.banks.state != 2):
            acts.add(i)               # a pending table or a new image took effect

    def expected(self, j):
        """The reference's NV state after op j (kept from the life's start on)."""
        while self.ref_at < j:
            self.ref_at += 1
            self._advance(self.ref, self.ref_work, self.ref_at, self.activations)
            self.states[self.ref_at] = nv_state(self.ref)
        return self.states[j]

    def _reboot(self, start):
        """The reference boots at op `start` from the verified state, its
        bank bytes those of the child's file (flash survives a cut)."""
        if self.boot is None:
            return
        payload = self.boot
        banks = self.store.banks()
        for bank in (0, 1):
            self.ref_storage.write(bank, 0, banks.read(bank, 0, BANK_SIZE))
        self.store.release()

        def restore(f):
            persist.attach(f, None)
            f.nv.apply(payload, snapshot=True)
            f.nv.loaded()
        fw = new_firmware(self.ref_storage, restore, T0 + start * 1000)
        fw.nv = None
        fw.meter.store.dirty = None
        fw.commit()
        self.ref = fw
        self.ref_at = start - 1
        self.states = {start - 1: nv_state(fw)}
        self.boot = None

    def life(self):
        """Fork, let it run, kill it, check the state. Returns the check's outcome."""
        rng = self.rng
        hook = rng.random() < self.hook_share
        plan = (None, 0, 0.0)
        start = self.next_op
        self._reboot(start)
        if hook:
            stage = rng.choice(self.store.stages)
            if stage in ("append", "fsync"):
                target = self._target(start + rng.randint(0, 60), rng.random() < 0.5)
            else:
                target = rng.randint(1, 2)
            plan = (stage, target, rng.random())
        self.expected(start - 1)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:                              # the child
            os.close(r)
            try:
                _child(self.store, self.work, start, w, plan, self.ack_first)
            except BaseException:
                import traceback
                traceback.print_exc()
            finally:
                os._exit(3)
        os.close(w)
        last = start - 1
        buf = b""
        ready = False
        deadline = None
        killed_by_us = False
        while True:
            timeout = None
            if ready and not hook:
                timeout = max(0.0, deadline - time.monotonic())
            if hook and ready:
                timeout = max(0.0, deadline - time.monotonic())   # a hook that never fires
            rl = select.select([r], [], [], timeout)[0]
            if not rl:
                os.kill(pid, signal.SIGKILL)
                killed_by_us = True
                rl = [r]
            chunk = os.read(r, 65536)
            if not chunk:
                break
            if not ready:
                ready = True
                chunk = chunk[1:]
                delay = rng.random() * self.max_delay if not hook else 0.1
                deadline = time.monotonic() + delay
            buf += chunk
            n = len(buf) // 4
            if n:
                last = struct.unpack_from("<I", buf, 4 * (n - 1))[0]
                buf = buf[4 * n:]
        os.close(r)
        _, status = os.waitpid(pid, 0)
        if not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL):
            raise RuntimeError("the meter process failed (status %r), not killed" % status)
        st = self.stats
        st["kills"] += 1
        if hook and not killed_by_us:
            st["hook_kills"] += 1
        else:
            st["signal_kills"] += 1
        if last >= start:
            st["acked_ops"] += last - start + 1
        return self.check(last, start, plan if hook else None)

    def _target(self, i, interesting):
        """Op i, or (interesting) the first op from i on of a kind drawn at
        random: one that completes a transaction, announces or switches a
        code image, or activates a pending table or a new image (where a
        half-applied state would hide)."""
        if not interesting:
            return i
        want = self.rng.choice(("txn", "ep08", "ep10", "activation"))
        for j in range(i, i + 1000):
            op = self.work.op(j)
            while self.scout_at < j:
                self.scout_at += 1
                self._advance(self.scout, self.scout_work, self.scout_at, self.scout_acts)
            if want == "activation":
                hit = j in self.scout_acts
            elif want == "txn":
                nxt = self.work.op(j + 1)
                hit = op[0] == "txn" and (nxt[0] != "txn" or nxt[1] == 0)
            else:
                hit = op[0] == want
            if hit:
                return j
        return i

    def kind_of(self, j):
        """What op j is, for the report: the op in flight at a kill."""
        op = self.work.op(j)
        k = op[0]
        if j in self.activations:
            return "activation"
        if k == "txn":
            nxt = self.work.op(j + 1)
            return "transaction-run" if nxt[0] != "txn" or nxt[1] == 0 else "transaction-part"
        return {"ep08": "download-announce", "ep09": "download-packet", "ep10": "download-switch",
                "seq": "meta", "clock": "meta", "psn": "meta", "pending": "pending-write",
                "bp12": "activation"}.get(k, k)

    def check(self, last, start, plan):
        st = self.stats
        fw = new_firmware(self.store.banks())
        self.store.peek(fw)
        got = nv_state(fw)
        st["states_checked"] += 1
        a = self.expected(last)
        b = self.expected(last + 1)
        flight = self.kind_of(last + 1)
        st["in_flight"][flight] = st["in_flight"].get(flight, 0) + 1
        if got == a:
            self.next_op = last + 1
        elif got == b:
            st["beyond_ack"] += 1
            self.next_op = last + 2
        else:
            # neither the acknowledged state nor the next op's: lost or half-applied
            st["losses"] += 1
            st["failures"].append({"last_ack": last, "start": start, "op": self.work.op(last + 1),
                                   "plan": plan, "differs_from_acked": _diff(got, a),
                                   "differs_from_next": _diff(got, b)})
        self._bitmap(fw)
        ok = got == a or got == b
        if ok:
            p = persist.Persist(fw)
            self.boot = p.snapshot()
        self.store.release()
        return ok

    def _bitmap(self, fw):
        """ET17 claims no packet whose bytes are not in the bank."""
        b = fw.meter.banks
        if b is None or b.state != 1:           # LOADING
            return
        img = self.work.images.get(b.crc)
        if img is None:
            return
        for n in range(b.packets):
            if b.have(fw.meter, n):
                want = img[n * b.psize:(n + 1) * b.psize]
                if b.storage.read(b.inactive, n * b.psize, len(want)) != want:
                    self.stats["bitmap_errors"] += 1
                    self.stats["failures"].append({"bitmap": n, "crc": b.crc})
                    return

    def run(self, kills):
        t0 = time.monotonic()
        for k in range(kills):
            self.life()
            if self.stats["failures"]:
                break                   # the state diverged: what follows would not mean much
            if self.out is not None and (k + 1) % 50 == 0:
                print("%d kills, %d states checked, %d ops acknowledged, failures %d"
                      % (k + 1, self.stats["states_checked"], self.stats["acked_ops"],
                         len(self.stats["failures"])), file=self.out, flush=True)
        self.stats["seconds"] = time.monotonic() - t0
        self.stats["sizes"] = self.store.sizes()
        return self.stats


def bench(path, commits=2000, out=sys.stdout):
    """Commit costs of both storages on this machine: the workload's ops,
    each followed by fw.commit(); time per commit that wrote something
    (ops that changed nothing cost a check, ~1-4 us, and are not counted)."""
    from . import fleet_db
    rows = []
    for name, durable in (("state dir", False), ("state dir", True),
                          ("sqlite", False), ("sqlite", True)):
        d = tempfile.mkdtemp(prefix="nv-bench-", dir=path)
        work = Workload(11, reannounce=0.0)
        if name == "state dir":
            sd = states.StateDir(d, fsync=durable, journal_max=states.JOURNAL_MAX)
            fw = new_firmware(None, sd.open)
            st = sd.stats
        else:
            db = fleet_db.FleetDB(os.path.join(d, "fleet.db"), durable=durable)
            fw = new_firmware(None, lambda f: db.open_meter(1, "m1", f))
            st = db.stats
        fw.commit()
        c0, b0 = st["commits"], st["bytes"]
        spent = 0.0
        for i in range(commits):
            work.run(fw, i)
            t = time.perf_counter()
            fw.commit()                 # collecting the changes, encoding, writing
            spent += time.perf_counter() - t
        n = st["commits"] - c0
        if name == "state dir":
            sizes = "snapshot %d B, journal %d B" % sd.sizes()
            sd.close()
        else:
            db_b, wal_b, jrows = db.sizes()
            sizes = "db %d B, WAL %d B, %d journal rows" % (db_b, wal_b, jrows)
            db.close()
        rows.append((name, "fsync every commit" if durable else "no fsync" if name == "state dir"
                     else "synchronous=NORMAL", n, spent / max(n, 1) * 1e6,
                     (st["bytes"] - b0) / max(n, 1), st["compactions"], sizes))
        shutil.rmtree(d, ignore_errors=True)
    for r in rows:
        print("%-9s  %-19s %5d commits  %7.1f us/commit  %6.1f B/commit  %3d compactions  %s" % r,
              file=out)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(prog="osgp-meter power-fail", description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--store", choices=("dir", "sqlite"), default="dir")
    ap.add_argument("--dir", help="keep the state here (default: a temporary directory)")
    ap.add_argument("--fsync", action="store_true", help="fsync every commit (slower; a kill does "
                    "not need it, a host crash would)")
    ap.add_argument("--journal-max", type=int, default=4096,
                    help="compact when the journal passes this many bytes (small: many compactions)")
    ap.add_argument("--max-delay-ms", type=float, default=25.0)
    ap.add_argument("--only", help="comma-separated op kinds (%s)" % ",".join(KINDS))
    ap.add_argument("--reannounce", type=float, default=0.2,
                    help="share of downloads announced again midway (EP08 restart flag)")
    ap.add_argument("--bench", action="store_true",
                    help="measure commit costs (both storages, with and without fsync) instead")
    args = ap.parse_args(argv)
    if args.bench:
        bench(args.dir)
        return 0
    kinds = tuple(args.only.split(",")) if args.only else KINDS
    h = Harness(args.seed, args.store, args.dir, args.fsync, args.journal_max, args.max_delay_ms,
                kinds=kinds, reannounce=args.reannounce, out=sys.stdout)
    try:
        st = h.run(args.kills)
    finally:
        h.close()
    fails = st.pop("failures")
    print("kills %d (%d inside a commit, %d by signal), states checked %d, ops acknowledged %d"
          % (st["kills"], st["hook_kills"], st["signal_kills"], st["states_checked"], st["acked_ops"]))
    print("in flight at the kill: %s" % ", ".join("%s %d" % kv for kv in sorted(st["in_flight"].items())))
    print("committed beyond the last acknowledgement: %d" % st["beyond_ack"])
    print("losses or half-applied states %d, bitmap errors %d  (%.1f s)"
          % (st["losses"], st["bitmap_errors"], st["seconds"]))
    for f in fails[:10]:
        print("FAILURE %r" % (f,))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
