"""``decision_tree``: an ID3 tree (entropy criterion) grown level by level from securely summed class counts.

The aggregator of IBM Federated Learning grows the tree by asking the parties, for
every candidate split, how many of their rows of each class it sends each way.
Here the question is one engine round per tree level, and the parties' answers
are summed by whichever scheme ``[crypto]`` selects, so the aggregator (or, under
a sealing scheme, the parties themselves) sees only the **summed** counts.

Candidate thresholds are **public**: every feature's range ``model.feature_bounds``
(``[lower, upper]``, default ``[-3, 3]`` for standardized data) is cut into
``model.bins`` equal-width bins, and a split sends a row left when its bin is at
most the split's bin ``t`` (values beyond the bounds fall in the end bins).  The
edges never come from any party's rows.  (A caller may pass per-feature
``bounds=(lower, upper)`` to :func:`~securefl.ml.models.make_adapter` instead, e.g.
:func:`securefl.privacy.feature_bounds` with its warned opt-in ``bounds_from_data``.)

The vector (every value in ``[-1, 1]``)::

    [ tree (2**(max_depth+1) - 1 nodes x D bits) | counts (2**(max_depth-1) x d x bins x k) ]

* **tree**: the tree grown so far, heap-ordered (node ``i`` has children ``2i+1``,
  ``2i+2``).  Each node is one code: absent, *open* (at the level being queried,
  with the majority class its parent's counts gave it, which it predicts if no
  more rounds are run), *leaf* (with its class) or *split* (feature, bin
  ``t``), written as its ``D`` bits, each as ``-1`` or ``+1``.  Every party echoes
  the global tree unchanged, so the sum holds it ``n`` times and :meth:`fuse` reads
  it back as the sign of the sum divided by the total weight ``n`` (weights are 1):
  any scheme error, flooding or noise below 1 per value is removed (a value within
  0.5 of 0 is refused as undecodable).
* **counts**: for every open node of the current level (slot = its position in
  the level), every feature and bin, the number of the party's rows of each class
  that reach the node and fall in that bin, divided by the public ``stat_scale``
  (at least the largest party's row count, so every value is at most 1; larger when
  differential-privacy noise must fit a scheme's clip range, see
  :attr:`~securefl.ml.models.ModelAdapter.rescalable`).

Rounds.  Round ``r`` queries the open nodes of depth ``r``; :meth:`fuse` turns the
summed histogram of each into the entropy-optimal split among all features and
bin edges whose children each keep at least ``min_samples_leaf`` rows, or a leaf
with its majority class when the node is pure, holds fewer than ``2 *
min_samples_leaf`` rows, or has no valid split (scikit-learn's stopping rules).
A split's children get their class counts from the same histogram, so children at
``max_depth``, pure ones and ones too small to split become leaves at once: a
tree needs at most ``max_depth`` query rounds (:attr:`rounds_needed`), and fewer
when no node is open any more, after which further rounds change nothing
(:meth:`query_rounds` counts the rounds that queried something).  With fewer
``federation.rounds`` the tree stops at that depth and its open nodes predict
their class.

Differential privacy (:meth:`sensitivity`).  Neighbouring data sets differ in one
record of one party, replaced by another.  In one query a record reaches at most
one open node and adds 1 to exactly one count per feature there (its bin, its
class); its replacement does the same somewhere (another node, bin or class, or
nowhere).  The counts block therefore moves by at most ``2 d`` in L1 and
``sqrt(2 d)`` in L2 (per feature, -1 in one cell and +1 in another), divided by
``stat_scale``.  The tree block is the public global model echoed back: it does not
depend on the data (sensitivity 0).  A noise plan needs a positive noise scale
for every value, so it declares a negligible sensitivity (``1e-12``) and a
``1/1000`` share of the round's epsilon and delta, giving noise far below the
decoding margin.  :meth:`fuse` post-processes noisy counts: rounds them to
integers and clamps their sums (never single cells: that would bias every sum
upwards) at 0; the node's class counts are averaged over the ``d``
feature histograms (each one holds them), which divides their noise by
``sqrt(d)``, and a split's child takes the side of fewer bins from the histogram
and the other side as the node's counts minus it.

The privacy budget is spent for every round the engine runs, also for rounds after
the tree is complete (they query nothing, but the engine runs ``rounds_needed``
rounds and the accountant charges each).

Rounding the counts to integers is also what keeps the tree's decisions free of a
scheme's error, as long as that error times ``stat_scale`` stays below half a
count (``paillier`` at 16 bits and clip 8: about ``1.2e-4`` per value and party,
so up to roughly 800 rows per party with 5 parties; raise ``crypto.paillier.bits``
beyond): under ``ckks`` the decisions depend on the counts, not on the error that
Li-Micciancio key recovery needs.  The model a party *publishes*
(for evaluation and release) is fused from the scheme's flooded sum, so under
``ckks`` the newest level of the published tree is chosen from counts carrying the
flooding noise (about ``flooding sigma * stat_scale`` counts per cell) and may
differ from the tree the parties go on growing; the levels above it are the
echoed, exact ones.

Bins.  ``bins = 32`` is the default: over 40 splits of the 5-party examples
(``max_depth`` 4, ``min_samples_leaf`` 5), the mean held-out accuracy minus that
of scikit-learn's entropy tree on the pooled rows was +0.010 / +0.003 / 0.000
(breast_cancer) and -0.015 / -0.011 / +0.004 (wine) for 16 / 32 / 64 bins; 64
doubles every reply.

No randomness is used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from securefl.config import ModelConfig
from securefl.core.fusion import mean_from_sum
from securefl.errors import ConfigError, DataError, FusionError
from securefl.ml.models import ModelAdapter, Sensitivity, _classification

ABSENT, OPEN, LEAF, SPLIT = 0, 1, 2, 3
"""Node kinds."""
DECODE_MARGIN = 0.5
"""A fused tree value (a bit as -1 or +1) closer than this to 0 cannot be read: :class:`FusionError`."""
ECHO_SENSITIVITY = 1e-12
"""Declared sensitivity of the echoed tree (its true sensitivity is 0; a noise plan needs a positive scale)."""
ECHO_SHARE = 1e-3
"""Share of each round's epsilon and delta given to the echoed tree's negligible noise."""
MAX_VALUES = 1 << 24
"""Largest vector accepted (16M values, 128 MiB per party and round in the clear)."""


@dataclass
class Tree:
    """A (partly grown) tree in heap order: node ``i`` has children ``2i+1`` and ``2i+2``."""

    kind: np.ndarray
    """ABSENT, OPEN, LEAF or SPLIT per node."""
    label: np.ndarray
    """Class index an OPEN or LEAF node predicts."""
    feature: np.ndarray
    """Feature a SPLIT node tests."""
    threshold: np.ndarray
    """Bin ``t`` of a SPLIT node: rows whose bin is at most ``t`` go left."""

    @classmethod
    def empty(cls, n_nodes: int) -> Tree:
        """A tree of ``n_nodes`` heap slots, every one ABSENT (kind 0), with zero labels, features and thresholds."""
        zeros = np.zeros(n_nodes, dtype=np.int64)
        return cls(zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy())

    def open_level(self) -> int | None:
        """Depth of the open nodes (all open nodes share one depth), or ``None`` when the tree is complete."""
        nodes = np.flatnonzero(self.kind == OPEN)
        return int(math.floor(math.log2(nodes[0] + 1))) if nodes.size else None

    def depth(self) -> int:
        """Depth of the deepest node present (0: the root only)."""
        present = np.flatnonzero(self.kind != ABSENT)
        return int(math.floor(math.log2(present[-1] + 1))) if present.size else 0


def entropy(counts: np.ndarray) -> np.ndarray:
    """Shannon entropy (bits) of the class counts along the last axis (0 for an empty count)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=-1, keepdims=True)
    p = np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)
    logs = np.log2(p, out=np.zeros_like(p), where=p > 0)
    result: np.ndarray = -(p * logs).sum(axis=-1)
    return result


