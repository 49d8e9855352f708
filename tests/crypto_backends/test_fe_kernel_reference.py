"""fe's C kernels (add, mul_add: the field code with its dedicated squaring) against a pure-Python reference.

The reference is textbook affine arithmetic over Python integers, independent of both the kernel and libsecp256k1.
The points are chosen where a field routine's carries and reductions are exercised: coordinates near 0 and near p
(squares of values close to p wrap the 512-bit product's top words), the identity, P + P and P + (-P); the reveal's
sums run to the largest value the dlog bound allows, negative and positive.
"""

from __future__ import annotations

import secrets

import pytest

from crypto_backends.fe import dlog, group, pointsum, vartime

P = 2**256 - 2**32 - 977
ORDER = group.ORDER
native = pytest.mark.skipif(not hasattr(pointsum.kernel(), "mul_add"), reason="the C kernel is not built")
Point = tuple[int, int] | None


def ref_add(a: Point, b: Point) -> Point:
    if a is None:
        return b
    if b is None:
        return a
    if a[0] == b[0] and (a[1] + b[1]) % P == 0:
        return None
    if a == b:
        lam = 3 * a[0] * a[0] * pow(2 * a[1], -1, P) % P
    else:
        lam = (b[1] - a[1]) * pow(b[0] - a[0], -1, P) % P
    x = (lam * lam - a[0] - b[0]) % P
    return x, (lam * (a[0] - x) - a[1]) % P


def ref_mul(k: int, a: Point) -> Point:
    out: Point = None
    for bit in bin(k % ORDER)[2:]:
        out = ref_add(out, out)
        if bit == "1":
            out = ref_add(out, a)
    return out


def enc(a: Point) -> bytes:
    return group.WIRE_IDENTITY if a is None else a[0].to_bytes(32, "big") + a[1].to_bytes(32, "big")


def dec(data: bytes) -> Point:
    return None if data == group.WIRE_IDENTITY else (int.from_bytes(data[:32], "big"), int.from_bytes(data[32:], "big"))


def lift(x: int) -> Point:
    """The point with x-coordinate ``x`` (p = 3 mod 4: the square root is a power), or None if there is none."""
    rhs = (x**3 + 7) % P
    y = pow(rhs, (P + 1) // 4, P)
    return (x, y) if y * y % P == rhs else None


def edge_points() -> list[tuple[int, int]]:
    """Curve points with x near 0 or near p (both signs of y)."""
    found: list[tuple[int, int]] = []
    for x in [*range(1, 40), *range(P - 40, P)]:
        pt = lift(x)
        if pt is not None:
            found += [pt, (pt[0], P - pt[1])]
    return found


G = dec(group.to_wire(group.base_mul(1)))


@native
def test_sums_match_the_reference_on_edge_coordinates_doublings_negatives_and_the_identity():
    pts = edge_points()
    assert any(x < 40 for x, _ in pts) and any(x > P - 40 for x, _ in pts)
    rows = 4
    cols: list[list[Point]] = []
    for i, pt in enumerate(pts):
        cols += [[pt, pt, None, pt], [pt, (pt[0], P - pt[1]), pt, None], [None, None, None, None],
                 [pt, pts[(i + 1) % len(pts)], G, (pt[0], P - pt[1])]]
    cols += [[ref_mul(secrets.randbelow(ORDER), G) for _ in range(rows)] for _ in range(50)]
    payloads = [b"".join(enc(col[r]) for col in cols) for r in range(rows)]
    out = pointsum.add(payloads, [f"p{r}" for r in range(rows)], len(cols), 1)
    expected = []
    for col in cols:
        acc: Point = None
        for pt in col:
            acc = ref_add(acc, pt)
        expected.append(enc(acc))
    assert out == b"".join(expected)


@native
def test_unmask_matches_the_reference_and_the_dlog_reads_the_bound():
    # A_j = s_j G + k' H_j, unmasked with -k': s_j G, whose discrete log is s_j, up to the bound either way
    table, bound = dlog.table(8), 513 * 3 + 100
    sums = [0, 1, -1, bound, -bound, 256, -256, 257, *(secrets.randbelow(2 * bound + 1) - bound for _ in range(20))]
    k = secrets.randbelow(ORDER - 1) + 1
    bases = [dec(group.base_wire(j, j + 1)) for j in range(len(sums))]
    agg = [ref_add(ref_mul(s, G), ref_mul(k, h)) for s, h in zip(sums, bases, strict=True)]
    agg[2] = ref_mul(k, bases[2])  # s = 0 by an identity term: A_j - k H_j is the identity
    sums[2] = 0
    out = vartime.unmask(ORDER - k, b"".join(map(enc, agg)), len(sums), 1)
    got = [dec(out[64 * j : 64 * j + 64]) for j in range(len(sums))]
    assert got == [ref_mul(s, G) for s in sums]
    encoded = [group.encode(None if g is None else group.from_wire(enc(g))) for g in got]
    assert table.solve(encoded, bound).tolist() == sums


@native
@pytest.mark.slow
def test_a_reveal_at_default_parameters_reads_the_sums_at_the_bound():
    # the default 2^20 table (built once, ~2 s) and a bound needing giant steps: the largest and smallest sums
    table = dlog.table(20)
    bound = table.size + 2 * table.step
    sums = [bound, -bound, table.size, -table.size, table.size + 1, 0]
    k = secrets.randbelow(ORDER - 1) + 1
    agg = b"".join(group.to_wire(group.add([group.base_mul(s), group.mul(group.base_point(j), k)]))
                   for j, s in enumerate(sums))
    out = vartime.unmask(ORDER - k, agg, len(sums), 1)
    encoded = [group.encode(group.from_wire(out[64 * j : 64 * j + 64])) for j in range(len(sums))]
    assert table.solve(encoded, bound).tolist() == sums
