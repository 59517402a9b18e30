# Group administration (EP27, ET08 writes, the node's ISO/IEC 14908 group
# table) and the secure-broadcast bookkeeping (ET23 counters, ET04.76,
# EE45): the profile is described at the top of groups.py and in
# docs/groups-and-broadcast.md. Imported on first use by groups.py.
from . import clock
from . import events
from . import services
from .groups import (ET04, ET08, ET23, ET23_COUNTERS, ET23_LAST_REJECTED, ACCEPTED, BAD_DIGEST,
                     capacity, ids, valid, _node)

ET04_LAST_BCAST = 76        # LTIME_DATE, last secure-broadcast receipt [MEP ET04]
EE45 = 2048 + 45            # Secure Broadcast Rejected
USER_PLC = 0xFFFE
ADD = 0
REMOVE = 1
REMOVE_ALL = 2


# -- the node's 14908 group table -----------------------------------------------

def _lon_member(node, g):
    for a in node.addresses:
        if a.kind == 0x80 and a.domain == 0 and a.group == g:    # lontalk_nm.ADDR_GROUP
            return True
    return False


def _free_entries(node):
    n = 0
    for a in node.addresses:
        if a.kind == 0:                                           # lontalk_nm.ADDR_UNBOUND
            n += 1
    return n


def _lon_set(gids):
    out = []
    for g in gids:
        if valid(g) and (g >> 8) not in out:
            out.append(g >> 8)
    return out


def _joins_needed(node, old, new):
    n = 0
    for g in _lon_set(new):
        if g not in old and not _lon_member(node, g):
            n += 1
    return n


def _apply(meter, old_ids, new_ids):
    """Follow an ET08 change in the node: join the 14908 groups newly named,
    leave those no held ID names any more. The caller checked room."""
    node = _node(meter)
    if node is None:
        return
    old = _lon_set(old_ids)
    new = _lon_set(new_ids)
    for g in new:
        if not _lon_member(node, g):
            node.join_group(g, 0, 0)
    for g in old:
        if g not in new:
            node.leave_group(g)


def sync(meter):
    """Join the 14908 groups ET08 names; returns how many."""
    node = _node(meter)
    if node is None:
        return 0
    n = 0
    for g in _lon_set(ids(meter)):
        if not _lon_member(node, g):
            try:
                node.join_group(g, 0, 0)
                n += 1
            except ValueError:      # address table full: ET08 keeps it, delivery cannot
                pass
    return n


# -- EP27 -------------------------------------------------------------------------

def add_remove(meter, params, role, now):
    """EP27 Add/Remove Group ID (emulator profile, see the top)."""
    if len(params) < 1:
        return 2, b""
    action = params[0]
    if action == REMOVE_ALL:
        gid = 0
    elif action == ADD or action == REMOVE:
        if len(params) < 3:
            return 2, b""
        gid = params[1] | (params[2] << 8)
        if not valid(gid):
            return 2, b""
    else:
        return 2, b""
    store = meter.store
    n = capacity(store)
    if n == 0:
        return 3, b""
    slots = [store.field(ET08, 2 * i, 2) for i in range(n)]
    old = [g for g in slots if g]
    if action == ADD:
        if gid in slots:
            return 0, bytes((0, len(old)))
        if 0 not in slots:
            return 3, b""
        node = _node(meter)
        if node is not None and _joins_needed(node, _lon_set(old), [gid]) > _free_entries(node):
            return 3, b""
        slots[slots.index(0)] = gid
    elif action == REMOVE:
        if gid not in slots:
            return 0, bytes((0, len(old)))
        slots[slots.index(gid)] = 0
    else:
        if not old:
            return 0, bytes((0, 0))
        slots = [0] * n
    new = [g for g in slots if g]
    _write_ids(store, slots)
    _apply(meter, old, new)
    return 0, bytes((1, len(new)))


def _write_ids(store, slots):
    out = bytearray(2 * len(slots))
    for i in range(len(slots)):
        out[2 * i] = slots[i] & 0xFF
        out[2 * i + 1] = slots[i] >> 8
    store.write(ET08, 0, out)


def write_et08(meter, tid, offset, data, role, limits, now):
    """A table write to ET08 (meter.hook_write): stored as usual, and the
    node follows. Refused whole (0x05) when it would name a 0xFFxx ID or
    need more 14908 address entries than are free."""
    store = meter.store
    n = capacity(store)
    old = ids(store)
    image = bytearray(store.get(ET08))
    k = min(len(data), len(image) - offset)
    if k <= 0:
        return None
    image[offset:offset + k] = data[:k]
    new = []
    for i in range(n):
        g = image[2 * i] | (image[2 * i + 1] << 8)
        if g:
            if not valid(g):
                return services.R_IAR
            new.append(g)
    node = _node(meter)
    if node is not None:
        gone = [g for g in _lon_set(old) if g not in _lon_set(new)]
        if _joins_needed(node, _lon_set(old), new) > _free_entries(node) + len(gone):
            return services.R_IAR
        for g in gone:                  # leave first: their entries make room
            node.leave_group(g)
    store.write(ET08, offset, data)
    _apply(meter, [], new)
    events.table_written(meter, tid, now)
    return services.R_OK


# -- secure-broadcast bookkeeping (plc_osgp.on_broadcast) --------------------------

def broadcast_seen(meter, outcome, seq, now):
    """Count a broadcast in ET23, stamp ET04.76 on acceptance, log EE45 for a
    replayed or out-of-window one."""
    store = meter.store
    if store.exists(ET23):
        off = ET23_COUNTERS[outcome]
        store.set_field(ET23, off, 4, (store.field(ET23, off, 4) + 1) & 0xFFFFFFFF)
        if outcome != ACCEPTED and seq is not None:
            store.set_field(ET23, ET23_LAST_REJECTED, 4, seq & 0xFFFFFFFF)
    t = meter.utc(now)
    if outcome == ACCEPTED:
        if store.exists(ET04):
            store.write(ET04, ET04_LAST_BCAST, clock.encode_ltime(t))
    elif outcome != BAD_DIGEST:
        events.log(meter, EE45, seq & 0xFFFF, USER_PLC, t)


def lon_restore(meter):
    # Tables were put back (a failed transaction's undo, a restore): the
    # node's address table follows its saved image (ET99), then ET08.
    node = _node(meter)
    if node is None:
        return
    from .plc_node import IMAGE_SIZE
    s = node.store
    if s is not None and s.exists(node.config_table) and node.load_image(
            s.read(node.config_table, 0, IMAGE_SIZE)):
        if node.on_config is not None:
            node.on_config(node)
    sync(meter)