def best_split(hist: np.ndarray, min_samples_leaf: int,
               total: np.ndarray | None = None) -> tuple[int, int, float] | None:
    """The entropy-optimal ``(feature, bin t, information gain)`` of one node's ``(d, bins, k)`` histogram.

    Rows in bins ``<= t`` go left; both children must keep at least ``min_samples_leaf``
    rows.  Ties go to the lowest feature, then the lowest bin.  ``None`` if no split is valid.
    ``total`` is the node's ``(k,)`` class counts (default: each feature's own histogram total;
    the two agree unless the counts are noisy).
    """
    totals = hist.sum(axis=1) if total is None else np.broadcast_to(total, (hist.shape[0], hist.shape[2]))
    cumulative = np.cumsum(hist, axis=1)[:, :-1, :]  # (d, bins - 1, k)
    # noisy counts may be negative: clamp the sums, not the cells (clamping cells biases every sum upwards)
    left = np.maximum(cumulative, 0.0)
    right = np.maximum(totals[:, None, :] - cumulative, 0.0)
    n_left, n_right = left.sum(axis=-1), right.sum(axis=-1)
    valid = (n_left >= min_samples_leaf) & (n_right >= min_samples_leaf)
    if not valid.any():
        return None
    n = n_left + n_right
    children = (n_left * entropy(left) + n_right * entropy(right)) / np.where(n > 0, n, 1.0)
    gain = np.where(valid, entropy(totals)[:, None] - children, -np.inf)
    f, t = np.unravel_index(int(np.argmax(gain)), gain.shape)
    return int(f), int(t), float(gain[f, t])


