# Code banks as Firmware attaches them: a small stand-in for meter.banks
# that loads meter/codebank.py (about 8.5 KB of MicroPython heap, 64-bit)
# on the first EP08/EP09/EP10, on a saved state that is not the fresh one,
# or when anything else asks the banks for more than this holds. Until then
# no download has started: nothing is due, and the "codebank" nv_part holds
# what a fresh codebank.CodeBanks would (meta() below; a test keeps the two
# equal). See docs/firmware-download.md.
from . import procedures

BT01 = 1
ET03 = 2048 + 3
ET03_CRC = 137                  # codebank.ET03_CRC
DEFAULT_TRIAL_S = 60            # codebank.DEFAULT_TRIAL_S
EP08 = 2048 + 8


def real(meter):
    """meter.banks as the full codebank.CodeBanks (loading it on first use)."""
    b = meter.banks
    if isinstance(b, Lazy):
        from . import codebank
        obj = codebank.CodeBanks(meter, b.storage, b.key_)
        obj.versions[0] = b.version     # bank A as it was at boot, as an eager
        obj.crcs[0] = b.crc             # CodeBanks would have read it then
        meter.banks = obj
        b.obj = obj
        return obj
    return b


class Lazy:
    __slots__ = ("meter", "storage", "key_", "version", "crc", "obj")
    deadline = None             # no trial running: nothing due

    def __init__(self, meter, storage=None, key=None):
        self.meter = meter
        self.storage = storage
        self.key_ = key
        st = meter.store
        self.version = (st.field(BT01, 14, 1) << 8) | st.field(BT01, 15, 1)
        self.crc = st.field(ET03, ET03_CRC, 2)
        self.obj = None

    def tick(self, meter, now):
        return None

    def meta(self):
        o = self.obj
        if o is not None:
            return o.meta()
        # codebank.CodeBanks.meta() of a fresh object: format 1, bank A
        # active, idle, no image; bank A's version and CRC; trial seconds
        v = self.version
        c = self.crc
        return bytes((1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, v >> 8, v & 255, c & 255, c >> 8,
                      0, 0, 0, 0, DEFAULT_TRIAL_S & 255, DEFAULT_TRIAL_S >> 8, 0, 0))

    def restore(self, b):
        if self.obj is None and bytes(b) == self.meta():
            return              # the fresh state: nothing to load
        real(self.meter).restore(b)

    def __getattr__(self, name):        # state, active, key, have() ...: the real object's
        return getattr(real(self.meter), name)


def _proc(number):
    def run(meter, params, role, now):
        if meter.banks is None:
            return procedures.UNRECOGNIZED, b""
        real(meter)             # importing codebank.py registers the real EP08-EP10
        return procedures.REGISTRY[number](meter, params, role, now)
    return run


for _n in (EP08, EP08 + 1, EP08 + 2):
    if _n not in procedures.REGISTRY:
        procedures.register(_n, _proc(_n))


def attach(meter, config=None):
    """meter.banks (the stand-in) and its nv_part; config as codebank.attach:
    bank_storage, download_key."""
    config = config or {}
    b = meter.banks = Lazy(meter, config.get("bank_storage"), config.get("download_key"))
    meter.nv_part("codebank", b.meta, b.restore)
    return b
