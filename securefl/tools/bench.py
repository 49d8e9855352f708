"""``securefl bench``: the same update vectors through every scheme, side by side.

Every scheme (and every requested baseline) sees the same standard-normal float64
vectors, one per party, with weights 1..N, in the same process and run, so the
ratios between rows are meaningful on a noisy machine even when the absolute
numbers are not.  Columns:

* ``encrypt_s``: median seconds for one party to protect one update, serialisation
  to bytes included;
* ``aggregate_s``: parsing every upload and combining all N into the aggregate's bytes;
* ``decrypt_s``: from the aggregate's bytes to the fused vector, any function-key step included;
* ``bytes_per_party``: size of one serialised upload;
* ``max_abs_error``: against numpy's weighted mean of the raw vectors.

``round_s = encrypt_s + aggregate_s + decrypt_s`` is a round's latency with parties
working in parallel; ``work_s = N * encrypt_s + aggregate_s + decrypt_s`` is the
total work, which is what ``x_numpy`` divides by numpy's own weighted mean.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from crypto_backends import registry
from crypto_backends.base import Scheme, SchemeParams
from crypto_backends.dp import DPScheme
from crypto_backends.roundtrip import run_round
from securefl.config import PrivacyConfig
from securefl.ml.models import clipped_update_sensitivity
from securefl.privacy import noise_plan
from securefl.tools import baselines as baseline_registry


@dataclass(frozen=True)
class BenchResult:
    scheme: str
    parties: int
    params: int
    encrypt_s: float
    aggregate_s: float
    decrypt_s: float
    bytes_per_party: float
    max_abs_error: float
    keygen_s: float = 0.0
    security_bits: int | None = None
    round_s: float = 0.0
    work_s: float = 0.0
    x_numpy: float | None = None
    error: str | None = None
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def bench_vectors(parties: int, params: int, seed: int = 0) -> tuple[list[np.ndarray], list[float]]:
    """The bench's inputs: standard-normal float64 vectors (test data, not secrets) and weights 1..N."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(params) for _ in range(parties)], [float(i + 1) for i in range(parties)]


def bench_scheme(
    name: str,
    vectors: Sequence[np.ndarray],
    weights: Sequence[float],
    *,
    params: SchemeParams | None = None,
    repeat: int = 1,
    wrap: Callable[[Scheme], Scheme] | None = None,
    label: str | None = None,
) -> BenchResult:
    """Measure one scheme on ``vectors`` (see the module docstring for the columns).

    ``wrap`` (differential privacy) turns the scheme into the one measured; its
    data-independent work (:meth:`~crypto_backends.base.Scheme.prepare`) is timed
    apart, as ``extra["prepare_s"]``, and not counted in ``encrypt_s``.  Each round is
    :func:`crypto_backends.roundtrip.run_round`, which times the steps.
    """
    n, dim = len(vectors), int(vectors[0].size)
    ids = [f"party-{i + 1}" for i in range(n)]
    expected = np.average(np.stack(vectors), axis=0, weights=weights)
    scheme = registry.create(name, (params or registry.get(name).params_type()).for_federation(n))
    if wrap is not None:
        scheme = wrap(scheme)
    t0 = time.perf_counter()
    keys = scheme.keygen(ids)
    keygen_s = time.perf_counter() - t0
    enc: list[float] = []
    agg: list[float] = []
    dec: list[float] = []
    sizes: list[int] = []
    errors: list[float] = []
    prep: list[float] = []
    for rnd in range(repeat):
        trip = run_round(scheme, keys, dict(zip(ids, vectors, strict=True)),
                         dict(zip(ids, weights, strict=True)), round=rnd)
        enc.extend(trip.protect_s)
        prep.extend(trip.prepare_s)
        sizes.extend(trip.upload_bytes)
        agg.append(trip.combine_s)
        dec.append(trip.reveal_s)
        errors.append(float(np.max(np.abs(trip.fused - expected))) if dim else 0.0)
    return _result(label or name, n, dim, statistics.median(enc), statistics.median(agg), statistics.median(dec),
                   statistics.mean(sizes), max(errors), keygen_s=keygen_s, security_bits=scheme.security_bits,
                   extra={"prepare_s": statistics.median(prep)})


