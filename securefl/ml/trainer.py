"""The user's machine-learning program: a :class:`Trainer`, the one seam between securefl and a model.

A trainer is what one party runs on its own rows.  securefl owns the round
(who trains when, how updates are protected and fused, where the model is
decrypted); the trainer owns the model and its training loop, and names no
scheme: the same trainer runs under every scheme, in one process
(:func:`securefl.simulate`), as a networked party (:func:`securefl.serve_party`),
and over any transport.

The contract:

* :meth:`Trainer.initial_parameters` - the model as one flat float vector,
  of the same length at every party (the engine asks the party with the
  smallest id for the starting point).
* :meth:`Trainer.fit` - local training from the global parameters of a round:
  the new local parameters (same length, finite) and the party's fusion weight
  (positive and finite, and public: every scheme shows weights to the
  aggregator; FedAvg uses the row count).
* :meth:`Trainer.evaluate` - metrics of released parameters on this party's
  own held-out rows.  The engine averages each metric over the round's
  contributors, weighted by ``num_examples`` when the trainer reports it (then
  a pooled accuracy comes out exactly), else by the party's fusion weight.

Fusion is the weighted mean of the returned vectors.  **Sum, don't average**:
a trainer whose vector holds sufficient statistics to be added up (counts,
sums, histograms) returns weight ``1`` from every party and the federation
sets ``[model] fusion = "sum"``: the fused vector is then the plain sum.  The
built-in kinds that do this (naive Bayes, the decision tree) declare it
themselves.

What is checked: every vector a trainer returns (:func:`checked_fit`) and
every metric (:func:`checked_metrics`), with a :class:`~securefl.errors.PartyError`
naming the party and the fix.  What is not: anything about the model itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np

from securefl.errors import PartyError
from securefl.ml.data import Shard
from securefl.ml.models import OWN_DIVERGED, ModelAdapter, checked_update, checked_weight

NUM_EXAMPLES = "num_examples"
"""The key of :meth:`Trainer.evaluate`'s mapping that weights this party's metrics in the average."""
MAX_METRICS = 64


@runtime_checkable
class Trainer(Protocol):
    """One party's model and training loop (see the module docstring)."""

    def initial_parameters(self) -> np.ndarray:
        """The model's starting point as one flat float vector (the same length at every party)."""
        ...

    def fit(self, parameters: np.ndarray, round: int) -> tuple[np.ndarray, float]:
        """Train locally from the global ``parameters`` of ``round``: new local parameters and a weight > 0."""
        ...

    def evaluate(self, parameters: np.ndarray) -> Mapping[str, float]:
        """Metrics of the released ``parameters`` on this party's own held-out rows."""
        ...


def checked_fit(party: str, result: object, length: int) -> tuple[np.ndarray, float]:
    """``result`` of :meth:`Trainer.fit` as (finite float64 vector of ``length``, positive weight), or PartyError."""
    if not isinstance(result, tuple) or len(result) != 2:
        raise PartyError(f"{party}: Trainer.fit must return (parameters, weight), got {type(result).__name__}; "
                         "return the flat parameter vector and the party's fusion weight (e.g. its row count)")
    try:
        # a built-in kind's adapter has checked its update already, naming its config keys: this is a user's trainer
        return checked_update(result[0], length, diverged=OWN_DIVERGED), checked_weight(result[1])
    except PartyError as exc:
        raise PartyError(f"{party}: {exc}") from None


def checked_metrics(party: str, metrics: object) -> dict[str, float]:
    """``metrics`` of :meth:`Trainer.evaluate` as a small mapping of names to finite floats, or PartyError."""
    if not isinstance(metrics, Mapping) or not metrics or len(metrics) > MAX_METRICS:
        raise PartyError(f"{party}: Trainer.evaluate must return a mapping of 1 to {MAX_METRICS} metric names to "
                         f"numbers, got {metrics!r:.200}")
    out: dict[str, float] = {}
    for name, value in metrics.items():
        if not isinstance(name, str) or not 0 < len(name) <= 64:
            raise PartyError(f"{party}: metric names must be strings of 1-64 characters, got {name!r:.80}")
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not math.isfinite(float(value)):
            raise PartyError(f"{party}: metric {name!r} must be a finite number, got {value!r:.80}")
        out[name] = float(value)
    if NUM_EXAMPLES in out and not out[NUM_EXAMPLES] > 0:
        raise PartyError(f"{party}: {NUM_EXAMPLES} must be positive (the held-out rows the metrics were measured on)")
    return out


class KindTrainer:
    """A built-in (or plug-in) model kind as a :class:`Trainer` over one party's rows.

    ``train`` are the rows it fits on; ``held_out`` the rows it evaluates on
    (the configured metric, under the kind's own name).
    """

    def __init__(self, adapter: ModelAdapter, train: Shard, held_out: Shard) -> None:
        self.adapter, self.train, self.held_out = adapter, train, held_out
        self.length = int(np.asarray(adapter.initial_parameters()).size)

    def initial_parameters(self) -> np.ndarray:
        """The model's starting parameters as one flat vector."""
        return self.adapter.initial_parameters()

    def fit(self, parameters: np.ndarray, round: int) -> tuple[np.ndarray, float]:
        """Train locally from ``parameters`` on this party's rows; the update and this party's weight.

        A global model of another length than this party's model is refused with :class:`PartyError`
        (naming the classes this party's rows hold, the usual cause across sites).
        """
        if parameters.size != self.length:
            raise PartyError(self._mismatch(parameters.size))
        update = self.adapter.fit_local(parameters, self.train.X, self.train.y)
        return update, self.adapter.local_weight(self.train.n)

    def _mismatch(self, size: int) -> str:
        why = (f"the global model has {size} parameters, this party's {type(self.adapter).__name__} has "
               f"{self.length}")
        classes = getattr(self.adapter, "classes", None)
        if classes is None:
            return why + "; every party must use the same [model] and [data] settings"
        held = [c.item() if hasattr(c, "item") else c for c in classes]
        return (f"{why}: this party's model has the classes {held}; sites whose files hold different label sets "
                "build models of different sizes. Declare every label any site holds, the same in every site's "
                "config: [data] classes = [...]")

    def weight(self) -> float:
        """The fusion weight :meth:`fit` will return (known before training: the row count)."""
        return self.adapter.local_weight(self.train.n)

    def evaluate(self, parameters: np.ndarray) -> Mapping[str, float]:
        """The model's metric on this party's held-out rows, and how many rows that was."""
        score = self.adapter.evaluate(parameters, self.held_out.X, self.held_out.y)
        return {self.adapter.metric: score, NUM_EXAMPLES: float(self.held_out.n)}


__all__ = ["NUM_EXAMPLES", "KindTrainer", "Trainer", "checked_fit", "checked_metrics"]
