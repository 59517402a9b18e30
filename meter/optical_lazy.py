# The optical port as Firmware attaches it: a small stand-in for fw.optical
# that loads meter/c1218.py (about 17 KB of MicroPython heap: the C12.18
# link layer and session) on the first byte the port receives. Until then
# the session is in its base state: nothing to send, no timer running, which
# is what a fresh c1218.OpticalSession answers too. A meter whose optical
# port never sees a byte (most of a fleet, a board's MEP-only soak) never
# pays for the code. See docs/optical-port.md.


class LazyOptical:
    __slots__ = ("execute", "_keys", "real")

    def __init__(self, execute, keys):
        self.execute = execute
        self._keys = keys
        self.real = None

    def session(self):
        """The real c1218.OpticalSession (built on first use)."""
        s = self.real
        if s is None:
            from .c1218 import OpticalSession
            s = self.real = OpticalSession(self.execute, self._keys)
        return s

    def feed(self, data, now):
        return self.session().feed(data, now)

    def poll(self, now):
        s = self.real
        return b"" if s is None else s.poll(now)

    @property
    def deadline(self):
        s = self.real
        return None if s is None else s.deadline

    # keywire.py replaces the password list after a key change
    @property
    def keys(self):
        s = self.real
        return self._keys if s is None else s.keys

    @keys.setter
    def keys(self, value):
        self._keys = value
        if self.real is not None:
            self.real.keys = value

    def __getattr__(self, name):        # state, role, baud_code ...: the real session's
        return getattr(self.session(), name)
