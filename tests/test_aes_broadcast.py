"""AES group and broadcast requests from the host (docs/security-modes.md,
docs/groups-and-broadcast.md): ``PlcSecurity(..., aes=True, broadcast=True)``
seals under the AES key derived from the broadcast key with an all-zero
identity in the nonce, each member's answer is checked under its own Neuron
ID; ``DC.group`` / ``GroupSender`` and the firmware download's broadcasts
follow the DC's security mode. Over the virtual channel with meters in AES
mode (a LocalFleet whose profile says ``[security] mode = "aes"``)."""
import os
import struct

import pytest
from hypothesis import given, settings, strategies as st

from osgp_meter import aes_mode as M
from osgp_meter import cipher, clock, groups
from osgp_host import cli, fw_image
from osgp_host.dc import LocalFleet
from osgp_host.faults import Fault
from osgp_host.fw_download import Broadcaster, Download, EP08
from osgp_host.plc_client import PlcAuthError, PlcSecurity, read_request

ET04 = 2048 + 4
ET23 = 2048 + 23
BASE = 5000
DELTA = 1000
BCAST = M.F_PLC | M.F_BCAST
AES_PROFILE = '[security]\nmode = "aes"\n'
BKEY = bytes(range(12, 0, -1))              # the built-in profile's plc_broadcast
NID1 = bytes.fromhex("00e000000001")        # the first local meter's Neuron ID
TOPOLOGY = open(os.path.join(os.path.dirname(__file__), "test_fw_download.py")).read() \
    .split('TOPOLOGY = """')[1].split('"""')[0]


def _profile(tmp_path):
    p = tmp_path / "aes.toml"
    p.write_text(AES_PROFILE)
    return str(p)


def _fleet(tmp_path, count=4):
    fleet = LocalFleet("small", seed=4, count=count, metering=False, profile=_profile(tmp_path))
    dc = fleet.dc()
    assert fleet.aes and dc.aes
    for m in fleet.meters:
        assert fleet.firmware[m].meter.store.field(ET04, 127, 1) == M.MODE_AES
        dc.write(m, "ET04", struct.pack("<IH", BASE, DELTA), offset=82)      # AES unicast
    return fleet, dc


def bp10(year):
    return bytes((0x03, year - 2000, 6, 15, 12, 0, 0))      # set date and time


def year_of(fleet, m):
    fw = fleet.firmware[m]
    return clock.to_civil(fw.meter.utc(fleet.channel.now_ms))[0]


def _state(fleet, m):
    """What a refused request must not change: every table but ET23 (the
    counters that say it was refused) and ET11 (key usage)."""
    snap = fleet.firmware[m].meter.store.snapshot()
    return {k: v for k, v in snap.items() if k not in (ET23, 2048 + 11)}


# ---------------------------------------------------------------- the bytes

def test_broadcast_request_and_member_answer_bytes_are_pinned():
    # built-in broadcast key 0C 0B .. 01, read BT01 0..3 with seq 5001
    sec = PlcSecurity(BKEY, BASE, aes=True, broadcast=True)
    r = sec.build(read_request(1, 0, 4))
    assert r.apdu == bytes.fromhex("3f b3 79 6e 19 0f ca 6b 00 00 13 89 cb 5d 0e fd cb 31 49 9e")
    # member 00 E0 00 00 00 01 answers 00 | 00 04 "EMUL" under its own Neuron ID
    answer = bytes.fromhex("00 2d af 2f 90 24 8f 17 1b be 84 9c 1e 12 51")
    assert r.verify(answer, neuron_id=NID1) == b"\x00\x00\x04EMUL"
    with pytest.raises(PlcAuthError):
        r.verify(answer, neuron_id=bytes(6))              # another member's ID
    with pytest.raises(ValueError):
        r.verify(answer)                                  # which member?
    report = bytes.fromhex("0c 00 00 13 89 3f 7a 1a ba 2b ba df dd")
    assert r.verify(report, neuron_id=NID1) == bytes.fromhex("0c 00 00 13 89")
    with pytest.raises(PlcAuthError):
        r.verify(M.AUTH_FAIL, neuron_id=NID1)             # the plain 0x0B
    with pytest.raises(ValueError):
        PlcSecurity(BKEY, aes=True, broadcast=True, neuron_id=NID1)
    # RC4 mode: broadcast changes no byte
    assert PlcSecurity(BKEY, 7, broadcast=True).build(b"\x30\x00\x01").apdu == \
        PlcSecurity(BKEY, 7).build(b"\x30\x00\x01").apdu


@settings(max_examples=60, deadline=None)
@given(key=st.binary(min_size=12, max_size=12), seq=st.integers(0, 2**32 - 2),
       req=st.binary(min_size=1, max_size=80), rsp=st.binary(min_size=1, max_size=80),
       nid=st.binary(min_size=6, max_size=6), other=st.binary(min_size=6, max_size=6))
