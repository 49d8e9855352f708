"""Configuration: TOML in, frozen and validated dataclasses out.

Every rule about what a configuration may say lives in this module, and runs
however a :class:`Config` is made (loaded, built in Python, or changed with
:meth:`Config.replace` or :func:`dataclasses.replace`):

* each section's dataclass checks its own fields (types and ranges) in
  ``__post_init__``;
* ``Config.__post_init__`` checks that every section has the right type and runs
  :func:`check_consistency`, the one function holding the rules that span sections;
* ``[crypto]`` asks the schemes themselves, through :mod:`crypto_backends.registry`:
  a scheme name is valid when the registry knows it, parameters are valid when
  the scheme accepts them (its own validation and its one 112-bit security gate,
  in ``Scheme.__init__``), and "distributed DP needs a scheme that hides updates"
  reads the scheme's declared ``hides_updates``.  No scheme name is listed here.

The loader is generic over dataclasses: a table's keys must be the dataclass's
fields (anything else is an error listing what is allowed) and values are
type-checked against the field annotations.  Scheme tables ``[crypto.<scheme>]``
load into that scheme's own parameter dataclass the same way, so a new scheme
needs no change here.

``--set SECTION.KEY=VALUE`` overrides, and :meth:`Config.replace`'s dotted keys,
go through the same checks: an override's value is read as a TOML value
(``2048``, ``0.5``, ``true``, ``"text"``, ``[1, 2]``), and a bare word is taken as
a string.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from crypto_backends import registry
from crypto_backends.base import InsecureParametersWarning, SchemeParams, check_federation
from crypto_backends.envelope import PARTY_ID_RE
from crypto_backends.errors import InsecureParameterError, SecureFLError
from crypto_backends.sampling import DEFAULT_SAMPLES, MAX_SAMPLES
from crypto_backends.statements import VERIFY_MODES
from securefl.errors import ConfigError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

D = TypeVar("D", bound="DataclassInstance")
"""A dataclass that :func:`build` constructs from a table."""

DEFAULT_SCHEME = "plain"
"""``crypto.scheme`` when a config does not say: the unprotected baseline.  A default value only; which names
are valid is the registry's to say (:func:`crypto_backends.registry.available`)."""
DATASETS = ("breast_cancer", "digits", "iris", "wine")
SYNTHETIC = "synthetic"
"""``data.dataset`` drawn by scikit-learn's ``make_classification`` (``[data] samples, features, classes``)."""
OWN_DATA = "own"
"""``data.dataset`` of a deployment where each party brings its own rows (``securefl party --data``) or trainer."""
FUSIONS = ("mean", "sum")
PARTITIONS = ("iid", "dirichlet")
MODEL_KINDS = ("logistic", "linear_svm", "linear_regression", "mlp", "naive_bayes", "decision_tree")
KINDS_NEEDING_DATA = ("naive_bayes", "decision_tree")
MODEL_ENTRY_POINTS = "securefl.models"
"""Entry-point group where a third-party model kind registers (``name = "package.module:AdapterClass"``)."""


def model_kinds() -> tuple[str, ...]:
    """The built-in model kinds, then those registered in the ``securefl.models`` entry-point group."""
    plugins = sorted(ep.name for ep in entry_points(group=MODEL_ENTRY_POINTS) if ep.name not in MODEL_KINDS)
    return (*MODEL_KINDS, *plugins)
PRIVACY_MODES = ("off", "local", "distributed")
MECHANISMS = ("gaussian", "laplace")
COMPOSITIONS = ("basic", "zcdp")
TRANSPORTS = ("threads", "ray", "grpc")
AUTO_CHECKPOINT = "auto"
"""``transport.checkpoint``'s default: a checkpoint for a ``grpc`` deployment, none in one process."""
"""``transport.kind``: the one seam key: the parties on threads of this process, in Ray actors (both run by
``securefl run``), or each role its own process over gRPC."""
IN_PROCESS = ("threads", "ray")
"""The kinds ``securefl run`` runs in one command (the round engine in this process)."""
MAX_TREE_DEPTH = 10
"""Deepest ``decision_tree`` ``model.max_depth`` accepted (the vector holds 2**(max_depth - 1) nodes' counts)."""
MiB = 1 << 20


def _require(cond: bool, key: str, message: str) -> None:
    if not cond:
        raise ConfigError(f"{key}: {message}")


def _one_of(value: str, allowed: Sequence[str], key: str) -> None:
    _require(value in allowed, key, f"{value!r} is not allowed; use one of {', '.join(map(repr, allowed))}")


class _Section:
    """Base of the section dataclasses: type-check every field, then the section's own ranges.

    Types are checked here as well as by the loader so that a section built in Python
    (``FederationConfig(parties="5")``) fails with the same message as a file would;
    ints given for floats and lists given for tuples are converted, as the loader does.
    """

    SECTION: ClassVar[str]

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            checked = _check_type(f"{self.SECTION}.{f.name}", value, hints[f.name])
            if checked is not value:
                object.__setattr__(self, f.name, checked)  # frozen: the one normalising write
        self._validate()

    def _validate(self) -> None:
        """Ranges and rules within the section (override)."""


