"""One SQLite database for a whole fleet's non-volatile state
(`osgp-meter fleet --state FILE`, docs/persistence.md).

The same payloads as a state directory (meter/persist.py, meter/nvlog.py
entries), in rows instead of files:

    fleet(key, value)                  seed, meter count, format: a state
                                       never lands on another fleet's meters
    shards(id, now_ms)                 each shard's virtual time
    snap(k, id, seq, payload)          per meter: the whole state as of seq
    journal(k, seq, payload)           per meter: commits seq+1, seq+2, ...
    banks(k, bank, off, data)          per meter: code-bank bytes, one row per
                                       packet written (DbBankStorage)

WAL mode; every commit of a meter is one SQLite transaction (an INSERT into
journal; when the meter's journal outgrows `journal_max` bytes the same
transaction rewrites its snap row and deletes its journal rows). SQLite
makes each transaction atomic, so no CRC is needed here. `durable=True`
sets synchronous=FULL (every commit survives a host crash: an fsync per
commit); the default, NORMAL, survives any kill of the process (what a
meter's power cut is here) and fsyncs only at checkpoints.
`batch()` groups the commits of many meters in one transaction (a fleet
saving at stop, or a driver that commits a whole shard step at once).
"""
import os
import sqlite3
import time
from contextlib import contextmanager

from osgp_meter import persist

FORMAT = "2"                     # rows of nvlog payloads (1: session 1's blobs, fleet.py)
JOURNAL_MAX = 16 * 1024
BANK_SIZE = 768 * 1024           # as tools/codebank_store.py: ET17's 10,000 packets of 70 bytes


class FleetDBError(ValueError):
    pass


class FleetDB:
    def __init__(self, path, durable=False, journal_max=JOURNAL_MAX, timeout=60.0):
        self.path = path
        self.journal_max = journal_max
        self.db = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        self._depth = 0          # batch() nesting
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=%s" % ("FULL" if durable else "NORMAL"))
        with self._txn():
            self.db.execute("CREATE TABLE IF NOT EXISTS fleet (key TEXT PRIMARY KEY, value TEXT)")
            self.db.execute("CREATE TABLE IF NOT EXISTS shards (id TEXT PRIMARY KEY, now_ms INTEGER)")
            self.db.execute("CREATE TABLE IF NOT EXISTS snap (k INTEGER PRIMARY KEY, id TEXT, "
                            "seq INTEGER, payload BLOB)")
            self.db.execute("CREATE TABLE IF NOT EXISTS journal (k INTEGER, seq INTEGER, "
                            "payload BLOB, PRIMARY KEY (k, seq)) WITHOUT ROWID")
            self.db.execute("CREATE TABLE IF NOT EXISTS banks (k INTEGER, bank INTEGER, "
                            "off INTEGER, data BLOB, PRIMARY KEY (k, bank, off)) WITHOUT ROWID")
        self.meters = {}         # k -> [fw, seq, base seq, journal bytes]
        self.crash = None        # the power-fail harness: crash(stage, None, payload)
        self.stats = {"commits": 0, "bytes": 0, "compactions": 0, "commit_s": 0.0}

    # -- transactions ---------------------------------------------------------------
    @contextmanager
    def _txn(self):
        if self._depth:
            yield
            return
        self.db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self.db.execute("ROLLBACK")
            raise
        self._depth = 0
        self.db.execute("COMMIT")

    @contextmanager
    def batch(self):
        """Every commit inside is part of one SQLite transaction."""
        with self._txn():
            yield self

    # -- the fleet ------------------------------------------------------------------
    def check_fleet(self, want):
        """The database belongs to this fleet (want: {key: str}), or is new."""
        have = dict(self.db.execute("SELECT key, value FROM fleet"))
        if have:
            for k, v in want.items():
                if have.get(k) != v:
                    raise FleetDBError("%s: state of another fleet (%s = %s, this fleet %s)"
                                       % (self.path, k, have.get(k), v))
        else:
            with self._txn():
                self.db.executemany("INSERT OR REPLACE INTO fleet VALUES (?, ?)", want.items())

    def shard_times(self):
        return dict(self.db.execute("SELECT id, now_ms FROM shards"))

    def save_shard_times(self, times):
        with self._txn():
            self.db.executemany("INSERT OR REPLACE INTO shards VALUES (?, ?)", times.items())

    # -- meters ---------------------------------------------------------------------
    def open_meter(self, k, meter_id, fw):
        """Load meter k's saved state into `fw` (the firmware's restore hook
        is the place) and persist its commits from now on. True when a
        state was loaded; a new meter gets its first snap row."""
        nv = persist.attach(fw, lambda payload: self._commit(k, payload))
        row = self.db.execute("SELECT seq, payload FROM snap WHERE k = ?", (k,)).fetchone()
        st = self.meters[k] = [fw, 0, 0, 0]
        if row is None:
            nv.loaded()
            self._compact(k, st, fresh=meter_id)
            return False
        seq = row[0]
        nv.apply(row[1], snapshot=True)
        size = 0
        for s, payload in self.db.execute("SELECT seq, payload FROM journal WHERE k = ? AND seq > ? "
                                          "ORDER BY seq", (k, seq)):
            if s != seq + 1:
                break                    # cannot happen: rows come and go in transactions
            nv.apply(payload)
            seq = s
            size += len(payload)
        st[1] = seq
        st[2] = row[0]
        st[3] = size
        nv.loaded()
        return True

    def _commit(self, k, payload):
        t0 = time.perf_counter()
        st = self.meters[k]
        seq = st[1] + 1
        crash = self.crash
        with self._txn():
            self.db.execute("INSERT INTO journal VALUES (?, ?, ?)", (k, seq, payload))
            if crash is not None:
                crash("append", None, payload)      # inside the transaction: not committed
            st[1] = seq
            st[3] += len(payload)
            if st[3] > self.journal_max:
                self._compact(k, st)
        if crash is not None:
            crash("fsync", None, payload)           # committed, not acknowledged
        s = self.stats
        s["commits"] += 1
        s["bytes"] += len(payload)
        s["commit_s"] += time.perf_counter() - t0

    def _compact(self, k, st, fresh=None):
        payload = st[0].nv.snapshot()
        with self._txn():
            if fresh is not None:
                self.db.execute("DELETE FROM journal WHERE k = ?", (k,))
                self.db.execute("INSERT OR REPLACE INTO snap VALUES (?, ?, ?, ?)",
                                (k, fresh, st[1], payload))
            else:
                self.db.execute("UPDATE snap SET seq = ?, payload = ? WHERE k = ?",
                                (st[1], payload, k))
                self.db.execute("DELETE FROM journal WHERE k = ? AND seq <= ?", (k, st[1]))
            if self.crash is not None:
                self.crash("snapshot", None, payload)
        st[2] = st[1]
        st[3] = 0
        self.stats["compactions"] += 1

    def commit_all(self):
        """Commit every open meter's changes, all in one transaction."""
        n = 0
        with self._txn():
            for st in self.meters.values():
                n += st[0].commit()
        return n

    def bank_storage(self, k, size=BANK_SIZE):
        """Meter k's code-bank bytes in this database (the storage interface
        of meter/codebank.py), so a download survives a restart with them."""
        return DbBankStorage(self, k, size)

    def sizes(self):
        """(database bytes, WAL bytes, journal rows)."""
        db = os.path.getsize(self.path) if os.path.exists(self.path) else 0
        wal = self.path + "-wal"
        w = os.path.getsize(wal) if os.path.exists(wal) else 0
        rows = self.db.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
        return db, w, rows

    def close(self):
        for st in self.meters.values():
            fw = st[0]
            if fw.nv is not None:
                fw.nv = None
                fw.meter.store.dirty = None
        self.meters = {}
        self.db.close()


