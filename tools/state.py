"""A meter's state directory: what survives a restart or a power cut of
`osgp-meter serve` (docs/persistence.md).

    DIR/snapshot.nv   one K_SNAPSHOT record: the whole non-volatile state
                      as of commit `seq` (replaced by write-temp, fsync,
                      rename, fsync the directory)
    DIR/journal.nv    K_COMMIT records seq+1, seq+2, ... appended and
                      fsynced one per commit (meter/nvlog.py framing)

`StateDir(DIR).open(fw)` loads the snapshot and replays the journal up to
its last good record (a torn last record, from a cut in the middle of an
append, is cut off), then persists every `fw.commit()` as one appended
record. When the journal outgrows `journal_max` bytes the snapshot is
rewritten and the journal emptied (compaction); a cut between the two
leaves journal records the new snapshot already holds, which the next load
skips by their sequence numbers.

The session-1 format (one JSON file, meter-state.json) is still read: its
state is loaded and becomes the first snapshot.
"""
import errno
import fcntl
import json
import os
import time

from osgp_meter import catalogue as cat
from osgp_meter import nvlog
from osgp_meter import persist

SNAPSHOT = "snapshot.nv"
JOURNAL = "journal.nv"
# exists once a directory holds a state; its modification time is the last
# commit's (simulate.py reads it as when a `serve` state was saved)
STATE_FILE = JOURNAL
LEGACY_FILE = "meter-state.json"
JOURNAL_MAX = 256 * 1024


class StateError(RuntimeError):
    pass


def exists(directory):
    """Whether `directory` holds a saved state (either format)."""
    return (os.path.exists(os.path.join(directory, SNAPSHOT))
            or os.path.exists(os.path.join(directory, LEGACY_FILE)))


def _write_all(fd, data):
    mv = memoryview(data)
    while mv:
        n = os.write(fd, mv)
        mv = mv[n:]


def _fsync_dir(directory):
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StateDir:
    """One meter's state directory (module docstring).

    fsync=False trades durability against a host crash for speed (a killed
    process still loses nothing: its writes are in the OS). `crash`, for
    the power-fail harness: crash(stage, fd, data) is called before each
    step of a commit (stages "append", "fsync", "snapshot", "rename",
    "truncate") and may write part of `data` and kill the process.
    """

    def __init__(self, directory, fsync=True, journal_max=JOURNAL_MAX, crash=None):
        self.dir = directory
        self.fsync = fsync
        self.journal_max = journal_max
        self.crash = crash
        self.fw = None
        self.file = None
        self.fd = None
        self.seq = 0             # the last commit durable
        self.base = 0            # the snapshot's seq
        self.size = 0            # journal bytes
        self.stats = {"commits": 0, "bytes": 0, "compactions": 0, "commit_s": 0.0,
                      "loaded_records": 0, "torn_bytes": 0, "stale_records": 0}

    # -- opening -------------------------------------------------------------------
    def open(self, fw, load=True):
        """Load the saved state into `fw` (if any) and persist it from now
        on (fw.nv, fw.commit()). Returns True when a state was loaded.
        load=False: discard what the directory holds, start from fw's state."""
        os.makedirs(self.dir, exist_ok=True)
        jpath = os.path.join(self.dir, JOURNAL)
        # a file object, so a forgotten StateDir still closes (and unlocks) when collected
        self.file = os.fdopen(os.open(jpath, os.O_RDWR | os.O_CREAT, 0o644), "r+b", buffering=0)
        self.fd = self.file.fileno()
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self.file.close()
            self.file = self.fd = None
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise StateError("%s: in use by another meter process" % self.dir) from None
            raise
        self.fw = fw
        try:
            return self._open(fw, load)
        except BaseException:
            # a state that cannot be loaded: refused whole (the snapshot is
            # checked before anything is applied), the lock released
            self.close()
            raise

    def _open(self, fw, load):
        nv = persist.attach(fw, self._append)
        spath = os.path.join(self.dir, SNAPSHOT)
        loaded = False
        if load and os.path.exists(spath):
            self._snapshot(nv, spath)
            loaded = True
            self._replay(nv)
        else:
            legacy = os.path.join(self.dir, LEGACY_FILE)
            if load and os.path.exists(legacy):
                _load_json(fw, legacy)
                loaded = True
            # the journal goes first: a journal without its snapshot is not ours
            os.ftruncate(self.fd, 0)
            if self.fsync:
                os.fsync(self.fd)
            self.seq = self.base = 0
            self.compact()               # the first snapshot: fresh or migrated
            if loaded:
                os.replace(legacy, legacy + ".migrated")
        nv.loaded()
        os.lseek(self.fd, 0, os.SEEK_END)
        return loaded

    def peek(self, fw):
        """Load the saved state into `fw` without touching the directory (no
        lock, no truncation, no first snapshot): what a restart would see.
        Returns True when there was a state."""
        nv = persist.attach(fw, None)
        spath = os.path.join(self.dir, SNAPSHOT)
        if not os.path.exists(spath):
            nv.loaded()
            return False
        try:
            self._snapshot(nv, spath)
        except BaseException:
            fw.nv = None
            fw.meter.store.dirty = None
            raise
        self._replay(nv, readonly=True)
        nv.loaded()
        fw.nv = None
        fw.meter.store.dirty = None
        return True

    def _snapshot(self, nv, spath):
        """Apply the snapshot file, all or nothing: StateError when it is
        not one good K_SNAPSHOT record (never a silent reset)."""
        with open(spath, "rb") as f:
            buf = f.read()
        r = nvlog.check(buf)
        if r is None or r[0] != nvlog.K_SNAPSHOT:
            raise StateError("%s: not a snapshot record (corrupt)" % spath)
        try:
            nv.apply(r[2], snapshot=True)
        except ValueError as exc:        # a good CRC over entries this codec never wrote
            raise StateError("%s: corrupt snapshot payload (%s)" % (spath, exc)) from None
        self.base = self.seq = r[1]

    def _replay(self, nv, readonly=False):
        with open(os.path.join(self.dir, JOURNAL), "rb") as f:
            buf = f.read()
        end = 0
        for kind, seq, payload, stop in nvlog.scan(buf):
            if kind != nvlog.K_COMMIT:
                break
            if seq <= self.base:              # already in the snapshot (compaction cut short)
                self.stats["stale_records"] += 1
                end = stop
                continue
            if seq != self.seq + 1:           # not the next commit: not ours
                break
            try:
                nv.apply(payload)             # all or nothing
            except ValueError:                # good CRC, malformed entries: corrupt, the log ends
                break
            self.seq = seq
            self.stats["loaded_records"] += 1
            end = stop
        self.size = end
        if end < len(buf):                    # the torn tail of an interrupted commit
            self.stats["torn_bytes"] = len(buf) - end
            if readonly:
                return
            os.ftruncate(self.fd, end)
            if self.fsync:
                os.fsync(self.fd)

    # -- committing ----------------------------------------------------------------
    def _append(self, payload):
        t0 = time.perf_counter()
        seq = self.seq + 1
        rec = nvlog.record(nvlog.K_COMMIT, seq, payload)
        crash = self.crash
        if crash is not None:
            crash("append", self.fd, rec)
        _write_all(self.fd, rec)
        if crash is not None:
            crash("fsync", self.fd, rec)
        if self.fsync:
            os.fdatasync(self.fd)
        self.seq = seq
        self.size += len(rec)
        st = self.stats
        st["commits"] += 1
        st["bytes"] += len(rec)
        st["commit_s"] += time.perf_counter() - t0
        if self.size > self.journal_max:
            self.compact()

    def compact(self):
        """Rewrite the snapshot as of the last commit, then empty the journal."""
        rec = nvlog.record(nvlog.K_SNAPSHOT, self.seq, self.fw.nv.snapshot())
        path = os.path.join(self.dir, SNAPSHOT)
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            if self.crash is not None:
                self.crash("snapshot", fd, rec)
            _write_all(fd, rec)
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        if self.crash is not None:
            self.crash("rename", None, rec)
        os.replace(tmp, path)
        if self.fsync:
            _fsync_dir(self.dir)
        if self.crash is not None:
            self.crash("truncate", None, rec)
        os.ftruncate(self.fd, 0)
        os.lseek(self.fd, 0, os.SEEK_SET)
        if self.fsync:
            os.fsync(self.fd)
        self.base = self.seq
        self.size = 0
        self.stats["compactions"] += 1

    def close(self):
        if self.file is not None:
            self.file.close()          # releases the lock
            self.file = self.fd = None
        fw = self.fw
        if fw is not None and fw.nv is not None and fw.nv.sink == self._append:
            fw.nv = None                   # no more commits: no more tracking
            fw.meter.store.dirty = None
        self.fw = None

    def sizes(self):
        """(snapshot bytes, journal bytes) on disk."""
        s = os.path.getsize(os.path.join(self.dir, SNAPSHOT))
        return s, self.size


