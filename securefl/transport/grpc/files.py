"""Atomic file replacement for state that must survive a crash whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path


def atomic_write(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: a crash at any moment leaves the old or the new file, never a torn one.

    The bytes go to a temporary file in the same directory (mode 0600 from the
    start), which is flushed and fsync'ed, then ``os.replace``d over ``path``; the
    directory is fsync'ed so the rename itself is durable.
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
