# LonTalk frame codec: the verified tshark example (lontalk-transport-
# security.md 2.1), pinned bytes, round trips of every address format,
# domain length, PDU format and layer-4 type, every FrameError reason and
# the encoder's range checks.
from osgp_meter import lontalk as L
from osgp_meter.lontalk import Frame, FrameError
from osgp_meter import crc


def h(text):
    return bytes.fromhex(text.replace(" ", ""))


def with_crc(body):
    return body + crc.lon_bytes(crc.crc16_lon(body))


EXAMPLE = h("01 19 01 FE 01 85 42 03 30 00 17 00 00 00 0D C7 7F 72 07 2D D8 3C FC 73 4C")
APDU = h("30 00 17 00 00 00 0D C7 7F 72 07 2D D8 3C FC")


def reason(data, crc_=True):
    try:
        L.decode(data, crc_)
    except FrameError as e:
        return e.reason
    return None


def raises_value_error(f):
    try:
        L.encode(f)
    except ValueError:
        return True
    return False


# --- the verified example ---------------------------------------------------

def test_reference_2_1_decodes_field_by_field():
    f = L.decode(EXAMPLE)
    assert (f.prio, f.alt, f.backlog) == (False, False, 1)
    assert f.version == L.V_LEGACY and f.pdu_fmt == L.PDU_SPDU
    assert f.addr_fmt == L.AF_SUBNET_NODE
    assert (f.src_subnet, f.src_node, f.dst_subnet, f.dst_node) == (1, 126, 1, 5)
    assert f.domain == h("42")
    assert (f.l4, f.auth, f.tid) == (L.S_REQUEST, False, 3)
    assert f.apdu == APDU
    assert f.group is None and f.member is None and f.neuron_id is None and f.mlist is None


def test_reference_2_1_encodes_byte_exactly():
    f = Frame(backlog=1, pdu_fmt=L.PDU_SPDU, addr_fmt=L.AF_SUBNET_NODE, src_subnet=1,
              src_node=126, dst_subnet=1, dst_node=5, domain=h("42"), l4=L.S_REQUEST,
              tid=3, apdu=APDU)
    assert L.encode(f) == EXAMPLE
    assert L.encode(f, crc=False) == EXAMPLE[:-2]
    assert L.decode(EXAMPLE[:-2], crc=False) == f


# --- pinned bytes for other formats (hand-assembled from the layout) --------

def test_pinned_service_pin_broadcast():
    # unacknowledged domain-wide broadcast, domain length 0, APDU format,
    # source 0/0: 00 | 30 (v0 APDU fmt0 dom0) | 00 80 00 | 7F uid pid
    apdu = h("7F 00 01 02 03 04 05 4F 53 47 50 00 00 00 01")
    f = Frame(pdu_fmt=L.PDU_APDU, addr_fmt=L.AF_BROADCAST, src_subnet=0, src_node=0,
              dst_subnet=0, apdu=apdu)
    body = h("00 30 00 80 00") + apdu
    assert L.encode(f) == with_crc(body)
    assert L.decode(with_crc(body)) == f


def test_pinned_group_ack_2b():
    # ACK from 1/5 (member 3 of group 9) to 1/126: the source selector bit is 0
    f = Frame(pdu_fmt=L.PDU_TPDU, addr_fmt=L.AF_GROUP_ACK, src_subnet=1, src_node=5,
              dst_subnet=1, dst_node=126, group=9, member=3, domain=h("42"),
              l4=L.T_ACK, tid=7)
    body = h("00 09 01 05 01 FE 09 03 42 27")
    assert L.encode(f) == with_crc(body)
    assert L.decode(with_crc(body)) == f


def test_pinned_neuron_id_request_with_6_byte_domain():
    f = Frame(prio=True, alt=True, backlog=1, pdu_fmt=L.PDU_SPDU, addr_fmt=L.AF_NEURON_ID,
              src_subnet=1, src_node=126, dst_subnet=0, neuron_id=h("00 01 02 03 04 05"),
              domain=h("A1 A2 A3 A4 A5 A6"), l4=L.S_REQUEST, auth=True, tid=15,
              apdu=h("61 00"))
    body = h("C1 1F 01 FE 00 00 01 02 03 04 05 A1 A2 A3 A4 A5 A6 8F 61 00")
    assert L.encode(f) == with_crc(body)
    assert L.decode(with_crc(body)) == f


