"""Data sets and their partition across parties.

Bundled scikit-learn sets (``breast_cancer``, ``digits``, ``iris``, ``wine``), a
``synthetic`` classification set drawn by scikit-learn's ``make_classification``
(as many rows as a federation of thousands of parties needs), or a CSV file
(``csv:PATH``, numeric columns, one named label column).  The held-out
test split is taken first (stratified for classification); the rest is split
across parties either IID or with label skew drawn from a Dirichlet(alpha)
distribution per class (the usual non-IID benchmark of federated learning).

``standardize`` scales features with the mean and deviation of the pooled
training rows.  That is a simulation convenience: in a real deployment the
parties would agree on public scaling constants (or compute them with a secure
sum first); securefl never sends raw rows anywhere.  Shuffling and partitioning
use numpy's generator seeded from the config, because they are experiment
design, not secrets.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn import datasets
from sklearn.model_selection import train_test_split

from securefl.config import SYNTHETIC, DataConfig
from securefl.errors import DataError
from securefl.tools.machine import InsufficientMemoryError, check_memory

_LOADERS = {
    "breast_cancer": datasets.load_breast_cancer,
    "digits": datasets.load_digits,
    "iris": datasets.load_iris,
    "wine": datasets.load_wine,
}


@dataclass(frozen=True)
class Shard:
    """One party's training rows."""

    X: np.ndarray
    y: np.ndarray

    @property
    def n(self) -> int:
        """The number of rows."""
        return int(self.y.shape[0])


@dataclass(frozen=True)
class FederatedData:
    """Training shards per party plus the common held-out test split."""

    name: str
    shards: dict[str, Shard]
    X_test: np.ndarray
    y_test: np.ndarray
    classes: np.ndarray | None
    """Sorted class labels for classification, ``None`` for regression."""

    @property
    def n_features(self) -> int:
        """The number of feature columns."""
        return int(self.X_test.shape[1])


def load_table(dataset: str, label_column: str = "label", classes: Sequence[str] | Sequence[int] | None = None
               ) -> tuple[np.ndarray, np.ndarray, bool]:
    """Features, labels, and whether the task is classification (``classes``: a CSV's declared labels)."""
    if dataset in _LOADERS:
        bunch = _LOADERS[dataset]()
        return bunch.data.astype(np.float64), bunch.target, True
    if not dataset.startswith("csv:"):
        raise DataError(f"unknown data set {dataset!r}; use one of {', '.join(_LOADERS)} or csv:PATH")
    return _read_csv(Path(dataset[4:]), label_column, classes)


