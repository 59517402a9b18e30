"""Property tests (hypothesis) for the group and key-change procedures:
EP27 with any parameters and any key either does what it says or refuses
and changes nothing (tables, the node's group table); ET08 never holds
0xFFxx or duplicates and the node is in every 14908 group ET08 names;
groups.member against a plain restatement of the reference 5.2 rules;
EP15/EP24/EP25 with any parameters: refusals change nothing, a correct
wrap of any key is installed; wrap/unwrap round trips for every key size."""
import os
import sys

from hypothesis import given, settings, strategies as st

from osgp_meter import access as A
from osgp_meter import groups as G
from osgp_meter import keys as K

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "core"))
import bcast_util as B  # noqa: E402

ROLES = [A.ROLE_MK, A.ROLE_PK, A.ROLE_RK, A.ROLE_MAK, A.ROLE_MBK, A.ROLE_PLC, A.ROLE_BCAST,
         A.ROLE_NONE]
EP27 = 2048 + 27


def node_groups(f):
    return tuple((a.kind, a.domain, a.group, a.member, a.size) for a in f.plc.addresses)


def everything(f):
    return f.meter.store.snapshot(), node_groups(f), f.keys.encode()


gids = st.one_of(st.integers(0, 0xFFFF), st.sampled_from([0, 0x0501, 0x0502, 0x05FF, 0x0601,
                                                          0xFF00, 0xFFFF, 0x00FF, 0x0100]))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=4), st.sampled_from(ROLES)), max_size=14))
def test_ep27_any_parameters(calls):
    f = B.firmware()
    for params, role in calls:
        before = everything(f)
        result, data = B.call(f, EP27, params, role)
        if result != 0:
            assert result in (2, 3, 5) and data == b""
            assert everything(f) == before
        else:
            assert len(data) == 2 and data[1] == len(G.ids(f.meter))
            assert data[0] == (everything(f)[0] != before[0])
        held = G.ids(f.meter)
        assert len(held) == len(set(held)) <= 10
        assert all(G.valid(g) for g in held)
        lon = {a.group for a in f.plc.addresses if a.kind == 0x80}
        assert {g >> 8 for g in held} <= lon


def reference_member(held, gid):
    if gid == 0:
        return False
    if gid >> 8 == 0xFF:
        return True
    for h in held:
        if h >> 8 != gid >> 8:
            continue
        if gid & 0xFF == 0xFF or h & 0xFF == 0xFF or h & 0xFF == gid & 0xFF:
            return True
    return False


@settings(max_examples=200, deadline=None)
@given(st.lists(gids.filter(G.valid), max_size=10, unique=True), gids)
def test_member_matches_the_rules(held, gid):
    f = B.firmware()
    for g in held:
        assert B.call(f, EP27, bytes((0, g & 0xFF, g >> 8)))[0] == 0
    assert G.member(f.meter, gid) == reference_member(held, gid)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([K.EP15, K.EP24, K.EP25]), st.binary(max_size=40), st.sampled_from(ROLES))
def test_key_change_any_parameters_refusals_change_nothing(number, params, role):
    f = B.firmware()
    before = everything(f)
    result, data = B.call(f, number, params, role)
    assert data == b""
    assert result in (2, 3, 5)                 # random bytes never carry a valid check
    assert everything(f) == before


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([K.EP15, K.EP24, K.EP25]), st.integers(0, 2), st.binary(min_size=20, max_size=20),
       st.sampled_from([A.ROLE_MK, A.ROLE_MAK, A.ROLE_PLC]))
def test_a_correct_wrap_is_installed(number, key_id, raw, role):
    roles, n = K.CHANGES[number]
    key_id %= len(roles)
    target = roles[key_id]
    f = B.firmware()
    kek = f.keys.get(target)
    new = raw[:n]
    assert B.call(f, number, K.change_params(kek, number, key_id, new), role) == (0, b"")
    assert f.keys.get(target) == new
    # the same parameters again: the KEK is the new key now, so they no longer verify
    before = everything(f)
    assert B.call(f, number, K.change_params(kek, number, key_id, new), role)[0] == (
        0 if kek == new else 5)
    if kek != new:
        assert everything(f) == before


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([12, 16, 20]), st.binary(min_size=20, max_size=20), st.binary(min_size=1, max_size=20),
       st.integers(0, 0xFFFF), st.integers(0, 255))