def test_pinned_group_challenge_and_reminder():
    # challenge for a group message: AuthPDU fmt 1, the group byte after the
    # 8-byte random value; sent 2b to the originator
    f = Frame(pdu_fmt=L.PDU_AUTH, addr_fmt=L.AF_GROUP_ACK, src_subnet=2, src_node=3,
              dst_subnet=1, dst_node=126, group=9, member=0, domain=h("42"),
              l4=L.A_CHALLENGE, tid=4, auth_fmt=1, auth_group=9, value=h("0102030405060708"))
    body = h("00 29 02 03 01 FE 09 00 42 44 01 02 03 04 05 06 07 08 09")
    assert L.encode(f) == with_crc(body)
    assert L.decode(with_crc(body)) == f
    # REMINDER (SPDU) to group 9 with a 1-byte M_List
    f = Frame(pdu_fmt=L.PDU_SPDU, addr_fmt=L.AF_GROUP, src_subnet=1, src_node=126,
              group=9, domain=h("42"), l4=L.S_REMINDER, tid=4, mlist=h("05"))
    body = h("00 15 01 FE 09 42 44 01 05")
    assert L.encode(f) == with_crc(body)
    assert L.decode(with_crc(body)) == f


def test_pinned_enhanced_mode_12_bit_transaction():
    # version 2: header nibble = tid >> 8, next byte = tid & 0xFF
    f = Frame(version=L.V_ENHANCED, backlog=1, pdu_fmt=L.PDU_TPDU, addr_fmt=L.AF_SUBNET_NODE,
              src_subnet=1, src_node=126, dst_subnet=1, dst_node=5, l4=L.T_ACKD, tid=0xABC,
              apdu=h("01"))
    body = h("01 88 01 FE 01 85 0A BC 01")
    assert L.encode(f) == with_crc(body)
    assert L.decode(with_crc(body)) == f


# --- round trips over the whole matrix ---------------------------------------

def addressed(af, **kw):
    d = dict(src_subnet=3, src_node=17, domain=h("42"))
    if af == L.AF_BROADCAST:
        d.update(dst_subnet=0)
    elif af == L.AF_GROUP:
        d.update(group=200)
    elif af == L.AF_SUBNET_NODE:
        d.update(dst_subnet=4, dst_node=127)
    elif af == L.AF_GROUP_ACK:
        d.update(dst_subnet=4, dst_node=1, group=200, member=63)
    else:
        d.update(dst_subnet=0, neuron_id=h("01 23 45 67 89 AB"))
    d.update(kw)
    return Frame(addr_fmt=af, **d)


VALID = (
    # (pdu_fmt, l4, address formats it may use)
    (L.PDU_APDU, None, (0, 1, 2, 3)),
    (L.PDU_TPDU, L.T_ACKD, (0, 1, 2, 3)),
    (L.PDU_TPDU, L.T_UNACKD_RPT, (0, 1, 2, 3)),
    (L.PDU_TPDU, L.T_ACK, (2, 4)),
    (L.PDU_TPDU, L.T_REMINDER, (1,)),
    (L.PDU_TPDU, L.T_REM_MSG, (1,)),
    (L.PDU_SPDU, L.S_REQUEST, (0, 1, 2, 3)),
    (L.PDU_SPDU, L.S_RESPONSE, (2, 4)),
    (L.PDU_SPDU, L.S_REMINDER, (1,)),
    (L.PDU_SPDU, L.S_REM_MSG, (1,)),
    (L.PDU_AUTH, 0, (2, 3, 4)),
    (L.PDU_AUTH, 1, (2, 3, 4)),
    (L.PDU_AUTH, 2, (2, 3, 4)),
    (L.PDU_AUTH, 3, (2, 3, 4)),
)


def sample(pf, l4, af, version=L.V_LEGACY, tid=9):
    kw = dict(pdu_fmt=pf, version=version)
    if pf != L.PDU_APDU:
        kw.update(l4=l4, tid=tid)
    if pf == L.PDU_AUTH:
        kw.update(auth_fmt=l4, value=h("1122334455667788"))   # fmt 0..3 in turn
        if l4 == 1:
            kw.update(auth_group=77)
    elif pf != L.PDU_APDU and l4 in (4, 5):
        kw.update(mlist=h("FF 0F") if l4 == 5 else h("01"))
    carries = (pf == L.PDU_APDU or (pf == L.PDU_TPDU and l4 in (0, 1, 5))
               or (pf == L.PDU_SPDU and l4 in (0, 2, 5)))
    if carries:
        kw.update(apdu=h("80 05 AA") if af == L.AF_GROUP else h("61"))
    return addressed(af, **kw)


