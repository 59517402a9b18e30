# Broadcast groups and secure-broadcast bookkeeping (docs/groups-and-broadcast.md).
#
# A meter belongs to up to ET11.18 = 10 OSGP groups [OPT/MEP ET11.18], kept
# in ET08 as UINT16 group IDs: high byte group, low byte sub-group, 0xFF a
# wildcard, 0x0000 an empty slot [MEP ET52]. EMULATOR PROFILE (the ETSI text
# is not public, reference osgp-application.md 8.4/8.5):
#   * EP27 params: action UINT8 (0 add, 1 remove, 2 remove all) | group ID
#     UINT16 LE (not needed for 2). Results: 0 done (also when the ID was
#     already held / not held: the call is idempotent, response byte 0 says
#     whether ET08 changed), 2 invalid (short, unknown action, ID 0x0000 or
#     0xFFxx), 3 ET08 full or the node's address table full. Response:
#     changed UINT8 | IDs held UINT8.
#   * Matching a target ID (member()) follows the transaction rules [MEP
#     ET52]: 0xFFYY and 0xFFFF address every meter, 0xYYFF every sub-group
#     of YY, 0xYYZZ the meters holding 0xYYZZ or 0xYYFF; 0x0000 nobody.
#   * ISO/IEC 14908-1 mapping: OSGP group YY = 14908 group YY in domain entry
#     0, a large group (size 0, member 0: unacknowledged / repeated
#     delivery). Holding any 0xYYzz joins 14908 group YY; the sub-group is
#     an application-layer filter (a group-broadcast transaction's ID list,
#     member()). 0xFFxx targets travel as a domain-wide broadcast.
#   * Secure-broadcast counters in ET23.0..19 (UINT32 LE each): accepted,
#     replayed (at or behind the last accepted number), out of window
#     (beyond ET04.82 + ET04.86), bad digest under the broadcast key, last
#     rejected sequence number. ET04.76 = UTC of the last accepted one.
#     A replayed / out-of-window broadcast also logs EE45 (arg: low 16 bits).
ET04 = 2048 + 4
ET08 = 2048 + 8
ET11 = 2048 + 11
ET11_MAX_GROUPS = 18
ET23 = 2048 + 23
EP27 = 2048 + 27

# plc_osgp.on_broadcast outcomes; ET23 counter offsets
ACCEPTED = 0
REPLAYED = 1
OUT_OF_WINDOW = 2
BAD_DIGEST = 3
ET23_COUNTERS = (0, 4, 8, 12)
ET23_LAST_REJECTED = 16

# EP27, the ET08 hook, the node's group table and the broadcast bookkeeping
# live in groupcfg.py, imported on first use: what stays here is what the
# transactions and a booting meter need.


def _store(m):
    s = getattr(m, "store", None)
    return m if s is None else s


def capacity(meter):
    """How many group IDs ET08 holds (ET11.18, bounded by ET08's size)."""
    store = _store(meter)
    size = store.size(ET08)
    if not size:
        return 0
    n = store.field(ET11, ET11_MAX_GROUPS, 1)
    return n if 2 * n <= size else size // 2


def ids(meter):
    """The group IDs held, in slot order (empty slots left out)."""
    store = _store(meter)
    out = []
    for i in range(capacity(store)):
        g = store.field(ET08, 2 * i, 2)
        if g:
            out.append(g)
    return out


def matches(held, gid):
    """Does a held ID `held` fall under target `gid`? (0xFFxx: see member.)"""
    if not held or not gid or (held >> 8) != (gid >> 8):
        return False
    lo = gid & 0xFF
    return lo == 0xFF or (held & 0xFF) == 0xFF or (held & 0xFF) == lo


def member(meter, gid):
    """Is this meter (a Meter or its TableStore) addressed by group ID
    `gid`? The transaction rules of reference 5.2: 0xFFYY / 0xFFFF every
    meter, 0xYYFF every sub-group of YY, 0x0000 nobody."""
    gid &= 0xFFFF
    if not gid:
        return False
    if gid >> 8 == 0xFF:
        return True
    for h in ids(meter):
        if matches(h, gid):
            return True
    return False


def valid(gid):
    """A group ID a meter may hold: not 0x0000, not 0xFFxx (those address
    everyone already)."""
    return 0 < gid <= 0xFFFF and gid >> 8 != 0xFF


def lon_group(gid):
    """The ISO/IEC 14908-1 group a target ID travels to, or None for a
    domain-wide broadcast (0xFFxx)."""
    return None if gid >> 8 == 0xFF else gid >> 8


def destination(gid):
    """PlcNode.send's dest for a target ID: (AF_GROUP, YY, 0) or
    (AF_BROADCAST, 0, 0)."""
    from .lontalk import AF_GROUP, AF_BROADCAST
    g = lon_group(gid & 0xFFFF)
    return (AF_BROADCAST, 0, 0) if g is None else (AF_GROUP, g, 0)


def _node(meter):
    st = getattr(meter, "groups", None)
    return st.node if st is not None else None


def sync(meter):
    """Join the 14908 groups ET08 names (at boot, after a restore). Never
    leaves a group: other ones may be the DC's own. Returns how many."""
    if _node(meter) is None or not ids(meter):
        return 0
    from . import groupcfg
    return groupcfg.sync(meter)


def add_remove(meter, params, role, now):
    """EP27 (groupcfg.add_remove)."""
    from . import groupcfg
    return groupcfg.add_remove(meter, params, role, now)


def write_et08(meter, tid, offset, data, role, limits, now):
    """meter.hook_write for ET08 (groupcfg.write_et08)."""
    from . import groupcfg
    return groupcfg.write_et08(meter, tid, offset, data, role, limits, now)


def broadcast_seen(meter, outcome, seq, now):
    """plc_osgp.on_broadcast (groupcfg.broadcast_seen)."""
    from . import groupcfg
    groupcfg.broadcast_seen(meter, outcome, seq, now)


def counters(meter):
    """(accepted, replayed, out of window, bad digest, last rejected seq)."""
    store = meter.store
    return tuple([store.field(ET23, off, 4) for off in ET23_COUNTERS + (ET23_LAST_REJECTED,)])


class Groups:
    """meter.groups: the PLC node whose group table follows ET08 (or None)."""
    __slots__ = ("node",)

    def __init__(self, node):
        self.node = node


def _lon_state(meter):
    # the "groups" nv_part: the 14908 groups the node is in (a few bytes)
    node = _node(meter)
    if node is None:
        return b""
    return bytes(sorted(a.group for a in node.addresses if a.kind == 0x80 and a.domain == 0))


def _lon_restore(meter, data):
    if _node(meter) is not None:
        from . import groupcfg
        groupcfg.lon_restore(meter)


def attach(meter, node=None):
    """Give a meter its groups: EP27, the ET08 hook, the node's group table
    from ET08, and the secure-broadcast bookkeeping of the node's OSGP layer."""
    from . import procedures
    procedures.register(EP27, add_remove)
    meter.groups = Groups(node)
    meter.hook_write(ET08, write_et08)
    if node is not None:
        sync(meter)
        meter.nv_part("groups", lambda: _lon_state(meter), lambda data: _lon_restore(meter, data))
        osgp = node.osgp
        if osgp is not None:
            osgp.on_broadcast = lambda outcome, seq, now: broadcast_seen(meter, outcome, seq, now)
