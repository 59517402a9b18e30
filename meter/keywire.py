# The key ring wired into a Firmware (docs/key-management.md): meter.keys
# for the change-key procedures EP15/EP24/EP25 (keychange.py, imported on
# first use), the "keys" nv_part, the usage counters' reset when a key
# changes, the key-usage events of the PLC port. Kept out of keys.py so a
# bare KeyRing costs no more than the ring.
from . import access
from .keys import EP15, EP24, EP25

ET11 = 2048 + 11
USAGE_FIELDS = {access.ROLE_PLC: 82, access.ROLE_BCAST: 86}   # ET11 offsets


def _ep15(meter, params, role, now):
    from . import keychange
    return keychange.change_key(meter, EP15, params, role)


def _ep24(meter, params, role, now):
    from . import keychange
    return keychange.change_key(meter, EP24, params, role)


def _ep25(meter, params, role, now):
    from . import keychange
    return keychange.change_key(meter, EP25, params, role)


def usage_event(meter, role, used, limit, now):
    """plc_osgp.on_key_usage (keychange.usage_event)."""
    from . import keychange
    keychange.usage_event(meter, role, used, limit, now)


def _changed(fw, role):
    meter = fw.meter
    ring = fw.keys
    store = meter.store
    off = USAGE_FIELDS.get(role)
    if off is not None:
        if store.exists(ET11):
            store.set_field(ET11, off, 4, 0)     # the new key's usage counter
        from . import keychange
        keychange.usage_changed(meter, ring)
    if role in (access.ROLE_MK, access.ROLE_PK, access.ROLE_RK) and fw.optical is not None:
        fw.optical.keys = tuple(ring.optical_passwords())    # for the next logon


def _restore(fw, data):
    if fw.keys.load(data) and fw.optical is not None:
        fw.optical.keys = tuple(fw.keys.optical_passwords())


def attach(fw):
    """Wire a Firmware's KeyRing: meter.keys for EP15/24/25, the "keys"
    nv_part (registered before a saved state is put back, so the restore
    finds it), the usage counters' reset on a change; then attach_plc."""
    from . import procedures
    procedures.register(EP15, _ep15)
    procedures.register(EP24, _ep24)
    procedures.register(EP25, _ep25)
    meter = fw.meter
    ring = fw.keys
    meter.keys = ring
    ring.on_change = lambda role: _changed(fw, role)
    meter.nv_part("keys", ring.encode, lambda data: _restore(fw, data))
    attach_plc(fw)


def attach_plc(fw):
    """The key-usage events of the PLC port (once fw.plc exists)."""
    plc = fw.plc
    if plc is not None and plc.osgp is not None:
        meter = fw.meter
        plc.osgp.on_key_usage = lambda role, used, limit, now: usage_event(
            meter, role, used, limit, now)
