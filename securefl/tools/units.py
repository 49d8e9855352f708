"""Human-readable seconds and byte counts, shared by the command line and the reports."""

from __future__ import annotations

import math


def _nan(x: float) -> bool:
    return isinstance(x, float) and math.isnan(x)


def format_seconds(x: float | None) -> str:
    """``0.0123`` -> ``"12.30 ms"``, ``3.2`` -> ``"3.20 s"``; ``None`` or NaN -> ``"-"``."""
    if x is None or _nan(x):
        return "-"
    return f"{x * 1e3:.2f} ms" if x < 1 else f"{x:.2f} s"


def format_bytes(b: float | None) -> str:
    """``2048`` -> ``"2.0 KiB"``; ``None`` or NaN -> ``"-"``."""
    if b is None or _nan(b):
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if b < 1024 or unit == "GiB":
            return f"{b:.0f} {unit}" if unit == "B" else f"{b:.1f} {unit}"
        b /= 1024
    return ""
