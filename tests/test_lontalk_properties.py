"""Property-based tests of the power-line codecs (CPython, hypothesis):
decode never raises anything but FrameError for any input, every valid
frame round-trips, every frame that decodes re-encodes to the same bytes,
and the MIP parser never raises and resynchronises after garbage."""
from hypothesis import HealthCheck, given, settings, strategies as st

from osgp_meter import cnip, crc, mip
from osgp_meter import lontalk as L
from osgp_meter import lontalk_nm as N
from osgp_meter import lontalk_proxy as P
from osgp_meter.lontalk import FrameError

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def with_crc(body):
    return body + crc.lon_bytes(crc.crc16_lon(body))


def decode_reason(data, **kw):
    try:
        L.decode(data, **kw)
    except FrameError as e:
        return e.reason
    return None


# --- generated valid frames ------------------------------------------------------

@st.composite
def frames(draw):
    pf = draw(st.sampled_from([L.PDU_TPDU, L.PDU_SPDU, L.PDU_AUTH, L.PDU_APDU]))
    version = draw(st.sampled_from([L.V_LEGACY, L.V_ENHANCED]))
    l4 = None
    if pf == L.PDU_TPDU:
        l4 = draw(st.sampled_from([0, 1, 2, 4, 5]))
    elif pf == L.PDU_SPDU:
        l4 = draw(st.sampled_from([0, 2, 4, 5]))
    elif pf == L.PDU_AUTH:
        l4 = draw(st.integers(0, 3))
    ack_like = (pf == L.PDU_TPDU and l4 == 2) or (pf == L.PDU_SPDU and l4 == 2)
    listed = pf in (L.PDU_TPDU, L.PDU_SPDU) and l4 in (4, 5)
    if ack_like:
        formats = [L.AF_SUBNET_NODE, L.AF_GROUP_ACK]
    elif listed:
        formats = [L.AF_GROUP]
    elif pf == L.PDU_AUTH:
        formats = [L.AF_SUBNET_NODE, L.AF_NEURON_ID, L.AF_GROUP_ACK]
    else:
        formats = [L.AF_BROADCAST, L.AF_GROUP, L.AF_SUBNET_NODE, L.AF_NEURON_ID]
    af = draw(st.sampled_from(formats))
    byte, node = st.integers(0, 255), st.integers(0, 127)
    f = L.Frame(prio=draw(st.booleans()), alt=draw(st.booleans()), backlog=draw(st.integers(0, 63)),
                version=version, pdu_fmt=pf, addr_fmt=af, src_subnet=draw(byte), src_node=draw(node),
                domain=draw(st.sampled_from([0, 1, 3, 6]).flatmap(lambda n: st.binary(min_size=n, max_size=n))))
    if af in (L.AF_BROADCAST, L.AF_SUBNET_NODE, L.AF_GROUP_ACK, L.AF_NEURON_ID):
        f.dst_subnet = draw(byte)
    if af in (L.AF_SUBNET_NODE, L.AF_GROUP_ACK):
        f.dst_node = draw(node)
    if af in (L.AF_GROUP, L.AF_GROUP_ACK):
        f.group = draw(byte)
    if af == L.AF_GROUP_ACK:
        f.member = draw(st.integers(0, 63))
    if af == L.AF_NEURON_ID:
        f.neuron_id = draw(st.binary(min_size=6, max_size=6))
    if pf != L.PDU_APDU:
        f.l4 = l4
        f.tid = draw(st.integers(0, 15 if version == L.V_LEGACY else 4095))
    if pf in (L.PDU_TPDU, L.PDU_SPDU) and not ack_like:
        f.auth = draw(st.booleans())
    if pf == L.PDU_AUTH:
        f.auth_fmt = draw(st.integers(0, 3))
        f.value = draw(st.binary(min_size=8, max_size=8))
        if f.auth_fmt == 1:
            f.auth_group = draw(byte)
    if listed:
        f.mlist = draw(st.binary(min_size=1 if l4 == 4 else 0, max_size=8))
    carries = pf == L.PDU_APDU or (pf == L.PDU_TPDU and l4 in (0, 1, 5)) or (pf == L.PDU_SPDU and l4 in (0, 2, 5))
    if carries:
        apdu = draw(st.binary(min_size=1, max_size=200))
        if apdu[0] & 0x80 and len(apdu) < 2:
            apdu += b"\x00"
        f.apdu = apdu
    return f


