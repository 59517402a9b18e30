"""PLC physical and MAC parameters of the virtual channel, airtime and the
frame-loss curve (host side, CPython).

Every number here is either sourced (the tag in brackets names the source, as
in docs/plc-channel.md and the team's fact digest lontalk-transport-security.md)
or an **emulator profile** value: our own choice, labelled as such, to be
corrected when ETSI TS 103 908 can be checked.

Time on the channel is integer microseconds; parameters given in bit times
are converted with the configured bit rate (``PhyConfig.us(bits)``).
"""
import math
from dataclasses import dataclass, fields, replace

CARRIERS = ("primary", "secondary")     # index 0 and 1 everywhere
PRIMARY = 0
SECONDARY = 1

# Raw bit rates of the A-band channel. Both are configurable; "pldb" is the
# default because it is sourced twice over (3.6 kbit/s [PLDB p.12], and 35 bit
# times = 9.70 ms -> 277 µs/bit [PLDB p.244]); "seed" is the seed overview's
# "3.24 kbps raw channel data rate" for ETSI TS 103 908 (unconfirmed; the same
# slide says 2.36 kbps effective). 3.24 = 3.6 x 9/10: with bit_rate 3600 and
# fec 10/9 the payload airtime equals the seed's rate (a reading, not a fact).
RATE_PROFILES = {
    "pldb": 3600,
    "seed": 3240,
}


class ConfigError(ValueError):
    """A PHY/MAC parameter that cannot be used; the message names it."""


def _check_keys(cls, d, where):
    names = {f.name for f in fields(cls)}
    for k in d:
        if k not in names:
            import difflib
            near = difflib.get_close_matches(k, sorted(names), n=1)
            hint = " (did you mean %r?)" % near[0] if near else ""
            raise ConfigError("%s: unknown key %r%s; known: %s"
                              % (where, k, hint, ", ".join(sorted(names))))


def _num(v, name, where, lo=None, hi=None, integer=False):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError("%s: %s must be a number, not %r" % (where, name, v))
    if integer and int(v) != v:
        raise ConfigError("%s: %s must be a whole number, not %r" % (where, name, v))
    if lo is not None and v < lo:
        raise ConfigError("%s: %s = %r is below the minimum %r" % (where, name, v, lo))
    if hi is not None and v > hi:
        raise ConfigError("%s: %s = %r is above the maximum %r" % (where, name, v, hi))
    return int(v) if integer else v


