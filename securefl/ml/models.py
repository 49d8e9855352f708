"""Model adapters: scikit-learn estimators seen as one flat parameter vector.

An adapter gives every role the same view of a model: ``initial_parameters()``
(identical everywhere for one seed), ``fit_local(params, X, y)`` (a party's
local training, starting from the global model, returning its new parameters)
and ``evaluate(params, X, y)`` (accuracy, or R^2 for regression).

What local training hands on is checked here, at the seam between a party's
training and the protocol (:func:`checked_update`, :func:`checked_weight`): a
vector of the wrong length, with NaN or infinite values, or a weight that is not
positive raises :class:`~securefl.errors.PartyError` naming the fix, before the
scheme sees it.  Each kind implements ``_fit`` (and ``_weight`` if its fusion
weight is not its row count); ``fit_local`` and ``local_weight`` add the checks.

Local training uses the estimators' ``partial_fit`` so each round continues from
the global model for ``local_epochs`` passes.  The first call also builds the
estimator's internal state (the global parameters then overwrite whatever that
call produced).  Evaluation is a forward pass written here, so it needs no
fitted estimator.  Seeds here drive experiment design (initial weights,
shuffling), never secrets.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from importlib.metadata import entry_points

import numpy as np
from sklearn.linear_model import SGDClassifier, SGDRegressor
from sklearn.metrics import r2_score
from sklearn.naive_bayes import GaussianNB
from sklearn.neural_network import MLPClassifier

from securefl.config import MODEL_ENTRY_POINTS, MODEL_KINDS, ModelConfig
from securefl.core.fusion import mean_from_sum
from securefl.errors import DataError, PartyError, UsageError


@dataclass(frozen=True)
class Sensitivity:
    """How far one record can move a block of ``length`` consecutive values of a party's vector.

    ``l1`` / ``l2`` bound the change of the block when one record of the party is
    replaced by another; ``budget_share`` is the fraction of each round's epsilon
    (and delta) that the block's noise spends (the shares of a vector sum to 1).
    """

    length: int
    l1: float
    l2: float
    budget_share: float


BUILTIN_DIVERGED = "lower model.learning_rate, or standardize the features (data.standardize = true)"
"""What to change when a built-in model's local training returns NaN (its config keys apply)."""
OWN_DIVERGED = ("lower your trainer's learning rate or scale its inputs (model.learning_rate and data.standardize "
                "configure only the built-in models)")
"""What to change when a user's own trainer returns NaN: the built-in model's config keys do not reach it."""


def checked_update(values: object, length: int, *, diverged: str = BUILTIN_DIVERGED) -> np.ndarray:
    """``values`` as the finite float64 vector of ``length`` parameters a party may send, or :class:`PartyError`.

    ``diverged``: the fix a NaN or infinite value's message names (the trainer's own knobs).
    """
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PartyError(f"local training returned something that is not a numeric vector ({exc}); return the "
                         "model's parameters as one flat array") from None
    if arr.ndim != 1 or arr.size != length:
        raise PartyError(f"local training returned shape {arr.shape}, the model has {length} parameters; return "
                         "the whole flat parameter vector, in the order initial_parameters() gives")
    bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise PartyError(f"local training returned {bad} NaN or infinite value(s) of {length}; training diverged: "
                         f"{diverged}")
    return arr


