# The stand-ins that keep feature code out of a meter until it is used
# (meter/optical_lazy.py, meter/codebank_lazy.py, lontalk_nm's client half):
# before first use they answer what the real objects would, and the real
# ones take over with the same state. Dual runtime, bare asserts.
from osgp_meter import access as A
from osgp_meter import catalogue_data
from osgp_meter import codebank_lazy
from osgp_meter import lontalk_nm as N
from osgp_meter import procedures as P
from osgp_meter.device import Meter
from osgp_meter.firmware import Firmware
from osgp_meter.store import TableStore

T0 = 1_790_000_000_000
MK = b"M" * 20
ET03 = 2048 + 3
EP08 = 2048 + 8


def fw(**kw):
    c = {"keys": {A.ROLE_MAK: bytes([1] * 16), A.ROLE_MK: MK}, "clock": T0 // 1000}
    c.update(kw)
    return Firmware(c, T0)


def test_optical_stand_in_is_idle_and_answers_like_the_session():
    from osgp_meter.c1218 import OpticalSession
    from osgp_meter.device import PortLimits
    f = fw()
    lazy = f.optical
    assert lazy.real is None and lazy.deadline is None and lazy.poll(T0) == b""
    g = fw()
    limits = PortLimits("optical", 4096, 4096, 0xFFFF)
    ref = OpticalSession(g.meter.executor(limits), g.keys.optical_passwords())
    ident = bytes((0xEE, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x13, 0x10))
    ans = lazy.feed(ident, T0)
    assert ans == ref.feed(ident, T0) and ans[:1] == b"\x06" and len(ans) > 8   # ACK + answer
    assert lazy.real is not None and lazy.deadline == ref.deadline
    assert lazy.state == ref.state and lazy.poll(T0 + 1) == ref.poll(T0 + 1)
    # keywire's password update reaches the real session
    lazy.keys = ((A.ROLE_RK, b"R" * 20),)
    assert lazy.real.keys == ((A.ROLE_RK, b"R" * 20),) and lazy.keys == lazy.real.keys


def test_optical_stand_in_keeps_a_password_change_made_before_first_use():
    f = fw()
    f.optical.keys = ((A.ROLE_RK, b"R" * 20),)
    assert f.optical.real is None
    assert f.optical.session().keys == ((A.ROLE_RK, b"R" * 20),)


def _meter():
    m = Meter(TableStore(catalogue_data.TABLES), catalogue_data.PROCEDURES)
    m.set_utc(T0 // 1000, T0)
    return m


def test_codebank_stand_in_meta_is_a_fresh_codebanks_meta():
    from osgp_meter import codebank
    m = _meter()
    m.store.set_field(ET03, codebank.ET03_CRC, 2, 0xBEEF)
    lazy = codebank_lazy.attach(m)
    assert lazy.meta() == codebank.CodeBanks(m).meta()
    assert lazy.deadline is None and lazy.tick(m, T0) is None
    lazy.restore(lazy.meta())                  # the fresh state: stays a stand-in
    assert m.banks is lazy


def test_codebank_stand_in_loads_on_ep08_with_the_boot_state():
    m = _meter()
    lazy = codebank_lazy.attach(m)
    fresh = lazy.meta()
    m.store.set_field(ET03, codebank_lazy.ET03_CRC, 2, 0x1234)    # after boot
    p = (100).to_bytes(4, "little") + (16).to_bytes(2, "little") + bytes(2)
    res = P.run(m, EP08, p, A.ROLE_MK, T0)
    assert res[0] == P.COMPLETED, res
    assert m.banks is not lazy and m.banks.crcs[0] == fresh[14] | (fresh[15] << 8)
    assert lazy.meta() == m.banks.meta() and lazy.meta() != fresh


def test_codebank_stand_in_restores_a_saved_download():
    from osgp_meter import codebank
    a = _meter()
    codebank.attach(a)
    a.banks.state = codebank.LOADING
    a.banks.size, a.banks.psize = 100, 16
    saved = a.banks.meta()
    b = _meter()
    lazy = codebank_lazy.attach(b)
    lazy.restore(saved)
    assert b.banks is not lazy and b.banks.meta() == saved and b.banks.state == codebank.LOADING


def test_nm_client_half_loads_through_lontalk_nm():
    assert N.query_id(N.SEL_UNCONFIGURED) == b"\x61\x00"
    assert N.parse_response(N.NM_LEAVE_DOMAIN, b"\x24") == (True, None)
    try:
        N.no_such_name
        assert False
    except AttributeError:
        pass
