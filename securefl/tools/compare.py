"""``securefl compare``: every registered scheme on one workload, side by side.

For each scheme the comparison gathers, in one process and one run:

* its declarations (:mod:`securefl.tools.facts`): security level of the parameters in
  use, who holds which key, what the aggregator and a colluding party learn,
  dropout tolerance;
* a cost sweep with :func:`securefl.tools.bench.bench_scheme`: the same
  standard-normal vectors (weights 1..N) at every model size of the sweep,
  giving seconds per phase (protect one update, combine all, reveal), bytes
  uploaded per party and the fused vector's largest error against numpy.  Each
  size runs twice, with fresh keys: the first round is kept only as
  ``first_round_s`` (it pays one-time costs, such as starting helper processes
  or filling process-wide tables, that a long-running federation pays once),
  the second gives the steady-state figures;
* a short training run of the configuration's data set and model
  (:class:`securefl.simulation.Simulation`, the same configuration with only
  ``crypto.scheme`` changed by :meth:`securefl.config.Config.replace`, which
  validates it again, rules spanning sections included), giving accuracy per round.

Time cap.  Sizes are measured in ascending order.  Before a point, its cost is
predicted from the scheme's previous point (key generation plus the rest scaled
linearly with the size); a point predicted to exceed ``point_budget`` seconds is
skipped, and so are the larger ones, and the report says so; the largest
1-2-5-series size that fits the budget is measured in its place when that is at
least twice the previous size.  The table's own workload size is always
measured.  Durations come from the module's :data:`clock` (a test may replace
it).  A scheme that raises (in the sweep or in training) is recorded with
its error; the other schemes go on.  Warnings (an insecure test preset, clipped
values) are recorded per scheme and shown in the report.

Cost against the number of parties.  With several party counts
(``CompareOptions.party_counts``, ``--parties 10 100 1000``), every row is also
measured at the table's size for each count, in ascending order, under the same
time cap (the prediction scales with the number of parties; the first count is
always measured); the report plots total work (``work_s``: every party's
protect + combine + reveal) and bytes per party against the count, log-log.

Memory.  Before a point, the bench's estimate of its peak memory
(:func:`securefl.tools.bench.memory_needed`, from the scheme's measured upload
size) is compared with the machine's available memory; a point that would not
fit is skipped with that reason (the report says so) instead of being killed by
the kernel, and the report is written whatever fails.

With ``[privacy]`` enabled, each scheme gets a second row, ``<scheme>+dp(<mode>)``:
the sweep wraps it with :func:`securefl.tools.bench.dp_wrapper` and its training keeps
the configuration's ``[privacy]``, while the bare row trains with
``privacy.mode = "off"`` (:func:`training_config`).

Nothing here knows a scheme by name: the list comes from
:func:`crypto_backends.registry.available`, and each scheme's parameters come
from the configuration's ``[crypto.<scheme>]`` table or the scheme's defaults.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from crypto_backends import registry
from securefl.config import Config
from securefl.errors import ConfigError
from securefl.simulation import RoundMetrics, Simulation
from securefl.tools import bench, machine
from securefl.tools.bench import BenchResult
from securefl.tools.facts import SchemeFacts, scheme_facts

DEFAULT_SIZES: tuple[int, ...] = (10_000, 100_000, 1_000_000)
DEFAULT_POINT_BUDGET = 60.0

clock: Callable[[], float] = time.perf_counter
"""Seconds, for the sweep's predictions and the report's durations (tests put a fake clock here)."""


@dataclass(frozen=True)
class CompareOptions:
    """What to measure: ``sizes`` ascending; the table reports ``table_size``."""

    parties: int
    sizes: tuple[int, ...] = DEFAULT_SIZES
    table_size: int = DEFAULT_SIZES[0]
    point_budget: float = DEFAULT_POINT_BUDGET
    seed: int = 0
    party_counts: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.parties < 1 or any(n < 1 for n in self.party_counts):
            raise ConfigError("--parties: every party count must be at least 1")
        if list(self.party_counts) != sorted(set(self.party_counts)):
            raise ConfigError("party counts must be distinct and ascending")
        if not self.sizes or any(s < 1 for s in self.sizes):
            raise ConfigError("--params: every model size must be a positive integer")
        if list(self.sizes) != sorted(set(self.sizes)) or self.table_size not in self.sizes:
            raise ConfigError("sizes must be distinct, ascending, and include the table's size")
        if not self.point_budget > 0:
            raise ConfigError("--point-budget must be a positive number of seconds")

    @classmethod
    def from_params(cls, parties: int, params: Sequence[int] | None = None, **kw: Any) -> CompareOptions:
        """``--params`` semantics: none -> the default sweep, table at its first size; one size D ->
        the default sweep plus D, table at D; several -> exactly those, table at the first given."""
        if not params:
            return cls(parties, DEFAULT_SIZES, DEFAULT_SIZES[0], **kw)
        if any(p < 1 for p in params):
            raise ConfigError("--params: every model size must be a positive integer")
        sizes = set(params) if len(params) > 1 else set(DEFAULT_SIZES) | {params[0]}
        return cls(parties, tuple(sorted(sizes)), params[0], **kw)


@dataclass
class SchemeResult:
    """Everything measured for one row: a scheme, or (``private``) the scheme wrapped in differential privacy.

    ``name`` is the row's label (``ckks`` or ``ckks+dp(local)``), ``scheme`` the registered name;
    ``error`` / ``training_error`` hold failures.
    """

    name: str
    scheme: str
    private: bool = False
    facts: SchemeFacts | None = None
    params: dict[str, Any] = field(default_factory=dict)
    tolerance: float | None = None
    points: list[BenchResult] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    party_points: list[BenchResult] = field(default_factory=list)
    party_skipped: list[tuple[int, str]] = field(default_factory=list)
    error: str | None = None
    training: list[RoundMetrics] = field(default_factory=list)
    training_seconds: float | None = None
    training_error: str | None = None
    metric: str = "accuracy"
    warnings: list[str] = field(default_factory=list)

    def point(self, size: int) -> BenchResult | None:
        """The sweep's measurement of this scheme at ``size`` parameters, or None if that size was not measured."""
        return next((p for p in self.points if p.params == size), None)

    @property
    def final_accuracy(self) -> float | None:
        """The metric after the last training round, or None if no round completed."""
        return self.training[-1].accuracy if self.training else None

    def as_json(self) -> dict[str, Any]:
        """This scheme's row of report.json: its facts, sweep points, training rounds and errors."""
        return {
            "name": self.name,
            "scheme": self.scheme,
            "private": self.private,
            "facts": self.facts.as_json() if self.facts else None,
            "params": self.params,
            "tolerance": self.tolerance,
            "points": [p.as_json() for p in self.points],
            "skipped": [{"params": size, "reason": why} for size, why in self.skipped],
            "party_points": [p.as_json() for p in self.party_points],
            "party_skipped": [{"parties": n, "reason": why} for n, why in self.party_skipped],
            "error": self.error,
            "training": {"metric": self.metric, "seconds": self.training_seconds, "error": self.training_error,
                         "final_accuracy": self.final_accuracy, "rounds": [r.as_json() for r in self.training]},
            "warnings": self.warnings,
        }


