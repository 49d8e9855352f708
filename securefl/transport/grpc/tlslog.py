"""Log refused TLS handshakes with the peer's address (the aggregator and authority processes).

A failed handshake never reaches Python: gRPC's server refuses it inside its C
core, before any RPC exists, so no interceptor or servicer sees it, and gRPC
Python offers no hook for it.  What the core offers is its ``handshaker``
trace, which names each server-side connection's peer address and, for a
refused one, the TLS error.  :func:`install` turns that trace on (it must run
before ``grpc`` is imported: the core reads ``GRPC_TRACE`` once), and relays
this process's standard error through a pipe: trace lines are read, a refused
handshake is logged by ``securefl.transport`` as ``TLS handshake from <peer>
refused: <reason>``, and every other line is passed through unchanged.

What is promised: in a process that called :func:`install` first, each TLS
handshake the server refuses (no client certificate, one from another CA, an
expired one, plaintext) is logged once with the peer address, at WARNING.
What is not: the trace format is gRPC's internal one (checked by a test against
the installed gRPC, with a real handshake); a gRPC release that changes it
turns the refusal log off, nothing else.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import select
import sys
import threading

log = logging.getLogger(__name__)

_TRACE_LINE = re.compile(
    rb"^[IWEF]\d{4} [\d:.]+\s+(\d+) (?:handshaker\.cc|channel_trace\.h|ssl_transport_security\.cc|trace\.cc)")
# a trace record may span lines (an error status carries a source-location block): its continuation lines
_CONTINUATION = re.compile(rb"^(?:=== Source Location Trace|src/core/| shutdown=|.*grpc\.internal\.)")
_FAILED = re.compile(rb"CallNextHandshakerLocked: error=(?!OK )(.+)")
_SERVER_PEER = re.compile(rb"grpc\.internal\.endpoint_peer_address=([^,}]+).*grpc\.internal\.server_credentials=",
                          re.DOTALL)
_installed = False
_QUIET = 0.5
"""Seconds of silence on standard error after which a trace record is complete."""


def install() -> bool:
    """Turn on the refusal log for this process; ``False`` (and a warning) if ``grpc`` is already imported."""
    global _installed
    if _installed:
        return True
    if "grpc" in sys.modules:
        log.warning("TLS refusals cannot be logged in this process: grpc was imported before securefl could "
                    "enable its handshake trace")
        return False
    # a verbosity that hides gRPC's INFO lines hides its traces too (flwr, for one, sets "error" when imported
    # in a parent process, and children inherit it): back to gRPC's default, which prints them
    if os.environ.get("GRPC_VERBOSITY", "").strip().upper() in {"ERROR", "NONE"}:
        del os.environ["GRPC_VERBOSITY"]
    traces = [t for t in os.environ.get("GRPC_TRACE", "").split(",") if t]
    os.environ["GRPC_TRACE"] = ",".join([*traces, "handshaker"])
    read_end, write_end = os.pipe()
    original = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)
    relay = threading.Thread(target=_relay, args=(read_end, original, not traces), name="tls-refusal-log",
                             daemon=True)
    relay.start()

    def drain() -> None:
        # at exit, what is still in the pipe (the run's last messages) must reach the real standard error:
        # fd 2 back to it closes the pipe's only write end, so the relay reads to the end and stops
        sys.stderr.flush()
        os.dup2(original, 2)
        relay.join(5.0)

    atexit.register(drain)
    _installed = True
    return True


def _relay(read_end: int, original: int, swallow_traces: bool) -> None:
    """Pass standard error through, logging refused handshakes; never stops reading (a full pipe would block).

    A trace record ends at the next line that does not continue it, or when nothing more
    arrives for :data:`_QUIET` seconds: a refusal that is the last thing written is
    logged then, not only when some later line happens to come.
    """
    record: list[bytes] = []  # the trace record being read: its first line and its continuation lines
    pending = b""
    while True:
        if record and not select.select([read_end], [], [], _QUIET)[0]:
            _check(b"".join(record))
            record = []
            continue
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            line = raw + b"\n"
            trace = _TRACE_LINE.match(line)
            if trace is None and record and _CONTINUATION.match(line):
                record.append(line)
            else:
                if record:
                    _check(b"".join(record))
                record = [line] if trace is not None else []
                if trace is None:
                    os.write(original, line)
                    continue
            if not swallow_traces:
                os.write(original, line)
    if record:
        _check(b"".join(record))
    if pending:
        os.write(original, pending)
    os.close(read_end)


def _check(record: bytes) -> None:
    """Log ``record`` if it is a server-side handshake that failed (the step that failed names the peer)."""
    try:
        failed, server_side = _FAILED.search(record), _SERVER_PEER.search(record)
        if failed is None or server_side is None:
            return
        why = failed.group(1).decode(errors="replace").strip().removesuffix(": OK").split("SSL_ERROR_SSL: ")[-1]
        log.warning("TLS handshake from %s refused: %s", server_side.group(1).decode(errors="replace"), why[:300])
    except Exception:  # noqa: BLE001 - the relay must go on whatever a line holds
        pass
