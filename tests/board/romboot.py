# Boot board/main.py from a ROMFS image (argv[1]) on the MicroPython unix
# port: the core and the board modules run in place from the image, as
# frozen or ROMFS code does on a board, so the heap holds only the image
# buffer (read first, at the bottom of the heap) and the runtime data.
# tools/mpy_heap.py --board --rom uses it; main.py itself is unchanged.
import sys
import vfs

with open(sys.argv[1], "rb") as f:
    IMAGE = f.read()
vfs.mount(vfs.VfsRom(IMAGE), "/rom")
sys.path.insert(0, "/rom")
print("rom image %d" % len(IMAGE))
import main
main.main()