@dataclass
class Comparison:
    """A whole comparison: what was run, where, and each scheme's results."""

    command: str
    options: CompareOptions
    workload: dict[str, Any]
    machine: dict[str, Any]
    schemes: list[SchemeResult]
    started: str
    seconds: float = 0.0

    @property
    def failed(self) -> list[str]:
        """The names of the schemes whose measurement or training failed."""
        return [s.name for s in self.schemes if s.error or s.training_error]

    def as_json(self) -> dict[str, Any]:
        """The whole run as report.json: the command, timing, options, workload, machine and every scheme."""
        return {"command": self.command, "started": self.started, "seconds": self.seconds,
                "options": dataclasses.asdict(self.options), "workload": self.workload, "machine": self.machine,
                "schemes": [s.as_json() for s in self.schemes]}


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def training_config(cfg: Config, scheme: str, private: bool) -> Config:
    """What a row trains with: ``cfg`` with ``crypto.scheme = scheme`` and, unless ``private``, privacy off.

    Built with :meth:`Config.replace`, so it is validated like a loaded file: a rule spanning sections
    (distributed noise under a scheme that shows updates) refuses it with a :class:`ConfigError`.
    """
    changes: dict[str, object] = {"crypto.scheme": scheme}
    if not private:
        changes["privacy.mode"] = "off"
    return cfg.replace(**changes)


