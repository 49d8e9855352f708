"""The reveal's unmasking ``A_j - dk * H_j`` in variable time, for the aggregator's own scalar.

The scalar here is ``-dk``, the aggregator's function key for one round: its own key, which
unlocks only the weighted sum the reveal releases anyway (dp noise, when used, is added by the
parties before encryption, so nothing finer sits behind it).  Constant time protects nothing
there, and costs about 4x (libsecp256k1's ECDH path, :func:`.group.secret_mul`, about 60 us
per coordinate).  Party keys never come here: they stay on that constant-time path
(:func:`.kernels.encrypt`).

The C kernel ``_pointsum.mul_add`` (see ``_pointsum.c``) multiplies every ``H_j`` of a block
by the same scalar together, in affine coordinates with one field inversion per block and
operation, using secp256k1's endomorphism: ``k = k1 + k2 * lambda (mod n)`` with
``|k1|, |k2| < 2**129`` (Gallant, Lambert and Vanstone, CRYPTO 2001; the lattice basis of
Guide to Elliptic Curve Cryptography, section 3.5), each half in width-5 NAF.  About 128
doublings and 45 additions per coordinate instead of 256 and 64; it releases the GIL, so
coordinate ranges run on threads.  Without the C kernel, :func:`unmask` runs the
constant-time :func:`.kernels.unmask` (same bytes, slower).

Measured (issue 23; one core of the shared 2-core machine at load averages of 4 to 130, so ratios only): the
old and new ``_pointsum`` builds loaded side by side in one process, best of 3 runs of ``add`` (combine),
``mul_add`` (unmask) and :meth:`.dlog.DlogTable.solve` on synthetic payloads (party i's payload is party
0's plus i times a fixed encryption of zero, so the sums are known).  At 20 parties x 20k values combine +
reveal spent ~88% in the unmask, ~10% in the combine, ~1.4% in the dlog (one table lookup per value; giant
steps only for sums beyond the 2^20 table) and ~0.4% in Python's re-encoding.  The kernel's dedicated
squaring (12.5 ns against 15.6 ns for a multiplication squaring, C micro-benchmark) gave old/new 1.02x-1.06x at
100 x 10k (0.51 s) and 100 x 100k (5.35 s: combine 2.07 s, unmask 3.22 s, dlog 0.07 s).  The 2 s target needs
about 2.5x more: a multiplication nearer 8 ns (mulx/adx assembly or 52-bit limbs) or fewer doublings per value.

Promised: the same bytes as :func:`.kernels.unmask` for every scalar (0, 1 and ``n - 1``
included) and every aggregate; a bad aggregate point is a :class:`MalformedCiphertextError`
naming its position.  Not promised: constant time (see above: only for public scalars or the
caller's own).
"""

from __future__ import annotations

from ..errors import CryptoError, MalformedCiphertextError
from . import group, kernels, parallel, pointsum
from .group import ORDER, WIRE_BYTES

#: secp256k1's endomorphism: ``LAMBDA * (x, y) = (BETA * x, y)`` (BETA lives in the C kernel).
LAMBDA = 0x5363AD4CC05C30E0A5261C028812645A122E22EA20816678DF02967C1B23BD72
# A reduced basis of the lattice {(a, b): a + b * LAMBDA = 0 mod n}: (_A1, _B1) and (_A2, _B2).
_A1 = 0x3086D221A7D46BCDE86C90E49284EB15
_B1 = -0xE4437ED6010E88286F547FA90ABFE4C3
_A2 = 0x114CA50F7A8E2F3F657C1108D9D44CFD8
_B2 = _A1
_HALF_BITS = 129  # |k1|, |k2| stay below 2**129 (in fact 2**128) for every k
WINDOW = 5
DIGITS = _HALF_BITS + 1  # a NAF has at most one digit more than its number's bits


def split(k: int) -> tuple[int, int]:
    """``(k1, k2)`` with ``k1 + k2 * LAMBDA = k (mod n)`` and both below ``2**129`` in absolute value.

    ``k`` is public or the caller's own (the rounding below branches on nothing, but nothing here tries to be
    constant time).
    """
    k %= ORDER
    c1 = (_B2 * k + ORDER // 2) // ORDER
    c2 = (-_B1 * k + ORDER // 2) // ORDER
    k1 = k - c1 * _A1 - c2 * _A2
    k2 = -c1 * _B1 - c2 * _B2
    if (k1 + k2 * LAMBDA - k) % ORDER or max(abs(k1), abs(k2)).bit_length() > _HALF_BITS:
        raise CryptoError("the GLV split of a scalar failed its check; this cannot happen")  # pragma: no cover
    return k1, k2


def naf(k: int, width: int = WINDOW) -> list[int]:
    """The width-``width`` NAF of ``k`` (any sign), least significant digit first: odd digits below
    ``2**(width-1)`` in absolute value, each followed by at least ``width - 1`` zeros; ``sum(d * 2**i) = k``."""
    sign, k = (-1, -k) if k < 0 else (1, k)
    full, half = 1 << width, 1 << (width - 1)
    digits = []
    while k:
        if k & 1:
            d = k & (full - 1)
            if d >= half:
                d -= full
            k -= d
        else:
            d = 0
        digits.append(sign * d)
        k >>= 1
    return digits


def scalar_digits(k: int) -> tuple[bytes, bytes]:
    """The kernel's input for ``k``: the NAFs of its two halves as int8 bytes of :data:`DIGITS` digits each."""
    k1, k2 = split(k)
    halves = []
    for half in (k1, k2):
        digits = naf(half)
        digits += [0] * (DIGITS - len(digits))
        halves.append(bytes(d & 0xFF for d in digits))
    return halves[0], halves[1]


def unmask(neg_key: int, aggregate: bytes | memoryview, length: int, workers: int, *,
           compressed: bool = False) -> bytes:
    """``A_j + neg_key * H_j`` for the ``length`` aggregate points (``neg_key = -dk``), as 64-byte ``x || y`` points
    (zeros for the identity), whichever encoding the aggregate uses.

    ``neg_key`` must be public or the caller's own (variable time; see the module docstring).
    ``compressed``: the aggregate holds 33-byte points (the constant-time path reads those).
    """
    module = pointsum.kernel()
    if compressed or module is None or not hasattr(module, "mul_add"):
        size = group.POINT_BYTES if compressed else WIRE_BYTES
        jobs = [(neg_key, a, bytes(aggregate[size * a : size * b]), compressed, True)
                for a, b in parallel.spans(length, workers)]
        return b"".join(parallel.run(kernels.unmask, jobs, workers)) if length else b""
    if not length:
        return b""
    naf1, naf2 = scalar_digits(neg_key)
    bases = group.base_wire(0, length)

    def run(span: tuple[int, int]) -> tuple[bytes, int, int]:
        out: tuple[bytes, int, int] = module.mul_add(aggregate, bases, naf1, naf2, span[0], span[1])
        return out

    results = pointsum.threaded(run, length, workers)
    bad = [(what, where) for _, what, where in results if what >= 0]
    if bad:
        what, where = min(bad, key=lambda b: b[1])
        if what == 1:  # pragma: no cover - the bases are this process's own hash-to-curve points
            raise CryptoError(f"base point H_{where} is not on the curve: the process's base-point cache is corrupt")
        raise MalformedCiphertextError(
            f"the aggregate holds no curve point at position {where}: the bytes were altered")
    return b"".join(out for out, _, _ in results)


__all__ = ["DIGITS", "LAMBDA", "WINDOW", "naf", "scalar_digits", "split", "unmask"]
