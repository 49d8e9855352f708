"""The one interface every scheme implements, kept small: twelve public names.

:class:`Scheme` is the core a new scheme implements: :meth:`Scheme.keygen`, the
round's operations (:meth:`Scheme.protect` at a party, :meth:`Scheme.accumulator`
at the aggregator, with :meth:`Scheme.combine` folding a batch through it,
:meth:`Scheme.reveal` wherever decryption happens, :meth:`Scheme.release` for what
leaves the key holders), its declarations (:attr:`Scheme.declarations`, one frozen
:class:`Declarations`; :meth:`Scheme.tolerance`), key export
(:meth:`Scheme.dump_key`, :meth:`Scheme.load_key`), ``version`` and
:meth:`Scheme.capability`.  A subclass sets the class variables ``name``,
``params_type``, ``reveal_plan`` and ``threat_model``.

Where the sum is revealed is one declaration, the :class:`RevealPlan`: by the
aggregator with its own key (``plain``), by the parties from a sealed aggregate
(``paillier``, ``ckks``), by the aggregator with the authority's per-round
function key (``fe``), or by the aggregator from at least ``needed`` parties'
shares (``threshold_paillier``, ``secagg``).

Steps only some schemes need are capabilities
(:mod:`crypto_backends.capabilities`): setup exchanges relayed before a round
(:class:`~crypto_backends.capabilities.InteractiveSetup`), a share exchange
(:class:`~crypto_backends.capabilities.ShareReveal`), function keys and the
authority's policy record (:class:`~crypto_backends.capabilities.FunctionKeys`),
data-independent work before protecting
(:class:`~crypto_backends.capabilities.Precompute`).  The round engine asks
:meth:`Scheme.capability` for them and never branches on a scheme's name.

Weights.  ``protect`` receives the party's (public, positive) weight.  ``reveal``
returns the weighted **sum** ``sum_i w_i x_i`` of the contributors named in the
aggregate; the weighted mean is that divided by ``aggregate.total_weight``
(:func:`weighted_mean`).  Whether the party pre-scales by its weight or the
aggregator / function key applies it is the scheme's documented choice.

Writing a scheme.  :meth:`Scheme.protect`, :meth:`Scheme.accumulator`,
:meth:`Scheme.reveal` and :meth:`Scheme.release` are template methods: they do
every check once, here, and build the envelopes; a scheme implements only what
differs, in these hooks (each runs after the checks listed):

* ``_check_key(key)`` (optional) - after the role check: raise the typed error if
  the key's material does not fit this scheme and its parameters.  The default is
  the scheme-name check of :meth:`~crypto_backends.keys.Key.unwrap`.
* ``_applied_weight(weight) -> float`` (optional) - the weight an update's
  envelope reports, after any rounding the scheme applies (default: ``weight``);
  raise :class:`InvalidInputError` for a weight it cannot apply.
* ``_protect(key, x, *, weight, round) -> payload`` - ``key`` is a checked
  :class:`PartyKey` that names its party, ``x`` a finite 1-D float64 vector,
  ``weight`` the applied weight.  Returns the update's payload bytes.
* ``_combine(key, updates, *, length, weights) -> payload`` - ``updates`` passed
  the accumulator's checks (this scheme, this key set, this round, one length,
  distinct parties); ``weights`` are the contributors' weights sorted by party id,
  as the aggregate will name them.  Returns the aggregate's payload.
* ``_reveal(key, aggregate, function_key) -> weighted sum`` - ``key`` holds a role
  the :class:`RevealPlan` allows, ``aggregate`` is this scheme's and this key
  set's.
* ``_publish(key, aggregate, total) -> vector`` (optional) - what :meth:`Scheme.release`
  lets leave the key holders, given the revealed ``total`` (default: unchanged).
* ``_check_envelope(env, key, *, kind, round, length)`` (optional, call ``super()``)
  - checks a scheme can make of a payload on arrival (``plain``: every value finite).

Streaming.  The aggregator need not hold every upload of a round: it asks
:meth:`Scheme.accumulator` for an :class:`Accumulator` and folds each update in
as it arrives (:meth:`Accumulator.add`), then takes :meth:`Accumulator.result`,
the same aggregate :meth:`Scheme.combine` would make from those updates.  The
default accumulator keeps one partial aggregate and folds by calling
``_combine(key, [partial, update])``: **``_combine`` must therefore accept an
``aggregate`` envelope of this round among its inputs and treat it as the sum of
its contributors** (associativity over partial aggregates).  A scheme with a
cheaper in-place fold returns its own :class:`Accumulator` subclass.

A wrapper around a whole scheme (differential privacy) subclasses
:class:`crypto_backends.wrapper.SchemeWrapper` instead, which forwards everything.
"""

