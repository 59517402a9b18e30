# The commissioning state machines as ONE transition table, kept as data.
#
# Read by the portable interpreter (meter/lifecycle.py, CPython and
# MicroPython: what the meter runs) and by the `transitions` library on the
# host (tools/lifecycle.py); tests/test_lifecycle_agreement.py drives both
# over every (state, trigger) pair and proves they agree, and
# `python -m osgp_host.lifecycle` draws docs/commissioning.md from it.
#
# Two machines:
#   node  the ISO/IEC 14908-1 node state, reported in ET04.72 [MEP ET04]
#         = the Neuron state codes [DX IzotNodeState]; network management
#         (update/leave domain, set node mode) and the meter's own
#         commissioning (FCM, profile) move it.
#   osgp  the meter's OSGP lifecycle as a data concentrator sees it
#         (EMULATOR PROFILE: states, triggers and codes are ours; the public
#         sources name discovery, commissioning and network maintenance,
#         not a lifecycle).
#
# TRANSITIONS: one row per line,   trigger: sources -> dest [if guard]
#   sources  state names; "*" every state; "!s" every state but s (several
#            "!" subtract several)
#   dest     a state, or "=": accepted, the state stays
#   guard    the name of a function in lifecycle.CONDITIONS, of the facts
#            the trigger brings (ctx)
# Rows are tried top down; the first whose sources hold the state and whose
# guard is true wins. A (state, trigger) pair no row takes is REFUSED: the
# state stays and the interpreter says so (never an exception).
#
# STATES and TRIGGERS are names separated by spaces (lifecycle.states(),
# .triggers() split them), TRANSITIONS text rather than tuples: a .mpy
# holds each string of a constant tuple as its own heap object, which made
# the tuple form three times larger in a board's RAM (docs/commissioning.md).

MACHINES = ("node", "osgp")

STATES = {
    "node": "applicationless unconfigured configured soft_offline hard_offline bypass",
    "osgp": "uninstalled discovered commissioned operational decommissioned moved",
}

INITIAL = {"node": "unconfigured", "osgp": "uninstalled"}

# The codes a head end reads. node: ET04.72 [MEP ET04] (140 bypass = 0x8C
# IzotConfigByPass "configured, in bypass mode" [DX]). osgp: emulator
# profile, ET99.114 (docs/commissioning.md).
CODES = {
    "node": {"applicationless": 3, "unconfigured": 2, "configured": 4, "soft_offline": 12,
             "hard_offline": 6, "bypass": 140},
    "osgp": {"uninstalled": 0, "discovered": 1, "commissioned": 2, "operational": 3,
             "decommissioned": 4, "moved": 5},
}

TRIGGERS = {
    "node": "update_domain leave_domain commission change_state_unconfigured"
            " change_state_applicationless change_state_configured change_state_hard_offline"
            " set_offline set_online reset load_application unload_application bypass_on"
            " bypass_off",
    "osgp": "discover commission osgp_request decommission",
}

TRANSITIONS = {
    "node": """
# network management [DX lcs_netmgmt.c]: the node answers NM in every state
update_domain: * -> =
leave_domain: !applicationless !unconfigured -> unconfigured if no_domain_left
leave_domain: * -> =
commission: !applicationless -> configured
change_state_unconfigured: * -> unconfigured
change_state_applicationless: * -> applicationless
# change state keeps the application mode [DX IzotSetNodeMode]: soft offline
# and bypass stay as they are
change_state_configured: unconfigured configured hard_offline -> configured
change_state_configured: soft_offline bypass -> =
change_state_hard_offline: !applicationless -> hard_offline
set_offline: configured bypass -> soft_offline
set_offline: applicationless unconfigured soft_offline hard_offline -> =
set_online: soft_offline hard_offline bypass -> configured
set_online: applicationless unconfigured configured -> =
# soft offline and bypass are RAM states: a reset ends them
reset: soft_offline bypass -> configured
reset: applicationless unconfigured configured hard_offline -> =
load_application: applicationless -> unconfigured
unload_application: !applicationless -> applicationless
bypass_on: configured soft_offline -> bypass
bypass_on: bypass -> =
bypass_off: bypass -> configured
""",
    "osgp": """
discover: uninstalled decommissioned -> discovered
discover: discovered commissioned operational moved -> =
commission: uninstalled discovered decommissioned -> commissioned
commission: commissioned operational -> moved if other_dc
commission: commissioned operational moved -> =
osgp_request: commissioned moved -> operational if in_domain
osgp_request: operational -> =
decommission: commissioned operational moved -> decommissioned
""",
}
