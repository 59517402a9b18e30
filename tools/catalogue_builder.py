"""The catalogue builder (tables/README.md): tables/*.toml entries ->
resolved tables, procedures, events and records (expression trees), their
defaults, then validation of every layout and count. Split out of
tools/catalogue_compiler.py (which re-exports these names)."""
import random
import re

from osgp_meter import access

from .catalogue_expr import (EXTENDED_BASE, binop, const, evaluate, num, parse_expr, refs_of,
                             table_key)

SOURCES = ("osgp-guide", "c12.19", "seed", "emulator")
ROLE_BITS = dict(access.ROLE_NAMES)

# Element size in bytes; None = "count is the length in bytes" (byte-wise types).
TYPE_SIZES = {
    "UINT8": 1, "UINT16": 2, "UINT24": 3, "UINT32": 4, "UINT48": 6, "UINT64": 8,
    "INT8": 1, "INT16": 2, "INT32": 4, "INT64": 8,
    "NI_FMAT1": 4, "NI_FMAT2": 4,
    "LTIME_DATE": 6, "STIME_DATE": 5, "TIME": 3, "ANSI_DATE": 2, "RDATE": 2, "PED": 6,
    "CHAR": None, "BCD": None, "BYTES": None, "BITS": None,
    "RECORD": None,
}
BIG_ENDIAN_OK = ("UINT16", "UINT24", "UINT32", "BITS")


class CatalogueError(Exception):
    """The catalogue is invalid; the message lists every problem found."""


def parse_id(text, prefixes):
    """'BT23' -> ('basic', 23); prefixes maps two-letter prefix to kind."""
    m = re.match(r"([A-Z]{2})(\d+)$", text or "")
    if not m or m.group(1) not in prefixes:
        raise ValueError("bad id %r (expected %s + number)" % (text, "/".join(prefixes)))
    return prefixes[m.group(1)], int(m.group(2))


def hexbytes(text):
    return bytes.fromhex(re.sub(r"[\s_]", "", text))


# --------------------------------------------------------------------------
# The builder: specs -> resolved model (ASTs), then validation and output.

