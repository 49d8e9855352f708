"""Role-typed key handles.

A scheme's key generation returns a :class:`KeySet`: one :class:`PartyKey` per
party, one :class:`AggregatorKey`, and (for schemes with a key authority) one
:class:`AuthorityKey`.  The *type* of a key says which role may hold it, and every
scheme operation checks it, so handing the aggregator a party key is a
:class:`~crypto_backends.errors.KeyRoleError` rather than a silent privacy loss.

Key handles are opaque (in the manner of Tink's keyset handles):

* ``repr`` shows the scheme, the role and a short fingerprint, never material;
* they refuse ``pickle``/``copy.deepcopy`` so that they cannot be shipped across a
  process boundary by accident; a scheme's ``dump_key`` is the only exporter, and
  it demands the :data:`SECRET_ACCESS` token for keys that hold secrets.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, SupportsIndex

from .errors import ImplicitSerializationError, KeyRoleError, MismatchError


class Role(str, enum.Enum):  # noqa: UP042 - not StrEnum: str() and messages keep "Role.PARTY"
    """The three roles of a federation."""

    PARTY = "party"
    AGGREGATOR = "aggregator"
    AUTHORITY = "authority"


class SecretAccess:
    """Token type whose single instance unlocks secret-key export.

    Passing :data:`SECRET_ACCESS` is the caller's written statement that the bytes
    will only travel to another holder of the same role (e.g. over mutual TLS).
    """

    _instance: ClassVar[SecretAccess | None] = None

    def __new__(cls) -> SecretAccess:
        """The one instance, :data:`SECRET_ACCESS` (every call returns the same object)."""
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "SECRET_ACCESS"


SECRET_ACCESS = SecretAccess()


class Key:
    """Base of every key handle.  Subclasses fix :attr:`role`.

    ``key_id`` is a fingerprint shared by every key of one key set (it is derived
    from public material only), so ciphertexts can name the key set they belong to.
    ``holds_secret`` says whether the handle carries material that must not leave
    its role.  The scheme-specific material is reachable only through
    :meth:`unwrap`, which checks the scheme name.
    """

    role: ClassVar[Role]
    __slots__ = ("scheme", "key_id", "holds_secret", "_material", "owner")

    def __init__(
        self,
        scheme: str,
        key_id: bytes,
        material: Any,
        *,
        holds_secret: bool,
        owner: str | None = None,
    ) -> None:
        self.scheme = scheme
        self.key_id = bytes(key_id)
        self.holds_secret = holds_secret
        self._material = material
        self.owner = owner

    def unwrap(self, scheme: str) -> Any:
        """Return the scheme-specific material, after checking the scheme name."""
        if scheme != self.scheme:
            raise MismatchError("scheme", f"a {self.scheme!r} key was given to the {scheme!r} scheme; "
                f"generate keys with the {scheme!r} scheme's keygen()"
            )
        return self._material

    @property
    def fingerprint(self) -> str:
        """Short hex form of :attr:`key_id`, safe to log."""
        return self.key_id.hex()[:16]

    def __repr__(self) -> str:
        owner = f", owner={self.owner!r}" if self.owner else ""
        return (
            f"{type(self).__name__}(scheme={self.scheme!r}, "
            f"fingerprint={self.fingerprint}{owner}, secret={'yes' if self.holds_secret else 'no'})"
        )

    __str__ = __repr__

    def __reduce_ex__(self, protocol: SupportsIndex) -> Any:
        raise ImplicitSerializationError(
            f"{type(self).__name__} cannot be pickled or copied: keys never cross a process "
            "boundary implicitly. Use the scheme's dump_key(key, secret_access=SECRET_ACCESS) "
            "and send the bytes only to a holder of the same role over an authenticated channel."
        )

    def __copy__(self) -> Key:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Key:
        return self

    def __getstate__(self) -> Any:
        raise ImplicitSerializationError(f"{type(self).__name__} refuses to be serialized implicitly")


class PartyKey(Key):
    """Held by one party: protects its updates, and decrypts where the scheme lets parties reveal."""

    role = Role.PARTY
    __slots__ = ()


class AggregatorKey(Key):
    """Held by the aggregator: combines protected updates; never a decryption key for HE schemes."""

    role = Role.AGGREGATOR
    __slots__ = ()


class FunctionKey(Key):
    """Held by the aggregator for one round and one weight vector (functional encryption)."""

    role = Role.AGGREGATOR
    __slots__ = ("round", "weights")

    def __init__(
        self,
        scheme: str,
        key_id: bytes,
        material: Any,
        *,
        round: int,
        weights: Mapping[str, float],
    ) -> None:
        super().__init__(scheme, key_id, material, holds_secret=True)
        self.round = round
        self.weights = dict(weights)


class AuthorityKey(Key):
    """Held by the key authority / dealer: master secret or the dealer's copy of the key pair."""

    role = Role.AUTHORITY
    __slots__ = ()


class PartyIdentity(Protocol):
    """A party's authenticated identity, supplied by a transport (e.g. its TLS key and certificate).

    Schemes that publish per-round keys through the aggregator sign them with it, so
    an aggregator cannot substitute keys unnoticed (:meth:`Scheme.bind_identity`).
    """

    def sign(self, data: bytes) -> tuple[bytes, bytes]:
        """``(signature, certificate)``: ``data`` signed by this party, and the certificate naming it."""
        ...

    def verify(self, party: str, data: bytes, signature: bytes, certificate: bytes) -> None:
        """Raise :class:`~crypto_backends.errors.ShareError` unless ``certificate`` chains to the federation's
        authority, names ``party``, and ``signature`` is its signature of ``data``."""
        ...


def require_role(key: Key, *allowed: type[Key], action: str) -> None:
    """Raise :class:`KeyRoleError` unless ``key`` is an instance of one of ``allowed``."""
    if not isinstance(key, allowed):
        names = " or ".join(cls.__name__ for cls in allowed)
        raise KeyRoleError(
            f"{action} needs a {names}, got {type(key).__name__}; "
            f"this key's role ({getattr(key, 'role', '?')}) is not allowed to {action}"
        )


@dataclass(frozen=True)
class KeySet:
    """Everything a scheme's key generation made, sorted by the role that may hold it."""

    aggregator: AggregatorKey
    parties: Mapping[str, PartyKey]
    authority: AuthorityKey | None = None
    key_id: bytes = field(default=b"")

    def __repr__(self) -> str:
        fp = self.aggregator.fingerprint
        return f"KeySet(scheme={self.aggregator.scheme!r}, fingerprint={fp}, parties={sorted(self.parties)})"
