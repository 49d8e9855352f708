"""A scheme that wraps another one and changes only what it overrides.

:class:`SchemeWrapper` holds ``inner`` and forwards every public operation of
:class:`~crypto_backends.base.Scheme` to it: ``keygen``, ``protect``,
``accumulator``, ``combine``, ``reveal``, ``release``, key export, and
``capability`` (the inner scheme's setup exchanges, share exchange and function
keys).  Its declarations (``name``, ``version``, ``params_type``, ``params``,
``reveal_plan``, ``threat_model``, ``declarations``, ``tolerance``) are read from
``inner`` on every access, so the wrapper *is* the inner scheme on the wire.  It
never calls the inner scheme's private hooks: only what any caller may call.

:class:`declaration` is how: a :class:`Scheme` declares these as class
variables (the registry and the documentation tools read them from the class);
a wrapper reads them per instance.  A subclass overrides one the same way::

    class Noisy(SchemeWrapper):
        @declaration
        def threat_model(self) -> ThreatModel:
            return dataclasses.replace(self.inner.threat_model, aggregator_learns="...")

Overriding a public operation (``protect``) replaces the inner call entirely:
call ``self.inner.protect(...)`` to keep the inner scheme's checks.  A wrapper
that changes a capability overrides :meth:`SchemeWrapper.capability` and returns
an object that wraps ``self.inner.capability(kind)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, Self, TypeVar, cast, overload

import numpy as np

from .base import Accumulator, C, Declarations, Payload, RevealPlan, Scheme, SchemeParams, ThreatModel
from .envelope import Envelope
from .errors import CryptoError
from .keys import AggregatorKey, FunctionKey, Key, KeySet, PartyKey, Role, SecretAccess

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
    reveal_plan = declaration[RevealPlan]()
    threat_model = declaration[ThreatModel]()

    def __init__(self, inner: Scheme) -> None:  # no super().__init__(): the parameters are inner's, checked there
        self.inner = inner

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"

    @property
    def declarations(self) -> Declarations:
        """``inner``'s declarations, read on every access (a subclass that changes a promise overrides this)."""
        return self.inner.declarations

    def tolerance(self, weights: Sequence[float]) -> float:
        """``inner``'s error bound for ``weights`` (a subclass that adds error, such as noise, overrides this)."""
        return self.inner.tolerance(weights)

    def keygen(self, party_ids: Sequence[str]) -> KeySet:
        """``inner``'s key set: the wrapper's keys are the inner scheme's, with its name."""
        return self.inner.keygen(party_ids)

    def protect(self, key: PartyKey, values: np.ndarray, *, weight: float, round: int) -> Envelope:
        """``inner``'s protect, forwarded whole (its checks and errors are the inner scheme's)."""
        return self.inner.protect(key, values, weight=weight, round=round)

    def accumulator(self, key: AggregatorKey, *, round: int) -> Accumulator:
        """``inner``'s running aggregate, forwarded whole."""
        return self.inner.accumulator(key, round=round)

    def combine(self, key: AggregatorKey, updates: Sequence[Envelope], *, round: int) -> Envelope:
        """``inner``'s combine, forwarded whole."""
        return self.inner.combine(key, updates, round=round)

    def reveal(self, key: Key, aggregate: Envelope, *, function_key: FunctionKey | None = None) -> np.ndarray:
        """``inner``'s reveal, forwarded whole (its role check and errors are the inner scheme's)."""
        return self.inner.reveal(key, aggregate, function_key=function_key)

    def release(self, key: Key, aggregate: Envelope, total: np.ndarray) -> np.ndarray:
        """``inner``'s publication step, forwarded whole (fresh flooding noise, where the inner scheme draws it)."""
        return self.inner.release(key, aggregate, total)

    def capability(self, kind: type[C]) -> C | None:
        """The wrapper's own ``kind`` capability if it offers one, else the inner scheme's."""
        return self if isinstance(self, kind) else self.inner.capability(kind)

    def dump_key(self, key: Key, *, secret_access: SecretAccess | None = None) -> bytes:
        """``inner``'s key bytes (secret keys need ``SECRET_ACCESS``): they load in the bare inner scheme too."""
        return self.inner.dump_key(key, secret_access=secret_access)

    def load_key(self, data: bytes) -> Key:
        """``inner``'s key from ``data``, with the inner scheme's checks and errors (the wrapper adds none)."""
        return self.inner.load_key(data)

    # --- the template hooks: unreachable, every public operation above is forwarded whole ------
    def _protect(self, key: PartyKey, x: np.ndarray, *, weight: float, round: int) -> Payload:
        raise _forwarded("_protect")

    def _combine(
        self, key: AggregatorKey, updates: Sequence[Envelope], *, length: int, weights: Sequence[float]
    ) -> Payload:
        raise _forwarded("_combine")

    def _reveal(self, key: Key, aggregate: Envelope, function_key: FunctionKey | None) -> np.ndarray:
        raise _forwarded("_reveal")

    def _material_to_bytes(self, key: Key) -> bytes:
        raise _forwarded("_material_to_bytes")

    def _material_from_bytes(self, role: Role, cls: type[Key], data: bytes) -> Any:
        raise _forwarded("_material_from_bytes")


def _forwarded(hook: str) -> CryptoError:
    return CryptoError(f"SchemeWrapper.{hook} is not used: a wrapper forwards the public operation to its inner "
                       "scheme; override that operation instead")


__all__ = ["SchemeWrapper", "declaration"]
