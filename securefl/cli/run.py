"""``securefl run``: a whole federation in one process."""

from __future__ import annotations

import argparse

from rich.text import Text

from securefl import config as config_mod
from securefl.cli.common import check_parent as _check_parent
from securefl.cli.common import check_plot as _check_plot
from securefl.cli.common import console, out, result_json
from securefl.cli.common import progress as _progress
from securefl.errors import ConfigError

# the body below is kept as it was in cli/main.py (hence the underscore aliases above)


def cmd_run(args: argparse.Namespace) -> int:
    """Run every round of the federation ``args.config`` describes; print per-round lines and the result."""
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
        save = result_json(args.json)
        result = sim.run(on_round, on_stop=save)
    out.print(f"final {result.metric}: {result.final_accuracy:.4f}")
    if result.privacy is not None:
        p = result.privacy
        out.print(f"privacy ({p['mode']}, {p['mechanism']}): "
                  f"epsilon {p['epsilon_spent']:g} of {p['epsilon_budget']:g}, "
                  f"delta {p['delta_spent']:.3g} of {p['delta_budget']:.3g} spent ({p['composition']} composition)")
    save(result)
    if args.plot:
        from securefl.tools.plots import plot_rounds

        out.print(f"plot written to {plot_rounds([result], args.plot)}")
    return 0