# -- whole-state save/load, for drivers that save at moments (simulate) -------------

def save(firmware, directory):
    """Replace the directory's state by the firmware's whole state (one
    snapshot, an empty journal), as the session-1 save did."""
    sd = StateDir(directory)
    try:
        sd.open(firmware, load=False)
    finally:
        sd.close()


def load(firmware, directory):
    """Restore a saved state into the firmware; False when there is none.
    (To keep persisting every commit, use StateDir(directory).open(fw).)"""
    if not exists(directory):
        return False
    sd = StateDir(directory)
    try:
        sd.open(firmware)
    finally:
        sd.close()
    return True


def _load_json(fw, path):
    """The session-1 format: {"version": 1, "tables": {tid: hex}, "mep_seq",
    "clock_offset_ms", "last_psn"}."""
    try:
        with open(path, "rb") as f:
            state = json.loads(f.read().decode("utf-8"))
    except ValueError as exc:                 # not JSON (UnicodeDecodeError is one too)
        raise StateError("%s: not a state file (%s)" % (path, exc)) from None
    if not isinstance(state, dict) or state.get("version") != 1:
        raise StateError("%s: unknown state version %r"
                         % (path, state.get("version") if isinstance(state, dict) else state))
    # everything checked before anything is applied: refused whole, never half-loaded
    meter = fw.meter
    tables = {}
    try:
        for tid, hexdata in state["tables"].items():
            tid = int(tid)
            entry = meter.store.tables.get(tid)
            if entry is not None and entry[cat.T_FLAGS] & cat.F_NV:
                tables[tid] = bytes.fromhex(hexdata)
        seq, offset, psn = state["mep_seq"], state["clock_offset_ms"], state["last_psn"]
        for name, v, lo, hi in (("mep_seq", seq, 0, 0xFFFFFFFF), ("last_psn", psn, 0, 255),
                                ("clock_offset_ms", offset, -(1 << 63), (1 << 63) - 1)):
            if type(v) is not int or not lo <= v <= hi:
                raise ValueError("%s: an integer %d..%d expected" % (name, lo, hi))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StateError("%s: malformed state (%s: %s)"
                         % (path, type(exc).__name__, exc)) from None
    for tid in tables:
        meter.store.write(tid, 0, tables[tid])
    meter.changed()
    fw.mep.seq = seq
    meter.clock_offset = offset
    meter.last_psn = psn
