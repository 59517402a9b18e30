"""`osgp-meter serve` on pseudo-terminals, end to end: the MEP guide's byte
examples reproduce exactly, the CLI clients read, write and call procedures
on both ports, SIGTERM stops cleanly, and --state carries data across a
restart."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import serial

from osgp_host.mep_client import MepClient

MAK = bytes([1] * 16)


class Served:
    def __init__(self, tmp_path, profile_text, *extra):
        path = tmp_path / "profile.toml"
        path.write_text(profile_text)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "osgp_host.cli", "serve", "--profile", str(path), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.ports = {}
        for _ in range(2):
            line = self.proc.stdout.readline()
            m = re.fullmatch(r"(mep|optical): (/dev/pts/\d+)\n", line)
            assert m, (line, self.proc.stderr.read() if self.proc.poll() is not None else "")
            self.ports[m.group(1)] = m.group(2)

    def open(self, which, timeout=1.0):
        return serial.Serial(self.ports[which], 9600, timeout=timeout)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=10)


@pytest.fixture
def served(tmp_path):
    made = []

    def start(profile_text, *extra):
        s = Served(tmp_path, profile_text, *extra)
        made.append(s)
        return s
    yield start
    for s in made:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


def exchange(port, hexframe):
    port.write(bytes.fromhex(hexframe))
    head = port.read(2)
    assert len(head) == 2, "no answer"
    return (head + port.read((head[0] << 8) | head[1])).hex(" ").upper()


def test_guide_example_out_of_window_read(served):
    s = served("[mep]\nsequence = 0x77635B90\n")
    with s.open("mep") as p:
        assert exchange(p, "00 14 3F 00 17 00 00 00 00 2C 01 02 03 04 74 86 1F 6D 76 58 DD 56") \
            == "00 0D 0C 77 63 5B 90 35 86 3C 1D F5 B9 14 82"
    assert s.stop() == 0


def test_guide_example_partial_write(served):
    s = served("[mep]\nsequence = 0x77636E2E\n")
    with s.open("mep") as p:
        assert exchange(p, "00 15 4F 08 32 00 00 1E 00 01 01 77 63 6E 2F 86 E5 0E 26 67 D1 E6 3C") \
            == "00 09 00 86 E5 0E 26 67 D1 E6 3C"
        client = MepClient(p, MAK, seq=0x77636E2F)
        time.sleep(0.15)
        assert client.read(0x0832, 0x1E, 1) == b"\x01"


def test_guide_example_procedure_through_bt07(served):
    s = served("[mep]\nsequence = 0x5B4E4308\n")
    with s.open("mep") as p:
        assert exchange(p, "00 17 40 00 07 00 06 11 08 07 00 F8 03 5B 4E 43 09 69 7A B2 01 49 7E 9C F7") \
            == "00 09 00 69 7A B2 01 49 7E 9C F7"


def cli(*args):
    proc = subprocess.run([sys.executable, "-m", "osgp_host.cli", *args], capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


def test_cli_clients_on_both_ports(served):
    s = served('[identity]\nserial_number = "1234567890123456"\n')
    mep, optical = s.ports["mep"], s.ports["optical"]
    rc, out, err = cli("mep", "--port", mep, "read", "BT01")
    assert rc == 0, err
    assert "12 34 56 78 90 12 34 56" in out and "EMUL" in out
    rc, out, err = cli("mep", "--port", mep, "--encrypt", "call", "BP10", "031a0b1a0c2238")
    assert rc == 0, err
    assert "result 0" in out
    rc, out, err = cli("mep", "--port", mep, "read", "BT52", "--raw")
    assert rc == 0 and "1a 0b 1a 0c" in out, (out, err)
    rc, out, err = cli("optical", "--port", optical, "--level", "rk", "read", "BT01", "--raw")
    assert rc == 0 and "45 4d 55 4c" in out, (out, err)
    rc, out, err = cli("optical", "--port", optical, "--level", "rk", "write", "ET03", "41")
    assert rc == 2 and "0x03" in err, (out, err)
    rc, out, err = cli("optical", "--port", optical, "write", "ET03", "41")
    assert rc == 0, err
    rc, out, err = cli("mep", "--port", mep, "--key", "00" * 16, "read", "BT01")
    assert rc == 2 and "0x0B" in err
    assert s.stop() == 0


def test_state_directory_survives_a_restart(served, tmp_path):
    state = str(tmp_path / "state")
    s = served("", "--state", state)
    rc, out, err = cli("mep", "--port", s.ports["mep"], "write", "ET03", "414243")
    assert rc == 0, err
    assert s.stop() == 0
    s = served("", "--state", state)
    rc, out, err = cli("mep", "--port", s.ports["mep"], "read", "ET03", "--offset", "0", "--count", "3", "--raw")
    assert rc == 0 and "41 42 43" in out, (out, err)


def test_serve_on_a_pyserial_url(tmp_path):
    # --mep socket://host:port: the meter connects to a TCP server that
    # stands in for the expansion device.
    import socket
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    port = lsock.getsockname()[1]
    profile = tmp_path / "p.toml"
    profile.write_text("[mep]\nsequence = 0x77635B90\n")
    proc = subprocess.Popen([sys.executable, "-m", "osgp_host.cli", "serve", "--profile", str(profile),
                             "--mep", "socket://127.0.0.1:%d" % port, "--optical", "pty"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "mep: socket://127.0.0.1:%d\n" % port
        lsock.settimeout(10)
        conn, _ = lsock.accept()
        conn.settimeout(5)
        conn.sendall(bytes.fromhex("00 14 3F 00 17 00 00 00 00 2C 01 02 03 04 74 86 1F 6D 76 58 DD 56"))
        got = b""
        while len(got) < 15:
            got += conn.recv(64)
        assert got == bytes.fromhex("00 0D 0C 77 63 5B 90 35 86 3C 1D F5 B9 14 82")
        conn.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        lsock.close()