@dataclass(frozen=True)
class FederationConfig(_Section):
    """``[federation]``: who takes part and for how long."""

    SECTION: ClassVar[str] = "federation"

    parties: int = 5
    rounds: int = 10
    quorum: int = 0
    """Fewest parties whose updates a round needs; 0 means every party."""
    seed: int = 0
    round_timeout: float = 600.0
    """Seconds the aggregator waits for updates before dropping the missing parties."""
    party_ids: tuple[str, ...] = ()
    """Explicit party names; empty means ``party-1`` ... ``party-N``."""
    max_weight: float = 1e6
    """Largest weight (e.g. sample count) a party may declare; an update declaring more is refused."""
    max_update_norm: float = 0.0
    """Where the aggregator sees updates (``plain``): refuse one whose unweighted L2 norm exceeds this;
    0: only the scheme's own bound (local differential privacy: ``privacy.clip_norm`` plus the noise)."""

    def _validate(self) -> None:
        _require(1 <= self.parties <= 1000, "federation.parties", "must be between 1 and 1000")
        _require(1 <= self.rounds <= 100_000, "federation.rounds", "must be between 1 and 100000")
        _require(0 <= self.quorum <= self.parties, "federation.quorum",
                 f"must be between 1 and federation.parties ({self.parties}), or 0 for all parties")
        _require(self.seed >= 0, "federation.seed", "must be a non-negative integer")
        _require(0 < self.round_timeout <= 86_400, "federation.round_timeout", "must be in (0, 86400] seconds")
        _require(0 < self.max_weight <= 1e15, "federation.max_weight", "must be in (0, 1e15]")
        _require(0 <= self.max_update_norm < 1e15, "federation.max_update_norm",
                 "must be a non-negative number (0: no bound beyond the scheme's)")
        if self.party_ids:
            _require(len(self.party_ids) == self.parties, "federation.party_ids",
                     f"names {len(self.party_ids)} parties but federation.parties is {self.parties}")
            _require(len(set(self.party_ids)) == len(self.party_ids), "federation.party_ids", "names a party twice")
            for pid in self.party_ids:
                _require(bool(PARTY_ID_RE.fullmatch(pid)), "federation.party_ids",
                         f"{pid!r} is not a valid id (1-64 letters, digits, '.', '_', '-')")

    @property
    def ids(self) -> tuple[str, ...]:
        """The party ids: ``party_ids`` when given, else ``party-1`` ... ``party-N`` for ``parties = N``."""
        return self.party_ids or tuple(f"party-{i + 1}" for i in range(self.parties))

    @property
    def min_parties(self) -> int:
        """The quorum as a count: ``quorum``, or every party when it is 0."""
        return self.quorum or self.parties


