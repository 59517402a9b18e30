"""Device profiles: TOML files that set a meter's identity, keys, ports and
initial table contents, turned into the plain config dict the portable core
takes (osgp_meter.firmware.Firmware).
"""
import calendar
import os
import re
import time

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

from osgp_meter import access
from osgp_meter import catalogue_data

DEFAULT_PROFILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default_profile.toml")

BT01 = 1
ET03 = 2048 + 3
ET04 = 2048 + 4
SECURITY_MODES = {"rc4": 0, "aes": 2}    # [security] mode -> ET04.127


class ProfileError(ValueError):
    """A profile that cannot be used; the message names the offending key."""


def table_id(name):
    """'BT23', 'ET04', '2052', '0x0804' or a catalogue name -> table ID."""
    s = str(name).strip().upper()
    m = re.fullmatch(r"(BT|ET|ST|MT)(\d+)", s)
    if m:
        n = int(m.group(2))
        return n if m.group(1) in ("BT", "ST") else 2048 + n
    try:
        return int(s, 0)
    except ValueError:
        pass
    from . import catalogue     # a catalogue name, e.g. "Current Register Data"
    entry = catalogue.lookup_table(str(name))
    if entry is None:
        raise ProfileError("not a table name: %r" % name)
    return entry["id"]


def _merge(base, over):
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def load(path=None):
    """The default profile, overlaid with the file at `path` (if any)."""
    with open(DEFAULT_PROFILE, "rb") as f:
        data = tomllib.load(f)
    if path:
        try:
            with open(path, "rb") as f:
                data = _merge(data, tomllib.load(f))
        except tomllib.TOMLDecodeError as exc:
            raise ProfileError("%s: %s" % (path, exc)) from None
    return data


def _section(data, name):
    """The [name] table of profile data ({} when absent); ProfileError when
    the key holds something else (a TOML `keys = "..."`)."""
    v = data.get(name, {})
    if not isinstance(v, dict):
        raise ProfileError("%s: a table ([%s]) expected, got %r" % (name, name, v))
    return v


def parse_key(text, what):
    text = str(text)
    if text.startswith("ascii:"):
        try:
            return text[6:].encode("ascii")
        except UnicodeEncodeError:
            raise ProfileError("keys.%s: 'ascii:' text must be ASCII" % what) from None
    try:
        return bytes.fromhex(text.replace(" ", ""))
    except ValueError:
        raise ProfileError("keys.%s: not hex (prefix text with 'ascii:')" % what) from None


def download_key(data):
    """The firmware download key (16 bytes) of loaded profile data: [keys]
    download, else the emulator's (osgp_meter.fwimage.DEFAULT_KEY). It signs
    images (fw-image build) and the meter checks them with it (config
    download_key, docs/firmware-download.md); not a PLC key."""
    from osgp_meter import fwimage
    value = _section(data, "keys").get("download")
    if value is None or value == "":
        return fwimage.DEFAULT_KEY
    if not isinstance(value, str):
        raise ProfileError("keys.download: a hex string (16 bytes) expected, got %r" % (value,))
    key = parse_key(value, "download")
    if len(key) != 16:
        raise ProfileError("keys.download: 16 bytes expected, got %d" % len(key))
    return key


def pack_version(text, what):
    """'3.10.21' -> 0x3155: major bits 15-12, minor 11-5, build 4-0 [OPT BT01]."""
    m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", str(text))
    if not m:
        raise ProfileError("identity.%s: expected major.minor.build" % what)
    major, minor, build = (int(x) for x in m.groups())
    if major > 9 or minor > 99 or build > 31:
        raise ProfileError("identity.%s: major 0-9, minor 0-99, build 0-31" % what)
    return (major << 12) | (minor << 5) | build


def _chars(text, n, what):
    raw = str(text).encode("ascii", "replace")
    if len(raw) > n:
        raise ProfileError("identity.%s: at most %d characters" % (what, n))
    return raw + b" " * (n - len(raw)) if n <= 8 else raw + bytes(n - len(raw))