def rows(cfg: Config, names: Sequence[str]) -> list[SchemeResult]:
    """The rows to measure: each scheme, and with ``[privacy]`` enabled each scheme again wrapped in it."""
    out = [SchemeResult(name, name) for name in names]
    if cfg.privacy.enabled:
        out += [SchemeResult(name + bench.dp_suffix(cfg.privacy), name, private=True) for name in names]
    return out


def steps(n_rows: int, options: CompareOptions) -> int:
    """Units of work :func:`run` reports through ``on_done`` (one per sweep point and one training per row)."""
    return n_rows * (len(options.sizes) + len(options.party_counts) + 1)


def workload(cfg: Config, options: CompareOptions) -> dict[str, Any]:
    """What the run measured, for the report: the config (and its SHA-256), data set, model and federation."""
    fed, data, model = cfg.federation, cfg.data, cfg.model
    source = Path(cfg.source)
    digest = hashlib.sha256(source.read_bytes()).hexdigest() if source.is_file() else None
    return {"config": cfg.source, "config_sha256": digest, "dataset": data.dataset, "partition": data.partition,
            "model": model.kind,
            "parties": fed.parties, "rounds": fed.rounds, "quorum": fed.min_parties, "seed": fed.seed,
            "local_epochs": model.local_epochs, "privacy": dataclasses.asdict(cfg.privacy),
            "bench_parties": options.parties,
            "bench_vectors": f"standard normal, seed {options.seed}", "bench_weights": f"1..{options.parties}"}


def _nice_floor(x: float) -> int:
    """The largest of 1, 2, 5, 10, 20, 50, ... not above ``x`` (0 below 1)."""
    if x < 1:
        return 0
    decade: int = 10 ** int(math.floor(math.log10(x)))  # x >= 1: a whole power of ten
    return max(m * decade for m in (1, 2, 5) if m * decade <= x)


class _Sweep:
    """Decides, per scheme, whether the next size is worth its predicted cost.

    The cost of a size is predicted from the scheme's previous size: its key
    generation as a fixed cost plus the rest scaled linearly.  When the next size
    is over budget, the largest round size (1-2-5 series) that fits the budget is
    measured instead, if it is at least twice the previous one, so that the plot
    still shows how the scheme grows; then the scheme stops.
    """

    def __init__(self, options: CompareOptions, always: int | None = None, unit: str = "values") -> None:
        self.options = options
        self.always = options.table_size if always is None else always
        self.unit = unit
        self.last: dict[str, tuple[int, float, float]] = {}  # name -> (size, wall s, keygen s)
        self.stopped: dict[str, str] = {}

    def plan(self, name: str, size: int) -> tuple[int | None, str | None]:
        """(the size to measure now or ``None``, why ``size`` itself is not measured or ``None``)."""
        if name in self.stopped:
            return None, self.stopped[name]
        if name not in self.last or size == self.always:
            return size, None
        prev, wall, keygen = self.last[name]
        per_value = max(wall - keygen, 1e-9) / prev
        predicted = keygen + per_value * size
        budget = self.options.point_budget
        if predicted <= budget:
            return size, None
        affordable = _nice_floor((budget - keygen) / per_value)
        instead = affordable if 2 * prev <= affordable < size else None
        unit = self.unit
        self.stopped[name] = f"not measured: the sweep stopped at {size:,} {unit} (over the {budget:g} s budget)"
        why = (f"not measured: predicted {predicted:.0f} s at {size:,} {unit} (from {wall:.3g} s at {prev:,}) exceeds "
               f"the {budget:g} s budget per point")
        return instead, why + (f"; measured at {instead:,} instead" if instead else "")

    def record(self, name: str, size: int, wall: float, keygen: float) -> None:
        self.last[name] = (size, wall, keygen)

    def fail(self, name: str, size: int) -> None:
        self.stopped[name] = f"not measured: the scheme failed at {size:,} {self.unit}"


