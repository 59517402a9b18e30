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
        """The inventory as CSV (a head-end's import file)."""
        import csv
        rows = list(self.inventory())
        with open(path, "w", newline="") as f:
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
