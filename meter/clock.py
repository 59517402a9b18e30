# Civil time <-> seconds since 1970-01-01 UTC, and the OSGP date/time codecs.
#
# The core never reads a wall clock: drivers pass `now` (integer milliseconds
# since the Unix epoch, real or simulated) and the meter keeps an offset that
# BP10 "set date/time" moves. Conversions are our own integer arithmetic (days
# from civil, after H. Hinnant's algorithm) because MicroPython's time module
# may use a 2000 epoch and has no timegm.


def days_from_civil(y, m, d):
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    mp = (m + 9) % 12
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(z):
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + (m <= 2), m, d)


def days_in_month(y, m):
    if m == 2:
        return 29 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 28
    return 30 if m in (4, 6, 9, 11) else 31


def to_civil(seconds):
    """Seconds since the epoch -> (year, month, day, hour, minute, second, weekday); weekday 0 = Sunday."""
    days, rem = divmod(seconds, 86400)
    y, m, d = civil_from_days(days)
    return (y, m, d, rem // 3600, (rem // 60) % 60, rem % 60, (days + 4) % 7)


def from_civil(y, m, d, hh=0, mm=0, ss=0):
    return days_from_civil(y, m, d) * 86400 + hh * 3600 + mm * 60 + ss


def valid_civil(y, m, d, hh, mm, ss):
    return (1 <= m <= 12 and 1 <= d <= days_in_month(y, m)
            and 0 <= hh < 24 and 0 <= mm < 60 and 0 <= ss < 60)


# LTIME_DATE: YY MM DD hh mm ss, one UINT8 each, two-digit year (2000-2099).
def encode_ltime(seconds):
    y, m, d, hh, mm, ss, _ = to_civil(seconds)
    return bytes((y % 100, m, d, hh, mm, ss))


def decode_ltime(b, off=0):
    """LTIME_DATE bytes -> seconds, or None when the fields are not a valid date."""
    y = 2000 + b[off]
    m, d, hh, mm, ss = b[off + 1], b[off + 2], b[off + 3], b[off + 4], b[off + 5]
    if b[off] > 99 or not valid_civil(y, m, d, hh, mm, ss):
        return None
    return from_civil(y, m, d, hh, mm, ss)


def encode_stime(seconds):
    return encode_ltime(seconds)[:5]