def test_host_and_meter_agree_on_every_broadcast_message(key, seq, req, rsp, nid, other):
    sec = PlcSecurity(key, seq, aes=True, broadcast=True)
    r = sec.build(req)
    c = cipher.new_aes_ccm(M.derive_key(key))
    s = (seq + 1) & 0xFFFFFFFF
    assert r.seq == s
    # the meter opens it with the broadcast flag and no identity, nothing else
    assert M.open_request(c, BCAST, M.NO_ID, r.apdu) == req + s.to_bytes(4, "big")
    assert M.open_request(c, M.F_PLC, M.NO_ID, r.apdu) is None
    assert M.open_request(c, M.F_PLC, b"\x00\x00" + nid, r.apdu) is None
    answer = M.seal_answer(c, BCAST, b"\x00\x00" + nid, s, rsp)
    if answer != M.AUTH_FAIL:
        assert r.verify(answer, neuron_id=nid) == rsp
        if other != nid:
            with pytest.raises(PlcAuthError):
                r.verify(answer, neuron_id=other)


# ---------------------------------------------------------------- over the channel

def test_aes_group_call_reaches_exactly_the_members_and_members_answer(tmp_path):
    fleet, dc = _fleet(tmp_path)
    for m in ("m001", "m002"):
        assert dc.call(m, "EP27", b"\x00\x01\x05")[0] == 0            # add 0x0501
    g = dc.group(0x0501, fleet.bcast_key, seq=BASE)
    assert g.aes                                          # follows the DC's mode
    g.call("BP10", bp10(2031))
    for m in fleet.meters:
        member = m in ("m001", "m002")
        assert (year_of(fleet, m) == 2031) == member, m
        assert groups.counters(fleet.firmware[m].meter)[0] == (1 if member else 0)
        assert (dc.read(m, "BT08", offset=0, count=4) == bytes((10, 0, g.psn, 0))) == member
    everyone = dc.group(0xFFFF, fleet.bcast_key, seq=g.seq)
    everyone.call("BP10", bp10(2033))
    assert all(year_of(fleet, m) == 2033 for m in fleet.meters)

    # a group REQUEST: 14908 group 9 of three members, each answers under its own ID
    for i, m in enumerate(fleet.meters[:3]):
        fleet.firmware[m].plc.join_group(9, i, size=3)
    ask = dc.group(0x09FF, fleet.bcast_key, seq=everyone.seq, size=3)
    ask.send(read_request(1, 0, 4))
    assert {t.name: v for t, v in ask.answers.items()} == \
        {m: b"\x00\x00\x04EMUL" for m in fleet.meters[:3]}
    # beyond the window (a fresh number: never reuse one under AES): every
    # member reports the number it holds, authenticated under its own ID
    stale = dc.group(0x09FF, fleet.bcast_key, seq=BASE + DELTA + 10, size=3)
    stale.send(read_request(1, 0, 4))
    held = (ask.seq).to_bytes(4, "big")
    assert {t.name: v for t, v in stale.answers.items()} == \
        {m: b"\x0c" + held for m in fleet.meters[:3]}
    assert ask.refused == stale.refused == 0

    # the broadcast key, changed by broadcast in AES mode (the AES key wrap)
    new = bytes(range(0x61, 0x6D))
    g = dc.group(0x0501, fleet.bcast_key, seq=ask.seq)
    g.change_key(new)
    for m in fleet.meters:
        assert (fleet.firmware[m].keys.get(0x40) == new) == (m in ("m001", "m002")), m
    g.call("BP10", bp10(2035))                            # goes on with the new key
    assert [m for m in fleet.meters if year_of(fleet, m) == 2035] == ["m001", "m002"]


def test_rc4_broadcasts_to_aes_meters_are_refused_and_counted(tmp_path):
    fleet, dc = _fleet(tmp_path, count=3)
    before = {m: _state(fleet, m) for m in fleet.meters}
    stats = {m: list(fleet.firmware[m].plc.osgp.stats) for m in fleet.meters}
    rc4 = dc.group(0xFFFF, fleet.bcast_key, seq=BASE, aes=False)
    rc4.call("BP10", bp10(2031))
    b = Broadcaster(dc, fleet.bcast_key, rc4.seq, aes=False)      # a firmware announcement
    b.call(EP08, struct.pack("<IHH", 600, 64, 0x1234))
    for m in fleet.meters:
        fw = fleet.firmware[m]
        assert year_of(fleet, m) != 2031
        assert _state(fleet, m) == before[m], m           # nothing ran
        s = fw.plc.osgp.stats
        assert s[4] - stats[m][4] == 2 and s[0] == stats[m][0]    # refused: RC4 in AES mode
        assert groups.counters(fw.meter)[:4] == (0, 0, 0, 2)      # ET23: bad digest
    # answered: every member says 0x0B, and the sender counts them
    for i, m in enumerate(fleet.meters):
        fleet.firmware[m].plc.join_group(9, i, size=3)
    ask = dc.group(0x09FF, fleet.bcast_key, seq=BASE, aes=False, size=3)
    ask.send(read_request(1, 0, 4))
    assert ask.refused == 3 and all(isinstance(v, PlcAuthError) for v in ask.answers.values())
    # the same under AES goes through
    ok = dc.group(0x09FF, fleet.bcast_key, seq=BASE, size=3)
    ok.send(read_request(1, 0, 4))
    assert ok.refused == 0 and set(ok.answers.values()) == {b"\x00\x00\x04EMUL"}


