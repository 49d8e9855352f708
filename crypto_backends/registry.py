"""Scheme name -> implementation.

Built-in schemes are listed by import path and loaded lazily on first use, so a
missing optional dependency of one scheme never breaks another.  Third parties
plug in through the ``securefl.backends`` entry-point group (``name =
"package.module:SchemeClass"`` in their ``pyproject.toml``); configuration files
only ever name a scheme, never an import path.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points

from .base import Scheme, SchemeParams
from .errors import UnknownSchemeError

ENTRY_POINT_GROUP = "securefl.backends"

_BUILTIN: dict[str, str] = {
    "plain": "crypto_backends.plaintext:PlainScheme",
    "paillier": "crypto_backends.paillier:PaillierScheme",
    "ckks": "crypto_backends.ckks:CKKSScheme",
    "fe": "crypto_backends.fe:FEScheme",
    "threshold_paillier": "crypto_backends.threshold_paillier:ThresholdPaillierScheme",
    "secagg": "crypto_backends.secagg:SecAggScheme",
}


@cache
def _plugins() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name not in _BUILTIN}


def available() -> list[str]:
    """Names of every scheme that can be created (built-in first, then plug-ins)."""
    return list(_BUILTIN) + sorted(_plugins())


def builtin() -> list[str]:
    """Names of the schemes shipped with securefl (what its own documentation describes)."""
    return list(_BUILTIN)


@cache
def get(name: str) -> type[Scheme]:
    """The scheme class registered under ``name``."""
    if name in _BUILTIN:
        module, _, attr = _BUILTIN[name].partition(":")
        cls = getattr(importlib.import_module(module), attr)
    elif name in _plugins():
        cls = _plugins()[name].load()  # type: ignore[attr-defined]
    else:
        raise UnknownSchemeError(
            f"unknown scheme {name!r}; available: {', '.join(available())}. "
            f"Third-party schemes register in the {ENTRY_POINT_GROUP!r} entry-point group"
        )
    if not (isinstance(cls, type) and issubclass(cls, Scheme)) or cls.name != name:
        raise UnknownSchemeError(f"{name!r} does not point at a Scheme subclass named {name!r}")
    return cls


def params_type(name: str) -> type[SchemeParams]:
    """The parameter dataclass of scheme ``name``; ``UnknownSchemeError`` if no scheme has that name."""
    return get(name).params_type


def create(name: str, params: SchemeParams | None = None) -> Scheme:
    """Instantiate the scheme ``name`` with ``params`` (its defaults when omitted)."""
    return get(name)(params)
