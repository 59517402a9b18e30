"""A meter's state directory: what survives a restart of `osgp-meter serve`.

Non-volatile tables this meter wrote (catalogue flag nv), the MEP sequence
number, the clock offset and the last procedure PSN, in one JSON file
replaced atomically (write a temporary file, fsync, rename), so a kill at any
moment leaves either the old or the new state, never a mix.
"""
import json
import os

from osgp_meter import catalogue as cat

STATE_FILE = "meter-state.json"
VERSION = 1


def save(firmware, directory):
    meter = firmware.meter
    store = meter.store
    tables = {}
    for tid, data in store.written.items():
        entry = store.tables.get(tid)
        if entry is not None and entry[cat.T_FLAGS] & cat.F_NV:
            tables[str(tid)] = bytes(data).hex()
    state = {
        "version": VERSION,
        "tables": tables,
        "mep_seq": firmware.mep.seq,
        "clock_offset_ms": meter.clock_offset,
        "last_psn": meter.last_psn,
    }
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, STATE_FILE)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load(firmware, directory):
    """Restore a saved state; returns False when there is none."""
    path = os.path.join(directory, STATE_FILE)
    if not os.path.exists(path):
        return False
    with open(path) as f:
        state = json.load(f)
    if state.get("version") != VERSION:
        raise ValueError("%s: unknown state version %r" % (path, state.get("version")))
    meter = firmware.meter
    for tid, hexdata in state["tables"].items():
        tid = int(tid)
        if tid in meter.store.tables:
            meter.store.write(tid, 0, bytes.fromhex(hexdata))
    meter.changed()                      # subsystems re-read their tables
    firmware.mep.seq = state["mep_seq"]
    meter.clock_offset = state["clock_offset_ms"]
    meter.last_psn = state["last_psn"]
    return True
