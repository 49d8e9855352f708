"""The ``securefl`` command line.

Every command exits non-zero with a one-paragraph message (no traceback) on a
configuration or data error; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from crypto_backends import registry
from crypto_backends.errors import SecureFLError
from securefl import __version__
from securefl import config as config_mod
from securefl.core import jsonout
from securefl.errors import ConfigError
from securefl.state.atomic import write_private
from securefl.tools import baselines as baseline_registry
from securefl.tools.units import format_bytes, format_seconds

if TYPE_CHECKING:
    from securefl.tools.bench import BenchResult

EXIT_ERROR = 2
console = Console(stderr=True, highlight=False)
# wide enough for the bench table when writing to a file or a pipe
out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def _check_parent(path: str, flag: str) -> Path:
    """``path`` as a file to write: its directory exists and is writable, and it is not a directory itself."""
    target = Path(path)
    parent = target.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist; create it first"
        raise ConfigError(f"{flag} {path!r}: {str(parent)!r} {what}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path!r}: directory {str(parent)!r} is not writable; choose another path")
    if target.is_dir():
        raise ConfigError(f"{flag} {path!r} is a directory; give a file name")
    if target.exists() and not os.access(target, os.W_OK):
        raise ConfigError(f"{flag} {path!r}: the existing file is not writable; choose another path")
    return target


def _check_plot(path: str | None) -> None:
    if path is None:
        return
    if Path(path).suffix.lower() != ".png":
        raise ConfigError(f"--plot {path!r}: plots are PNG files; give a name ending in .png")
    _check_parent(path, "--plot")


def _check_out_dir(path: str, flag: str = "--out") -> Path:
    """``path`` as an output directory: an existing writable directory, or a new one in a writable directory."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{flag} {path!r} is an existing file, not a directory; give a directory "
                          "(it is created if missing)")
    if target.is_dir():
        if not os.access(target, os.W_OK | os.X_OK):
            raise ConfigError(f"{flag} {path!r}: the directory is not writable; choose another one")
        return target
    _check_parent(path, flag)
    return target


def _parties(text: str) -> list[int]:
    """``--parties 10,100,1000``: one or several positive counts."""
    try:
        counts = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not counts or any(c < 1 for c in counts):
        raise argparse.ArgumentTypeError(f"{text!r}: every party count must be a positive integer")
    return counts


def _write_json(path: str | None, payload: Mapping[str, Any]) -> None:
    if not path:
        return
    # the one atomic writer, so a reader never sees half a result; the result holds nothing secret
    write_private(_check_parent(path, "--json"), (jsonout.dumps(payload) + "\n").encode("utf-8"), mode=0o644)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False, disable=not console.is_terminal)


# --- run -------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from securefl.simulation import RoundMetrics, Simulation

    cfg = config_mod.load(args.config, args.set or [])
    if args.json:
        _check_parent(args.json, "--json")
    _check_plot(args.plot)
    if cfg.transport.kind not in config_mod.IN_PROCESS:
        raise ConfigError(f"transport.kind is {cfg.transport.kind!r}: securefl run keeps every role in one process "
                          "(transport.kind = \"threads\" or \"ray\"); "
                          "start the roles with securefl authority / aggregator / party, "
                          "or use examples/deploy_local.sh")
    sim = Simulation(cfg)
    security = (f"{sim.scheme.declarations.security_bits}-bit security" if sim.scheme.declarations.hides_updates
                else "no security: the aggregator sees every update")
    console.print(f"[bold]securefl run[/]: {cfg.crypto.scheme} on {cfg.data.dataset}, "
                  f"{cfg.federation.parties} parties on {cfg.transport.kind}, {cfg.federation.rounds} rounds "
                  f"(numbered 0-{cfg.federation.rounds - 1}, as in --json and the logs), "
                  f"{sim.evaluator.num_parameters} parameters ({security})")
    with _progress() as progress:
        task = progress.add_task("rounds", total=cfg.federation.rounds)

        def on_round(m: RoundMetrics) -> None:
            progress.advance(task)
            note = f"  dropped: {', '.join(m.dropped)}" if m.dropped else ""
            spent = f"  epsilon {m.epsilon_spent:g} spent" if m.epsilon_spent is not None else ""
            console.print(Text(f"round {m.round:>3}  {sim.evaluator.metric} {m.accuracy:.4f}  "
                          f"{m.seconds:7.3f} s  {m.bytes_up / 1024:9.1f} KiB up/party{spent}{note}"))

        # a run that stops early still writes its JSON: the completed rounds and why it stopped
        result = sim.run(on_round, on_stop=lambda partial: _write_json(args.json, partial.as_json()))
    out.print(f"final {result.metric}: {result.final_accuracy:.4f}")
    if result.privacy is not None:
        p = result.privacy
        out.print(f"privacy ({p['mode']}, {p['mechanism']}): "
                  f"epsilon {p['epsilon_spent']:g} of {p['epsilon_budget']:g}, "
                  f"delta {p['delta_spent']:.3g} of {p['delta_budget']:.3g} spent ({p['composition']} composition)")
    _write_json(args.json, result.as_json())
    if args.plot:
        from securefl.tools.plots import plot_rounds

        out.print(f"plot written to {plot_rounds([result], args.plot)}")
    return 0


