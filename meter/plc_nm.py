# ISO/IEC 14908-1 network management and diagnostics on a PlcNode: the
# handler of NM/ND requests (query ID, update/leave domain, update key and
# addresses, set node mode, wink, ND status and proxy queries), as the
# LON Stack DX answers them [DX lcs_netmgmt.c]; docs/plc-node.md. Loaded by
# PlcNode._nm with the first NM/ND message (a node that boots commissioned
# and is never managed does not carry it: ~5 KB of MicroPython heap).
from . import lontalk as L
from . import lontalk_nm as N
from .lontalk import FrameError
from .lontalk_transport import REQUEST, FLEX
from .plc_node import (STATES, RESET_SOFTWARE, ERR_INVALID_DOMAIN, ERR_INVALID_ADDR_INDEX,
                       ERR_UNKNOWN_PDU, ADDR_ENTRIES, NO_DOMAIN, _CHANGE_STATE)


def handle(node, inc, now):
    """The answer to an NM/ND message `inc` (Incoming) at `now`: response
    APDU bytes, or None (no answer: a null response, not a request, or a
    reset)."""
    apdu = bytes(inc.frame.apdu)
    code = apdu[0]
    req = inc.service == REQUEST
    try:
        code, args = N.parse_request(apdu)
    except FrameError as e:
        if code == N.NM_SERVICE_PIN:
            return None
        if e.reason == "nm_code":
            node.error_log = ERR_UNKNOWN_PDU
        return N.fail(code) if req else None
    if code == N.NM_QUERY_ID:
        if not req:
            return None                      # discarded unless a request [DX]
        sel, mode, offset, data = args
        unconf = not node.configured
        if (sel == N.SEL_UNCONFIGURED and not unconf) or \
           (sel == N.SEL_SELECTED and not node.selected) or \
           (sel == N.SEL_SELECTED_UNCFG and not (node.selected and unconf)):
            return None                      # null response: no answer
        if mode is not None:
            ro = node._readonly()
            if mode != N.MODE_READ_ONLY or offset + len(data) > len(ro):
                return N.fail(code)
            if ro[offset:offset + len(data)] != data:
                return None
        return N.id_response(node.neuron_id, node.program_id)
    if code == N.NM_RESPOND_TO_QUERY:
        node.selected = bool(args[0])
        return N.ok(code)
    if code == N.NM_UPDATE_DOMAIN:
        i, d = args
        if i > 1:
            return node._fail(code, ERR_INVALID_DOMAIN)
        if not d.invalid and d.id_len not in L.DOMAIN_LENGTHS:
            return node._fail(code, ERR_INVALID_DOMAIN)
        node.domains[i] = d
        node._go("update_domain", {"index": i})
        node._save()
        return N.ok(code)
    if code == N.NM_LEAVE_DOMAIN:
        i = args[0]
        if i > 1:
            return node._fail(code, ERR_INVALID_DOMAIN)
        node.domains[i] = NO_DOMAIN
        left = (not node.domains[0].invalid) + (not node.domains[1].invalid)
        node._go("leave_domain", {"domains_left": left})   # none left: unconfigured [DX]
        if not left:
            node._pending_reset = (RESET_SOFTWARE, None)      # and a reset [DX]
        node._save()
        return None if inc.dom == i else N.ok(code)
    if code == N.NM_UPDATE_KEY:
        i, delta = args
        if i > 1:
            return node._fail(code, ERR_INVALID_DOMAIN)
        d = N.Domain.decode(node.domains[i].encode())     # a new entry: NO_DOMAIN is shared
        d.key = bytes([(d.key[k] + delta[k]) & 0xFF for k in range(6)])
        node.domains[i] = d
        node._save()
        return N.ok(code)
    if code == N.NM_UPDATE_ADDR:
        i, e = args
        if i >= ADDR_ENTRIES:
            return node._fail(code, ERR_INVALID_ADDR_INDEX)
        node.addresses[i] = e
        node._save()
        return N.ok(code)
    if code == N.NM_QUERY_ADDR:
        if not req:
            return None
        i = args[0]
        if i >= ADDR_ENTRIES:
            return node._fail(code, ERR_INVALID_ADDR_INDEX)
        return N.ok(code, node.addresses[i].encode())
    if code == N.NM_UPDATE_GROUP_ADDR:
        e = args[0]
        f = inc.frame
        if f.addr_fmt != L.AF_GROUP or inc.dom >= FLEX or e.kind != N.ADDR_GROUP:
            return N.fail(code)
        for a in node.addresses:
            if a.kind == N.ADDR_GROUP and a.domain == inc.dom and a.group == f.group:
                a.size = e.size               # only size and timers change [DX]
                a.rpt_timer = e.rpt_timer
                a.retry = e.retry
                a.rcv_timer = e.rcv_timer
                a.tx_timer = e.tx_timer
                node._save()
                return N.ok(code)
        return node._fail(code, ERR_INVALID_ADDR_INDEX)
    if code == N.NM_QUERY_DOMAIN:
        if not req:
            return None
        i = args[0]
        if i > 1:
            return node._fail(code, ERR_INVALID_DOMAIN)
        return N.ok(code, node.domains[i].encode())
    if code == N.NM_SET_NODE_MODE:
        mode, state = args
        if mode == N.NODE_OFFLINE or mode == N.NODE_ONLINE:
            # the table: online also leaves hard offline and bypass
            was = node.state
            node._go("set_online" if mode == N.NODE_ONLINE else "set_offline")
            if node.state != was:
                node._save()
            else:
                node._mirror()                     # soft offline: ET04.72 only
            return N.ok(code)
        if mode == N.NODE_APP_RESET or mode == N.NODE_PHYSICAL_RESET:
            node._pending_reset = (RESET_SOFTWARE, mode)
            return None                      # no response: the node resets [DX]
        if mode == N.NODE_CHANGE_STATE:
            if state not in STATES or not node._go(_CHANGE_STATE[state]):
                return N.fail(code)                # not a state, or refused by the table
            node._save()
            return N.ok(code)
        return N.fail(code)
    if code == N.NM_WINK:
        if args[0]:
            return N.fail(code)              # SEND_ID_INFO etc.: not implemented
        node.winks += 1
        if node.on_wink is not None:
            node.on_wink(node, now)
        return N.ok(code)
    if code == N.NM_SERVICE_PIN:
        return None                          # another node's service pin
    if code == N.ND_QUERY_STATUS:
        if not req:
            return None
        return N.ok(code, node.status().encode())
    if code == N.ND_CLEAR_STATUS:
        node.clear_status()
        return N.ok(code)
    if code == N.ND_PROXY:
        sub, addr, uid = args
        if addr is not None:
            return N.fail(code)              # proxy agent: not implemented here
        if not req:
            return None
        if sub == N.PROXY_QUERY_UNCONFIG:
            if node.configured:
                return None
            return N.ok(code, node.neuron_id + node.program_id)
        if sub == N.PROXY_QUERY_STATUS:
            return N.ok(code, node.status().encode())
        return N.fail(code)
    return N.fail(code)                      # query transceiver and the rest
