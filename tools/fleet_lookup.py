"""Fleet lookups (docs/fleet.md): shards, channels, meters and identities
by index, id or Neuron ID, the inventory, the meters' keys and a DC on a
shard. A mixin of Fleet (tools/fleet.py), moved here to keep that module
short; it uses the Fleet's attributes (meters, shards, scheme, config ...)."""
from osgp_meter import access

from .fleet_config import FleetError
from .fleet_shard import Shard, shard_address


class FleetLookups:
    """Fleet's lookup, inventory and key methods (see Fleet's docstring)."""

    # -- lookups ------------------------------------------------------------------------
    def shard(self, s):
        """A Shard by index, transformer id or meter id."""
        if isinstance(s, Shard):
            return s
        if self.remote:
            raise FleetError("shard %r runs in another process (processes = %d): reach it over "
                             "CN/IP" % (s, self.config.processes))
        self.build()
        sh = self._by_id.get(s)
        if sh is None and s in self.transformer_of:
            sh = self._by_id.get(self.transformer_of[s])
        if sh is None:
            if isinstance(s, int) and 0 <= s < len(self._shard_topos) or s in self.shard_ids:
                raise FleetError("shard %r runs in another process" % (s,))
            raise FleetError("no shard %r (transformers: %s)" % (s, ", ".join(self.shard_ids[:12])))
        return sh

    def channel(self, shard):
        return self.shard(shard).channel

    def node(self, meter):
        mid = self._meter_id(meter)
        return self.shard(mid).channel.node(mid)

    def firmware(self, meter):
        return self.node(meter).fw

    def index(self, meter):
        """The fleet index k (1-based) of a meter id, index or Neuron ID."""
        if isinstance(meter, int) and not isinstance(meter, bool):
            if not 1 <= meter <= len(self.meters):
                raise FleetError("meter index %d outside 1-%d" % (meter, len(self.meters)))
            return meter
        if isinstance(meter, (bytes, bytearray)):
            k = self.scheme.index_of_neuron_id(meter)
            if k is None or not 1 <= k <= len(self.meters):
                raise FleetError("Neuron ID %s is not one of this fleet's" % bytes(meter).hex())
            return k
        k = self._index.get(meter)
        if k is None:
            raise FleetError("no meter %r in the fleet" % (meter,))
        return k

    def _meter_id(self, meter):
        return self.meters[self.index(meter) - 1]

    def identity(self, meter):
        """A meter's Identity (by id, index or Neuron ID), with the keys it
        really holds (the template's when [identity] keys = "template")."""
        k = self.index(meter)
        tr = self.transformer_of[self.meters[k - 1]]
        ident = self.scheme.identity(k, tr)
        if self.config.keys == "template":
            tk = self.template["keys"]
            ident.plc_key = tk.get(access.ROLE_PLC)
            ident.mak = tk.get(access.ROLE_MAK)
            ident.mbk = tk.get(access.ROLE_MBK)
        ident.bcast_key = self._bcast(ident, tr)
        return ident

    def inventory(self):
        """One dict per meter, in fleet order, without building anything:
        index, id, transformer (shard), its CN/IP port, the address direct
        commissioning gives it, and its identity (hex keys)."""
        cfg = self.config
        local = {}
        for k, mid in enumerate(self.meters, 1):
            tr = self.transformer_of[mid]
            si = self.shard_ids.index(tr)
            n = local[tr] = local.get(tr, 0) + 1
            d = {"index": k, "id": mid, "transformer": tr, "shard": si,
                 "cnip_port": None if cfg.cnip_port in (None, 0) else cfg.cnip_port + si}
            if cfg.commission == "direct":
                d["address"] = "%d/%d" % shard_address(n)
                d["domain"] = cfg.domain.hex()
            ident = self.identity(k).as_dict()
            ident.pop("index")
            d.update(ident)
            yield d

    def write_inventory(self, path):
        """The inventory as CSV (a head-end's import file). It holds every
        meter's keys, so it is created readable by its owner only."""
        import csv
        import os
        rows = list(self.inventory())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        return len(rows)

    def key_for(self, target):
        """The PLC unicast key (factory, as derived) of a DC Target (Neuron
        ID or subnet/node on an in-process shard); None when unknown."""
        nid = getattr(target, "neuron_id", None)
        if nid is not None:
            k = self.scheme.index_of_neuron_id(nid)
            return self.plc_key(k) if k is not None and 1 <= k <= len(self.meters) else None
        sn = (target.subnet, target.node) if hasattr(target, "subnet") else tuple(target)
        for sh in self.shards:
            for mid, k in zip(sh.meters, sh.indices):
                a = sh.channel.node(mid).plc.address()
                if a is not None and (a[1], a[2]) == sn:
                    return self.plc_key(k)
        return None

    def plc_key(self, meter):
        """A meter's factory PLC unicast key (derived, or the template's)."""
        if self.config.keys == "template":
            return self.template["keys"].get(access.ROLE_PLC)
        return self.scheme.plc_key(self.index(meter))

    def _bcast(self, ident, shard_id):
        if self.scheme.broadcast == "meter":
            return ident.bcast_key
        key = self._bcast_keys.get(shard_id)
        if key is None:
            key = self._bcast_keys[shard_id] = self.scheme.broadcast_key(ident.index, shard_id)
        return key

    def keys_of(self, shard):
        """A DC ``keys`` callable for one shard (subnet/node looked up in that
        shard only, Neuron IDs by inverting the derivation)."""
        sh = self.shard(shard)
        cache = {}

        def keys(target):
            nid = getattr(target, "neuron_id", None)
            if nid is not None:
                k = self.scheme.index_of_neuron_id(nid)
                return self.plc_key(k) if k is not None and 1 <= k <= len(self.meters) \
                    else None
            sn = (target.subnet, target.node)
            if sn not in cache:
                cache.clear()
                for mid, k in zip(sh.meters, sh.indices):
                    a = sh.channel.node(mid).plc.address()
                    if a is not None:
                        cache[(a[1], a[2])] = k
            k = cache.get(sn)
            return None if k is None else self.plc_key(k)
        return keys

    def dc(self, shard=0, **kw):
        """A DC (osgp_host.dc.DC) at the shard's DC position, with the
        meters' derived keys, their names and the fleet's domain."""
        from .dc import DC
        sh = self.shard(shard)
        if sh.dc_id is None:
            raise FleetError("shard %s has no DC position" % sh.id)
        kw.setdefault("keys", self.keys_of(sh))
        kw.setdefault("names", sh.addresses())
        kw.setdefault("domain", self.config.domain)
        # meters in AES mode ([security] mode = "aes": ET04.127 = 2) need an AES DC
        kw.setdefault("aes", self.template["image"].get(2048 + 4, b"")[127:128] == b"\x02")
        return DC(sh.channel, kw.pop("node_id", sh.dc_id), **kw)