def _bcd(text, n, what):
    digits = str(text)
    if not re.fullmatch(r"\d*", digits) or len(digits) > 2 * n:
        raise ProfileError("identity.%s: up to %d decimal digits" % (what, 2 * n))
    digits = digits.rjust(2 * n, "0")
    return bytes(int(digits[i]) << 4 | int(digits[i + 1]) for i in range(0, 2 * n, 2))


def bt01(identity):
    """BT01 General Manufacturer Identification [OPT p.19]."""
    hw = pack_version(identity["hardware_version"], "hardware_version")
    fw = pack_version(identity["firmware_version"], "firmware_version")
    return (_chars(identity["manufacturer"], 4, "manufacturer")
            + _chars(identity["model"], 8, "model")
            + bytes((hw >> 8, hw & 0xFF, fw >> 8, fw & 0xFF))   # offset 14 is the MSB
            + _bcd(identity["serial_number"], 8, "serial_number"))


def parse_time(text):
    m = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)Z?", str(text))
    if not m:
        raise ProfileError("clock.start: expected YYYY-MM-DDThh:mm:ssZ")
    return calendar.timegm(tuple(int(x) for x in m.groups()) + (0, 0, 0))


_KEY_ROLES = {
    "mak": access.ROLE_MAK, "mbk": access.ROLE_MBK, "mk": access.ROLE_MK,
    "pk": access.ROLE_PK, "rk": access.ROLE_RK,
    "plc_unicast": access.ROLE_PLC, "plc_broadcast": access.ROLE_BCAST,
}


def to_config(data):
    """Profile data (as loaded) -> the core's config dict."""
    image = {}
    identity = data.get("identity", {})
    image[BT01] = bt01(identity)
    if "utility_serial" in identity:
        image[ET03] = _chars(identity["utility_serial"], 30, "utility_serial")
    for name, hexdata in data.get("tables", {}).items():
        tid = table_id(name)
        if tid not in catalogue_data.TABLES:
            raise ProfileError("tables.%s: no such table in the catalogue" % name)
        try:
            image[tid] = bytes.fromhex(str(hexdata).replace(" ", ""))
        except ValueError:
            raise ProfileError("tables.%s: not hex" % name) from None
    mode = _section(data, "security").get("mode", "rc4")
    if not isinstance(mode, str) or mode not in SECURITY_MODES:
        raise ProfileError("security.mode: %s, not %r"
                           % (" or ".join(repr(m) for m in sorted(SECURITY_MODES)), mode))
    if SECURITY_MODES[mode]:
        # ET04.127 in the initial image (docs/security-modes.md): over the
        # profile's own ET04 bytes, else the catalogue default
        et04 = image.get(ET04)
        if et04 is None:
            et04 = catalogue_data.TABLES[ET04][4] or b""
        et04 = bytearray(et04) + bytes(max(0, 128 - len(et04)))
        et04[127] = SECURITY_MODES[mode]
        image[ET04] = bytes(et04)
    keys = {}
    for name, role in _KEY_ROLES.items():
        value = _section(data, "keys").get(name)
        if value:
            keys[role] = parse_key(value, name)
    mep = data.get("mep", {})
    optical = data.get("optical", {})
    plc = data.get("plc", {})
    start = data.get("clock", {}).get("start")
    metering = data.get("metering", {})
    return {
        "image": image,
        "keys": keys,
        "download_key": download_key(data),
        "mep_seq": int(mep.get("sequence", 0)) & 0xFFFFFFFF,
        "mep_secure": bool(mep.get("secure", True)),
        "mep_baud": int(mep.get("baudrate", 9600)),
        "optical_baud": int(optical.get("baudrate", 9600)),
        "optical_max_read": int(optical.get("max_read", 4096)),
        "plc_max_read": int(plc.get("max_partial_read", 84)),
        "plc_max_write": int(plc.get("max_partial_write", 75)),
        "clock": parse_time(start) if start else int(time.time()),
        "metering": bool(metering.get("enabled", True)),
        "seed": int(metering.get("seed", 1)),
        "annual_kwh": int(metering.get("annual_kwh", 3500)),
        "pv_peak_w": int(metering.get("pv_peak_w", 0)),
        "phases": int(metering.get("phases", 3)),
    }


def load_config(path=None):
    return to_config(load(path))
