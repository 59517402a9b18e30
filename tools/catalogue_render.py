"""The catalogue's two outputs (tables/README.md): the firmware form
(meter/catalogue_data.py, byte-coded RPN sizes) and tools/catalogue.json.
Split out of tools/catalogue_compiler.py (which re-exports these names)."""
import json

from osgp_meter import access

from .catalogue_builder import CatalogueError
from .catalogue_expr import const, to_rpn, to_text

# Flag bits of the firmware form (also documented in tables/README.md).
T_NV, T_DATA, T_OUTSIDE = 0x01, 0x02, 0x04
P_INVENTORY, P_EXTENDED = 0x01, 0x02
E_CRITICAL, E_EXTENDED = 0x01, 0x02


# --------------------------------------------------------------------------
# Output

def _value_json(node):
    c = const(node)
    if c is not None:
        return c
    return {"expr": to_text(node), "rpn": [list(x) if isinstance(x, tuple) else x for x in to_rpn(node)]}


def _fields_json(fields):
    out = []
    for f in fields:
        j = {"name": f["name"], "type": f["type"], "offset": _value_json(f["offset"])}
        if f["rest"]:
            j["count"] = "rest"
        elif f["count"] is not None:
            j["count"] = _value_json(f["count"])
        j["size"] = None if f["size"] is None else _value_json(f["size"])
        for key in ("record", "be", "bits", "note", "values"):
            if key in f:
                j[key] = f[key]
        out.append(j)
    return out


def rpn_bytes(node):
    """The firmware's byte-coded RPN (one bytes object, not a tuple of tuples:
    a tenth of the heap on a board). See meter/catalogue.py eval_size."""
    out = bytearray()
    for op in to_rpn(node):
        if isinstance(op, int):
            if not 0 <= op < 1 << 24:
                raise CatalogueError("constant %d does not fit the firmware form" % op)
            out += bytes((0x01,)) + op.to_bytes(3, "big")
        elif isinstance(op, str):
            out += {"+": b"+", "-": b"-", "*": b"*", "/": b"/", "max": b"M"}[op]
        elif op[0] == "f":
            out += bytes((0x02,)) + op[1].to_bytes(2, "big") + op[2].to_bytes(2, "big") + bytes((op[3],))
        else:
            out += bytes((0x03, op[1], op[2]))
    return bytes(out)


def _size_text(node):
    c = const(node)
    return str(c) if c is not None else to_text(node)


_ET = 2048


def _u16(n, what):
    if not 0 <= n <= 0xFFFF:
        raise CatalogueError("%s %d does not fit the firmware form" % (what, n))
    return n.to_bytes(2, "big")


def pack(entries, kind, width):
    """One bytes constant for meter/catalogue.py Packed: header, slot map,
    fixed-width records (key order), payload. entries: [(key, record_tail,
    payload)]; a table's tail holds its payload offset relative to the
    payload start (fixed up here)."""
    entries = sorted(entries, key=lambda e: e[0])
    basic = [k for k, _, _ in entries if k < _ET]
    ext = [k - _ET for k, _, _ in entries if k >= _ET]
    if len(entries) > 254 or any(k >= 2 * _ET for k in ext):
        raise CatalogueError("catalogue does not fit the firmware form")
    split = max(basic) + 1 if basic else 0
    span = split + (max(ext) + 1 if ext else 0)
    slots = bytearray(span)
    records = bytearray()
    payload = bytearray()
    for i, (key, tail, data) in enumerate(entries):
        slots[key if key < _ET else key - _ET + split] = i + 1
        rec = _u16(key, "key") + (tail(len(payload)) if callable(tail) else tail)
        if len(rec) != width:
            raise CatalogueError("record width %d != %d" % (len(rec), width))
        records += rec
        payload += data
    head = 8 + span + len(records)
    out = bytearray(_u16(split, "split") + _u16(span, "span") + _u16(len(entries), "count")
                    + bytes((width, kind)) + slots)
    # table records hold payload offsets from the start of the constant
    if kind == 0:
        for i in range(len(entries)):
            r = i * width + 7
            off = int.from_bytes(records[r:r + 2], "big") + head
            records[r:r + 2] = _u16(off, "offset")
    return bytes(out + records + payload)


def table_entry(tid, read_mask, write_mask, flags, size, default):
    """A pack() entry of kind 0: size an int or RPN bytes; default bytes
    (trailing zeros already stripped; b"" for none)."""
    rpn = size if isinstance(size, bytes) else b""
    if not rpn and not 0 <= size < 0xFFFF:
        raise CatalogueError("size %d does not fit the firmware form" % size)
    code = 0xFFFF if rpn else size

    def tail(off):
        return (bytes((read_mask, write_mask, flags)) + _u16(code, "size") + _u16(off, "offset")
                + _u16(len(rpn), "RPN length") + _u16(len(default), "default length"))
    return tid, tail, rpn + default


def _table_entry(t):
    flags = (T_NV if t["nv"] else 0) | (T_DATA if t["data"] else 0) | (0 if t["inventory"] else T_OUTSIDE)
    c = const(t["size"])
    return table_entry(t["id"], t["read_mask"], t["write_mask"], flags,
                       c if c is not None else rpn_bytes(t["size"]), t["default"].rstrip(b"\x00"))


def _bytes_lines(name, data, chunk=48):
    """`NAME = Packed(b'...' b'...')`: one bytes constant over several lines."""
    lines = ["%s = Packed(" % name]
    for i in range(0, len(data), chunk):
        lines.append("    " + repr(data[i:i + chunk]))
    lines.append(")")
    return lines


