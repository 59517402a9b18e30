# meter.life: a meter's commissioning lifecycle (docs/commissioning.md),
# the glue between the PLC node and the table of lifecycle_table.py.
# Portable and sans-IO (CPython and MicroPython).
#
# plc_node runs its own node state through the table and tells Life of every
# node trigger (node_changed): entering the configured states commissions,
# leaving them decommissions, a new domain while configured commissions again
# (by another DC: moved). plc_node also reports each authenticated OSGP
# request over PLC (osgp_request), plc_discovery each discovery answer
# (fire("discover")). The OSGP lifecycle state is kept in ET99, where a head
# end reads it and a restarted meter finds it.
from . import lifecycle as LC
from . import lifecycle_table as T

REFUSED = LC.REFUSED
CONFIGURED = ("configured", "soft_offline", "hard_offline", "bypass")
_OSGP_NAMES = {}
for _n in T.CODES["osgp"]:
    _OSGP_NAMES[T.CODES["osgp"][_n]] = _n

# EMULATOR PROFILE: the record lives in ET99 after the node's configuration
# image (ET99 is non-volatile and readable with any key; its node image is
# bytes 0-112, docs/plc-node.md):
#   113  1  record version (0: never written: derived from the node)
#   114  1  OSGP lifecycle state: 0 uninstalled, 1 discovered, 2 commissioned,
#           3 operational, 4 decommissioned, 5 moved
#   115  1  length of the commissioning DC's domain ID (0xFF: none)
#   116  6  that domain ID
#   122  1  times moved to another DC (saturating)
ET99 = 2048 + 99
REC = 113
REC_SIZE = 10
REC_VERSION = 1
NO_DC = 0xFF


class Life:
    """meter.life: the OSGP lifecycle of a meter with a PLC node.

    osgp        the OSGP lifecycle state (name)
    node_state  the node state (name), the same as ET04.72 says
    dc          the domain ID of the DC that commissioned it, or None
    moves       times it was commissioned by another DC
    refused     {"node": n, "osgp": n}: triggers the table refused
    last        (machine, state, trigger, next state or REFUSED)
    on_change   None or fn(life, machine, trigger, src, dst): after every
                change of state (hosts log it, fleets count it)
    """

    __slots__ = ("node", "store", "_ram", "_init", "_rn", "_ro", "last", "on_change")

    def __init__(self, node, store=None):
        self.node = node
        self.store = store
        self._rn = 0              # refused node triggers (two ints: a fleet has many Lifes)
        self._ro = 0              # refused OSGP triggers
        self.last = None
        self.on_change = None
        ok = store is not None and store.exists(ET99) and (store.size(ET99) or 0) >= REC + REC_SIZE
        # no record yet: what the node says at attach time (a node already
        # configured then was commissioned before the lifecycle existed: an
        # older saved state)
        self._init = self._derived()
        self._ram = None if ok else self._init

    # -- the record ---------------------------------------------------------------
    def _derived(self):
        n = self.node
        if n is not None and n.configured:
            a = n.address(0) or n.address(1)
            return ["commissioned", a[0] if a else None, 0]
        return ["uninstalled", None, 0]

    def _get(self):
        if self._ram is not None:
            return self._ram
        b = self.store.read(ET99, REC, REC_SIZE)
        if b[0] != REC_VERSION or b[1] not in _OSGP_NAMES:
            return self._init
        dc = None if b[2] > 6 else bytes(b[3:3 + b[2]])
        return [_OSGP_NAMES[b[1]], dc, b[9]]

    def _put(self, state, dc, moves):
        if self._ram is not None:
            self._ram = [state, dc, moves]
            return
        rec = bytearray(REC_SIZE)
        rec[0] = REC_VERSION
        rec[1] = T.CODES["osgp"][state]
        if dc is None:
            rec[2] = NO_DC
        else:
            rec[2] = len(dc)
            rec[3:3 + len(dc)] = dc
        rec[9] = moves if moves < 255 else 255
        rec = bytes(rec)
        if self.store.read(ET99, REC, REC_SIZE) != rec:
            self.store.write(ET99, REC, rec)

    @property
    def refused(self):
        return {"node": self._rn, "osgp": self._ro}

    @property
    def osgp(self):
        return self._get()[0]

    @property
    def dc(self):
        return self._get()[1]

    @property
    def moves(self):
        return self._get()[2]

    @property
    def code(self):
        """The OSGP lifecycle code (ET99.114)."""
        return T.CODES["osgp"][self.osgp]

    @property
    def node_state(self):
        n = self.node
        return LC.node_name(n.state_code) if n is not None else None

    def state(self):
        """(node state, OSGP lifecycle state)."""
        return self.node_state, self.osgp

    # -- triggers --------------------------------------------------------------------
    def fire(self, trigger, ctx=None):
        """An OSGP lifecycle trigger; True accepted, False refused (nothing
        changes)."""
        state, dc, moves = self._get()
        ok, nxt = LC.step("osgp", state, trigger, ctx)
        self.last = ("osgp", state, trigger, nxt if ok else REFUSED)
        if not ok:
            self._ro += 1
            return False
        if trigger == "commission" and ctx is not None:
            if nxt == "moved" and LC.other_dc(ctx):
                moves += 1
            new = ctx.get("domain")
            if new is not None:
                dc = bytes(new)
        self._put(nxt, dc, moves)
        if self.on_change is not None and nxt != state:
            self.on_change(self, "osgp", trigger, state, nxt)
        return True

    def node_changed(self, node, trigger, src, dst, ctx=None):
        """plc_node ran a node trigger (dst None: refused). Entering the
        configured states (or a new domain while in them) commissions,
        leaving them decommissions."""
        if dst is None:
            self._rn += 1
            self.last = ("node", src, trigger, REFUSED)
            return
        self.last = ("node", src, trigger, dst)
        if self.on_change is not None and dst != src:
            self.on_change(self, "node", trigger, src, dst)
        was = src in CONFIGURED
        now = dst in CONFIGURED
        if now and (not was or trigger == "commission" or trigger == "update_domain"):
            a = node.address(0) or node.address(1)
            self.fire("commission", {"domain": a[0] if a else None, "dc": self.dc})
        elif was and not now:
            self.fire("decommission")

    def osgp_request(self, in_domain):
        """plc_node accepted an authenticated OSGP request."""
        if self._get()[0] != "operational":        # the common case costs one read
            self.fire("osgp_request", {"in_domain": in_domain})


def attach(meter, node):
    """meter.life for a meter whose PLC node is `node`; the node reports to it."""
    life = Life(node, meter.store if meter is not None else None)
    node.life = life
    if meter is not None:
        meter.life = life
    return life