# --- networked roles -------------------------------------------------------------
def cmd_certs(args: argparse.Namespace) -> int:
    from securefl.transport.grpc.certs import make_certificates

    if bool(args.config) == bool(args.parties):
        raise ConfigError("securefl certs: give the parties either with --config CONFIG (its federation.party_ids) "
                          "or with --parties a,b,c")
    ids = (config_mod.load(args.config, args.set or []).federation.ids if args.config
           else [p.strip() for p in args.parties.split(",") if p.strip()])
    hosts = [h.strip() for h in (args.hosts or "").split(",") if h.strip()]
    written = make_certificates(args.outdir, ids, hosts=hosts, days=args.days)
    out.print(f"wrote {len(written)} files to {args.outdir}: a CA, the aggregator, the authority and "
              f"{len(ids)} parties. Keep ca.key offline; give each machine ca.pem and only its own NAME.pem/NAME.key.")
    return 0


def _role_config(args: argparse.Namespace) -> config_mod.Config:
    cfg = config_mod.load(args.config, args.set or [])
    if cfg.transport.kind != "grpc":
        raise ConfigError(f"transport.kind is {cfg.transport.kind!r}: set transport.kind = \"grpc\" (or "
                          "--set transport.kind=grpc) to run the roles as separate processes")
    if args.insecure:
        console.print("[bold red]WARNING: --insecure: no TLS; keys, updates and models travel in the clear and "
                      "peers are whoever they claim to be. Never use it with real data.[/]")
    # long-running services: timestamped progress on stderr
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("securefl", "crypto_backends"):  # the crypto layer's notes too (fe grants, secagg verifications)
        logging.getLogger(name).setLevel(logging.DEBUG if args.debug else logging.INFO)
    # a stop request (SIGTERM) ends the role like Ctrl-C: servers close, no traceback
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    return cfg


def cmd_authority(args: argparse.Namespace) -> int:
    cfg = _role_config(args)
    from securefl.transport.grpc import tlslog

    tlslog.install()  # before grpc is imported: refused TLS handshakes are logged with the peer's address
    from securefl.transport.grpc.authority_server import serve

    server = serve(cfg, insecure=args.insecure)
    try:
        server.wait_for_termination()
    finally:
        server.stop(grace=1.0)
    return 0


def cmd_aggregator(args: argparse.Namespace) -> int:
    if args.json:
        _check_parent(args.json, "--json")  # before the federation starts, not after its last round
    cfg = _role_config(args)
    from securefl.transport.grpc import tlslog

    tlslog.install()  # before grpc is imported: refused TLS handshakes are logged with the peer's address
    from securefl.transport.grpc.aggregator_server import NetworkedAggregator

    result = NetworkedAggregator(cfg, insecure=args.insecure).run(
        on_stop=lambda partial: _write_json(args.json, partial.as_json()))
    out.print(f"final {result.metric}: {result.final_accuracy:.4f}")
    _write_json(args.json, result.as_json())
    return 0


def cmd_party(args: argparse.Namespace) -> int:
    from securefl.transport.grpc.party_client import NetworkedParty

    metrics = NetworkedParty(_role_config(args), args.id, insecure=args.insecure, data=args.data).run()
    if metrics:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        out.print(f"final model measured by {args.id} on its held-out rows: {shown}")
    return 0


