"""`osgp-meter dc --local discover`: the data concentrator discovers and
commissions factory-fresh meters (through a repeater where it must) and
prints the topology it built."""
import json

from osgp_host import cli


def test_discover_the_default_topology(capsys):
    assert cli.main(["dc", "--local", "--topology", "default", "--quiet", "discover", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["discovered"] == doc["commissioned"] == doc["meters_total"] == 50
    assert doc["hops"].get(1, doc["hops"].get("1", 0)) >= 1          # some meters only via a repeater
    behind = [m for m in doc["meters"].values() if m["hops"] >= 1]
    assert all(m["path"] and m["commissioned"] for m in behind)


def test_discover_prints_a_table_and_needs_local(capsys):
    assert cli.main(["dc", "--local", "--topology", "small", "--quiet", "discover"]) == 0
    text = capsys.readouterr().out
    assert "neuron id" in text and "discovered" in text
    assert cli.main(["dc", "--cnip", "127.0.0.1:1", "discover"]) == 2