class Inventory:
    """A fleet inventory CSV read back: a head end's key import
    (`osgp-meter dc --inventory`, docs/dc.md). Call it with a DC Target for
    that meter's PLC unicast key, so ``DC(keys=inv, neuron_ids=inv.neuron_id)``;
    None (the DC's `key` then) for a meter it does not list, after a warning.

    Subnet/node addresses restart in each shard, so they are looked up among
    the rows of one shard: ``shard`` (transformer id or index), else the rows
    whose cnip_port is ``port`` (the DC's gateway), else all rows, which must
    then not repeat an address. Neuron IDs are unique: looked up in all rows.
    """

    def __init__(self, rows, source="inventory", port=None, shard=None, warn=None,
                 fallback="the DC's key"):
        self.source = source
        self.warn = warn
        self.fallback = fallback
        self.rows = rows = [self._row(r, i) for i, r in enumerate(rows, 2)]
        self.by_nid = {r["nid"]: r for r in rows if r["nid"] is not None}
        if shard is not None:
            shard = str(shard)
            sel = [r for r in rows if shard in (r.get("transformer"), r.get("shard"))]
            if not sel:
                raise ValueError("%s: no meter of shard %r (shards: %s)" % (
                    source, shard, ", ".join(self._shards(rows)) or "-"))
            ports = {r.get("cnip_port") for r in sel} - {None, ""}
            if port is not None and ports and str(port) not in ports and warn is not None:
                warn("warning: %s: shard %s is on CN/IP port %s, not %s" % (
                    source, shard, "/".join(sorted(ports)), port))
        else:
            sel = [r for r in rows if port is not None and r.get("cnip_port") == str(port)]
            sel = sel or rows
        self.by_addr = {}
        self.ambiguous = set()
        for r in sel:
            a = r["sn"]
            if a is None:
                continue
            if a in self.by_addr and self.by_addr[a] is not r:
                self.ambiguous.add(a)
            self.by_addr[a] = r
        self.shards = self._shards(sel)
        self._warned = set()

    @classmethod
    def load(cls, path, **kw):
        import csv
        with open(path, newline="", encoding="utf-8-sig") as f:    # a BOM from a spreadsheet
            rows = list(csv.DictReader(f))
        return cls(rows, source=str(path), **kw)

    @staticmethod
    def _shards(rows):
        seen = []
        for r in rows:
            s = r.get("transformer") or r.get("shard")
            if s and s not in seen:
                seen.append(s)
        return seen

    def _row(self, r, line):
        """Parse one CSV row: its address, Neuron ID and keys (bytes)."""
        where = "%s line %d" % (self.source, line)
        r = dict(r)
        try:
            key = bytes.fromhex((r.get("plc_key") or "").strip())
        except ValueError:
            raise ValueError("%s: plc_key %r is not hex" % (where, r.get("plc_key")))
        if len(key) != 12:
            raise ValueError("%s: plc_key: 12 bytes (24 hex digits) expected" % where)
        r["key"] = key
        nid = (r.get("neuron_id") or "").strip()
        try:
            r["nid"] = bytes.fromhex(nid) if nid else None
        except ValueError:
            r["nid"] = b""
        if r["nid"] is not None and len(r["nid"]) != 6:
            raise ValueError("%s: neuron_id %r is not 6 bytes of hex" % (where, nid))
        a = (r.get("address") or "").strip()
        r["sn"] = None
        if a:
            s, _, n = a.partition("/")
            if not (s.isdigit() and n.isdigit()):
                raise ValueError("%s: address %r: subnet/node expected" % (where, a))
            r["sn"] = (int(s), int(n))
        if r["sn"] is None and r["nid"] is None:
            raise ValueError("%s: neither an address nor a Neuron ID" % where)
        return r

    def row(self, target):
        """The inventory row (dict) of a DC Target, or None."""
        nid = getattr(target, "neuron_id", None)
        if nid is not None:
            return self.by_nid.get(bytes(nid))
        sn = (target.subnet, target.node)
        if sn in self.ambiguous:
            raise ValueError("%s: %d/%d is in several shards (%s): give --shard (or a CN/IP "
                             "port the inventory's cnip_port names)"
                             % (self.source, sn[0], sn[1], ", ".join(self.shards)))
        return self.by_addr.get(sn)

    def __call__(self, target):
        r = self.row(target)
        if r is not None:
            return r["key"]
        if self.warn is not None and target.key not in self._warned:
            self._warned.add(target.key)
            self.warn("warning: %s is not in %s: using %s" % (
                target.address(), self.source, self.fallback))
        return None

    def neuron_id(self, target):
        """The meter's Neuron ID (AES mode's nonce) from the inventory, or None."""
        r = self.row(target)
        return None if r is None else r["nid"]

    def __len__(self):
        return len(self.rows)
