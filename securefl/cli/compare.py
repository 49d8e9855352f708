"""``securefl compare``: the side-by-side report of every scheme."""

from __future__ import annotations

import argparse

from rich.text import Text

from crypto_backends import registry
from securefl import config as config_mod
from securefl.cli.common import check_out_dir, console, out
from securefl.cli.common import progress as progress_bar
from securefl.errors import ConfigError
from securefl.tools.tables import compare_notes, compare_table


def _compare_config(args: argparse.Namespace, counts: list[int]) -> config_mod.Config:
    """``--config`` (or the defaults) with ``--set``, the first ``--parties`` count and ``--rounds`` applied."""
    overrides = list(args.set or [])
    if counts:
        overrides.append(f"federation.parties={counts[0]}")
    if args.rounds is not None:
        overrides.append(f"federation.rounds={args.rounds}")
    if args.config:
        return config_mod.load(args.config, overrides)
    return config_mod.loads("", overrides, source="<defaults>")


def _scheme_names(text: str | None) -> list[str]:
    """``--schemes``: the named schemes, each registered, or every registered one."""
    names = [s.strip() for s in text.split(",") if s.strip()] if text else registry.available()
    for name in names:
        if name not in registry.available():
            raise ConfigError(f"--schemes: unknown scheme {name!r}; available: {', '.join(registry.available())}")
    return names


def cmd_compare(args: argparse.Namespace) -> int:
    """Measure and train every scheme, print the summary, write the report files; exit 1 if a scheme failed."""
    from securefl.tools import bench, compare, report

    out_dir = check_out_dir(args.out)
    counts: list[int] = args.parties or []
    if any(c < 1 for c in counts):
        raise ConfigError("--parties: every party count must be a positive integer")
    cfg = _compare_config(args, counts)
    names = _scheme_names(args.schemes)
    sweep = tuple(sorted(set(counts))) if len(counts) > 1 else ()
    options = compare.CompareOptions.from_params(cfg.federation.parties, args.params,
                                                 point_budget=args.point_budget, seed=args.seed, party_counts=sweep)
    # the table's workload is always measured: refuse it now if it cannot fit (larger points are skipped, noted)
    bench.check_inputs([options.parties], options.table_size, "securefl compare")
    by_parties = f" (and {', '.join(map(str, sweep))} parties at {options.table_size:,})" if sweep else ""
    console.print(f"[bold]securefl compare[/]: {', '.join(names)}; {options.parties} parties{by_parties}; sizes "
                  f"{', '.join(f'{s:,}' for s in options.sizes)} (table at {options.table_size:,}); training "
                  f"{cfg.model.kind} on {cfg.data.dataset} for {cfg.federation.rounds} rounds")
    with progress_bar() as progress:
        task = progress.add_task("compare", total=compare.steps(len(compare.rows(cfg, names)), options))

        def on_done(line: str) -> None:
            progress.advance(task)
            console.print(Text(line))

        comparison = compare.run(cfg, options, names=names, command=args.command_line,
                                 on_step=lambda label: progress.update(task, description=label), on_done=on_done)
    files = report.write(comparison, out_dir)
    out.print(compare_table(comparison, options.parties, options.table_size))
    for line in compare_notes(comparison):
        out.print(line)
    out.print(f"wrote {files['md']}, {files['html']}, {files['json']} in {comparison.seconds:.0f} s")
    return 1 if comparison.failed else 0
