"""Model adapters: scikit-learn estimators seen as one flat parameter vector.

An adapter gives every role the same view of a model: ``initial_parameters()``
(identical everywhere for one seed), ``fit_local(params, X, y)`` (a party's
local training, starting from the global model, returning its new parameters)
and ``evaluate(params, X, y)`` (accuracy, or R^2 for regression).

Local training uses the estimators' ``partial_fit`` so each round continues from
the global model for ``local_epochs`` passes.  The first call also builds the
estimator's internal state (the global parameters then overwrite whatever that
call produced).  Evaluation is a forward pass written here, so it needs no
fitted estimator.  Seeds here drive experiment design (initial weights,
shuffling), never secrets.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from sklearn.linear_model import SGDClassifier, SGDRegressor
from sklearn.metrics import r2_score
from sklearn.neural_network import MLPClassifier

from .config import ModelConfig


class ModelAdapter(ABC):
    """A model as a flat float64 vector (see the module docstring)."""

    metric: str = "accuracy"

    def __init__(self, cfg: ModelConfig, n_features: int, classes: np.ndarray | None, seed: int) -> None:
        self.cfg, self.n_features, self.classes, self.seed = cfg, n_features, classes, seed
        self._estimator = None

    @property
    @abstractmethod
    def num_parameters(self) -> int: ...

    @abstractmethod
    def initial_parameters(self) -> np.ndarray: ...

    @abstractmethod
    def fit_local(self, params: np.ndarray, X: np.ndarray, y: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def predict(self, params: np.ndarray, X: np.ndarray) -> np.ndarray: ...

    def evaluate(self, params: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
        pred = self.predict(params, X)
        if self.metric == "r2":
            return float(r2_score(y, pred))
        return float(np.mean(pred == y))


class LinearAdapter(ModelAdapter):
    """SGD-trained linear models: ``logistic``, ``linear_svm``, ``linear_regression``."""

    _LOSS = {"logistic": "log_loss", "linear_svm": "hinge", "linear_regression": "squared_error"}

    def __init__(self, cfg: ModelConfig, n_features: int, classes: np.ndarray | None, seed: int) -> None:
        super().__init__(cfg, n_features, classes, seed)
        self.regression = cfg.kind == "linear_regression"
        self.metric = "r2" if self.regression else "accuracy"
        self.k = 1 if self.regression or len(classes) == 2 else len(classes)  # type: ignore[arg-type]

    @property
    def num_parameters(self) -> int:
        return self.k * (self.n_features + 1)

    def initial_parameters(self) -> np.ndarray:
        return np.zeros(self.num_parameters)

    def _split(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = self.n_features
        return params[: self.k * d].reshape(self.k, d), params[self.k * d :]

    def _new_estimator(self):
        common = dict(loss=self._LOSS[self.cfg.kind], alpha=self.cfg.alpha, learning_rate="constant",
                      eta0=self.cfg.learning_rate, random_state=self.seed)
        return SGDRegressor(**common) if self.regression else SGDClassifier(**common)

    def fit_local(self, params: np.ndarray, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        est = self._estimator
        extra = {} if self.regression else {"classes": self.classes}
        if est is None:
            est = self._estimator = self._new_estimator()
            est.partial_fit(X[:1], y[:1], **extra)
        coef, intercept = self._split(np.asarray(params, dtype=np.float64))
        est.coef_ = coef.ravel().copy() if self.regression else coef.copy()
        est.intercept_ = intercept.copy()
        for _ in range(self.cfg.local_epochs):
            est.partial_fit(X, y, **extra)
        return np.concatenate([np.ravel(est.coef_), np.ravel(est.intercept_)]).astype(np.float64)

    def predict(self, params: np.ndarray, X: np.ndarray) -> np.ndarray:
        coef, intercept = self._split(np.asarray(params, dtype=np.float64))
        scores = X @ coef.T + intercept
        if self.regression:
            return scores[:, 0]
        if self.k == 1:
            return self.classes[(scores[:, 0] > 0).astype(int)]  # type: ignore[index]
        return self.classes[np.argmax(scores, axis=1)]  # type: ignore[index]


class MLPAdapter(ModelAdapter):
    """``mlp``: scikit-learn's MLPClassifier (ReLU hidden layers, Adam)."""

    def __init__(self, cfg: ModelConfig, n_features: int, classes: np.ndarray | None, seed: int) -> None:
        super().__init__(cfg, n_features, classes, seed)
        n_out = 1 if len(classes) == 2 else len(classes)  # type: ignore[arg-type]
        self.layers = [n_features, *cfg.hidden_layers, n_out]

    @property
    def num_parameters(self) -> int:
        return sum(a * b + b for a, b in zip(self.layers[:-1], self.layers[1:]))

    def initial_parameters(self) -> np.ndarray:
        # Glorot-uniform, as scikit-learn initialises, from a seed every role shares.
        rng = np.random.default_rng(self.seed)
        parts = []
        for i, (fan_in, fan_out) in enumerate(zip(self.layers[:-1], self.layers[1:])):
            factor = 2.0 if i == len(self.layers) - 2 and fan_out == 1 else 6.0
            bound = np.sqrt(factor / (fan_in + fan_out))
            parts += [rng.uniform(-bound, bound, fan_in * fan_out), rng.uniform(-bound, bound, fan_out)]
        return np.concatenate(parts)

    def _unpack(self, params: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        coefs, intercepts, pos = [], [], 0
        for a, b in zip(self.layers[:-1], self.layers[1:]):
            coefs.append(params[pos : pos + a * b].reshape(a, b))
            pos += a * b
            intercepts.append(params[pos : pos + b])
            pos += b
        return coefs, intercepts

    def fit_local(self, params: np.ndarray, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        est = self._estimator
        if est is None:
            est = self._estimator = MLPClassifier(
                hidden_layer_sizes=self.cfg.hidden_layers, alpha=self.cfg.alpha,
                learning_rate_init=self.cfg.learning_rate, batch_size=min(self.cfg.batch_size, len(y)),
                random_state=self.seed,
            )
            # one row builds the internal state; a batch of one avoids sklearn's clipping warning
            # (warnings filters are process-global and parties train on threads)
            batch = est.batch_size
            est.set_params(batch_size=1)
            est.partial_fit(X[:1], y[:1], classes=self.classes)
            est.set_params(batch_size=batch)
        coefs, intercepts = self._unpack(np.asarray(params, dtype=np.float64))
        est.coefs_ = [c.copy() for c in coefs]
        est.intercepts_ = [b.copy() for b in intercepts]
        for _ in range(self.cfg.local_epochs):
            est.partial_fit(X, y)
        return np.concatenate([p.ravel() for pair in zip(est.coefs_, est.intercepts_) for p in pair])

    def predict(self, params: np.ndarray, X: np.ndarray) -> np.ndarray:
        coefs, intercepts = self._unpack(np.asarray(params, dtype=np.float64))
        h = X
        for c, b in zip(coefs[:-1], intercepts[:-1]):
            h = np.maximum(h @ c + b, 0.0)
        out = h @ coefs[-1] + intercepts[-1]
        if out.shape[1] == 1:
            return self.classes[(out[:, 0] > 0).astype(int)]  # type: ignore[index]
        return self.classes[np.argmax(out, axis=1)]  # type: ignore[index]


def make_adapter(cfg: ModelConfig, n_features: int, classes: np.ndarray | None, seed: int) -> ModelAdapter:
    """The adapter for ``cfg.kind``."""
    if cfg.kind == "mlp":
        return MLPAdapter(cfg, n_features, classes, seed)
    return LinearAdapter(cfg, n_features, classes, seed)
