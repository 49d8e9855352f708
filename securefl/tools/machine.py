"""The machine and software a measurement ran on, so a report can be reproduced and judged.

Best effort: a fact that cannot be read on this platform is ``None`` rather
than an error (a report is still worth having without the CPU's model name).
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from securefl.errors import ConfigError

LIBRARIES = ("securefl", "numpy", "scikit-learn", "phe", "gmpy2", "tenseal", "diffprivlib", "cryptography",
             "coincurve", "matplotlib", "rich", "flwr", "pymife")
"""Distributions whose versions a report records (those that are not installed are left out)."""


def _first_line_with(path: str, prefix: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str | None:
    """The CPU's model name, or None if the system does not say."""
    return _first_line_with("/proc/cpuinfo", "model name") or platform.processor() or None


def memory_bytes() -> int | None:
    """Total physical memory in bytes, or None if unknown."""
    total = _first_line_with("/proc/meminfo", "MemTotal")
    if total and total.endswith("kB"):
        return int(total.split()[0]) * 1024
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def available_memory_bytes() -> int | None:
    """Memory a new allocation can get without swapping: ``MemAvailable`` (Linux), else the physical total."""
    avail = _first_line_with("/proc/meminfo", "MemAvailable")
    if avail and avail.endswith("kB"):
        return int(avail.split()[0]) * 1024
    return memory_bytes()


class InsufficientMemoryError(ConfigError):
    """A measurement would need more memory than the machine has available; the message says how much and the fix."""


def check_memory(needed: float, what: str, fix: str, *, available: int | None = None) -> None:
    """Raise :class:`InsufficientMemoryError` if ``needed`` bytes exceed the available memory (``None``: read it).

    Unknown available memory (a platform without ``/proc/meminfo`` or ``sysconf``) passes: the check is a
    guard against a certain out-of-memory kill, not a promise that the work fits.
    """
    from securefl.tools.units import format_bytes

    have = available_memory_bytes() if available is None else available
    if have is not None and needed > have:
        raise InsufficientMemoryError(f"{what} needs about {format_bytes(needed)} of memory and this machine has "
                                      f"{format_bytes(have)} available; {fix}")


def library_versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str]:
    """Installed versions of ``names``; a library not installed is left out."""
    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def source_revision() -> str | None:
    """The git commit of the securefl source tree in use, with ``-dirty`` if it has local changes."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=here,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return rev.stdout.strip() or None if rev.returncode == 0 else None


def describe() -> dict[str, Any]:
    """CPU, cores, memory, operating system, Python, library versions and source revision."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_bytes": memory_bytes(),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "libraries": library_versions(),
        "source_revision": source_revision(),
    }
