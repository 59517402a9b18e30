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

    closed = False     # a pty master stays open as long as we hold the slave

    def reopen(self):
        return True

    def set_baudrate(self, baud):
        pass   # a pty has no line speed

    def close(self):
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass


class SerialPort:
    """A pyserial port opened from a device path or URL.

    When the other end goes away (a socket:// peer closes, a USB adapter is
    pulled) the port closes itself and `reopen()` tries again later, so a
    meter keeps serving across reconnects.
    """

    def __init__(self, spec, baudrate):
        self.spec = spec
        self.baudrate = baudrate
        self.name = spec
        self.ser = None
        self.reopen()
        if self.ser is None:
            raise OSError("cannot open %s: %s" % (spec, self.error))

    def reopen(self):
        try:
            self.ser = serial.serial_for_url(self.spec, baudrate=self.baudrate, timeout=0)
            self.error = None
        except (serial.SerialException, OSError, ValueError) as exc:
            self.ser = None
            self.error = exc
        return self.ser is not None

    @property
    def closed(self):
        return self.ser is None

    def fileno(self):
        if self.ser is None:
            return None
        try:
            return self.ser.fileno()
        except (AttributeError, NotImplementedError, serial.SerialException):
            return None

    def _lost(self, exc):
        self.error = exc
        try:
            self.ser.close()
        except Exception:
            pass
        self.ser = None

    def read(self):
        if self.ser is None:
            return b""
        try:
            n = self.ser.in_waiting
            return self.ser.read(n or 1)
        except (serial.SerialException, OSError) as exc:
            self._lost(exc)
            return b""

    def write(self, data):
        if self.ser is None:
            return
        try:
            self.ser.write(data)
        except (serial.SerialException, OSError) as exc:
            self._lost(exc)

    def set_baudrate(self, baud):
        self.baudrate = baud
        if self.ser is not None:
            self.ser.baudrate = baud

    def close(self):
        if self.ser is not None:
            self.ser.close()
            self.ser = None


def open_port(spec, baudrate=9600):
    if spec == "pty":
        return PtyPort()
    return SerialPort(spec, baudrate)


def open_client(spec, baudrate=9600, timeout=0.5):
    """The client side: a blocking pyserial port with a read timeout."""
    return serial.serial_for_url(spec, baudrate=baudrate, timeout=timeout)