from __future__ import annotations

import json
import math
import struct
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, ClassVar, TypeVar

import numpy as np

from .capabilities import Capability, ShareRequest
from .envelope import Envelope, Kind, check_party_id
from .errors import (
    CryptoError,
    InsecureParameterError,
    InvalidInputError,
    InvalidParameterError,
    KeyRoleError,
    MalformedCiphertextError,
    MismatchError,
    SecretExportError,
)
from .jsonheader import load_header
from .keys import (
    SECRET_ACCESS,
    AggregatorKey,
    AuthorityKey,
    FunctionKey,
    Key,
    KeySet,
    PartyIdentity,
    PartyKey,
    Role,
    SecretAccess,
    require_role,
)

MIN_SECURITY_BITS = 112

C = TypeVar("C", bound=Capability)

Payload = bytes | bytearray | memoryview
"""A scheme-defined envelope payload, as the hooks return it."""


class InsecureParametersWarning(UserWarning):
    """Emitted whenever a scheme is built with parameters below 112-bit security."""


class RevealSite(str, Enum):  # noqa: UP042 - not StrEnum: str() and messages keep "RevealSite.PARTIES"
    """Where the combined result becomes a plaintext vector."""

    AGGREGATOR = "aggregator"
    PARTIES = "parties"


_SITE_ROLES: dict[RevealSite, tuple[type[Key], ...]] = {
    RevealSite.AGGREGATOR: (AggregatorKey,),
    RevealSite.PARTIES: (PartyKey,),
}


@dataclass(frozen=True)
class RevealPlan:
    """Who turns a round's aggregate into the weighted sum: the one declaration of how a scheme reveals.

    Four plans, one constructor each:

    * :meth:`at_aggregator` - the aggregator reveals with its own key (``plain``);
    * :meth:`at_parties` - the aggregate goes back sealed and the parties open it
      (``paillier``, ``ckks``);
    * :meth:`with_function_key` - the aggregator reveals with a per-round function key
      that the authority derives for the contributors' weights (``fe``; the scheme
      offers :class:`~crypto_backends.capabilities.FunctionKeys`);
    * :meth:`from_shares` - the aggregator opens it from at least ``needed`` parties'
      decryption or unmasking shares (``threshold_paillier``, ``secagg``; the scheme
      offers :class:`~crypto_backends.capabilities.ShareReveal`, whose
      ``share_request`` says who is asked and how many valid shares are needed).

    ``roles``: the key types that :meth:`Scheme.reveal` accepts; empty means the
    role that ``site`` names.
    """

    site: RevealSite
    function_key: bool = False
    shares: bool = False
    roles: tuple[type[Key], ...] = ()

    def __post_init__(self) -> None:
        if (self.function_key or self.shares) and self.site is not RevealSite.AGGREGATOR:
            raise InvalidParameterError("a reveal with a function key or from shares happens at the aggregator")
        if self.function_key and self.shares:
            raise InvalidParameterError("a reveal plan uses a function key or shares, not both")

    @classmethod
    def at_aggregator(cls, *roles: type[Key]) -> RevealPlan:
        """The aggregator reveals with its own key (``roles``: every key type that may, if more than its own)."""
        return cls(RevealSite.AGGREGATOR, roles=roles)

    @classmethod
    def at_parties(cls, *roles: type[Key]) -> RevealPlan:
        """The parties open the sealed aggregate (``roles``: every key type that may, if more than theirs)."""
        return cls(RevealSite.PARTIES, roles=roles)

    @classmethod
    def with_function_key(cls) -> RevealPlan:
        """The aggregator reveals with the authority's per-round function key."""
        return cls(RevealSite.AGGREGATOR, function_key=True, roles=(AggregatorKey,))

    @classmethod
    def from_shares(cls) -> RevealPlan:
        """The aggregator reveals from parties' decryption or unmasking shares."""
        return cls(RevealSite.AGGREGATOR, shares=True, roles=(AggregatorKey,))

    @property
    def kind(self) -> str:
        """``"function_key"``, ``"shares"``, ``"aggregator"`` or ``"parties"`` (for reports and docs)."""
        if self.function_key:
            return "function_key"
        if self.shares:
            return "shares"
        return self.site.value

    def allowed_roles(self) -> tuple[type[Key], ...]:
        """The key types that may reveal (and release) an aggregate."""
        return self.roles or _SITE_ROLES[self.site]


