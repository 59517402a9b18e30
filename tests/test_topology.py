"""Topologies of the virtual PLC channel (tools/topology.py): the shipped
files, the attenuation model, and clear messages for bad files."""
import itertools
import math

import pytest

from osgp_host.channel import Channel
from osgp_host.topology import (DEFAULT_TOPOLOGY, FeederGeometry, GridParams, Topology,
                                TopologyError)

SHIPPED = ["default", "small", "hidden", "two_transformers"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_topologies_load(name):
    t = Topology.named(name)
    ch = Channel(t, seed=1)
    assert len(ch.ids) == len(t.nodes)
    assert ch.link_matrix()


def test_default_topology():
    t = Topology.load(DEFAULT_TOPOLOGY)
    meters = [n for n in t.nodes if n.role == "meter"]
    assert len(meters) == 50 and [n.id for n in meters][:2] == ["m001", "m002"]
    assert meters[-1].id == "m050"
    assert [f.id for f in t.feeders] == ["F1", "F1a", "F2", "F3"]
    assert t.node("dc").feeder is None and t.node("dc").transformer == "T1"
    assert t.node("m021").feeder == "F1a" and t.node("m021").at_m == 40
    assert t.grid.utc_offset_h == 1 and t.start_ms == 1_767_225_600_000
    ch = Channel(t, seed=1)
    # the far end of F3 needs a repeater; the near meters hear the DC well
    assert ch.link("dc", "m050").snr_db < 0 < 30 < ch.link("dc", "m037").snr_db
    assert ch.link("m044", "m050").snr_db > 20


def test_attenuation_model():
    t = Topology.load(DEFAULT_TOPOLOGY)
    g = FeederGeometry(t)
    idx = {n.id: i for i, n in enumerate(t.nodes)}
    kp = t.cables["underground"][0] / 1000
    ks = t.cables["service"][0] / 1000
    bb = t.grid.busbar_loss_db
    br = t.grid.branch_loss_db
    m1, m2 = t.node("m001"), t.node("m002")
    # same cable: length x dB/m
    assert g.att(idx["m001"], idx["m002"], 0) == pytest.approx(abs(m1.at_m - m2.at_m) * kp)
    # busbar -> feeder: half the busbar loss + length
    assert g.att(idx["dc"], idx["m001"], 0) == pytest.approx(bb / 2 + m1.at_m * kp)
    # feeder -> feeder through the busbar
    m25 = t.node("m025")
    assert g.att(idx["m001"], idx["m025"], 0) == pytest.approx(bb + (m1.at_m + m25.at_m) * kp)
    # into a branch: along F1 to 450 m, the branch loss, along the branch
    m21 = t.node("m021")
    assert g.att(idx["m001"], idx["m021"], 0) == pytest.approx(
        (450 - m1.at_m) * kp + br + m21.at_m * ks)
    # beyond the branch point on F1 to the branch: no turn loss on F1 itself
    m20 = t.node("m020")
    assert g.att(idx["m020"], idx["m021"], 0) == pytest.approx(
        (m20.at_m - 450) * kp + br + m21.at_m * ks)
    # symmetric, and the secondary carrier loses less on this cable
    assert g.att(idx["m021"], idx["m001"], 0) == pytest.approx(g.att(idx["m001"], idx["m021"], 0))
    assert g.att(idx["dc"], idx["m050"], 1) < g.att(idx["dc"], idx["m050"], 0)


def test_rows_match_pairwise_attenuation_exactly():
    for name in ("default", "two_transformers"):
        t = Topology.named(name)
        g = FeederGeometry(t)
        n = len(t.nodes)
        for c in (0, 1):
            for i in range(n):
                ids, atts = g.row(i, c, 80.0)
                got = dict(zip(ids, atts))
                for j in range(n):
                    a = g.att(i, j, c)
                    if j != i and a <= 80.0:
                        assert got[j] == a          # bit for bit: same arithmetic
                    elif j != i and a > 80.0 + 1e-6:
                        assert j not in got
        # the general point formula agrees too
        for i, j in itertools.combinations(range(n), 2):
            assert g.att_points(g.pos[i], g.pos[j], 0) == pytest.approx(g.att(i, j, 0), abs=1e-9)


def test_transformers_never_hear_each_other():
    t = Topology.named("two_transformers")
    ch = Channel(t, seed=1)
    assert ch.link("dc1", "dc2").attenuation_db == math.inf
    assert not ch.link("a001", "b001").heard
    shards = t.shards()
    assert [s.transformers[0].id for s in shards] == ["T1", "T2"]
    assert [len(s.nodes) for s in shards] == [7, 7]
    # the move to T2 cannot happen between shards: left out
    assert [f.kind for f in shards[0].faults] == ["offline", "degrade", "drop"]
    assert [f.kind for f in shards[1].faults] == ["corrupt"]


def test_matrix_topology():
    t = Topology.matrix(["a", "b", "c"], {("a", "b"): 20, ("b", "c"): (30, 40)}, noise_dbuv=45)
    ch = Channel(t, seed=1)
    assert ch.link("b", "c", "secondary").attenuation_db == 40
    assert ch.link("c", "b").snr_db == pytest.approx(120 - 30 - 45)
    assert not ch.link("a", "c").heard
    with pytest.raises(TopologyError, match="unknown node"):
        Topology.matrix(["a"], {("a", "z"): 1})


def test_link_overrides_in_toml():
    t = Topology.loads(_small("""
[[link]]
a = "m001"
b = "m002"
extra_db = 20

[[link]]
a = "dc"
b = "m003"
attenuation_db = 79
carrier = "primary"
directed = true
"""), "override.toml")
    ch = Channel(t, seed=1)
    base = Channel(Topology.loads(_small(""), "plain.toml"), seed=1)
    assert ch.link("m001", "m002").snr_db == pytest.approx(base.link("m001", "m002").snr_db - 20)
    assert ch.link("m002", "m001").snr_db == pytest.approx(base.link("m002", "m001").snr_db - 20)
    assert ch.link("dc", "m003").attenuation_db == 79
    assert ch.link("m003", "dc").attenuation_db == base.link("m003", "dc").attenuation_db
    assert ch.link("dc", "m003", "secondary").attenuation_db == \
        base.link("dc", "m003", "secondary").attenuation_db
    assert "m003" in ch.neighbours("dc")


def _small(extra):
    return """
[[feeder]]
id = "F1"
length_m = 500

[[node]]
id = "dc"
transformer = "T1"

[[meters]]
feeder = "F1"
count = 3
from_m = 100
to_m = 300
""" + extra


# -- errors ------------------------------------------------------------------------------------

BAD = [
    ("[[feeder]]\nid = 'F1'\nlenght_m = 100\n", "feeder #1: unknown key 'lenght_m' (did you mean 'length_m'?)"),
    ("[[feeder]]\nid = 'F1'\nlength_m = 100\n[[node]]\nid = 'm1'\nfeeder = 'F2'\nat_m = 5\n",
     "node 'm1': feeder 'F2' is not defined (defined: F1)"),
    ("[[feeder]]\nid = 'F1'\nlength_m = 100\n[[node]]\nid = 'm1'\nfeeder = 'F1'\nat_m = 150\n",
     "node 'm1': at_m = 150 is outside feeder 'F1' (0..100 m)"),
    ("[[feeder]]\nid = 'F1'\nlength_m = 100\n[[node]]\nid = 'm1'\nfeeder = 'F1'\n",
     "node 'm1': needs at_m"),
    ("[[feeder]]\nid = 'F1'\nlength_m = 100\n[[node]]\nid = 'm1'\nfeeder = 'F1'\nat_m = 1\n"
     "[[node]]\nid = 'm1'\nfeeder = 'F1'\nat_m = 2\n", "node 'm1' is defined twice"),
    ("[[feeder]]\nid = 'F1'\nlength_m = 100\ncable = 'coax'\n[[node]]\nid='a'\ntransformer='T1'\n",
     "feeder 'F1': cable type 'coax' is not defined (defined: overhead, service, underground)"),
    ("[[feeder]]\nid = 'F1'\nlength_m = 100\n[[feeder]]\nid = 'B'\nparent = 'F1'\nlength_m = 10\n"
     "[[node]]\nid='a'\ntransformer='T1'\n", "feeder 'B': a branch needs at_m"),
    ("[[feeder]]\nid = 'A'\nparent = 'B'\nat_m = 1\nlength_m = 10\n[[feeder]]\nid = 'B'\n"
     "parent = 'A'\nat_m = 1\nlength_m = 10\n[[node]]\nid='a'\ntransformer='T1'\n", "loops"),
    ("[[transformer]]\nid='T1'\n[[transformer]]\nid='T2'\n[[feeder]]\nid='F'\nlength_m=10\n"
     "[[node]]\nid='a'\ntransformer='T1'\n", "feeder 'F': needs transformer (there are 2)"),
    ("[feeder]\nid = 'F1'\n", "[feeder] must be written [[feeder]]"),
    ("[[node]]\nid = 'a'\n", "node 'a': needs a feeder (with at_m) or a transformer"),
    ("[[node]]\nid = 'a'\ntransformer = 'T9'\n", "node 'a': transformer 'T9' is not defined (defined: T1)"),
    ("", "no nodes"),
    ("[[node]]\nid='a'\ntransformer='T1'\n[[fault]]\nkind='explode'\n", "fault #1: fault kind 'explode'"),
    ("[[node]]\nid='a'\ntransformer='T1'\n[[fault]]\nkind='drop'\nnodes=['b']\n",
     "fault #1 (drop): node 'b' is not defined"),
    ("[[node]]\nid='a'\ntransformer='T1'\n[[fault]]\nkind='offline'\nnode='a'\nat='soon'\n",
     "cannot read 'soon' as a duration"),
    ("[[node]]\nid='a'\ntransformer='T1'\n[[fault]]\nkind='move'\nnode='a'\nfeeder='F7'\n",
     "feeder 'F7' is not defined"),
    ("[[node]]\nid='a'\ntransformer='T1'\npriority_slot=2\n", "priority_slot 2 is outside 0..0"),
    ("[phy]\nbitrate = 3600\n[[node]]\nid='a'\ntransformer='T1'\n",
     "[phy]: unknown key 'bitrate' (did you mean 'bit_rate'?)"),
    ("[phy]\nprofile = 'seed'\nbit_rate = 3600\n[[node]]\nid='a'\ntransformer='T1'\n",
     "profile 'seed' means bit_rate 3240"),
    ("[phy]\nprofile = 'fast'\n[[node]]\nid='a'\ntransformer='T1'\n", "profile 'fast' is not one of"),
    ("[mac]\nw_base = 0\n[[node]]\nid='a'\ntransformer='T1'\n", "w_base = 0 is below the minimum 1"),
    ("[grid]\nnoise_dbuv = { primary = 50 }\n[[node]]\nid='a'\ntransformer='T1'\n",
     "noise_dbuv needs both primary and secondary"),
    ("[[noise]]\nid='z'\ntransformer='T1'\nlevel_dbuv=90\nhours=[[17]]\n[[node]]\nid='a'\ntransformer='T1'\n",
     "hours must be a list of [from, to]"),
    ("name = 'x'\n[[node]\n", "not valid TOML"),
    ("colour = 'red'\n", "top level: unknown key 'colour'"),
]


@pytest.mark.parametrize("text,message", BAD)
def test_bad_topologies_say_what_is_wrong(text, message):
    with pytest.raises(TopologyError) as exc:
        Topology.loads(text, "bad.toml")
    assert str(exc.value).startswith("bad.toml: ")
    assert message in str(exc.value)


def test_missing_file(tmp_path):
    with pytest.raises(TopologyError, match="no such topology file"):
        Topology.load(tmp_path / "nope.toml")


def test_grid_defaults_are_documented_values():
    g = GridParams()
    assert (g.tx_level_dbuv, g.sensitivity_dbuv, g.noise_dbuv) == (120.0, 40.0, (50.0, 55.0))