class DbBankStorage:
    """Code-bank bytes as rows (k, bank, offset, bytes): erase deletes the
    bank's rows, a write is one row (its own transaction, or the batch's:
    the bytes are durable before the commit that sets their ET17 bit), a
    read assembles rows over 0xFF. A download writes packets of one size
    at multiples of it after an erase, so rows never overlap."""
    __slots__ = ("fdb", "k", "size")

    def __init__(self, fdb, k, size):
        self.fdb = fdb
        self.k = k
        self.size = size

    def resize(self, size):
        self.size = size

    def erase(self, bank):
        with self.fdb._txn():
            self.fdb.db.execute("DELETE FROM banks WHERE k = ? AND bank = ?", (self.k, bank))

    def write(self, bank, offset, data):
        with self.fdb._txn():
            self.fdb.db.execute("INSERT OR REPLACE INTO banks VALUES (?, ?, ?, ?)",
                                (self.k, bank, offset, bytes(data)))

    def read(self, bank, offset, n):
        out = bytearray(b"\xff" * n)
        end = offset + n
        for off, data in self.fdb.db.execute(
                "SELECT off, data FROM banks WHERE k = ? AND bank = ? AND off < ? "
                "AND off + LENGTH(data) > ? ORDER BY off", (self.k, bank, end, offset)):
            lo = max(off, offset)
            hi = min(off + len(data), end)
            out[lo - offset:hi - offset] = data[lo - off:hi - off]
        return bytes(out)


def peek(path, k, fw):
    """Load meter k's state into `fw` read-only (what a restart would see)."""
    db = sqlite3.connect(path, timeout=60)      # (a reader recovers the WAL as a restart does)
    try:
        nv = persist.attach(fw, None)
        row = db.execute("SELECT seq, payload FROM snap WHERE k = ?", (k,)).fetchone()
        if row is not None:
            seq = row[0]
            nv.apply(row[1], snapshot=True)
            for s, payload in db.execute("SELECT seq, payload FROM journal WHERE k = ? AND seq > ? "
                                         "ORDER BY seq", (k, seq)):
                if s != seq + 1:
                    break
                nv.apply(payload)
                seq = s
        nv.loaded()
    finally:
        db.close()
    fw.nv = None
    fw.meter.store.dirty = None
    return row is not None