@dataclass(frozen=True)
class ThreatModel:
    """Plain-language statement of a scheme's trust assumptions (feeds SECURITY.md and reports).

    ``aggregator_learns`` is what an honest-but-curious aggregator learns: one that
    follows the protocol and reads everything it is sent.  ``malicious_aggregator`` is
    what an actively malicious one learns (it may drop, replay, substitute or fabricate
    messages, and send different ones to different parties) under the default
    ``crypto.verify_aggregate = "full"``; ``malicious_aggregator_unverified`` is the same
    under ``"off"`` (say so when it does not differ).
    ``hides_updates``: whether the aggregator is unable to read an individual update.
    ``dealer_erases_party_keys``: whether the key authority hands each party its key once
    and then forgets it (and never writes it to its key store), because the party keys are
    distinct shares whose holding together defeats the scheme; such a party keeps its own
    key across restarts, and a second request for it is refused.  ``threshold_paillier``
    sets it.  The others keep the default, ``False``: under ``paillier`` and ``ckks`` every
    party holds the same key (the dealer's copy adds no holder of a secret no party has, and
    a restarted party fetches it again); ``fe``'s authority keeps the master secret every
    party key derives from; ``secagg``'s and ``plain``'s party keys hold no secret.
    """

    key_holders: Mapping[str, str]
    aggregator_learns: str
    party_learns: str
    collusion: str
    dropouts: str
    not_protected: str
    malicious_aggregator: str
    malicious_aggregator_unverified: str
    hides_updates: bool = True
    dealer_erases_party_keys: bool = False


def _size_unknown(length: int) -> int | None:
    return None


@dataclass(frozen=True)
class Declarations:
    """Everything a scheme declares, in one frozen value (:attr:`Scheme.declarations`).

    * ``reveal`` - who reveals the aggregate (:class:`RevealPlan`);
    * ``threat_model`` - who holds which key and who learns what;
    * ``security_bits`` - the parameters' estimated classical security level;
    * ``value_bound`` - inputs are clipped to ``[-value_bound, value_bound]`` (``None``:
      not clipped);
    * ``release_norm_bound`` - an L2 bound on the unweighted vector an honest party
      releases, or ``None`` when none holds; where ``hides_updates`` is false the
      aggregator checks each update against it;
    * ``payload_bytes`` - the most bytes an honest update's payload of ``length``
      values takes (``None`` when not known): a receiver refuses a larger upload
      before reading it (this does not validate the payload).
    """

    reveal: RevealPlan
    threat_model: ThreatModel
    security_bits: int
    value_bound: float | None = None
    release_norm_bound: float | None = None
    payload_bytes: Callable[[int], int | None] = field(default=_size_unknown, compare=False, repr=False)

    @property
    def hides_updates(self) -> bool:
        """Whether the aggregator is unable to read an individual update (the threat model's word)."""
        return self.threat_model.hides_updates

    def max_payload_bytes(self, length: int) -> int | None:
        """``payload_bytes(length)``: the most bytes an honest update's payload of ``length`` values takes."""
        return self.payload_bytes(length)


