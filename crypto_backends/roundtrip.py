"""One secure weighted mean end to end, every role played in this process.

Used by the benchmark, the contract tests and anyone who wants the hazmat layer
without a federation around it.  It follows the scheme's declarations
(``reveal_site``, ``needs_function_key``) exactly as the round engine does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .base import RevealSite, Scheme, weighted_mean
from .envelope import Envelope
from .keys import FunctionKey, Key, KeySet


def revealing_key(scheme: Scheme, keys: KeySet, party: str | None = None) -> Key:
    """The key of the role that reveals aggregates under ``scheme``."""
    if scheme.reveal_site is RevealSite.AGGREGATOR:
        return keys.aggregator
    return keys.parties[party if party is not None else sorted(keys.parties)[0]]


def function_key_for(scheme: Scheme, keys: KeySet, aggregate: Envelope) -> FunctionKey | None:
    """Ask the authority for the aggregate's function key, if the scheme needs one."""
    if not scheme.needs_function_key:
        return None
    if keys.authority is None:
        raise ValueError(f"{scheme.name} needs an authority key to derive function keys")
    weights: Mapping[str, float] = dict(zip(aggregate.parties, aggregate.weights))
    return scheme.function_key(keys.authority, round=aggregate.round, weights=weights)


def reveal_mean(scheme: Scheme, keys: KeySet, aggregate: Envelope) -> np.ndarray:
    """Function key (if any), reveal at the right role, divide by the total weight."""
    fkey = function_key_for(scheme, keys, aggregate)
    total = scheme.reveal(revealing_key(scheme, keys), aggregate, function_key=fkey)
    return weighted_mean(total, aggregate)


def secure_weighted_mean(
    scheme: Scheme,
    keys: KeySet,
    vectors: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    *,
    round: int = 0,
) -> np.ndarray:
    """Protect each party's vector, serialize, combine, reveal: the fused weighted mean."""
    wire: Sequence[bytes] = [
        scheme.protect(keys.parties[p], v, weight=weights[p], round=round).to_bytes()
        for p, v in vectors.items()
    ]
    aggregate = scheme.combine(keys.aggregator, [Envelope.from_bytes(b) for b in wire], round=round)
    return reveal_mean(scheme, keys, Envelope.from_bytes(aggregate.to_bytes()))
