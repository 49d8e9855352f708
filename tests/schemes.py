"""Helpers for tests that run against every registered scheme, and test doubles of scheme kinds."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import warnings
from collections.abc import Mapping

import numpy as np

from crypto_backends import InsecureParametersWarning, registry
from crypto_backends.base import RevealPlan, Scheme, SchemeParams
from crypto_backends.capabilities import ShareRequest, ShareReveal
from crypto_backends.envelope import Envelope
from crypto_backends.errors import CryptoError, ShareError
from crypto_backends.keys import AggregatorKey, AuthorityKey, FunctionKey, Key, PartyKey
from crypto_backends.plaintext import PlainScheme
from crypto_backends.wrapper import SchemeWrapper

WRAPPED = "wrapped:"


def fast_params(name: str) -> SchemeParams:
    """The scheme's ``test`` preset if it has one (small keys, loudly insecure), else its default."""
    presets = registry.params_type(name).presets()
    return presets.get("test", presets["default"])


def make_scheme(name: str) -> Scheme:
    """Scheme ``name`` with :func:`fast_params`; ``"wrapped:<name>"`` is it inside a :class:`PassThrough`."""
    if name.startswith(WRAPPED):
        return PassThrough(make_scheme(name.removeprefix(WRAPPED)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureParametersWarning)
        return registry.create(name, fast_params(name))


def contract_schemes() -> list[str]:
    """What the contract suite runs against: every registered scheme, bare and in a :class:`PassThrough`."""
    names = registry.available()
    return names + [WRAPPED + name for name in names]


class PassThrough(SchemeWrapper):
    """A wrapper that overrides nothing: it must be indistinguishable from its inner scheme."""


class SealedPlain(PlainScheme):
    """A test double of an encrypting scheme: plain arithmetic that *declares* it hides updates.

    It lets the distributed-DP paths run before (and independently of) any real
    encrypting scheme; it is registered only inside the ``sealed_scheme`` fixture.
    Tests of what noise actually protects use a real encrypting scheme instead.
    """

    name = "sealed-test"
    reveal_plan = RevealPlan.at_aggregator(PartyKey, AggregatorKey, AuthorityKey)
    threat_model = dataclasses.replace(PlainScheme.threat_model, hides_updates=True)


class SharedPlain(PlainScheme, ShareReveal):
    """A test double of a scheme that reveals through a share exchange (as threshold Paillier, SecAgg+).

    Every contributor must send a share: an HMAC of the aggregate's payload under
    a key derived from its own id, so a share of another party or another
    aggregate fails :meth:`check_share`.  :meth:`reveal` is refused, so a caller
    that ignores :meth:`share_request` fails.
    """

    name = "shared-test"
    reveal_plan = RevealPlan.from_shares()
    threat_model = dataclasses.replace(PlainScheme.threat_model, hides_updates=True)

    def share_request(self, key: AggregatorKey, aggregate: Envelope) -> ShareRequest:
        return ShareRequest(parties=aggregate.parties, needed=len(aggregate.parties), message=b"unmask")

    def decryption_share(self, key: PartyKey, aggregate: Envelope, message: bytes) -> bytes:
        assert key.owner is not None and message == b"unmask"
        return _share(key.owner, aggregate)

    def check_share(self, key: AggregatorKey, aggregate: Envelope, party: str, share: bytes) -> None:
        if not hmac.compare_digest(share, _share(party, aggregate)):
            raise ShareError(f"the share of {party!r} does not belong to this aggregate")

    def reveal_shares(self, key: AggregatorKey, aggregate: Envelope, shares: Mapping[str, bytes]) -> np.ndarray:
        if set(shares) != set(aggregate.parties):
            raise ShareError("every contributor's share is needed")
        return self._vector(aggregate).copy()

    def _reveal(self, key: Key, aggregate: Envelope, function_key: FunctionKey | None) -> np.ndarray:
        raise CryptoError("shared-test reveals only from shares (share_request)")


def _share(party: str, aggregate: Envelope) -> bytes:
    return hmac.digest(party.encode(), hashlib.sha256(bytes(aggregate.payload)).digest(), "sha256")


def fold_weighted_by_rank(scheme: Scheme, keys, xs: Mapping[str, np.ndarray]) -> Envelope:  # type: ignore[no-untyped-def]
    """Every party's ``xs`` protected with weight 1, 2, ... in order and folded through the accumulator."""
    acc = scheme.accumulator(keys.aggregator, round=0)
    for i, (pid, x) in enumerate(xs.items()):
        acc.add(scheme.protect(keys.parties[pid], x, weight=float(i + 1), round=0))
    return acc.result()
