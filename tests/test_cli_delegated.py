"""The commands osgp-meter hands to a module's own parser (tools/cli.py DELEGATED)."""
from osgp_host import cli


def test_fw_image_build_and_inspect_through_osgp_meter(tmp_path, capsys):
    img = tmp_path / "fw.img"
    assert cli.main(["fw-image", "build", "--version", "3.71.0", "-o", str(img)]) in (0, None)
    assert img.stat().st_size > 24
    capsys.readouterr()
    assert cli.main(["fw-image", "inspect", str(img)]) in (0, None)
    out = capsys.readouterr().out
    assert "3.71.0" in out and "valid" in out


def test_delegated_help_is_the_modules_own(capsys):
    for name in cli.DELEGATED:
        try:
            cli.main([name, "--help"])
        except SystemExit as exc:
            assert exc.code == 0
        assert "osgp-meter " + name in capsys.readouterr().out


def test_every_delegated_command_is_listed_in_the_main_help(capsys):
    try:
        cli.main(["--help"])
    except SystemExit:
        pass
    out = capsys.readouterr().out
    for name in cli.DELEGATED:
        assert name in out
