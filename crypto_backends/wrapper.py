"""A scheme that wraps another one and changes only what it overrides.

:class:`SchemeWrapper` holds ``inner`` and forwards every operation of
:class:`~crypto_backends.base.Scheme` to it: the round (``prepare``, ``protect``,
``combine``, ``function_key``, ``reveal``, ``publish``, ``keygen``), the checks,
key export, the protocol steps (setup exchanges, share exchange) and the
hooks.  Its declarations (``name``, ``version``, ``params_type``, ``params``,
``reveal_site``, ``reveal_roles``, ``needs_function_key``, ``hides_updates``,
``threat_model``, ``tolerance``, ``value_bound``, ``release_norm_bound``, ``security_bits``) are read from
``inner`` on every access, so the wrapper *is* the inner scheme on the wire.

:class:`declaration` is how: a :class:`Scheme` declares these as class
variables (the registry and the documentation tools read them from the class);
a wrapper reads them per instance.  A subclass overrides one the same way::

    class Noisy(SchemeWrapper):
        @declaration
        def threat_model(self) -> ThreatModel:
            return dataclasses.replace(self.inner.threat_model, aggregator_learns="...")

Overriding a public operation (``protect``) replaces the inner call entirely:
call ``self.inner.protect(...)`` to keep the inner scheme's checks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, Self, TypeVar, cast, overload

import numpy as np

from .base import Accumulator, Payload, RevealSite, Scheme, SchemeParams, ShareRequest, ThreatModel
from .envelope import Envelope, Kind
from .keys import AggregatorKey, AuthorityKey, FunctionKey, Key, KeySet, PartyIdentity, PartyKey, Role, SecretAccess

T = TypeVar("T")


class declaration(Generic[T]):  # noqa: N801 - used like ``property``
    """A read-only declaration of a wrapper, computed per instance.

    With ``fget`` (decorator use) it is ``fget(wrapper)``; without, the attribute
    of the same name of ``wrapper.inner``.  Read from the class it is the
    descriptor itself.  A property could not stand in: it cannot override a
    class variable of :class:`Scheme` under mypy, a descriptor can.
    """

    def __init__(self, fget: Callable[[Any], T] | None = None) -> None:
        self._fget = fget
        self._name = fget.__name__ if fget is not None else ""
        self.__doc__ = fget.__doc__ if fget is not None else None

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._name = name

    @overload
    def __get__(self, obj: None, owner: type[Any] | None = None) -> Self: ...
    @overload
    def __get__(self, obj: object, owner: type[Any] | None = None) -> T: ...
    def __get__(self, obj: object | None, owner: type[Any] | None = None) -> T | Self:
        if obj is None:
            return self
        if self._fget is not None:
            return self._fget(obj)
        return cast(T, getattr(cast(SchemeWrapper, obj).inner, self._name))

    def __set__(self, obj: object, value: T) -> None:
        raise AttributeError(f"{self._name} is declared by the wrapped scheme and cannot be set on the wrapper")


class SchemeWrapper(Scheme):
    """``inner`` with nothing changed; subclasses override what they change (see the module docstring)."""

    name = declaration[str]()
    version = declaration[int]()
    params_type = declaration[type[SchemeParams]]()
    params = declaration[SchemeParams]()
    reveal_site = declaration[RevealSite]()
    reveal_roles = declaration[tuple[type[Key], ...]]()
    needs_function_key = declaration[bool]()
    hides_updates = declaration[bool]()
    threat_model = declaration[ThreatModel]()

    def __init__(self, inner: Scheme) -> None:  # no super().__init__(): the parameters are inner's, checked there
        self.inner = inner

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"

    # --- declarations ----------------------------------------------------------------
    @property
    def security_bits(self) -> int:
        return self.inner.security_bits

    @property
    def value_bound(self) -> float | None:
        return self.inner.value_bound

    @property
    def release_norm_bound(self) -> float | None:
        return self.inner.release_norm_bound

    def max_payload_bytes(self, length: int) -> int | None:
        return self.inner.max_payload_bytes(length)

    def tolerance(self, weights: Sequence[float]) -> float:
        return self.inner.tolerance(weights)

    # --- the round ---------------------------------------------------------------------
    def keygen(self, party_ids: Sequence[str]) -> KeySet:
        return self.inner.keygen(party_ids)

    def prepare(self, key: PartyKey, *, length: int, weight: float, round: int) -> None:
        self.inner.prepare(key, length=length, weight=weight, round=round)

    def protect(self, key: PartyKey, values: np.ndarray, *, weight: float, round: int) -> Envelope:
        return self.inner.protect(key, values, weight=weight, round=round)

    def combine(self, key: AggregatorKey, updates: Sequence[Envelope], *, round: int) -> Envelope:
        return self.inner.combine(key, updates, round=round)

    def accumulator(self, key: AggregatorKey, *, round: int) -> Accumulator:
        return self.inner.accumulator(key, round=round)

    def function_key(self, key: AuthorityKey, *, round: int, weights: Mapping[str, float]) -> FunctionKey:
        return self.inner.function_key(key, round=round, weights=weights)

    def policy_record(self, key: AuthorityKey) -> bytes:
        return self.inner.policy_record(key)

    def adopt_policy_record(self, key: AuthorityKey, record: bytes) -> None:
        self.inner.adopt_policy_record(key, record)

    def reveal(self, key: Key, aggregate: Envelope, *, function_key: FunctionKey | None = None) -> np.ndarray:
        return self.inner.reveal(key, aggregate, function_key=function_key)

    def publish(self, key: Key, aggregate: Envelope, *, function_key: FunctionKey | None = None) -> np.ndarray:
        return self.inner.publish(key, aggregate, function_key=function_key)

    # --- protocol steps ------------------------------------------------------------------
    def release(self, key: Key, aggregate: Envelope, total: np.ndarray) -> np.ndarray:
        return self.inner.release(key, aggregate, total)

    def bind_identity(self, key: PartyKey, identity: PartyIdentity) -> None:
        self.inner.bind_identity(key, identity)

    def setup_steps(self, round: int) -> int:
        return self.inner.setup_steps(round)

    def setup_messages(
        self, key: AggregatorKey, *, round: int, step: int, parties: Sequence[str], replies: Mapping[str, bytes]
    ) -> Mapping[str, bytes]:
        return self.inner.setup_messages(key, round=round, step=step, parties=parties, replies=replies)

    def setup_reply(self, key: PartyKey, *, round: int, step: int, message: bytes) -> bytes:
        return self.inner.setup_reply(key, round=round, step=step, message=message)

    def setup_done(self, key: AggregatorKey, *, round: int, replies: Mapping[str, bytes]) -> tuple[str, ...]:
        return self.inner.setup_done(key, round=round, replies=replies)

    def share_request(self, key: AggregatorKey, aggregate: Envelope) -> ShareRequest | None:
        return self.inner.share_request(key, aggregate)

    def decryption_share(self, key: PartyKey, aggregate: Envelope, message: bytes) -> bytes:
        return self.inner.decryption_share(key, aggregate, message)

    def check_share(self, key: AggregatorKey, aggregate: Envelope, party: str, share: bytes) -> None:
        self.inner.check_share(key, aggregate, party, share)

    def reveal_shares(self, key: AggregatorKey, aggregate: Envelope, shares: Mapping[str, bytes]) -> np.ndarray:
        return self.inner.reveal_shares(key, aggregate, shares)

    # --- checks and key export (make_envelope is Scheme's: it reads the inner declarations) ----
    def check_envelope(
        self, env: Envelope, key: Key, *, kind: Kind, round: int | None = None, length: int | None = None
    ) -> None:
        self.inner.check_envelope(env, key, kind=kind, round=round, length=length)

    def check_updates(self, key: Key, updates: Sequence[Envelope], *, round: int) -> int:
        return self.inner.check_updates(key, updates, round=round)

    def dump_key(self, key: Key, *, secret_access: SecretAccess | None = None) -> bytes:
        return self.inner.dump_key(key, secret_access=secret_access)

    def load_key(self, data: bytes) -> Key:
        return self.inner.load_key(data)

    # --- the inner scheme's hooks, for code that calls them through the wrapper ------------
    def _check_key(self, key: Key) -> None:
        self.inner._check_key(key)

    def _applied_weight(self, weight: float) -> float:
        return self.inner._applied_weight(weight)

    def _protect(self, key: PartyKey, x: np.ndarray, *, weight: float, round: int) -> Payload:
        return self.inner._protect(key, x, weight=weight, round=round)

    def _combine(
        self, key: AggregatorKey, updates: Sequence[Envelope], *, length: int, weights: Sequence[float]
    ) -> Payload:
        return self.inner._combine(key, updates, length=length, weights=weights)

    def _reveal(self, key: Key, aggregate: Envelope, function_key: FunctionKey | None) -> np.ndarray:
        return self.inner._reveal(key, aggregate, function_key)

    def _publish(self, key: Key, aggregate: Envelope, total: np.ndarray) -> np.ndarray:
        return self.inner._publish(key, aggregate, total)

    def _material_to_bytes(self, key: Key) -> bytes:
        return self.inner._material_to_bytes(key)

    def _material_from_bytes(self, role: Role, cls: type[Key], data: bytes) -> Any:
        return self.inner._material_from_bytes(role, cls, data)


__all__ = ["SchemeWrapper", "declaration"]
