"""``plain``: an update's payload is checked when it arrives, so a NaN or infinite value is never acknowledged."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from crypto_backends import registry
from crypto_backends.envelope import Envelope
from crypto_backends.errors import LengthMismatchError, MalformedCiphertextError
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
        scheme.check_envelope(Envelope.from_bytes(data), keys.aggregator, kind="update", round=0, length=4)


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
    with pytest.raises(LengthMismatchError):
        scheme.check_envelope(short, keys.aggregator, kind="update", round=0, length=4)


def test_a_finite_update_still_passes():
    scheme, keys, data = _upload(3.5)
    scheme.check_envelope(Envelope.from_bytes(data), keys.aggregator, kind="update", round=0, length=4)
