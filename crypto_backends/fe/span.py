"""Exact linear algebra for the fe policy: whether a span of weight vectors singles out a few parties.

The aggregator of ``fe`` learns, per granted function key, the sum ``sum_i w_i x_i``
of one round.  If every party's update ``x_i`` is the same in all rounds of a window
(the conservative case: the model has settled), it can compute ``sum_i v_i x_i`` for
every ``v`` in the span of the granted weight vectors, and nothing else.  Such a ``v``
with fewer than ``k`` non-zero entries is a sum over fewer than ``k`` parties: with
one entry, a party's update alone.

Everything here is exact: a ``float`` weight is a dyadic rational
(:class:`fractions.Fraction` converts it without rounding), each vector is scaled to
primitive integers, and elimination is fraction-free over Python's integers.  No
floating-point rank is ever taken.

The question "does the span ``V`` contain a non-zero vector with support of size at
most ``s``" is answered through its dual.  For a set ``T`` of columns, ``V`` has a
non-zero vector supported inside ``T`` exactly when deleting the columns ``T`` lowers
the rank of the vectors, which is when the rows ``T`` of a basis matrix ``B`` of the
kernel (the vectors ``y`` with ``w . y = 0`` for every granted ``w``) are linearly
dependent.  From the reduced echelon form, ``B``'s row for a pivot column ``p`` is the
pivot row's entries on the free columns, and its row for a free column ``f`` is the
unit vector at ``f``.  So (:func:`sparse_support`):

* ``s = 1`` (is some party's update alone in the span?): a zero row of ``B``, i.e. a
  pivot row with no other non-zero entry.  Exact, one pass;
* ``s = 2``: a zero row or two parallel rows (found by hashing each row scaled to
  primitive integers with a positive leading entry).  Exact, one pass;
* larger ``s``: a dependent set containing row ``a`` is, after projecting ``a``
  out of the later rows, a dependent set of one fewer of them; the search recurses
  down to the hashing step.  Exact, at a cost of about ``n**(s-2)`` passes for ``n``
  parties; it stops with :class:`SearchTooLarge` beyond ``budget`` integer operations,
  and the caller must then refuse (the question is NP-hard in general: it is the
  minimum distance of a linear code).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction

Row = dict[str, int]  # non-zero entries only, by party id

DEFAULT_BUDGET = 20_000_000


class SearchTooLarge(Exception):  # noqa: N818 - a control-flow signal, caught by the policy
    """The exact search for a sparse combination would exceed its budget (the caller refuses)."""


def integer_row(vector: Iterable[tuple[str, float]]) -> Row:
    """``vector``'s non-zero entries scaled exactly to coprime integers (a float is a dyadic rational)."""
    exact = {p: Fraction(w) for p, w in vector if w != 0}
    scale = math.lcm(*(f.denominator for f in exact.values())) if exact else 1
    return _primitive({p: int(f * scale) for p, f in exact.items()})


def _primitive(row: Row) -> Row:
    """``row`` divided by the gcd of its entries, its first entry (by party id) positive."""
    if not row:
        return row
    g = math.gcd(*row.values())
    if row[min(row)] < 0:
        g = -g
    return {p: v // g for p, v in row.items()}


def _combine(a: int, row: Row, b: int, other: Row) -> Row:
    """``a * row - b * other``, zeros dropped, made primitive."""
    out = {p: a * v for p, v in row.items()}
    for p, v in other.items():
        value = out.get(p, 0) - b * v
        if value:
            out[p] = value
        else:
            out.pop(p, None)
    return _primitive(out)


class Echelon:
    """A reduced row echelon basis (over the rationals) of the vectors added, each row primitive integers."""

    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}  # pivot column -> its row (zero in every other pivot column)

    def copy(self) -> Echelon:
        """An independent copy (adding to it leaves this one as it is)."""
        other = Echelon()
        other.rows = dict(self.rows)  # rows are replaced, never changed in place
        return other

    @property
    def rank(self) -> int:
        """The dimension of the span."""
        return len(self.rows)

    def add(self, row: Row) -> bool:
        """Add ``row`` to the span; True if the rank grew (it was not already in the span)."""
        reduced = row
        for pivot, prow in self.rows.items():
            if reduced.get(pivot):
                reduced = _combine(prow[pivot], reduced, reduced[pivot], prow)
        if not reduced:
            return False
        pivot = min(reduced)
        for other, orow in list(self.rows.items()):
            if orow.get(pivot):
                self.rows[other] = _combine(reduced[pivot], orow, orow[pivot], reduced)
        self.rows[pivot] = reduced
        return True


def sparse_support(span: Echelon, at_most: int, *, budget: int | None = None) -> list[frozenset[str]]:
    """Sets of at most ``at_most`` parties over which ``span`` holds a non-zero vector; ``[]`` if none.

    For ``at_most == 1`` every party whose update alone is in the span is listed (one
    set each); otherwise the first such set found (it holds the support of a vector of
    the span, which may be smaller).  Exact; :class:`SearchTooLarge` if the search for
    ``at_most >= 3`` would cost more than ``budget`` (default :data:`DEFAULT_BUDGET`)
    integer operations.
    """
    if at_most < 1 or not span.rows:
        return []
    columns = sorted(set().union(*span.rows.values()))
    free = [c for c in columns if c not in span.rows]
    kernel_rows: list[tuple[str, Row]] = [(p, {f: r[f] for f in free if f in r}) for p, r in span.rows.items()]
    alone = [frozenset([p]) for p, r in kernel_rows if not r]
    if alone or at_most == 1:
        return sorted(alone, key=sorted)
    kernel_rows += [(f, {f: 1}) for f in free]
    found = _dependent(sorted(kernel_rows), at_most, [DEFAULT_BUDGET if budget is None else budget])
    return [frozenset(found)] if found else []


def _dependent(rows: Sequence[tuple[str, Row]], at_most: int, budget: list[int]) -> list[str] | None:
    """Labels of at most ``at_most`` linearly dependent rows (zero rows already removed by the caller), or None."""
    seen: dict[tuple[tuple[str, int], ...], str] = {}
    for label, row in rows:
        key = tuple(sorted(_primitive(row).items()))
        if key in seen:
            return [seen[key], label]
        seen[key] = label
    if at_most <= 2:
        return None
    for i, (label, row) in enumerate(rows):
        budget[0] -= sum(len(r) for _, r in rows[i:])  # what projecting row i out of the later rows costs
        if budget[0] < 0:
            raise SearchTooLarge
        col = min(row)
        projected = [(other, _combine(row[col], orow, orow.get(col, 0), row)) for other, orow in rows[i + 1 :]]
        zero = next((other for other, r in projected if not r), None)
        if zero is not None:
            return [label, zero]
        found = _dependent(projected, at_most - 1, budget)
        if found:
            return [label, *found]
    return None


def span_of(rows: Iterable[Mapping[str, int]]) -> Echelon:
    """The echelon basis of ``rows``."""
    basis = Echelon()
    for row in rows:
        basis.add(dict(row))
    return basis
