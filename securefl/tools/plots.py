"""PNG plots (matplotlib, headless Agg backend).

The comparison plots build a :class:`matplotlib.figure.Figure` directly (no
pyplot state), drawing the "floor" (every scheme that declares
``hides_updates = False``, read from the declarations, not from a name) as a
dashed black line.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from securefl.core.federation import RunResult  # noqa: E402
from securefl.tools.bench import BenchResult  # noqa: E402
from securefl.tools.compare import Comparison, SchemeResult  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

COST_PNG = "cost.png"
PARTIES_PNG = "parties.png"
ACCURACY_PNG = "accuracy.png"


def plot_rounds(results: Sequence[RunResult], path: str | Path) -> Path:
    """Accuracy (or R^2) and upload size per round, one line per run; returns the written path."""
    path = Path(path)
    fig, (ax_acc, ax_bytes) = plt.subplots(1, 2, figsize=(11, 4))
    for res in results:
        rounds = [r.round for r in res.rounds]  # numbered as in --json and the logs
        ax_acc.plot(rounds, [r.accuracy for r in res.rounds], marker="o", label=res.scheme)
        ax_bytes.plot(rounds, [r.bytes_up for r in res.rounds], marker="o", label=res.scheme)
    metric = results[0].metric if results else "accuracy"
    ax_acc.set(xlabel="round", ylabel=f"held-out {metric}", title=f"{metric} per round")
    ax_bytes.set(xlabel="round", ylabel="bytes uploaded per party", title="upload per party", yscale="log")
    return save_figure(fig, path, ax_acc, ax_bytes)


def save_figure(fig: Figure, path: str | Path, *axes: Axes) -> Path:
    """Grid and legend on ``axes``, tight layout, write ``path`` as PNG, free the figure."""
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def is_floor(s: SchemeResult) -> bool:
    """The unprotected reference of a comparison: a scheme that declares ``hides_updates = False``."""
    return s.facts is not None and not s.facts.hides_updates and not s.private


_MARKERS = ("o", "^", "D", "v", "P", "X", "<", ">")


def _style(s: SchemeResult, i: int) -> dict[str, Any]:
    """The floor dashed black underneath; the others with their own marker, each smaller than the last,
    so that coinciding lines (the same accuracy, the same upload size) stay visible."""
    if is_floor(s):
        return {"color": "black", "linestyle": "--", "linewidth": 2.2, "marker": "s", "markersize": 9, "zorder": 2}
    return {"marker": _MARKERS[i % len(_MARKERS)], "markersize": max(9 - 1.2 * i, 3.5), "linewidth": 1.6,
            "color": f"C{i}", "zorder": 3 + i}


def _label(s: SchemeResult, points: Sequence[BenchResult], skipped: bool, x: Callable[[BenchResult], float]) -> str:
    label = s.name + (" (unprotected floor)" if is_floor(s) else "")
    if skipped and points:
        label += f" (stopped after {x(points[-1]):,.0f})"
    elif not points:
        label += " (no measurement)"
    return label


_SI = ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"))


def _si(x: float, unit: str = "") -> str:
    """Decimal SI label for a log-axis tick: ``1e5, "B"`` -> ``"100 kB"``, ``1e-4, "s"`` -> ``"100 µs"``."""
    for div, prefix in _SI:
        if x >= div * 0.9999:
            return f"{x / div:.3g} {prefix}{unit}".strip()
    return f"{x:.3g} {unit}".strip()


def _decades(ax: Axes, axis: str, values: Sequence[float], formatter: Callable[[float], str]) -> None:
    """Log axis padded to whole decades, ticks at the decades, labelled with ``formatter``."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    values = [v for v in values if v > 0 and math.isfinite(v)]
    if values:
        # whole decades, and a margin so no point sits on the frame
        lo, hi = math.floor(math.log10(min(values) / 1.6)), math.ceil(math.log10(max(values) * 1.6))
        (ax.set_xlim if axis == "x" else ax.set_ylim)(10.0 ** lo, 10.0 ** max(hi, lo + 1))
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(LogLocator(base=10))
    target.set_major_formatter(FuncFormatter(lambda v, _pos: formatter(v)))
    target.set_minor_formatter(NullFormatter())


