"""Catalogue compiler: tables/*.toml -> meter/catalogue_data.py + tools/catalogue.json.

The catalogue in tables/ is the one source of truth of the OSGP data model
(DESIGN.md rule 4). This module reads it, validates it and writes:

* meter/catalogue_data.py -- the compact firmware form (portable Python, no
  imports): sizes, access masks, flags and defaults only;
* tools/catalogue.json -- everything (names, layouts, sources, refs, counts)
  for the CPython tools (tools/catalogue.py).

    python -m osgp_host.catalogue_compiler           regenerate both files
    python -m osgp_host.catalogue_compiler --check   exit 1 when either is stale

The TOML schema is documented in tables/README.md.
"""
import argparse
import hashlib
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

# The parts live in their own modules; every name is importable from here too:
# expressions (catalogue_expr), the builder (catalogue_builder), the outputs
# (catalogue_render).
from .catalogue_expr import (EXTENDED_BASE, binop, bitsnode, const, evaluate, num,  # noqa: F401
                             parse_expr, refs_of, table_key, to_rpn, to_text)
from .catalogue_builder import (BIG_ENDIAN_OK, ROLE_BITS, SOURCES, TYPE_SIZES,  # noqa: F401
                                Builder, CatalogueError, hexbytes, parse_id)
from .catalogue_render import (E_CRITICAL, E_EXTENDED, P_EXTENDED, P_INVENTORY,  # noqa: F401
                               T_DATA, T_NV, T_OUTSIDE, render_firmware, render_json, rpn_bytes)

ROOT = Path(__file__).resolve().parent.parent
TABLES_DIR = ROOT / "tables"
FIRMWARE_OUT = ROOT / "meter" / "catalogue_data.py"
JSON_OUT = ROOT / "tools" / "catalogue.json"


# --------------------------------------------------------------------------
# Loading

def source_files():
    return sorted(TABLES_DIR.glob("*.toml"))


def source_digest(files):
    h = hashlib.sha256()
    for path in files:
        h.update(path.read_bytes())
    return h.hexdigest()


def load_sources(files):
    merged = {"meta": {}, "record": [], "table": [], "procedure": [], "event": []}
    for path in files:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        for key, value in data.items():
            if key in ("record", "table", "procedure", "event"):
                for entry in value:
                    entry["_file"] = path.name
                merged[key].extend(value)
            else:
                merged["meta"].setdefault(key, {}).update(value)
    return merged


def compile_catalogue():
    """Build and validate the catalogue; return (firmware_text, json_text)."""
    files = source_files()
    if not files:
        raise CatalogueError("no tables/*.toml found in %s" % TABLES_DIR)
    digest = source_digest(files)
    b = Builder(load_sources(files)).build()
    return render_firmware(b, digest), render_json(b, digest)


def stale_outputs():
    """Names of the generated files that differ from a fresh compile."""
    firmware, doc = compile_catalogue()
    stale = []
    for path, text in ((FIRMWARE_OUT, firmware), (JSON_OUT, doc)):
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(str(path.relative_to(ROOT)))
    return stale


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m osgp_host.catalogue_compiler",
                                 description="Compile tables/*.toml into the firmware and tool catalogues.")
    ap.add_argument("--check", action="store_true", help="exit 1 if a generated file is stale")
    args = ap.parse_args(argv)
    try:
        if args.check:
            stale = stale_outputs()
            for name in stale:
                print("stale: %s (run python -m osgp_host.catalogue_compiler)" % name, file=sys.stderr)
            return 1 if stale else 0
        firmware, doc = compile_catalogue()
    except CatalogueError as exc:
        print("catalogue errors:\n" + str(exc), file=sys.stderr)
        return 2
    FIRMWARE_OUT.write_text(firmware, encoding="utf-8")
    JSON_OUT.write_text(doc, encoding="utf-8")
    print("wrote %s and %s" % (FIRMWARE_OUT.relative_to(ROOT), JSON_OUT.relative_to(ROOT)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
