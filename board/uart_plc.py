# The PLC modem on a machine.UART: the Layer-2 MIP link (meter/mip_link.py,
# the same code as the emulated modem's peer, tools/modem.py) between the
# meter's 14908-1 node and the modem. Non-blocking: read() takes what the
# UART has, out() is everything to write.
from osgp_meter.mip_link import NodePort


class PlcPort:
    __slots__ = ("uart", "node", "port")

    def __init__(self, uart, node, now):
        self.uart = uart
        self.node = node
        self.port = NodePort(node)
        self.port.start(now)            # ask the modem for layer-2 mode

    def read(self, now):
        """Feed what the UART holds; True when something came."""
        data = self.uart.read()
        if not data:
            return False
        self.port.feed(data, now)
        return True

    def poll(self, now):
        d = self.port.deadline
        if d is not None and d <= now:
            self.port.poll(now)

    @property
    def deadline(self):
        return self.port.deadline

    def service_pin(self, now):
        """The 14908-1 service-pin message, broadcast through the modem."""
        self.port._down(self.node.service_pin(now), now)

    @property
    def sent(self):
        """Messages handed to the modem so far (link ACKs not counted)."""
        return self.port.link.stats[0]

    def out(self):
        return self.port.take()

    @property
    def commissioned(self):
        return self.node.configured
