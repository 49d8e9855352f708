"""The setup exchange of a scheme with interactive setup (secagg), run as the engine runs it, with tamper hooks;
and its consistency exchange (the survivors' signed confirmations) before the shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crypto_backends.roundtrip import bind_identities

Hook = Callable[[int, str, Any], Any]


def _same(step: int, party: str, value: Any) -> Any:
    return value


def setup_exchange(scheme: Any, keys: Any, rnd: int = 0, *, tamper_message: Hook = _same,
                   tamper_reply: Hook = _same, identities: Any = None, bind: bool = True) -> Any:
    """Every setup step of round ``rnd`` among all parties of ``keys``; what ``setup_done`` returns.

    With ``bind`` the parties' identities are bound first: ``identities``, or fresh ones of an in-process
    authority; ``bind=False`` keeps the identities the caller bound.

    ``tamper_message(step, party, message)`` may alter the aggregator's message on its way to a party
    (where a substituting aggregator acts); ``tamper_reply(step, party, reply)`` a party's reply on its
    way to the aggregator.
    """
    if bind:
        bind_identities(scheme, keys, identities)
    parties: tuple[str, ...] = tuple(sorted(keys.parties))
    replies: dict[str, Any] = {}
    for step in range(scheme.setup_steps(rnd)):
        msgs = scheme.setup_messages(keys.aggregator, round=rnd, step=step, parties=parties, replies=replies)
        replies = {p: tamper_reply(step, p, scheme.setup_reply(keys.parties[p], round=rnd, step=step,
                                                               message=tamper_message(step, p, m)))
                   for p, m in msgs.items()}
        parties = tuple(sorted(replies))
    return scheme.setup_done(keys.aggregator, round=rnd, replies=replies)


def confirm(scheme: Any, keys: Any, aggregate: Any, parties: Any = None) -> dict[str, bytes]:
    """The consistency exchange for ``aggregate``: ``parties`` (default: every one asked) confirm, honestly."""
    request = scheme.consistency_request(keys.aggregator, aggregate)
    asked = request.parties if parties is None else parties
    replies = {p: scheme.consistency_reply(keys.parties[p], aggregate, request.message) for p in asked}
    for p, r in replies.items():
        scheme.check_consistency(keys.aggregator, aggregate, p, r)
    scheme.consistency_done(keys.aggregator, aggregate, replies)
    return replies
