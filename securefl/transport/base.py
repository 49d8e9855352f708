"""What the round engine needs from "the network": the one interface every transport implements.

The engine (:mod:`securefl.core.engine`) owns a round; a transport only moves
bytes between the aggregator's side and the parties' and the authority's.  It
does four things:

* :meth:`Transport.exchange` - send one :class:`Request` (a step of the
  protocol: init, train, setup, share, evaluate) to some parties and gather their
  replies until each asked party answered or the deadline passed.  Every reply
  is handed to the engine's ``accept`` callback *as it arrives*, which parses
  and checks it once (raising a :class:`~securefl.errors.SecureFLError` to
  refuse it); a transport may tell a refused sender at once.
* :meth:`Transport.function_key` - ask the key authority for a function key,
  with the contributors' signed statements.
* :meth:`Transport.finish` - hand out the final model (or the reason the run
  stopped) to the parties.
* :meth:`Transport.release` - the released model as the engine's caller may
  see it (``None`` where only the parties can open it).

On the parties' side every transport calls :meth:`securefl.core.party.Party.respond`
with the request's step, round, stage and payload, so the same party code runs
whatever carries the bytes.  Implementations: :mod:`securefl.transport.inproc`
(threads in this process) and :mod:`securefl.transport.grpc` (processes over
mutual TLS).  A new transport implements this class and nothing in the engine
changes.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

import numpy as np

from crypto_backends.keys import FunctionKey
from crypto_backends.statements import Evidence
from securefl.core.messages import GlobalModel
from securefl.errors import TransportError

Step = Literal["init", "train", "setup", "consistency", "challenge", "share", "evaluate"]
STEPS: tuple[Step, ...] = ("init", "train", "setup", "consistency", "challenge", "share", "evaluate")
T = TypeVar("T")
Accept = Callable[[str, bytes], T]
"""The engine's check of one reply: ``(sender, bytes) -> parsed value``; raises to refuse it."""


@dataclass(frozen=True)
class Request:
    """One protocol step the engine asks of parties.

    ``payloads`` maps each asked party to the bytes it receives (the same object
    for every party when all get the same model).  ``stage`` numbers the
    exchanges of a multi-step ``setup``; it is 0 otherwise.
    """

    step: Step
    round: int
    payloads: Mapping[str, bytes]
    stage: int = 0

    @property
    def parties(self) -> tuple[str, ...]:
        """The ids of the parties the request goes to, sorted."""
        return tuple(sorted(self.payloads))


@dataclass
class Replies(Generic[T]):
    """What came back from one :class:`Request`."""

    accepted: dict[str, T] = field(default_factory=dict)
    """Replies that passed ``accept``, by sender, as ``accept`` returned them."""
    sizes: dict[str, int] = field(default_factory=dict)
    """Bytes received from each accepted sender."""
    dropped: dict[str, str] = field(default_factory=dict)
    """Asked parties without an accepted reply, with the reason (refused, failed, too late, busy)."""


class PartyFailed(TransportError):
    """A party's own failure, as its transport reports it in text (``"ExceptionType: message"``)."""


def take_reply(replies: Replies[T], request: Request, sender: str, receive: Callable[[], bytes],
               accept: Accept[T], log: logging.Logger) -> None:
    """Hand ``sender``'s reply (``receive()``) to ``accept`` and record it; a failure drops ``sender``, logged.

    The failure is the party's (``receive`` raises, or :class:`PartyFailed` with the party's own words) or
    ``accept``'s refusal; either way the reason in ``replies.dropped`` reads ``"ExceptionType: message"``.
    """
    try:
        data = receive()
        replies.accepted[sender] = accept(sender, data)
        replies.sizes[sender] = len(data)
    except Exception as exc:  # noqa: BLE001 - a failing or refused party is dropped, not fatal
        replies.dropped[sender] = str(exc) if isinstance(exc, PartyFailed) else f"{type(exc).__name__}: {exc}"
        log.warning("round %d (%s): party %s failed: %s", request.round, request.step, sender,
                    replies.dropped[sender])


class Transport(ABC):
    """Moves the engine's requests to the parties and their replies back (see the module docstring)."""

    @abstractmethod
    def exchange(self, request: Request, accept: Accept[T], *, timeout: float) -> Replies[T]:
        """Send ``request`` and gather replies until every asked party answered or ``timeout`` seconds passed.

        Never raises for a party's fault: a party that fails, is refused by
        ``accept``, or does not answer in time is listed in ``dropped``.
        """

    @abstractmethod
    def function_key(self, round: int, weights: Mapping[str, float], evidence: Evidence | None) -> FunctionKey:
        """The authority's function key for ``weights`` in ``round``; ``evidence``: the contributors' signed
        statements, which it checks first under ``crypto.verify_aggregate`` (``None``: none kept).  It may
        refuse: PolicyError, AggregateMismatchError (or, over a network, the transport's refusal)."""

    def finish(self, model: GlobalModel | None, message: str, *, contributors: tuple[str, ...] = ()) -> None:
        """The run is over: hand out ``model`` (``None``: the run failed, ``message`` says why)."""
        # deliberately not abstract: where the parties live in the caller's process there is nothing to hand out
        return None

    def release(self, model: GlobalModel) -> np.ndarray | None:
        """``model`` as released to the engine's caller; ``None`` where only parties can open it."""
        return None if model.is_sealed else model.vector

    def close(self) -> None:
        """Release threads, channels and servers."""
        # deliberately not abstract: a transport that holds none has nothing to release
        return None
