# MicroPython freeze manifest: the core (meter/, as the package osgp_meter)
# and the board program (board/FILES) frozen into a firmware image, so their
# bytecode and names live in flash, not in the heap. Build (docs/board-deploy.md):
#
#   make -C ports/rp2 BOARD=RPI_PICO FROZEN_MANIFEST=/path/to/osgp-meter/board/manifest.py
#   cd ports/esp32 && idf.py -D MICROPY_BOARD=ESP32_GENERIC \
#       -D MICROPY_FROZEN_MANIFEST=/path/to/osgp-meter/board/manifest.py build
#
# then `osgp-meter board deploy --frozen --port PORT` puts main.py (which
# imports the frozen board_main) and profile.json on the board's filesystem.
#
# The manifest runs with this folder as its current directory. Frozen
# names are paths below a base folder, and the names we need differ from
# the checkout's folders (meter/ must be osgp_meter; board/main.py is frozen
# as board_main, which the two-line main.py on the filesystem imports, so
# the board starts the same way frozen or not), so a small tree of symbolic
# links is made for them in build/freeze (OSGP_FREEZE_TREE overrides it).
import os

include("$(PORT_DIR)/boards/manifest.py")

_tree = os.environ.get("OSGP_FREEZE_TREE") or os.path.join("..", "build", "freeze")
os.makedirs(_tree, exist_ok=True)
for _name, _target in (("osgp_meter", "meter"), ("board_main.py", os.path.join("board", "main.py"))):
    _link = os.path.join(_tree, _name)
    if os.path.lexists(_link):
        os.remove(_link)
    os.symlink(os.path.abspath(os.path.join("..", _target)), _link)

package("osgp_meter", base_path=_tree)     # every meter/*.py
module("board_main.py", base_path=_tree)   # board/main.py
module("devprofile.py")
module("flashstore.py")
module("nvstate.py")
module("status.py")
module("uart_plc.py")
module("uart_mep.py")
