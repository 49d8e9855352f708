"""Measurement tools (bench, baselines, compare, report, plots, dp-curve, docs, machine facts).

The federated core never imports this package."""
