# LonTalk APDUs: message-code classes, NV headers, NM/ND response codes,
# the NM/ND payload codecs (layouts from izot/lon-stack-dx lon_types.h and
# lcs_netmgmt.c) and the LTEP proxy codec (0x4D/0x4C).
from osgp_meter import lontalk_nm as N
from osgp_meter import lontalk_proxy as P
from osgp_meter.lontalk import FrameError


def h(text):
    return bytes.fromhex(text.replace(" ", ""))


UID = h("00 01 02 03 04 05")
PID = h("4F 53 47 50 00 00 00 01")


def reason(fn, *args):
    try:
        fn(*args)
    except FrameError as e:
        return e.reason
    return None


def value_error(fn, *args):
    try:
        fn(*args)
    except ValueError:
        return True
    return False


# --- classes, NV headers, response codes ----------------------------------------

def test_message_code_classes():
    for code, cls in ((0x00, N.CLASS_APP), (0x30, N.CLASS_APP), (0x3F, N.CLASS_APP),
                      (0x40, N.CLASS_FOREIGN), (0x4D, N.CLASS_FOREIGN), (0x4F, N.CLASS_FOREIGN),
                      (0x50, N.CLASS_ND), (0x5F, N.CLASS_ND), (0x60, N.CLASS_NM),
                      (0x7F, N.CLASS_NM), (0x80, N.CLASS_NV), (0xFF, N.CLASS_NV)):
        assert N.apdu_class(code) == cls, code


def test_nv_header():
    assert N.nv_header(0, 0x3FFF) == h("BF FF")
    assert N.nv_header(1, 0x0123) == h("C1 23")
    assert N.nv_split(h("C1 23 AA BB")) == (1, 0x0123, h("AA BB"))
    assert value_error(N.nv_header, 2, 0)
    assert value_error(N.nv_header, 0, 0x4000)
    assert reason(N.nv_split, h("80")) == "nm_length"


def test_response_codes():
    assert (N.nm_success(0x61), N.nm_failure(0x61)) == (0x21, 0x01)
    assert (N.nm_success(0x6A), N.nm_failure(0x6A)) == (0x2A, 0x0A)
    assert (N.nm_success(0x7F), N.nm_failure(0x7F)) == (0x3F, 0x1F)
    assert (N.nd_success(0x51), N.nd_failure(0x51)) == (0x31, 0x11)
    assert (N.nd_success(0x54), N.nd_failure(0x54)) == (0x34, 0x14)
    assert N.success(0x52) == 0x32 and N.failure(0x63) == 0x03
    assert N.response_status(0x61, 0x21) is True
    assert N.response_status(0x61, 0x01) is False
    assert N.response_status(0x61, 0x22) is None
    assert N.ok(N.NM_RESPOND_TO_QUERY) == h("22")
    assert N.fail(N.ND_CLEAR_STATUS) == h("13")


# --- request codecs, pinned bytes and round trips ---------------------------------

DOMAIN = N.Domain(h("42 00 00 00 00 00"), subnet=1, node=5, id_len=1, key=h("01 02 03 04 05 06"))
DOMAIN_BYTES = h("42 00 00 00 00 00 01 85 01 01 02 03 04 05 06")
GROUP = N.AddressEntry(N.ADDR_GROUP, domain=1, group=9, size=5, member=3, rpt_timer=7, retry=3,
                       rcv_timer=2, tx_timer=10)
GROUP_BYTES = h("85 83 73 2A 09")


def test_domain_entry():
    assert DOMAIN.encode() == DOMAIN_BYTES
    assert N.Domain.decode(DOMAIN_BYTES) == DOMAIN
    left = N.Domain.decode(bytes((0xFF,)) * 15)      # a left domain reads back 0xFF-filled
    assert left.invalid and left.id_len == 7 and left.nonclone is True
    assert left.encode() == bytes((0xFF,)) * 15
    assert reason(N.Domain.decode, bytes(14)) == "nm_length"
    assert value_error(N.Domain(node=128).encode)


