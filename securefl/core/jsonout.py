"""Strict JSON out: NaN and infinities become ``null``, so every JSON file securefl writes parses anywhere.

Python's :mod:`json` writes ``NaN`` and ``Infinity`` by default, which strict
parsers (browsers, ``jq``, other languages' libraries, and securefl's own bounded
header parser) refuse.  A metric nobody measured is NaN in memory and ``null``
on disk.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np


def finite(obj: Any) -> Any:
    """``obj`` (nested dicts, lists, tuples, numbers) with every non-finite float replaced by ``None``."""
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def dumps(obj: Any, *, indent: int | None = 2) -> str:
    """Strict JSON text of ``obj`` (see :func:`finite`); never holds ``NaN`` or ``Infinity``."""
    return json.dumps(finite(obj), indent=indent, allow_nan=False)
