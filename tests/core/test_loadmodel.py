# The load model: pinned values (the same on CPython and MicroPython), exact
# energy integrals, the inlined hot loop against the per-minute code, shapes.
from osgp_meter.loadmodel import LoadModel, isqrt, icos
from osgp_meter import loadmodel as L
from osgp_meter.prng import XorShift32

T0 = 1767225600000          # 2026-01-01T00:00Z, a Thursday
JUNE = 1781481600000        # 2026-06-15T00:00Z, a Monday
DAY = 86400000


def test_pinned_values():
    lm = LoadModel(7)
    assert lm.energy(T0, T0 + DAY) == (44545200, 0, 9797880, 0, 0, 230160)
    assert lm.energy(T0 + 1234567, T0 + 7 * DAY + 890) == (295815778, 0, 62440906, 0, 0, 1794300)
    assert lm.power(T0 + 18 * 3600000 + 5 * 60000) == (
        640, 0, 243, 0, 1143, 812, 1013, 230061, 230197, 229919, 939, 50023, 684, 935, 935)
    pv = LoadModel(11, annual_kwh=4500, pv_peak_w=5000)
    assert pv.energy(JUNE, JUNE + DAY) == (11321280, 87331200, 2841840, 3002520, 23160, 193620)
    assert pv.power(JUNE + 11 * 3600000) == (
        0, 2714, 85, 0, 3952, 3645, 4038, 232989, 233163, 233754, 1000, 49993, 2715, 998, 1000)
    one = LoadModel(3, phases=1)
    assert one.power(T0 + 8 * 3600000) == (
        284, 0, 63, 0, 1257, 0, 0, 230638, 0, 0, 979, 49980, 290, 0, 0)


def test_energy_is_additive_for_any_split():
    rng = XorShift32(99)
    lm = LoadModel(5, pv_peak_w=3000)
    for _ in range(25):
        a = JUNE - DAY + rng.below(3 * DAY)
        c = a + rng.below(2 * DAY)
        b = a + rng.below(c - a + 1)
        whole = lm.energy(a, c)
        left = lm.energy(a, b)
        right = lm.energy(b, c)
        assert whole == tuple(left[i] + right[i] for i in range(6))
    assert lm.energy(T0 + 5000, T0 + 5999) == (0, 0, 0, 0, 0, 0)     # same second
    assert lm.energy(T0 + 9000, T0) == (0, 0, 0, 0, 0, 0)


def test_hot_loop_matches_the_per_minute_model():
    for pv in (0, 4000):
        bulk = LoadModel(21, pv_peak_w=pv)
        single = LoadModel(21, pv_peak_w=pv)
        m0 = (JUNE - 3 * 3600000) // 60000
        acc = (0, 0, 0, 0, 0, 0)
        for m in range(m0, m0 + 1800):      # across a local midnight
            acc = single._part(m, 60, acc)
        assert bulk.energy(m0 * 60000, (m0 + 1800) * 60000) == acc


def test_energy_of_a_minute_is_its_power():
    lm = LoadModel(8, pv_peak_w=4000)
    for ms in (T0 + 3 * 3600000, JUNE + 12 * 3600000, JUNE + 20 * 3600000 + 17000):
        m0 = ms // 60000 * 60000
        p = lm.power(ms)
        e = lm.energy(m0, m0 + 60000)
        assert e[0] == 60 * p[L.FWD_W] and e[1] == 60 * p[L.REV_W]
        assert e[2] + e[3] == 60 * p[L.IMP_VAR] and e[4] + e[5] == 60 * p[L.EXP_VAR]


def test_plausible_household():
    # four sample weeks (Jan, Apr, Jul, Oct) scaled to a year: ~3,500 kWh
    lm = LoadModel(1)
    total = 0
    for start in (T0, T0 + 90 * DAY, T0 + 181 * DAY, T0 + 273 * DAY):
        total += lm.energy(start, start + 7 * DAY)[0]
    kwh = total * 365 // (28 * 3600000)
    assert 3150 < kwh < 3850, kwh
    # winter above summer; evening above night
    assert lm.energy(T0, T0 + 7 * DAY)[0] > lm.energy(T0 + 181 * DAY, T0 + 188 * DAY)[0] * 5 // 4
    assert lm.energy(T0 + 17 * 3600000, T0 + 21 * 3600000)[0] > \
        2 * lm.energy(T0 + 1 * 3600000, T0 + 5 * 3600000)[0]
    # instantaneous values in range
    for k in range(0, 1440, 97):
        p = lm.power(T0 + k * 60000)
        for i in range(3):
            assert 224000 < p[L.V_L1 + i] < 238000
            assert 0 <= p[L.PF_L1] <= 1000
        assert 49900 <= p[L.FREQ] <= 50100
        # I * V is the apparent power of the phases (within rounding)
        s = sum(p[L.I_L1 + i] * p[L.V_L1 + i] // 1000000 for i in range(3))
        assert abs(s - p[L.VA]) <= 3 + p[L.VA] // 10


def test_pv_exports_by_day_only_and_can_be_switched_off():
    sunny = LoadModel(4, pv_peak_w=6000)
    none = LoadModel(4)
    noon = JUNE + 11 * 3600000
    night = JUNE + 23 * 3600000
    assert sunny.energy(noon, noon + 3600000)[1] > 0
    assert sunny.energy(night, night + 3600000)[1] == 0
    assert none.energy(JUNE, JUNE + 7 * DAY)[1] == 0
    # same household: PV only lowers the import
    assert sunny.energy(JUNE, JUNE + DAY)[0] < none.energy(JUNE, JUNE + DAY)[0]
    assert sunny.energy(night, night + 3600000) == none.energy(night, night + 3600000)


def test_frequency_is_the_grids_not_the_meters():
    a = LoadModel(1)
    b = LoadModel(2)
    for k in (0, 3, 77):
        assert a.power(T0 + k * 60000)[L.FREQ] == b.power(T0 + k * 60000)[L.FREQ]


def test_seed_and_phases():
    assert LoadModel(1).energy(T0, T0 + DAY) != LoadModel(2).energy(T0, T0 + DAY)
    one = LoadModel(1, phases=1)
    three = LoadModel(1, phases=3)
    assert one.energy(T0, T0 + DAY) == three.energy(T0, T0 + DAY)
    p = one.power(T0)
    assert p[L.V_L1 + 1] == p[L.V_L1 + 2] == p[L.I_L1 + 1] == p[L.I_L1 + 2] == 0
    try:
        LoadModel(1, phases=2)
        assert False
    except ValueError:
        pass


def test_integer_helpers():
    for n in (0, 1, 2, 3, 4, 15, 16, 17, 99, 100, 123456789, 10 ** 12 + 7):
        r = isqrt(n)
        assert r * r <= n < (r + 1) * (r + 1)
    assert icos(0) == 1000 and icos(2048) == -1000 and icos(1024) == 0 and icos(4096) == 1000
