"""The reveal's variable-time unmasking (crypto_backends/fe/vartime.py) gives the constant-time path's bytes."""

from __future__ import annotations

import secrets

import pytest

from crypto_backends.errors import MalformedCiphertextError
from crypto_backends.fe import group, kernels, pointsum, vartime

ORDER = group.ORDER
native = pytest.mark.skipif(not hasattr(pointsum.kernel(), "mul_add"), reason="the C kernel is not built")


def aggregate(length: int) -> bytes:
    points = [group.to_wire(group.base_mul(secrets.randbelow(ORDER))) for _ in range(length)]
    points[3] = group.WIRE_IDENTITY  # the identity as an aggregate point
    return b"".join(points)


@native
@pytest.mark.parametrize("workers", [1, 2])
def test_the_fast_path_gives_the_constant_time_paths_bytes_on_random_and_edge_scalars(workers):
    length = 300
    agg = aggregate(length)
    edges = [0, 1, 2, ORDER - 1, ORDER - 2, vartime.LAMBDA, ORDER - vartime.LAMBDA, (ORDER + 1) // 2]
    for k in edges + [secrets.randbelow(ORDER) for _ in range(4)]:
        expected = kernels.unmask(k, 0, agg, wire=True) if k else agg  # secret_mul refuses 0: k * H = identity
        assert vartime.unmask(k, agg, length, workers) == expected, hex(k)


@native
def test_a_scalar_that_cancels_the_aggregate_gives_the_identity():
    # A_j = k' * H_j, unmasked with -k': every sum is the identity (P + (-P) in the kernel)
    k = secrets.randbelow(ORDER - 1) + 1
    agg = b"".join(group.to_wire(group.mul(group.base_point(j), k)) for j in range(40))
    assert vartime.unmask(ORDER - k, agg, 40, 1) == group.WIRE_IDENTITY * 40


def test_the_split_and_naf_recompose_the_scalar():
    for k in [0, 1, ORDER - 1, vartime.LAMBDA, *(secrets.randbelow(ORDER) for _ in range(200))]:
        k1, k2 = vartime.split(k)
        assert (k1 + k2 * vartime.LAMBDA - k) % ORDER == 0 and max(abs(k1), abs(k2)) < 2**129
        digits = vartime.naf(k1)
        assert sum(d << i for i, d in enumerate(digits)) == k1
        assert all(d == 0 or (d % 2 and abs(d) < 16) for d in digits)


@native
def test_a_bad_aggregate_point_is_named_by_position():
    agg = bytearray(aggregate(50))
    agg[64 * 17 + 63] ^= 1
    with pytest.raises(MalformedCiphertextError, match="position 17"):
        vartime.unmask(5, bytes(agg), 50, 1)