def test_aes_firmware_broadcast_download_with_unicast_repairs(tmp_path):
    path = tmp_path / "fw-transformer.toml"
    path.write_text(TOPOLOGY % 4)
    fleet = LocalFleet(str(path), seed=3, metering=False, profile=_profile(tmp_path))
    lossy = fleet.meters[1]
    fleet.channel.add_fault(Fault("drop", nodes=[lossy], direction="to", probability=0.25))
    dc = fleet.dc()
    assert dc.aes
    image = fw_image.build("3.71.0", size=1000)
    d = Download(dc, image, fleet.meters, broadcast=True, bcast_key=fleet.bcast_key)
    v0 = dc.now_ms
    res = {t.name: r for t, r in d.run().items()}
    assert all(r.ok for r in res.values()), res
    assert d.stats["broadcast"] == d.packets + 1 + d.announce_repeats
    assert res[lossy].repaired > 0
    assert all(res[m].repaired == 0 for m in fleet.meters if m != lossy), res
    for m in fleet.meters:
        fw = fleet.firmware[m]
        assert fw.meter.banks.active == 1
        assert fw.plc.osgp.stats[4] == 0                  # no RC4 on the way
    print("\nAES broadcast download: 4 meters, %d packets, %.1f s simulated, %d repaired"
          % (d.packets, (dc.now_ms - v0) / 1000.0, res[lossy].repaired))


def test_a_resumed_aes_download_never_reuses_a_sequence_number(tmp_path):
    import json
    path = tmp_path / "fw-transformer.toml"
    path.write_text(TOPOLOGY % 2)
    fleet = LocalFleet(str(path), seed=3, metering=False, profile=_profile(tmp_path))
    dc = fleet.dc()
    sent = {}

    def spy(dc):
        real = dc.transaction

        def transaction(dest, apdu, *a, **kw):
            if dest[0] != 1:                               # not unicast (subnet/node)
                sent.setdefault(apdu[-12:-8], set()).add(bytes(apdu))
            return real(dest, apdu, *a, **kw)
        dc.transaction = transaction
    spy(dc)
    image = fw_image.build("3.71.0", size=1500)
    state = str(tmp_path / "resume.json")

    class Stop(Exception):
        pass

    def stop_at_25(d, note=None):
        if d.stats["broadcast"] >= 25:
            raise Stop()
    with pytest.raises(Stop):
        Download(dc, image, fleet.meters, broadcast=True, bcast_key=fleet.bcast_key,
                 state_file=state, progress=stop_at_25).run()
    assert 0 < json.load(open(state))["broadcast_next"] < 24
    dc.close()
    dc = fleet.dc()
    spy(dc)
    d = Download(dc, image, fleet.meters, broadcast=True, bcast_key=fleet.bcast_key,
                 state_file=state)
    assert d.resumed and all(r.ok for r in d.run().values())
    assert all(len(v) == 1 for v in sent.values())        # one message per number
    for m in fleet.meters:                                # nothing refused as a replay
        assert groups.counters(fleet.firmware[m].meter)[1:4] == (0, 0, 0)


@pytest.fixture
def keep_backends():
    """The CLI installs the `cryptography` backends for the process: put
    back what was there (tests/test_bench.py checks the default)."""
    rc4 = cipher.set_rc4_backend(None)
    aes = cipher.set_aes_backend(None)
    cipher.set_rc4_backend(rc4)
    cipher.set_aes_backend(aes)
    yield
    cipher.set_rc4_backend(rc4)
    cipher.set_aes_backend(aes)


def test_cli_group_and_broadcast_download_follow_the_profile(tmp_path, capsys, keep_backends):
    prof = _profile(tmp_path)
    assert cli.main(["dc", "--local", "--quiet", "--profile", prof, "group", "0xFFFF", "call",
                     "BP14", "--members", "m001-m002"]) == 0
    assert capsys.readouterr().out.count("BP14 result 0 (completed)") == 2
    img = str(tmp_path / "fw.img")
    assert fw_image.main(["build", "--version", "3.71.0", "--size", "300", "-o", img]) == 0
    capsys.readouterr()
    assert cli.main(["dc", "--local", "--quiet", "--profile", prof, "download", img,
                     "--meters", "m001-m002", "--broadcast", "--resume-file", "none"]) == 0
    out = capsys.readouterr().out
    assert out.count("switched to bank B, version 3.71.0, 0 packets by unicast") == 2