def run(
    cfg: Config,
    options: CompareOptions,
    *,
    config_for: Callable[[str, bool], Config] | None = None,
    names: Sequence[str] | None = None,
    command: str = "",
    on_step: Callable[[str], None] = lambda label: None,
    on_done: Callable[[str], None] = lambda line: None,
) -> Comparison:
    """Measure every scheme in ``names`` (default: all registered) as the module docstring says.

    ``cfg`` gives the data set, model, ``[privacy]`` and ``[crypto.<scheme>]`` tables.  Each row trains
    with ``config_for(name, private)``, by default :func:`training_config` (``cfg.replace``); a caller
    passing its own must return the same configuration with those two keys changed.
    """
    names = list(names if names is not None else registry.available())
    if config_for is None:
        config_for = functools.partial(training_config, cfg)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    t_start = clock()
    results = {res.name: res for res in rows(cfg, names)}
    sweep = _Sweep(options)
    for res in results.values():
        _declarations(cfg, res, options)
        if res.error:
            sweep.stopped[res.name] = "not measured: the scheme could not be created (see its error)"
    for size in options.sizes:
        _sweep_point(cfg, options, results, sweep, options.parties, size, on_step, on_done)
    if options.party_counts:
        by_parties = _Sweep(options, always=options.party_counts[0], unit="parties")
        for res in results.values():
            if res.error:
                by_parties.stopped[res.name] = "not measured: the scheme could not be measured (see its error)"
        for n in options.party_counts:
            _sweep_point(cfg, options, results, by_parties, n, options.table_size, on_step, on_done)
    for res in results.values():
        on_step(f"{res.name}: training {cfg.data.dataset}")
        _train(config_for, res, on_step)
        on_done(f"{res.name} training: " + (f"final {res.metric} {res.final_accuracy:.4f}"
                                            if res.training_error is None else "failed"))
    return Comparison(command, options, workload(cfg, options), machine.describe(), list(results.values()),
                      started, clock() - t_start)


def _sweep_point(cfg: Config, options: CompareOptions, results: dict[str, SchemeResult], sweep: _Sweep,
                 parties: int, size: int, on_step: Callable[[str], None], on_done: Callable[[str], None]) -> None:
    """Every row at ``parties`` x ``size`` (one point of the size sweep, or of the party sweep when
    ``sweep.unit`` is "parties"), unless the time cap or the available memory rules it out."""
    by_parties = sweep.unit == "parties"
    at = parties if by_parties else size
    try:
        bench.check_inputs([parties], size, "securefl compare")
        vectors, weights = bench.vectors_or_error(parties, size, options.seed)
    except machine.InsufficientMemoryError as exc:
        for res in results.values():
            _skipped(res, by_parties).append((at, f"not measured: {exc}"))
            on_done(f"{res.name} @ {at:,} {sweep.unit}: skipped (memory)")
        return
    for res in results.values():
        measure, why = sweep.plan(res.name, at)
        if why:
            _skipped(res, by_parties).append((at, why))
        if measure is None:
            on_done(f"{res.name} @ {at:,} {sweep.unit}: skipped")
            continue
        on_step(f"{res.name}: cost at {measure:,} {sweep.unit}")
        if measure == at:
            point = _measure(cfg, res, vectors, weights, sweep)
        elif by_parties:
            point = _measure(cfg, res, *bench.bench_vectors(measure, size, options.seed), sweep)
        else:
            point = _measure(cfg, res, *bench.bench_vectors(parties, measure, options.seed), sweep)
        if point is not None:
            (res.party_points if by_parties else res.points).append(point)
        on_done(f"{res.name} @ {measure:,} {sweep.unit}: " + (
            f"round {point.round_s:.3f} s, {point.bytes_per_party:,.0f} B/party" if point else "not measured"))


