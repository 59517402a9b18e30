"""Device profiles: the built-in default, overrides, identity encoding, and a
clear error for every kind of bad profile."""
import pytest

from osgp_host import profile
from osgp_meter import access as A
from osgp_meter.firmware import Firmware


def write(tmp_path, text):
    p = tmp_path / "p.toml"
    p.write_text(text)
    return str(p)


def test_default_profile_builds_a_meter():
    cfg = profile.load_config()
    fw = Firmware(cfg, 0)
    bt01 = fw.meter.store.get(1)
    assert bt01[:4] == b"EMUL" and bt01[4:12] == b"OSGP-EMU"
    assert bt01[14:16] == b"\x31\x55"          # 3.10.21, MSB at offset 14 [OPT BT01]
    assert bt01[16:24] == bytes.fromhex("0000000000000001")
    assert cfg["keys"][A.ROLE_MAK] == bytes([1] * 16)
    assert fw.keys.get(A.ROLE_MK) == b"MASTERKEY" + bytes(11)


def test_overrides_tables_by_label_number_and_name(tmp_path):
    cfg = profile.load_config(write(tmp_path, '''
[mep]
sequence = 0x77635B90
[tables]
BT53 = "01 02 03"
"0x0803" = "41 42"
"General Configuration" = "00"
'''))
    assert cfg["mep_seq"] == 0x77635B90
    assert cfg["image"][53] == b"\x01\x02\x03"
    assert cfg["image"][2048 + 3] == b"AB"
    assert cfg["image"][0] == b"\x00"


@pytest.mark.parametrize("text, message", [
    ('[tables]\nBT99 = "00"', "no such table"),
    ('[tables]\nNonsense = "00"', "not a table name"),
    ('[tables]\nBT23 = "zz"', "not hex"),
    ('[keys]\nmak = "xyz"', "not hex"),
    ('[identity]\nfirmware_version = "10.0.0"', "major 0-9"),
    ('[identity]\nfirmware_version = "3.1"', "major.minor.build"),
    ('[identity]\nmodel = "MUCH-TOO-LONG"', "at most 8"),
    ('[identity]\nserial_number = "12AB"', "decimal digits"),
    ('[clock]\nstart = "yesterday"', "clock.start"),
    ('not = toml = at all', "p.toml"),
])
def test_bad_profiles_are_refused_clearly(tmp_path, text, message):
    with pytest.raises(profile.ProfileError, match=message):
        profile.load_config(write(tmp_path, text))


def test_bad_key_length_is_refused_when_the_meter_is_built(tmp_path):
    cfg = profile.load_config(write(tmp_path, '[keys]\nmak = "0102"'))
    with pytest.raises(ValueError, match="MAK must be 16 bytes"):
        Firmware(cfg, 0)