@dataclass(frozen=True)
class SchemeParams:
    """Base of every scheme's frozen parameter dataclass.

    ``allow_insecure`` exists for fast tests only: it lets parameters below 112-bit
    security through, with an :class:`InsecureParametersWarning`.
    """

    allow_insecure: bool = False

    def security_bits(self) -> int:
        """Estimated classical security level of these parameters, in bits."""
        raise NotImplementedError

    def validate(self) -> None:
        """Raise :class:`InvalidParameterError` for inconsistent values (override)."""

    def check_federation(self, parties: int) -> None:  # noqa: B027 - optional
        """Raise :class:`InvalidParameterError` if these parameters cannot serve ``parties`` parties (override)."""

    contributors_key: ClassVar[str] = "min_contributors"
    """The field of ``[crypto.<scheme>]`` that sets :meth:`fewest_contributors` (named in config errors)."""

    def fewest_contributors(self, parties: int) -> int | None:
        """Fewest contributors whose aggregate the scheme's own policy lets be revealed (``None``: no such policy).

        ``parties``: the federation's size, for a policy derived from it (``secagg``'s default).
        """
        return None

    def under_differential_privacy(self) -> SchemeParams:
        """The parameters to use when differential privacy wraps the scheme (default: these).

        A scheme whose policy only stops what the calibrated noise already covers (and
        accounts for) may relax it here; the security level must not change.
        """
        return self

    def for_federation(self, parties: int) -> SchemeParams:
        """These parameters with anything derived from the federation's size resolved (override).

        Called, with the number of parties, wherever a federation is known before keys
        are made (the config, ``securefl bench``), so that packing headroom grows with
        the federation instead of failing at a fixed limit.  The default changes nothing.
        """
        return self

    @classmethod
    def presets(cls) -> Mapping[str, SchemeParams]:
        """Named, reviewed parameter sets.  ``default`` is always present."""
        return {"default": cls()}

    @classmethod
    def preset(cls, name: str) -> SchemeParams:
        """The parameter set named ``name`` in :meth:`presets`; :class:`InvalidParameterError` for an unknown name."""
        presets = cls.presets()
        if name not in presets:
            raise InvalidParameterError(f"unknown preset {name!r}; choose one of {sorted(presets)}")
        return presets[name]

    def as_dict(self) -> dict[str, Any]:
        """Every field of these parameters by name, values as they are (a shallow copy; not made JSON-safe)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def as_update_vector(values: object) -> np.ndarray:
    """Return ``values`` as a finite 1-D float64 array or raise :class:`InvalidInputError`."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"update is not a numeric vector: {exc}") from None
    if arr.ndim != 1:
        raise InvalidInputError(f"update must be a 1-D vector, got shape {arr.shape}; flatten it first")
    if not np.isfinite(arr).all():
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise InvalidInputError(
            f"update holds {bad} NaN or infinite value(s); fix the local training (e.g. lower the "
            "learning rate) - non-finite values cannot be protected"
        )
    return arr


def check_weight(weight: float) -> float:
    """``weight`` as a ``float``, or :class:`InvalidInputError` unless it is a finite, positive number.

    ``bool`` is refused although it is an ``int``; numpy integers and floats are accepted.
    """
    if isinstance(weight, bool) or not isinstance(weight, (int, float, np.integer, np.floating)):
        raise InvalidInputError(f"weight must be a number, got {type(weight).__name__}")
    weight = float(weight)
    if not math.isfinite(weight) or weight <= 0:
        raise InvalidInputError(f"weight must be finite and positive, got {weight}")
    return weight


def offered(scheme: Scheme, kind: type[C]) -> C:
    """``scheme.capability(kind)`` where the scheme's reveal plan needs it: :class:`CryptoError` if it is not offered.

    A plan revealing from shares needs :class:`~crypto_backends.capabilities.ShareReveal`,
    one with a function key :class:`~crypto_backends.capabilities.FunctionKeys`; a scheme
    declaring one without offering the other is broken, and this says so by name.
    """
    found = scheme.capability(kind)
    if found is None:
        raise CryptoError(f"the {scheme.name} scheme's reveal plan needs {kind.__name__}, but the scheme does not "
                          "offer it: its reveal_plan and its capabilities disagree")
    return found


MIN_HIDING_PARTIES = 3
"""Fewest parties a federation needs under a scheme that hides updates (:attr:`Declarations.hides_updates`)."""


def check_federation(scheme: type[Scheme] | Scheme, params: SchemeParams, parties: int) -> None:
    """Raise :class:`InvalidParameterError` if ``scheme`` with ``params`` cannot serve a federation of ``parties``.

    The one check of a federation's size against a scheme (the config runs it): first
    the rule shared by every scheme whose threat model hides individual updates, then
    the parameters' own :meth:`SchemeParams.check_federation`.  Under such a scheme a
    federation of two gives each party the other's update (the released sum minus its
    own), and one of one gives the aggregator its only update: the promise cannot
    hold, so it is refused rather than run with a false guarantee.  Keys of fewer
    parties can still be made at this (hazmat) level; a round's own floor on its
    contributors is the scheme's policy (:meth:`SchemeParams.fewest_contributors`).
    """
    if scheme.threat_model.hides_updates and parties < MIN_HIDING_PARTIES:
        raise InvalidParameterError(
            f"federation.parties = {parties}: the {scheme.name!r} scheme promises that individual updates stay "
            f"hidden, but with {parties} part{'y' if parties == 1 else 'ies'} the revealed sum "
            + ("is the one party's update" if parties == 1 else "minus a party's own update is the other's")
            + f". Use at least {MIN_HIDING_PARTIES} parties, or crypto.scheme = 'plain' (which promises nothing "
            "of the kind) for a smaller run"
        )
    params.check_federation(parties)


