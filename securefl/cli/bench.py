"""``securefl bench``: every scheme protects, combines and reveals the same vectors; with ``--verify``, also
with the verified reveal in each mode asked (signed uploads, refolded by every revealing party under ``full``,
blocks drawn and checked under ``sampled``), its cost as ratios."""

from __future__ import annotations

import argparse

from crypto_backends import registry
from crypto_backends.sampling import MAX_SAMPLES
from crypto_backends.statements import VerifyMode
from securefl import config as config_mod
from securefl.cli.common import Steps, check_parent, out, write_json
from securefl.errors import ConfigError
from securefl.tools import baselines as baseline_registry
from securefl.tools.tables import VERIFIED_MODES, bench_notes, bench_table, verify_table

SLOW_S = 5.0
"""A row estimated to take at least this many seconds gets its estimate printed before it runs."""


def _duration(seconds: float) -> str:
    """``seconds`` for a person: "40 s", "3.2 min"."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _names(text: str | None) -> list[str]:
    """The entries of a comma-separated flag, blanks dropped."""
    return [s.strip() for s in (text or "").split(",") if s.strip()]


def _check_known(flag: str, what: str, names: list[str], available: list[str]) -> None:
    """Refuse the first of ``names`` that is not in ``available``, naming the ones that are."""
    for name in names:
        if name not in available:
            raise ConfigError(f"{flag}: unknown {what} {name!r}; available: {', '.join(available)}")


def _check_neighbours(neighbours: int | None, counts: list[int], baselines: list[str]) -> None:
    """``--neighbours K``: 2 to N-1 for every party count N, and only with a baseline that takes it."""
    if neighbours is None:
        return
    if neighbours < 2 or any(neighbours > n - 1 for n in counts):
        raise ConfigError(f"--neighbours {neighbours}: needs 2 to N-1 for every --parties count N")
    if not any(baseline_registry.takes(name, "neighbours") for name in baselines):
        raise ConfigError("--neighbours applies to the SecAgg+ baselines (--baselines flower_secaggplus)")


def _verified(args: argparse.Namespace, cfg: config_mod.Config) -> tuple[list[VerifyMode], int]:
    """``--verify``'s modes (none without it) and the blocks each verifier draws under ``sampled``
    (``--verify-samples``, else ``crypto.verify_samples``)."""
    modes = _names(args.verify) if args.verify is not None else []
    _check_known("--verify", "mode", modes, list(VERIFIED_MODES))
    if args.verify is not None and not modes:
        raise ConfigError(f"--verify: name the modes to measure ({', '.join(VERIFIED_MODES)}), or give no value for "
                          "both")
    samples = cfg.crypto.verify_samples if args.verify_samples is None else args.verify_samples
    if not 1 <= samples <= MAX_SAMPLES:
        raise ConfigError(f"--verify-samples {samples}: must be from 1 to {MAX_SAMPLES} (blocks each verifier checks)")
    return [m for m in VERIFIED_MODES if m in modes], samples


def _check_args(args: argparse.Namespace, schemes: list[str], baselines: list[str]) -> None:
    """Every check on the flags, in the order the command has always made them, before any work starts."""
    _check_known("--schemes", "scheme", schemes, registry.available())
    _check_known("--baselines", "baseline", baselines, baseline_registry.available())
    if args.params < 1 or args.repeat < 1:
        raise ConfigError("--params and --repeat must be positive integers")
    for name in baselines:
        baseline_registry.load(name)  # a missing library (the [bench] extra) is an error before any work
    _check_neighbours(args.neighbours, args.parties, baselines)
    if args.json:
        check_parent(args.json, "--json")


def cmd_bench(args: argparse.Namespace) -> int:
    """Measure every ``--schemes`` entry (and ``--baselines``) at each party count; exit 1 if one failed."""
    from securefl.tools import bench

    # bench takes its schemes from --schemes: each "+dp" row checks its own scheme, not [crypto] scheme
    overrides = args.set or []
    cfg = (config_mod.load(args.config, overrides, whole_run=False) if args.config
           else config_mod.loads("", overrides, whole_run=False))
    schemes = _names(args.schemes)
    wanted = _names(args.baselines)
    _check_args(args, schemes, wanted)
    modes, samples = _verified(args, cfg)
    counts: list[int] = args.parties
    bench.check_inputs(counts, args.params)
    variants = 2 if cfg.privacy.enabled else 1
    with Steps("securefl bench", len(counts) * (len(schemes) * variants + len(wanted))) as steps:

        def estimate(label: str, seconds: float) -> None:
            if seconds >= SLOW_S:
                steps.note(f"  {label} at {args.params:,} values: about {_duration(seconds)} "
                           f"(estimated from a {bench.PROBE_VALUES:,}-value probe)")

        results = bench.run(schemes, parties=counts, params=args.params, repeat=args.repeat,
                            scheme_params=cfg.crypto.scheme_params, baselines=wanted, seed=args.seed,
                            on_step=steps.step, on_estimate=estimate, privacy=cfg.privacy,
                            baseline_options={"neighbours": args.neighbours},
                            verify=modes, samples=samples)
    out.print(bench_table(results, counts, args.params))
    for line in bench_notes(results):
        out.print(line)
    if modes:
        out.print(verify_table(results, counts, args.params))
    write_json(args.json, {"results": [r.as_json() for r in results]})
    return 1 if any(r.error for r in results) else 0
