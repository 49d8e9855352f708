"""``securefl dp-curve``: naive-Bayes accuracy against epsilon."""

from __future__ import annotations

import argparse
from importlib import resources

from securefl import config as config_mod
from securefl.cli.common import Steps, check_out_dir, out
from securefl.core import jsonout
from securefl.errors import ConfigError
from securefl.tools.tables import dp_curve_table

DP_CURVE_CONFIG = "configs/naive_bayes_dp.toml"
"""dp-curve's default federation: package data (pyproject's package-data), the same file as
examples/configs/naive_bayes_dp.toml (tests/securefl/cli/test_outputs.py checks they agree)."""


def cmd_dp_curve(args: argparse.Namespace) -> int:
    """Measure accuracy against epsilon, print the table, write ``dp_curve.json`` and ``dp_curve.png``."""
    from securefl.tools import dpcurve

    if args.config is None:
        # shipped inside the package, so the default works from any directory and from an installed wheel
        text = resources.files("securefl").joinpath(DP_CURVE_CONFIG).read_text(encoding="utf-8")
        cfg = config_mod.loads(text, args.set or [], source=f"securefl/{DP_CURVE_CONFIG} (built-in)")
    else:
        cfg = config_mod.load(args.config, args.set or [])
    if args.seeds < 1:
        raise ConfigError("--seeds must be a positive integer")
    outdir = check_out_dir(args.out)
    outdir.mkdir(exist_ok=True)
    with Steps("securefl dp-curve", args.seeds * len(dpcurve.EPSILONS)) as steps:
        curve = dpcurve.run_curve(cfg, seeds=args.seeds, on_step=steps.step)
    out.print(dp_curve_table(curve))
    if "distributed" not in curve["methods"]:
        out.print("distributed: no installed scheme hides individual updates, so the distributed curve is absent")
    (outdir / "dp_curve.json").write_text(jsonout.dumps(curve) + "\n", encoding="utf-8")
    png = dpcurve.plot_curve(curve, outdir / "dp_curve.png")
    out.print(f"wrote {outdir / 'dp_curve.json'} and {png}")
    return 0
