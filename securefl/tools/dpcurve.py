"""``securefl dp-curve``: naive-Bayes accuracy against epsilon, federated and centralised, side by side.

For each epsilon and each seed (the seed drives the data split and partition;
noise always comes from the secure source), four numbers on the same held-out
test split:

* ``local``: the federation with ``privacy.mode = "local"`` (every party perturbs
  its own statistics, the IBM way);
* ``distributed``: ``privacy.mode = "distributed"`` (noise shares under a scheme that
  hides updates: the configured one if it does, else the first installed one
  that does; the row is absent when none is installed);
* ``central_securefl``: the same mechanism with all training rows at one party
  (``parties = 1``): what a trusted curator running securefl's estimator would
  get; ``distributed`` should match it, since its sum carries exactly this noise;
* ``central``: diffprivlib's ``GaussianNB`` on the pooled training rows, at the
  same epsilon and feature bounds (the centralised reference);
* ``non_private``: scikit-learn's ``GaussianNB`` on the pooled training rows.

Each federated run's configuration is the given one changed with
:meth:`securefl.config.Config.replace` (:func:`variant`), so every variant is
validated like a loaded file.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crypto_backends import registry
from securefl import privacy
from securefl.config import DEFAULT_SCHEME, Config, hiding_schemes
from securefl.errors import ConfigError
from securefl.ml.data import FederatedData, load_federated
from securefl.simulation import Simulation

EPSILONS = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0)
METHODS = ("local", "distributed", "central_securefl", "central", "non_private")


def hiding_scheme(cfg: Config) -> str | None:
    """The scheme the distributed curve runs under: the configured one if it hides updates, else the first that does."""
    if registry.get(cfg.crypto.scheme).threat_model.hides_updates:
        return cfg.crypto.scheme
    return next(iter(hiding_schemes()), None)


def variant(cfg: Config, *, mode: str, epsilon: float, seed: int, scheme: str | None = None,
            single_party: bool = False) -> Config:
    """``cfg`` for one point of the curve: ``privacy.mode``, ``privacy.epsilon`` (the budget raised to allow
    it), the data split's seed, optionally another scheme, or all rows at one party (``single_party``)."""
    changes: dict[str, object] = {
        "privacy.mode": mode, "privacy.epsilon": epsilon,
        "privacy.epsilon_budget": max(cfg.privacy.epsilon_budget, epsilon), "federation.seed": seed,
    }
    if scheme:
        changes["crypto.scheme"] = scheme
    if single_party:  # one curator: nothing to hide from itself, and a hiding scheme refuses one party
        changes.update({"federation.parties": 1, "federation.quorum": 0, "federation.party_ids": (),
                        "crypto.scheme": DEFAULT_SCHEME})
    return cfg.replace(**changes)


def _pooled(data: FederatedData) -> tuple[np.ndarray, np.ndarray]:
    return np.vstack([s.X for s in data.shards.values()]), np.concatenate([s.y for s in data.shards.values()])


def central_accuracy(cfg: Config, data: FederatedData, epsilon: float | None) -> float:
    """diffprivlib's GaussianNB (``epsilon``) or scikit-learn's (``None``) on the pooled training rows."""
    from diffprivlib import BudgetAccountant
    from diffprivlib.models import GaussianNB as DPGaussianNB
    from sklearn.naive_bayes import GaussianNB

    X, y = _pooled(data)
    if epsilon is None:
        model = GaussianNB().fit(X, y)
    else:
        bounds = privacy.feature_bounds(cfg.privacy, [X], X.shape[1])
        # its own accountant, not diffprivlib's process-global default
        model = DPGaussianNB(epsilon=epsilon, bounds=bounds, accountant=BudgetAccountant()).fit(X, y)
    return float(np.mean(model.predict(data.X_test) == data.y_test))


def run_curve(
    cfg: Config,
    *,
    epsilons: Sequence[float] = EPSILONS,
    seeds: int = 5,
    on_step: Callable[[str], None] = lambda label: None,
) -> dict[str, Any]:
    """Accuracy per method and epsilon, averaged over ``seeds`` splits (see the module docstring)."""
    if cfg.model.kind != "naive_bayes":
        raise ConfigError(f"dp-curve measures naive Bayes; the config has model.kind = {cfg.model.kind!r}. "
                          "Use examples/configs/naive_bayes_dp.toml or --set model.kind=naive_bayes")
    distributed = hiding_scheme(cfg)
    base_seed = cfg.federation.seed
    acc: dict[str, dict[float, list[float]]] = {m: {e: [] for e in epsilons} for m in METHODS}
    for i in range(seeds):
        seed = base_seed + i
        data = load_federated(cfg.data, cfg.federation.ids, seed)
        plain_acc = central_accuracy(cfg, data, None)
        for eps in epsilons:
            on_step(f"seed {i + 1}/{seeds}, epsilon {eps:g}")
            acc["non_private"][eps].append(plain_acc)
            acc["central"][eps].append(central_accuracy(cfg, data, eps))
            local = variant(cfg, mode="local", epsilon=eps, seed=seed)
            acc["local"][eps].append(Simulation(local).run().final_accuracy)
            one = variant(cfg, mode="local", epsilon=eps, seed=seed, single_party=True)
            acc["central_securefl"][eps].append(Simulation(one).run().final_accuracy)
            if distributed is not None:
                sim = Simulation(variant(cfg, mode="distributed", epsilon=eps, seed=seed, scheme=distributed))
                acc["distributed"][eps].append(sim.run().final_accuracy)
    methods = {
        m: {"mean": [statistics.fmean(acc[m][e]) for e in epsilons],
            "std": [statistics.pstdev(acc[m][e]) for e in epsilons]}
        for m in METHODS if all(acc[m][e] for e in epsilons)
    }
    return {
        "dataset": cfg.data.dataset, "parties": cfg.federation.parties, "seeds": seeds, "base_seed": base_seed,
        "mechanism": cfg.privacy.mechanism, "bounds": list(cfg.privacy.bounds), "scheme": cfg.crypto.scheme,
        "distributed_scheme": distributed, "epsilons": list(epsilons), "methods": methods,
    }


def label(method: str, curve: Mapping[str, Any]) -> str:
    """How a method is named in the table and the plot."""
    names = {"distributed": f"distributed ({curve['distributed_scheme']})", "central": "central (diffprivlib)",
             "central_securefl": "central (same mechanism, one curator)", "non_private": "non-private"}
    return names.get(method, method)


def plot_curve(curve: Mapping[str, Any], path: str | Path) -> Path:
    """Accuracy against epsilon (log axis), one line per method with its spread over seeds."""
    from matplotlib.figure import Figure

    from securefl.tools.plots import save_figure

    # a Figure of its own, as the comparison plots draw theirs: no global pyplot state
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    eps = curve["epsilons"]
    for name, row in curve["methods"].items():
        mean, sem = np.array(row["mean"]), np.array(row["std"]) / math.sqrt(curve["seeds"])
        ax.plot(eps, mean, marker="o", label=label(name, curve))
        ax.fill_between(eps, mean - sem, mean + sem, alpha=0.15)
    ax.set(xscale="log", xlabel="epsilon", ylabel="held-out accuracy (band: standard error)",
           title=f"DP naive Bayes on {curve['dataset']}, {curve['parties']} parties, {curve['seeds']} seeds")
    return save_figure(fig, path, ax)