# --- bench -----------------------------------------------------------------------
def cmd_bench(args: argparse.Namespace) -> int:
    from securefl.tools import bench

    # bench takes its schemes from --schemes: each "+dp" row checks its own scheme, not [crypto] scheme
    overrides = args.set or []
    cfg = (config_mod.load(args.config, overrides, whole_run=False) if args.config
           else config_mod.loads("", overrides, whole_run=False))
    schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
    for name in schemes:
        if name not in registry.available():
            raise ConfigError(f"--schemes: unknown scheme {name!r}; available: {', '.join(registry.available())}")
    wanted = [b.strip() for b in (args.baselines or "").split(",") if b.strip()]
    for name in wanted:
        if name not in baseline_registry.available():
            raise ConfigError(f"--baselines: unknown baseline {name!r}; "
                              f"available: {', '.join(baseline_registry.available())}")
    if args.params < 1 or args.repeat < 1:
        raise ConfigError("--params and --repeat must be positive integers")
    for name in wanted:
        baseline_registry.load(name)  # a missing library (the [bench] extra) is an error before any work
    if args.neighbours is not None:
        if args.neighbours < 2 or any(args.neighbours > n - 1 for n in args.parties):
            raise ConfigError(f"--neighbours {args.neighbours}: needs 2 to N-1 for every --parties count N")
        if not any(baseline_registry.takes(name, "neighbours") for name in wanted):
            raise ConfigError("--neighbours applies to the SecAgg+ baselines (--baselines flower_secaggplus)")
    if args.json:
        _check_parent(args.json, "--json")
    counts: list[int] = args.parties
    bench.check_inputs(counts, args.params)
    with _progress() as progress:
        task = progress.add_task("bench", total=len(counts) * (len(schemes) + len(wanted)) + 1)

        def step(label: str) -> None:
            progress.update(task, description=label)
            progress.advance(task)

        results = bench.run(schemes, parties=counts, params=args.params, repeat=args.repeat,
                            scheme_params=cfg.crypto.scheme_params, baselines=wanted, seed=args.seed, on_step=step,
                            privacy=cfg.privacy, baseline_options={"neighbours": args.neighbours})
        progress.advance(task)
    shown = ", ".join(str(c) for c in counts)
    table = Table(title=f"securefl bench: {shown} parties x {args.params} parameters, weights 1..N")
    for col in ("scheme", "parties", "bits", "encrypt", "aggregate", "decrypt", "round", "bytes/party", "bytes/value",
                "max |error|", "work / numpy"):
        table.add_column(col, justify="left" if col == "scheme" else "right")
    for r in results:
        if r.error:
            table.add_row(r.scheme, str(r.parties), "", "[red]failed[/]", r.error[:80], "", "", "", "", "", "")
            continue
        table.add_row(r.scheme, str(r.parties), _bits(r), format_seconds(r.encrypt_s), format_seconds(r.aggregate_s),
                      format_seconds(r.decrypt_s), format_seconds(r.round_s), format_bytes(r.bytes_per_party),
                      f"{r.bytes_per_party / r.params:.2f}", f"{r.max_abs_error:.2e}",
                      f"{r.x_numpy:.2f}x" if r.x_numpy else "-")
    out.print(table)
    for r in results:
        if r.note:
            out.print(Text(f"  {r.scheme} ({r.parties} parties): {r.note}"))
        if r.error and len(r.error) > 80:
            out.print(Text(f"  {r.scheme} ({r.parties} parties) failed: {r.error}"))
    _print_dp_cost(results)
    _print_share_cost(results)
    _write_json(args.json, {"results": [r.as_json() for r in results]})
    return 1 if any(r.error for r in results) else 0


def _bits(r: BenchResult) -> str:
    """The bits column: "none" for a scheme that does not hide updates, whatever its nominal level."""
    if r.hides_updates is False:
        return "none"
    return str(r.security_bits) if r.security_bits else "-"


