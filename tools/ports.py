"""Serial endpoints for the host: a pseudo-terminal, a device path or any
pyserial URL (socket://, rfc2217://, loop://, ...)."""
import os
import tty

import serial


class PtyPort:
    """The master side of a pseudo-terminal; clients open `name`.

    The slave is put in raw mode (no echo, no line editing) and kept open by
    us, so a client closing it does not hang up the master.
    """

    def __init__(self):
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.name = os.ttyname(self._slave)
        os.set_blocking(self.master, False)

    def fileno(self):
        return self.master

    def read(self):
        try:
            return os.read(self.master, 4096)
        except (BlockingIOError, InterruptedError):
            return b""

    def write(self, data):
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.master, view)
            except BlockingIOError:
                continue
            view = view[n:]

    def set_baudrate(self, baud):
        pass   # a pty has no line speed

    def close(self):
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass


class SerialPort:
    """A pyserial port opened from a device path or URL."""

    def __init__(self, spec, baudrate):
        self.ser = serial.serial_for_url(spec, baudrate=baudrate, timeout=0)
        self.name = spec

    def fileno(self):
        try:
            return self.ser.fileno()
        except (AttributeError, NotImplementedError, serial.SerialException):
            return None

    def read(self):
        n = self.ser.in_waiting
        return self.ser.read(n or 1)

    def write(self, data):
        self.ser.write(data)

    def set_baudrate(self, baud):
        self.ser.baudrate = baud

    def close(self):
        self.ser.close()


def open_port(spec, baudrate=9600):
    if spec == "pty":
        return PtyPort()
    return SerialPort(spec, baudrate)


def open_client(spec, baudrate=9600, timeout=0.5):
    """The client side: a blocking pyserial port with a read timeout."""
    return serial.serial_for_url(spec, baudrate=baudrate, timeout=timeout)
