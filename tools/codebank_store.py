"""File-backed code-bank storage for a meter's state directory (host side).

The same interface as osgp_meter.codebank.RamBankStorage and a board's
flash storage (docs/firmware-download.md):

    size                     bytes per bank
    erase(bank)              the bank reads as 0xFF everywhere
    write(bank, offset, data)
    read(bank, offset, n)    bytes (0xFF where never written)
    resize(size)             optional: grow (RAM and files can; flash cannot)

Two files in the directory, ``bank-a.bin`` and ``bank-b.bin``. A write is
flushed and fsync'ed before it returns: the meter sets a packet's ET17 bit
only after ``write`` returned, and the bit is committed with the meter's
tables after that, so after a power cut a set bit always has its bytes.

    from osgp_host.codebank_store import FileBankStorage, attach
    attach(fw, "state-dir")      # the meter's banks now live in state-dir
"""
import os

NAMES = ("bank-a.bin", "bank-b.bin")
DEFAULT_SIZE = 768 * 1024    # 10,000 packets of 70 bytes fit (ET17: 1250 bytes)


class FileBankStorage:
    def __init__(self, directory, size=DEFAULT_SIZE, fsync=True):
        self.directory = directory
        self.size = size
        self.fsync = fsync
        os.makedirs(directory, exist_ok=True)

    def path(self, bank):
        return os.path.join(self.directory, NAMES[bank])

    def resize(self, size):
        self.size = size

    def erase(self, bank):
        tmp = self.path(bank) + ".tmp"
        with open(tmp, "wb") as f:
            f.write(b"\xff" * self.size)
            f.flush()
            if self.fsync:
                os.fsync(f.fileno())
        os.replace(tmp, self.path(bank))

    def write(self, bank, offset, data):
        p = self.path(bank)
        if not os.path.exists(p):
            self.erase(bank)
        with open(p, "r+b") as f:
            f.seek(offset)
            f.write(bytes(data))
            f.flush()
            if self.fsync:
                os.fsync(f.fileno())

    def read(self, bank, offset, n):
        p = self.path(bank)
        if not os.path.exists(p):
            return b"\xff" * n
        with open(p, "rb") as f:
            f.seek(offset)
            got = f.read(n)
        return got + b"\xff" * (n - len(got))


def attach(firmware, directory, size=DEFAULT_SIZE):
    """Give a Firmware's code banks file storage in `directory` (call it
    before restoring the meter's state). Returns the storage."""
    banks = firmware.meter.banks
    if banks is None:
        raise ValueError("this meter has no code banks (config codebanks = false)")
    banks.storage = FileBankStorage(directory, size)
    return banks.storage
