"""Configuration: TOML in, frozen and validated dataclasses out.

Every rule about what a configuration may say lives in this module.  The loader
is generic over dataclasses: a table's keys must be the dataclass's fields
(anything else is an error listing what is allowed), values are type-checked
against the field annotations, and each dataclass's ``__post_init__`` checks
ranges.  Scheme tables ``[crypto.<scheme>]`` load into that scheme's own
parameter dataclass the same way, so a new scheme needs no change here.

``--set SECTION.KEY=VALUE`` overrides go through the same checks: the value is
read as a TOML value (``2048``, ``0.5``, ``true``, ``"text"``, ``[1, 2]``), and a
bare word is taken as a string.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crypto_backends import registry
from crypto_backends.base import SchemeParams
from crypto_backends.envelope import PARTY_ID_RE
from crypto_backends.errors import SecureFLError

from securefl.errors import ConfigError

DATASETS = ("breast_cancer", "digits", "iris", "wine")
PARTITIONS = ("iid", "dirichlet")
MODEL_KINDS = ("logistic", "linear_svm", "linear_regression", "mlp", "naive_bayes")
PRIVACY_MODES = ("off", "local", "distributed")
MECHANISMS = ("gaussian", "laplace")
COMPOSITIONS = ("basic", "zcdp")
TRANSPORTS = ("inproc", "grpc")
MiB = 1 << 20


def _require(cond: bool, key: str, message: str) -> None:
    if not cond:
        raise ConfigError(f"{key}: {message}")


def _one_of(value: str, allowed: Sequence[str], key: str) -> None:
    _require(value in allowed, key, f"{value!r} is not allowed; use one of {', '.join(map(repr, allowed))}")


@dataclass(frozen=True)
class FederationConfig:
    """``[federation]``: who takes part and for how long."""

    parties: int = 5
    rounds: int = 10
    quorum: int = 0
    """Fewest parties whose updates a round needs; 0 means every party."""
    seed: int = 0
    round_timeout: float = 600.0
    """Seconds the aggregator waits for updates before dropping the missing parties."""
    party_ids: tuple[str, ...] = ()
    """Explicit party names; empty means ``party-1`` ... ``party-N``."""

    def __post_init__(self) -> None:
        _require(1 <= self.parties <= 1000, "federation.parties", "must be between 1 and 1000")
        _require(1 <= self.rounds <= 100_000, "federation.rounds", "must be between 1 and 100000")
        _require(0 <= self.quorum <= self.parties, "federation.quorum",
                 f"must be between 1 and federation.parties ({self.parties}), or 0 for all parties")
        _require(self.seed >= 0, "federation.seed", "must be a non-negative integer")
        _require(0 < self.round_timeout <= 86_400, "federation.round_timeout", "must be in (0, 86400] seconds")
        if self.party_ids:
            _require(len(self.party_ids) == self.parties, "federation.party_ids",
                     f"names {len(self.party_ids)} parties but federation.parties is {self.parties}")
            _require(len(set(self.party_ids)) == len(self.party_ids), "federation.party_ids", "names a party twice")
            for pid in self.party_ids:
                _require(bool(PARTY_ID_RE.fullmatch(pid)), "federation.party_ids",
                         f"{pid!r} is not a valid id (1-64 letters, digits, '.', '_', '-')")

    @property
    def ids(self) -> tuple[str, ...]:
        return self.party_ids or tuple(f"party-{i + 1}" for i in range(self.parties))

    @property
    def min_parties(self) -> int:
        return self.quorum or self.parties


@dataclass(frozen=True)
class DataConfig:
    """``[data]``: the data set and how it is split across parties."""

    dataset: str = "breast_cancer"
    """A bundled scikit-learn set (breast_cancer, digits, iris, wine) or ``csv:PATH``."""
    label_column: str = "label"
    partition: str = "iid"
    alpha: float = 0.5
    """Dirichlet concentration for ``partition = "dirichlet"`` (smaller = more label skew)."""
    test_fraction: float = 0.25
    standardize: bool = True

    def __post_init__(self) -> None:
        if self.dataset.startswith("csv:"):
            _require(len(self.dataset) > 4, "data.dataset", "write csv:PATH with the path of a CSV file")
        else:
            _one_of(self.dataset, DATASETS, "data.dataset")
        _one_of(self.partition, PARTITIONS, "data.partition")
        _require(self.alpha > 0, "data.alpha", "must be positive")
        _require(0 < self.test_fraction < 1, "data.test_fraction", "must be strictly between 0 and 1")


@dataclass(frozen=True)
class ModelConfig:
    """``[model]``: the scikit-learn model every party trains locally."""

    kind: str = "logistic"
    local_epochs: int = 1
    learning_rate: float = 0.01
    alpha: float = 0.0001
    """L2 regularisation strength."""
    hidden_layers: tuple[int, ...] = (32,)
    """Hidden layer sizes (``mlp`` only)."""
    batch_size: int = 32
    """Mini-batch size (``mlp`` only)."""

    def __post_init__(self) -> None:
        _one_of(self.kind, MODEL_KINDS, "model.kind")
        _require(1 <= self.local_epochs <= 1000, "model.local_epochs", "must be between 1 and 1000")
        _require(0 < self.learning_rate <= 10, "model.learning_rate", "must be in (0, 10]")
        _require(self.alpha >= 0, "model.alpha", "must be non-negative")
        _require(len(self.hidden_layers) >= 1 and all(1 <= h <= 100_000 for h in self.hidden_layers),
                 "model.hidden_layers", "must be a non-empty list of positive layer sizes")
        _require(self.batch_size >= 1, "model.batch_size", "must be positive")


@dataclass(frozen=True)
class CryptoConfig:
    """``[crypto]``: ``scheme`` picks the protection; ``[crypto.<scheme>]`` tables tune each scheme."""

    scheme: str = "plain"
    params: Mapping[str, SchemeParams] = field(default_factory=dict)

    def scheme_params(self, name: str | None = None) -> SchemeParams:
        """Parameters for ``name`` (default: the selected scheme): its table, else its defaults."""
        name = name or self.scheme
        return self.params.get(name) or registry.params_type(name)()


@dataclass(frozen=True)
class PrivacyConfig:
    """``[privacy]``: differential privacy wrapped around whichever scheme ``[crypto]`` picks."""

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

    def __post_init__(self) -> None:
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
        return self.mode != "off"

    @property
    def delta_per_round(self) -> float:
        """Delta one round spends: the configured delta for ``gaussian``, zero for ``laplace``."""
        return self.delta if self.mechanism == "gaussian" else 0.0


@dataclass(frozen=True)
class TransportConfig:
    """``[transport]``: how the roles talk: ``inproc`` (one process) or ``grpc`` (mutual TLS).

    With ``grpc`` each role is its own process (``securefl authority | aggregator
    | party``).  Parties and the aggregator dial out to the servers, so only the
    aggregator's and the authority's ports must be reachable.
    """

    kind: str = "inproc"
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
    checkpoint: str = "securefl-aggregator.ckpt"
    """The aggregator's checkpoint file (written atomically after every round); empty: none."""
    authority_keys: str = ""
    """The authority's key store (every secret key; mode 0600), so a restarted authority serves the same
    keys; empty: keys live in the authority's memory only and a restart makes a new key set."""
    connect_timeout: float = 120.0
    """Seconds a role keeps retrying (with exponential back-off) an unreachable peer before giving up."""
    poll_seconds: float = 10.0
    """Longest a party's request for work is held open by the aggregator before it asks again."""
    chunk_bytes: int = 1 * MiB
    """Size of each streamed piece of a model, update or key."""
    max_message_bytes: int = 2048 * MiB
    """Largest model, update or key accepted over the network."""

    def __post_init__(self) -> None:
        _one_of(self.kind, TRANSPORTS, "transport.kind")
        for role in ("aggregator", "authority"):
            host, port = getattr(self, f"{role}_host"), getattr(self, f"{role}_port")
            _require(0 < len(host) <= 253 and not any(c.isspace() for c in host), f"transport.{role}_host",
                     "must be a host name or IP address")
            _require(1 <= port <= 65535, f"transport.{role}_port", "must be a TCP port between 1 and 65535")
        _require(self.aggregator_port != self.authority_port or self.aggregator_host != self.authority_host,
                 "transport.authority_port", "the aggregator and the authority cannot share one address")
        _require(0 < len(self.bind_host) <= 253, "transport.bind_host", "must be an address such as 127.0.0.1 or 0.0.0.0")
        _require(bool(self.cert_dir), "transport.cert_dir", "must name the directory made by `securefl certs`")
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
    """A whole run's configuration."""

    federation: FederationConfig = field(default_factory=FederationConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    crypto: CryptoConfig = field(default_factory=CryptoConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    transport: TransportConfig = field(default_factory=TransportConfig)
    source: str = "<defaults>"


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

    ``whole_run=False`` skips the rules that span sections (:func:`check_consistency`), for
    commands that use sections on their own (``bench`` takes its schemes from ``--schemes``).
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
    path = [p.strip() for p in key.strip().split(".")]
    if not sep or len(path) < 2 or not all(path):
        raise ConfigError(f"--set {item!r}: write SECTION.KEY=VALUE, for example --set federation.rounds=5")
    value = value.strip()
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value  # a bare word: a string
    return path, parsed


def apply_override(raw: dict, item: str) -> None:
    path, value = parse_override(item)
    node = raw
    for part in path[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {item!r}: {part!r} is a value, not a section")
    node[path[-1]] = value


def from_mapping(raw: Mapping[str, Any], *, source: str = "<mapping>", whole_run: bool = True) -> Config:
    """Validate a parsed TOML document into a :class:`Config`."""
    unknown = set(raw) - set(SECTIONS)
    if unknown:
        raise ConfigError(f"unknown section [{sorted(unknown)[0]}] in {source}; "
                          f"allowed sections: {', '.join(f'[{s}]' for s in SECTIONS)}")
    sections: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        table = raw.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{name}: must be a table ([{name}]), got a {type(table).__name__}")
        sections[name] = _crypto(table) if cls is CryptoConfig else build(cls, table, name)
    cfg = Config(**sections, source=source)
    if whole_run:
        check_consistency(cfg)
    return cfg


def check_consistency(cfg: Config) -> None:
    """Rules that span sections (asked of the scheme's declarations, never of its name)."""
    priv, model = cfg.privacy, cfg.model
    if priv.enabled and priv.row_norm > 0:
        _require(model.kind == "logistic", "privacy.row_norm",
                 f"bounds local SGD's sensitivity for model.kind = 'logistic' only (convex, smooth loss), not "
                 f"{model.kind!r}; set it to 0 to clip updates to privacy.clip_norm instead")
        # the SGD step must be non-expansive: lr * (alpha + smoothness) <= 2, smoothness = (row_norm^2 + 1) / 4
        limit = 2.0 / (model.alpha + (priv.row_norm**2 + 1) / 4)
        _require(model.learning_rate <= limit, "model.learning_rate",
                 f"must be at most {limit:.4g} with privacy.row_norm = {priv.row_norm:g} (the sensitivity bound of "
                 "local SGD needs lr * (alpha + (row_norm^2 + 1) / 4) <= 2); lower it or lower privacy.row_norm")
    if cfg.privacy.mode == "distributed" and not registry.get(cfg.crypto.scheme).hides_updates:
        hiding = [n for n in registry.available() if registry.get(n).hides_updates]
        raise ConfigError(
            f"privacy.mode: 'distributed' needs a scheme that hides each update from the aggregator, and "
            f"{cfg.crypto.scheme!r} does not (the aggregator would see every party's small noise share). "
            f"Set crypto.scheme to one that does ({', '.join(hiding) or 'none installed'}) or use "
            "privacy.mode = 'local'"
        )


def _crypto(table: Mapping[str, Any]) -> CryptoConfig:
    scheme = table.get("scheme", "plain")
    _require(isinstance(scheme, str), "crypto.scheme", "must be a string naming a scheme")
    available = registry.available()
    _require(scheme in available, "crypto.scheme", f"{scheme!r} is not a registered scheme; use one of {', '.join(available)}")
    params: dict[str, SchemeParams] = {}
    for key, value in table.items():
        if key == "scheme":
            continue
        _require(key in available and isinstance(value, dict), f"crypto.{key}",
                 f"unknown key; [crypto] holds 'scheme' and one table per scheme ({', '.join(available)})")
        params[key] = scheme_params_from_table(key, value)
    return CryptoConfig(scheme=scheme, params=params)


def scheme_params_from_table(name: str, table: Mapping[str, Any]) -> SchemeParams:
    """Build scheme ``name``'s parameters from a ``[crypto.<name>]`` table (``preset`` + fields)."""
    ptype = registry.params_type(name)
    table = dict(table)
    prefix = f"crypto.{name}"
    base: SchemeParams | None = None
    if "preset" in table:
        preset = table.pop("preset")
        presets = ptype.presets()
        _require(preset in presets, f"{prefix}.preset", f"{preset!r} is unknown; use one of {', '.join(sorted(presets))}")
        base = presets[preset]
    defaults = dataclasses.asdict(base) if base is not None else {}
    params = build(ptype, {**{k: v for k, v in defaults.items()}, **table}, prefix, extra_allowed=("preset",))
    try:
        params.validate()
        bits = params.security_bits()
    except SecureFLError as exc:
        raise ConfigError(f"{prefix}: {exc}") from None
    _require(bits >= 112 or params.allow_insecure, prefix,
             f"these parameters give about {bits}-bit security, below the 112-bit minimum; remove the "
             f"overrides to get the 128-bit defaults ({ptype.presets()['default'].as_dict()})")
    return params


def build(cls: type, table: Mapping[str, Any], prefix: str, extra_allowed: Sequence[str] = ()) -> Any:
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
    if typing.get_origin(hint) is tuple:
        return f"a list of {_type_name(typing.get_args(hint)[0])}"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        hint, getattr(hint, "__name__", str(hint)))


def reference_fields() -> list[tuple[str, str, Any, str]]:
    """Every configurable key as (key, type, default, doc), for the README reference."""
    rows: list[tuple[str, str, Any, str]] = []
    for section, cls in SECTIONS.items():
        if cls is CryptoConfig:
            rows.append(("crypto.scheme", "a string", "plain", f"one of {', '.join(registry.available())}"))
            for name in registry.available():
                ptype = registry.params_type(name)
                for f in dataclasses.fields(ptype):
                    rows.append((f"crypto.{name}.{f.name}", _type_name(typing.get_type_hints(ptype)[f.name]), f.default, ""))
            continue
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            rows.append((f"{section}.{f.name}", _type_name(typing.get_type_hints(cls)[f.name]), default, ""))
    return rows