def fits(f):
    try:
        L.encode(f)
        return True
    except ValueError as e:
        assert str(e) == "too_long", e       # the generator makes nothing else invalid
        return False


@SETTINGS
@given(f=frames())
def test_valid_frames_round_trip(f):
    if not fits(f):
        return
    data = L.encode(f)
    assert len(data) <= L.MAX_FRAME
    assert L.decode(data) == f
    assert L.decode(data[:-2], crc=False) == f
    assert L.encode(L.decode(data)) == data


# --- arbitrary input never raises anything but FrameError --------------------------

def mutations():
    """Valid frames with bytes flipped, cut or appended, CRC recomputed, so
    the parser (not only the CRC check) sees them."""
    base = frames().filter(fits).map(lambda f: L.encode(f)[:-2])

    def mutate(args):
        body, pos, val, cut, extra = args
        b = bytearray(body)
        b[pos % len(b)] = val
        return with_crc(bytes(b[:max(0, len(b) - cut)]) + extra)

    return st.tuples(base, st.integers(0, 300), st.integers(0, 255), st.integers(0, 20),
                     st.binary(max_size=4)).map(mutate)


@SETTINGS
@given(data=st.one_of(st.binary(max_size=300), st.binary(max_size=60).map(with_crc), mutations()))
def test_decode_raises_only_frame_error(data):
    for crc_ in (True, False):
        r = decode_reason(data, crc=crc_)
        assert r is None or (r in L.REASONS and r != "internal"), r
        if r is None:
            assert L.encode(L.decode(data, crc_), crc_) == data      # canonical


@SETTINGS
@given(data=st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers(0, 255), max_size=5)))
def test_decode_of_non_bytes(data):
    assert decode_reason(data) == "type"


@SETTINGS
@given(data=st.binary(max_size=80), head=st.binary(min_size=20, max_size=20))
def test_cnip_decode_raises_only_frame_error(data, head):
    for d in (data, head + data, bytes((0, 20 + len(data), 1, 1, 0, 0)) + head[6:] + data):
        try:
            p = cnip.decode(d)
            assert cnip.encode(p) == d
        except FrameError as e:
            assert e.reason in cnip.REASONS and e.reason != "internal"


@SETTINGS
@given(f=frames().filter(fits), session=st.integers(0, 2 ** 32 - 1), seq=st.integers(0, 2 ** 32 - 1),
       stamp=st.integers(0, 2 ** 32 - 1), ext=st.integers(0, 3).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n)))
def test_cnip_round_trip(f, session, seq, stamp, ext):
    frame = L.encode(f)
    p = cnip.Packet(frame, session, seq, stamp, ext=ext)
    data = cnip.encode(p)
    assert cnip.decode(data) == p
    assert cnip.unwrap(data)[1] == f


# --- APDU codecs -------------------------------------------------------------------

@SETTINGS
@given(apdu=st.one_of(st.binary(max_size=40),
                      st.tuples(st.sampled_from([0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x69, 0x6A, 0x6C,
                                                 0x70, 0x7F, 0x51, 0x52, 0x53, 0x54]),
                                st.binary(max_size=20)).map(lambda t: bytes((t[0],)) + t[1])))
def test_nm_parsers_raise_only_frame_error(apdu):
    try:
        code, args = N.parse_request(apdu)
        assert code == apdu[0]
    except FrameError as e:
        assert e.reason in N.REASONS
    for req in (0x61, 0x67, 0x6A, 0x51, 0x54, 0x52, 0x64):
        try:
            N.parse_response(req, apdu)
        except FrameError as e:
            assert e.reason in N.REASONS