class DecisionTreeAdapter(ModelAdapter):
    """``decision_tree``: see the module docstring."""

    clips_updates = False
    rescalable = True

    def __init__(self, cfg: ModelConfig, n_features: int, classes: np.ndarray | None, seed: int, *,
                 bounds: tuple[np.ndarray, np.ndarray] | None = None, stat_scale: float = 1.0) -> None:
        classes = _classification(cfg, classes)
        super().__init__(cfg, n_features, classes, seed)
        self.k, self.d, self.bins = len(classes), n_features, cfg.bins
        self.max_depth, self.min_samples_leaf = cfg.max_depth, cfg.min_samples_leaf
        self.rounds_needed = cfg.max_depth
        lower, upper = bounds if bounds is not None else cfg.feature_bounds
        self.lower = np.broadcast_to(np.asarray(lower, dtype=np.float64), (n_features,)).copy()
        self.upper = np.broadcast_to(np.asarray(upper, dtype=np.float64), (n_features,)).copy()
        if not (np.all(np.isfinite(self.lower)) and np.all(np.isfinite(self.upper))
                and np.all(self.upper > self.lower)):
            raise ConfigError("model.feature_bounds: every feature needs finite bounds with lower < upper")
        self.stat_scale = max(float(stat_scale), 1.0)
        self.n_nodes = (1 << (self.max_depth + 1)) - 1
        self.max_open = 1 << (self.max_depth - 1)
        """Open nodes of the deepest queried level (depth ``max_depth - 1``): the counts block's slots."""
        self._split_base = 1 + 2 * self.k
        self.code_bits = (self._split_base + self.d * (self.bins - 1) - 1).bit_length()
        self.tree_length = self.n_nodes * self.code_bits
        self.count_length = self.max_open * self.d * self.bins * self.k
        if self.num_parameters > MAX_VALUES:
            raise ConfigError(
                f"model.max_depth = {self.max_depth} with model.bins = {self.bins}, {self.d} features and {self.k} "
                f"classes needs {self.num_parameters} values per reply (more than {MAX_VALUES}); lower "
                "model.max_depth or model.bins")

    # --- the vector ---------------------------------------------------------------------
    @property
    def num_parameters(self) -> int:
        """The vector's length: the tree block (``tree_length``) then the counts block (``count_length``)."""
        return self.tree_length + self.count_length

    @property
    def value_range(self) -> float:
        """1: every value of the vector is in ``[-1, 1]`` (tree bits as -1 / +1, counts divided by ``stat_scale``)."""
        return 1.0

    def _weight(self, rows: int) -> float:
        return 1.0

    def initial_parameters(self) -> np.ndarray:
        """The vector of a tree that is only its root, OPEN (predicting the first class), with all counts zero."""
        tree = Tree.empty(self.n_nodes)
        tree.kind[0] = OPEN
        return self.encode(tree)

    def encode(self, tree: Tree, counts: np.ndarray | None = None) -> np.ndarray:
        """The vector of ``tree`` (and of a reply's ``counts``, already divided by ``stat_scale``; else zeros)."""
        codes = np.zeros(self.n_nodes, dtype=np.int64)
        codes[tree.kind == OPEN] = 1 + tree.label[tree.kind == OPEN]
        codes[tree.kind == LEAF] = 1 + self.k + tree.label[tree.kind == LEAF]
        split = tree.kind == SPLIT
        codes[split] = self._split_base + tree.feature[split] * (self.bins - 1) + tree.threshold[split]
        bits = (codes[:, None] >> np.arange(self.code_bits)[None, :]) & 1
        out = np.zeros(self.num_parameters)
        out[: self.tree_length] = 2.0 * bits.ravel() - 1.0
        if counts is not None:
            out[self.tree_length :] = counts
        return out

    def decode(self, params: np.ndarray) -> Tree:
        """The tree a vector holds (its first ``tree_length`` values, bits as -1 / +1); :class:`FusionError`
        if a value is too close to 0 to read."""
        values = np.asarray(params[: self.tree_length], dtype=np.float64)
        unclear = int(np.count_nonzero(~(np.abs(values) >= DECODE_MARGIN)))
        if unclear:
            raise FusionError(
                f"{unclear} of the {self.tree_length} tree values in the fused vector are within {DECODE_MARGIN} of "
                "0 and cannot be read: the scheme's error or noise is too large for them, or the parties did not "
                "all echo the same global tree (every party must run the same [model] and [data] configuration)")
        bits = (values > 0).astype(np.int64).reshape(self.n_nodes, self.code_bits)
        codes = (bits << np.arange(self.code_bits)[None, :]).sum(axis=1)
        tree = Tree.empty(self.n_nodes)
        k, base = self.k, self._split_base
        is_open, is_leaf, is_split = (codes >= 1) & (codes <= k), (codes > k) & (codes < base), codes >= base
        if codes.max(initial=0) >= base + self.d * (self.bins - 1):
            raise FusionError("the tree in the fused vector names a feature or bin that does not exist; every "
                              "party must run the same [model] and [data] configuration")
        tree.kind[is_open], tree.label[is_open] = OPEN, codes[is_open] - 1
        tree.kind[is_leaf], tree.label[is_leaf] = LEAF, codes[is_leaf] - 1 - k
        tree.kind[is_split] = SPLIT
        tree.feature[is_split], tree.threshold[is_split] = np.divmod(codes[is_split] - base, self.bins - 1)
        return tree

    def counts(self, params: np.ndarray) -> np.ndarray:
        """A reply's (or a sum's) counts block as ``(slots, d, bins, k)`` counts (times ``stat_scale``)."""
        block = np.asarray(params[self.tree_length :], dtype=np.float64) * self.stat_scale
        return block.reshape(self.max_open, self.d, self.bins, self.k)

    # --- binning and routing ---------------------------------------------------------------
    def bin_of(self, X: np.ndarray) -> np.ndarray:
        """Each value's bin (0 ... bins - 1) between the public bounds; values beyond them go to the end bins."""
        scaled = (np.asarray(X, dtype=np.float64) - self.lower) * (self.bins / (self.upper - self.lower))
        return np.clip(np.floor(scaled), 0, self.bins - 1).astype(np.int64)

    def edges(self) -> np.ndarray:
        """``(d, bins + 1)`` bin edges; a split on bin ``t`` is the threshold ``x < edges[f, t + 1]``."""
        return self.lower[:, None] + (self.upper - self.lower)[:, None] * np.linspace(0, 1, self.bins + 1)[None, :]

    def route(self, tree: Tree, bins: np.ndarray) -> np.ndarray:
        """The node each row (given as its bins) ends at: the first node on its path that is not a split."""
        node = np.zeros(bins.shape[0], dtype=np.int64)
        rows = np.arange(bins.shape[0])
        for _ in range(self.max_depth):
            splitting = tree.kind[node] == SPLIT
            if not splitting.any():
                break
            right = bins[rows, tree.feature[node]] > tree.threshold[node]
            node = np.where(splitting, 2 * node + 1 + right, node)
        return node

    def _class_index(self, y: np.ndarray) -> np.ndarray:
        classes = _classification(self.cfg, self.classes)
        idx = np.clip(np.searchsorted(classes, y), 0, len(classes) - 1)
        if not np.array_equal(classes[idx], y):
            raise DataError("a party's labels include a class the federation does not know; every party must "
                            "load the same data set (its classes are taken from the whole set)")
        return idx

    # --- a party's reply ------------------------------------------------------------------
    def _fit(self, params: np.ndarray, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The global tree echoed, and this party's class counts per open node, feature and bin."""
        tree = self.decode(params)
        level = tree.open_level()
        if level is None:  # complete: nothing left to ask
            return self.encode(tree)
        bins = self.bin_of(X)
        node = self.route(tree, bins)
        first = 2**level - 1
        reached = tree.kind[node] == OPEN
        slot, b, c = node[reached] - first, bins[reached], self._class_index(np.asarray(y))[reached]
        cell = ((slot[:, None] * self.d + np.arange(self.d)[None, :]) * self.bins + b) * self.k + c[:, None]
        counts = np.bincount(cell.ravel(), minlength=self.count_length).astype(np.float64)
        return self.encode(tree, counts / self.stat_scale)

    def sensitivity(self, clip_norm: float) -> tuple[Sensitivity, ...]:
        """The echoed tree: 0 (declared ``ECHO_SENSITIVITY``, ``ECHO_SHARE`` of the budget); the counts:
        L1 ``2 d``, L2 ``sqrt(2 d)``, divided by ``stat_scale`` (see the module docstring)."""
        d, n = self.d, self.stat_scale
        return (
            Sensitivity(self.tree_length, ECHO_SENSITIVITY, ECHO_SENSITIVITY, ECHO_SHARE),
            Sensitivity(self.count_length, 2.0 * d / n, math.sqrt(2.0 * d) / n, 1.0 - ECHO_SHARE),
        )

    # --- the aggregator's step -------------------------------------------------------------
    def fuse(self, weighted_sum: np.ndarray, total_weight: float) -> np.ndarray:
        """The next tree from the summed replies: every open node split (or made a leaf), counts cleared."""
        total = np.asarray(weighted_sum, dtype=np.float64)
        tree = self.decode(mean_from_sum(total[: self.tree_length], total_weight))
        level = tree.open_level()
        if level is not None:
            # post-processing of (possibly noisy) counts: integers (sums are clamped at 0 where they are used)
            self._grow(tree, level, np.rint(self.counts(total)))
        return self.encode(tree)

    def _grow(self, tree: Tree, level: int, counts: np.ndarray) -> None:
        first = 2**level - 1
        for slot in range(2**level):
            node = first + slot
            if tree.kind[node] != OPEN:
                continue
            hist = counts[slot]
            node_counts = np.maximum(hist.sum(axis=1).mean(axis=0), 0.0)  # each feature's histogram holds them
            n_node = float(node_counts.sum())
            label = int(np.argmax(node_counts)) if n_node > 0 else int(tree.label[node])
            split = None
            if n_node >= 2 * self.min_samples_leaf and entropy(node_counts) > 1e-12:
                split = best_split(hist, self.min_samples_leaf, node_counts)
            if split is None:
                tree.kind[node], tree.label[node] = LEAF, label
                continue
            f, t, _ = split
            tree.kind[node], tree.feature[node], tree.threshold[node] = SPLIT, f, t
            # the side summing fewer bins carries less noise; the other is the node's counts minus it
            if t + 1 <= self.bins - t - 1:
                left = hist[f, : t + 1].sum(axis=0)
                right = node_counts - left
            else:
                right = hist[f, t + 1 :].sum(axis=0)
                left = node_counts - right
            left, right = np.maximum(left, 0.0), np.maximum(right, 0.0)
            for child, child_counts in ((2 * node + 1, left), (2 * node + 2, right)):
                n_child = float(child_counts.sum())
                tree.label[child] = int(np.argmax(child_counts)) if n_child > 0 else label
                final = (level + 1 >= self.max_depth or n_child < 2 * self.min_samples_leaf
                         or entropy(child_counts) <= 1e-12)
                tree.kind[child] = LEAF if final else OPEN

    # --- using the tree --------------------------------------------------------------------
    def predict(self, params: np.ndarray, X: np.ndarray) -> np.ndarray:
        """The class label of each row of ``X``: the label of the node it reaches in the tree ``params`` holds.

        An OPEN node predicts its majority class; :class:`FusionError` if ``params`` cannot be decoded.
        """
        tree = self.decode(params)
        node = self.route(tree, self.bin_of(X))
        return self._labels(tree.label[node])

    def query_rounds(self, params: np.ndarray) -> int:
        """Rounds that asked the parties something to grow this tree (the rest, if any, changed nothing)."""
        tree = self.decode(params)
        level = tree.open_level()
        return level if level is not None else max(1, tree.depth())

    def describe(self, params: np.ndarray) -> list[str]:
        """The tree as text, one node a line (``x[f] < threshold`` for splits), depth first."""
        tree, edges, lines = self.decode(params), self.edges(), []
        classes = _classification(self.cfg, self.classes)

        def walk(node: int, depth: int) -> None:
            pad = "  " * depth
            if tree.kind[node] == SPLIT:
                f, t = int(tree.feature[node]), int(tree.threshold[node])
                lines.append(f"{pad}x[{f}] < {edges[f, t + 1]:.4g}")
                walk(2 * node + 1, depth + 1)
                walk(2 * node + 2, depth + 1)
            elif tree.kind[node] != ABSENT:
                state = "leaf" if tree.kind[node] == LEAF else "open"
                lines.append(f"{pad}{state}: class {classes[tree.label[node]].item()!r}")

        walk(0, 0)
        return lines
