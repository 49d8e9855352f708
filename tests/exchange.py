"""The setup exchange of a scheme with interactive setup (secagg), run as the engine runs it, with tamper hooks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Hook = Callable[[int, str, Any], Any]


def _same(step: int, party: str, value: Any) -> Any:
    return value


def setup_exchange(scheme: Any, keys: Any, rnd: int = 0, *, tamper_message: Hook = _same,
                   tamper_reply: Hook = _same) -> Any:
    """Every setup step of round ``rnd`` among all parties of ``keys``; what ``setup_done`` returns.

    ``tamper_message(step, party, message)`` may alter the aggregator's message on its way to a party
    (where a substituting aggregator acts); ``tamper_reply(step, party, reply)`` a party's reply on its
    way to the aggregator.
    """
    parties: tuple[str, ...] = tuple(sorted(keys.parties))
    replies: dict[str, Any] = {}
    for step in range(scheme.setup_steps(rnd)):
        msgs = scheme.setup_messages(keys.aggregator, round=rnd, step=step, parties=parties, replies=replies)
        replies = {p: tamper_reply(step, p, scheme.setup_reply(keys.parties[p], round=rnd, step=step,
                                                               message=tamper_message(step, p, m)))
                   for p, m in msgs.items()}
        parties = tuple(sorted(replies))
    return scheme.setup_done(keys.aggregator, round=rnd, replies=replies)