@dataclass(frozen=True)
class DataConfig(_Section):
    """``[data]``: the data set and how it is split across parties."""

    SECTION: ClassVar[str] = "data"

    dataset: str = "breast_cancer"
    """A bundled scikit-learn set (breast_cancer, digits, iris, wine), ``synthetic`` (drawn by scikit-learn's
    ``make_classification`` from ``samples``, ``features``, ``classes`` and ``federation.seed``), ``csv:PATH``
    (all split across the parties: a demo), or ``own``: each party trains on its own file (``securefl party
    --data``) or its own trainer, and the aggregator and the authority read no data."""
    label_column: str = "label"
    partition: str = "iid"
    alpha: float = 0.5
    """Dirichlet concentration for ``partition = "dirichlet"`` (smaller = more label skew)."""
    test_fraction: float = 0.25
    standardize: bool = True
    samples: int = 10_000
    """``synthetic``: rows drawn in all (training and held-out together)."""
    features: int = 20
    """``synthetic``: feature columns (half of them informative, the rest noise)."""
    classes: int | tuple[str, ...] | tuple[int, ...] = 2
    """``synthetic``: the number of classes (at most ``2 ** (features // 2)``).  ``csv:`` and ``own``: the list of
    class labels every site uses (``["benign", "malignant"]`` or ``[0, 1, 2]``), in the order that numbers them;
    a file's label outside it is refused.  Needed for string labels in the parties' own files, whose sites would
    otherwise number their own label sets apart."""

    @property
    def class_labels(self) -> tuple[str, ...] | tuple[int, ...] | None:
        """The declared class labels (``classes`` as a list), or ``None`` when ``classes`` is a number."""
        return None if isinstance(self.classes, int) else self.classes

    def _validate(self) -> None:
        if self.dataset.startswith("csv:"):
            _require(len(self.dataset) > 4, "data.dataset", "write csv:PATH with the path of a CSV file")
        else:
            _one_of(self.dataset, (*DATASETS, SYNTHETIC, OWN_DATA), "data.dataset")
        _require(10 <= self.samples <= 10_000_000, "data.samples", "must be between 10 and 10000000 rows")
        _require(2 <= self.features <= 10_000, "data.features", "must be between 2 and 10000 columns")
        if not isinstance(self.classes, int):
            labels = self.classes
            _require(self.dataset.startswith("csv:") or self.dataset == OWN_DATA, "data.classes",
                     f"a list declares the labels of CSV files (data.dataset = 'csv:PATH' or 'own'); "
                     f"{self.dataset!r} has its own labels: give the number of classes for 'synthetic', or "
                     "leave data.classes out")
            _require(len(labels) >= 2, "data.classes", f"{list(labels)!r}: declare at least two class labels")
            _require(len(set(labels)) == len(labels), "data.classes",
                     f"{list(labels)!r} repeats {sorted({v for v in labels if labels.count(v) > 1})!r}; "
                     "list each class label once")
        else:
            _require(2 <= self.classes <= 1000, "data.classes", "must be between 2 and 1000")
            _require(self.classes <= 2 ** min(self.features // 2, 30), "data.classes",
                     f"{self.classes} classes need at least {2 * max(1, math.ceil(math.log2(self.classes)))} "
                     "features (half of them informative, one cluster per class); raise data.features or lower "
                     "data.classes")
        _one_of(self.partition, PARTITIONS, "data.partition")
        _require(self.alpha > 0, "data.alpha", "must be positive")
        _require(0 < self.test_fraction < 1, "data.test_fraction", "must be strictly between 0 and 1")


@dataclass(frozen=True)
class ModelConfig(_Section):
    """``[model]``: the scikit-learn model every party trains locally."""

    SECTION: ClassVar[str] = "model"

    kind: str = "logistic"
    local_epochs: int = 1
    learning_rate: float = 0.01
    alpha: float = 0.0001
    """L2 regularisation strength."""
    hidden_layers: tuple[int, ...] = (32,)
    """Hidden layer sizes (``mlp`` only)."""
    batch_size: int = 32
    """Mini-batch size (``mlp`` only)."""
    max_depth: int = 4
    """Deepest level of a ``decision_tree``; it is grown in this many rounds, one level per round."""
    min_samples_leaf: int = 5
    """Fewest training rows (summed over parties) a ``decision_tree`` leaf may hold."""
    bins: int = 32
    """Equal-width bins per feature between ``feature_bounds``: a ``decision_tree``'s candidate thresholds."""
    feature_bounds: tuple[float, ...] = (-3.0, 3.0)
    """Public ``[lower, upper]`` range of every feature, whose equal-width bins are a ``decision_tree``'s
    thresholds (values outside fall in the end bins); never read from the data."""
    fusion: str = "mean"
    """With your own trainers: ``mean`` (the weighted mean of their vectors) or ``sum`` (the plain sum, for
    sufficient statistics; every trainer then returns weight 1).  The built-in kinds declare their own."""

    def _validate(self) -> None:
        _one_of(self.kind, model_kinds(), "model.kind")
        _require(1 <= self.local_epochs <= 1000, "model.local_epochs", "must be between 1 and 1000")
        _require(0 < self.learning_rate <= 10, "model.learning_rate", "must be in (0, 10]")
        _require(self.alpha >= 0, "model.alpha", "must be non-negative")
        _require(len(self.hidden_layers) >= 1 and all(1 <= h <= 100_000 for h in self.hidden_layers),
                 "model.hidden_layers", "must be a non-empty list of positive layer sizes")
        _require(self.batch_size >= 1, "model.batch_size", "must be positive")
        _require(1 <= self.max_depth <= MAX_TREE_DEPTH, "model.max_depth",
                 f"must be between 1 and {MAX_TREE_DEPTH} (each level is one round, and the reply holds class "
                 "counts for every node of the deepest level: 2**(max_depth - 1) nodes)")
        _require(self.min_samples_leaf >= 1, "model.min_samples_leaf",
                 "must be a positive number of rows, e.g. 5")
        _require(2 <= self.bins <= 256, "model.bins",
                 "must be between 2 and 256 (candidate thresholds per feature; 32 suits standardized features)")
        lo_hi = self.feature_bounds
        _require(len(lo_hi) == 2 and all(math.isfinite(v) for v in lo_hi) and lo_hi[0] < lo_hi[1],
                 "model.feature_bounds", "write [lower, upper] with finite lower < upper, e.g. [-3.0, 3.0] for "
                 "standardized features")
        _one_of(self.fusion, FUSIONS, "model.fusion")


@dataclass(frozen=True)
class CryptoConfig:
    """``[crypto]``: ``scheme`` picks the protection; ``[crypto.<scheme>]`` tables tune each scheme.

    Every scheme named here is asked whether it accepts its parameters (see
    :func:`check_scheme_params`): the selected one (its table, else its defaults)
    and every scheme that has a table, since any of them may be run (``compare``).
    """

    scheme: str = DEFAULT_SCHEME
    params: Mapping[str, SchemeParams] = field(default_factory=dict)
    verify_aggregate: str = "full"
    """``full``: every party signs its upload and whoever reveals checks that the aggregate is the fold of at
    least the quorum's signed uploads of one model (a cheating aggregator is refused); ``off``: no signatures
    and no check, the honest-but-curious protocol (see :mod:`crypto_backends.statements`); ``sampled``: the same
    statements, and each verifier checks ``verify_samples`` blocks it draws at random instead of refolding every
    upload (:mod:`crypto_backends.sampling`: a fraction of the bytes, a stated chance per altered block)."""
    verify_samples: int = DEFAULT_SAMPLES
    """Blocks of each upload one verifier checks under ``verify_aggregate = "sampled"``."""

    def __post_init__(self) -> None:
        _require(isinstance(self.scheme, str), "crypto.scheme", "must be a string naming a scheme")
        _require(self.verify_aggregate in VERIFY_MODES, "crypto.verify_aggregate",
                 f"must be one of {', '.join(map(repr, VERIFY_MODES))}, got {self.verify_aggregate!r}")
        _require(isinstance(self.verify_samples, int) and not isinstance(self.verify_samples, bool)
                 and 1 <= self.verify_samples <= MAX_SAMPLES, "crypto.verify_samples",
                 f"must be an integer from 1 to {MAX_SAMPLES} (blocks each verifier checks), got "
                 f"{self.verify_samples!r}")
        available = registry.available()
        _require(self.scheme in available, "crypto.scheme",
                 f"{self.scheme!r} is not a registered scheme; use one of {', '.join(available)}")
        _require(isinstance(self.params, Mapping), "crypto.params", "must map scheme names to their parameters")
        for name, params in self.params.items():
            _require(name in available, f"crypto.{name}",
                     "unknown key; [crypto] holds 'scheme', 'verify_aggregate', 'verify_samples' and one table per "
                     f"scheme ({', '.join(available)})")
            ptype = registry.params_type(name)
            _require(isinstance(params, ptype), f"crypto.{name}",
                     f"needs {ptype.__name__}, got {type(params).__name__}")
            check_scheme_params(name, params)
        if self.scheme not in self.params:
            check_scheme_params(self.scheme, self.scheme_params())
        # a copy, so that the caller's dict cannot change a frozen config afterwards
        object.__setattr__(self, "params", dict(self.params))

    def scheme_params(self, name: str | None = None) -> SchemeParams:
        """Parameters for ``name`` (default: the selected scheme): its table, else its defaults."""
        name = name or self.scheme
        return self.params.get(name) or registry.params_type(name)()


def check_scheme_params(name: str, params: SchemeParams) -> None:
    """Ask scheme ``name`` whether it accepts ``params``; its refusal becomes a :class:`ConfigError`.

    The scheme is built once and dropped: ``Scheme.__init__`` runs the parameters'
    ``validate()`` and the one security gate (below ``MIN_SECURITY_BITS`` only with
    ``allow_insecure``).  Building is cheap (keys are made later, by ``keygen``).
    """
    prefix = f"crypto.{name}"
    try:
        with _quiet_insecure_warning(params):
            registry.create(name, params)
    except InsecureParameterError as exc:
        raise ConfigError(f"{_changed_keys(name, params)}: {exc} In a config file: remove the override from "
                          f"[{prefix}] (or write preset = \"default\") for the scheme's secure defaults"
                          + _test_preset_hint(name)) from None
    except SecureFLError as exc:
        raise ConfigError(f"{prefix}: {exc}") from None
    except ImportError as exc:
        raise ConfigError(f"{prefix}: the {name!r} scheme cannot be loaded ({exc}); install its dependency "
                          "or choose another crypto.scheme") from None


@contextmanager
def _quiet_insecure_warning(params: SchemeParams) -> Iterator[None]:
    # Test parameters make the scheme warn each time it is built.  The warning belongs where the scheme is
    # used (the round engine builds it again and warns there), not to every check of a config (compare
    # records warnings per scheme).  Filters are process-wide, so they are touched only when it can fire.
    if not params.allow_insecure:
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureParametersWarning)
        yield


