"""The fleet's SQLite state (tools/fleet_db.py, docs/persistence.md): one
database, WAL, one transaction per commit, compaction per meter, a commit
cut inside its transaction leaves nothing, the fleet check; and a fleet
whose process dies without stop() keeps every answered write."""
import os
import sqlite3

import pytest

from osgp_meter import catalogue as cat, persist
from osgp_meter.firmware import Firmware
from osgp_host.fleet_db import FleetDB, FleetDBError, peek

T0 = 1_790_000_000_000
BT05, BT06 = 5, 6


def nv_state(f):
    s = f.meter.store
    out = {t: bytes(w) for t, w in s.written.items() if s.tables[t][cat.T_FLAGS] & cat.F_NV}
    for name, (get, put) in (f.meter.nv_parts or {}).items():
        out[name] = bytes(get())
    out["_meta"] = persist.meta_bytes(f)
    return out


def meter(db, k):
    return Firmware({"mep_secure": False, "restore": lambda f: db.open_meter(k, "m%d" % k, f)}, T0)


def test_meters_survive_a_reopen(tmp_path):
    path = str(tmp_path / "f.db")
    db = FleetDB(path)
    assert db.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    fws = {k: meter(db, k) for k in (1, 2, 3)}
    for i in range(30):
        f = fws[1 + i % 3]
        f.meter.store.write(BT06, i, bytes((i,)) * 3)
        f.mep.seq += 1
        assert f.commit() > 0
    assert db.stats["commits"] == 30
    want = {k: nv_state(f) for k, f in fws.items()}
    db.close()
    db = FleetDB(path)
    for k in (1, 2, 3):
        assert nv_state(meter(db, k)) == want[k]
        back = Firmware({"mep_secure": False}, T0)
        assert peek(path, k, back) and nv_state(back) == want[k]
    db.close()


def test_compaction_keeps_a_meters_rows_bounded(tmp_path):
    path = str(tmp_path / "f.db")
    db = FleetDB(path, journal_max=500)
    f = meter(db, 7)
    for i in range(200):
        f.meter.store.write(BT05, i % 10, bytes((i & 255,)))
        f.commit()
    assert db.stats["compactions"] >= 5
    rows = db.db.execute("SELECT COUNT(*), SUM(LENGTH(payload)) FROM journal WHERE k = 7").fetchone()
    assert rows[1] is None or rows[1] <= 500 + 40
    want = nv_state(f)
    db.close()
    db = FleetDB(path)
    assert nv_state(meter(db, 7)) == want
    db.close()


class Cut(Exception):
    pass


def test_a_commit_cut_inside_its_transaction_leaves_nothing(tmp_path):
    path = str(tmp_path / "f.db")
    db = FleetDB(path)
    f = meter(db, 1)
    f.meter.store.write(BT06, 0, b"kept")
    f.commit()
    want = nv_state(f)

    def crash(stage, fd, data):
        if stage == "append":
            raise Cut()
    db.crash = crash
    f.meter.store.write(BT06, 0, b"lost")
    with pytest.raises(Cut):
        f.commit()
    db.close()
    back = Firmware({"mep_secure": False}, T0)
    peek(path, 1, back)
    assert nv_state(back) == want


def test_batch_is_one_transaction(tmp_path):
    path = str(tmp_path / "f.db")
    db = FleetDB(path)
    fws = [meter(db, k) for k in range(1, 6)]
    other = sqlite3.connect(path)
    before = other.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
    with db.batch():
        for f in fws:
            f.meter.store.write(BT05, 0, b"\x01")
        assert db.commit_all() > 0
        assert other.execute("SELECT COUNT(*) FROM journal").fetchone()[0] == before
    assert other.execute("SELECT COUNT(*) FROM journal").fetchone()[0] == before + 5
    other.close()
    db.close()


def test_a_database_of_another_fleet_is_refused(tmp_path):
    db = FleetDB(str(tmp_path / "f.db"))
    db.check_fleet({"seed": "1", "meters": "10"})
    db.check_fleet({"seed": "1", "meters": "10"})
    with pytest.raises(FleetDBError, match="another fleet"):
        db.check_fleet({"seed": "2", "meters": "10"})
    db.close()


def test_a_fleet_that_dies_without_stop_keeps_every_answered_write(tmp_path):
    from osgp_host.fleet import Fleet
    path = str(tmp_path / "fleet.db")
    cfg = {"meters": 4, "seed": 6, "metering": False, "state": path,
           "identity": {"keys": "template"}}
    fleet = Fleet(cfg)
    fleet.build()
    dc = fleet.dc(0)
    dc.write("m003", "BT06", b"PERSIST")
    dc.close()
    # no fleet.stop(): the process is gone as after a power cut; its
    # connection is dropped without committing anything more
    fleet._db.db.close()
    fleet._db = None
    back = Fleet(cfg)
    back.build()
    assert bytes(back.firmware("m003").meter.store.read(BT06, 0, 7)) == b"PERSIST"
    back.stop()
    assert os.path.exists(path + "-wal") or os.path.getsize(path) > 0


def test_code_bank_bytes_live_in_the_database(tmp_path):
    path = str(tmp_path / "f.db")
    db = FleetDB(path)
    st = db.bank_storage(3, size=256)
    assert st.read(0, 0, 4) == b"\xff" * 4
    st.write(1, 32, b"abcd")
    st.write(1, 36, b"efgh")
    assert st.read(1, 30, 12) == b"\xff\xffabcdefgh\xff\xff"
    assert db.bank_storage(4).read(1, 32, 4) == b"\xff" * 4     # another meter's
    st.erase(1)
    assert st.read(1, 32, 8) == b"\xff" * 8
    st.write(0, 0, b"kept")
    db.close()
    assert FleetDB(path).bank_storage(3).read(0, 0, 4) == b"kept"


def test_a_download_in_a_fleet_resumes_from_its_bitmap_after_a_restart(tmp_path):
    from osgp_meter import fwimage
    from osgp_host.fleet import Fleet
    path = str(tmp_path / "fleet.db")
    cfg = {"meters": 2, "seed": 6, "metering": False, "state": path}
    img = fwimage.build(bytes(range(200)), fwimage.pack_version(3, 72, 1))
    crc = img[20] | (img[21] << 8)
    ps = 50
    fleet = Fleet(cfg)
    fleet.build()
    m = fleet.firmware("m001").meter
    now = fleet.channel(0).sim.now_ms

    def call(m, number, params):
        from osgp_meter import procedures as P
        return P.run(m, number, params, 0xFF, now)
    assert call(m, 2048 + 8, len(img).to_bytes(4, "little") + ps.to_bytes(2, "little")
                + crc.to_bytes(2, "little"))[0] == 0
    for n in (0, 2, 3):
        assert call(m, 2048 + 9, n.to_bytes(2, "little") + img[n * ps:(n + 1) * ps])[0] == 0
    fleet.firmware("m001").commit()
    fleet._db.db.close()                      # gone without stop()
    fleet._db = None
    back = Fleet(cfg)
    back.build()
    b = back.firmware("m001").meter.banks
    assert b.first_missing(back.firmware("m001").meter) == 1
    for n in (0, 2, 3):
        assert b.storage.read(b.inactive, n * ps, ps) == img[n * ps:(n + 1) * ps]
    back.stop()
