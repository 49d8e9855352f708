"""Bounded discrete logarithms on secp256k1 by baby-step giant-step.

The baby-step table holds ``k * G`` for ``k = 1 .. T`` (``T = 2**table_bits``), keyed
by the first 128 bits of the x-coordinate and kept with the parity of y.  Because
``-kG`` shares its x-coordinate with ``kG``, one table answers every value in
``[-T, T]`` in a single lookup.  A value ``s`` further out is found after
``|m|`` giant steps of ``(2T + 1) * G``, where ``m`` is ``s / (2T + 1)`` rounded; the
search runs outward from zero, so small sums (the common case for model updates)
cost one lookup whatever the bound.

The table is built once per process and size, then cached; building uses batched
affine additions over Python integers (one field inversion per batch, Montgomery's
trick), about 1.5 us per entry.  Lookups are vectorised with numpy.

Promises: :meth:`DlogTable.solve` returns the unique ``s`` with ``|s| <= bound`` and
``s * G`` equal to the input, or raises
:class:`~crypto_backends.errors.DecodingOverflowError` (never a hang).  Values walk
their giant steps together in batches (16 first, then 256); a value found beyond the
bound (``bound + 1`` is within reach of the last giant step) or not found within
``M = ceil((bound - T) / (2T + 1))`` steps ends the whole reveal at once, naming its
position.  With a :class:`StepBudget` (the scheme passes one per reveal,
:func:`reveal_budget`) the walk also stops, with
:class:`~crypto_backends.errors.RevealBudgetError`, once the reveal's giant steps
(one value stepping once, both directions: two point additions) would exceed
``STEPS_PER_VALUE * n + max(M, MIN_BUDGET)``: any number of values placed far from zero costs the
reveal at most that, about as much again as the unmasking every reveal does (about
61 us per coordinate, against about 18 us per giant step).  The price: an honest
reveal whose sums need more than ``STEPS_PER_VALUE`` giant steps per value on average
(sums far outside the table) is refused too; keep sums in the table with
``dlog_table_bits`` or ``weight_unit``.  A point outside the bound is refused whatever
it is; matching 128 bits of x plus the y parity makes a false match about ``2**-100``
likely per lookup.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from functools import lru_cache

import gmpy2
import numpy as np
from coincurve import PublicKey

from ..errors import DecodingOverflowError, InvalidParameterError, RevealBudgetError
from . import group

_FIELD = gmpy2.mpz(2**256 - 2**32 - 977)
_MASK64 = (1 << 64) - 1
_LANES = 1024
#: Largest number of giant steps one value may need; beyond it the bound is refused up front.
MAX_GIANT_STEPS = 1 << 12
#: Giant steps per value a reveal may spend on average (see :func:`reveal_budget`).
STEPS_PER_VALUE = 2
#: Giant steps every reveal may spend besides (about 20 ms), so that a short vector's few far sums decode.
MIN_BUDGET = 1024
_PROBE = 16
_BATCH = 256
_build_lock = threading.Lock()


def _renew_lock() -> None:
    global _build_lock
    _build_lock = threading.Lock()


os.register_at_fork(after_in_child=_renew_lock)


class StepBudget:
    """Giant steps one reveal may still spend (``limit``) and has spent (``spent``)."""

    __slots__ = ("limit", "spent")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.spent = 0

    def charge(self, steps: int, bound: int) -> None:
        """Spend ``steps`` more; :class:`RevealBudgetError` (nothing spent) if that would pass ``limit``."""
        if self.spent + steps > self.limit:
            raise RevealBudgetError(
                f"the reveal's discrete logarithms need more than its budget of {self.limit} giant steps "
                f"({STEPS_PER_VALUE} per value, plus {MIN_BUDGET} or one value's full walk): decrypted values lie "
                "far from zero. "
                f"Either a party encrypted values beyond clip (up to +-{bound}), or honest sums lie far outside the "
                "table: count the weights in larger units (fe weight_unit) or raise dlog_table_bits"
            )
        self.spent += steps

    def __repr__(self) -> str:
        return f"StepBudget(limit={self.limit}, spent={self.spent})"


def reveal_budget(table: DlogTable, values: int, bound: int) -> StepBudget:
    """The giant steps a reveal of ``values`` sums within ``+-bound`` may spend: about one unmasking's worth."""
    return StepBudget(STEPS_PER_VALUE * values + max(table.max_steps(bound), MIN_BUDGET))


