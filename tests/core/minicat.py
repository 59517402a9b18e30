# A small, hand-written catalogue for core tests that must not depend on the
# real catalogue's content. Same format as osgp_meter.catalogue_data.
from osgp_meter import access as A

FULL = A.FULL
# BT00 with BT00.10 = 12 (max procedure response) and BT00.17 = 2 (mfg status bytes)
BT00 = bytes(10) + bytes((12,)) + bytes(6) + bytes((2,)) + bytes(1)

TABLES = {
    0: (20, A.ALL, 0, 0x01, BT00),
    3: (bytes.fromhex("01000004" "020000001101" "2b"), A.ALL_KEYS, 0, 0x00, None),
    7: (258, 0, A.ALL_KEYS, 0x00, None),
    8: (16, A.ALL_KEYS, 0, 0x00, None),
    # BT21-style dimension: entries at offset 0 (UINT8), entry size at 1 (UINT16)
    21: (3, A.ALL, FULL, 0x01, bytes((4, 10, 0))),
    # a table whose size follows BT21: 2 + entries * entry size (byte-coded RPN)
    30: (bytes.fromhex("01000002" "020015000001" "020015000102" "2a2b"), A.ALL_KEYS, FULL, 0x02, None),
    # writable by the full keys and PK, readable by every key but RK
    40: (8, A.ALL_KEYS & ~A.ROLE_RK, FULL | A.ROLE_PK, 0x01, bytes((1, 2, 3))),
    23: (64, A.ALL_KEYS, 0, 0x02, None),
    52: (7, A.ALL, 0, 0x00, None),
    53: (5, A.ALL, FULL, 0x01, None),
    55: (9, A.ALL, 0, 0x00, None),
    2048 + 4: (140, A.ALL_KEYS, FULL, 0x01, None),
    2048 + 50: (64, A.ALL_KEYS, FULL | A.ROLE_MBK, 0x00, None),
}

PROCEDURES = {
    0: (FULL, 0x00), 1: (FULL, 0x00), 2: (FULL, 0x00), 3: (FULL, 0x00),
    6: (FULL, 0x00), 7: (FULL, 0x00), 8: (FULL, 0x00), 10: (FULL, 0x01),
    11: (FULL, 0x00), 2048 + 16: (FULL | A.ROLE_MBK, 0x03), 2048 + 98: (FULL | A.ROLE_MBK, 0x03),
    2048 + 99: (FULL, 0x03),
}


def meter(image=None):
    from osgp_meter.store import TableStore
    from osgp_meter.device import Meter
    return Meter(TableStore(TABLES, image), PROCEDURES)
