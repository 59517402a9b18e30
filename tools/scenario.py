"""Scenarios: timed physical inputs and head-end commands for a simulated
meter (`osgp-meter simulate --scenario FILE`, `Simulation.at()`, and the
`[[scenario]]` list of a profile). The format is in docs/simulate.md.

A scenario is a list of entries; each says **when** (one of `time`,
`after`, `after_previous`, or none: at the start), optionally how often
(`every`, `times`) and **what** (exactly one action key):

    [[at]]
    time = "2026-03-10T02:00:00Z"      # absolute UTC
    power = "off"

    [[at]]
    after_previous = "2h"              # 2 h after the entry above
    power = "on"

    [[at]]
    after = "3d2h"                     # 3 days 2 hours after the start
    inject = "cover"
    on = true

This module only parses and checks (every mistake is a ScenarioError naming
the entry); tools/simulate.py applies the actions to a meter.
"""
import calendar
import datetime
import re

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

from osgp_meter import access

# The action keys, in the order docs/simulate.md lists them.
ACTIONS = ("power", "outage", "inject", "procedure", "write", "read", "clock")

WHEN_KEYS = ("time", "after", "after_previous")
COMMON_KEYS = WHEN_KEYS + ("every", "times", "label")

# supply.inject kinds (meter/supply_inputs.py KINDS) and the parameters each takes.
INJECT_PARAMS = {
    "load": ("watts", "milliamps"),
    "voltage": ("volts",),
    "thd": ("value",),
    "battery": ("on",),
    "cover": ("on",),
    "terminal_cover": ("on",),
    "magnetic": ("on",),
    "neutral": ("on",),
    "button": (),
}

# Keys (roles) a procedure, write or read can be sent with, and the port it
# then goes through (its size limits and the user ID logged).
KEYS = {
    "mak": (access.ROLE_MAK, "mep"),
    "mbk": (access.ROLE_MBK, "mep"),
    "mk": (access.ROLE_MK, "optical"),
    "pk": (access.ROLE_PK, "optical"),
    "rk": (access.ROLE_RK, "optical"),
    "plc": (access.ROLE_PLC, "plc"),
    "bcast": (access.ROLE_BCAST, "plc"),
}

_EXTRA = {
    "power": (),
    "outage": (),
    "procedure": ("params", "values", "key", "expect"),
    "write": ("data", "offset", "key", "expect"),
    "read": ("offset", "count", "block", "key", "expect"),
    "clock": ("key", "expect"),
}

_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


class ScenarioError(ValueError):
    """A scenario that cannot be run; the message names the entry and key."""


class Action:
    """One checked scenario entry.

    kind   one of ACTIONS
    args   the action's arguments, normalised (see simulate.apply)
    when   ("start", 0) | ("time", unix s) | ("after", s) | ("after_previous", s)
    every  repeat period in seconds, or None; times: occurrences (None: until the run ends)
    label  text for the action log; origin: where it came from (for messages)
    """
    __slots__ = ("kind", "args", "when", "every", "times", "label", "origin")

    def __init__(self, kind, args, when=("start", 0), every=None, times=None, label=None,
                 origin="scenario"):
        self.kind = kind
        self.args = args
        self.when = when
        self.every = every
        self.times = times
        self.label = label
        self.origin = origin

    def describe(self):
        """A short human-readable text of what the action does."""
        if self.label:
            return self.label
        a = self.args
        k = self.kind
        if k == "power":
            return "power %s" % ("on" if a["on"] else "off")
        if k == "outage":
            return "outage %s" % format_duration(a["seconds"])
        if k == "inject":
            params = " ".join("%s=%s" % (n, _show(v)) for n, v in sorted(a["params"].items()))
            return ("inject %s %s" % (a["kind"], params)).rstrip()
        if k == "procedure":
            return ("%s %s %s (%s)" % (a["label"], a["name"], a["params"].hex(), a["key"].upper())).replace("  ", " ")
        if k == "write":
            where = "" if a["offset"] is None else " @%d" % a["offset"]
            return "write %s%s %d bytes (%s)" % (a["label"], where, len(a["data"]), a["key"].upper())
        if k == "read":
            where = "" if a["offset"] is None else " @%d" % a["offset"]
            count = "" if a["count"] is None else " count %d" % a["count"]
            if a.get("block") is not None:
                where = " block %s" % a["block"]
            return "read %s%s%s (%s)" % (a["label"], where, count, a["key"].upper())
        if k == "clock":
            if a["set"] is not None:
                return "clock set to %s (BP10, %s)" % (format_time(a["set"]), a["key"].upper())
            return "clock %+d s (EP16, %s)" % (a["delta"], a["key"].upper())
        return k

    def __repr__(self):
        return "Action(%s, %r, when=%r)" % (self.kind, self.args, self.when)


