# The device profile a board reads at boot: one JSON file (MicroPython has
# `json`; no TOML parser on a board). tools/board_loop.py device_profile()
# writes it from a TOML profile plus a preset of board/profiles/. Layout:
#
#   {"board": {"name": "pico",
#              "plc": {"uart": 0, "tx": 0, "rx": 1, "baud": 115200},
#              "mep": {"uart": 1, "tx": 4, "rx": 5, "baud": 9600},
#              "led": "LED", "button": 15, "button_active": 0,
#              "wdt_ms": 8000, "nv_dir": "nv", "debug": 0, "gc_threshold": 32768},
#    "meter": {the Firmware config (meter/firmware.py) in JSON:
#              bytes as hex strings, "keys" by name (mak, mbk, mk, pk, rk,
#              plc_unicast, plc_broadcast), "image" {table id: hex},
#              "neuron_id" / "plc_domain" / "download_key" hex}}
#
# A missing "plc" or "mep" section leaves that port out; "optical" likewise
# (off by default: its session costs RAM a board may not have).
import json

DEFAULT_PATH = "profile.json"

# key name -> role bit (meter/access.py)
KEY_ROLES = {"mk": 0x01, "pk": 0x02, "rk": 0x04, "mak": 0x08, "mbk": 0x10,
             "plc_unicast": 0x20, "plc_broadcast": 0x40}
_HEX = ("neuron_id", "plc_domain", "download_key")


def _unhex(s):
    return bytes.fromhex(s.replace(" ", ""))


def _dict(v, what):
    if not isinstance(v, dict):
        raise ValueError("profile: %s: an object expected" % what)
    return v


def meter_config(m):
    """The JSON "meter" section -> the config dict Firmware takes. A value
    of the wrong type: ValueError("profile: meter.KEY: ...")."""
    cfg = {}  # type: dict
    for k, v in _dict(m, "meter").items():
        try:
            if k == "keys":
                cfg["keys"] = dict((KEY_ROLES[name], _unhex(h))
                                   for name, h in _dict(v, "meter.keys").items() if h)
            elif k == "image":
                cfg["image"] = dict((int(t), _unhex(h)) for t, h in _dict(v, "meter.image").items())
            elif k in _HEX:
                cfg[k] = _unhex(v) if v is not None else None
            elif k == "plc_groups":
                cfg[k] = [tuple(g) for g in v]
            else:
                cfg[k] = v
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if str(exc).startswith("profile:"):
                raise
            raise ValueError("profile: meter.%s: %s: %s" % (k, type(exc).__name__, exc))
    return cfg


def load(path=DEFAULT_PATH):
    """(board dict, Firmware config dict) from the profile file; ValueError
    naming the section when the file is not a device profile."""
    with open(path) as f:
        doc = _dict(json.load(f), "the document")
    board = _dict(doc.get("board", {}), "board")
    for port in ("plc", "mep", "optical"):
        if port in board:
            _dict(board[port], "board." + port)
    return board, meter_config(doc.get("meter", {}))
