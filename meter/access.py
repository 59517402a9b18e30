# Key levels ("roles") and the access masks the catalogue uses.
#
# Every request reaches the core with exactly one role: the key that
# authenticated it. A table or procedure carries one bit mask per right
# (read, write, call); a request is allowed when its role bit is in the mask.
# Sources: MEP MAK/MBK [MEP p.12-13]; optical MK/PK/RK [OPT p.13]; PLC unicast
# and broadcast keys [MEP ET04/ET11]. ROLE_NONE is "no key at all": an optical
# session logged on without the Security service, which may read only the
# tables the catalogue marks "open".

ROLE_MK = 0x01     # optical: unique (master) key, full access
ROLE_PK = 0x02     # optical: provisioning key
ROLE_RK = 0x04     # optical: read-only key
ROLE_MAK = 0x08    # MEP: advanced key
ROLE_MBK = 0x10    # MEP: basic key
ROLE_PLC = 0x20    # PLC: unicast key
ROLE_BCAST = 0x40  # PLC: broadcast key
ROLE_NONE = 0x80   # no key (open access only)

ROLE_NAMES = (
    ("MK", ROLE_MK), ("PK", ROLE_PK), ("RK", ROLE_RK), ("MAK", ROLE_MAK),
    ("MBK", ROLE_MBK), ("PLC", ROLE_PLC), ("BCAST", ROLE_BCAST), ("NONE", ROLE_NONE),
)

ALL_KEYS = 0x7F    # any authenticated key
ALL = 0xFF         # anybody, keyed or not ("open")
FULL = ROLE_MK | ROLE_MAK | ROLE_PLC   # the keys that may do everything


def role_name(role):
    for name, bit in ROLE_NAMES:
        if bit == role:
            return name
    return "?"


def mask_names(mask):
    out = []
    for name, bit in ROLE_NAMES:
        if mask & bit:
            out.append(name)
    return out