class DlogTable:
    """Baby steps ``1 .. T`` of ``G``; see the module docstring."""

    def __init__(self, table_bits: int) -> None:
        if not 4 <= table_bits <= 26:
            raise InvalidParameterError(f"dlog_table_bits must be in [4, 26], got {table_bits}")
        self.table_bits = table_bits
        self.size = 1 << table_bits
        self.step = 2 * self.size + 1
        hi, lo, parity, ks = _baby_steps(self.size)
        order = np.argsort(hi, kind="stable")
        self._hi, self._lo = hi[order], lo[order]
        self._parity, self._k = parity[order], ks[order]
        self._has_dup = bool(np.any(self._hi[1:] == self._hi[:-1]))

    def __repr__(self) -> str:
        return f"DlogTable(table_bits={self.table_bits})"

    def max_steps(self, bound: int) -> int:
        """Giant steps needed to cover ``[-bound, bound]`` beyond the table (0 if the table covers it)."""
        return max(0, -(-(bound - self.size) // self.step))

    def solve(self, encoded: Sequence[bytes], bound: int, budget: StepBudget | None = None) -> np.ndarray:
        """Discrete logs (int64) of points given as 33-byte encodings, within ``[-bound, bound]``.

        ``budget``: the giant steps this call may spend (:func:`reveal_budget`); none: up to ``M`` per value.
        """
        if self.max_steps(bound) > MAX_GIANT_STEPS:
            raise DecodingOverflowError(
                f"weighted sums may reach +-{bound}, which needs up to {self.max_steps(bound)} giant "
                f"steps per value with a 2^{self.table_bits} table (limit {MAX_GIANT_STEPS}): count the "
                "weights in larger units (fe weight_unit), lower bits, or raise dlog_table_bits"
            )
        out = np.zeros(len(encoded), dtype=np.int64)
        # A probe first: ciphertexts and a function key that do not belong together give
        # random points, and failing on a few of them costs far less than on all of them.
        # Then batches, each checked as it finishes, so that the first value beyond the bound
        # ends the reveal before later values walk (a party encrypting beyond clip buys one
        # batch of walks, not all), and every step is charged to the budget.
        starts = [0, *range(min(_PROBE, len(encoded)), len(encoded), _BATCH)]
        for a, b in zip(starts, [*starts[1:], len(encoded)], strict=True):
            out[a:b] = self._solve(encoded[a:b], bound, a, budget)
        return out

    def _solve(self, encoded: Sequence[bytes], bound: int, offset: int, budget: StepBudget | None) -> np.ndarray:
        n = len(encoded)
        values = np.zeros(n, dtype=np.int64)
        found, vals = self._lookup(encoded)
        beyond = np.flatnonzero(found & (np.abs(vals) > bound))
        if beyond.size:  # found by the table, but beyond the bound
            raise _outside(bound, offset + int(beyond[0]))
        values[found] = vals[found]
        todo = np.flatnonzero(~found).tolist()
        if not todo:
            return values
        down = group.base_mul(-self.step)
        up = group.base_mul(self.step)
        pos = {i: group.decode(encoded[i]) for i in todo}
        neg = dict(pos)
        for m in range(1, self.max_steps(bound) + 1):
            if budget is not None:
                budget.charge(len(pos), bound)
            for direction, walkers, delta in ((1, pos, down), (-1, neg, up)):
                idx = list(walkers)
                stepped = [group.add([walkers[i], delta]) for i in idx]
                hit, vals = self._lookup([group.encode(p) for p in stepped])
                for i, p, h, v in zip(idx, stepped, hit.tolist(), vals.tolist(), strict=True):
                    if h or p is None:
                        value = direction * m * self.step + (v if h else 0)
                        if abs(value) > bound:  # within the last giant step's reach, beyond the bound
                            raise _outside(bound, offset + i)
                        values[i] = value
                        pos.pop(i, None)
                        neg.pop(i, None)
                    elif i in walkers:
                        walkers[i] = p
            if not pos:
                return values
        raise _outside(bound, offset + min(pos))

    def _lookup(self, encoded: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """(found mask, signed values) for points given as 33-byte encodings."""
        if not encoded:
            return np.zeros(0, bool), np.zeros(0, np.int64)
        raw = np.frombuffer(b"".join(encoded), dtype=np.uint8).reshape(-1, group.POINT_BYTES)
        hi = np.ascontiguousarray(raw[:, 1:9]).view(">u8").ravel().astype(np.uint64)
        lo = np.ascontiguousarray(raw[:, 9:17]).view(">u8").ravel().astype(np.uint64)
        identity = ~raw.any(axis=1)
        idx = np.minimum(np.searchsorted(self._hi, hi), self._hi.size - 1)
        found = (self._hi[idx] == hi) & (self._lo[idx] == lo) & ~identity
        if self._has_dup:  # the first 64 bits of two baby steps agree: look at the neighbours
            for r in np.flatnonzero((self._hi[idx] == hi) & ~found & ~identity):
                j = idx[r]
                while j < self._hi.size and self._hi[j] == hi[r]:
                    if self._lo[j] == lo[r]:
                        idx[r], found[r] = j, True
                        break
                    j += 1
        odd = (raw[:, 0] & 1).astype(np.uint8)
        signed = np.where(self._parity[idx] == odd, self._k[idx], -self._k[idx]).astype(np.int64)
        found |= identity
        signed[identity] = 0
        return found, signed


def _outside(bound: int, position: int) -> DecodingOverflowError:
    return DecodingOverflowError(
        f"the decrypted value at position {position} lies outside +-{bound}: the ciphertexts and the function key "
        "do not belong together (another round, other weights, another key set, altered bytes), or a "
        "party encrypted a value beyond clip"
    )


@lru_cache(maxsize=4)
def table(table_bits: int) -> DlogTable:
    """The process-wide table of ``2**table_bits`` baby steps (built on first use)."""
    with _build_lock:
        return DlogTable(table_bits)


def _baby_steps(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x-coordinate halves, y parity and k of ``k * G`` for ``k = 1 .. size``.

    ``_LANES`` lanes walk in parallel from ``2 + l*M`` so that one inversion serves a
    whole batch of additions of ``G``; no lane ever adds ``G`` to ``+-G``.
    """
    lanes = min(_LANES, size)
    per_lane = size // lanes
    gx, gy = (gmpy2.mpz(c) for c in PublicKey.from_secret(group.scalar_bytes(1)).point())
    xs, ys = [], []
    for lane in range(lanes):
        px, py = PublicKey.from_secret(group.scalar_bytes(2 + lane * per_lane)).point()
        xs.append(gmpy2.mpz(px))
        ys.append(gmpy2.mpz(py))
    hi = np.empty(size, np.uint64)
    lo = np.empty(size, np.uint64)
    parity = np.empty(size, np.uint8)
    p = _FIELD
    prefix = [gmpy2.mpz(0)] * lanes
    for s in range(per_lane):
        for lane in range(lanes):
            k = 1 + lane * per_lane + s  # entry k holds (k + 1) * G; fixed up below
            x = int(xs[lane])
            hi[k - 1] = x >> 192
            lo[k - 1] = (x >> 128) & _MASK64
            parity[k - 1] = int(ys[lane]) & 1
        if s == per_lane - 1:
            break
        acc = gmpy2.mpz(1)
        for lane in range(lanes):
            prefix[lane] = acc
            acc = acc * (xs[lane] - gx) % p
        inv = gmpy2.invert(acc, p)
        for lane in range(lanes - 1, -1, -1):
            x, y = xs[lane], ys[lane]
            d_inv = inv * prefix[lane] % p
            inv = inv * (x - gx) % p
            lam = (y - gy) * d_inv % p
            nx = (lam * lam - x - gx) % p
            ys[lane] = (lam * (x - nx) - y) % p
            xs[lane] = nx
    # Entries were computed for k + 1; shift down by one and put 1 * G in front.
    ks = np.arange(2, size + 2, dtype=np.int64)
    hi, lo, parity, ks = hi[:-1], lo[:-1], parity[:-1], ks[:-1]
    g_hi, g_lo, g_par = np.uint64(int(gx) >> 192), np.uint64((int(gx) >> 128) & _MASK64), np.uint8(int(gy) & 1)
    return (
        np.concatenate([[g_hi], hi]).astype(np.uint64),
        np.concatenate([[g_lo], lo]).astype(np.uint64),
        np.concatenate([[g_par], parity]).astype(np.uint8),
        np.concatenate([[1], ks]).astype(np.int64),
    )
