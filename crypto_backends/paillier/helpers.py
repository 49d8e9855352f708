"""Helper processes that let one party's encryption use every core.

The fixed-base multiplications of DJN encryption hold Python's GIL (gmpy2
releases it only inside whole exponentiations), so threads do not help; helper
*processes* do.  A helper is a plain ``python -I`` child running
:mod:`._helper`, fed the public key once and then obfuscator counts over a pipe;
it answers with fixed-width bytes.  Nothing is pickled, no key object crosses,
and the private key never leaves this process.

Helpers are started lazily for the first large enough encryption under a key,
kept for the following rounds (one key at a time; a new key replaces them), and
ended when their pipes close (at interpreter exit, or :func:`shutdown`).  If a
helper cannot start or dies, the caller computes everything itself and, after a
``RuntimeWarning``, starts no more helpers in this process.
"""

from __future__ import annotations

import atexit
import os
import struct
import subprocess
import sys
import threading
import warnings
from pathlib import Path

_SCRIPT = str(Path(__file__).with_name("_helper.py"))
_lock = threading.Lock()
_pool: tuple[bytes, list[_Helper]] | None = None
_failed = False  # after a helper failure this process stops starting new ones


class _Helper:
    """One child process and its pipes."""

    def __init__(self, key_bytes: int, n: int, hs: int, exponent_bytes: int) -> None:
        self.width = 2 * key_bytes
        self.owner_pid = os.getpid()
        self.busy = threading.Lock()
        # -I: isolated mode, so neither the working directory nor PYTHON* variables shape the child
        self.proc = subprocess.Popen(
            [sys.executable, "-I", _SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        if self.proc.stdin is None or self.proc.stdout is None:  # cannot happen with PIPE; typed for mypy
            self.close()
            raise OSError("paillier helper started without pipes")
        self._stdin, self._stdout = self.proc.stdin, self.proc.stdout
        try:
            self._send(struct.pack(">H", key_bytes) + n.to_bytes(key_bytes, "big")
                       + hs.to_bytes(2 * key_bytes, "big") + struct.pack(">H", exponent_bytes))
        except OSError:
            self.close()
            raise

    def _send(self, data: bytes) -> None:
        self._stdin.write(data)
        self._stdin.flush()

    def request(self, count: int) -> bool:
        """Ask for ``count`` obfuscators; False (and the helpers discarded) if it is gone."""
        try:
            self._send(struct.pack(">I", count))
            return True
        except (OSError, ValueError):  # ValueError: its pipe was closed after another helper failed
            discard(self)
            return False

    def receive(self, count: int) -> bytes:
        """The answer to :meth:`request`; :class:`OSError` if the helper is gone."""
        try:
            data = self._stdout.read(count * self.width)
        except ValueError:
            raise OSError("paillier helper pipe closed") from None
        if len(data) != count * self.width:
            raise OSError("paillier helper process ended early")
        return data

    def close(self) -> None:
        """Close the pipes (the helper exits on end of input) and reap the process."""
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def helpers_for(key_id: bytes, key_bytes: int, n: int, hs: int, exponent_bytes: int, wanted: int) -> list[_Helper]:
    """Up to ``wanted`` running helpers for this public key (started on first use)."""
    global _pool
    if wanted < 1 or _failed:
        return []
    with _lock:
        if _pool is not None and _pool[1] and _pool[1][0].owner_pid != os.getpid():
            _pool = None  # inherited through fork: those pipes belong to the parent process
        if _pool is not None and _pool[0] == key_id and len(_pool[1]) >= wanted:
            return _pool[1][:wanted]
        if _pool is not None:
            for helper in _pool[1]:
                helper.close()
            _pool = None
        started: list[_Helper] = []
        try:
            for _ in range(wanted):
                started.append(_Helper(key_bytes, n, hs, exponent_bytes))
        except (OSError, ValueError) as exc:
            for helper in started:
                helper.close()
            _give_up(f"could not start one: {exc}")
            return []
        _pool = (key_id, started)
        return started


def discard(helper: _Helper) -> None:
    """End the helpers after one failed; this process then encrypts on its own."""
    global _pool
    with _lock:
        if _pool is not None and helper in _pool[1]:
            for h in _pool[1]:
                h.close()
            _pool = None
    _give_up("one ended early or answered out of range")


def _give_up(reason: str) -> None:
    global _failed
    if not _failed:
        _failed = True
        warnings.warn(f"paillier helper processes disabled ({reason}); encrypting in this process only",
                      RuntimeWarning, stacklevel=3)


def default_processes() -> int:
    """The number of helper processes used when none is configured: one per CPU."""
    return max(1, os.cpu_count() or 1)


@atexit.register
def shutdown() -> None:
    """End every helper process (also run at interpreter exit); helpers may start again later."""
    global _pool, _failed
    _failed = False
    with _lock:
        if _pool is not None:
            for helper in _pool[1]:
                if helper.owner_pid == os.getpid():
                    helper.close()
            _pool = None