def _result(name: str, n: int, dim: int, e: float, a: float, d: float, size: float, err: float,
            **kw: Any) -> BenchResult:
    return BenchResult(name, n, dim, e, a, d, size, err, round_s=e + a + d, work_s=n * e + a + d, **kw)


def run(
    schemes: Sequence[str],
    *,
    parties: int = 10,
    params: int = 100_000,
    repeat: int = 1,
    scheme_params: Callable[[str], SchemeParams | None] = lambda name: None,
    baselines: Sequence[str] = (),
    seed: int = 0,
    on_step: Callable[[str], None] = lambda label: None,
    privacy: PrivacyConfig | None = None,
) -> list[BenchResult]:
    """Bench ``schemes`` and ``baselines`` on one set of vectors; a failing scheme becomes an error row.

    With ``privacy`` enabled, every scheme also gets a ``<scheme>+dp(<mode>)`` row:
    the same scheme wrapped with differential privacy calibrated from ``privacy``
    (vectors clipped to ``privacy.clip_norm``; distributed shares sized for all
    ``parties``), so the cost of DP is a ratio measured in one run.
    """
    vectors, weights = bench_vectors(parties, params, seed)
    results: list[BenchResult] = []
    numpy_row = _baseline("numpy", vectors, weights, repeat)
    variants: list[tuple[str, Callable[[Scheme], Scheme] | None]] = [("", None)]
    if privacy is not None and privacy.enabled:
        variants.append((dp_suffix(privacy), dp_wrapper(privacy, params, weights)))
    for name in schemes:
        for suffix, wrap in variants:
            label = name + suffix
            on_step(label)
            try:
                results.append(bench_scheme(name, vectors, weights, params=scheme_params(name), repeat=repeat,
                                            wrap=wrap, label=label))
            except Exception as exc:  # noqa: BLE001 - a report row, not a crash (see docstring)
                results.append(BenchResult(label, parties, params, math.nan, math.nan, math.nan, math.nan, math.nan,
                                           error=f"{type(exc).__name__}: {exc}"))
    for name in baselines:
        on_step(f"baseline {name}")
        results.append(_baseline(name, vectors, weights, repeat))
    results.append(numpy_row)
    floor = numpy_row.aggregate_s
    return [
        r if r.error or r.scheme == numpy_row.scheme else _with_ratio(r, floor) for r in results
    ]


def dp_suffix(privacy: PrivacyConfig) -> str:
    """The label suffix of a differentially private variant: ``"+dp(local)"``."""
    return f"+dp({privacy.mode})"


def dp_wrapper(privacy: PrivacyConfig, params: int, weights: Sequence[float]) -> Callable[[Scheme], Scheme]:
    """Wrap a scheme with DP calibrated from ``privacy`` for ``params``-long vectors clipped to
    ``privacy.clip_norm``, distributed shares sized for all ``len(weights)`` parties."""
    plan = noise_plan(privacy, clipped_update_sensitivity(params, privacy.clip_norm), clip=True,
                      min_contributors=len(weights), weight_bound=max(weights))
    return lambda inner: DPScheme(inner, plan)


def _with_ratio(r: BenchResult, floor: float) -> BenchResult:
    data = r.as_json()
    data["x_numpy"] = r.work_s / floor if floor > 0 else None
    return BenchResult(**data)


def _baseline(name: str, vectors: Sequence[np.ndarray], weights: Sequence[float], repeat: int) -> BenchResult:
    m: Mapping[str, Any] = baseline_registry.measure(name, vectors, weights, repeat)
    n = len(vectors)
    return _result(f"baseline:{name}", n, int(vectors[0].size), m["encrypt_s"], m["aggregate_s"],
                   m["decrypt_s"], m["bytes_per_party"], m["max_abs_error"], note=m.get("note", ""),
                   security_bits=m.get("security_bits"))