def test_round_trip_every_pdu_type_and_address_format():
    n = 0
    for pf, l4, afs in VALID:
        for af in afs:
            for version, tid in ((L.V_LEGACY, 9), (L.V_ENHANCED, 0xFED)):
                f = sample(pf, l4, af, version, tid)
                data = L.encode(f)
                assert L.decode(data) == f, (pf, l4, af, version)
                assert L.decode(data[:-2], crc=False) == f
                n += 1
    assert n == 2 * sum(len(v[2]) for v in VALID)


def test_round_trip_every_domain_length():
    for dom in (b"", h("01"), h("01 02 03"), h("01 02 03 04 05 06")):
        f = sample(L.PDU_SPDU, L.S_REQUEST, L.AF_SUBNET_NODE)
        f.domain = dom
        data = L.encode(f)
        assert data[1] & 3 == (0, 1, 3, 6).index(len(dom))
        assert L.decode(data) == f


def test_l2_header_bits_round_trip():
    for prio in (False, True):
        for alt in (False, True):
            for bl in (0, 1, 15, 63):
                f = sample(L.PDU_APDU, None, L.AF_BROADCAST)
                f.prio, f.alt, f.backlog = prio, alt, bl
                data = L.encode(f)
                assert data[0] == (prio << 7) | (alt << 6) | bl
                assert L.decode(data) == f


def test_source_node_zero_and_subnet_zero_are_legal():
    # an unconfigured node answers from 0/0 [DX lcs_network.c NWSend]
    f = sample(L.PDU_SPDU, L.S_RESPONSE, L.AF_SUBNET_NODE)
    f.src_subnet, f.src_node = 0, 0
    assert L.decode(L.encode(f)) == f


# --- every FrameError reason -------------------------------------------------

def test_reason_type_and_short_and_too_long():
    assert reason(None) == "type"
    assert reason("text") == "type"
    assert reason([1, 2, 3]) == "type"
    assert reason(b"") == "short"
    assert reason(EXAMPLE[:6]) == "short"
    big = bytes(L.MAX_FRAME + 1)
    assert reason(big) == "too_long"
    assert reason(bytearray(EXAMPLE)) is None
    assert reason(memoryview(EXAMPLE)) is None


def test_reason_crc():
    bad = bytearray(EXAMPLE)
    bad[10] ^= 1
    assert reason(bytes(bad)) == "crc"
    assert reason(EXAMPLE[:-1] + bytes((EXAMPLE[-1] ^ 0xFF,))) == "crc"


def test_reason_short_inside_the_header():
    # CRC valid, but the address/domain/L4 header runs past the end
    for body in (h("01 1B 01 FE 01 85 42 43"),          # domain says 6 bytes
                 h("01 1C 01 FE 01 02 03"),             # Neuron ID cut short
                 h("01 15 01 FE 09 42 44 03 05"),       # M_List shorter than its length
                 h("01 09 01 FE 01 85 42"),             # no TPDU header
                 h("01 29 01 FE 01 85 42 44 01 02 03"), # AuthPDU value cut short
                 h("01 89 01 FE 01 85 42 04")):         # enhanced: no tid byte
        assert reason(with_crc(body)) == "short", body


def test_reason_version():
    for v in (1, 3):
        body = bytearray(EXAMPLE[:-2])
        body[1] = (body[1] & 0x3F) | (v << 6)
        assert reason(with_crc(bytes(body))) == "version"


def test_reason_selector():
    # broadcast/group/Neuron ID need bit 7 of the source node; 2a/2b need
    # bit 7 of the destination node
    assert reason(with_crc(h("00 30 00 00 00 7F") + bytes(14))) == "selector"
    assert reason(with_crc(h("01 19 01 FE 01 05 42 03") + APDU)) == "selector"
    assert reason(with_crc(h("00 09 01 05 01 7E 09 03 42 27"))) == "selector"


def test_reason_member():
    assert reason(with_crc(h("00 09 01 05 01 FE 09 40 42 27"))) == "member"


def test_reason_l4_type():
    for t in (3, 6, 7):
        assert reason(with_crc(h("01 09 01 FE 01 85 42") + bytes((t << 4,)) + h("01"))) == "l4_type"
    for t in (1, 3, 6, 7):
        assert reason(with_crc(h("01 19 01 FE 01 85 42") + bytes((t << 4,)) + h("01"))) == "l4_type"


def test_reason_mlist():
    assert reason(with_crc(h("00 15 01 FE 09 42 44 09") + bytes(9))) == "mlist"
    assert reason(with_crc(h("00 15 01 FE 09 42 44 00"))) == "mlist"     # empty REMINDER
    assert reason(with_crc(h("00 15 01 FE 09 42 54 00 61"))) is None     # empty REM/MSG list is fine


