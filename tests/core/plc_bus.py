# A tiny medium for the dual-runtime repeating/discovery tests: named nodes,
# explicit links (who hears whom, with a level and an SNR), frames delivered
# one at a time in order, each taking FRAME_MS, time advanced to the nodes'
# deadlines. No collisions, no loss: the virtual channel (tools/channel.py)
# is for that; this keeps the core tests small and exact.
FRAME_MS = 50


class Bus:
    def __init__(self, now):
        self.now = now
        self.names = []            # insertion order (MicroPython dicts need not keep it)
        self.nodes = {}
        self.links = {}            # (a, b) -> (level dBuV, SNR dB): a heard at b
        self.queue = []
        self.log = []              # (time, sender, frame)

    def add(self, name, node):
        self.names.append(name)
        self.nodes[name] = node
        return node

    def link(self, a, b, snr=30, level=90):
        self.links[(a, b)] = (level, snr)
        self.links[(b, a)] = (level, snr)

    def line(self, names, snr=30, level=90):
        for i in range(len(names) - 1):
            self.link(names[i], names[i + 1], snr, level)

    def cut(self, a, b):
        self.links.pop((a, b), None)
        self.links.pop((b, a), None)

    def send(self, name, frames):
        if frames:
            for f in frames:
                self.queue.append((name, f))

    def _deliver(self):
        src, f = self.queue.pop(0)
        self.now += FRAME_MS
        self.log.append((self.now, src, f))
        s = self.nodes[src]
        if hasattr(s, "on_sent"):
            s.on_sent(f, self.now)
        for name in self.names:
            q = self.links.get((src, name))
            if q is None:
                continue
            self.send(name, self.nodes[name].receive(f, self.now, q[0], q[1]))

    def run(self, for_ms=60000, until=None):
        """Deliver frames and poll deadlines until nothing is left or the
        time limit."""
        end = self.now + for_ms if until is None else until
        while True:
            while self.queue and self.now < end:
                self._deliver()
            if self.now >= end:
                return
            best = None
            who = None
            for name in self.names:
                d = self.nodes[name].deadline
                if d is not None and (best is None or d < best):
                    best = d
                    who = name
            if best is None or best > end:
                self.now = end
                return
            if best > self.now:
                self.now = best
            self.send(who, self.nodes[who].poll(self.now))

    def frames(self, src=None, since=0):
        return [(t, s, f) for (t, s, f) in self.log if t >= since and (src is None or s == src)]