def _changed_keys(name: str, params: SchemeParams) -> str:
    """Where ``params`` come from, as config keys: a named preset, else the fields that differ from the default."""
    presets = registry.params_type(name).presets()
    named = next((p for p, value in presets.items() if value == params and p != "default"), None)
    if named is not None:
        return f"crypto.{name}.preset = {named!r}"
    changed = [f"crypto.{name}.{key} = {value!r}" for key, value in params.as_dict().items()
               if getattr(presets["default"], key) != value]
    return ", ".join(changed) or f"crypto.{name}"


def _test_preset_hint(name: str) -> str:
    if "test" in registry.params_type(name).presets():
        return '; for fast tests only, preset = "test" (loudly insecure)'
    return "; for fast tests only, allow_insecure = true"


@dataclass(frozen=True)
class PrivacyConfig(_Section):
    """``[privacy]``: differential privacy wrapped around whichever scheme ``[crypto]`` picks."""

    SECTION: ClassVar[str] = "privacy"

    mode: str = "off"
    """``off``, ``local`` (each party adds the full noise) or ``distributed`` (noise shares under encryption)."""
    mechanism: str = "gaussian"
    epsilon: float = 1.0
    """Epsilon spent per round (for ``naive_bayes``: by the one-shot fit)."""
    delta: float = 1e-5
    """Delta spent per round (``gaussian`` only; ``laplace`` spends none)."""
    clip_norm: float = 1.0
    """L2 bound every update is clipped to before noise (models trained in rounds)."""
    epsilon_budget: float = 10.0
    """Total epsilon the run may spend; the round that would exceed it is refused."""
    delta_budget: float = 1e-4
    row_norm: float = 0.0
    """``logistic`` only: clip every training row to this L2 norm and use local SGD's own record-level
    sensitivity instead of clipping updates (0: clip updates to ``clip_norm``)."""
    composition: str = "basic"
    """How rounds add up: ``basic`` (epsilons and deltas sum) or ``zcdp`` (zero-concentrated DP, tighter over
    many rounds; reports epsilon at ``delta_budget``)."""
    bounds: tuple[float, ...] = (-3.0, 3.0)
    """Public ``[lower, upper]`` bound of every feature (``naive_bayes``); values are clipped to it."""
    bounds_from_data: bool = False
    """Derive ``bounds`` from each party's data instead: leaks privacy, warns (PrivacyLeakWarning)."""

    def _validate(self) -> None:
        _one_of(self.mode, PRIVACY_MODES, "privacy.mode")
        _one_of(self.mechanism, MECHANISMS, "privacy.mechanism")
        _require(0 < self.epsilon <= 100, "privacy.epsilon", "must be in (0, 100]")
        if self.mechanism == "gaussian":
            _require(0 < self.delta < 1, "privacy.delta", "must be in (0, 1) for the gaussian mechanism, e.g. 1e-5")
        else:
            _require(0 <= self.delta < 1, "privacy.delta", "must be in [0, 1)")
        _require(0 < self.clip_norm < 1e6, "privacy.clip_norm", "must be positive")
        _require(self.epsilon_budget >= self.epsilon, "privacy.epsilon_budget",
                 f"must allow at least one round (privacy.epsilon = {self.epsilon})")
        _require(0 <= self.delta_budget < 1, "privacy.delta_budget", "must be in [0, 1)")
        _require(0 <= self.row_norm < 1e6, "privacy.row_norm", "must be non-negative (0 turns it off)")
        _one_of(self.composition, COMPOSITIONS, "privacy.composition")
        if self.composition == "zcdp":
            _require(self.delta_budget > 0, "privacy.delta_budget", "must be positive with composition = 'zcdp'")
        if self.mechanism == "gaussian":
            _require(self.delta_budget >= self.delta, "privacy.delta_budget",
                     f"must allow at least one round (privacy.delta = {self.delta})")
        _require(len(self.bounds) == 2 and self.bounds[0] < self.bounds[1], "privacy.bounds",
                 "write [lower, upper] with lower < upper, e.g. [-3.0, 3.0] for standardized features")

    @property
    def enabled(self) -> bool:
        """Whether differential privacy is on: ``mode`` is ``local`` or ``distributed``, not ``off``."""
        return self.mode != "off"

    @property
    def delta_per_round(self) -> float:
        """Delta one round spends: the configured delta for ``gaussian``, zero for ``laplace``."""
        return self.delta if self.mechanism == "gaussian" else 0.0


