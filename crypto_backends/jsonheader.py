"""Bounded JSON for message headers: shallow and finite, or :class:`~crypto_backends.errors.MalformedCiphertextError`.

Every header securefl parses from a peer (envelopes, key dumps, wire frames,
metrics replies) goes through :func:`load_header`, so a hostile peer cannot get
anything but the typed error out of a parser: not ``RecursionError`` (deep
nesting is refused before parsing), not ``ValueError`` (integers of more than
:data:`MAX_INT_DIGITS` digits are refused while parsing, before Python converts
them), not ``OverflowError`` (no integer a float cannot hold gets through, and
``1e999``, ``NaN`` and ``Infinity`` are refused).  What it does not check: the
fields; each caller validates its own schema.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, NoReturn

import numpy as np

from .errors import MalformedCiphertextError

MAX_DEPTH = 4
"""Nesting of objects and arrays a header may have (the deepest today: an object holding a weights object)."""
MAX_INT_DIGITS = 19
"""Decimal digits of an integer in a header: every round, length and size fits in 63 bits."""
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_OPEN, _CLOSE = np.frombuffer(b"[{", np.uint8), np.frombuffer(b"]}", np.uint8)


def nesting_depth(raw: bytes) -> int:
    """How deep the arrays and objects of JSON text ``raw`` nest (brackets inside strings do not count)."""
    skeleton = np.frombuffer(_STRING.sub(b'""', raw), np.uint8)
    step = np.isin(skeleton, _OPEN).astype(np.int64) - np.isin(skeleton, _CLOSE).astype(np.int64)
    return int(np.cumsum(step).max(initial=0))


def load_header(raw: bytes | bytearray | memoryview, what: str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``raw`` (UTF-8 JSON) within the bounds of the module docstring; ``what`` names it in errors."""
    data = bytes(raw)
    depth = nesting_depth(data)
    if depth > max_depth:
        raise MalformedCiphertextError(f"{what} nests {depth} levels deep, at most {max_depth} are allowed")
    try:
        return json.loads(data.decode("utf-8"), parse_int=_int(what), parse_float=_float(what),
                          parse_constant=_constant(what))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise MalformedCiphertextError(f"{what} is not valid JSON") from None


def _int(what: str) -> Any:
    def parse(text: str) -> int:
        if len(text.lstrip("-")) > MAX_INT_DIGITS:
            raise MalformedCiphertextError(f"{what} holds an integer of {len(text)} digits, "
                                           f"at most {MAX_INT_DIGITS} are allowed")
        return int(text)
    return parse


def _float(what: str) -> Any:
    def parse(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise MalformedCiphertextError(f"{what} holds a number out of the float range ({text[:40]})")
        return value
    return parse


def _constant(what: str) -> Any:
    def parse(text: str) -> NoReturn:
        raise MalformedCiphertextError(f"{what} holds {text}, which JSON does not allow: numbers must be finite")
    return parse
