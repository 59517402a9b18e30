"""Build and inspect firmware images of the emulated meter (the format is
osgp_meter.fwimage's emulator profile, docs/firmware-download.md).

    osgp-meter fw-image build --version 3.71.0 --size 4096 -o fw.img
    osgp-meter fw-image build --version 3.71.1 --body code.bin --fails-self-test -o bad.img
    osgp-meter fw-image inspect fw.img
    osgp-meter fw-image corrupt fw.img -o corrupt.img      # flip one body byte

The body of a built image is the given file, or ``--size`` seeded
pseudo-random bytes (the same seed and size give the same image).
"""
import argparse
import hashlib
import sys

from osgp_meter import fwimage


def parse_version(text):
    """"3.71.0" -> the BT01 packing (0x38E0)."""
    parts = str(text).split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError("version as major.minor.build, e.g. 3.71.0")
    major, minor, build = (int(p) for p in parts)
    if major > 9 or minor > 99 or build > 31:
        raise ValueError("version fields: major 0-9, minor 0-99, build 0-31")
    return fwimage.pack_version(major, minor, build)


def body_bytes(size, seed=1):
    """`size` deterministic bytes (SHA-256 in counter mode over the seed)."""
    out = bytearray()
    n = 0
    while len(out) < size:
        out += hashlib.sha256(b"osgp-emu body %d %d" % (seed, n)).digest()
        n += 1
    return bytes(out[:size])


def build(version, body=None, size=4096, seed=1, model=b"OSGP-EMU", key=fwimage.DEFAULT_KEY,
          fails_self_test=False):
    if isinstance(version, str):
        version = parse_version(version)
    if body is None:
        body = body_bytes(size, seed)
    flags = fwimage.FLAG_FAILS_SELFTEST if fails_self_test else 0
    return fwimage.build(body, version, model, key, flags)


def corrupt(image, offset=None):
    """The image with one body byte flipped (its header, CRC field and MAC
    unchanged): a meter refuses it at EP10 (CRC)."""
    b = bytearray(image)
    if offset is None:
        offset = fwimage.HEADER + (len(b) - fwimage.OVERHEAD) // 2
    b[offset] ^= 0x5A
    return bytes(b)


def describe(image, key=fwimage.DEFAULT_KEY):
    h = fwimage.parse_header(image)
    if h is None:
        return {"valid": False, "problem": "not an image of this format"}
    _, found, problem = fwimage.check(lambda o, n: image[o:o + n], len(image), key)
    return {"valid": problem is None, "problem": problem,
            "version": fwimage.version_text(h.version), "version_hex": "0x%04X" % h.version,
            "model": h.model.rstrip(b"\0 ").decode("ascii", "replace"),
            "body": h.length, "size": h.size, "file_size": len(image), "crc": "0x%04X" % h.crc,
            "crc_found": "0x%04X" % found,
            "fails_self_test": bool(h.flags & fwimage.FLAG_FAILS_SELFTEST)}


def main(argv=None, out=None):
    out = out or sys.stdout
    p = argparse.ArgumentParser(prog="osgp-meter fw-image",
                                description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="action", required=True)
    b = sub.add_parser("build", help="build an image")
    b.add_argument("--version", required=True, help="major.minor.build, as BT01 shows it")
    b.add_argument("--body", help="body file (default: --size seeded bytes)")
    b.add_argument("--size", type=int, default=4096)
    b.add_argument("--seed", type=int, default=1)
    b.add_argument("--model", default="OSGP-EMU")
    b.add_argument("--key", help="download key as hex (default: the profile's [keys] download)")
    b.add_argument("--profile", help="device profile whose [keys] download signs the image")
    b.add_argument("--fails-self-test", action="store_true",
                   help="mark the image so it never confirms itself (shows a rollback)")
    b.add_argument("-o", "--output", required=True)
    i = sub.add_parser("inspect", help="header fields and whether CRC and MAC verify")
    i.add_argument("image")
    i.add_argument("--key")
    i.add_argument("--profile", help="device profile whose [keys] download checks the MAC")
    c = sub.add_parser("corrupt", help="flip one body byte")
    c.add_argument("image")
    c.add_argument("--offset", type=int)
    c.add_argument("-o", "--output", required=True)
    a = p.parse_args(argv)
    try:
        if getattr(a, "key", None):
            key = bytes.fromhex(a.key)
        else:                   # the profile's [keys] download (the built-in: the emulator's)
            from . import profile as profiles
            key = profiles.download_key(profiles.load(getattr(a, "profile", None)))
        if a.action == "build":
            body = open(a.body, "rb").read() if a.body else None
            img = build(a.version, body, a.size, a.seed, a.model.encode("ascii"), key,
                        a.fails_self_test)
            with open(a.output, "wb") as f:
                f.write(img)
            print("%s: %d bytes, version %s, CRC 0x%04X" % (
                a.output, len(img), a.version, img[20] | (img[21] << 8)), file=out)
        elif a.action == "inspect":
            with open(a.image, "rb") as f:
                d = describe(f.read(), key)
            for k, v in d.items():
                print("%-16s %s" % (k, v), file=out)
            return 0 if d["valid"] else 1
        else:
            with open(a.image, "rb") as f:
                img = corrupt(f.read(), a.offset)
            with open(a.output, "wb") as f:
                f.write(img)
            print("%s: one byte flipped" % a.output, file=out)
    except (ValueError, OSError) as exc:
        print("fw_image: %s" % exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