@dataclass(frozen=True)
class TransportConfig(_Section):
    """``[transport]``: how the roles talk: ``threads`` or ``ray`` (one ``securefl run``) or ``grpc`` (mutual TLS).

    With ``grpc`` each role is its own process (``securefl authority | aggregator
    | party``).  Parties and the aggregator dial out to the servers, so only the
    aggregator's and the authority's ports must be reachable.
    """

    SECTION: ClassVar[str] = "transport"

    kind: str = "threads"
    """Where the parties run: ``threads`` of this process, ``ray`` actors (the ``[ray]`` extra; many parties per
    actor, one actor per CPU), or ``grpc``: each role its own process (``securefl authority | aggregator | party``)."""
    ray_address: str = ""
    """``kind = "ray"``: the Ray cluster to join (e.g. ``ray://head:10001`` or ``auto``); empty starts a
    local Ray runtime for the run and stops it afterwards."""
    aggregator_host: str = "127.0.0.1"
    """Where parties reach the aggregator."""
    aggregator_port: int = 50051
    authority_host: str = "127.0.0.1"
    """Where parties and the aggregator reach the key authority."""
    authority_port: int = 50052
    bind_host: str = "127.0.0.1"
    """Address the servers listen on (``0.0.0.0`` for every interface)."""
    cert_dir: str = "certs"
    """Directory made by ``securefl certs`` (ca.pem, NAME.pem, NAME.key)."""
    checkpoint: str = "auto"
    """The aggregator's checkpoint file, written atomically after every round; a rerun resumes from it, with
    ``threads`` or ``ray`` (``securefl run``) as with ``grpc``.  ``"auto"``: ``securefl-aggregator.ckpt`` for a
    ``grpc`` deployment, none for an in-process run (so that reruns start over unless asked); empty: none.
    See :attr:`checkpoint_file`."""
    authority_keys: str = ""
    """The authority's key store (every secret key; mode 0600), so a restarted authority serves the same
    keys; empty: keys live in the authority's memory only and a restart makes a new key set."""
    state_dir: str = "securefl-state"
    """Where the networked party and authority processes keep their security state (one 0600 file per role and
    federation, written before anything it guards leaves): the rounds a party answered and the privacy budget it
    spent, the authority's record of function keys. A restart never answers a round twice or regains budget."""
    connect_timeout: float = 120.0
    """Seconds a role keeps retrying (with exponential back-off) an unreachable peer before giving up."""
    poll_seconds: float = 10.0
    """Longest a party's request for work is held open by the aggregator before it asks again."""
    chunk_bytes: int = 1 * MiB
    """Size of each streamed piece of a model, update or key."""
    max_message_bytes: int = 2048 * MiB
    """Largest model, update or key accepted over the network."""

    @property
    def checkpoint_file(self) -> str:
        """The checkpoint file a run writes and resumes from (``checkpoint``, ``"auto"`` resolved); empty: none."""
        if self.checkpoint == AUTO_CHECKPOINT:
            return "securefl-aggregator.ckpt" if self.kind == "grpc" else ""
        return self.checkpoint

    def _validate(self) -> None:
        _one_of(self.kind, TRANSPORTS, "transport.kind")
        _require(not self.ray_address or self.kind == "ray", "transport.ray_address",
                 f"is for transport.kind = 'ray', not {self.kind!r}; set kind = 'ray' or leave ray_address empty")
        _require(self.ray_address == self.ray_address.strip(), "transport.ray_address",
                 "has leading or trailing spaces; write the address alone, e.g. 'auto' or 'ray://head:10001'")
        for role in ("aggregator", "authority"):
            host, port = getattr(self, f"{role}_host"), getattr(self, f"{role}_port")
            _require(0 < len(host) <= 253 and not any(c.isspace() for c in host), f"transport.{role}_host",
                     "must be a host name or IP address")
            _require(1 <= port <= 65535, f"transport.{role}_port", "must be a TCP port between 1 and 65535")
        _require(self.aggregator_port != self.authority_port or self.aggregator_host != self.authority_host,
                 "transport.authority_port", "the aggregator and the authority cannot share one address")
        _require(0 < len(self.bind_host) <= 253, "transport.bind_host",
                 "must be an address such as 127.0.0.1 or 0.0.0.0")
        _require(bool(self.cert_dir), "transport.cert_dir", "must name the directory made by `securefl certs`")
        _require(bool(self.state_dir), "transport.state_dir",
                 "must name a directory for the roles' security state (e.g. \"securefl-state\"); without it a "
                 "restarted party could answer a round twice")
        _require(0 < self.connect_timeout <= 86_400, "transport.connect_timeout", "must be in (0, 86400] seconds")
        _require(0.1 <= self.poll_seconds <= 600, "transport.poll_seconds", "must be in [0.1, 600] seconds")
        _require(16 * 1024 <= self.chunk_bytes <= 64 * MiB, "transport.chunk_bytes",
                 "must be between 16384 and 67108864 bytes (1-4 MiB is usual)")
        _require(self.chunk_bytes <= self.max_message_bytes <= 64 * 1024 * MiB, "transport.max_message_bytes",
                 "must be at least transport.chunk_bytes and at most 64 GiB")

    def address(self, role: str) -> str:
        """``host:port`` where ``role`` (``aggregator`` or ``authority``) is reached."""
        host = getattr(self, f"{role}_host")
        return f"[{host}]:{getattr(self, f'{role}_port')}" if ":" in host else f"{host}:{getattr(self, f'{role}_port')}"


