# ISO/IEC 14908-1 network management, the client side: the NM/ND request
# builders a data concentrator or a tool sends and the parser of the
# answers. Split from lontalk_nm.py (which a meter loads: the request
# parser, the codecs and the responses) so a meter does not carry them;
# lontalk_nm's module __getattr__ loads this module on first use, so
# lontalk_nm.query_id(...) works as before. Builders raise ValueError for
# out-of-range fields; the parser raises FrameError.
from .lontalk import FrameError
from .lontalk_nm import (NM_QUERY_ID, NM_RESPOND_TO_QUERY, NM_UPDATE_DOMAIN, NM_LEAVE_DOMAIN,
                         NM_UPDATE_KEY, NM_UPDATE_ADDR, NM_QUERY_ADDR, NM_UPDATE_GROUP_ADDR,
                         NM_QUERY_DOMAIN, NM_SET_NODE_MODE, NM_WINK, NODE_CHANGE_STATE,
                         ND_QUERY_STATUS, ND_CLEAR_STATUS, ND_QUERY_XCVR, ND_PROXY,
                         UID_LEN, PID_LEN, XCVR_LEN, Domain, AddressEntry, Status,
                         success, failure, _u, _raw)


def response_status(request_code, response_code):
    """True: success response to request_code; False: failure; None: not
    an answer to it. (Responses reuse application codes, so only the
    request gives them meaning.)"""
    if response_code == success(request_code):
        return True
    if response_code == failure(request_code):
        return False
    return None


# --- request builders (what a data concentrator or tool sends) -----------------

def query_id(selector, mode=None, offset=0, data=b""):
    """0x61 selector [mode offset(2, MSB) count data]: with mode, the node
    answers only when its memory at mode+offset equals data."""
    out = bytes((NM_QUERY_ID, _u("selector", selector, 255)))
    if mode is None:
        return out
    return out + bytes((_u("mode", mode, 255), _u("offset", offset, 0xFFFF) >> 8,
                        offset & 0xFF, _u("count", len(data), 255))) + bytes(data)


def respond_to_query(flag):
    return bytes((NM_RESPOND_TO_QUERY, _u("flag", flag, 1)))


def update_domain(index, domain):
    return bytes((NM_UPDATE_DOMAIN, _u("index", index, 255))) + domain.encode()


def leave_domain(index):
    return bytes((NM_LEAVE_DOMAIN, _u("index", index, 255)))


def update_key(index, delta):
    """The 6 bytes are added byte-wise (mod 256) to the domain key."""
    return bytes((NM_UPDATE_KEY, _u("index", index, 255))) + _raw("delta", delta, 6)


def update_addr(index, entry):
    return bytes((NM_UPDATE_ADDR, _u("index", index, 255))) + entry.encode()


def query_addr(index):
    return bytes((NM_QUERY_ADDR, _u("index", index, 255)))


def update_group_addr(entry):
    """Sent group-addressed; only size and timers are taken over."""
    return bytes((NM_UPDATE_GROUP_ADDR,)) + entry.encode()


def query_domain(index):
    return bytes((NM_QUERY_DOMAIN, _u("index", index, 255)))


def set_node_mode(mode, state=None):
    if (mode == NODE_CHANGE_STATE) != (state is not None):
        raise ValueError("state goes with mode 3 (change state) only")
    out = bytes((NM_SET_NODE_MODE, _u("mode", mode, 255)))
    return out if state is None else out + bytes((_u("state", state, 255),))


def wink(subcmd=None):
    return bytes((NM_WINK,)) if subcmd is None else bytes((NM_WINK, _u("subcmd", subcmd, 255)))


def nd_query_status():
    return bytes((ND_QUERY_STATUS,))


def nd_clear_status():
    return bytes((ND_CLEAR_STATUS,))


def nd_query_xcvr():
    return bytes((ND_QUERY_XCVR,))


def nd_proxy(subcmd, address=None, uid=None):
    """0x52 subcmd [send address(5) [Neuron ID(6) when address type is 2]]:
    without an address the receiver is the target; with one it is the
    agent and forwards subcmd as a request [DX HandleNDProxyCommand]."""
    out = bytes((ND_PROXY, _u("subcmd", subcmd, 255)))
    if address is None:
        if uid is not None:
            raise ValueError("uid needs an address")
        return out
    out += _raw("address", address, 5)
    if (address[0] == 2) != (uid is not None):
        raise ValueError("a Neuron ID goes with address type 2 only")
    return out if uid is None else out + _raw("uid", uid, UID_LEN)


# --- responses ------------------------------------------------------------------

def parse_response(request_code, apdu):
    """A response APDU to request_code -> (success, value). value: (uid,
    pid) for query ID; AddressEntry for query address; Domain for query
    domain; Status for ND query status; the 7 transceiver bytes for query
    transceiver; raw bytes for an ND proxy; None otherwise (and the
    payload must then be empty). Raises FrameError."""
    if not apdu:
        raise FrameError("nm_length")
    st = response_status(request_code, apdu[0])
    if st is None:
        raise FrameError("nm_code")
    body = bytes(apdu[1:])
    if not st:
        if body:
            raise FrameError("nm_length")
        return False, None
    if request_code == NM_QUERY_ID:
        if len(body) != UID_LEN + PID_LEN:
            raise FrameError("nm_length")
        return True, (body[:6], body[6:])
    if request_code == NM_QUERY_ADDR:
        return True, AddressEntry.decode(body)
    if request_code == NM_QUERY_DOMAIN:
        return True, Domain.decode(body)
    if request_code == ND_QUERY_STATUS:
        return True, Status.decode(body)
    if request_code == ND_QUERY_XCVR:
        if len(body) != XCVR_LEN:
            raise FrameError("nm_length")
        return True, body
    if request_code == ND_PROXY:
        return True, body
    if body:
        raise FrameError("nm_length")
    return True, None
