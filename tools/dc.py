"""A data concentrator (DC) for the virtual PLC channel: a LonTalk node with
no OSGP application, commissioned in the DC's domain, that reads, writes and
runs procedures on meters with secured OSGP requests (``plc_client``), and a
Python API for test harnesses. docs/dc.md is the reference.

    from osgp_host.dc import DC, LocalFleet
    fleet = LocalFleet("small")                 # 5 commissioned meters, m001 = 1/1 ...
    dc = DC(fleet.channel, names=fleet.addresses)
    dc.read("m001", "BT01")                     # or (1, 1), "1/1", "nid:00e000000001"
    dc.write((1, 2), "ET04", b"...", offset=103)
    result, data = dc.call("1/3", "BP10", params)
    dc.for_each(fleet.meters, lambda m: dc.read(m, "BT23"), progress=print)

Where the DC sits:

* on a ``Channel`` (``DC(channel, node_id="dc")``): the DC's PlcNode is
  attached at the topology's DC position; a call drives the simulation
  itself (virtual time, as fast as possible, or paced with ``speed``), or
  waits for a loop running in another thread (``drive=False``);
* over CN/IP (``DC(cnip=("127.0.0.1", 1628))``): the DC's PlcNode runs here
  on wall-clock time and its frames travel in CN/IP data packets to a
  gateway (``osgp_host.cnip_gateway``) that puts them on the channel.

Every request is a LonTalk REQUEST (SPDU) with the LonTalk transport's own
retries (``tx_retries`` more tries of the same frame, ``timeout_ms`` apart,
the last ones on the alternate path); when that transaction fails the DC
re-sends the same OSGP bytes (same sequence number and digest) in a new
transaction, ``retries`` times (the meter answers a repeat of its last
accepted request from its cache). A meter that never answers raises
``PlcTimeout`` naming it. Answer codes 0x0B / 0x0C / others raise
``PlcAuthError`` / ``PlcSequenceError`` (after the one re-sync retry) /
``PlcError``.
"""

# The parts live in their own modules (docs/dc.md); every name is importable from here too.
from .plc_client import (PlcClient, PlcSecurity, PlcError, PlcTimeout, PlcAuthError,  # noqa: F401
                         PlcSequenceError, MAX_READ, MAX_WRITE)
from .dc_address import (DEFAULT_DOMAIN, DC_SUBNET, DC_NODE, DC_NEURON_ID,  # noqa: F401
                         DEFAULT_KEY, DEFAULT_TIMEOUT_MS, DEFAULT_TX_RETRIES, DEFAULT_RETRIES,
                         timer_index, Target, _SN, parse_meter, parse_meters, table_id,
                         procedure_number)
from .dc_link import _Link, _ChannelPort, ChannelLink, CnipLink  # noqa: F401
from .dc_group import GroupSender  # noqa: F401
from .dc_core import DC  # noqa: F401
from .dc_local import meter_address, meter_neuron_id, MeterNode, LocalFleet  # noqa: F401
from .dc_cli import (_int, _hex, _hostport, add_parser, _Progress, _print_table,  # noqa: F401
                     build_dc, _inventory, run, RESULTS)

__all__ = ["DC", "GroupSender", "Target", "LocalFleet", "ChannelLink", "CnipLink", "PlcError",
           "PlcTimeout", "PlcAuthError", "PlcSequenceError", "parse_meter", "parse_meters"]