def test_address_entries():
    assert GROUP.encode() == GROUP_BYTES
    assert N.AddressEntry.decode(GROUP_BYTES) == GROUP
    sn = N.AddressEntry(N.ADDR_SUBNET_NODE, domain=0, node=126, subnet=1, rpt_timer=0, retry=3,
                        tx_timer=7)
    assert sn.encode() == h("01 7E 03 07 01")
    assert N.AddressEntry.decode(sn.encode()) == sn
    bc = N.AddressEntry(N.ADDR_BROADCAST, domain=1, backlog=15, subnet=0, retry=1, tx_timer=5)
    assert bc.encode() == h("03 8F 01 05 00")
    assert N.AddressEntry.decode(bc.encode()) == bc
    ub = N.AddressEntry(N.ADDR_UNBOUND, turnaround=1, subnet=0)
    assert ub.encode() == h("00 01 00 00 00")
    assert N.AddressEntry.decode(ub.encode()) == ub
    for bad in (h("02 00 00 00 00"), h("01 00 00 17 00"), h("03 40 00 00 00"), h("00 02 00 00 00")):
        assert reason(N.AddressEntry.decode, bad) == "nm_value", bad
    assert reason(N.AddressEntry.decode, bytes(4)) == "nm_length"
    assert value_error(N.AddressEntry(N.ADDR_GROUP, group=1, size=1, member=1, rcv_timer=16).encode)


def test_status():
    st = N.Status(1, 2, 3, 0x0405, 0xFFFF, reset_cause=0x14, node_state=4, version=20,
                  error_log=0x81, arch=112)
    b = st.encode()
    assert b == h("00 01 00 02 00 03 04 05 FF FF 14 04 14 81 70")
    assert N.Status.decode(b) == st
    assert value_error(N.Status(tx_errors=0x10000).encode)


def test_requests_pinned_and_parsed():
    cases = (
        (N.query_id(N.SEL_UNCONFIGURED), h("61 00"), (0, None, 0, b"")),
        (N.query_id(N.SEL_SELECTED, N.MODE_READ_ONLY, 0x0102, h("AA")), h("61 01 01 01 02 01 AA"),
         (1, 1, 0x0102, h("AA"))),
        (N.respond_to_query(1), h("62 01"), (1,)),
        (N.update_domain(0, DOMAIN), h("63 00") + DOMAIN_BYTES, (0, DOMAIN)),
        (N.leave_domain(1), h("64 01"), (1,)),
        (N.update_key(0, h("01 01 01 01 01 01")), h("65 00 01 01 01 01 01 01"), (0, h("010101010101"))),
        (N.update_addr(3, GROUP), h("66 03") + GROUP_BYTES, (3, GROUP)),
        (N.query_addr(3), h("67 03"), (3,)),
        (N.update_group_addr(GROUP), h("69") + GROUP_BYTES, (GROUP,)),
        (N.query_domain(0), h("6A 00"), (0,)),
        (N.set_node_mode(N.NODE_ONLINE), h("6C 01"), (1, None)),
        (N.set_node_mode(N.NODE_CHANGE_STATE, N.STATE_CONFIG_ONLINE), h("6C 03 04"), (3, 4)),
        (N.wink(), h("70"), (None,)),
        (N.wink(0), h("70 00"), (0,)),
        (N.service_pin(UID, PID), h("7F") + UID + PID, (UID, PID)),
        (N.nd_query_status(), h("51"), ()),
        (N.nd_clear_status(), h("53"), ()),
        (N.nd_query_xcvr(), h("54"), ()),
        (N.nd_proxy(N.PROXY_QUERY_STATUS), h("52 01"), (1, None, None)),
        (N.nd_proxy(1, h("01 85 03 07 01")), h("52 01 01 85 03 07 01"), (1, h("0185030701"), None)),
        (N.nd_proxy(0, h("02 00 03 07 00"), UID), h("52 00 02 00 03 07 00") + UID,
         (0, h("0200030700"), UID)),
    )
    for built, pinned, args in cases:
        assert built == pinned, pinned
        assert N.parse_request(built) == (built[0], args), pinned