def _loglog_cost(
    comparison: Comparison,
    path: Path,
    points: Callable[[SchemeResult], tuple[list[BenchResult], bool]],
    x: Callable[[BenchResult], float],
    seconds: Callable[[BenchResult], float],
    titles: tuple[str, str, str],
) -> Path:
    """Seconds (left) and bytes per party (right) against ``x``, log-log, one line per scheme.

    ``points(s)`` gives a row's points and whether it skipped some; ``titles`` are the seconds panel's
    title, the x axis label and the figure's title."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.8), layout="constrained")
    ax_t, ax_b = fig.subplots(1, 2)
    every: list[BenchResult] = []
    for i, s in enumerate(comparison.schemes):
        pts, skipped = points(s)
        every += pts
        label = _label(s, pts, skipped, x)
        ax_t.plot([x(p) for p in pts], [seconds(p) for p in pts], label=label, **_style(s, i))
        ax_b.plot([x(p) for p in pts], [p.bytes_per_party for p in pts], label=label, **_style(s, i))
    time_title, xlabel, title = titles
    ax_t.set_title(time_title)
    ax_t.set_ylabel("seconds")
    ax_b.set_title("bytes uploaded per party (1 kB = 1000 B)")
    ax_b.set_ylabel("bytes")
    for ax, ys, unit in ((ax_t, [seconds(p) for p in every], "s"), (ax_b, [p.bytes_per_party for p in every], "B")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        _decades(ax, "x", [x(p) for p in every], _si)
        _decades(ax, "y", ys, functools.partial(_si, unit=unit))
        ax.set_xlabel(xlabel)
        ax.grid(True, which="both", alpha=0.3)
    ax_b.legend(loc="upper left", fontsize=9)
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    return path


def plot_cost(comparison: Comparison, path: Path) -> Path:
    """Seconds per round and bytes per party against model size, log-log, one line per scheme."""
    n = comparison.options.parties
    return _loglog_cost(comparison, path, lambda s: (s.points, bool(s.skipped)), lambda p: float(p.params),
                        lambda p: p.round_s,
                        (f"seconds per round: protect one update + combine {n} + reveal",
                         "model size (parameters per update)",
                         f"securefl compare: cost against model size ({n} parties)"))


def plot_parties(comparison: Comparison, path: Path) -> Path:
    """Total work (``work_s``) and bytes per party against the number of parties, log-log, one line per scheme."""
    size = comparison.options.table_size
    return _loglog_cost(comparison, path, lambda s: (s.party_points, bool(s.party_skipped)),
                        lambda p: float(p.parties), lambda p: p.work_s,
                        ("total work per round: every party's protect + combine + reveal", "number of parties",
                         f"securefl compare: cost against the number of parties ({size:,} parameters per update)"))


def plot_accuracy(comparison: Comparison, path: Path) -> Path:
    """Held-out metric after each round, one line per scheme; beside it, the difference to the floor."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    trained = [(i, s) for i, s in enumerate(comparison.schemes) if s.training]
    floor = next((s for _, s in trained if is_floor(s)), None)
    fig = Figure(figsize=(12, 4.8), layout="constrained")
    ax, ax_d = fig.subplots(1, 2)
    metric = trained[0][1].metric if trained else "accuracy"
    for i, s in trained:
        rounds = [m.round for m in s.training]
        final = f" (final {s.training[-1].accuracy:.4f})"
        ax.plot(rounds, [m.accuracy for m in s.training],
                label=s.name + (" (failed)" if s.training_error else final), **_style(s, i))
        if floor is not None:
            base = {m.round: m.accuracy for m in floor.training}
            common = [m for m in s.training if m.round in base]
            ax_d.plot([m.round for m in common], [m.accuracy - base[m.round] for m in common], **_style(s, i))
    w = comparison.workload
    ax.set_title(f"{metric} per round: {w['model']} on {w['dataset']}, {w['parties']} parties")
    ax.set_ylabel(f"held-out {metric}")
    ax.legend(fontsize=9)
    ax_d.set_title(f"difference to {floor.name if floor else 'the floor'} (0 = no loss)")
    ax_d.set_ylabel(f"{metric} difference")
    for a in (ax, ax_d):
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
        a.set_xlabel("round")
        a.grid(True, alpha=0.3)
    fig.savefig(path, dpi=110)
    return path