@st.composite
def proxies(draw):
    uniform = draw(st.sampled_from([(False, False), (True, False), (False, True), (True, True)]))
    n = draw(st.integers(0, 15))
    reps = [(None if any(uniform) else draw(st.integers(0, 255)), draw(st.integers(0, 127)),
             draw(st.integers(0, 1))) for _ in range(n)]
    t = draw(st.integers(0, 7))
    b, uid = st.integers(0, 255), st.binary(min_size=6, max_size=6)
    target = (
        (draw(b), draw(b)), (draw(b), draw(st.integers(0, 127)), draw(st.integers(0, 1))),
        (draw(b), draw(uid)), (draw(b), draw(st.integers(0, 63))), (draw(b),),
        (draw(st.integers(0, 127)), draw(st.integers(0, 1))), (draw(uid),),
        (draw(st.integers(0, 127)), draw(st.integers(0, 1))))[t]
    mode = draw(st.integers(0, 3))
    kt = draw(st.integers(0, 1)) if mode == P.MODE_ALT_KEY else None
    return P.Proxy(repeaters=reps, uniform_src=uniform[0], uniform_dest=uniform[1],
                   all_agents=draw(st.booleans()), long_timer=draw(st.booleans()),
                   timer=draw(st.integers(0, 15)) if n else None, retry=draw(st.integers(0, 15)) if n else None,
                   mode=mode, service=draw(st.integers(0, 3)), path=draw(st.integers(0, 1)), addr_type=t,
                   agent_timer=draw(st.integers(0, 15)), agent_retry=draw(st.integers(0, 15)),
                   key_type=kt, key=None if kt is None else draw(st.binary(min_size=6 + 6 * kt, max_size=6 + 6 * kt)),
                   target=target, apdu=draw(st.binary(min_size=1, max_size=40)))


@SETTINGS
@given(p=proxies())
def test_proxy_round_trip(p):
    data = P.encode(p)
    assert P.decode(data) == p
    assert P.encode(P.decode(data)) == data


@SETTINGS
@given(data=st.binary(max_size=60))
def test_proxy_decode_raises_only_frame_error(data):
    for d in (data, b"\x4d" + data):
        try:
            assert P.encode(P.decode(d)) == d
        except FrameError as e:
            assert e.reason in P.REASONS


# --- MIP ----------------------------------------------------------------------------

def messages():
    return st.tuples(st.integers(0, 7), st.booleans(), st.integers(0, 255), st.binary(max_size=300))


def well_formed(ev):
    kind = ev[0]
    if kind == mip.EV_ERROR:
        return ev[1] in mip.ERRORS
    if kind == mip.EV_CODE:
        return 0 <= ev[1] <= 7 and ev[3] != mip.CP_MSG
    return kind == mip.EV_MSG and isinstance(ev[4], bytes)


@SETTINGS
@given(data=st.binary(max_size=400), cuts=st.lists(st.integers(0, 400), max_size=6))
def test_mip_parser_never_raises(data, cuts):
    p = mip.Parser()
    prev, events = 0, []
    for c in sorted(cuts) + [len(data)]:
        events += p.feed(data[prev:c], now=c)
        prev = max(prev, c)
    assert all(well_formed(e) for e in events)


@SETTINGS
@given(msg=messages(), split=st.integers(0, 700))
def test_mip_message_round_trip_split_anywhere(msg, split):
    seq, ack, cmd, pdu = msg
    wire = mip.message(seq, cmd, pdu, ack)
    p = mip.Parser()
    ev = p.feed(wire[:split]) + p.feed(wire[split:])
    assert ev == [(mip.EV_MSG, seq, ack, cmd, pdu)]


@SETTINGS
@given(garbage=st.binary(max_size=120), msg=messages())
def test_mip_resynchronises_after_garbage(garbage, msg):
    seq, ack, cmd, pdu = msg
    wire = mip.message(seq, cmd, pdu, ack)
    ev = mip.Parser().feed(garbage + wire + wire + wire)
    assert all(well_formed(e) for e in ev)
    assert (mip.EV_MSG, seq, ack, cmd, pdu) in ev
