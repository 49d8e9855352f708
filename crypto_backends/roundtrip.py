"""One secure weighted mean end to end, every role played in this process.

The one minimal helper of the hazmat layer: the contract tests, the benchmark and
anyone who wants a scheme without a federation around it use it.  It follows the
scheme's declarations exactly as the round engine does, and never its name:

1. every party :meth:`~crypto_backends.base.Scheme.prepare`\\ s, then
   :meth:`~crypto_backends.base.Scheme.protect`\\ s its vector (to bytes);
2. the aggregator parses the uploads and combines them (to bytes);
3. the aggregate's bytes become the weighted sum (:func:`reveal_sum`):

   * if :meth:`~crypto_backends.base.Scheme.share_request` asks for shares, the
     requested parties each compute a decryption share, the aggregator checks
     every one on arrival and combines them (:func:`collect_shares`);
   * otherwise, when :attr:`~crypto_backends.base.Scheme.needs_function_key`, the
     authority derives the function key for the aggregate's contributors
     (:func:`function_key_for`), and the role that
     :attr:`~crypto_backends.base.Scheme.reveal_site` names reveals
     (:func:`revealing_key`);

4. the weighted sum divided by the contributors' total weight is the fused mean.

:func:`run_round` does all of it and times each step (:class:`RoundTrip`);
:func:`secure_weighted_mean` returns only the fused mean.  Every party plays
honestly here: a share that fails its check raises instead of being dropped.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .base import RevealSite, Scheme, ShareRequest, weighted_mean
from .envelope import Envelope
from .errors import KeyRoleError, ShareError
from .keys import FunctionKey, Key, KeySet


def contributor_weights(aggregate: Envelope) -> dict[str, float]:
    """The weight vector an aggregate holds, party -> weight: what a function key is asked for."""
    return dict(zip(aggregate.parties, aggregate.weights, strict=True))


def revealing_key(scheme: Scheme, keys: KeySet, party: str | None = None) -> Key:
    """The key of the role that reveals aggregates under ``scheme`` (``party``'s, or the first party's)."""
    if scheme.reveal_site is RevealSite.AGGREGATOR:
        return keys.aggregator
    return keys.parties[party if party is not None else sorted(keys.parties)[0]]


def function_key_for(scheme: Scheme, keys: KeySet, aggregate: Envelope) -> FunctionKey | None:
    """The authority's function key for ``aggregate``'s contributors, or ``None`` if the scheme needs none."""
    if not scheme.needs_function_key:
        return None
    if keys.authority is None:
        raise KeyRoleError(
            f"the {scheme.name} scheme reveals with function keys, which only the authority's key derives, "
            "and this key set has none: pass the KeySet that the scheme's keygen() returned"
        )
    return scheme.function_key(keys.authority, round=aggregate.round, weights=contributor_weights(aggregate))


def collect_shares(scheme: Scheme, keys: KeySet, aggregate: Envelope, request: ShareRequest, *,
                   timings: dict[str, float] | None = None) -> dict[str, bytes]:
    """Every requested party's decryption share of ``aggregate``, each checked by the aggregator.

    ``timings``, if given, gets ``share_s`` (every party's share, summed) and ``check_s`` (the checks).
    """
    clock = time.perf_counter
    shares: dict[str, bytes] = {}
    made = checked = 0.0
    for party in request.parties:
        t0 = clock()
        share = scheme.decryption_share(keys.parties[party], aggregate, request.message)
        t1 = clock()
        scheme.check_share(keys.aggregator, aggregate, party, share)
        made, checked = made + t1 - t0, checked + clock() - t1
        shares[party] = share
    if timings is not None:
        timings.update(share_s=made, check_s=checked)
    if len(shares) < request.needed:
        raise ShareError(
            f"the {scheme.name} scheme asked {len(request.parties)} parties for shares but needs {request.needed}: "
            "its share_request must name at least as many parties as it needs"
        )
    return shares


def reveal_sum(scheme: Scheme, keys: KeySet, aggregate: Envelope, *,
               timings: dict[str, float] | None = None) -> np.ndarray:
    """The weighted sum in ``aggregate``: by a share exchange if the scheme asks for one, else by ``reveal``.

    ``timings``, if given, gets the share exchange's steps (:func:`collect_shares`, and ``combine_shares_s``).
    """
    request = scheme.share_request(keys.aggregator, aggregate)
    if request is not None:
        shares = collect_shares(scheme, keys, aggregate, request, timings=timings)
        t0 = time.perf_counter()
        total = scheme.reveal_shares(keys.aggregator, aggregate, shares)
        if timings is not None:
            timings["combine_shares_s"] = time.perf_counter() - t0
        return total
    fkey = function_key_for(scheme, keys, aggregate)
    return scheme.reveal(revealing_key(scheme, keys), aggregate, function_key=fkey)


def reveal_mean(scheme: Scheme, keys: KeySet, aggregate: Envelope, *,
                timings: dict[str, float] | None = None) -> np.ndarray:
    """:func:`reveal_sum` divided by the contributors' total weight: the fused mean."""
    return weighted_mean(reveal_sum(scheme, keys, aggregate, timings=timings), aggregate)


@dataclass(frozen=True)
class RoundTrip:
    """What :func:`run_round` produced, and how long each step took (``time.perf_counter`` seconds).

    ``protect_s[i]`` covers protecting and serialising party ``i``'s update (its
    data-independent ``prepare`` is ``prepare_s[i]``, apart); ``combine_s`` parsing
    every upload, combining and serialising the aggregate; ``reveal_s`` parsing the
    aggregate through the fused mean (function key or share exchange included).  For a share
    exchange, ``shares`` breaks ``reveal_s`` down: ``share_s`` (every asked party's share,
    summed), ``check_s`` (the aggregator's checks), ``combine_shares_s`` (their combination).
    """

    fused: np.ndarray
    upload_bytes: tuple[int, ...]
    prepare_s: tuple[float, ...]
    protect_s: tuple[float, ...]
    combine_s: float
    reveal_s: float
    shares: Mapping[str, float] = field(default_factory=dict)


def run_round(
    scheme: Scheme,
    keys: KeySet,
    vectors: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    *,
    round: int = 0,
) -> RoundTrip:
    """Protect each party's vector, serialise, combine, reveal, timing each step (see the module docstring)."""
    clock = time.perf_counter
    wire: list[bytes] = []
    prepare_s: list[float] = []
    protect_s: list[float] = []
    for party, vector in vectors.items():
        key, weight = keys.parties[party], weights[party]
        t0 = clock()
        scheme.prepare(key, length=int(np.size(vector)), weight=weight, round=round)
        t1 = clock()
        wire.append(scheme.protect(key, vector, weight=weight, round=round).to_bytes())
        t2 = clock()
        prepare_s.append(t1 - t0)
        protect_s.append(t2 - t1)
    upload_bytes = tuple(len(b) for b in wire)
    t0 = clock()
    aggregate = scheme.combine(keys.aggregator, [Envelope.from_bytes(b) for b in wire], round=round).to_bytes()
    t1 = clock()
    del wire  # large uploads need not outlive the combination
    t2 = clock()
    timings: dict[str, float] = {}
    fused = reveal_mean(scheme, keys, Envelope.from_bytes(aggregate), timings=timings)
    t3 = clock()
    return RoundTrip(fused, upload_bytes, tuple(prepare_s), tuple(protect_s), t1 - t0, t3 - t2, timings)


def secure_weighted_mean(
    scheme: Scheme,
    keys: KeySet,
    vectors: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    *,
    round: int = 0,
) -> np.ndarray:
    """The fused weighted mean of ``vectors`` through ``scheme`` (:func:`run_round` without the timings)."""
    return run_round(scheme, keys, vectors, weights, round=round).fused


__all__ = [
    "RoundTrip",
    "collect_shares",
    "contributor_weights",
    "function_key_for",
    "reveal_mean",
    "reveal_sum",
    "revealing_key",
    "run_round",
    "secure_weighted_mean",
]
