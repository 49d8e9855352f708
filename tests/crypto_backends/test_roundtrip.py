"""The minimal round-trip helper follows the declarations: prepare, share exchange, function keys, timings."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from crypto_backends import roundtrip
from crypto_backends.capabilities import Precompute
from crypto_backends.errors import KeyRoleError, ShareError
from crypto_backends.roundtrip import function_key_for, reveal_mean, run_round
from tests.schemes import PassThrough, SharedPlain, make_scheme

VECTORS = {"alice": np.array([1.0, -2.0, 0.5]), "bob": np.array([4.0, 2.0, -0.5])}
WEIGHTS = {"alice": 1.0, "bob": 3.0}
MEAN = np.array([3.25, 1.0, -0.25])


class _Clock:
    """A fake ``time`` module: ``perf_counter`` reads :attr:`now`, which only the scheme's calls advance."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


class _Calls(PassThrough, Precompute):
    """Records the order of prepare and protect calls (it offers the Precompute capability itself).

    Each call advances ``clock`` by a cost of its own (per party for prepare and protect), so the
    timings the round trip reports are known exactly.
    """

    COST = {("prepare", "alice"): 1.0, ("protect", "alice"): 10.0, ("prepare", "bob"): 2.0,
            ("protect", "bob"): 20.0, ("combine", None): 100.0, ("reveal", None): 1000.0}

    def __init__(self, inner, clock: _Clock | None = None):
        super().__init__(inner)
        self.calls: list[tuple[str, str | None]] = []
        self.clock = clock or _Clock()

    def _call(self, name: str, owner: str | None) -> None:
        self.calls.append((name, owner))
        self.clock.now += self.COST[name, owner]

    def prepare(self, key, *, length, weight, round):
        self._call("prepare", key.owner)

    def protect(self, key, values, *, weight, round):
        self._call("protect", key.owner)
        return super().protect(key, values, weight=weight, round=round)

    def combine(self, key, updates, *, round):
        self._call("combine", None)
        return super().combine(key, updates, round=round)

    def reveal(self, key, aggregate, *, function_key=None):
        self._call("reveal", None)
        return super().reveal(key, aggregate, function_key=function_key)


def test_a_round_prepares_before_protecting_and_times_every_step(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(roundtrip, "time", clock)
    scheme = _Calls(make_scheme("plain"), clock)
    keys = scheme.keygen(list(VECTORS))
    trip = run_round(scheme, keys, VECTORS, WEIGHTS, round=2)
    assert scheme.calls == [("prepare", "alice"), ("protect", "alice"), ("prepare", "bob"), ("protect", "bob"),
                            ("combine", None), ("reveal", None)]
    assert np.allclose(trip.fused, MEAN)
    sizes = tuple(len(scheme.inner.protect(keys.parties[p], v, weight=WEIGHTS[p], round=2).to_bytes())
                  for p, v in VECTORS.items())
    assert trip.upload_bytes == sizes
    # each step's timing is exactly the clock time its own calls took: none is folded into another
    assert (trip.prepare_s, trip.protect_s) == ((1.0, 2.0), (10.0, 20.0))
    assert (trip.setup_s, trip.combine_s, trip.reveal_s) == (0.0, 100.0, 1000.0)
    assert (trip.share_s, trip.unmask_s) == ((), 0.0)


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