def _show(v):
    return "true" if v is True else "false" if v is False else str(v)


# ---------------------------------------------------------------------------
# times and durations
# ---------------------------------------------------------------------------

def parse_time(value, what="time"):
    """ISO 8601 UTC ("2026-03-10T02:00:00Z", "2026-03-10T02:00", "2026-03-10",
    with or without an offset), a TOML/Python datetime or date (naive = UTC),
    or an int (seconds since 1970) -> int seconds since 1970 UTC."""
    if isinstance(value, bool):
        raise ScenarioError("%s: expected a date/time, got %r" % (what, value))
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value == int(value):
        return int(value)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return int(value.timestamp())
    if isinstance(value, datetime.date):
        return calendar.timegm((value.year, value.month, value.day, 0, 0, 0, 0, 0, 0))
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d{4}-\d\d-\d\d([T ]\d\d:\d\d(:\d\d(\.\d+)?)?)?(Z|[+-]\d\d:?\d\d)?", text):
            if text.endswith("Z"):
                text = text[:-1] + "+00:00"
            try:
                return parse_time(datetime.datetime.fromisoformat(text), what)
            except ValueError as exc:
                raise ScenarioError("%s: %r is not a valid date/time (%s)" % (what, value, exc)) from None
    raise ScenarioError("%s: %r is not a date/time; expected e.g. \"2026-03-10T02:00:00Z\"" % (what, value))