def test_wrap_round_trip(k, kek, new, number, key_id):
    kek = kek[:k]
    blob = K.wrap(kek, number, key_id, new)
    assert len(blob) == len(new) + 8
    assert K.unwrap(kek, number, key_id, blob) == new
    if new:
        flipped = bytes((blob[0] ^ 0x80,)) + blob[1:]
        assert K.unwrap(kek, number, key_id, flipped) is None


def test_a_failed_transaction_undoes_a_group_join_in_the_node():
    """All-or-nothing: a transaction that writes ET08 then fails leaves
    neither ET08 nor the node's 14908 group table changed (the "groups"
    nv_part puts the node back from its saved image)."""
    from osgp_meter.firmware import Firmware
    from osgp_meter.device import PLC_LIMITS
    from osgp_host import transaction
    cfg = {"keys": {A.ROLE_PLC: bytes(range(1, 13)), A.ROLE_BCAST: bytes(12)}, "plc": True,
           "neuron_id": bytes(6), "plc_domain": b"\x42", "plc_subnet": 1, "plc_node": 5}
    f = Firmware(cfg, 0)
    m = f.meter
    add = transaction.call(EP27, 9, b"\x00\x01\x07")
    ok = transaction.build([add], 1)
    bad = transaction.build([transaction.write(2048 + 8, b"\x01\x05", 0),    # ET08: join group 5
                             transaction.write(2048 + 250, b"\x00")], 2)     # no such table
    before = (G.ids(m), node_groups(f))
    for off in range(0, len(bad), 75):
        m.execute(transaction.write(2048 + 27, bad[off:off + 75], off), A.ROLE_PLC, PLC_LIMITS, 0)
    assert m.store.field(2048 + 28, 2, 1) == 2       # ET28: ran, failed, undone (type 2)
    assert (G.ids(m), node_groups(f)) == before
    for off in range(0, len(ok), 75):
        m.execute(transaction.write(2048 + 27, ok[off:off + 75], off), A.ROLE_PLC, PLC_LIMITS, 0)
    assert G.ids(m) == [0x0701] and 7 in {a.group for a in f.plc.addresses if a.kind == 0x80}


def test_changed_and_fcm_installed_keys_survive_a_restart(tmp_path):
    """The "keys" nv_part through a state directory (tools/state.py): a key
    changed by EP15 and the PLC keys a Fast Commission Message installs come
    back after a restart (the FCM ones were lost before)."""
    import plc_util as U
    from osgp_meter import plc_discovery as D
    from osgp_meter.firmware import Firmware
    from osgp_host import state as states

    def boot():
        sd = states.StateDir(str(tmp_path / "m"), fsync=False)
        cfg = {"keys": {A.ROLE_PLC: U.KEY, A.ROLE_BCAST: U.BKEY, A.ROLE_MAK: bytes([1] * 16)},
               "plc": True, "neuron_id": bytes.fromhex("00 02 98 00 31 C3"), "restore": sd.open,
               "mep_secure": False}
        f = Firmware(cfg, U.T0)
        D.enable(f.plc)
        return f, sd

    f, sd = boot()
    uk, bk = bytes([0xA1] * 12), bytes([0xB2] * 12)
    apdu, st, _ = U.osgp(1, D.fcm_request(b"\x42", 1, 5, b"AUTHK!", uk, bk))   # factory key
    out = f.plc.receive(U.frame(apdu=apdu, addr_fmt=3, dst_subnet=0, neuron_id=U.NID, tid=1), U.T0)
    assert U.answer(out, st) == b"\x00" and f.keys.get(A.ROLE_PLC) == uk
    f.commit()
    new_mak = bytes(range(16))
    assert B.call(f, K.EP24, K.change_params(bytes([1] * 16), K.EP24, 1, new_mak), A.ROLE_MAK) == (0, b"")
    f.commit()
    sd.close()

    g, sd2 = boot()                                  # the power cut
    assert g.keys.get(A.ROLE_PLC) == uk and g.keys.get(A.ROLE_BCAST) == bk
    assert g.keys.get(A.ROLE_MAK) == new_mak
    assert g.plc.address() == (b"\x42", 1, 5)
    apdu, st, _ = U.osgp(2, bytes.fromhex("30 00 01"), uk)
    out = g.plc.receive(U.frame(apdu=apdu, tid=2), U.T0 + 1000)
    assert U.answer(out, st)[0] == 0
    sd2.close()