def test_request_errors():
    for apdu, r in ((b"", "nm_length"), (h("61"), "nm_length"), (h("61 00 01 00 00"), "nm_length"),
                    (h("61 00 01 00 00 02 AA"), "nm_length"), (h("61 03"), "nm_value"),
                    (h("61 00 03 00 00 00"), "nm_value"), (h("62 02"), "nm_value"),
                    (h("62"), "nm_length"), (h("63 00") + bytes(14), "nm_length"),
                    (h("64"), "nm_length"), (h("64 00 00"), "nm_length"),
                    (h("65 00") + bytes(5), "nm_length"), (h("66 00 02 00 00 00 00"), "nm_value"),
                    (h("66 00") + bytes(4), "nm_length"), (h("69") + bytes(6), "nm_length"),
                    (h("6C"), "nm_length"), (h("6C 03"), "nm_length"), (h("6C 01 00"), "nm_length"),
                    (h("70 00 00"), "nm_length"), (h("7F") + bytes(13), "nm_length"),
                    (h("51 00"), "nm_length"), (h("52"), "nm_length"), (h("52 00 01 00 00 00"), "nm_length"),
                    (h("52 00 02 00 00 00 00"), "nm_length"), (h("52 00 01 00 00 00 00 00"), "nm_length"),
                    (h("6D 00 00 00 01"), "nm_code"), (h("30 00 17"), "nm_code")):
        assert reason(N.parse_request, apdu) == r, apdu


def test_builder_range_checks():
    assert value_error(N.query_id, 256)
    assert value_error(N.update_key, 0, bytes(5))
    assert value_error(N.set_node_mode, 3)
    assert value_error(N.set_node_mode, 1, 4)
    assert value_error(N.service_pin, UID, PID[:7])
    assert value_error(N.nd_proxy, 0, h("02 00 03 07 00"))      # type 2 needs the Neuron ID
    assert value_error(N.nd_proxy, 0, None, UID)


def test_responses():
    st = N.Status(node_state=N.STATE_CONFIG_ONLINE, version=20, arch=112)
    assert N.id_response(UID, PID) == h("21") + UID + PID
    assert N.parse_response(N.NM_QUERY_ID, N.id_response(UID, PID)) == (True, (UID, PID))
    assert N.parse_response(N.NM_QUERY_ID, N.fail(N.NM_QUERY_ID)) == (False, None)
    assert N.parse_response(N.NM_QUERY_ADDR, N.ok(N.NM_QUERY_ADDR, GROUP_BYTES)) == (True, GROUP)
    assert N.parse_response(N.NM_QUERY_DOMAIN, h("2A") + DOMAIN_BYTES) == (True, DOMAIN)
    assert N.parse_response(N.ND_QUERY_STATUS, N.ok(N.ND_QUERY_STATUS, st.encode())) == (True, st)
    assert N.parse_response(N.ND_QUERY_XCVR, h("34") + bytes(7)) == (True, bytes(7))
    assert N.parse_response(N.ND_PROXY, h("32") + UID + PID) == (True, UID + PID)
    assert N.parse_response(N.NM_LEAVE_DOMAIN, h("24")) == (True, None)
    for req, apdu, r in ((N.NM_LEAVE_DOMAIN, h("24 00"), "nm_length"), (N.NM_QUERY_ID, h("21") + UID, "nm_length"),
                         (N.NM_QUERY_ID, h("01 00"), "nm_length"), (N.NM_QUERY_ID, h("22"), "nm_code"),
                         (N.ND_QUERY_XCVR, h("34") + bytes(6), "nm_length"), (N.NM_QUERY_ID, b"", "nm_length")):
        assert reason(N.parse_response, req, apdu) == r, apdu


# --- LTEP proxy ----------------------------------------------------------------

def test_proxy_pinned_two_repeaters_to_a_subnet_node_target():
    p = P.Proxy(repeaters=[(1, 10, 0), (1, 20, 1)], timer=7, retry=3, service=P.SVC_REQUEST,
                addr_type=P.PX_SUBNET_NODE, agent_timer=8, agent_retry=2, target=(1, 5, 0),
                apdu=h("30 00 17"))
    data = P.encode(p)
    # 4D | count 2 | 01 (10<<1|0) 01 (20<<1|1) | 73 | SICB 3<<4|1 | 82 | 01 0A | 30 00 17
    assert data == h("4D 20 01 14 01 29 73 31 82 01 0A 30 00 17")
    assert P.decode(data) == p


