"""`osgp-meter serve`: one meter on its MEP and optical serial ports.

A single-threaded loop: wait on the ports (select) until data arrives or the
earliest protocol deadline, feed the sans-IO sessions with the wall-clock time
in milliseconds, write what they answer. SIGTERM and Ctrl-C stop it cleanly,
committing to the state directory (if one is given) after every answered
request, before the answer is sent (docs/persistence.md).
"""
import os
import select
import signal
import sys
import time

from osgp_meter import c1218
from osgp_meter.firmware import Firmware

from . import crypto_backend
from . import ports
from . import profile as profiles
from . import state as states

IDLE_POLL_S = 0.02     # for ports that cannot be select()ed (some URLs)
REOPEN_EVERY_S = 1.0   # a lost serial port or socket is retried this often


def now_ms():
    return time.time_ns() // 1_000_000


class _Stop(BaseException):
    """SIGTERM. A BaseException, like KeyboardInterrupt, so library code
    that catches Exception (pyserial's socket opener does) cannot swallow it."""


_stopping = []


def _raise_stop(signum, frame):
    _stopping.append(signum)
    raise _Stop()


def build(profile_path=None, state_dir=None, with_state=False):
    """The meter of a profile, its saved state loaded from state_dir (which
    then persists every fw.commit(), docs/persistence.md). Returns (fw,
    config), or (fw, config, StateDir or None) with with_state=True."""
    crypto_backend.install()          # RC4 through `cryptography` on the host
    config = profiles.load_config(profile_path)
    now = now_ms()
    # The saved state goes back through the firmware's restore hook: after
    # the store, before the PLC node, the features and the metering, which
    # build their RAM state from it (features' nv_parts get their saved
    # bytes as they register, meter/persist.py).
    sd = states.StateDir(state_dir) if state_dir else None
    fw = Firmware(dict(config, restore=sd.open) if sd is not None else config, now)
    if sd is not None:
        if fw.meter.banks is not None:
            # code-bank bytes next to the state: a download resumes after a cut
            from . import codebank_store
            codebank_store.attach(fw, os.path.join(state_dir, "banks"))
        fw.meter.on_save = lambda meter: fw.commit()
        fw.commit()                   # what booting changed
    return (fw, config, sd) if with_state else (fw, config)


def serve(mep_spec="pty", optical_spec="pty", profile_path=None, state_dir=None, out=sys.stdout):
    fw, config, sd = build(profile_path, state_dir, with_state=True)
    endpoints = []   # (port, session)
    if mep_spec:
        p = ports.open_port(mep_spec, config["mep_baud"])
        endpoints.append((p, fw.mep))
        print("mep: %s" % p.name, file=out, flush=True)
    if optical_spec:
        p = ports.open_port(optical_spec, config["optical_baud"])
        endpoints.append((p, fw.optical))
        print("optical: %s" % p.name, file=out, flush=True)
    del _stopping[:]
    old_term = signal.signal(signal.SIGTERM, _raise_stop)
    retry_at = 0.0
    try:
        while not _stopping:
            now = now_ms()
            timeout = 1.0
            due = fw.tick(now)          # the meter's own time-based work
            fw.commit()                 # (nothing to do without a state dir)
            if due is not None:
                timeout = min(timeout, max(0.0, (due - now) / 1000.0))
            selectable = []
            for port, session in endpoints:
                if port.closed and time.monotonic() >= retry_at:
                    if port.reopen():
                        print("%s: reconnected" % port.name, file=sys.stderr, flush=True)
                    else:
                        retry_at = time.monotonic() + REOPEN_EVERY_S
            for port, session in endpoints:
                d = session.deadline
                if d is not None:
                    timeout = min(timeout, max(0.0, (d - now) / 1000.0))
                if port.closed:
                    timeout = min(timeout, REOPEN_EVERY_S)
                elif port.fileno() is None:
                    timeout = min(timeout, IDLE_POLL_S)
                else:
                    selectable.append(port)
            ready = select.select(selectable, [], [], timeout)[0] if selectable else time.sleep(timeout) or []
            now = now_ms()
            for port, session in endpoints:
                if port.closed:
                    continue
                if port in ready or port.fileno() is None:
                    data = port.read()
                    if port.closed:
                        print("%s: connection lost (%s); retrying" % (port.name, port.error),
                              file=sys.stderr, flush=True)
                        retry_at = time.monotonic() + REOPEN_EVERY_S
                        continue
                    if data:
                        answer = session.feed(data, now)
                        fw.commit()     # committed = acknowledged: before the answer leaves
                        if answer:
                            port.write(answer)
                        _follow_baud(port, session)
                answer = session.poll(now)
                fw.commit()
                if answer:
                    port.write(answer)
    except (_Stop, KeyboardInterrupt):
        pass
    finally:
        signal.signal(signal.SIGTERM, old_term)
        if sd is not None:
            fw.commit()
            sd.close()
        for port, _ in endpoints:
            port.close()
    return 0


def _follow_baud(port, session):
    # The optical session negotiates a line speed (C12.18 baud-rate codes).
    code = getattr(session, "baud_code", None)
    if code and code < len(c1218.BAUD_RATES) and c1218.BAUD_RATES[code]:
        port.set_baudrate(c1218.BAUD_RATES[code])
