# Non-volatile state on the board's flash filesystem (LittleFS on rp2 and
# esp32): an append-only log of meter/nvlog.py records in `<dir>/log`.
#
#   * atomic: a commit is one record; a record torn by a reset fails its
#     CRC and is ignored at boot, with everything after it;
#   * little wear: a commit holds only what changed since the previous one
#     (meter/persist.py computes it), and nothing is written when nothing
#     changed; the log is compacted into one snapshot record when it passes
#     `limit` bytes or has a torn tail: the snapshot goes to `<dir>/new`,
#     which then replaces `log` by rename (atomic on LittleFS and POSIX).
#     Boot prefers `log`; a `new` left by a reset before the rename is
#     used only when `log` is missing.
import os

from osgp_meter import nvlog

LIMIT = 16384


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


class FlashStore:
    __slots__ = ("dir", "limit", "seq", "size", "torn", "writes", "written")

    def __init__(self, directory="nv", limit=LIMIT):
        self.dir = directory
        self.limit = limit
        self.seq = 0          # seq of the last good record
        self.size = 0         # bytes of good records in the log
        self.torn = False     # the log ends in garbage: compact before appending
        self.writes = 0       # records written (commits + snapshots)
        self.written = 0      # bytes written
        if not _exists(directory):
            os.mkdir(directory)

    def _path(self, name):
        return self.dir + "/" + name

    def replay(self, apply):
        """Call apply(kind, payload) for every good record, oldest first;
        returns how many. A torn or corrupt record, or one whose seq does
        not follow, ends the log."""
        log = self._path("log")
        if not _exists(log):
            new = self._path("new")
            if not _exists(new):
                return 0
            os.rename(new, log)          # a compaction cut short before its rename
        n = 0
        with open(log, "rb") as f:
            while True:
                r = nvlog.read(f)
                if r is None:
                    break
                kind, seq, payload, length = r
                if n and seq != (self.seq + 1) & 0xFFFFFFFF:
                    break                # not the next commit: not this log's
                apply(kind, payload)
                self.seq = seq
                self.size += length
                n += 1
        self.torn = os.stat(log)[6] > self.size      # garbage after the last good record
        return n

    def commit(self, payload):
        """Append one change record (payload from persist)."""
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        rec = nvlog.record(nvlog.K_COMMIT, self.seq, payload)
        try:
            with open(self._path("log"), "ab") as f:
                f.write(rec)
        except OSError:
            # part of it may be there: the next commit rewrites the log whole
            self.seq = (self.seq - 1) & 0xFFFFFFFF
            self.torn = True
            raise
        self.size += len(rec)
        self.writes += 1
        self.written += len(rec)

    def needs_snapshot(self):
        return self.torn or self.size > self.limit

    def snapshot(self, payload):
        """Replace the log by one record holding the whole state."""
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        rec = nvlog.record(nvlog.K_SNAPSHOT, self.seq, payload)
        new = self._path("new")
        try:
            with open(new, "wb") as f:
                f.write(rec)
            os.rename(new, self._path("log"))
        except OSError:
            self.seq = (self.seq - 1) & 0xFFFFFFFF
            raise
        self.size = len(rec)
        self.torn = False
        self.writes += 1
        self.written += len(rec)