class Builder:
    def __init__(self, raw):
        self.raw = raw
        self.meta = raw["meta"]
        self.errors = []
        self.records = {r.get("name"): r for r in raw["record"]}
        self.instances = {}            # instance name -> resolved record
        self.shorthands = self._shorthands()
        self.profiles = self.meta.get("access", {})
        self.tables, self.procedures, self.events = [], [], []
        self.by_tid = {}

    def err(self, where, msg):
        self.errors.append("%s: %s" % (where, msg))

    # ---- access ----------------------------------------------------------
    def _shorthands(self):
        out = {}
        for name, roles in self.meta.get("roles", {}).items():
            mask = 0
            for role in roles:
                if role not in ROLE_BITS:
                    self.err("roles." + name, "unknown role %r" % role)
                else:
                    mask |= ROLE_BITS[role]
            out[name] = mask
        return out

    def mask(self, roles, where):
        if isinstance(roles, str):
            roles = [roles]
        mask = 0
        for role in roles:
            if role in ROLE_BITS:
                mask |= ROLE_BITS[role]
            elif role in self.shorthands:
                mask |= self.shorthands[role]
            else:
                self.err(where, "unknown role or shorthand %r" % role)
        return mask

    # ---- layouts ---------------------------------------------------------
    def expr(self, value, where, params):
        if isinstance(value, str) and "{" in value:
            def sub(m):
                if m.group(1) not in params:
                    raise ValueError("unknown parameter {%s}" % m.group(1))
                return "(" + params[m.group(1)] + ")"
            value = re.sub(r"\{(\w+)\}", sub, value)
        try:
            return parse_expr(value)
        except ValueError as exc:
            self.err(where, "expression %r: %s" % (value, exc))
            return num(0)

    def layout(self, specs, where, params, allow_rest=False):
        fields, running = [], num(0)
        for i, spec in enumerate(specs):
            fwhere = "%s.%s" % (where, spec.get("name", "#%d" % i))
            field = self.field(spec, fwhere, params, running, allow_rest and i == len(specs) - 1)
            fields.append(field)
            running = binop("+", field["offset"], field["size"]) if field["size"] is not None else running
        return fields, running

    def field(self, spec, where, params, running, allow_rest):
        known = {"name", "offset", "type", "count", "bits", "record", "args", "be", "note", "values"}
        for key in spec:
            if key not in known:
                self.err(where, "unknown field key %r" % key)
        typ = spec.get("type")
        if typ not in TYPE_SIZES:
            self.err(where, "unknown type %r" % typ)
            typ = "BYTES"
        if not spec.get("name"):
            self.err(where, "field without a name")
        offset = self.expr(spec["offset"], where + ".offset", params) if "offset" in spec else running
        count, rest = None, False
        if spec.get("count") == "rest":
            if not (allow_rest and typ == "BYTES"):
                self.err(where, "count = 'rest' only for a final BYTES field of a procedure layout")
            rest = True
        elif "count" in spec:
            count = self.expr(spec["count"], where + ".count", params)
        record = None
        if typ == "RECORD":
            if "record" not in spec:
                self.err(where, "RECORD field without 'record'")
                elem = num(0)
            else:
                record = self.instance(spec["record"], spec.get("args", {}), params, where)
                elem = record["size"]
        elif TYPE_SIZES[typ] is None:
            elem = num(1)
        else:
            elem = num(TYPE_SIZES[typ])
        size = None if rest else binop("*", count if count is not None else num(1), elem)
        field = {"name": spec.get("name", "?"), "type": typ, "offset": offset, "count": count,
                 "rest": rest, "size": size, "elem": elem}
        if record is not None:
            field["record"] = record["name"]
        if spec.get("be"):
            if typ not in BIG_ENDIAN_OK:
                self.err(where, "be = true only for %s" % ", ".join(BIG_ENDIAN_OK))
            field["be"] = True
        if "bits" in spec:
            if typ != "BITS":
                self.err(where, "'bits' only on BITS fields")
            width = const(size) if size is not None else None
            for b in spec["bits"]:
                if set(b) - {"name", "lo", "width", "note", "values"} or "name" not in b:
                    self.err(where, "bad bits entry %r" % (b,))
                    continue
                lo, w = b.get("lo", 0), b.get("width", 1)
                if width is not None and (lo < 0 or w < 1 or lo + w > 8 * width):
                    self.err(where, "bit range %s outside %d bytes" % (b["name"], width))
            field["bits"] = [dict({"name": b.get("name"), "lo": b.get("lo", 0), "width": b.get("width", 1)},
                                  **{k: b[k] for k in ("note", "values") if k in b})
                             for b in spec["bits"]]
        for key in ("note", "values"):
            if key in spec:
                field[key] = spec[key]
        return field

    def instance(self, name, args, params, where):
        spec = self.records.get(name)
        if spec is None:
            self.err(where, "unknown record %r" % name)
            return {"name": name, "size": num(0), "fields": []}
        resolved = {}
        for key, value in sorted(args.items()):
            value = str(value)
            for pname, pvalue in params.items():
                value = value.replace("{%s}" % pname, "(" + pvalue + ")")
            resolved[key] = value
        wanted = spec.get("params", [])
        if sorted(wanted) != sorted(resolved):
            self.err(where, "record %s takes params %s, got %s" % (name, wanted, sorted(resolved)))
        iname = name if not resolved else "%s(%s)" % (
            name, ", ".join("%s=%s" % kv for kv in sorted(resolved.items())))
        if iname not in self.instances:
            self.instances[iname] = {"name": iname, "size": num(0), "fields": []}  # guards recursion
            fields, end = self.layout(spec.get("fields", []), "record " + iname, resolved)
            self.instances[iname] = {"name": iname, "record": name, "args": resolved,
                                     "size": end, "fields": fields, "note": spec.get("note")}
        return self.instances[iname]

    # ---- entries ---------------------------------------------------------
    ENTRY_KEYS = {
        "table": {"id", "name", "source", "layout_source", "ref", "note", "access", "read", "write",
                  "size", "nv", "data", "default", "inventory", "partial", "fields"},
        "procedure": {"id", "name", "source", "layout_source", "ref", "note", "call", "inventory",
                      "params", "response"},
        "event": {"id", "name", "source", "layout_source", "ref", "note", "critical", "argument"},
    }

    def common(self, spec, where, entry):
        kind = where.split()[0]
        for key in sorted(set(spec) - self.ENTRY_KEYS[kind] - {"_file"}):
            self.err(where, "unknown key %r" % key)
        for key in ("name", "source", "ref"):
            if not spec.get(key):
                self.err(where, "missing %r" % key)
        source = spec.get("source")
        if source not in SOURCES:
            self.err(where, "source %r is not one of %s" % (source, SOURCES))
        lsource = spec.get("layout_source", source)
        if lsource not in SOURCES:
            self.err(where, "layout_source %r is not one of %s" % (lsource, SOURCES))
        if "emulator" in (source, lsource) and "emulator" not in str(spec.get("note", "")).lower():
            self.err(where, "emulator-defined entries must say so in their 'note'")
        entry.update({"name": spec.get("name", "?"), "source": source, "layout_source": lsource,
                      "ref": spec.get("ref", ""), "note": spec.get("note"), "file": spec["_file"]})

    def build_tables(self):
        for spec in self.raw["table"]:
            where = "table %s" % spec.get("id")
            try:
                kind, number = parse_id(spec.get("id"), {"BT": "basic", "ET": "extended"})
            except ValueError as exc:
                self.err(where, str(exc))
                continue
            tid = number + (EXTENDED_BASE if kind == "extended" else 0)
            t = {"key": spec["id"], "id": tid, "number": number, "kind": kind}
            self.common(spec, where, t)
            profile = {}
            if "access" in spec:
                profile = self.profiles.get(spec["access"])
                if profile is None:
                    self.err(where, "unknown access profile %r" % spec["access"])
                    profile = {}
            read = spec.get("read", profile.get("read", []))
            write = spec.get("write", profile.get("write", []))
            t["access"] = spec.get("access")
            t["read_mask"] = self.mask(read, where + ".read")
            t["write_mask"] = self.mask(write, where + ".write")
            t["nv"] = bool(spec.get("nv", False))
            t["data"] = bool(spec.get("data", False))
            t["inventory"] = bool(spec.get("inventory", True))
            t["partial"] = bool(spec.get("partial", False))
            if "nv" not in spec:
                self.err(where, "missing 'nv'")
            t["fields"], t["end"] = self.layout(spec.get("fields", []), spec["id"], {})
            t["size_given"] = "size" in spec
            t["size"] = self.expr(spec["size"], where + ".size", {}) if "size" in spec else t["end"]
            t["default_spec"] = spec.get("default")
            if tid in self.by_tid:
                self.err(where, "duplicate table id %d" % tid)
            self.by_tid[tid] = t
            self.tables.append(t)
        self.tables.sort(key=lambda t: t["id"])

    def build_procedures(self):
        seen = set()
        for spec in self.raw["procedure"]:
            where = "procedure %s" % spec.get("id")
            try:
                kind, number = parse_id(spec.get("id"), {"BP": "basic", "EP": "extended"})
            except ValueError as exc:
                self.err(where, str(exc))
                continue
            pid = number + (EXTENDED_BASE if kind == "extended" else 0)
            p = {"key": spec["id"], "id": pid, "number": number, "kind": kind,
                 "inventory": bool(spec.get("inventory", True))}
            self.common(spec, where, p)
            p["call_mask"] = self.mask(spec.get("call", []), where + ".call")
            p["call"] = spec.get("call", [])
            for part in ("params", "response"):
                fields, end = self.layout(spec.get(part, []), "%s.%s" % (spec["id"], part), {},
                                          allow_rest=True)
                p[part] = fields
                p[part + "_end"] = end
            if pid in seen:
                self.err(where, "duplicate procedure number %d" % pid)
            seen.add(pid)
            self.procedures.append(p)
        self.procedures.sort(key=lambda p: p["id"])

    def build_events(self):
        seen = set()
        for spec in self.raw["event"]:
            where = "event %s" % spec.get("id")
            try:
                kind, number = parse_id(spec.get("id"), {"BE": "basic", "EE": "extended"})
            except ValueError as exc:
                self.err(where, str(exc))
                continue
            eid = number + (EXTENDED_BASE if kind == "extended" else 0)
            if kind == "basic" and number >= EXTENDED_BASE:
                self.err(where, "standard event numbers are 0..2047")
            e = {"key": spec["id"], "id": eid, "number": number, "kind": kind,
                 "critical": bool(spec.get("critical", False)),
                 "argument": spec.get("argument", "")}
            self.common(spec, where, e)
            if "argument" not in spec:
                self.err(where, "missing 'argument' (say 'none' when unused)")
            if eid in seen:
                self.err(where, "duplicate event number %d" % eid)
            seen.add(eid)
            self.events.append(e)
        self.events.sort(key=lambda e: e["id"])

    # ---- defaults and dimensions -----------------------------------------
    def build_defaults(self):
        computed = {0: self.bt00_default, 72: self.bt72_default, 73: self.bt73_default,
                    EXTENDED_BASE + 18: self.et18_default}
        for t in self.tables:
            spec = t["default_spec"]
            t["default"] = b""
            if spec is None or spec == "@computed":
                continue
            try:
                if isinstance(spec, str):
                    t["default"] = hexbytes(spec)
                else:        # {"<offset>": "hex", ...} patches over zeros
                    buf = bytearray()
                    for off, text in sorted(spec.items(), key=lambda kv: int(kv[0])):
                        data = hexbytes(text)
                        off = int(off)
                        if len(buf) < off + len(data):
                            buf.extend(bytes(off + len(data) - len(buf)))
                        buf[off:off + len(data)] = data
                    t["default"] = bytes(buf)
            except (ValueError, TypeError) as exc:
                self.err("table " + t["key"], "bad default: %s" % exc)
        # computed ones last: they read other tables' defaults
        for t in self.tables:
            if t["default_spec"] == "@computed":
                fn = computed.get(t["id"])
                if fn is None:
                    self.err("table " + t["key"], "no computed default for this table")
                else:
                    t["default"] = fn()

    def dims(self, tid, off, nbytes):
        t = self.by_tid.get(tid)
        data = t["default"] if t else b""
        chunk = data[off:off + nbytes]
        return int.from_bytes(chunk + bytes(nbytes - len(chunk)), "little")

    def size_of(self, t, dims=None):
        return evaluate(t["size"], dims or self.dims)

    @staticmethod
    def bitset(numbers, nbytes):
        buf = bytearray(nbytes)
        for n in numbers:
            if n < 8 * nbytes:
                buf[n // 8] |= 1 << (n % 8)
        return bytes(buf)

    def bt00_default(self):
        m = self.meta.get("bt00", {})
        dims = [m.get(k, 0) for k in ("dim_std_tbls_used", "dim_mfg_tbls_used",
                                      "dim_std_proc_used", "dim_mfg_proc_used")]
        basic = [t["number"] for t in self.tables if t["kind"] == "basic"]
        ext = [t["number"] for t in self.tables if t["kind"] == "extended"]
        for label, numbers, nbytes in (("basic tables", basic, dims[0]),
                                       ("extended tables", ext, dims[1]),
                                       ("basic procedures", [p["number"] for p in self.procedures
                                                             if p["kind"] == "basic"], dims[2]),
                                       ("extended procedures", [p["number"] for p in self.procedures
                                                                if p["kind"] == "extended"], dims[3])):
            if numbers and max(numbers) >= 8 * nbytes:
                self.err("meta.bt00", "%s up to %d do not fit in %d bytes" % (label, max(numbers), nbytes))
        manufacturer = m.get("manufacturer", "EMUL").encode("ascii")
        head = bytes([m.get("format_control_1", 0), m.get("format_control_2", 0),
                      m.get("format_control_3", 0)]) + manufacturer[:4].ljust(4, b" ")
        head += bytes([m.get(k, 0) for k in (
            "nameplate_type", "default_set_used", "max_proc_parm_length", "max_resp_data_len",
            "std_version_no", "std_revision_no", "dim_std_tbls_used", "dim_mfg_tbls_used",
            "dim_std_proc_used", "dim_mfg_proc_used", "dim_mfg_status_used", "nbr_pending")])
        bw = [t["number"] for t in self.tables if t["kind"] == "basic" and t["write_mask"]]
        ew = [t["number"] for t in self.tables if t["kind"] == "extended" and t["write_mask"]]
        return (head + self.bitset(basic, dims[0]) + self.bitset(ext, dims[1])
                + self.bitset([p["number"] for p in self.procedures if p["kind"] == "basic"], dims[2])
                + self.bitset([p["number"] for p in self.procedures if p["kind"] == "extended"], dims[3])
                + self.bitset(bw, dims[0]) + self.bitset(ew, dims[1]))

    def _event_sets(self, only_critical=False):
        std = [e["number"] for e in self.events if e["kind"] == "basic"
               and (e["critical"] or not only_critical)]
        mfg = [e["number"] for e in self.events if e["kind"] == "extended"
               and (e["critical"] or not only_critical)]
        nstd, nmfg = self.dims(71, 1, 1), self.dims(71, 2, 1)
        for label, numbers, nbytes in (("standard", std, nstd), ("extended", mfg, nmfg)):
            if numbers and max(numbers) >= 8 * nbytes:
                self.err("table BT71", "%s events up to %d do not fit in %d bytes" % (
                    label, max(numbers), nbytes))
        return self.bitset(std, nstd) + self.bitset(mfg, nmfg)

    def bt72_default(self):
        return self._event_sets()

    def bt73_default(self):
        # log every catalogued event and every procedure call; no table writes
        procs_std = [p["number"] for p in self.procedures if p["kind"] == "basic"]
        procs_mfg = [p["number"] for p in self.procedures if p["kind"] == "extended"]
        return (self._event_sets() + bytes(self.dims(0, 13, 1) + self.dims(0, 14, 1))
                + self.bitset(procs_std, self.dims(0, 15, 1))
                + self.bitset(procs_mfg, self.dims(0, 16, 1)))

    def et18_default(self):
        return self._event_sets(only_critical=True)

    # ---- validation ------------------------------------------------------
    def random_dims(self, seed):
        def dims(tid, off, nbytes):
            return random.Random("%d/%d/%d/%d" % (seed, tid, off, nbytes)).randrange(0, 41)
        return dims

    def check_refs(self, node, where):
        for tid, off, nbytes in refs_of(node):
            t = self.by_tid.get(tid)
            if t is None:
                self.err(where, "refers to missing table %s" % table_key(tid))
            elif const(t["size"]) is None:
                self.err(where, "refers to %s, which has no fixed size" % t["key"])
            elif off + nbytes > const(t["size"]):
                self.err(where, "%s.%d:%d is outside the table" % (t["key"], off, nbytes))

    def walk_exprs(self, fields, where):
        for f in fields:
            for key in ("offset", "count", "size"):
                if f.get(key) is not None:
                    self.check_refs(f[key], "%s.%s.%s" % (where, f["name"], key))

    def check_layout(self, fields, size, where, dims, exact):
        """Fields in order, no overlap, no gaps, inside size (and ending at it when exact)."""
        pos = 0
        for f in fields:
            if f["size"] is None:        # 'rest': runs to the end
                return
            off, fsize = evaluate(f["offset"], dims), evaluate(f["size"], dims)
            if off < pos:
                self.err(where, "field %s at %d overlaps the previous field (ends at %d)" % (
                    f["name"], off, pos))
            elif off > pos:
                self.err(where, "gap before field %s (%d..%d): add a reserved field" % (
                    f["name"], pos, off))
            if fsize < 0:
                self.err(where, "field %s has negative size" % f["name"])
            pos = max(pos, off + fsize)
        if size is not None:
            if pos > size:
                self.err(where, "layout ends at %d, past the size %d" % (pos, size))
            elif exact and pos != size:
                self.err(where, "layout ends at %d but the size is %d (set partial = true "
                         "or document the rest)" % (pos, size))

    def validate(self):
        for t in self.tables:
            where = "table " + t["key"]
            self.check_refs(t["size"], where + ".size")
            self.walk_exprs(t["fields"], where)
            self.check_layout(t["fields"], self.size_of(t), where, self.dims, not t["partial"])
            if const(t["size"]) is None:
                if t["size_given"] and not t["partial"]:
                    for seed in range(6):   # size formula and layout agree for any dimensions
                        d = self.random_dims(seed)
                        if evaluate(t["size"], d) != evaluate(t["end"], d):
                            self.err(where, "size expression and layout disagree for other "
                                     "dimension values (seed %d: %d vs %d)" % (
                                         seed, evaluate(t["size"], d), evaluate(t["end"], d)))
                            break
            if len(t["default"]) > self.size_of(t):
                self.err(where, "default (%d bytes) is longer than the table (%d)" % (
                    len(t["default"]), self.size_of(t)))
        for inst in self.instances.values():
            self.walk_exprs(inst["fields"], "record " + inst["name"])
            self.check_layout(inst["fields"], None, "record " + inst["name"], self.dims, False)
        max_params, max_resp = self.dims(0, 9, 1), self.dims(0, 10, 1)
        for p in self.procedures:
            where = "procedure " + p["key"]
            for part, limit in (("params", max_params), ("response", max_resp)):
                self.check_layout(p[part], None, where + "." + part, self.dims, False)
                end = p[part + "_end"]
                if const(end) is None:
                    self.err(where, "%s layout must have constant offsets and sizes" % part)
                elif const(end) > limit:
                    self.err(where, "%s layout is %d bytes, more than BT00 allows (%d)" % (
                        part, const(end), limit))
        self.validate_counts()

    def counts(self):
        def tally(entries, extra=None):
            out = {"total": 0, "basic": 0, "extended": 0, "by_source": {}}
            for e in entries:
                if not e.get("inventory", True):
                    continue
                out["total"] += 1
                out[e["kind"]] += 1
                out["by_source"][e["source"]] = out["by_source"].get(e["source"], 0) + 1
            out["by_source"] = dict(sorted(out["by_source"].items()))
            return out
        procs = tally(self.procedures)
        outside = [p for p in self.procedures if not p["inventory"]]
        procs["outside_inventory"] = len(outside)
        procs["outside_by_source"] = {}
        for p in outside:
            procs["outside_by_source"][p["source"]] = procs["outside_by_source"].get(p["source"], 0) + 1
        tables = tally(self.tables)
        tables["outside_inventory"] = sum(1 for t in self.tables if not t["inventory"])
        return {"tables": tables, "procedures": procs, "events": tally(self.events)}

    def validate_counts(self):
        expect = self.meta.get("expect", {})
        got = self.counts()
        for kind, wanted in expect.items():
            for key, value in wanted.items():
                if got.get(kind, {}).get(key) != value:
                    self.err("meta.expect", "%s.%s is %s, expected %s" % (
                        kind, key, got.get(kind, {}).get(key), value))

    def build(self):
        self.build_tables()
        self.build_procedures()
        self.build_events()
        self.build_defaults()
        self.validate()
        if self.errors:
            raise CatalogueError("\n".join(self.errors))
        return self
