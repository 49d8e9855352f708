"""One secure weighted mean end to end, every role played in this process.

The one minimal helper of the hazmat layer: the contract tests, the benchmark and
anyone who wants a scheme without a federation around it use it.  It follows the
scheme's declarations exactly as the round engine does, and never its name:

0. the scheme's setup exchanges, if it declares any
   (:meth:`~crypto_backends.base.Scheme.setup_steps`, :func:`run_setup`): the
   aggregator's messages to every party, their replies, step by step; with
   ``drop`` a fraction of the parties set up then leaves before protecting
   (dropouts after the key exchange);
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

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .base import RevealSite, Scheme, offered, weighted_mean
from .capabilities import FunctionKeys, InteractiveSetup, Precompute, ShareRequest, ShareReveal
from .envelope import Envelope
from .errors import KeyRoleError, ShareError
from .keys import FunctionKey, Key, KeySet


def contributor_weights(aggregate: Envelope) -> dict[str, float]:
    """The weight vector an aggregate holds, party -> weight: what a function key is asked for."""
    return dict(zip(aggregate.parties, aggregate.weights, strict=True))


def revealing_key(scheme: Scheme, keys: KeySet, party: str | None = None) -> Key:
    """The key of the role that reveals aggregates under ``scheme`` (``party``'s, or the first party's)."""
    if scheme.declarations.reveal.site is RevealSite.AGGREGATOR:
        return keys.aggregator
    return keys.parties[party if party is not None else sorted(keys.parties)[0]]


def function_key_for(scheme: Scheme, keys: KeySet, aggregate: Envelope) -> FunctionKey | None:
    """The authority's function key for ``aggregate``'s contributors, or ``None`` if the scheme needs none."""
    if not scheme.declarations.reveal.function_key:
        return None
    if keys.authority is None:
        raise KeyRoleError(
            f"the {scheme.name} scheme reveals with function keys, which only the authority's key derives, "
            "and this key set has none: pass the KeySet that the scheme's keygen() returned"
        )
    fkeys = offered(scheme, FunctionKeys)
    return fkeys.function_key(keys.authority, round=aggregate.round, weights=contributor_weights(aggregate))


def collect_shares(scheme: Scheme, keys: KeySet, aggregate: Envelope, request: ShareRequest) -> dict[str, bytes]:
    """Every requested party's decryption share of ``aggregate``, each checked by the aggregator."""
    cap = offered(scheme, ShareReveal)
    shares: dict[str, bytes] = {}
    for party in request.parties:
        share = cap.decryption_share(keys.parties[party], aggregate, request.message)
        cap.check_share(keys.aggregator, aggregate, party, share)
        shares[party] = share
    if len(shares) < request.needed:
        raise ShareError(
            f"the {scheme.name} scheme asked {len(request.parties)} parties for shares but needs {request.needed}: "
            "its share_request must name at least as many parties as it needs"
        )
    return shares


def run_setup(scheme: Scheme, keys: KeySet, parties: Sequence[str], *, round: int = 0) -> tuple[str, ...]:
    """Run ``scheme``'s setup exchanges for ``round`` among ``parties`` as the engine does; returns who is set up.

    Without setup steps, every party is set up.  Every party answers honestly here, so a
    refusal raises instead of costing only its sender.
    """
    current = tuple(sorted(parties))
    setup = scheme.capability(InteractiveSetup)
    steps = setup.setup_steps(round) if setup is not None else 0
    if setup is None or not steps:
        return current
    replies: dict[str, bytes] = {}
    for step in range(steps):
        messages = setup.setup_messages(keys.aggregator, round=round, step=step, parties=current, replies=replies)
        replies = {p: setup.setup_reply(keys.parties[p], round=round, step=step, message=bytes(m))
                   for p, m in messages.items() if p in current}
        current = tuple(sorted(replies))
    return tuple(setup.setup_done(keys.aggregator, round=round, replies=replies))


