"""Loaded at start-up by every Python process whose path holds this folder: records which watched files it opens.

Set ``SECUREFL_OPEN_LOG`` (a folder) and ``SECUREFL_OPEN_WATCH`` (a substring of the paths to watch): each
process appends ``path`` lines to ``<folder>/<pid>.log``, whose first line is its command line.  A test uses
it to show which process read which party's file (Python's audit hooks see every ``open``).
"""

from __future__ import annotations

import os
import sys

_folder = os.environ.get("SECUREFL_OPEN_LOG")
_watch = os.environ.get("SECUREFL_OPEN_WATCH")

if _folder and _watch:
    _log = os.path.join(_folder, f"{os.getpid()}.log")
    with open(_log, "a", encoding="utf-8") as _fh:
        _fh.write(" ".join(sys.argv) + "\n")

    def _record(event: str, args: tuple[object, ...]) -> None:
        if event != "open" or not args or not isinstance(args[0], (str, bytes, os.PathLike)):
            return
        path = os.fsdecode(args[0])  # type: ignore[arg-type]
        if _watch and _watch in path:
            with open(_log, "a", encoding="utf-8") as fh:
                fh.write(path + "\n")

    sys.addaudithook(_record)