def parse_duration(value, what="duration", signed=False):
    """"3d2h", "90m", "1h30m15s", "2w", "3600", 3600 -> seconds. With signed,
    a leading + or - is allowed (clock deltas); otherwise a duration is >= 0."""
    if isinstance(value, bool):
        raise ScenarioError("%s: expected a duration, got %r" % (what, value))
    if isinstance(value, (int, float)):
        if value != int(value):
            raise ScenarioError("%s: %r: whole seconds only" % (what, value))
        seconds = int(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        sign = 1
        if text[:1] in "+-" and text:
            if not signed and text[0] == "-":
                raise ScenarioError("%s: %r: a duration cannot be negative" % (what, value))
            sign = -1 if text[0] == "-" else 1
            text = text[1:]
        if re.fullmatch(r"\d+", text):
            seconds = int(text)
        elif text and re.fullmatch(r"(\d+[wdhms])+", text):
            seconds = sum(int(n) * _UNITS[u] for n, u in re.findall(r"(\d+)([wdhms])", text))
        else:
            raise ScenarioError("%s: %r is not a duration; expected e.g. \"3d2h\", \"90m\", \"15s\""
                                " or seconds" % (what, value))
        seconds *= sign
    else:
        raise ScenarioError("%s: %r is not a duration" % (what, value))
    if seconds < 0 and not signed:
        raise ScenarioError("%s: %r: a duration cannot be negative" % (what, value))
    return seconds


def format_time(t):
    """Unix seconds -> "2026-03-10 02:00:00" (UTC)."""
    return "%04d-%02d-%02d %02d:%02d:%02d" % tuple(datetime.datetime.fromtimestamp(
        t, datetime.timezone.utc).timetuple()[:6])


def format_duration(seconds):
    """3 * 86400 + 7200 -> "3d2h"."""
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    out = []
    for u, n in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if s >= n:
            out.append("%d%s" % (s // n, u))
            s %= n
    return sign + "".join(out)


# ---------------------------------------------------------------------------
# entries
# ---------------------------------------------------------------------------

def _hex(value, what):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if not isinstance(value, str):
        raise ScenarioError("%s: expected hex bytes as a string, got %r" % (what, value))
    try:
        return bytes.fromhex(value.replace(" ", "").replace(":", ""))
    except ValueError:
        raise ScenarioError("%s: %r is not hex" % (what, value)) from None


def _int(value, what, lo=None, hi=None):
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str):
            try:
                value = int(value, 0)
            except ValueError:
                raise ScenarioError("%s: %r is not an integer" % (what, value)) from None
        else:
            raise ScenarioError("%s: %r is not an integer" % (what, value))
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ScenarioError("%s: %d out of range %s..%s" % (what, value, lo, hi))
    return value


def _bool(value, what):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("on", "true", "yes", "1", "off", "false", "no", "0"):
        return value.lower() in ("on", "true", "yes", "1")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ScenarioError("%s: %r: expected true/false (or \"on\"/\"off\")" % (what, value))


def _key(entry, where):
    name = str(entry.get("key", "mak")).lower()
    if name not in KEYS:
        raise ScenarioError("%s: key %r: expected one of %s" % (where, entry.get("key"), ", ".join(KEYS)))
    return name


def _table(name, where):
    from . import catalogue
    entry = catalogue.lookup_table(name) if not isinstance(name, bool) else None
    if entry is None:
        raise ScenarioError("%s: unknown table %r (a label like \"BT53\", a number or a"
                            " catalogue name)" % (where, name))
    return entry


def _procedure(name, where):
    from . import catalogue
    entry = catalogue.lookup_procedure(name) if not isinstance(name, bool) else None
    if entry is None:
        raise ScenarioError("%s: unknown procedure %r (a label like \"EP01\", a number or a"
                            " catalogue name)" % (where, name))
    return entry


def _volts(value, what):
    if isinstance(value, list):
        if not 1 <= len(value) <= 3:
            raise ScenarioError("%s: one to three phase values" % what)
        return tuple(_number(v, what) for v in value)
    return _number(value, what)


def _number(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScenarioError("%s: %r is not a number" % (what, value))
    return value


def parse_entry(entry, where="scenario entry"):
    """One scenario entry (a dict as TOML gives it) -> Action."""
    if not isinstance(entry, dict):
        raise ScenarioError("%s: expected a table of keys, got %r" % (where, entry))
    found = [k for k in ACTIONS if k in entry]
    if not found:
        unknown = [k for k in entry if k not in COMMON_KEYS]
        if unknown:
            raise ScenarioError("%s: unknown action %r; expected one of: %s"
                                % (where, unknown[0], ", ".join(ACTIONS)))
        raise ScenarioError("%s: no action; expected one of: %s" % (where, ", ".join(ACTIONS)))
    if len(found) > 1:
        raise ScenarioError("%s: one action per entry, found %s" % (where, " and ".join(found)))
    kind = found[0]

    # when
    whens = [k for k in WHEN_KEYS if k in entry]
    if len(whens) > 1:
        raise ScenarioError("%s: give one of time / after / after_previous, not %s"
                            % (where, " and ".join(whens)))
    when = ("start", 0)
    if whens:
        w = whens[0]
        if w == "time":
            when = ("time", parse_time(entry[w], "%s: time" % where))
        else:
            when = (w, parse_duration(entry[w], "%s: %s" % (where, w)))
    every = times = None
    if "every" in entry:
        every = parse_duration(entry["every"], "%s: every" % where)
        if every <= 0:
            raise ScenarioError("%s: every: must be at least 1 s" % where)
    if "times" in entry:
        if every is None:
            raise ScenarioError("%s: times needs every" % where)
        times = _int(entry["times"], "%s: times" % where, 1)
    label = entry.get("label")
    if label is not None and not isinstance(label, str):
        raise ScenarioError("%s: label: expected text" % where)

    # what
    allowed = set(COMMON_KEYS) | {kind}
    if kind == "inject":
        k = entry["inject"]
        if k not in INJECT_PARAMS:
            raise ScenarioError("%s: inject %r: expected one of %s" % (where, k, ", ".join(INJECT_PARAMS)))
        allowed |= set(INJECT_PARAMS[k])
    else:
        allowed |= set(_EXTRA[kind])
    for k in entry:
        if k not in allowed:
            raise ScenarioError("%s: key %r does not go with %s%s" % (
                where, k, kind, " = %r" % entry[kind] if kind == "inject" else ""))
    args = {}
    if kind == "power":
        v = entry["power"]
        args["on"] = _bool(v, "%s: power" % where)
    elif kind == "outage":
        args["seconds"] = parse_duration(entry["outage"], "%s: outage" % where)
        if args["seconds"] <= 0:
            raise ScenarioError("%s: outage: must last at least 1 s" % where)
    elif kind == "inject":
        k = entry["inject"]
        params = {}
        if "on" in entry:
            params["on"] = _bool(entry["on"], "%s: on" % where)
        elif k in ("battery", "cover", "terminal_cover", "magnetic", "neutral"):
            params["on"] = True
        if "watts" in entry:
            params["watts"] = _int(entry["watts"], "%s: watts" % where, 0)
        if "milliamps" in entry:
            ma = entry["milliamps"]
            if isinstance(ma, list):
                if len(ma) != 3:
                    raise ScenarioError("%s: milliamps: one value or three (L1, L2, L3)" % where)
                params["milliamps"] = tuple(_int(x, "%s: milliamps" % where, 0) for x in ma)
            else:
                params["milliamps"] = _int(ma, "%s: milliamps" % where, 0)
        if "volts" in entry:
            params["volts"] = _volts(entry["volts"], "%s: volts" % where)
        if "value" in entry:
            params["value"] = _int(entry["value"], "%s: value" % where, 0)
        if k == "load" and not params:
            raise ScenarioError("%s: inject load needs watts and/or milliamps" % where)
        if k == "voltage" and "volts" not in params:
            raise ScenarioError("%s: inject voltage needs volts" % where)
        if k == "thd" and "value" not in params:
            raise ScenarioError("%s: inject thd needs value (0.1 %%)" % where)
        args = {"kind": k, "params": params}
    elif kind == "procedure":
        proc = _procedure(entry["procedure"], where)
        if "params" in entry and "values" in entry:
            raise ScenarioError("%s: give params (hex) or values (fields), not both" % where)
        if "values" in entry:
            if not isinstance(entry["values"], dict):
                raise ScenarioError("%s: values: expected a table of parameter fields" % where)
            from . import catalogue
            try:
                params = catalogue.encode_params(proc, entry["values"])
            except (ValueError, TypeError, KeyError) as exc:
                raise ScenarioError("%s: values for %s: %s" % (where, proc["label"], exc)) from None
        else:
            params = _hex(entry.get("params", ""), "%s: params" % where)
        args = {"number": proc["number"], "label": proc["label"], "name": proc["name"],
                "params": params, "key": _key(entry, where)}
    elif kind == "write":
        table = _table(entry["write"], where)
        if "data" not in entry:
            raise ScenarioError("%s: write needs data (hex)" % where)
        data = _hex(entry["data"], "%s: data" % where)
        if not data:
            raise ScenarioError("%s: data: nothing to write" % where)
        off = _int(entry["offset"], "%s: offset" % where, 0, 0xFFFFFF) if "offset" in entry else None
        args = {"table": table["id"], "label": table["label"], "data": data, "offset": off,
                "key": _key(entry, where)}
    elif kind == "read":
        table = _table(entry["read"], where)
        off = _int(entry["offset"], "%s: offset" % where, 0, 0xFFFFFF) if "offset" in entry else None
        cnt = _int(entry["count"], "%s: count" % where, 1, 0xFFFF) if "count" in entry else None
        block = None
        if "block" in entry:
            block = entry["block"]
            if not 64 <= table["id"] <= 67:
                raise ScenarioError("%s: block goes with the load-profile data tables BT64-BT67" % where)
            if off is not None or cnt is not None:
                raise ScenarioError("%s: block or offset/count, not both" % where)
            if block != "newest":
                block = _int(block, "%s: block" % where, 0, 0xFFFF)
        args = {"table": table["id"], "label": table["label"], "offset": off, "count": cnt,
                "block": block, "key": _key(entry, where)}
    elif kind == "clock":
        v = entry["clock"]
        args = {"set": None, "delta": None, "key": _key(entry, where)}
        if isinstance(v, (datetime.datetime, datetime.date)) or (
                isinstance(v, str) and re.match(r"\s*\d{4}-\d\d-\d\d", v)):
            args["set"] = parse_time(v, "%s: clock" % where)
        else:
            try:
                args["delta"] = parse_duration(v, "%s: clock" % where, signed=True)
            except ScenarioError:
                raise ScenarioError("%s: clock: %r: expected a signed delta (\"+3600\", \"-1h30m\")"
                                    " or a date/time (\"2026-03-10T05:00:00Z\")" % (where, v)) from None
            if not -0x80000000 <= args["delta"] <= 0x7FFFFFFF:
                raise ScenarioError("%s: clock: delta out of INT32 range" % where)
    if "expect" in entry:
        if kind not in ("procedure", "write", "read", "clock"):
            raise ScenarioError("%s: expect goes with procedure, write, read or clock" % where)
        args["expect"] = _int(entry["expect"], "%s: expect" % where, 0, 255)
    elif kind in ("procedure", "write", "read", "clock"):
        args["expect"] = None
    return Action(kind, args, when, every, times, label, where)


def parse(entries, origin="scenario", section="at"):
    """A list of entries (dicts) -> [Action], checked; raises ScenarioError."""
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ScenarioError("%s: [[%s]] must be a list of tables" % (origin, section))
    return [parse_entry(e, "%s: [[%s]] #%d" % (origin, section, i + 1)) for i, e in enumerate(entries)]


def from_document(doc, origin="scenario"):
    """The scenario entries of a TOML document (a scenario file or a
    profile): its [[at]] list, or its [[scenario]] list (one of them)."""
    if "at" in doc and "scenario" in doc:
        raise ScenarioError("%s: use either [[at]] or [[scenario]], not both" % origin)
    section = "scenario" if "scenario" in doc else "at"
    return parse(doc.get(section), origin, section)


SETTINGS = ("start", "days", "until", "seed", "speed")


def load(path):
    """A scenario file -> (settings, [Action]). settings: the optional
    [simulation] table (start, days, until, seed, speed), checked."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError("%s: %s" % (path, exc)) from None
    for k in doc:
        if k not in ("at", "scenario", "simulation"):
            raise ScenarioError("%s: unknown section %r (expected [[at]] entries and an optional"
                                " [simulation] table)" % (path, k))
    settings = dict(doc.get("simulation", {}))
    for k in settings:
        if k not in SETTINGS:
            raise ScenarioError("%s: [simulation] %s: unknown key (expected %s)" % (path, k, ", ".join(SETTINGS)))
    if "start" in settings:
        settings["start"] = parse_time(settings["start"], "%s: [simulation] start" % path)
    if "until" in settings:
        settings["until"] = parse_time(settings["until"], "%s: [simulation] until" % path)
    if "days" in settings:
        d = settings["days"]
        if isinstance(d, bool) or not isinstance(d, (int, float)) or d <= 0:
            raise ScenarioError("%s: [simulation] days: a positive number" % path)
    if "days" in settings and "until" in settings:
        raise ScenarioError("%s: [simulation]: days or until, not both" % path)
    if "seed" in settings:
        settings["seed"] = _int(settings["seed"], "%s: [simulation] seed" % path)
    if "speed" in settings:
        settings["speed"] = parse_speed(settings["speed"], "%s: [simulation] speed" % path)
    return settings, from_document(doc, str(path))


def parse_speed(value, what="speed"):
    """"max" (or None, inf) -> None: as fast as possible; a number X > 0 ->
    X times real time."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("max", "inf")):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ScenarioError("%s: %r: a factor (e.g. 60) or \"max\"" % (what, value)) from None
    if x == float("inf"):
        return None
    if not x > 0:
        raise ScenarioError("%s: %r: must be > 0" % (what, value))
    return x


def resolve(actions, start):
    """[(first time in unix s, Action)] in entry order: `after` counts from
    `start`, `after_previous` from the previous entry's time (the start for
    the first entry); an entry without a time is at the start."""
    out = []
    prev = start
    for a in actions:
        how, v = a.when
        if how == "time":
            t = v
        elif how == "after":
            t = start + v
        elif how == "after_previous":
            t = prev + v
        else:
            t = start
        out.append((t, a))
        prev = t
    return out
