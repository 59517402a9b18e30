# Where the board program's heap goes, step by step as board/main.py boots
# (the default profile: MEP, PLC with discovery/repeating, metering on).
# Run by `python -m osgp_host.mpy_heap --board` under the MicroPython unix
# port; with a ROMFS image (argv[1]) the code runs in place from it, as
# frozen or ROMFS code does on a board, and only the runtime data is in the
# heap. Prints "name bytes" lines: the heap growth of each step after
# gc.collect(), each followed by micropython.qstr_info()'s line (the names
# interned so far: in the heap here, in flash when the code is frozen).
import gc
import sys

img = None
if len(sys.argv) > 1 and sys.argv[1]:
    import vfs
    with open(sys.argv[1], "rb") as f:
        img = f.read()
    vfs.mount(vfs.VfsRom(img), "/rom")
    sys.path.insert(0, "/rom")

gc.collect()
base = gc.mem_alloc()
last = [base]


def step(name):
    gc.collect()
    a = gc.mem_alloc()
    print("%-28s %7d" % (name, a - last[0]))
    last[0] = a
    if qstr_info is not None:
        qstr_info()      # "qstr pool: ... n_total_bytes=N": interned names, in ROM when frozen


try:
    from micropython import qstr_info
except ImportError:
    qstr_info = None


step("(start)")
MODULES = ("devprofile", "flashstore", "nvstate", "status", "uart_mep", "uart_plc",
           "osgp_meter.catalogue_data", "osgp_meter.store", "osgp_meter.device",
           "osgp_meter.services", "osgp_meter.procedures", "osgp_meter.events",
           "osgp_meter.keys", "osgp_meter.mep", "osgp_meter.firmware",
           "osgp_meter.persist", "osgp_meter.plc_node", "osgp_meter.plc_osgp",
           "osgp_meter.mip_link", "osgp_meter.plc_discovery", "osgp_meter.plc_repeat",
           "osgp_meter.groups", "osgp_meter.keywire", "osgp_meter.pending_lazy",
           "osgp_meter.codebank_lazy", "osgp_meter.transactions_lazy")
# (what booting imports: pending.py, transactions.py, c1218.py, codebank.py,
# fwimage.py, groupcfg.py, keychange.py and the AES modules load on first use)
METERING = ("osgp_meter.supply", "osgp_meter.tou", "osgp_meter.metrology",
            "osgp_meter.loadprofile")
import devprofile
board, config = devprofile.load(sys.argv[2] if len(sys.argv) > 2 else "profile.json")
metering = config.get("metering", False)
for m in MODULES + (METERING if metering else ()):
    before = set(sys.modules)
    __import__(m)
    extra = sorted(x for x in sys.modules if x not in before and x != m)
    step("import " + m.replace("osgp_meter.", "") + (" (+%s)" % ",".join(
        x.replace("osgp_meter.", "") for x in extra) if extra else ""))
code_total = gc.mem_alloc() - base
from osgp_meter.firmware import Firmware, attach_metering
from osgp_meter import plc_discovery, plc_repeat
from osgp_meter.mip_link import NodePort
from flashstore import FlashStore
from nvstate import NvState
config.pop("clock", None)
NOW = 1790000000000
gc.collect()
d0 = gc.mem_alloc()
last[0] = d0
box = []


def restore(fw):
    step("Firmware: store, meter, keys, MEP")
    nv = NvState(fw, FlashStore("nv-memmap"))
    nv.restore(NOW)
    box.append(nv)
    step("NvState + restore")


def trace_imports(name, before):
    extra = sorted(x for x in sys.modules if x not in before)
    step(name + (" (+%s)" % ",".join(x.replace("osgp_meter.", "") for x in extra)
                 if extra else ""))


before = set(sys.modules)
fw = Firmware(dict(config, plc=True, metering=False, optical=False, restore=restore), NOW)
trace_imports("Firmware: PLC node, groups, keys, pending, codebanks, transactions", before)
nv = box[0]
plc_repeat.enable(fw.plc)
plc_discovery.enable(fw.plc)
step("repeating + discovery")
port = NodePort(fw.plc)
step("MIP link")
if metering:
    before = set(sys.modules)
    attach_metering(fw.meter, config, NOW)
    trace_imports("metering attached", before)
nv.start(NOW)
step("first commit")
fw.tick(NOW + 3600000)
step("an hour of metering")
data_total = gc.mem_alloc() - d0
big = [(len(w), t) for t, w in fw.meter.store.written.items()]
big.sort()
print("tables written (per-meter copies): %d, %d bytes; largest: %s" % (
    len(big), sum(n for n, t in big),
    " ".join("%s=%d" % ("BT%02d" % t if t < 2048 else "ET%02d" % (t - 2048), n)
             for n, t in big[-8:])))
print("code+module data %d, runtime data %d, total %d" % (code_total, data_total,
                                                          code_total + data_total))