@dataclass(frozen=True)
class Config:
    """A whole run's configuration, validated however it is made (see the module docstring).

    ``whole_run=False`` is for commands that use sections on their own (``securefl
    bench`` takes its schemes from ``--schemes``, not from ``crypto.scheme``): each
    section is still checked, the rules spanning sections are not, so such a config
    must not drive a federation.
    """

    federation: FederationConfig = field(default_factory=FederationConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    crypto: CryptoConfig = field(default_factory=CryptoConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    transport: TransportConfig = field(default_factory=TransportConfig)
    source: str = "<defaults>"
    whole_run: bool = True

    def __post_init__(self) -> None:
        for name, cls in SECTIONS.items():
            value = getattr(self, name)
            _require(isinstance(value, cls), name, f"must be a {cls.__name__} ([{name}]), got {type(value).__name__}")
        if self.whole_run:
            check_consistency(self)

    def replace(self, overrides: Sequence[str] = (), /, **changes: Any) -> Config:
        """This configuration with some keys changed, validated again like a loaded file.

        ``overrides`` are ``--set`` strings (``"federation.rounds=5"``); ``changes`` map dotted keys
        to Python values (``**{"crypto.scheme": "ckks", "privacy.mode": "local"}``).  Setting
        ``crypto.<scheme>.preset`` starts that scheme's table afresh from the preset.  Raises
        :class:`ConfigError` naming the key, as the loader does.
        """
        return replace(self, overrides, **changes)


SECTIONS: dict[str, type] = {
    "federation": FederationConfig,
    "data": DataConfig,
    "model": ModelConfig,
    "crypto": CryptoConfig,
    "privacy": PrivacyConfig,
    "transport": TransportConfig,
}


# --- loading -------------------------------------------------------------------
def load(path: str | Path, overrides: Sequence[str] = (), *, whole_run: bool = True) -> Config:
    """Read a TOML file, apply ``--set`` overrides, validate, return a frozen :class:`Config`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist; pass the path of a TOML file "
                          "such as examples/configs/plain.toml") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror}") from None
    return loads(text, overrides, source=str(path), whole_run=whole_run)


def loads(text: str, overrides: Sequence[str] = (), *, source: str = "<string>", whole_run: bool = True) -> Config:
    """Like :func:`load`, from TOML text.

    ``whole_run=False`` skips the rules that span sections (see :class:`Config`).
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source} is not valid TOML: {exc}") from None
    for item in overrides:
        apply_override(raw, item)
    return from_mapping(raw, source=source, whole_run=whole_run)


def parse_override(item: str) -> tuple[list[str], Any]:
    """Split ``SECTION.KEY=VALUE`` into a key path and a typed value."""
    key, sep, value = item.partition("=")
    path = _key_path(key)
    if not sep or path is None:
        raise ConfigError(f"--set {item!r}: write SECTION.KEY=VALUE, for example --set federation.rounds=5")
    value = value.strip()
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value  # a bare word: a string
    return path, parsed


def _key_path(key: str) -> list[str] | None:
    path = [p.strip() for p in key.strip().split(".")]
    return path if len(path) >= 2 and all(path) else None


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply one ``--set SECTION.KEY=VALUE`` to the raw (unvalidated) mapping ``raw``, in place.

    Missing sections are created; :class:`ConfigError` for a malformed ``item``, or a path
    through a value instead of a section.  Nothing is validated here: that happens when ``raw`` is read.
    """
    path, value = parse_override(item)
    _assign(raw, path, value, f"--set {item!r}")


def _assign(raw: dict[str, Any], path: Sequence[str], value: Any, label: str) -> None:
    node = raw
    for part in path[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{label}: {part!r} is a value, not a section")
    node[path[-1]] = value


def replace(cfg: Config, overrides: Sequence[str] = (), /, **changes: Any) -> Config:
    """:meth:`Config.replace` as a function: ``cfg`` with ``--set`` ``overrides`` and dotted-key ``changes``."""
    raw = to_mapping(cfg)
    edits: list[tuple[list[str], Any, str]] = []
    for item in overrides:
        path, value = parse_override(item)
        edits.append((path, value, f"--set {item!r}"))
    for key, value in changes.items():
        dotted = _key_path(key)
        if dotted is None:
            raise ConfigError(f"replace({key!r}): write a dotted SECTION.KEY, for example federation.rounds")
        edits.append((dotted, value, f"replace({key!r})"))
    # a preset starts its table afresh (the table holds every field of the old parameters), and
    # comes first so that the other keys of the same call refine it
    for path, value, label in sorted(edits, key=lambda e: not _is_preset(e[0])):
        if _is_preset(path) and isinstance(raw.get("crypto", {}).get(path[1]), dict):
            raw["crypto"][path[1]] = {}
        _assign(raw, path, value, label)
    return from_mapping(raw, source=cfg.source, whole_run=cfg.whole_run)


def _is_preset(path: Sequence[str]) -> bool:
    return len(path) == 3 and path[0] == "crypto" and path[2] == "preset"


def to_mapping(cfg: Config) -> dict[str, Any]:
    """``cfg`` as the document :func:`from_mapping` reads (every key explicit; scheme tables in full)."""
    raw: dict[str, Any] = {}
    for name in SECTIONS:
        section = getattr(cfg, name)
        if isinstance(section, CryptoConfig):
            raw[name] = {"scheme": section.scheme, "verify_aggregate": section.verify_aggregate,
                         "verify_samples": section.verify_samples,
                         **{n: p.as_dict() for n, p in section.params.items()}}
        else:
            raw[name] = {f.name: getattr(section, f.name) for f in dataclasses.fields(section)}
    return raw


def from_mapping(raw: Mapping[str, Any], *, source: str = "<mapping>", whole_run: bool = True) -> Config:
    """Validate a parsed TOML document into a :class:`Config`."""
    unknown = set(raw) - set(SECTIONS)
    if unknown:
        raise ConfigError(f"unknown section [{sorted(unknown)[0]}] in {source}; "
                          f"allowed sections: {', '.join(f'[{s}]' for s in SECTIONS)}")
    _refuse_replaced_keys(raw)
    sections: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        table = raw.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{name}: must be a table ([{name}]), got a {type(table).__name__}")
        sections[name] = _crypto(table) if cls is CryptoConfig else build(cls, table, name)
    return Config(**sections, source=source, whole_run=whole_run)


def _refuse_replaced_keys(raw: Mapping[str, Any]) -> None:
    """Refuse the keys of the old two-key seam, naming the one key that replaced them.

    ``federation.engine`` (threads or Ray) and ``transport.kind = "inproc"`` / ``"grpc"`` were two keys for one
    choice; a config that still uses them would otherwise fail with a bare "unknown key".
    """
    fed, transport = raw.get("federation", {}), raw.get("transport", {})
    if isinstance(fed, Mapping) and "engine" in fed:
        engine = fed["engine"]
        kind = engine if engine in IN_PROCESS else "threads"
        raise ConfigError(f"federation.engine was replaced by [transport] kind = \"{kind}\" "
                          f"(one of {', '.join(map(repr, TRANSPORTS))}); remove federation.engine")
    if isinstance(fed, Mapping) and "ray_address" in fed:
        raise ConfigError("federation.ray_address was replaced by [transport] ray_address (with "
                          "[transport] kind = \"ray\"); move it there")
    if isinstance(transport, Mapping) and transport.get("kind") == "inproc":
        raise ConfigError("transport.kind = \"inproc\" was replaced by [transport] kind = \"threads\" "
                          "(or \"ray\" for Ray actors)")


def check_consistency(cfg: Config) -> None:
    """The rules that span sections (asked of the scheme's declarations, never of its name).

    :class:`Config` runs this for every configuration; call it only to re-check one made with
    ``whole_run=False``.
    """
    priv, model = cfg.privacy, cfg.model
    if cfg.data.dataset == OWN_DATA:
        # the public constants these need (party weights, feature bounds, statistics' scale) come from the data
        _require(not priv.enabled, "privacy.mode",
                 "must be 'off' with data.dataset = 'own' for now: calibrating the noise needs the parties' public "
                 "weights before the first round. Use a bundled or csv: data set split across the parties")
        _require(model.kind not in KINDS_NEEDING_DATA, "model.kind",
                 f"{model.kind!r} needs the data's public shape at the aggregator, which reads no data with "
                 f"data.dataset = 'own'; use {', '.join(k for k in MODEL_KINDS if k not in KINDS_NEEDING_DATA)}")
    if priv.enabled and priv.row_norm > 0:
        _require(model.kind == "logistic", "privacy.row_norm",
                 f"bounds local SGD's sensitivity for model.kind = 'logistic' only (convex, smooth loss), not "
                 f"{model.kind!r}; set it to 0 to clip updates to privacy.clip_norm instead")
        # the SGD step must be non-expansive: lr * (alpha + smoothness) <= 2, smoothness = (row_norm^2 + 1) / 4
        limit = 2.0 / (model.alpha + (priv.row_norm**2 + 1) / 4)
        _require(model.learning_rate <= limit, "model.learning_rate",
                 f"must be at most {limit:.4g} with privacy.row_norm = {priv.row_norm:g} (the sensitivity bound of "
                 "local SGD needs lr * (alpha + (row_norm^2 + 1) / 4) <= 2); lower it or lower privacy.row_norm")
    try:  # e.g. a threshold above the number of parties, or two parties under a scheme that hides updates
        check_federation(registry.get(cfg.crypto.scheme), cfg.crypto.scheme_params(), cfg.federation.parties)
    except SecureFLError as exc:
        raise ConfigError(str(exc)) from None
    # distributed noise shares are each too small to protect anyone: only a scheme that hides every update
    # from the aggregator (so that it sees their sum alone) keeps the guarantee
    if priv.mode == "distributed" and not registry.get(cfg.crypto.scheme).threat_model.hides_updates:
        hiding = ", ".join(hiding_schemes()) or "none installed"
        raise ConfigError(
            f"privacy.mode: 'distributed' needs a scheme that hides each update from the aggregator, and "
            f"{cfg.crypto.scheme!r} does not (the aggregator would see every party's small noise share). "
            f"Set crypto.scheme to one that does ({hiding}) or use privacy.mode = 'local'"
        )


    if priv.mode == "distributed":
        # the noise plan splits the noise into federation.min_parties shares (see securefl.privacy.calibration);
        # a scheme whose own policy reveals sums of fewer parties would release sums with less noise
        params = cfg.crypto.scheme_params()
        least, key = params.fewest_contributors(cfg.federation.parties), params.contributors_key
        quorum = cfg.federation.min_parties
        _require(least is None or least >= quorum, f"crypto.{cfg.crypto.scheme}",
                 f"its policy reveals sums of as few as {least} parties ({key}), but with privacy.mode = "
                 f"'distributed' every revealed sum must hold at least the {quorum} noise shares of the quorum "
                 f"(federation.quorum, 0 = every party): set crypto.{cfg.crypto.scheme}.{key} to at least "
                 f"{quorum}, or lower federation.quorum to at most {least}")


def hiding_schemes() -> list[str]:
    """Registered schemes that declare ``hides_updates`` (those that fail to load are left out)."""
    names = []
    for name in registry.available():
        try:
            if registry.get(name).threat_model.hides_updates:
                names.append(name)
        except (SecureFLError, ImportError):
            continue
    return names


def _crypto(table: Mapping[str, Any]) -> CryptoConfig:
    """``[crypto]``: the table's shape; :class:`CryptoConfig` checks names and asks the schemes."""
    scheme = table.get("scheme", DEFAULT_SCHEME)
    _require(isinstance(scheme, str), "crypto.scheme", "must be a string naming a scheme")
    available = registry.available()
    params: dict[str, SchemeParams] = {}
    for key, value in table.items():
        if key in ("scheme", "verify_aggregate", "verify_samples"):
            continue
        _require(key in available and isinstance(value, dict), f"crypto.{key}",
                 "unknown key; [crypto] holds 'scheme', 'verify_aggregate', 'verify_samples' and one table per scheme "
                 f"({', '.join(available)})")
        params[key] = scheme_params_from_table(key, value)
    return CryptoConfig(scheme=scheme, params=params, verify_aggregate=table.get("verify_aggregate", "full"),
                        verify_samples=table.get("verify_samples", 32))


def scheme_params_from_table(name: str, table: Mapping[str, Any]) -> SchemeParams:
    """Build scheme ``name``'s parameters from a ``[crypto.<name>]`` table (``preset`` + fields).

    Only the table's shape and types are checked here; whether the scheme accepts the
    parameters is asked by :class:`CryptoConfig` (:func:`check_scheme_params`).
    """
    ptype = registry.params_type(name)
    table = dict(table)
    prefix = f"crypto.{name}"
    base: SchemeParams | None = None
    if "preset" in table:
        preset = table.pop("preset")
        presets = ptype.presets()
        _require(isinstance(preset, str) and preset in presets, f"{prefix}.preset",
                 f"{preset!r} is unknown; use one of {', '.join(sorted(presets))}")
        base = presets[preset]
    defaults = dataclasses.asdict(base) if base is not None else {}
    return build(ptype, {**defaults, **table}, prefix, extra_allowed=("preset",))


def build(cls: type[D], table: Mapping[str, Any], prefix: str, extra_allowed: Sequence[str] = ()) -> D:
    """Type-check ``table`` against dataclass ``cls`` and construct it."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init and f.name != "source"]
    for key in table:
        if key not in names:
            allowed = ", ".join([*names, *extra_allowed])
            raise ConfigError(f"{prefix}.{key}: unknown key; [{prefix}] allows: {allowed}")
    kwargs = {key: _check_type(f"{prefix}.{key}", value, hints[key]) for key, value in table.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except SecureFLError as exc:
        raise ConfigError(f"{prefix}: {exc}") from None


def _check_type(key: str, value: Any, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            try:
                return _check_type(key, value, arg)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: {value!r} has the wrong type; expected {_type_name(hint)}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list of {_type_name(args[0])}, got {value!r}")
        return tuple(_check_type(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value))
    return _check_scalar(key, value, hint)


def _check_scalar(key: str, value: Any, hint: Any) -> Any:
    """``value`` as the scalar type ``hint`` (an int is a valid float, a bool is no number), else ConfigError."""
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is bool or hint is str:
        if isinstance(value, hint):
            return value
    elif hint is type(None):
        pass
    else:
        raise ConfigError(f"{key}: cannot be set from a config file")
    raise ConfigError(f"{key}: {value!r} has the wrong type; expected {_type_name(hint)}")


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        return f"a list of {_type_name(typing.get_args(hint)[0])}"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        hint, getattr(hint, "__name__", str(hint)))


def reference_fields() -> list[tuple[str, str, Any, str]]:
    """Every configurable key as (key, type, default, doc), for the README reference."""
    rows: list[tuple[str, str, Any, str]] = []
    for section, cls in SECTIONS.items():
        if cls is CryptoConfig:
            rows.append(("crypto.scheme", "a string", DEFAULT_SCHEME, f"one of {', '.join(registry.available())}"))
            for name in registry.available():
                ptype = registry.params_type(name)
                hints = typing.get_type_hints(ptype)
                for f in dataclasses.fields(ptype):
                    rows.append((f"crypto.{name}.{f.name}", _type_name(hints[f.name]), f.default, ""))
            continue
        for f in dataclasses.fields(cls):
            default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
            rows.append((f"{section}.{f.name}", _type_name(typing.get_type_hints(cls)[f.name]), default, ""))
    return rows