def render_firmware(b, digest):
    role_doc = ", ".join("%s 0x%02X" % kv for kv in access.ROLE_NAMES)
    lines = [
        "# Generated by tools/catalogue_compiler.py from tables/*.toml -- do not edit.",
        "#",
        "# Role bits (osgp_meter.access): " + role_doc + ".",
        "# Table flags: 0x01 nv (survives power loss), 0x02 data (measured data cleared by BP03),",
        "#   0x04 outside the seed inventory.",
        "# Procedure flags: 0x01 in the seed inventory, 0x02 extended (EP).",
        "# Event flags: 0x01 critical, 0x02 extended.",
        "# size: an int, or bytes holding Reverse Polish Notation: 01 c(3, MSB) pushes c;",
        "#   02 table(2) offset(2) nbytes pushes that unsigned little-endian field;",
        "#   03 lo width pops x and pushes (x >> lo) & ((1 << width) - 1);",
        "#   '+' '-' '*' '/' (floor) 'M' (max) pop b, pop a and push a op b.",
        "# default: the initial contents (zero-filled to the size), or None for all zeros.",
        "# Each mapping is one bytes constant read through catalogue.Packed (layout there):",
        "# in flash when frozen, no dicts of tuples on the heap at import.",
        "from .catalogue import Packed",
        "",
        "SOURCE_DIGEST = \"%s\"" % digest,
        "# table_id: (size, read_mask, write_mask, flags, default)",
    ]
    for t in b.tables:
        flags = (T_NV if t["nv"] else 0) | (T_DATA if t["data"] else 0) | (0 if t["inventory"] else T_OUTSIDE)
        default = t["default"].rstrip(b"\x00")
        lines.append("#   %d %s %s: size %s, read 0x%02X, write 0x%02X, flags 0x%02X, default %d bytes" % (
            t["id"], t["key"], t["name"], _size_text(t["size"]), t["read_mask"], t["write_mask"], flags,
            len(default)))
    lines += _bytes_lines("TABLES", pack([_table_entry(t) for t in b.tables], 0, 13))
    lines.append("# number: (call_mask, flags)")
    procs = []
    for p in b.procedures:
        flags = (P_INVENTORY if p["inventory"] else 0) | (P_EXTENDED if p["kind"] == "extended" else 0)
        lines.append("#   %d %s %s: call 0x%02X, flags 0x%02X" % (p["id"], p["key"], p["name"], p["call_mask"], flags))
        procs.append((p["id"], bytes((p["call_mask"], flags)), b""))
    lines += _bytes_lines("PROCEDURES", pack(procs, 1, 4))
    lines.append("# number: flags")
    events = []
    for e in b.events:
        flags = (E_CRITICAL if e["critical"] else 0) | (E_EXTENDED if e["kind"] == "extended" else 0)
        lines.append("#   %d %s %s: flags 0x%02X" % (e["id"], e["key"], e["name"], flags))
        events.append((e["id"], bytes((flags,)), b""))
    lines += _bytes_lines("EVENTS", pack(events, 2, 3))
    return "\n".join(lines) + "\n"


def render_json(b, digest):
    def common(e):
        return {k: e[k] for k in ("name", "source", "layout_source", "ref") if e.get(k) is not None}

    tables = []
    for t in b.tables:
        j = {"label": t["key"], "id": t["id"], "number": t["id"], "kind_number": t["number"],
             "kind": t["kind"]}
        j.update(common(t))
        j.update({"size": _value_json(t["size"]), "default_size": b.size_of(t),
                  "access": t["access"],
                  "read": access.mask_names(t["read_mask"]), "write": access.mask_names(t["write_mask"]),
                  "read_mask": t["read_mask"], "write_mask": t["write_mask"],
                  "nv": t["nv"], "data": t["data"], "inventory": t["inventory"], "partial": t["partial"],
                  "default": t["default"].hex() or None, "note": t["note"], "file": t["file"],
                  "fields": _fields_json(t["fields"])})
        tables.append(j)
    procedures = []
    for p in b.procedures:
        j = {"label": p["key"], "id": p["id"], "number": p["id"], "kind_number": p["number"],
             "kind": p["kind"]}
        j.update(common(p))
        j.update({"inventory": p["inventory"], "call": access.mask_names(p["call_mask"]),
                  "call_mask": p["call_mask"], "note": p["note"], "file": p["file"],
                  "params": _fields_json(p["params"]), "response": _fields_json(p["response"])})
        procedures.append(j)
    events = []
    for e in b.events:
        j = {"label": e["key"], "id": e["id"], "number": e["id"], "kind_number": e["number"],
             "kind": e["kind"]}
        j.update(common(e))
        j.update({"critical": e["critical"], "argument": e["argument"], "note": e["note"],
                  "file": e["file"]})
        events.append(j)
    records = {}
    for name in sorted(b.instances):
        inst = b.instances[name]
        records[name] = {"record": inst["record"], "args": inst["args"],
                         "size": _value_json(inst["size"]), "note": inst.get("note"),
                         "fields": _fields_json(inst["fields"])}
    doc = {
        "generated_by": "tools/catalogue_compiler.py from tables/*.toml -- do not edit",
        "source_digest": digest,
        "roles": dict(access.ROLE_NAMES),
        "shorthands": b.shorthands,
        "counts": b.counts(),
        "tables": tables,
        "procedures": procedures,
        "events": events,
        "records": records,
    }
    return json.dumps(doc, indent=1, ensure_ascii=True) + "\n"