# --- compare ---------------------------------------------------------------------
def cmd_compare(args: argparse.Namespace) -> int:
    from securefl.tools import bench, compare, report

    overrides = list(args.set or [])
    out_dir = _check_out_dir(args.out)
    counts: list[int] = args.parties or []
    if any(c < 1 for c in counts):
        raise ConfigError("--parties: every party count must be a positive integer")
    if counts:
        overrides.append(f"federation.parties={counts[0]}")
    if args.rounds is not None:
        overrides.append(f"federation.rounds={args.rounds}")
    if args.config:
        cfg = config_mod.load(args.config, overrides)
    else:
        cfg = config_mod.loads("", overrides, source="<defaults>")
    names = [s.strip() for s in args.schemes.split(",") if s.strip()] if args.schemes else registry.available()
    for name in names:
        if name not in registry.available():
            raise ConfigError(f"--schemes: unknown scheme {name!r}; available: {', '.join(registry.available())}")
    sweep = tuple(sorted(set(counts))) if len(counts) > 1 else ()
    options = compare.CompareOptions.from_params(cfg.federation.parties, args.params,
                                                 point_budget=args.point_budget, seed=args.seed, party_counts=sweep)
    # the table's workload is always measured: refuse it now if it cannot fit (larger points are skipped, noted)
    bench.check_inputs([options.parties], options.table_size, "securefl compare")
    by_parties = f" (and {', '.join(map(str, sweep))} parties at {options.table_size:,})" if sweep else ""
    console.print(f"[bold]securefl compare[/]: {', '.join(names)}; {options.parties} parties{by_parties}; sizes "
                  f"{', '.join(f'{s:,}' for s in options.sizes)} (table at {options.table_size:,}); training "
                  f"{cfg.model.kind} on {cfg.data.dataset} for {cfg.federation.rounds} rounds")
    with _progress() as progress:
        task = progress.add_task("compare", total=compare.steps(len(compare.rows(cfg, names)), options))

        def on_done(line: str) -> None:
            progress.advance(task)
            console.print(Text(line))

        comparison = compare.run(cfg, options, names=names, command=args.command_line,
                                 on_step=lambda label: progress.update(task, description=label), on_done=on_done)
    files = report.write(comparison, out_dir)
    table = Table(title=f"securefl compare: {options.parties} parties x {options.table_size:,} parameters")
    for col in ("scheme", "bits", "protect", "combine", "reveal", "bytes/party", "max |error|", "final accuracy"):
        table.add_column(col, justify="left" if col == "scheme" else "right")
    for row in report.summary_rows(comparison):
        table.add_row(row[0].strip("`"), row[1], *row[6:12])
    out.print(table)
    for row in report.summary_rows(comparison):
        if row[-1]:
            out.print(Text(f"  {row[0].strip('`')}: {row[-1]}"))
    out.print(f"wrote {files['md']}, {files['html']}, {files['json']} in {comparison.seconds:.0f} s")
    return 1 if comparison.failed else 0


def _print_share_cost(results: Sequence[BenchResult]) -> None:
    """For each row revealed by a share exchange: what its decrypt column is made of, and the round's total work."""
    for r in results:
        if r.error or "share_s" not in r.extra:
            continue
        out.print(Text(f"  {r.scheme}: decrypt = shares of {r.extra.get('shares_asked', 0):.0f} parties "
                       f"{format_seconds(r.extra.get('shares_total_s', 0.0))} (summed) + the aggregator's checks and "
                       f"combination {format_seconds(r.extra['unmask_s'])}; total work (parties x encrypt + "
                       f"aggregate + decrypt) {format_seconds(r.work_s)}"))


def _print_dp_cost(results: Sequence[BenchResult]) -> None:
    """For each ``<scheme>+dp(...)`` row: its round time against the bare scheme's, and the offline noise time."""
    rows = {r.scheme: r for r in results if not r.error}
    for label, r in rows.items():
        base = rows.get(label.partition("+dp(")[0]) if "+dp(" in label else None
        if base is None or not base.round_s:
            continue
        prep = r.extra.get("prepare_s", 0.0)
        out.print(Text(f"  {label}: round {r.round_s / base.round_s:.2f}x {base.scheme}'s online "
                       f"(noise sampled ahead of the round in {format_seconds(prep)} per party, off the critical path; "
                       f"{(r.round_s + prep) / base.round_s:.2f}x counting it); max |error| includes clipping "
                       "to privacy.clip_norm and the noise"))


# --- dp-curve --------------------------------------------------------------------
DP_CURVE_CONFIG = "configs/naive_bayes_dp.toml"
"""dp-curve's default federation: package data (pyproject's package-data), the same file as
examples/configs/naive_bayes_dp.toml (tests/securefl/cli/test_outputs.py checks they agree)."""


