# The meter's non-volatile state on flash: meter/persist.py decides what a
# commit holds (the changed byte ranges of nv tables, nv_parts, the meta
# part), flashstore.py makes it durable as meter/nvlog.py records.
from osgp_meter import nvlog, persist


class NvState:
    __slots__ = ("p", "store", "restored", "bad", "commits", "every_ms", "_next")

    def __init__(self, fw, store, every_ms=60000):
        self.p = persist.attach(fw, store.commit)     # fw.nv, fw.commit()
        self.store = store
        self.restored = 0         # records applied at boot
        self.bad = 0              # records that passed their CRC but did not decode
        self.commits = 0
        self.every_ms = every_ms  # tick-only commits at most this often (docs/board.md)
        self._next = 0

    def restore(self, now):
        """Replay the flash log into the firmware (before the PLC node and
        the metering attach: they build their RAM state from the tables)."""
        p = self.p

        def apply(kind, payload):
            try:
                p.apply(payload, kind == nvlog.K_SNAPSHOT)
                self.restored += 1
            except ValueError:
                self.bad += 1
        self.store.replay(apply)
        p.loaded()

    def start(self, now):
        """After everything attached: parts registered late get their saved
        bytes; a torn log is compacted; what booting changed is committed."""
        self.p.adopt()
        self.commit(now, True)

    def commit(self, now, force):
        """Make the changes durable. force: an answer is about to leave (or
        boot); else (ticks, frames overheard) at most every `every_ms`.
        Returns the bytes written."""
        if not force and now < self._next:
            return 0
        self._next = now + self.every_ms
        p = self.p
        store = self.store
        if store.needs_snapshot():
            payload = p.snapshot()
            store.snapshot(payload)
            p.loaded()
            self.commits += 1
            return len(payload)
        payload = p.changes()
        if payload:
            store.commit(payload)
            self.commits += 1
        p.done()
        return len(payload)