def dropouts(parties: Sequence[str], fraction: float) -> tuple[str, ...]:
    """``floor(fraction * n)`` of ``parties`` (sorted), spread evenly: who drops in :func:`run_round`."""
    ordered = sorted(parties)
    m = math.floor(fraction * len(ordered) + 1e-9)
    return tuple(ordered[(i * len(ordered)) // m] for i in range(m)) if m else ()


def reveal_sum(scheme: Scheme, keys: KeySet, aggregate: Envelope) -> np.ndarray:
    """The weighted sum in ``aggregate``: by a share exchange if the scheme asks for one, else by ``reveal``."""
    if scheme.declarations.reveal.shares:
        cap = offered(scheme, ShareReveal)
        request = cap.share_request(keys.aggregator, aggregate)
        return cap.reveal_shares(keys.aggregator, aggregate, collect_shares(scheme, keys, aggregate, request))
    fkey = function_key_for(scheme, keys, aggregate)
    return scheme.reveal(revealing_key(scheme, keys), aggregate, function_key=fkey)


def reveal_mean(scheme: Scheme, keys: KeySet, aggregate: Envelope) -> np.ndarray:
    """:func:`reveal_sum` divided by the contributors' total weight: the fused mean."""
    return weighted_mean(reveal_sum(scheme, keys, aggregate), aggregate)


@dataclass(frozen=True)
class RoundTrip:
    """What :func:`run_round` produced, and how long each step took (``time.perf_counter`` seconds).

    ``protect_s[i]`` covers protecting and serialising party ``i``'s update (its
    data-independent ``prepare`` is ``prepare_s[i]``, apart); ``combine_s`` parsing
    every upload, combining and serialising the aggregate; ``reveal_s`` parsing the
    aggregate through the fused mean (function key or share exchange included).
    ``setup_s`` is every role's setup work (all parties and the aggregator, one after
    the other); when the scheme reveals from shares, ``share_s[i]`` is the ``i``-th
    asked party's share and ``unmask_s`` the aggregator's checking and combining of them.
    ``dropped`` are the parties that were set up and then left; ``fused`` is the mean
    over the others.
    """

    fused: np.ndarray
    upload_bytes: tuple[int, ...]
    prepare_s: tuple[float, ...]
    protect_s: tuple[float, ...]
    combine_s: float
    reveal_s: float
    setup_s: float = 0.0
    share_s: tuple[float, ...] = ()
    unmask_s: float = 0.0
    dropped: tuple[str, ...] = ()


def run_round(
    scheme: Scheme,
    keys: KeySet,
    vectors: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    *,
    round: int = 0,
    drop: float = 0.0,
) -> RoundTrip:
    """Set up, protect each party's vector, serialise, combine, reveal, timing each step (see the module docstring).

    ``drop``: the fraction of the parties that leave after the setup exchange (:func:`dropouts`).
    """
    clock = time.perf_counter
    t0 = clock()
    ready = set(run_setup(scheme, keys, list(vectors), round=round))
    setup_s = clock() - t0
    gone = dropouts([p for p in vectors if p in ready], drop)
    precompute = scheme.capability(Precompute)
    wire: list[bytes] = []
    prepare_s: list[float] = []
    protect_s: list[float] = []
    for party, vector in vectors.items():
        if party not in ready or party in gone:
            continue
        key, weight = keys.parties[party], weights[party]
        t0 = clock()
        if precompute is not None:
            precompute.prepare(key, length=int(np.size(vector)), weight=weight, round=round)
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
    env = Envelope.from_bytes(aggregate)
    share_s: list[float] = []
    unmask_s = 0.0
    if not scheme.declarations.reveal.shares:
        fused = reveal_mean(scheme, keys, env)
    else:
        cap = offered(scheme, ShareReveal)
        request = cap.share_request(keys.aggregator, env)
        shares: dict[str, bytes] = {}
        for party in request.parties:
            s0 = clock()
            shares[party] = cap.decryption_share(keys.parties[party], env, request.message)
            share_s.append(clock() - s0)
        s0 = clock()
        for party, share in shares.items():
            cap.check_share(keys.aggregator, env, party, share)
        if len(shares) < request.needed:
            raise ShareError(f"the {scheme.name} scheme asked {len(shares)} parties for shares but needs "
                             f"{request.needed}: its share_request must name at least as many parties as it needs")
        fused = weighted_mean(cap.reveal_shares(keys.aggregator, env, shares), env)
        unmask_s = clock() - s0
    t3 = clock()
    return RoundTrip(fused, upload_bytes, tuple(prepare_s), tuple(protect_s), t1 - t0, t3 - t2, setup_s=setup_s,
                     share_s=tuple(share_s), unmask_s=unmask_s, dropped=gone)


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
    "dropouts",
    "function_key_for",
    "reveal_mean",
    "reveal_sum",
    "revealing_key",
    "run_round",
    "run_setup",
    "secure_weighted_mean",
]
