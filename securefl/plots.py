"""PNG plots (matplotlib, headless Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from .simulation import RunResult  # noqa: E402


def plot_rounds(results: Sequence[RunResult], path: str | Path) -> Path:
    """Accuracy (or R^2) and upload size per round, one line per run; returns the written path."""
    path = Path(path)
    fig, (ax_acc, ax_bytes) = plt.subplots(1, 2, figsize=(11, 4))
    for res in results:
        rounds = [r.round + 1 for r in res.rounds]
        ax_acc.plot(rounds, [r.accuracy for r in res.rounds], marker="o", label=res.scheme)
        ax_bytes.plot(rounds, [r.bytes_up for r in res.rounds], marker="o", label=res.scheme)
    metric = results[0].metric if results else "accuracy"
    ax_acc.set(xlabel="round", ylabel=f"held-out {metric}", title=f"{metric} per round")
    ax_bytes.set(xlabel="round", ylabel="bytes uploaded per party", title="upload per party", yscale="log")
    for ax in (ax_acc, ax_bytes):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
