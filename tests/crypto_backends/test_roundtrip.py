"""The minimal round-trip helper follows the declarations: prepare, share exchange, function keys, timings."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from crypto_backends.capabilities import Precompute
from crypto_backends.errors import KeyRoleError, ShareError
from crypto_backends.roundtrip import function_key_for, reveal_mean, run_round
from tests.schemes import PassThrough, SharedPlain, make_scheme

VECTORS = {"alice": np.array([1.0, -2.0, 0.5]), "bob": np.array([4.0, 2.0, -0.5])}
WEIGHTS = {"alice": 1.0, "bob": 3.0}
MEAN = np.array([3.25, 1.0, -0.25])


class _Calls(PassThrough, Precompute):
    """Records the order of prepare and protect calls (it offers the Precompute capability itself)."""

    def __init__(self, inner):
        super().__init__(inner)
        self.calls: list[tuple[str, str | None]] = []

    def prepare(self, key, *, length, weight, round):
        self.calls.append(("prepare", key.owner))

    def protect(self, key, values, *, weight, round):
        self.calls.append(("protect", key.owner))
        return super().protect(key, values, weight=weight, round=round)


def test_a_round_prepares_before_protecting_and_times_every_step():
    scheme = _Calls(make_scheme("plain"))
    keys = scheme.keygen(list(VECTORS))
    t0 = time.perf_counter()
    trip = run_round(scheme, keys, VECTORS, WEIGHTS, round=2)
    wall = time.perf_counter() - t0
    assert scheme.calls == [("prepare", "alice"), ("protect", "alice"), ("prepare", "bob"), ("protect", "bob")]
    assert np.allclose(trip.fused, MEAN)
    sizes = tuple(scheme.protect(keys.parties[p], v, weight=WEIGHTS[p], round=2).nbytes() for p, v in VECTORS.items())
    assert trip.upload_bytes == sizes
    assert len(trip.prepare_s) == len(trip.protect_s) == 2
    steps = [*trip.prepare_s, *trip.protect_s, trip.combine_s, trip.reveal_s]
    # every step is timed, and the steps are disjoint parts of the round: together no longer than it
    assert all(t > 0 for t in steps) and sum(steps) <= wall


def test_shares_are_collected_from_the_requested_parties_and_each_is_checked(monkeypatch):
    scheme = SharedPlain()
    keys = scheme.keygen(list(VECTORS))
    checked: list[str] = []
    real_check = SharedPlain.check_share
    monkeypatch.setattr(SharedPlain, "check_share",
                        lambda self, key, aggregate, party, share: (checked.append(party),
                                                                    real_check(self, key, aggregate, party, share))[1])
    assert np.allclose(run_round(scheme, keys, VECTORS, WEIGHTS).fused, MEAN)
    assert checked == ["alice", "bob"]


def test_a_share_that_fails_its_check_raises(monkeypatch):
    scheme = SharedPlain()
    keys = scheme.keygen(list(VECTORS))
    monkeypatch.setattr(SharedPlain, "decryption_share", lambda self, key, aggregate, message: b"forged")
    with pytest.raises(ShareError, match="does not belong"):
        run_round(scheme, keys, VECTORS, WEIGHTS)


def test_a_share_request_naming_too_few_parties_raises(monkeypatch):
    scheme = SharedPlain()
    keys = scheme.keygen(list(VECTORS))
    request = SharedPlain.share_request
    monkeypatch.setattr(SharedPlain, "share_request",
                        lambda self, key, agg: dataclasses.replace(request(self, key, agg), needed=3))
    with pytest.raises(ShareError, match="needs 3"):
        run_round(scheme, keys, VECTORS, WEIGHTS)


def test_function_keys_need_the_authority_key():
    scheme = make_scheme("fe")
    keys = scheme.keygen(["alice", "bob", "carol"])
    updates = [scheme.protect(keys.parties[p], np.zeros(2), weight=1.0, round=0) for p in keys.parties]
    aggregate = scheme.combine(keys.aggregator, updates, round=0)
    assert function_key_for(make_scheme("plain"), keys, aggregate) is None  # a scheme without function keys
    without = dataclasses.replace(keys, authority=None)
    with pytest.raises(KeyRoleError, match="authority"):
        reveal_mean(scheme, without, aggregate)
    assert np.allclose(reveal_mean(scheme, keys, aggregate), 0.0)
