"""The one atomic writer: how every piece of securefl state reaches the disk (key store, checkpoints, state files,
the run's JSON result).

:func:`write_private` is the one way to write such a file.  What it promises:

* atomic: a crash at any moment leaves the old or the new content, never a torn file;
* durable: when it returns, the data and the rename are on disk (file and directory fsync'ed);
* private: the file has mode 0600 from its first byte (``tempfile.mkstemp``), whatever the umask, unless the
  caller asks for a wider ``mode`` for a file that holds nothing secret (a run's JSON result);
* its directory is made (mode 0700) if missing, so a state directory need not exist beforehand;
* no predictable temporary name and no following of symlinks: the temporary file is made by
  ``mkstemp`` (``O_CREAT | O_EXCL | O_NOFOLLOW``, random name) in the target's own directory, and
  ``os.replace`` replaces a symlink planted at ``path`` instead of writing through it.

What it does not promise: protection against another process of the same user, who may
read or replace the directory's contents anyway; keep state directories private (0700).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from securefl.errors import StateError


def write_private(path: str | Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically, durably, with ``mode`` (0600; see the module docstring)."""
    target = Path(path)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            if mode != 0o600:
                os.fchmod(fh.fileno(), mode)  # before any byte is written, so the file is never wider than asked
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_private(path: str | Path) -> bytes | None:
    """The bytes of ``path`` (``None`` if it does not exist); refuses links and files others may read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read the state file {path}: {exc.strerror} (a symbolic link is refused)") from None
    with os.fdopen(fd, "rb") as fh:
        mode = os.fstat(fh.fileno()).st_mode
        if not stat.S_ISREG(mode) or mode & 0o077:
            raise StateError(f"the state file {path} is not a regular file of mode 0600; it guards the federation's "
                             f"privacy: check who changed it, then run chmod 600 {path}")
        return fh.read()