def synthetic(cfg: DataConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``cfg.samples`` rows of ``cfg.features`` columns in ``cfg.classes`` classes, the same for the same ``seed``.

    Half of the columns (at least one) are informative, the rest noise; one Gaussian cluster per class and 1 %
    of the labels flipped (``make_classification``'s default), so that a linear model learns it well but not
    perfectly.  Drawn with numpy's generator: experiment design, not a secret.

    Refused before anything is drawn (:class:`~securefl.tools.machine.InsufficientMemoryError`, the check
    ``securefl bench`` makes) when :func:`synthetic_bytes` exceeds the memory available.
    """
    what = f"data.dataset = 'synthetic' at {cfg.samples:,} samples x {cfg.features:,} features"
    fix = "lower data.samples or data.features"
    check_memory(synthetic_bytes(cfg.samples, cfg.features), what, fix)
    informative = max(1, cfg.features // 2)
    try:
        X, y = datasets.make_classification(n_samples=cfg.samples, n_features=cfg.features,
                                            n_informative=informative, n_redundant=0, n_repeated=0,
                                            n_classes=_class_count(cfg), n_clusters_per_class=1, random_state=seed)
    except MemoryError:
        raise InsufficientMemoryError(f"{what} does not fit in the memory available now; {fix}") from None
    return np.asarray(X, dtype=np.float64), y.astype(np.int64)


def _class_count(cfg: DataConfig) -> int:
    return cfg.classes if isinstance(cfg.classes, int) else len(cfg.classes)


TABLE_COPIES = 3
"""float64 copies of the whole table a synthetic load holds at its peak: the drawn rows (and scikit-learn's
shuffled copy of them), then the training and held-out splits beside them, then the standardised splits."""


def synthetic_bytes(samples: int, features: int) -> int:
    """Bytes :func:`load_federated` holds at its peak for a synthetic table: ``TABLE_COPIES`` x rows x features x 8."""
    return TABLE_COPIES * samples * features * 8


def _read_csv(path: Path, label_column: str, classes: Sequence[str] | Sequence[int] | None = None, *,
              own: bool = False) -> tuple[np.ndarray, np.ndarray, bool]:
    """Features, labels and whether they are classes.  With ``classes`` declared, a label is its index in that
    list (a label outside it is refused); otherwise numeric labels are kept and string labels numbered by
    their sorted set in this file, which ``own`` (one site's file of several) refuses."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise DataError(f"cannot read CSV file {str(path)!r}: {exc.strerror}; check data.dataset") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text ({_first_undecodable(path)} cannot be decoded); save the file "
                        "as UTF-8 (e.g. iconv -f LATIN1 -t UTF-8 IN.csv > OUT.csv, or Excel's \"CSV UTF-8\") and "
                        "read it again") from None
    if len(rows) < 3:
        raise DataError(f"{path}: needs a header row and at least two data rows; check that data.dataset names "
                        "the right file")
    header, body = rows[0], rows[1:]
    if label_column not in header:
        raise DataError(f"{path}: no column {label_column!r}; set data.label_column to one of {header}")
    li = header.index(label_column)
    try:
        X = np.array([[float(v) for j, v in enumerate(r) if j != li] for r in body], dtype=np.float64)
    except ValueError as exc:
        raise DataError(f"{path}: feature columns must be numeric ({exc})") from None
    if X.ndim != 2 or X.shape[1] == 0:
        raise DataError(f"{path}: features must form a numeric table with at least one column besides "
                        "data.label_column, the same number of cells on every row")
    _check_finite(path, X, [name for j, name in enumerate(header) if j != li])
    labels = [r[li] for r in body]
    if classes is not None:
        return X, _declared_labels(path, labels, classes), True
    try:
        y = np.array([float(v) for v in labels])
        classification = bool(np.all(y == np.round(y))) and len(np.unique(y)) <= max(20, len(y) // 10)
        if classification:
            y = y.astype(np.int64)
    except ValueError:
        if own:
            _refuse_string_labels(path, sorted(set(labels)))
        classification = True
        _, y = np.unique(np.array(labels), return_inverse=True)
    return X, y, classification


def _declared_labels(path: Path, labels: Sequence[str], classes: Sequence[str] | Sequence[int]) -> np.ndarray:
    """Each label's index in the declared ``classes`` (cells matched as text, or as integers when the declared
    labels are integers); :class:`DataError` naming the file, the line and the list for a label outside it."""
    declared: Sequence[str | int] = classes
    index = {c: i for i, c in enumerate(declared)}
    numeric = all(isinstance(c, int) for c in classes)
    y = np.empty(len(labels), dtype=np.int64)
    for row, cell in enumerate(labels):
        key: str | int | None = cell.strip()
        if numeric:
            try:
                value = float(cell)
                key = int(value) if value.is_integer() else None
            except ValueError:
                key = None
        found = index.get(key) if key is not None else None
        if found is None:
            raise DataError(f"{path}: line {row + 2} has label {cell!r}, which is not one of the declared "
                            f"data.classes = {list(classes)!r}; add it to data.classes (every site's config the "
                            "same), or drop or relabel those rows")
        y[row] = found
    return y


def _first_undecodable(path: Path) -> str:
    """Where ``path`` stops being UTF-8: "byte 0xe9 on line 3" (the text decoder's own error counts chunks)."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        return f"byte {raw[exc.start]:#04x} on line {line}"
    return "a byte"  # the file changed since it was read


def _check_finite(path: Path, X: np.ndarray, columns: Sequence[str]) -> None:
    """Refuse NaN or infinite cells, and columns whose mean or deviation overflows (standardising would make
    NaN features of them), naming the file, the line, the column and the fix."""
    bad = np.argwhere(~np.isfinite(X))
    if len(bad):
        i, j = (int(v) for v in bad[0])
        raise DataError(f"{path}: line {i + 2}, column {columns[j]!r} holds {X[i, j]} ({len(bad)} such cells); "
                        "features must be finite numbers: fill or drop empty, NaN or infinite cells")
    with np.errstate(over="ignore", invalid="ignore"):
        scale = np.isfinite(X.mean(axis=0)) & np.isfinite(X.std(axis=0))
    if not scale.all():
        j = int(np.flatnonzero(~scale)[0])
        i = int(np.argmax(np.abs(X[:, j])))
        raise DataError(f"{path}: column {columns[j]!r} (e.g. {X[i, j]:g} on line {i + 2}) is too large to "
                        "standardise: its mean or deviation overflows float64; rescale the column (e.g. to other "
                        "units or its logarithm) so that its values stay below about 1e150 in magnitude")


def partition(
    y: np.ndarray, party_ids: Sequence[str], *, kind: str, alpha: float, rng: np.random.Generator, classification: bool
) -> dict[str, np.ndarray]:
    """Row indices per party: ``iid`` (shuffled, near-equal sizes) or ``dirichlet`` label skew."""
    n_parties = len(party_ids)
    if len(y) < 2 * n_parties:
        raise DataError(f"{len(y)} training rows cannot be split across {n_parties} parties; use fewer parties")
    if kind == "iid" or not classification:
        parts = np.array_split(rng.permutation(len(y)), n_parties)
    else:
        buckets: list[list[int]] = [[] for _ in range(n_parties)]
        for cls in np.unique(y):
            idx = rng.permutation(np.flatnonzero(y == cls))
            shares = rng.dirichlet(np.full(n_parties, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(int)
            for b, chunk in zip(buckets, np.split(idx, cuts), strict=True):
                b.extend(chunk.tolist())
        # every party needs a few rows to train on at all; top up the smallest from the largest
        for b in buckets:
            while len(b) < 2:
                donor = max(buckets, key=len)
                b.append(donor.pop())
        parts = [rng.permutation(np.array(b, dtype=np.int64)) for b in buckets]
    return {pid: np.sort(p) for pid, p in zip(party_ids, parts, strict=True)}


def _held_out_split(cfg: DataConfig, X: np.ndarray, y: np.ndarray, classification: bool, seed: int,
                    source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training and held-out rows (stratified for classification), standardized by the training rows if asked."""
    try:
        X_tr, X_te, y_tr, y_te = train_test_split(
            X, y, test_size=cfg.test_fraction, random_state=seed, stratify=y if classification else None
        )
    except ValueError as exc:
        raise DataError(f"cannot split {source}: {exc}; adjust data.test_fraction or add rows") from None
    if cfg.standardize:
        mean, std = X_tr.mean(axis=0), X_tr.std(axis=0)
        std[std == 0] = 1.0
        X_tr, X_te = (X_tr - mean) / std, (X_te - mean) / std
    return X_tr, X_te, y_tr, y_te


def load_federated(cfg: DataConfig, party_ids: Sequence[str], seed: int) -> FederatedData:
    """Load, split off the test set, standardize (optionally) and partition across ``party_ids``."""
    if cfg.dataset == SYNTHETIC:
        (X, y), classification = synthetic(cfg, seed), True
    else:
        X, y, classification = load_table(cfg.dataset, cfg.label_column, cfg.class_labels)
    rng = np.random.default_rng(seed)
    X_tr, X_te, y_tr, y_te = _held_out_split(cfg, X, y, classification, seed, cfg.dataset)
    parts = partition(y_tr, party_ids, kind=cfg.partition, alpha=cfg.alpha, rng=rng, classification=classification)
    shards = {pid: Shard(X_tr[idx], y_tr[idx]) for pid, idx in parts.items()}
    classes = _classes(cfg, y) if classification else None
    return FederatedData(cfg.dataset, shards, X_te, y_te, classes)


def held_out_parts(data: FederatedData, party_ids: Sequence[str], seed: int) -> dict[str, Shard]:
    """The held-out rows split across ``party_ids`` (each party evaluates on its own part).

    Accuracy averaged over the parts, weighted by their row counts, is exactly the accuracy on all of them.
    """
    if len(data.y_test) < len(party_ids):
        raise DataError(f"{len(data.y_test)} held-out rows cannot be split across {len(party_ids)} parties; "
                        "raise data.test_fraction or use fewer parties")
    # a seed of its own, so that the training partition stays what it was
    order = np.random.default_rng([seed, 1]).permutation(len(data.y_test))
    parts = np.array_split(order, len(party_ids))
    return {pid: Shard(data.X_test[np.sort(idx)], data.y_test[np.sort(idx)])
            for pid, idx in zip(party_ids, parts, strict=True)}


@dataclass(frozen=True)
class PartyData:
    """One party's own file, split into the rows it trains on and the rows it evaluates on."""

    name: str
    train: Shard
    held_out: Shard
    classes: np.ndarray | None

    @property
    def n_features(self) -> int:
        """The number of feature columns."""
        return int(self.train.X.shape[1])


def load_party(cfg: DataConfig, path: str | Path, seed: int) -> PartyData:
    """A party's own CSV file (label column as ``[data]`` says), split by ``data.test_fraction``.

    ``standardize`` uses this file's own training rows (no other party's are ever read): sites with
    similar data get similar scalings; declare public scaling constants by preparing the files alike
    otherwise.  Labels: with ``data.classes`` declared, every site numbers them by that list (a site may
    lack a class; the model still has them all).  Otherwise numeric labels are the file's own, and string
    labels are refused: numbered by each file's own sorted set, two sites holding ``['a', 'b']`` and
    ``['b', 'c']`` would both call their first class 0.
    """
    X, y, classification = _read_csv(Path(path), cfg.label_column, cfg.class_labels, own=True)
    X_tr, X_te, y_tr, y_te = _held_out_split(cfg, X, y, classification, seed, str(path))
    classes = _classes(cfg, y) if classification else None
    return PartyData(str(path), Shard(X_tr, y_tr), Shard(X_te, y_te), classes)


def _classes(cfg: DataConfig, y: np.ndarray) -> np.ndarray:
    """The class numbers a model has: one per declared label, else the labels present."""
    declared = cfg.class_labels
    return np.arange(len(declared), dtype=np.int64) if declared is not None else np.unique(y)


def _refuse_string_labels(path: Path, labels: list[str]) -> None:
    """:class:`DataError`: a site's own file with string labels needs ``data.classes`` (see :func:`load_party`)."""
    numbers = ", ".join(f"{v!r} = {i}" for i, v in enumerate(labels))
    raise DataError(
        f"{path}: labels {labels!r} are strings, and this file alone would number them by its own sorted set "
        f"({numbers}); another site's file holding another set (one without {labels[0]!r}, say) would number the "
        "same labels otherwise, and the sites' models would disagree on what each class is. Declare the classes "
        f"every site uses, the same in every site's config: [data] classes = {_toml_list(labels)} (with any "
        "label other sites hold added)")


def _toml_list(values: Sequence[str]) -> str:
    return "[" + ", ".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "]"
