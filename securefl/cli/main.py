"""The ``securefl`` command line: the argument parser and the dispatch to one module per command.

Every command exits non-zero with a one-paragraph message (no traceback) on a
configuration or data error; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Callable, Sequence

from rich.text import Text

from crypto_backends import registry
from crypto_backends.errors import SecureFLError
from securefl import __version__
from securefl.cli.bench import cmd_bench
from securefl.cli.common import EXIT_ERROR, console, parties
from securefl.cli.compare import cmd_compare
from securefl.cli.dp_curve import DP_CURVE_CONFIG, cmd_dp_curve
from securefl.cli.roles import cmd_aggregator, cmd_authority, cmd_certs, cmd_party
from securefl.cli.run import cmd_run
from securefl.tools import baselines as baseline_registry

__all__ = ["DP_CURVE_CONFIG", "EXIT_ERROR", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command and its flags; each subparser's ``func`` is the command to call."""
    parser = argparse.ArgumentParser(prog="securefl",
                                     description="Privacy-preserving secure aggregation for federated learning.")
    parser.add_argument("--version", action="version", version=f"securefl {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def with_set(p: argparse.ArgumentParser) -> None:
        """Add ``--set`` and ``--json`` to ``p``."""
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
    # the defaults finish in about a minute on 2 cores with every scheme (threshold_paillier's shares dominate)
    p.add_argument("--parties", type=parties, default=[5], metavar="N[,N...]",
                   help="parties, or several counts (10,100,1000): every scheme runs at each (default: 5)")
    p.add_argument("--params", type=int, default=10_000, help="values per update (default: 10000)")
    p.add_argument("--repeat", type=int, default=1, help="repetitions; medians are reported")
    p.add_argument("--baselines", default="",
                   help=f"comma-separated reference implementations ({', '.join(baseline_registry.available())})")
    p.add_argument("--neighbours", type=int, metavar="K",
                   help="neighbours per party of the SecAgg+ baselines (default 2*ceil(log2 N), the full graph "
                   "when that reaches N-1): set it to the neighbour count securefl's secagg uses")
    p.add_argument("--config", metavar="CONFIG", help="take [crypto.<scheme>] tables from this file")
    p.add_argument("--seed", type=int, default=0, help="seed of the (non-secret) test vectors")
    p.add_argument("--verify", nargs="?", const="full,sampled", metavar="MODE[,MODE]",
                   help="also measure the verified reveal in these crypto.verify_aggregate modes (full: every "
                   "revealing party refolds the signed uploads; sampled: each checks --verify-samples blocks it "
                   "draws; default: both) under the same keys, and print its cost as ratios to the rounds "
                   "without it (a second table)")
    p.add_argument("--verify-samples", type=int, metavar="K",
                   help="blocks of each upload a verifier checks under sampled (default: crypto.verify_samples, 32)")
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
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the command and return its exit status."""
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
