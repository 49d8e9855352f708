"""Helper process computing DJN obfuscators ``h_s^r mod n^2`` on another core.

Run as ``python -I _helper.py`` by :mod:`crypto_backends.paillier.helpers`; it
imports nothing of securefl.  Only public values and random-looking group
elements cross the pipe, as fixed-width big-endian bytes (never pickle):

    parent -> helper   >H key_bytes, n (key_bytes), h_s (2 * key_bytes), >H exponent_bytes
    parent -> helper   >I count                      (repeated; EOF ends the helper)
    helper -> parent   count obfuscators of 2 * key_bytes bytes each

Each obfuscator uses its own exponent from ``os.urandom``, drawn here.
"""

from __future__ import annotations

import os
import struct
import sys
from typing import Any, BinaryIO


def fixed_base_table(hs: Any, n2: Any, exponent_bytes: int) -> list[list[Any]]:
    """``table[i][d] = hs^(d * 256^i) mod n2`` (fixed-base powers, one table per 8-bit window; HAC 14.6.3)."""
    from gmpy2 import mpz

    table: list[list[Any]] = []
    base = hs
    for _ in range(exponent_bytes):
        row = [mpz(1), base]
        for _ in range(254):
            row.append(row[-1] * base % n2)
        table.append(row)
        base = row[-1] * base % n2
    return table


def obfuscators_from_table(table: list[list[Any]], n2: Any, count: int, exponent_bytes: int) -> list[Any]:
    """``count`` values ``h_s^r mod n^2``, each ``r`` fresh from ``os.urandom``."""
    randomness = os.urandom(count * exponent_bytes)
    first, rest = table[0], table[1:]
    out = []
    for i in range(count):
        digits = randomness[i * exponent_bytes:(i + 1) * exponent_bytes]
        acc = first[digits[0]]
        for row, d in zip(rest, digits[1:], strict=True):
            acc = acc * row[d] % n2
        out.append(acc)
    return out


def _read(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    return data if data is not None and len(data) == size else None


def main() -> int:
    from gmpy2 import mpz

    inp, out = sys.stdin.buffer, sys.stdout.buffer
    head = _read(inp, 2)
    if head is None:
        return 1
    (kb,) = struct.unpack(">H", head)
    body = _read(inp, 3 * kb + 2)
    if body is None:
        return 1
    n = mpz(int.from_bytes(body[:kb], "big"))
    hs = mpz(int.from_bytes(body[kb:3 * kb], "big"))
    (exponent_bytes,) = struct.unpack(">H", body[3 * kb:])
    n2 = n * n
    table = fixed_base_table(hs, n2, exponent_bytes)
    width = 2 * kb
    while (request := _read(inp, 4)) is not None:
        (count,) = struct.unpack(">I", request)
        values = obfuscators_from_table(table, n2, count, exponent_bytes)
        out.write(b"".join(int(v).to_bytes(width, "big") for v in values))
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