def weighted_mean(weighted_sum: np.ndarray, aggregate: Envelope) -> np.ndarray:
    """The fused weighted mean from :meth:`Scheme.reveal`'s weighted sum."""
    return weighted_sum / aggregate.total_weight


class Scheme(ABC):
    """Base class of every secure-aggregation scheme: the core a new scheme implements.

    Twelve public names, no more (see the module docstring): ``version``,
    ``declarations``, ``tolerance``, ``keygen``, ``protect``, ``accumulator``,
    ``combine``, ``reveal``, ``release``, ``capability``, ``dump_key``, ``load_key``.
    A subclass also sets the class variables ``name``, ``params_type``,
    ``reveal_plan`` and ``threat_model``.
    """

    name: ClassVar[str]
    version: ClassVar[int] = 1
    params_type: ClassVar[type[SchemeParams]]
    reveal_plan: ClassVar[RevealPlan]
    threat_model: ClassVar[ThreatModel]

    def __init__(self, params: SchemeParams | None = None) -> None:
        if params is None:
            params = self.params_type()
        if not isinstance(params, self.params_type):
            raise InvalidParameterError(
                f"{self.name} needs {self.params_type.__name__}, got {type(params).__name__}"
            )
        params.validate()
        bits = params.security_bits()
        if bits < MIN_SECURITY_BITS:
            if not params.allow_insecure:
                raise InsecureParameterError(
                    f"{self.name} parameters give about {bits}-bit security, below the "
                    f"{MIN_SECURITY_BITS}-bit minimum; use the default preset "
                    f"({self.params_type.presets()['default'].as_dict()}). Insecure parameters are "
                    "accepted only with allow_insecure=true, for tests."
                )
            warnings.warn(
                f"{self.name} runs with INSECURE test parameters (~{bits}-bit security); "
                "never use them for real data",
                InsecureParametersWarning,
                stacklevel=2,
            )
        self.params = params

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"

    # --- declarations ---------------------------------------------------------
    @property
    def declarations(self) -> Declarations:
        """What this scheme, with these parameters, promises and needs (see :class:`Declarations`).

        The default reads the class's ``reveal_plan`` and ``threat_model`` and the
        parameters' ``security_bits()``; a scheme that clips, or knows its payload
        size, returns ``dataclasses.replace(super().declarations, ...)``.
        """
        return Declarations(reveal=self.reveal_plan, threat_model=self.threat_model,
                            security_bits=self.params.security_bits())

    @abstractmethod
    def tolerance(self, weights: Sequence[float]) -> float:
        """Largest absolute error of the fused weighted mean for inputs within ``declarations.value_bound``."""

    # --- the round -------------------------------------------------------------
    @abstractmethod
    def keygen(self, party_ids: Sequence[str]) -> KeySet:
        """Make every key of a federation.  Runs at the dealer / key authority."""

    def protect(self, key: PartyKey, values: np.ndarray, *, weight: float, round: int) -> Envelope:
        """Protect one party's update (at the party) into an ``update`` envelope naming ``key.owner``."""
        require_role(key, PartyKey, action="protect an update")
        self._check_key(key)
        owner = key.owner
        if owner is None:
            raise KeyRoleError(
                f"{key!r} names no party, so its update could not say who sent it: use the party keys "
                "made by keygen(party_ids), or load them with load_key from a dump that kept the owner"
            )
        x = as_update_vector(values)
        w = self._applied_weight(check_weight(weight))
        payload = self._protect(key, x, weight=w, round=round)
        return self._make_envelope(
            key, payload, round=round, kind="update", parties=(owner,), weights=(w,), length=x.size
        )

    def accumulator(self, key: AggregatorKey, *, round: int) -> Accumulator:
        """A running aggregate of ``round`` that folds updates in as they arrive (at the aggregator).

        The default folds through ``_combine`` (see "Streaming" in the module docstring);
        schemes override this to fold in place.
        """
        return Accumulator(self, key, round=round)

    def combine(self, key: AggregatorKey, updates: Sequence[Envelope], *, round: int) -> Envelope:
        """Check and combine protected updates (at the aggregator): every one folded through :meth:`accumulator`.

        Raises the first update's typed error if any is refused (also one that a
        deferred fold found bad), so a batch either combines whole or not at all.
        """
        acc = self.accumulator(key, round=round)
        for update in updates:
            acc.add(update)
        aggregate = acc.result()
        if acc.rejected:
            party, why = next(iter(acc.rejected.items()))
            raise MalformedCiphertextError(f"the update of {party!r} cannot be combined: {why}")
        return aggregate

    def reveal(self, key: Key, aggregate: Envelope, *, function_key: FunctionKey | None = None) -> np.ndarray:
        """Return the weighted sum held in ``aggregate``, at a role that ``declarations.reveal`` allows.

        ``function_key``: the authority's key for this aggregate's contributors, where
        the plan reveals with one.  The result stays with the key holder: what leaves
        it goes through :meth:`release`.
        """
        require_role(key, *self.reveal_plan.allowed_roles(), action="reveal the aggregate")
        self._check_key(key)
        self._check_envelope(aggregate, key, kind="aggregate")
        return self._reveal(key, aggregate, function_key)

    def release(self, key: Key, aggregate: Envelope, total: np.ndarray) -> np.ndarray:
        """The publication step, for a weighted sum this role revealed from ``aggregate`` (what leaves it).

        Schemes whose decryptions leak key material when shared (CKKS) add noise
        flooding here.  Call it at most once per aggregate: each call draws fresh
        flooding noise.
        """
        require_role(key, *self.reveal_plan.allowed_roles(), action="release the aggregate")
        return self._publish(key, aggregate, np.asarray(total, dtype=np.float64))

    def capability(self, kind: type[C]) -> C | None:
        """This scheme's ``kind`` capability (:mod:`crypto_backends.capabilities`), or ``None`` if not offered.

        The default: the scheme itself when it inherits ``kind``.  Wrappers return the
        wrapped scheme's (changed where they must).
        """
        return self if isinstance(self, kind) else None

    # --- hooks of the template methods (see "Writing a scheme" in the module docstring) ---
    def _check_key(self, key: Key) -> None:
        key.unwrap(self.name)

    def _applied_weight(self, weight: float) -> float:
        return weight

    @abstractmethod
    def _protect(self, key: PartyKey, x: np.ndarray, *, weight: float, round: int) -> Payload:
        """The payload of ``key``'s update ``x`` at (applied) ``weight`` for ``round``."""

    @abstractmethod
    def _combine(
        self, key: AggregatorKey, updates: Sequence[Envelope], *, length: int, weights: Sequence[float]
    ) -> Payload:
        """The payload of the aggregate of checked ``updates`` (``weights``: the contributors', by party id)."""

    @abstractmethod
    def _reveal(self, key: Key, aggregate: Envelope, function_key: FunctionKey | None) -> np.ndarray:
        """The weighted sum in the checked ``aggregate``."""

    def _publish(self, key: Key, aggregate: Envelope, total: np.ndarray) -> np.ndarray:
        return total

    # --- checks shared by every scheme ------------------------------------------
    def _make_envelope(
        self,
        key: Key,
        payload: Payload,
        *,
        round: int,
        kind: Kind,
        parties: Sequence[str],
        weights: Sequence[float],
        length: int,
    ) -> Envelope:
        return Envelope(
            scheme=self.name,
            version=self.version,
            key_id=key.key_id,
            round=int(round),
            kind=kind,
            parties=tuple(parties),
            weights=tuple(float(w) for w in weights),
            length=int(length),
            payload=payload,
        )

    def _check_envelope(
        self,
        env: Envelope,
        key: Key,
        *,
        kind: Kind,
        round: int | None = None,
        length: int | None = None,
    ) -> None:
        """Raise the typed error if ``env`` is not this scheme's, this key set's, this round's."""
        if not isinstance(env, Envelope):
            raise MalformedCiphertextError(
                f"expected an Envelope, got {type(env).__name__}; parse bytes with Envelope.from_bytes"
            )
        if env.scheme != self.name or env.version != self.version:
            raise MismatchError(
                "scheme",
                f"envelope is {env.scheme!r} v{env.version}, this scheme is {self.name!r} v{self.version}: "
                "every party and the aggregator must use the same [crypto] scheme",
            )
        if env.key_id != key.key_id:
            raise MismatchError(
                "key",
                f"envelope was made under key {env.key_id.hex()[:16]}, expected {key.fingerprint}: "
                "the sender uses keys from another federation or an old key set",
            )
        if env.kind != kind:
            raise MalformedCiphertextError(f"expected an {kind!r} envelope, got {env.kind!r}")
        if round is not None and env.round != round:
            raise MismatchError("round", f"envelope belongs to round {env.round}, expected round {round}")
        if length is not None and env.length != length:
            raise MismatchError("length", f"envelope holds {env.length} values, expected {length}")

    # --- key export (explicit, never pickle) -------------------------------------
    def dump_key(self, key: Key, *, secret_access: SecretAccess | None = None) -> bytes:
        """Serialize a key.  Keys holding secrets need ``secret_access=SECRET_ACCESS``."""
        if key.scheme != self.name:
            raise MismatchError("scheme", f"a {key.scheme!r} key cannot be dumped by {self.name!r}")
        if key.holds_secret and secret_access is not SECRET_ACCESS:
            raise SecretExportError(
                f"{type(key).__name__} holds secret material; pass secret_access=SECRET_ACCESS to "
                "export it, and send the bytes only to a holder of the same role over mutual TLS"
            )
        header: dict[str, Any] = {
            "scheme": self.name,
            "class": type(key).__name__,
            "key_id": key.key_id.hex(),
            "owner": key.owner,
            "secret": key.holds_secret,
        }
        if isinstance(key, FunctionKey):
            header["round"] = key.round
            header["weights"] = key.weights
        head = json.dumps(header, separators=(",", ":")).encode()
        body = self._material_to_bytes(key)
        return b"SFLK" + struct.pack(">I", len(head)) + head + body

    def load_key(self, data: bytes) -> Key:
        """Inverse of :meth:`dump_key`."""
        data = bytes(data)
        if len(data) < 8 or data[:4] != b"SFLK":
            raise MalformedCiphertextError("not a securefl key (bad magic)")
        (hlen,) = struct.unpack(">I", data[4:8])
        header = load_header(data[8 : 8 + hlen], "key header")
        try:
            cls = _KEY_CLASSES[header["class"]]
            scheme, key_id = header["scheme"], bytes.fromhex(header["key_id"])
            owner, secret = header["owner"], bool(header["secret"])
            if cls is FunctionKey:
                rnd, weights = int(header["round"]), header["weights"]
                if not isinstance(weights, dict):
                    raise TypeError("weights is not an object")
        except (ValueError, KeyError, TypeError) as exc:
            raise MalformedCiphertextError(f"garbled key header: {exc!r}") from None
        if scheme != self.name:
            raise MismatchError("scheme", f"this is a {scheme!r} key; load it with that scheme")
        material = self._material_from_bytes(cls.role, cls, data[8 + hlen :])
        if cls is FunctionKey:
            return FunctionKey(scheme, key_id, material, round=rnd, weights=weights)
        if owner is not None:
            check_party_id(owner)
        return cls(scheme, key_id, material, holds_secret=secret, owner=owner)

    @abstractmethod
    def _material_to_bytes(self, key: Key) -> bytes:
        """Scheme-specific serialization of a key's material."""

    @abstractmethod
    def _material_from_bytes(self, role: Role, cls: type[Key], data: bytes) -> Any:
        """Inverse of :meth:`_material_to_bytes`."""


