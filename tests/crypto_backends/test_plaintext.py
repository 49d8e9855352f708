"""``plain``: an update's payload is checked when it arrives, so a NaN or infinite value is never acknowledged."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from crypto_backends import registry
from crypto_backends.envelope import Envelope
from crypto_backends.errors import MalformedCiphertextError, MismatchError
from securefl.core.aggregator import Aggregator


def _upload(bad: float) -> tuple[object, object, bytes]:
    scheme = registry.create("plain")
    keys = scheme.keygen(["a", "b"])
    env = scheme.protect(keys.parties["a"], np.ones(4), weight=2.0, round=0)
    payload = np.frombuffer(env.payload, dtype="<f8").copy()
    payload[2] = bad
    return scheme, keys, dataclasses.replace(env, payload=payload.tobytes()).to_bytes()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_update_is_refused_by_check_envelope(bad):
    scheme, keys, data = _upload(bad)
    with pytest.raises(MalformedCiphertextError, match="non-finite"):
        scheme._check_envelope(Envelope.from_bytes(data), keys.aggregator, kind="update", round=0, length=4)


def test_the_aggregator_refuses_a_nan_upload_on_arrival_not_at_combine():
    # Aggregator.check_upload is what both transports call before acknowledging an upload
    scheme, keys, data = _upload(np.nan)
    agg = Aggregator(scheme, keys.aggregator, num_parameters=4, quorum=1)
    with pytest.raises(MalformedCiphertextError):
        agg.check_upload("a", data, round=0)


def test_a_payload_of_the_wrong_size_is_refused_on_arrival():
    scheme, keys, data = _upload(1.0)
    env = Envelope.from_bytes(data)
    short = dataclasses.replace(env, payload=bytes(env.payload)[:-8])
    with pytest.raises(MismatchError):
        scheme._check_envelope(short, keys.aggregator, kind="update", round=0, length=4)


def test_a_finite_update_still_passes():
    scheme, keys, data = _upload(3.5)
    scheme._check_envelope(Envelope.from_bytes(data), keys.aggregator, kind="update", round=0, length=4)


def _stream(scheme, keys, vectors, order):
    acc = scheme.accumulator(keys.aggregator, round=0)
    for i in order:
        acc.add(scheme.protect(keys.parties[f"p{i}"], vectors[i], weight=1.0, round=0))
    return np.frombuffer(acc.result().payload, dtype="<f8")


def test_exact_sum_false_keeps_one_running_sum_in_arrival_order_exact_sum_true_does_not_depend_on_it():
    from crypto_backends.plaintext import PlainParams

    rng = np.random.default_rng(3)
    # magnitudes far apart, so that float addition order shows in the last bits
    vectors = [rng.standard_normal(2000) * 10.0 ** rng.integers(-8, 9, 2000) for _ in range(6)]
    forward, backward = list(range(6)), list(reversed(range(6)))
    exact = registry.create("plain")
    keys = exact.keygen([f"p{i}" for i in range(6)])
    np.testing.assert_array_equal(_stream(exact, keys, vectors, forward), _stream(exact, keys, vectors, backward))
    running = registry.create("plain", PlainParams(exact_sum=False))
    fwd, bwd = _stream(running, keys, vectors, forward), _stream(running, keys, vectors, backward)
    expected = np.zeros(2000)
    for i in forward:
        expected = expected + vectors[i]
    np.testing.assert_array_equal(fwd, expected)  # the plain float sum, in arrival order
    assert not np.array_equal(fwd, bwd)  # ... whose last bits depend on that order
    np.testing.assert_allclose(fwd, bwd, rtol=1e-12, atol=1e-300)
    with pytest.raises(Exception, match="exact_sum must be true or false"):
        registry.create("plain", PlainParams(exact_sum=1))  # type: ignore[arg-type]