def checked_weight(weight: object) -> float:
    """A party's fusion weight as a positive finite float, or :class:`PartyError`."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float, np.integer, np.floating)) \
            or not (math.isfinite(weight) and weight > 0):
        raise PartyError(f"a party's fusion weight must be a positive finite number (FedAvg: its count of training "
                         f"rows), got {weight!r}; a party without training rows cannot take part")
    return float(weight)


def clipped_update_sensitivity(length: int, clip_norm: float) -> tuple[Sensitivity, ...]:
    """A vector clipped to L2 norm ``clip_norm``: any change moves it by at most ``2 * clip_norm``."""
    return (Sensitivity(length, 2.0 * clip_norm * math.sqrt(length), 2.0 * clip_norm, 1.0),)


class ModelAdapter(ABC):
    """A model as a flat float64 vector (see the module docstring)."""

    metric: str = "accuracy"
    rounds_needed: int | None = None
    """Rounds after which training is complete (``None``: as many as configured)."""
    clips_updates: bool = True
    """Whether differential privacy must clip this model's vectors to ``privacy.clip_norm``
    (``False`` when the adapter bounds its values itself)."""
    rescalable: bool = False
    """Whether the vector may be divided by any public constant (``stat_scale``) without changing
    the model: then values, sensitivities and noise shrink together until they fit a scheme's clip range."""

    def __init__(self, cfg: ModelConfig, n_features: int, classes: np.ndarray | None, seed: int) -> None:
        self.cfg, self.n_features, self.classes, self.seed = cfg, n_features, classes, seed
        self._estimator = None

    @property
    @abstractmethod
    def num_parameters(self) -> int:
        """The vector's length: the same for every role and every round of one configuration."""

    @abstractmethod
    def initial_parameters(self) -> np.ndarray:
        """The starting global vector, of :attr:`num_parameters` values: identical at every role for one seed."""

    @abstractmethod
    def _fit(self, params: np.ndarray, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        """This kind's local training from ``params`` on a party's rows (see :meth:`fit_local`)."""

    def fit_local(self, params: np.ndarray, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        """A party's new parameters after local training from ``params``; :class:`PartyError` if unusable."""
        return checked_update(self._fit(params, X, y), self.num_parameters)

    @abstractmethod
    def predict(self, params: np.ndarray, X: np.ndarray) -> np.ndarray:
        """The model ``params`` holds applied to each row of ``X``: class labels, or values for regression."""

    def _labels(self, index: np.ndarray) -> np.ndarray:
        """A classifier's class labels at ``index`` (positions in ``classes``)."""
        labels: np.ndarray = _classification(self.cfg, self.classes)[index]
        return labels

    def local_weight(self, rows: int) -> float:
        """A party's (public) weight in fusion (checked: :class:`PartyError` unless positive and finite)."""
        return checked_weight(self._weight(rows))

    def _weight(self, rows: int) -> float:
        """This kind's fusion weight for a party with ``rows`` training rows: the row count (FedAvg)."""
        return float(rows)

    def fuse(self, weighted_sum: np.ndarray, total_weight: float) -> np.ndarray:
        """The next global vector from the revealed weighted sum: the weighted mean (FedAvg)."""
        return mean_from_sum(weighted_sum, total_weight)

    def sensitivity(self, clip_norm: float) -> tuple[Sensitivity, ...]:
        """How one record moves this model's vector, once the vector is clipped to ``clip_norm``.

        Clipping bounds any change of the party's data, so any two clipped vectors
        are at most ``2 * clip_norm`` apart (and ``sqrt(P)`` times that in L1).
        """
        return clipped_update_sensitivity(self.num_parameters, clip_norm)

    @property
    def value_range(self) -> float:
        """Largest absolute value of a vector handed to protection before noise (``inf`` if unbounded)."""
        return math.inf

    def set_release_noise(self, stds: tuple[float, ...]) -> None:  # noqa: B027 - an optional hook
        """Told (publicly) the standard deviation of the noise the fused vector carries, per
        :meth:`sensitivity` block, so that post-processing can account for it.  Default: ignored."""

    def evaluate(self, params: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
        """The model ``params`` holds measured on ``(X, y)``: R^2 when :attr:`metric` is ``r2``, else accuracy.

        A forward pass (:meth:`predict`): nothing is trained, and ``params`` is not checked here.
        """
        pred = self.predict(params, X)
        if self.metric == "r2":
            return float(r2_score(y, pred))
        return float(np.mean(pred == y))


class LinearAdapter(ModelAdapter):
    """SGD-trained linear models: ``logistic``, ``linear_svm``, ``linear_regression``."""

    _LOSS = {"logistic": "log_loss", "linear_svm": "hinge", "linear_regression": "squared_error"}

    def __init__(self, cfg: ModelConfig, n_features: int, classes: np.ndarray | None, seed: int, *,
                 row_norm: float = 0.0) -> None:
        super().__init__(cfg, n_features, classes, seed)
        self.regression = cfg.kind == "linear_regression"
        self.metric = "r2" if self.regression else "accuracy"
        if self.regression:
            self.k = 1
        else:
            classes = _classification(cfg, classes)
            self.k = 1 if len(classes) == 2 else len(classes)
        self.row_norm = float(row_norm)
        """> 0 (``logistic`` under DP): rows are clipped to this L2 norm and :meth:`sensitivity` is local SGD's own."""
        self.clips_updates = self.row_norm == 0

    def sensitivity(self, clip_norm: float) -> tuple[Sensitivity, ...]:
        """With ``row_norm``: the bound of Wu et al. (SIGMOD 2017, "bolt-on" DP-SGD) for ``local_epochs``
        passes of constant-step SGD on a convex, ``L``-Lipschitz, ``beta``-smooth loss with step
        ``lr <= 2 / (alpha + beta)``: replacing one record moves the result by at most ``2 * epochs * L * lr``.
        Log loss on rows ``(x, 1)`` with ``|x| <= row_norm`` has ``L = sqrt(row_norm**2 + 1)`` and ``beta =
        L**2 / 4`` (config.check_consistency enforces the step limit); the L2 decay only contracts; each of
        the ``k`` one-vs-rest models moves that far, so ``sqrt(k)`` times it in all.  Without: clipping."""
        if self.row_norm == 0:
            return super().sensitivity(clip_norm)
        lipschitz = math.sqrt(self.row_norm**2 + 1)
        l2 = math.sqrt(self.k) * 2 * self.cfg.local_epochs * lipschitz * self.cfg.learning_rate
        p = self.num_parameters
        return (Sensitivity(p, l2 * math.sqrt(p), l2, 1.0),)

    def _clip_rows(self, X: np.ndarray) -> np.ndarray:
        if self.row_norm == 0:
            return X
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        clipped: np.ndarray = X * np.minimum(1.0, self.row_norm / np.maximum(norms, 1e-300))
        return clipped

    @property
    def num_parameters(self) -> int:
        """``k * (d + 1)``: ``d`` weights and an intercept per output (``k = 1`` for two classes or regression)."""
        return self.k * (self.n_features + 1)

    def initial_parameters(self) -> np.ndarray:
        """All zeros (no seed needed)."""
        return np.zeros(self.num_parameters)

    def _split(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = self.n_features
        return params[: self.k * d].reshape(self.k, d), params[self.k * d :]

    def _new_estimator(self) -> SGDClassifier | SGDRegressor:
        common = dict(loss=self._LOSS[self.cfg.kind], alpha=self.cfg.alpha, learning_rate="constant",
                      eta0=self.cfg.learning_rate, random_state=self.seed)
        return SGDRegressor(**common) if self.regression else SGDClassifier(**common)

    def _fit(self, params: np.ndarray, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        est = self._estimator
        extra = {} if self.regression else {"classes": self.classes}
        if est is None:
            est = self._estimator = self._new_estimator()
            est.partial_fit(X[:1], y[:1], **extra)
        coef, intercept = self._split(np.asarray(params, dtype=np.float64))
        est.coef_ = coef.ravel().copy() if self.regression else coef.copy()
        est.intercept_ = intercept.copy()
        X = self._clip_rows(X)
        for _ in range(self.cfg.local_epochs):
            est.partial_fit(X, y, **extra)
        return np.concatenate([np.ravel(est.coef_), np.ravel(est.intercept_)]).astype(np.float64)

    def predict(self, params: np.ndarray, X: np.ndarray) -> np.ndarray:
        """The linear scores' class (sign for one output, argmax for one-vs-rest), or the score for regression."""
        coef, intercept = self._split(np.asarray(params, dtype=np.float64))
        scores: np.ndarray = X @ coef.T + intercept
        if self.regression:
            return scores[:, 0]
        if self.k == 1:
            return self._labels((scores[:, 0] > 0).astype(int))
        return self._labels(np.argmax(scores, axis=1))


class MLPAdapter(ModelAdapter):
    """``mlp``: scikit-learn's MLPClassifier (ReLU hidden layers, Adam)."""

    def __init__(self, cfg: ModelConfig, n_features: int, classes: np.ndarray | None, seed: int) -> None:
        classes = _classification(cfg, classes)
        super().__init__(cfg, n_features, classes, seed)
        n_out = 1 if len(classes) == 2 else len(classes)
        self.layers = [n_features, *cfg.hidden_layers, n_out]

    @property
    def num_parameters(self) -> int:
        """Every layer's weights and biases, in layer order."""
        return sum(a * b + b for a, b in zip(self.layers[:-1], self.layers[1:], strict=True))

    def initial_parameters(self) -> np.ndarray:
        """Glorot-uniform weights and biases (as scikit-learn initialises) drawn from ``seed``: the same everywhere."""
        # Glorot-uniform, as scikit-learn initialises, from a seed every role shares.
        rng = np.random.default_rng(self.seed)
        parts = []
        for i, (fan_in, fan_out) in enumerate(zip(self.layers[:-1], self.layers[1:], strict=True)):
            factor = 2.0 if i == len(self.layers) - 2 and fan_out == 1 else 6.0
            bound = np.sqrt(factor / (fan_in + fan_out))
            parts += [rng.uniform(-bound, bound, fan_in * fan_out), rng.uniform(-bound, bound, fan_out)]
        return np.concatenate(parts)

    def _unpack(self, params: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        coefs, intercepts, pos = [], [], 0
        for a, b in zip(self.layers[:-1], self.layers[1:], strict=True):
            coefs.append(params[pos : pos + a * b].reshape(a, b))
            pos += a * b
            intercepts.append(params[pos : pos + b])
            pos += b
        return coefs, intercepts

    def _fit(self, params: np.ndarray, X: np.ndarray, y: np.ndarray) -> np.ndarray:
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
        return np.concatenate([p.ravel() for pair in zip(est.coefs_, est.intercepts_, strict=True) for p in pair])

    def predict(self, params: np.ndarray, X: np.ndarray) -> np.ndarray:
        """The class of the network's output: ReLU hidden layers, then the sign (two classes) or the argmax."""
        coefs, intercepts = self._unpack(np.asarray(params, dtype=np.float64))
        h = X
        for c, b in zip(coefs[:-1], intercepts[:-1], strict=True):
            h = np.maximum(h @ c + b, 0.0)
        out = h @ coefs[-1] + intercepts[-1]
        if out.shape[1] == 1:
            return self._labels((out[:, 0] > 0).astype(int))
        return self._labels(np.argmax(out, axis=1))


class NaiveBayesAdapter(ModelAdapter):
    """``naive_bayes``: Gaussian naive Bayes from summed sufficient statistics, in one round.

    A party's vector is, for ``k`` classes and ``d`` features, ``[counts (k) | sums
    (k*d) | sums of squares (k*d)]`` of its rows, features first clipped to the
    public bounds and mapped to ``z = (x - mid) / half`` in ``[-1, 1]``, and every
    statistic divided by the public ``stat_scale`` (at least the largest party's row
    count, so every value lies in ``[-1, 1]``; larger when the noise must fit a
    scheme's clip range too: see :attr:`ModelAdapter.rescalable`).
    Fusion is the plain **sum** of the parties' statistics (every weight is 1);
    :meth:`estimator` turns a (possibly noisy) sum into a scikit-learn
    :class:`~sklearn.naive_bayes.GaussianNB` (post-processing: clamps counts to at
    least 1 and variances to ``[VAR_FLOOR, 1]`` in ``z`` units).
    """

    rounds_needed = 1
    clips_updates = False
    rescalable = True
    VAR_FLOOR = 1e-3
    NOISE_FLOOR = 1.0
    """Variances are raised to at least this many noise deviations of the class's variance estimate."""
    _sumsq_noise = 0.0

    def set_release_noise(self, stds: tuple[float, ...]) -> None:
        """Keeps the noise deviation of the sums of squares (the third block): :meth:`estimator`'s variance floor."""
        self._sumsq_noise = float(stds[2])

    def __init__(self, cfg: ModelConfig, n_features: int, classes: np.ndarray | None, seed: int, *,
                 lower: np.ndarray, upper: np.ndarray, stat_scale: float) -> None:
        classes = _classification(cfg, classes)
        super().__init__(cfg, n_features, classes, seed)
        self.k = len(classes)
        self.lower = np.broadcast_to(np.asarray(lower, dtype=np.float64), (n_features,)).copy()
        self.upper = np.broadcast_to(np.asarray(upper, dtype=np.float64), (n_features,)).copy()
        self.mid, self.half = (self.upper + self.lower) / 2, (self.upper - self.lower) / 2
        self.stat_scale = max(float(stat_scale), 1.0)

    @property
    def num_parameters(self) -> int:
        """``k * (1 + 2d)``: per class, a count, ``d`` sums and ``d`` sums of squares."""
        return self.k * (1 + 2 * self.n_features)

    @property
    def value_range(self) -> float:
        """1: every statistic is divided by ``stat_scale``, so each lies in ``[-1, 1]``."""
        return 1.0

    def initial_parameters(self) -> np.ndarray:
        """All zeros: naive Bayes does not train from a global model (one round sums the statistics)."""
        return np.zeros(self.num_parameters)

    def _weight(self, rows: int) -> float:
        return 1.0

    def fuse(self, weighted_sum: np.ndarray, total_weight: float) -> np.ndarray:
        """The summed statistics as they are (every weight is 1): a sum, not a mean; ``total_weight`` is unused."""
        return np.asarray(weighted_sum, dtype=np.float64)

    def sensitivity(self, clip_norm: float) -> tuple[Sensitivity, ...]:
        """Replacing one record moves one unit of count between two classes (L1 2, L2 sqrt 2); its
        ``z`` (each in [-1, 1]) changes the sums by at most 2 per feature; its ``z**2`` (in [0, 1]) the
        sums of squares by at most 1 per feature and class touched.  All divided by ``stat_scale``."""
        k, d, n = self.k, self.n_features, float(self.stat_scale)
        return (
            Sensitivity(k, 2.0 / n, math.sqrt(2.0) / n, 1 / 3),
            Sensitivity(k * d, 2.0 * d / n, 2.0 * math.sqrt(d) / n, 1 / 3),
            Sensitivity(k * d, 2.0 * d / n, math.sqrt(2.0 * d) / n, 1 / 3),
        )

    def _fit(self, params: np.ndarray, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        z = (np.clip(X, self.lower, self.upper) - self.mid) / self.half
        onehot = (np.asarray(y)[:, None] == _classification(self.cfg, self.classes)[None, :]).astype(np.float64)
        stats = np.concatenate([onehot.sum(axis=0), (onehot.T @ z).ravel(), (onehot.T @ (z * z)).ravel()])
        return stats / self.stat_scale

    def estimator(self, params: np.ndarray) -> GaussianNB:
        """A fitted-looking scikit-learn GaussianNB whose theta_, var_ and class_prior_ come from ``params``."""
        k, d = self.k, self.n_features
        stats = np.asarray(params, dtype=np.float64) * self.stat_scale
        counts = np.maximum(stats[:k], 1.0)
        mean = np.clip(stats[k : k + k * d].reshape(k, d) / counts[:, None], -1.0, 1.0)
        # a variance the noise cannot tell from zero is raised to the noise's own level (post-processing):
        # a near-zero variance would make one noisy feature dominate every prediction
        floor = np.maximum(self.VAR_FLOOR, self.NOISE_FLOOR * self._sumsq_noise * self.stat_scale / counts)[:, None]
        var = np.clip(stats[k + k * d :].reshape(k, d) / counts[:, None] - mean**2, floor, 1.0)
        est = GaussianNB()
        est.classes_ = np.asarray(self.classes)
        est.class_count_ = counts
        est.class_prior_ = counts / counts.sum()
        est.theta_ = self.mid + self.half * mean
        est.var_ = self.half**2 * var
        est.epsilon_ = 0.0
        est.n_features_in_ = d
        return est

    def predict(self, params: np.ndarray, X: np.ndarray) -> np.ndarray:
        """The class :meth:`estimator`'s GaussianNB predicts per row of ``X`` (counts and variances clamped first)."""
        predicted: np.ndarray = self.estimator(params).predict(X)
        return predicted


def make_adapter(cfg: ModelConfig, n_features: int, classes: np.ndarray | None, seed: int, *,
                 bounds: tuple[np.ndarray, np.ndarray] | None = None, stat_scale: float = 1.0,
                 row_norm: float = 0.0) -> ModelAdapter:
    """The adapter for ``cfg.kind``; ``naive_bayes`` needs the public feature ``bounds`` and ``stat_scale``;
    ``decision_tree`` needs ``stat_scale`` and takes its bin edges from ``model.feature_bounds`` unless
    ``bounds`` are given; ``row_norm`` (linear models under DP) clips training rows, see
    :meth:`LinearAdapter.sensitivity`."""
    if cfg.kind == "decision_tree":
        from securefl.ml.tree import DecisionTreeAdapter  # tree.py builds on this module

        return DecisionTreeAdapter(cfg, n_features, classes, seed, bounds=bounds, stat_scale=stat_scale)
    if cfg.kind == "naive_bayes":
        if bounds is None:
            raise UsageError("make_adapter: model.kind = 'naive_bayes' needs bounds=(lower, upper), the public "
                             "feature bounds (securefl.privacy.feature_bounds gives them from [privacy])")
        return NaiveBayesAdapter(cfg, n_features, classes, seed, lower=bounds[0], upper=bounds[1],
                                 stat_scale=stat_scale)
    if cfg.kind == "mlp":
        return MLPAdapter(cfg, n_features, classes, seed)
    if cfg.kind not in MODEL_KINDS:
        return _plugin_kind(cfg.kind)(cfg, n_features, classes, seed)
    return LinearAdapter(cfg, n_features, classes, seed, row_norm=row_norm)


def _plugin_kind(name: str) -> type[ModelAdapter]:
    """The :class:`ModelAdapter` subclass a third party registered as ``name`` in ``securefl.models``."""
    found = [ep for ep in entry_points(group=MODEL_ENTRY_POINTS) if ep.name == name]
    if not found:
        raise UsageError(f"model.kind {name!r} is not built in and no package registers it in the "
                         f"{MODEL_ENTRY_POINTS!r} entry-point group; install the package that provides it")
    cls = found[0].load()
    if not (isinstance(cls, type) and issubclass(cls, ModelAdapter)):
        raise UsageError(f"the {MODEL_ENTRY_POINTS!r} entry point {name!r} is {cls!r}, not a ModelAdapter subclass")
    return cls


def _classification(cfg: ModelConfig, classes: np.ndarray | None) -> np.ndarray:
    """The class labels a classifier needs, or :class:`DataError` when the data set's labels are continuous."""
    if classes is None:
        raise DataError(f"model.kind = {cfg.kind!r} needs a classification data set, and the labels of data.dataset "
                        "are continuous; use model.kind = 'linear_regression' or a data set with class labels")
    return classes