def _skipped(res: SchemeResult, by_parties: bool) -> list[tuple[int, str]]:
    return res.party_skipped if by_parties else res.skipped


def _declarations(cfg: Config, res: SchemeResult, options: CompareOptions) -> None:
    with _recording(res):
        try:
            params = cfg.crypto.scheme_params(res.scheme)
            res.params = params.as_dict()
            res.facts = scheme_facts(res.scheme, params)
            scheme = registry.create(res.scheme, params)
            if res.private:  # the row's threat model is the wrapper's: what the noise adds, who counts its floor
                weights = [float(i + 1) for i in range(options.parties)]
                wrapped = bench.dp_wrapper(cfg.privacy, options.table_size, weights)(scheme)
                res.facts = dataclasses.replace(res.facts, threat=wrapped.threat_model)
            res.tolerance = float(scheme.tolerance([float(i + 1) for i in range(options.parties)]))
        except Exception as exc:  # noqa: BLE001 - a report row, not a crash
            res.error = _describe(exc)


def _measure(cfg: Config, res: SchemeResult, vectors: list[np.ndarray], weights: list[float],
             sweep: _Sweep) -> BenchResult | None:
    """Two rounds at this size: the first is discarded, the second returned (see the module docstring);
    ``None`` when the point does not fit in memory (noted on ``res``) or the scheme failed (``res.error``)."""
    size, parties = int(vectors[0].size), len(vectors)
    at = parties if sweep.unit == "parties" else size
    with _recording(res):
        try:
            params = cfg.crypto.scheme_params(res.scheme)
            # its probe (one short upload, cached) is not part of the point's cost
            bench.check_scheme_memory(res.scheme, parties, size, params)
            t0 = clock()
            wrap = bench.dp_wrapper(cfg.privacy, size, weights) if res.private else None
            first = bench.bench_scheme(res.scheme, vectors, weights, params=params, wrap=wrap, label=res.name)
            point = bench.bench_scheme(res.scheme, vectors, weights, params=params, wrap=wrap, label=res.name)
        except machine.InsufficientMemoryError as exc:
            _skipped(res, sweep.unit == "parties").append((at, f"not measured: {exc}"))
            sweep.stopped[res.name] = f"not measured: {at:,} {sweep.unit} did not fit in memory"
            return None
        except Exception as exc:  # noqa: BLE001 - a report row, not a crash
            res.error = res.error or f"at {parties:,} parties x {size:,} values: {_describe(exc)}"
            sweep.fail(res.name, at)
            return None
        sweep.record(res.name, at, clock() - t0, first.keygen_s + point.keygen_s)
        return dataclasses.replace(point, extra={**point.extra, "first_round_s": first.round_s})


def _train(config_for: Callable[[str, bool], Config], res: SchemeResult, on_step: Callable[[str], None]) -> None:
    def on_round(m: RoundMetrics) -> None:
        res.training.append(m)
        on_step(f"{res.name}: training round {m.round}")

    # the round engine logs why a party was dropped; a failed run's error should say it too
    party_failures = _Collect()
    engine_log = logging.getLogger("securefl.transport.inproc")
    engine_log.addHandler(party_failures)
    with _recording(res):
        t0 = clock()
        try:
            sim = Simulation(config_for(res.scheme, res.private))
            res.metric = sim.evaluator.metric
            sim.run(on_round)
        except Exception as exc:  # noqa: BLE001 - a report row, not a crash
            cause = f" (first party failure: {party_failures.messages[0]})" if party_failures.messages else ""
            res.training_error = _describe(exc) + cause
        finally:
            engine_log.removeHandler(party_failures)
        res.training_seconds = clock() - t0


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _recording(res: SchemeResult) -> Iterator[None]:
    """Record the warnings raised inside (each distinct one once) on ``res``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for w in caught:
                text = f"{w.category.__name__}: {w.message}"
                if text not in res.warnings:
                    res.warnings.append(text)
