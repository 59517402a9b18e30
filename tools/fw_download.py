"""Firmware download from the data concentrator: broadcast the image's code
packets to every meter of a transformer, read each meter's ET17 bitmap,
complete what it lost by unicast, then switch its code bank (EP10).
docs/firmware-download.md is the reference; the procedures' bytes are the
emulator profile of meter/codebank.py.

    from osgp_host.dc import LocalFleet
    from osgp_host.fw_download import Download
    fleet = LocalFleet("small", metering=False)
    dc = fleet.dc()
    d = Download(dc, image_bytes, fleet.meters, broadcast=True, bcast_key=fleet.bcast_key)
    report = d.run()            # {meter: MeterResult}; d.stats: broadcast, unicast, ...

    osgp-meter dc --local download IMAGE --meters all --broadcast

Steps (broadcast mode):

1. each meter, unicast: ET04.82/.86 = the broadcast window the DC's
   sequence numbers will use (base UINT32, delta UINT16);
2. broadcast (unacknowledged, domain-wide, the broadcast key): EP08
   (announce; erases the inactive bank), then EP09 for every packet;
3. each meter, unicast: EP08 again (the same announcement resumes: the
   answer says how many packets arrived), ET17 for the missing ones, EP09
   for each, ET17 again until complete, then EP10.

Without ``broadcast`` step 1 and 2 are skipped and step 3 sends every packet.
A resume file (``state_file``) records the packets broadcast, the broadcast
sequence number and the meters done, so an interrupted download goes on
where it stopped (the meters' own bitmaps make that safe in any case).
"""
import json
import os
import struct
import sys
import time

from osgp_meter import fwimage
from osgp_meter import codebank as CB
from osgp_meter import lontalk as L
from osgp_meter.plc_node import UNACKD, UNACKD_RPT

from .plc_client import PlcSecurity, PlcError, write_request

EP08, EP09, EP10 = 2048 + 8, 2048 + 9, 2048 + 10
BT07 = 7
ET04 = 2048 + 4
ET17 = 2048 + 17
ET04_BCAST_BASE = 82
SAVE_EVERY = 16              # packets between two saves of the resume state
DEFAULT_PACKET = 64          # <= 70: BT07 header 3 + packet number 2 + data in 75 bytes
PLC_MAX_PACKET = 70
BROADCAST_DEST = (L.AF_BROADCAST, 0, 0)     # domain-wide, backlog 0
_EPOCH_2020 = 1577836800

REASONS = {
    CB.R_BAD_LENGTH: "bad parameter length", CB.R_BAD_ANNOUNCE: "image or packet size out of range",
    CB.R_TOO_LARGE: "image too large", CB.R_LOCKED: "safe image locked (ET04.102)",
    CB.R_IN_TRIAL: "previous switch awaits confirmation", CB.R_NO_DOWNLOAD: "no image announced",
    CB.R_BAD_PACKET: "bad packet", CB.R_CRC_MISMATCH: "not the announced image",
    CB.R_INCOMPLETE: "image incomplete", CB.R_BAD_HEADER: "bad image header",
    CB.R_WRONG_MODEL: "image for another model", CB.R_BAD_CRC: "image CRC does not verify",
    CB.R_BAD_MAC: "image MAC does not verify",
}