@dataclass(frozen=True)
class PhyConfig:
    """Physical layer of the channel.

    profile       name of the bit-rate profile the rate came from ("pldb", "seed", "custom")
    bit_rate      raw bit rate in bit/s                                   [PLDB p.12] 3600
    fec           FEC expansion factor (coded bits per data bit, >= 1)    emulator: 1.0 (unknown, [PLDB p.12] "low-overhead FEC")
    preamble_bits preamble length in bit times                           [PLDB p.244] 35
    eof_bits      end-of-frame code violation in bit times               [MCHP] 3
    capture_db    a frame survives a collision at a receiver when it is
                  at least this much stronger than every overlapping one  emulator: 10 dB
    cross_carrier_collisions  frames on the primary and the secondary
                  carrier collide with each other (one receiver, one band)  emulator: true
    ber_mid_snr_db  SNR at which the residual bit error rate is 0.25      emulator: 0 dB
    ber_slope_db    dB per e-fold of the logistic BER curve               emulator: 1 dB
    """
    profile: str = "pldb"
    bit_rate: int = RATE_PROFILES["pldb"]
    fec: float = 1.0
    preamble_bits: int = 35
    eof_bits: int = 3
    capture_db: float = 10.0
    cross_carrier_collisions: bool = True
    ber_mid_snr_db: float = 0.0
    ber_slope_db: float = 1.0

    @classmethod
    def from_dict(cls, d, where="[phy]"):
        d = dict(d)
        _check_keys(cls, d, where)
        base = cls()
        prof = d.pop("profile", None)
        if prof is not None:
            if prof not in RATE_PROFILES:
                raise ConfigError("%s: profile %r is not one of %s"
                                  % (where, prof, ", ".join(sorted(RATE_PROFILES))))
            base = replace(base, profile=prof, bit_rate=RATE_PROFILES[prof])
        for k in ("bit_rate", "preamble_bits", "eof_bits"):
            if k in d:
                d[k] = _num(d[k], k, where, lo=1 if k == "bit_rate" else 0, integer=True)
        if "bit_rate" in d and d["bit_rate"] != base.bit_rate:
            if prof is not None:
                raise ConfigError("%s: profile %r means bit_rate %d; give one or the other"
                                  % (where, prof, base.bit_rate))
            d["profile"] = "custom"
        if "fec" in d:
            d["fec"] = float(_num(d["fec"], "fec", where, lo=1.0, hi=4.0))
        for k in ("capture_db", "ber_mid_snr_db"):
            if k in d:
                d[k] = float(_num(d[k], k, where))
        if "ber_slope_db" in d:
            d["ber_slope_db"] = float(_num(d["ber_slope_db"], "ber_slope_db", where, lo=0.01))
        if "cross_carrier_collisions" in d and not isinstance(d["cross_carrier_collisions"], bool):
            raise ConfigError("%s: cross_carrier_collisions must be true or false" % where)
        return replace(base, **d)

    # -- derived numbers ------------------------------------------------------

    def us(self, bits):
        """Duration of ``bits`` bit times in integer µs (rounded)."""
        return int(round(bits * 1_000_000 / self.bit_rate))

    def frame_bits(self, nbytes):
        """Bit times on the wire for a frame of ``nbytes`` (L2 header + NPDU +
        CRC): preamble + coded payload + end-of-frame code violation."""
        data = 8 * nbytes
        coded = data if self.fec == 1.0 else int(math.ceil(data * self.fec - 1e-9))
        return self.preamble_bits + coded + self.eof_bits

    def airtime_us(self, nbytes):
        """Airtime of a frame of ``nbytes`` in integer µs (rounded up)."""
        bits = self.frame_bits(nbytes)
        return -(-bits * 1_000_000 // self.bit_rate)

    def ber(self, snr_db):
        """Residual bit error rate (after FEC) at ``snr_db``: a logistic in SNR,
        0.5 at very low SNR. Emulator curve."""
        x = (snr_db - self.ber_mid_snr_db) / self.ber_slope_db
        if x > 700.0:
            return 0.0
        return 0.5 / (1.0 + math.exp(x))

    def frame_loss(self, snr_db, nbytes):
        """Probability that a frame of ``nbytes`` is lost (any bit wrong, so the
        CRC fails) at ``snr_db``: 1 - (1 - BER)^(8 n)."""
        b = self.ber(snr_db)
        if b <= 0.0:
            return 0.0
        return -math.expm1(8 * nbytes * math.log1p(-b))

    def snr_for_loss(self, p, nbytes):
        """The SNR (dB) at which a frame of ``nbytes`` is lost with probability p."""
        if not 0.0 < p < 1.0:
            raise ValueError("p must be in (0, 1)")
        b = -math.expm1(math.log1p(-p) / (8 * nbytes))
        return self.ber_mid_snr_db + self.ber_slope_db * math.log(0.5 / b - 1.0)


@dataclass(frozen=True)
class MacConfig:
    """Predictive p-persistent CSMA (ISO/IEC 14908-1 MAC) of the channel.

    beta1_tx_bits  idle time after the node's own transmission, bit times   emulator: 17.5 (PLT-22 "min interpacket" [PLT22])
    beta1_rx_bits  idle time after a received packet, bit times             emulator: 19.1 (17.5 + 1.6 "rcv end delay" [PLT22])
    beta2_bits     randomising (and priority) slot width, bit times         emulator: 10.1 (PLT-22 "indeterminate time" [PLT22])
    priority_slots number of priority slots after beta1 (0..127)            [EX LtXcvrId] 0 for the NES/OSGP PL-20A variant (8 on the standard PL-20A)
    w_base         randomising window per unit of backlog                   [MCHP][MIS] 16
    backlog_max    cap of the backlog estimate                              [MCHP] 63
    packet_cycle_bits  idle time after which the backlog drops by 1         emulator: 720 bit times (200 ms at 3.6 kbit/s)
    queue_limit    frames a node may have waiting for the channel           emulator: 64
    """
    beta1_tx_bits: float = 17.5
    beta1_rx_bits: float = 19.1
    beta2_bits: float = 10.1
    priority_slots: int = 0
    w_base: int = 16
    backlog_max: int = 63
    packet_cycle_bits: float = 720.0
    queue_limit: int = 64

    @classmethod
    def from_dict(cls, d, where="[mac]"):
        d = dict(d)
        _check_keys(cls, d, where)
        for k in ("beta1_tx_bits", "beta1_rx_bits"):
            if k in d:
                d[k] = float(_num(d[k], k, where, lo=0))
        if "beta2_bits" in d:
            d["beta2_bits"] = float(_num(d["beta2_bits"], "beta2_bits", where, lo=0.1))
        if "packet_cycle_bits" in d:
            d["packet_cycle_bits"] = float(_num(d["packet_cycle_bits"], "packet_cycle_bits", where, lo=1))
        if "priority_slots" in d:
            d["priority_slots"] = _num(d["priority_slots"], "priority_slots", where, 0, 127, True)
        if "w_base" in d:
            d["w_base"] = _num(d["w_base"], "w_base", where, 1, 64, True)
        if "backlog_max" in d:
            d["backlog_max"] = _num(d["backlog_max"], "backlog_max", where, 1, 63, True)
        if "queue_limit" in d:
            d["queue_limit"] = _num(d["queue_limit"], "queue_limit", where, 1, None, True)
        return replace(cls(), **d)


def header(priority=False, alt_path=False, delta_backlog=0):
    """The L2 header byte (byte 0 of a frame) [WS-LON]: bit 7 priority, bit 6
    alternate path (the secondary carrier on PL), bits 5-0 delta backlog."""
    if not 0 <= delta_backlog <= 63:
        raise ValueError("delta backlog is 0..63")
    return (0x80 if priority else 0) | (0x40 if alt_path else 0) | delta_backlog