def test_reason_trailing():
    assert reason(with_crc(h("00 09 01 05 01 FE 09 03 42 27 00"))) == "trailing"      # ACK + byte
    assert reason(with_crc(h("00 15 01 FE 09 42 44 01 05 00"))) == "trailing"        # REMINDER + byte
    assert reason(with_crc(h("00 29 01 FE 01 85 42 84") + bytes(9))) == "trailing"  # AuthPDU fmt 2 + byte


def test_reason_empty_apdu_and_nv_header():
    assert reason(with_crc(h("01 19 01 FE 01 85 42 03"))) == "empty_apdu"
    assert reason(with_crc(h("00 30 00 80 00"))) == "empty_apdu"
    assert reason(with_crc(h("00 15 01 FE 09 42 54 00"))) == "empty_apdu"
    assert reason(with_crc(h("01 19 01 FE 01 85 42 03 80"))) == "nv_header"
    assert reason(with_crc(h("01 19 01 FE 01 85 42 03 80 01"))) is None


def test_reason_combination():
    bodies = (
        h("00 01 01 FE 00 42 20"),            # ACK broadcast
        h("00 1D 01 FE 00 01 02 03 04 05 06 42 20 00"),   # RESPONSE to a Neuron ID
        h("00 09 01 FE 01 85 42 A0"),         # authenticated ACK
        h("00 19 01 FE 01 85 42 A0 00"),      # authenticated RESPONSE
        h("00 09 01 05 01 FE 09 03 42 07 01"),  # ACKD in 2b
        h("00 39 01 05 01 FE 09 03 42 01"),   # APDU in 2b
        h("00 09 01 FE 01 85 42 44 01 05"),   # REMINDER unicast
        h("00 11 01 FE 00 42 54 00 61"),      # REM/MSG broadcast
        h("00 25 01 FE 09 42 84") + bytes(8), # AuthPDU group-addressed
        h("00 21 01 FE 00 42 84") + bytes(8), # AuthPDU broadcast
    )
    for body in bodies:
        assert reason(with_crc(body)) == "combination", body


def test_reasons_are_listed():
    for r in ("type", "short", "too_long", "crc", "version", "selector", "member",
              "l4_type", "mlist", "trailing", "empty_apdu", "nv_header", "combination"):
        assert r in L.REASONS


def test_frame_error_carries_its_reason():
    try:
        L.decode(b"\x00")
    except FrameError as e:
        assert e.reason == "short"
        assert str(e) == "short"


# --- encoder range checks ----------------------------------------------------

def test_encode_range_checks():
    good = sample(L.PDU_SPDU, L.S_REQUEST, L.AF_SUBNET_NODE)
    assert not raises_value_error(good)
    for name, value in (("backlog", 64), ("backlog", -1), ("src_node", 128), ("src_subnet", 256),
                        ("dst_node", 128), ("tid", 16), ("tid", None), ("prio", 2),
                        ("version", 1), ("version", 3), ("domain", h("01 02")), ("l4", 1),
                        ("l4", 8), ("apdu", b""), ("apdu", None), ("group", 5),
                        ("mlist", h("00")), ("addr_fmt", 5), ("pdu_fmt", 4), ("src_node", True)):
        f = sample(L.PDU_SPDU, L.S_REQUEST, L.AF_SUBNET_NODE)
        setattr(f, name, value)
        assert raises_value_error(f), (name, value)


def test_encode_refuses_what_decode_refuses():
    f = sample(L.PDU_TPDU, L.T_ACK, L.AF_SUBNET_NODE)
    f.auth = True
    assert raises_value_error(f)
    f = sample(L.PDU_TPDU, L.T_ACK, L.AF_SUBNET_NODE)
    f.addr_fmt, f.dst_node, f.dst_subnet = L.AF_GROUP, None, None
    f.group = 3
    assert raises_value_error(f)
    f = sample(L.PDU_AUTH, 1, L.AF_SUBNET_NODE)
    f.auth_group = None
    assert raises_value_error(f)
    f = sample(L.PDU_APDU, None, L.AF_GROUP_ACK)   # not a valid combination
    assert raises_value_error(f)
    f = sample(L.PDU_APDU, None, L.AF_BROADCAST)
    f.apdu = bytes(L.MAX_FRAME)
    assert raises_value_error(f)
    f = sample(L.PDU_APDU, None, L.AF_GROUP)
    f.member = 1
    assert raises_value_error(f)


def test_largest_frame():
    f = sample(L.PDU_APDU, None, L.AF_BROADCAST)
    overhead = len(L.encode(f)) - len(f.apdu)
    f.apdu = bytes((0x01,)) * (L.MAX_FRAME - overhead)
    data = L.encode(f)
    assert len(data) == L.MAX_FRAME
    assert L.decode(data) == f
