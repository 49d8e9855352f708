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
helper cannot start or dies, the caller computes everything itself.
"""

from __future__ import annotations

import atexit
import os
import struct
import subprocess
import sys
import threading
from pathlib import Path

_SCRIPT = str(Path(__file__).with_name("_helper.py"))
_lock = threading.Lock()
_pool: tuple[bytes, list[_Helper]] | None = None


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
        self._send(struct.pack(">H", key_bytes) + n.to_bytes(key_bytes, "big")
                   + hs.to_bytes(2 * key_bytes, "big") + struct.pack(">H", exponent_bytes))

    def _send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def request(self, count: int) -> bool:
        """Ask for ``count`` obfuscators; False (and the helper discarded) if it is gone."""
        try:
            self._send(struct.pack(">I", count))
            return True
        except OSError:
            discard(self)
            return False

    def receive(self, count: int) -> bytes:
        assert self.proc.stdout is not None
        data = self.proc.stdout.read(count * self.width)
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
    if wanted < 1:
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
        try:
            started = [_Helper(key_bytes, n, hs, exponent_bytes) for _ in range(wanted)]
        except OSError:
            return []
        _pool = (key_id, started)
        return started


def discard(helper: _Helper) -> None:
    """Forget a helper that failed; the next call starts fresh ones."""
    global _pool
    with _lock:
        if _pool is not None and helper in _pool[1]:
            for h in _pool[1]:
                h.close()
            _pool = None


def default_processes() -> int:
    return max(1, os.cpu_count() or 1)


@atexit.register
def shutdown() -> None:
    """End every helper process (also run at interpreter exit)."""
    global _pool
    with _lock:
        if _pool is not None:
            for helper in _pool[1]:
                if helper.owner_pid == os.getpid():
                    helper.close()
            _pool = None