class Accumulator:
    """One round's aggregate, folded from updates one at a time (see "Streaming" in the module docstring).

    Promised: :meth:`add` checks the update exactly as :meth:`Scheme.combine` does
    (this scheme, this key set, this round, the length of the first update, a party
    not yet folded in) and then folds it; when it raises, nothing changed, so a bad
    update costs only its sender.  :meth:`result` is the aggregate of every update
    added.  Memory: the partial aggregate plus what one :meth:`add` needs, never
    every update.  Not promised: thread safety (callers serialise ``add``).  A
    float sum should not depend on arrival order (training amplifies last-bit
    differences): ``plain``'s accumulator keeps the exact rounding error for that.

    Subclasses fold in place by overriding :meth:`_fold` (which must raise before it
    changes anything) and :meth:`_payload`; one that defers folding a few updates
    (to batch them) folds them in :meth:`_finish` and lists any bad one it then finds
    in :attr:`rejected` (:meth:`_reject`), never failing the others.
    """

    def __init__(self, scheme: Scheme, key: AggregatorKey, *, round: int) -> None:
        require_role(key, AggregatorKey, action="combine updates")
        scheme._check_key(key)
        self.scheme, self.key, self.round = scheme, key, int(round)
        self.length: int | None = None
        self.rejected: dict[str, str] = {}
        """Updates accepted by :meth:`add` but found bad when a deferred fold ran, with the reason."""
        self._weights: dict[str, float] = {}
        self._partial: Envelope | None = None

    @property
    def parties(self) -> tuple[str, ...]:
        """The parties folded in so far, sorted."""
        return tuple(sorted(self._weights))

    def __len__(self) -> int:
        return len(self._weights)

    def check(self, update: Envelope, *, length: int | None = None) -> None:
        """Raise the typed error unless ``update`` could be added: this scheme's, this key set's, this round's.

        ``length``: the number of values expected (default: that of the updates already
        added).  Payload checks a scheme can make on arrival (``plain``: every value
        finite) run here too; :meth:`add` runs this check again itself, and also refuses
        a second update of one party.
        """
        self.scheme._check_envelope(update, self.key, kind="update", round=self.round,
                                    length=self.length if length is None else length)

    def add(self, update: Envelope) -> None:
        """Check ``update`` and fold it in (raises the typed error, and changes nothing, for a bad one)."""
        self.scheme._check_envelope(update, self.key, kind="update", round=self.round, length=self.length)
        if update.party in self._weights:
            raise MalformedCiphertextError(f"party {update.party!r} sent two updates for round {self.round}")
        pairs = sorted([*self._weights.items(), (update.party, update.weights[0])])
        self._fold(update, tuple(w for _, w in pairs))
        self._weights[update.party] = update.weights[0]
        self.length = update.length

    def result(self) -> Envelope:
        """The aggregate of every update added (the envelope :meth:`Scheme.combine` would return)."""
        self._finish()
        if not self._weights:
            raise CryptoError("nothing to combine: at least one update is needed")
        parties = self.parties
        return self.scheme._make_envelope(
            self.key, self._payload(), round=self.round, kind="aggregate", parties=parties,
            weights=[self._weights[p] for p in parties], length=int(self.length or 0),
        )

    # --- what a scheme's in-place accumulator overrides ---------------------------
    def _fold(self, update: Envelope, weights: Sequence[float]) -> None:
        """Fold the checked ``update`` in; ``weights``: every contributor's, new one included, by party id."""
        inputs = [update] if self._partial is None else [self._partial, update]
        payload = self.scheme._combine(self.key, inputs, length=update.length, weights=weights)
        parties = tuple(sorted([*self._weights, update.party]))
        self._partial = self.scheme._make_envelope(
            self.key, payload, round=self.round, kind="aggregate", parties=parties, weights=weights,
            length=update.length,
        )

    def _payload(self) -> Payload:
        assert self._partial is not None  # result() checked that something was added
        return self._partial.payload

    def _finish(self) -> None:  # noqa: B027 - optional hook
        """Run any deferred fold before :meth:`result` (an accumulator that buffers a few updates)."""

    def _reject(self, party: str, reason: str) -> None:
        """Take ``party``'s update out after a deferred fold found it bad (it costs only its sender)."""
        del self._weights[party]
        self.rejected[party] = reason


_KEY_CLASSES: dict[str, type[Key]] = {
    cls.__name__: cls for cls in (PartyKey, AggregatorKey, AuthorityKey, FunctionKey)
}

__all__ = [
    "SECRET_ACCESS",
    "Accumulator",
    "AggregatorKey",
    "AuthorityKey",
    "Declarations",
    "Envelope",
    "FunctionKey",
    "InsecureParametersWarning",
    "Key",
    "KeySet",
    "PartyIdentity",
    "PartyKey",
    "Payload",
    "RevealPlan",
    "RevealSite",
    "Role",
    "Scheme",
    "SchemeParams",
    "ShareRequest",
    "ThreatModel",
    "as_update_vector",
    "check_federation",
    "check_weight",
    "offered",
    "weighted_mean",
]
