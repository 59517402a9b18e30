# The MEP port on a machine.UART: bytes in, the MEP server (meter/mep.py)
# answers; segments of long answers and the alert leave when due. The
# optional optical port (meter/c1218.py OpticalSession, same feed / poll /
# deadline interface) uses the same class at a fixed line speed.
class MepPort:
    __slots__ = ("uart", "server")

    def __init__(self, uart, server):
        self.uart = uart
        self.server = server

    def read(self, now):
        """Feed what the UART holds; the answer bytes due now (b"" if none)."""
        data = self.uart.read()
        if not data:
            return b""
        return self.server.feed(data, now)

    def poll(self, now):
        d = self.server.deadline
        if d is not None and d <= now:
            return self.server.poll(now)
        return b""

    @property
    def deadline(self):
        return self.server.deadline
