# The commissioning state machines, run from the table in lifecycle_table.py
# (docs/commissioning.md). Portable and sans-IO (CPython and MicroPython).
#
#   step(machine, state, trigger, ctx) -> (accepted, next state)
#       the whole interpreter: rows in table order, the first whose source
#       matches and whose guard holds; none: refused, the state stays.
#   Machine(name)      one machine's state with fire(trigger, ctx) -> bool
#   rows(machine)      the parsed rows (sources, trigger, dest, guard)
# plc_node runs its node state through step(); meter/life.py (meter.life)
# runs the OSGP lifecycle of a meter.
#
# The guards are named functions of the facts a trigger brings (ctx, a dict
# or None); tools/lifecycle.py hands these same functions to `transitions`,
# so both sides evaluate them the same way.
from . import lifecycle_table as T

REFUSED = "refused"


# -- guards --------------------------------------------------------------------
def no_domain_left(ctx):
    """leave domain: the node has no valid domain entry left."""
    return ctx is not None and ctx.get("domains_left", 1) == 0


def other_dc(ctx):
    """commission: by a DC (domain) other than the one the meter had."""
    if ctx is None:
        return False
    dc = ctx.get("dc")
    new = ctx.get("domain")
    return dc is not None and new is not None and bytes(new) != bytes(dc)


def in_domain(ctx):
    """OSGP request: it came in one of the node's domains (from its DC), not
    Neuron-ID addressed in a foreign domain."""
    return ctx is not None and bool(ctx.get("in_domain"))


CONDITIONS = {"no_domain_left": no_domain_left, "other_dc": other_dc, "in_domain": in_domain}


# -- the interpreter -----------------------------------------------------------
def parse(line, states):
    """One table row -> (sources, trigger, dest or None, guard or None);
    ValueError when it is not one."""
    head, sep, rest = line.partition(":")
    srcs, sep2, rest = rest.partition("->")
    tail = rest.split()
    if not sep or not sep2 or not tail or len(tail) not in (1, 3) or \
            (len(tail) == 3 and tail[1] != "if") or not head or head != head.strip():
        raise ValueError("lifecycle row: " + line)
    toks = srcs.split()
    out = [s for s in states if ("!" + s) not in toks] if "*" in toks or \
        (toks and toks[0][0] == "!") else toks
    dest = tail[0]
    return (tuple(out), head.strip(), None if dest == "=" else dest,
            tail[2] if len(tail) == 3 else None)


def states(machine):
    """The machine's states, in table order (a list)."""
    return T.STATES[machine].split()


def triggers(machine):
    """The machine's triggers, in table order (a list)."""
    return T.TRIGGERS[machine].split()


def rows(machine):
    """The rows of a machine, in table order (a generator)."""
    names = states(machine)
    for line in T.TRANSITIONS[machine].split("\n"):
        line = line.strip()
        if line and line[0] != "#":
            yield parse(line, names)


def step(machine, state, trigger, ctx=None):
    """(True, next state) or (False, state) when the pair is refused. Reads
    the table text each time (triggers are rare): nothing to keep in RAM."""
    if machine not in T.TRANSITIONS:
        return False, state
    names = None
    want = trigger + ":"
    for line in T.TRANSITIONS[machine].split("\n"):
        line = line.strip()
        if not line.startswith(want):
            continue
        if names is None:
            names = states(machine)
        srcs, trig, dest, cond = parse(line, names)
        if state in srcs and (cond is None or CONDITIONS[cond](ctx)):
            return True, (state if dest is None else dest)
    return False, state


class Machine:
    """One machine's state. fire() answers True (accepted; the state may
    stay) or False (refused: the state stays, `refused` counts it)."""

    __slots__ = ("name", "state", "refused", "last")

    def __init__(self, name, state=None):
        self.name = name
        self.state = T.INITIAL[name] if state is None else state
        self.refused = 0
        self.last = None          # (state, trigger, next state or REFUSED)

    def fire(self, trigger, ctx=None):
        ok, nxt = step(self.name, self.state, trigger, ctx)
        self.last = (self.state, trigger, nxt if ok else REFUSED)
        if not ok:
            self.refused += 1
        self.state = nxt
        return ok


def outcomes(machine, ctxs):
    """(state, trigger, context index, accepted, next state) for every pair
    and each context of `ctxs`, one at a time (a generator: small heaps):
    what the agreement test compares with `transitions`."""
    for s in states(machine):
        for t in triggers(machine):
            for i in range(len(ctxs)):
                ok, nxt = step(machine, s, t, ctxs[i])
                yield (s, t, i, ok, nxt)


# -- node state <-> ET04.72 --------------------------------------------------------
_NODE = T.CODES["node"]


def node_name(code):
    """The node machine's state for an ET04.72 code (None: not a state)."""
    for n in _NODE:
        if _NODE[n] == code:
            return n
    return None


def node_code(name):
    return _NODE[name]