def cmd_dp_curve(args: argparse.Namespace) -> int:
    from securefl.tools import dpcurve

    if args.config is None:
        # shipped inside the package, so the default works from any directory and from an installed wheel
        text = resources.files("securefl").joinpath(DP_CURVE_CONFIG).read_text(encoding="utf-8")
        cfg = config_mod.loads(text, args.set or [], source=f"securefl/{DP_CURVE_CONFIG} (built-in)")
    else:
        cfg = config_mod.load(args.config, args.set or [])
    if args.seeds < 1:
        raise ConfigError("--seeds must be a positive integer")
    outdir = _check_out_dir(args.out)
    outdir.mkdir(exist_ok=True)
    with _progress() as progress:
        task = progress.add_task("dp-curve", total=args.seeds * len(dpcurve.EPSILONS))

        def on_step(label: str) -> None:
            progress.update(task, description=label)
            progress.advance(task)

        curve = dpcurve.run_curve(cfg, seeds=args.seeds, on_step=on_step)
    table = Table(title=f"naive Bayes accuracy vs epsilon: {curve['dataset']}, {curve['parties']} parties, "
                        f"mean (std) over {curve['seeds']} seeds, {curve['mechanism']} noise")
    table.add_column("method")
    for eps in curve["epsilons"]:
        table.add_column(f"eps={eps:g}", justify="right")
    for name, row in curve["methods"].items():
        cells = (f"{m:.3f} ({s:.3f})" for m, s in zip(row["mean"], row["std"], strict=True))
        table.add_row(dpcurve.label(name, curve), *cells)
    out.print(table)
    if "distributed" not in curve["methods"]:
        out.print("distributed: no installed scheme hides individual updates, so the distributed curve is absent")
    (outdir / "dp_curve.json").write_text(jsonout.dumps(curve) + "\n", encoding="utf-8")
    png = dpcurve.plot_curve(curve, outdir / "dp_curve.png")
    out.print(f"wrote {outdir / 'dp_curve.json'} and {png}")
    return 0