def test_proxy_uniform_and_agent_forms():
    p = P.Proxy(repeaters=[(None, 10, 0), (None, 11, 0), (None, 12, 1)], uniform_src=True,
                timer=10, retry=1, all_agents=True, long_timer=True, addr_type=P.PX_SUBNET_NODE_DEST,
                service=P.SVC_UNACKD, target=(5, 1), apdu=h("61 00"))
    data = P.encode(p)
    assert data[1] == (3 << 4) | 8 | 4 | 2 and data[2:5] == h("14 16 19")
    assert P.decode(data) == p
    assert P.hop_timeout_ms(p) == 16384
    p.long_timer = False
    assert P.hop_timeout_ms(p) == 512
    agent = P.Proxy(addr_type=P.PX_GROUP_COMPACT, service=P.SVC_UNACKD_RPT, target=(9,), apdu=h("01"))
    assert P.encode(agent) == h("4D 00 14 00 09 01")
    assert P.decode(P.encode(agent)) == agent


def test_proxy_every_target_address_type():
    targets = {P.PX_GROUP: (9, 4), P.PX_SUBNET_NODE: (1, 5, 1), P.PX_NEURON_ID: (0, UID),
               P.PX_BROADCAST: (0, 15), P.PX_GROUP_COMPACT: (9,), P.PX_SUBNET_NODE_SRC: (5, 0),
               P.PX_NEURON_ID_COMPACT: (UID,), P.PX_SUBNET_NODE_DEST: (7, 1)}
    for t in range(8):
        for mode in (P.MODE_NORMAL, P.MODE_ZERO_SYNC, P.MODE_ATTENUATE):
            p = P.Proxy(repeaters=[(3, 4, 0)], timer=1, retry=2, mode=mode, addr_type=t,
                        target=targets[t], apdu=h("61 00"))
            assert P.decode(P.encode(p)) == p, (t, mode)


def test_proxy_alternate_keys():
    for kt, key in ((P.KEY_STD, bytes(range(6))), (P.KEY_OMA, bytes(range(12)))):
        p = P.Proxy(mode=P.MODE_ALT_KEY, key_type=kt, key=key, addr_type=P.PX_NEURON_ID_COMPACT,
                    target=(UID,), apdu=h("30 00 01"))
        data = P.encode(p)
        assert data[2] >> 6 == P.MODE_ALT_KEY and data[4] == kt << 6 and data[5:5 + len(key)] == key
        assert P.decode(data) == p


def test_proxy_errors():
    for apdu, r in ((b"", "proxy_code"), (h("30"), "proxy_code"), (h("4D"), "proxy_short"),
                    (h("4D 00 31"), "proxy_short"), (h("4D 00 31 00 01 05"), "proxy_short"),
                    (h("4D 20 01 14 01"), "proxy_short"), (h("4D 00 A1 00"), "proxy_short"),
                    (h("4D 00 A1 00 00 00 00 00 00 00 00"), "proxy_short"),
                    (h("4D 00 A1 00 80 00 00 00 00 00 00 01 05 61"), "proxy_value"),
                    (h("4D 00 A1 00 41 00 00 00 00 00 00 01 05 61"), "proxy_value"),
                    (h("4D 00 33 00 00 40 61"), "proxy_value")):
        assert reason(P.decode, apdu) == r, apdu
    assert reason(P.decode, None) == "type"
    for bad in (P.Proxy(repeaters=[(1, 2, 0)] * 16, timer=0, retry=0, target=(1, 1, 0), apdu=h("01")),
                P.Proxy(repeaters=[(1, 2, 0)], target=(1, 1, 0), apdu=h("01")),        # no tx control
                P.Proxy(timer=1, retry=1, target=(1, 1, 0), apdu=h("01")),              # tx control alone
                P.Proxy(repeaters=[(1, 2, 0)], uniform_dest=True, timer=0, retry=0, target=(1, 1, 0),
                        apdu=h("01")),                                                 # subnet when uniform
                P.Proxy(target=(1, 1), apdu=h("01")),                                   # short target
                P.Proxy(target=(1, 1, 0), apdu=b""),
                P.Proxy(mode=P.MODE_ALT_KEY, key_type=0, key=bytes(12), target=(1, 1, 0), apdu=h("01")),
                P.Proxy(key_type=0, key=bytes(6), target=(1, 1, 0), apdu=h("01"))):
        assert value_error(P.encode, bad), bad


def test_proxy_results():
    assert P.success() == h("4D")
    assert P.failure(3) == h("4C 03")
    assert P.parse_result(h("4D")) == (True, None)
    assert P.parse_result(h("4C 03")) == (False, 3)
    for bad in (h("4C"), h("4D 00"), h("4C 10"), h("30")):
        assert reason(P.parse_result, bad) == "proxy_code"