def default_bcast_seq(now_ms):
    """The first broadcast sequence number when none is known: 8 x seconds
    since 2020 on the DC's clock (a packet takes more than 1/8 s of airtime,
    so a later download starts above an earlier one's numbers)."""
    return (max(0, now_ms // 1000 - _EPOCH_2020) * 8) & 0xFFFFFFFF


class Refused(PlcError):
    """A procedure answered a non-zero result; ``reason`` is the codebank
    reason byte (docs/firmware-download.md)."""

    def __init__(self, proc, result, data, meter=None):
        self.result = result
        self.reason = data[0] if data else None
        self.data = bytes(data)
        text = "EP%02d result %d" % (proc - 2048, result)
        if self.reason is not None:
            text += ", reason 0x%02X (%s)" % (self.reason, REASONS.get(self.reason, "?"))
        super().__init__(0x04, text, meter)


class MeterResult:
    __slots__ = ("ok", "repaired", "bank", "version", "error")

    def __init__(self, ok, repaired=0, bank=None, version=None, error=None):
        self.ok = ok
        self.repaired = repaired
        self.bank = bank
        self.version = version
        self.error = error

    def as_json(self):
        return {"ok": self.ok, "repaired": self.repaired, "bank": self.bank,
                "version": self.version, "error": None if self.error is None else str(self.error)}

    def __repr__(self):
        if self.ok:
            return "switched to bank %s, version %s, %d packets by unicast" % (
                "AB"[self.bank], fwimage.version_text(self.version), self.repaired)
        return "failed: %s" % self.error


class Broadcaster:
    """Secured OSGP requests under the broadcast key, sent unacknowledged
    (``repeat`` > 0: unacknowledged-repeated) domain-wide from the DC, one
    sequence number each, paced so the DC's queue never overflows. AES mode
    (``aes``, default the DC's): sealed under the AES key derived from the
    broadcast key, the nonce's identity all zero (docs/security-modes.md)."""

    def __init__(self, dc, key, seq, repeat=0, gap_ms=None, psn=128, dest=BROADCAST_DEST,
                 aes=None):
        self.dc = dc
        self.dest = dest
        self.aes = bool(getattr(dc, "aes", False) if aes is None else aes)
        self.security = PlcSecurity(key, seq, aes=self.aes, broadcast=True)
        self.repeat = repeat
        self.gap_ms = gap_ms
        self.psn = psn
        self.sent = 0

    @property
    def seq(self):
        return self.security.seq

    def _gap(self, nbytes):
        if self.gap_ms is not None:
            return self.gap_ms
        ch = getattr(self.dc.link, "channel", None)
        # the frame's airtime (APDU + ~16 bytes of L2/NPDU/CRC), plus channel access
        air = ch.airtime_us(nbytes + 16) / 1000.0 if ch is not None else nbytes * 2.4
        return int(air * (1 + self.repeat)) + 80

    def send(self, req):
        r = self.security.build(req)
        service = UNACKD_RPT if self.repeat else UNACKD
        self.dc.transaction(self.dest, r.apdu, service, retries=self.repeat, timeout_ms=96)
        self.sent += 1
        self.dc.idle(self._gap(len(r.apdu)))

    def call(self, number, params):
        """A procedure by broadcast: a BT07 write (no BT08 read: nobody answers)."""
        self.psn = self.psn % 255 + 1
        self.send(write_request(BT07, struct.pack("<HB", number, self.psn) + bytes(params)))


class Download:
    """One image to many meters. See the module docstring."""

    def __init__(self, dc, image, meters, broadcast=False, packet_size=DEFAULT_PACKET,
                 bcast_key=None, bcast_seq=None, repeat=0, trial=0, restart=False,
                 rounds=3, state_file=None, progress=None, group=None):
        self.dc = dc
        self.image = bytes(image)
        h = fwimage.parse_header(self.image)
        if h is None or h.size != len(self.image):
            raise ValueError("not a firmware image (docs/firmware-download.md)")
        if not 1 <= packet_size <= PLC_MAX_PACKET:
            raise ValueError("packet size: 1-%d bytes (the PLC's 75-byte write)" % PLC_MAX_PACKET)
        if broadcast and bcast_key is None:
            raise ValueError("a broadcast download needs the broadcast key")
        self.header = h
        self.psize = packet_size
        self.packets = (len(self.image) + packet_size - 1) // packet_size
        self.targets = [dc.target(m) for m in meters]
        self.broadcast = broadcast
        self.bcast_key = bcast_key
        self.repeat = repeat
        self.trial = trial
        self.restart = restart
        self.rounds = rounds
        self.announce_repeats = 2
        # 14908-1 group (large group: size 0, unacknowledged) or domain-wide
        self.dest = BROADCAST_DEST if group is None else (L.AF_GROUP, group, 0)
        self.state_file = state_file
        self.progress = progress
        self.stats = dict(broadcast=0, unicast=0, retries=0, meters_done=0, failed=0)
        self.results = {}
        self.state = self._load_state(bcast_seq)

    # -- resume state ------------------------------------------------------------------
    def _key(self):
        return [self.header.crc, len(self.image), self.psize]

    def _load_state(self, bcast_seq):
        st = None
        if self.state_file and not self.restart and os.path.exists(self.state_file):
            with open(self.state_file) as f:
                st = json.load(f)
            if st.get("image") != self._key():
                st = None
        if st is None:
            st = {"image": self._key(), "broadcast_next": 0, "bcast_seq": None, "done": {}}
        # a number saved by an interrupted run: up to SAVE_EVERY after it may
        # have gone out unsaved (broadcast_all skips them in AES mode)
        self._unsaved = st["bcast_seq"] is not None and bcast_seq is None
        if bcast_seq is not None:
            st["bcast_seq"] = bcast_seq
        return st

    def _save_state(self):
        if not self.state_file:
            return
        tmp = self.state_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.state, f, sort_keys=True)
        os.replace(tmp, self.state_file)

    @property
    def resumed(self):
        return self.state["broadcast_next"] > 0 or bool(self.state["done"])

    # -- pieces ------------------------------------------------------------------------
    def packet(self, n):
        return self.image[n * self.psize:(n + 1) * self.psize]

    def _announce_params(self, restart):
        return (struct.pack("<IHH", len(self.image), self.psize, self.header.crc)
                + (b"\x01" if restart else b""))

    def _tick(self, note=None):
        if self.progress is not None:
            self.progress(self, note)

    def _call(self, t, number, params):
        """A unicast procedure with its BT08 answer; Refused on a non-zero result."""
        r, data = self.dc.call(t, number, params)
        self.stats["unicast"] += 1
        if r:
            raise Refused(number, r, data, str(t))
        return data

    def _post(self, t, number, params):
        """A unicast procedure without reading BT08 (EP09 repairs: ET17 tells)."""
        client = self.dc.client(t)
        client.psn = client.psn % 255 + 1
        body = struct.pack("<HB", number, client.psn) + bytes(params)
        try:
            client.write(BT07, body)
        except PlcError as exc:
            if exc.code != 0x04:
                raise
            client.psn = client.psn % 255 + 1          # the meter's last PSN was ours
            client.write(BT07, struct.pack("<HB", number, client.psn) + bytes(params))
        self.stats["unicast"] += 1

    def missing(self, t):
        """Packet numbers a meter's ET17 says it lacks."""
        raw = self.dc.read(t, ET17, 0, (self.packets + 7) // 8)
        return [n for n in range(self.packets) if not raw[n >> 3] & (1 << (n & 7))]

    # -- the phases --------------------------------------------------------------------
    def open_window(self, b):
        """Unicast to each meter: the broadcast window our numbers use."""
        need = self.packets - self.state["broadcast_next"] + 2
        data = struct.pack("<IH", b.seq & 0xFFFFFFFF, min(0xFFFF, need * (1 + self.repeat) + 16))
        for t in self.targets:
            if str(t) in self.state["done"]:
                continue
            try:
                self.dc.write(t, ET04, data, offset=ET04_BCAST_BASE)
                self.stats["unicast"] += 1
            except PlcError:
                self.stats["retries"] += 1     # it gets everything by unicast later
            self._tick()

    def broadcast_all(self):
        st = self.state
        seq = st["bcast_seq"]
        if seq is None:
            seq = default_bcast_seq(self.dc.now_ms)
        b = Broadcaster(self.dc, self.bcast_key, seq, self.repeat, dest=self.dest)
        if b.aes and self._unsaved:
            # AES mode: a sequence number is a nonce, and the resumed PSNs
            # differ from the lost run's, so never reuse one of its numbers
            b.security.seq = (b.security.seq + SAVE_EVERY) & 0xFFFFFFFF
        self.open_window(b)
        if st["broadcast_next"] == 0:
            # a meter that misses EP08 refuses every EP09: announce three
            # times (the same announcement again only resumes; the erase
            # flag, if any, goes on the first copy)
            for i in range(1 + self.announce_repeats):
                b.call(EP08, self._announce_params(self.restart and i == 0))
                self.stats["broadcast"] += 1
        for n in range(st["broadcast_next"], self.packets):
            b.call(EP09, struct.pack("<H", n) + self.packet(n))
            self.stats["broadcast"] += 1
            st["broadcast_next"] = n + 1
            st["bcast_seq"] = b.seq
            if n % SAVE_EVERY == SAVE_EVERY - 1:
                self._save_state()
            self._tick()
        st["bcast_seq"] = b.seq
        self._save_state()

    def complete(self, t):
        """Unicast phase for one meter: resume, fill the gaps, switch."""
        restart = self.restart and not self.broadcast
        data = self._call(t, EP08, self._announce_params(restart))
        received = data[3] | (data[4] << 8) if len(data) >= 5 else 0
        repaired = 0
        for _ in range(self.rounds):
            if received >= self.packets:
                break
            gaps = self.missing(t)
            if not gaps:
                break
            for n in gaps:
                self._post(t, EP09, struct.pack("<H", n) + self.packet(n))
                repaired += 1
                self._tick()
            received = self.packets - len(self.missing(t))
        params = struct.pack("<H", self.header.crc)
        if self.trial:
            params += struct.pack("<H", self.trial)
        data = self._call(t, EP10, params)
        return MeterResult(True, repaired, data[0], (data[1] << 8) | data[2])

    def run(self):
        """The whole download; {Target: MeterResult}."""
        if self.broadcast and self.state["broadcast_next"] < self.packets:
            self.broadcast_all()
        for t in self.targets:
            key = str(t)
            if key in self.state["done"]:
                self.results[t] = MeterResult(**self.state["done"][key])
                continue
            try:
                res = self.complete(t)
            except PlcError as exc:
                res = MeterResult(False, error=exc)
            self.results[t] = res
            if res.ok:
                self.stats["meters_done"] += 1
                self.state["done"][key] = {"ok": True, "repaired": res.repaired,
                                           "bank": res.bank, "version": res.version}
                self._save_state()
            else:
                self.stats["failed"] += 1
            self._tick(t)
        self.stats["retries"] += self.dc.stats.get("retries", 0)
        return self.results


# ---------------------------------------------------------------- the CLI

class Progress:
    """One updating line on stderr: packets broadcast, meters complete,
    unicast repairs, retries."""

    def __init__(self, err=None, quiet=False):
        self.err = err or sys.stderr
        self.quiet = quiet
        self.tty = hasattr(self.err, "isatty") and self.err.isatty()
        self._last = 0.0

    def line(self, d):
        s = d.stats
        return ("download: %d/%d packets broadcast, %d/%d meters complete, %d failed, "
                "%d unicast requests, %d retries" % (
                    d.state["broadcast_next"] if d.broadcast else 0, d.packets if d.broadcast else 0,
                    s["meters_done"], len(d.targets), s["failed"], s["unicast"],
                    s["retries"] + d.dc.stats.get("retries", 0)))

    def __call__(self, d, note=None):
        if self.quiet or not self.tty:
            return
        now = time.monotonic()
        if note is not None or now - self._last > 0.1:
            self._last = now
            self.err.write("\r\x1b[K" + self.line(d))
            self.err.flush()


def add_arguments(p):
    p.add_argument("image", help="firmware image file (osgp-meter fw-image build, "
                                 "osgp-meter fw-image)")
    p.add_argument("--meters", default="all", help="meters (as for read); default all (--local)")
    p.add_argument("--broadcast", action="store_true",
                   help="broadcast EP08/EP09 to the domain first, then complete by unicast")
    p.add_argument("--group", type=int, default=None,
                   help="broadcast to this 14908-1 group (0-255) instead of the whole domain")
    p.add_argument("--packet-size", type=int, default=DEFAULT_PACKET,
                   help="code bytes per EP09 (1-70, default 64)")
    p.add_argument("--repeat", type=int, default=0,
                   help="broadcast repeats (unacknowledged-repeated service), default 0")
    p.add_argument("--trial", type=int, default=0,
                   help="seconds a new image has to confirm itself (EP10; 0: the meter's 60)")
    p.add_argument("--restart", action="store_true",
                   help="erase and start over (EP08 flag), ignoring the resume file")
    p.add_argument("--bcast-key", default=None, help="the 12-byte PLC broadcast key as hex "
                                                     "(default: the profile's plc_broadcast)")
    p.add_argument("--bcast-seq", type=lambda s: int(s, 0), default=None,
                   help="first broadcast sequence number (default: the resume file's, "
                        "else from the clock)")
    p.add_argument("--resume-file", default=None,
                   help="resume state (default IMAGE.download.json; 'none' for no file)")
    p.add_argument("--json", action="store_true", help="print the per-meter results as JSON")


def run(args, out=None, err=None):
    """`osgp-meter dc … download IMAGE …`; exit status 0 when every meter switched."""
    from . import crypto_backend, profile as profiles
    from .dc import build_dc, parse_meters
    out = out or sys.stdout
    err = err or sys.stderr
    with open(args.image, "rb") as f:
        image = f.read()
    crypto_backend.install()
    dc, fleet = build_dc(args)
    try:
        if args.bcast_key:
            bkey = bytes.fromhex(args.bcast_key)
        else:
            data = profiles.load(args.profile)
            bkey = profiles.parse_key(data["keys"]["plc_broadcast"], "plc_broadcast")
        targets = parse_meters(args.meters, dc.names, fleet.meters if fleet else None)
        rf = args.resume_file or args.image + ".download.json"
        if rf == "none":
            rf = None
        prog = Progress(err, args.quiet)
        d = Download(dc, image, targets, broadcast=args.broadcast, packet_size=args.packet_size,
                     bcast_key=bkey, bcast_seq=args.bcast_seq, repeat=args.repeat,
                     trial=args.trial, restart=args.restart, state_file=rf, progress=prog,
                     group=args.group)
        if d.resumed and not args.quiet:
            err.write("resuming: %d/%d packets already broadcast, %d meters done\n"
                      % (d.state["broadcast_next"], d.packets, len(d.state["done"])))
        v0, w0 = dc.now_ms, time.monotonic()
        results = d.run()
        virt = (dc.now_ms - v0) / 1000.0
        wall = time.monotonic() - w0
        if prog.tty and not args.quiet:
            err.write("\r\x1b[K")
        if args.json:
            json.dump({str(t): r.as_json() for t, r in results.items()}, out, indent=1)
            out.write("\n")
        else:
            for t, r in results.items():
                print("%s: %r" % (t, r), file=out)
        if not args.quiet:
            err.write("%s (%d bytes, %d packets of %d): %s; %.1f s %s, %.2f s wall\n" % (
                os.path.basename(args.image), len(image), d.packets, d.psize,
                prog.line(d)[len("download: "):], virt, "virtual" if fleet else "real", wall))
        if rf and all(r.ok for r in results.values()) and os.path.exists(rf):
            os.remove(rf)               # finished: nothing to resume
        return 0 if all(r.ok for r in results.values()) else 1
    finally:
        dc.close()