# --- parser ----------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="securefl",
                                     description="Privacy-preserving secure aggregation for federated learning.")
    parser.add_argument("--version", action="version", version=f"securefl {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def with_set(p: argparse.ArgumentParser) -> None:
        p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                       help="override a config key (type-checked like the file); repeatable")
        p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")

    p = sub.add_parser("run", help="run a federation in one process",
                       description="Run every round of the federation CONFIG describes, all roles in this process.")
    p.add_argument("config", metavar="CONFIG", help="TOML configuration file, e.g. examples/configs/plain.toml")
    with_set(p)
    p.add_argument("--plot", metavar="PNG", help="also plot accuracy and upload size per round to PNG")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("bench", help="measure schemes side by side",
                       description="Protect, combine and reveal the same standard-normal vectors with every scheme "
                       "in one run.")
    p.add_argument("--schemes", default=",".join(registry.available()), help="comma-separated schemes (default: all)")
    p.add_argument("--parties", type=_parties, default=[10], metavar="N[,N...]",
                   help="parties, or several counts (10,100,1000): every scheme runs at each (default: 10)")
    p.add_argument("--params", type=int, default=100_000, help="values per update")
    p.add_argument("--repeat", type=int, default=1, help="repetitions; medians are reported")
    p.add_argument("--baselines", default="",
                   help=f"comma-separated reference implementations ({', '.join(baseline_registry.available())})")
    p.add_argument("--neighbours", type=int, metavar="K",
                   help="neighbours per party of the SecAgg+ baselines (default 2*ceil(log2 N), the full graph "
                   "when that reaches N-1): set it to the neighbour count securefl's secagg uses")
    p.add_argument("--config", metavar="CONFIG", help="take [crypto.<scheme>] tables from this file")
    p.add_argument("--seed", type=int, default=0, help="seed of the (non-secret) test vectors")
    with_set(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("compare", help="the side-by-side report of every scheme",
                       description="Run every registered scheme on the same workload (a cost sweep over model "
                       "sizes and a short training run of CONFIG's data set) and write report.md, a self-contained "
                       "report.html, report.json and PNG plots into --out. Exits 1 if a scheme failed (the report "
                       "still lists it, with its error).")
    p.add_argument("--config", metavar="CONFIG", help="data set, model, rounds and [crypto.<scheme>] tables "
                   "(default: the built-in defaults)")
    p.add_argument("--parties", type=int, nargs="+", metavar="N",
                   help="parties in the cost sweep and in training (default: the config's); several counts "
                   "(10 100 1000) also measure every scheme at the table's size for each count and plot cost "
                   "against the number of parties, training with the first")
    p.add_argument("--params", type=int, nargs="+", metavar="D",
                   help="model sizes: one size D is the table's workload, swept together with 10000 100000 "
                   "1000000; several sizes are swept exactly, the table at the first (default: 10000 100000 1000000)")
    p.add_argument("--rounds", type=int, help="training rounds (default: the config's)")
    p.add_argument("--out", default="report", metavar="DIR", help="output directory (default: report)")
    p.add_argument("--schemes", help="comma-separated schemes (default: every registered one)")
    p.add_argument("--point-budget", type=float, default=60.0, metavar="SECONDS",
                   help="skip a sweep size predicted to take longer for a scheme, and the larger ones (default: 60)")
    p.add_argument("--seed", type=int, default=0, help="seed of the (non-secret) test vectors")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help="override a config key (type-checked like the file); repeatable")
    p.set_defaults(func=cmd_compare)
    p = sub.add_parser("dp-curve",
                       help="naive-Bayes accuracy against epsilon (local, distributed, central, non-private)",
                       description="Accuracy of federated DP naive Bayes (local and distributed noise), diffprivlib's "
                                   "centralised GaussianNB and non-private naive Bayes at epsilon 0.1 to 10; prints a "
                                   "table and writes DIR/dp_curve.png and DIR/dp_curve.json.")
    p.add_argument("--config", metavar="CONFIG",
                   help="naive-Bayes federation (default: the built-in copy of examples/configs/naive_bayes_dp.toml)")
    p.add_argument("--out", default="dp-curve", metavar="DIR", help="output directory (created if missing)")
    p.add_argument("--seeds", type=int, default=5, help="data splits to average over")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config key; repeatable")
    p.set_defaults(func=cmd_dp_curve)

    p = sub.add_parser("certs", help="make a private CA and mutual-TLS certificates for a federation",
                       description="Make a CA and certificates for the aggregator, the authority and every party.")
    p.add_argument("outdir", metavar="OUTDIR", help="new directory for the files (must not hold a CA yet)")
    p.add_argument("--config", metavar="CONFIG", help="take the party ids from this config's [federation]")
    p.add_argument("--parties", help="comma-separated party ids (instead of --config)")
    p.add_argument("--hosts", help="extra comma-separated host names / IPs of the aggregator and authority machines")
    p.add_argument("--days", type=int, default=365, help="validity in days (default 365)")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a key of --config")
    p.set_defaults(func=cmd_certs)

    roles = [("authority", cmd_authority, "serve the federation's keys (key authority / dealer)"),
             ("aggregator", cmd_aggregator, "run the rounds: collect, fuse, checkpoint"),
             ("party", cmd_party, "train on this party's data and send protected updates")]
    for name, func, text in roles:
        p = sub.add_parser(name, help=text, description=f"{text[0].upper()}{text[1:]}, as its own process "
                           "over gRPC with mutual TLS ([transport] kind = \"grpc\").")
        p.add_argument("config", metavar="CONFIG", help="TOML configuration file with a [transport] section")
        if name == "party":
            p.add_argument("--id", required=True, metavar="NAME", help="this party's id (its certificate's name)")
            p.add_argument("--data", metavar="PATH.csv",
                           help="train on this CSV file alone (label column as [data] says; data.dataset = \"own\")")
        p.add_argument("--insecure", action="store_true",
                       help="no TLS, unauthenticated peers: debugging on one machine only (prints a warning)")
        if name == "aggregator":
            with_set(p)
        else:
            p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                           help="override a config key (type-checked like the file); repeatable")
        p.set_defaults(func=func)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.command_line = shlex.join(["securefl", *argv])
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except SecureFLError as exc:
        if args.debug:
            raise
        console.print(Text(f"securefl {args.command}: error: ", style="bold red") + Text(str(exc)), soft_wrap=True)
        return EXIT_ERROR
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
