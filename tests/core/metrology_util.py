# Shared fixture of the metrology tests (test_metrology, test_metrology_resets).
from osgp_meter.device import Meter
from osgp_meter.store import TableStore
from osgp_meter import catalogue_data, metrology

T0 = 1767225600000 + 7 * 3600000 + 250    # 2026-01-01 07:00:00.250 UTC (08:00 CET)


def make(tables=(), start=T0, attach=True, **extra):
    # Firmware(config, start).meter without the ports (heap), with 3
    # self-reads and 20 history entries instead of 12 and 100 (heap again)
    config = {"keys": {}, "clock": start // 1000, "seed": 7}
    config.update(extra)
    m = Meter(TableStore(catalogue_data.TABLES), catalogue_data.PROCEDURES)
    m.set_utc(start // 1000, start)
    for tid, off, data in ((21, 2, (3,)), (71, 5, (20, 0))) + tuple(tables):
        m.store.write(tid, off, bytes(data))
    if attach:
        metrology.attach(m, config)
    return m
