"""What every command shares: the two consoles, output-path checks, the JSON writer and the progress bar.

Commands print progress and errors on ``console`` (stderr) and results on ``out`` (stdout).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from securefl.core import jsonout
from securefl.errors import ConfigError
from securefl.state.atomic import write_private

if TYPE_CHECKING:  # the result type only: importing the core would slow every command's start
    from securefl.core.federation import RunResult

EXIT_ERROR = 2
console = Console(stderr=True, highlight=False)
# wide enough for the bench table when writing to a file or a pipe
out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def check_parent(path: str, flag: str) -> Path:
    """``path`` as a file to write: its directory exists and is writable, and it is not a directory itself."""
    target = Path(path)
    parent = target.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist; create it first"
        raise ConfigError(f"{flag} {path!r}: {str(parent)!r} {what}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path!r}: directory {str(parent)!r} is not writable; choose another path")
    if target.is_dir():
        raise ConfigError(f"{flag} {path!r} is a directory; give a file name")
    if target.exists() and not os.access(target, os.W_OK):
        raise ConfigError(f"{flag} {path!r}: the existing file is not writable; choose another path")
    return target


def check_plot(path: str | None) -> None:
    """``--plot PATH``, when given: a writable file name ending in ``.png``."""
    if path is None:
        return
    if Path(path).suffix.lower() != ".png":
        raise ConfigError(f"--plot {path!r}: plots are PNG files; give a name ending in .png")
    check_parent(path, "--plot")


def check_out_dir(path: str, flag: str = "--out") -> Path:
    """``path`` as an output directory: an existing writable directory, or a new one in a writable directory."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{flag} {path!r} is an existing file, not a directory; give a directory "
                          "(it is created if missing)")
    if target.is_dir():
        if not os.access(target, os.W_OK | os.X_OK):
            raise ConfigError(f"{flag} {path!r}: the directory is not writable; choose another one")
        return target
    check_parent(path, flag)
    return target


def parties(text: str) -> list[int]:
    """``--parties 10,100,1000``: one or several positive counts."""
    try:
        counts = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not counts or any(c < 1 for c in counts):
        raise argparse.ArgumentTypeError(f"{text!r}: every party count must be a positive integer")
    return counts


def write_json(path: str | None, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` as JSON to ``path`` atomically (the one atomic writer); nothing if no path."""
    if not path:
        return
    # a reader never sees half a result; the result holds nothing secret, so it may be world-readable
    write_private(check_parent(path, "--json"), (jsonout.dumps(payload) + "\n").encode("utf-8"), mode=0o644)


def result_json(path: str | None) -> Callable[[RunResult], None]:
    """The one writer of a run's ``--json``: its final result, or a stopped run's rounds so far and why it stopped.

    A command passes it as the run's ``on_stop`` and calls it with the final result, so both go to ``path``
    the same way (nothing without a path).
    """
    return lambda result: write_json(path, result.as_json())


def progress() -> Progress:
    """A progress bar on stderr, shown only when stderr is a terminal (see :class:`Steps` for the other case)."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False, disable=not console.is_terminal)


class Steps:
    """A long command's progress on stderr: a bar on a terminal, otherwise one line per step.

    A run whose stderr is a pipe, a log file or a CI console still shows what it is
    doing and how long each step took: ``[k/N] label (started at +E s; the last
    step took S s)``.  :meth:`note` prints a line either way (an estimate, a result).
    """

    def __init__(self, name: str, total: int) -> None:
        self.name, self.total, self.done = name, total, 0
        self.bar = progress()
        self.task = self.bar.add_task(name, total=total)
        self.started = self.last = time.perf_counter()

    def __enter__(self) -> Steps:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if not console.is_terminal and self.done:
            console.print(f"{self.name}: {self.done} step(s) in {time.perf_counter() - self.started:.1f} s")
        self.bar.__exit__(None, None, None)

    def step(self, label: str, *, advance: bool = True) -> None:
        """Step ``label`` starts (``advance``: it counts towards the total)."""
        now = time.perf_counter()
        if advance:
            self.done += 1
            self.bar.advance(self.task)
        self.bar.update(self.task, description=label)
        if not console.is_terminal:
            took = f"; the last step took {now - self.last:.1f} s" if self.done > 1 else ""
            at = now - self.started
            console.print(Text(f"{self.name} [{self.done}/{self.total}] {label} (at +{at:.1f} s{took})"))
        self.last = now

    def note(self, text: str) -> None:
        """A line of its own, above the bar on a terminal."""
        console.print(Text(text))
