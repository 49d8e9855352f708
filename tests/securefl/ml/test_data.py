"""The synthetic data set: real rows for thousands of parties, drawn from the config and its seed."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from securefl import config
from securefl.cli.main import main
from securefl.config import DataConfig
from securefl.errors import ConfigError, DataError
from securefl.ml.data import held_out_parts, load_federated, load_party, synthetic_bytes
from securefl.tools.machine import InsufficientMemoryError
from tests.paths import CONFIGS

SCALE = "[federation]\nparties = 1000\nseed = 7\n[data]\ndataset = \"synthetic\"\nsamples = 134000\n"


def _data(text: str, *overrides: str):
    cfg = config.loads(text, list(overrides))
    return cfg, load_federated(cfg.data, cfg.federation.ids, cfg.federation.seed)


def test_a_thousand_parties_each_hold_about_a_hundred_rows_and_the_held_out_split_is_kept_apart():
    cfg, data = _data(SCALE)
    sizes = [shard.n for shard in data.shards.values()]
    assert len(sizes) == 1000 and min(sizes) >= 100 and max(sizes) <= 101 and sum(sizes) == 100_500
    assert data.X_test.shape == (33_500, 20) and data.n_features == 20
    assert list(data.classes) == [0, 1]
    # stratified: both classes in the held-out rows as in the whole
    assert abs(np.mean(data.y_test) - 0.5) < 0.01
    parts = held_out_parts(data, cfg.federation.ids, cfg.federation.seed)
    assert sum(p.n for p in parts.values()) == 33_500 and min(p.n for p in parts.values()) == 33


def test_the_same_seed_draws_the_same_rows_and_another_seed_other_rows():
    small = "[federation]\nparties = 3\n[data]\ndataset = \"synthetic\"\nsamples = 300\nfeatures = 8\nclasses = 4\n"
    _, a = _data(small, "federation.seed=1")
    _, b = _data(small, "federation.seed=1")
    _, c = _data(small, "federation.seed=2")
    np.testing.assert_array_equal(a.shards["party-2"].X, b.shards["party-2"].X)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.X_test, c.X_test)
    assert a.X_test.shape[1] == 8 and list(a.classes) == [0, 1, 2, 3]


def test_the_synthetic_keys_are_checked():
    with pytest.raises(ConfigError, match="data.classes: 5 classes need at least 6 features"):
        config.loads("[data]\ndataset = \"synthetic\"\nfeatures = 4\nclasses = 5\n")
    with pytest.raises(ConfigError, match="data.samples"):
        config.loads("[data]\nsamples = 5\n")
    with pytest.raises(ConfigError, match="data.features"):
        config.loads("[data]\nfeatures = 1\n")
    with pytest.raises(ConfigError, match="data.dataset"):
        config.loads("[data]\ndataset = \"synthetc\"\n")


def _csv(tmp_path, text: str | bytes, name: str = "site.csv"):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_a_csv_that_is_not_utf8_is_a_data_error_naming_the_file_the_byte_and_the_fix(tmp_path, capsys):
    """Was a UnicodeDecodeError traceback, exit 1."""
    path = _csv(tmp_path, "a,b,label\n1,2,x\n3,4,caf\xe9\n5,6,x\n".encode("latin-1"))
    with pytest.raises(DataError, match=rf"{path}: not UTF-8 text \(byte 0xe9 on line 3 cannot be decoded\); "
                                        r"save the file as UTF-8 \(e.g. iconv"):
        load_party(DataConfig(dataset="own"), path, 0)
    assert main(["run", str(CONFIGS / "plain.toml"), "--set", f"data.dataset=csv:{path}"]) == 2
    assert "not UTF-8 text" in capsys.readouterr().err


@pytest.mark.parametrize(("cells", "error"), [
    ("1e308", r"column 'b' \(e.g. 1e\+308 on line 2\) is too large to standardise: its mean or deviation "
              r"overflows float64; rescale the column"),
    ("1e200", r"column 'b' \(e.g. 1e\+200 on line 2\) is too large to standardise"),
    ("nan", r"line 2, column 'b' holds nan \(1 such cells\); features must be finite numbers"),
    ("-inf", r"line 2, column 'b' holds -inf"),
])
def test_a_csv_whose_values_are_not_finite_or_overflow_standardising_is_refused_when_read(tmp_path, cells, error):
    """1e308 used to load and standardise to NaN features with only numpy's RuntimeWarnings."""
    rows = "".join(f"{i},{cells if i == 0 else '1e308' if cells == '1e308' else 3},{i % 2}\n" for i in range(20))
    path = _csv(tmp_path, "a,b,label\n" + rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warning on the way to the error
        with pytest.raises(DataError, match=rf"{path}: {error}"):
            load_party(DataConfig(dataset="own"), path, 0)
        with pytest.raises(DataError, match=error):
            load_federated(DataConfig(dataset=f"csv:{path}"), ["p1", "p2"], 0)


def test_large_but_standardisable_values_still_load(tmp_path):
    rows = "".join(f"{i},{(i % 7) * 1e140},{i % 2}\n" for i in range(20))
    data = load_party(DataConfig(dataset="own"), _csv(tmp_path, "a,b,label\n" + rows), 0)
    assert np.isfinite(data.train.X).all() and abs(data.train.X[:, 1].mean()) < 1


def test_a_synthetic_table_larger_than_the_memory_is_refused_before_it_is_drawn(capsys):
    """samples = 10000000, features = 10000 (each in range) was numpy's _ArrayMemoryError: 745 GiB."""
    cfg = config.loads("[data]\ndataset = \"synthetic\"\nsamples = 10000000\nfeatures = 10000\n")
    with pytest.raises(InsufficientMemoryError,
                       match=r"data.dataset = 'synthetic' at 10,000,000 samples x 10,000 features needs about "
                             r".* of memory and this machine has .* available; lower data.samples or data.features"):
        load_federated(cfg.data, cfg.federation.ids, 0)
    assert synthetic_bytes(10_000_000, 10_000) == 3 * 8 * 10**11
    assert main(["run", str(CONFIGS / "plain.toml"), "--set", "data.dataset=synthetic",
                 "--set", "data.samples=10000000", "--set", "data.features=10000"]) == 2
    assert "lower data.samples or data.features" in capsys.readouterr().err


def _site(tmp_path, name: str, labels: list[str]):
    rows = "".join(f"{i},{(i * 7) % 5},{labels[i % len(labels)]}\n" for i in range(40))
    return _csv(tmp_path, "a,b,kind\n" + rows, name)


def test_sites_with_other_string_label_sets_number_them_by_the_declared_list(tmp_path):
    """Two sites' files, ['cat', 'dog'] and ['dog', 'fox']: 'dog' is one class at both."""
    cfg = DataConfig(dataset="own", label_column="kind", classes=("cat", "dog", "fox"))
    a = load_party(cfg, _site(tmp_path, "a.csv", ["cat", "dog"]), 0)
    b = load_party(cfg, _site(tmp_path, "b.csv", ["dog", "fox"]), 0)
    assert list(a.classes) == list(b.classes) == [0, 1, 2]  # the same model shape at both, a class missing or not
    assert set(a.train.y) | set(a.held_out.y) == {0, 1} and set(b.train.y) | set(b.held_out.y) == {1, 2}
    cfg_raw = DataConfig(dataset="own", label_column="kind", classes=("cat", "dog", "fox"), standardize=False)
    for name, dog_rows in (("a.csv", 1), ("b.csv", 0)):  # 'dog' is on the odd rows of a.csv, the even ones of b.csv
        site = load_party(cfg_raw, tmp_path / name, 0)
        row = np.concatenate([site.train.X[:, 0], site.held_out.X[:, 0]]).astype(int)  # column a: the row number
        y = np.concatenate([site.train.y, site.held_out.y])
        assert (y[row % 2 == dog_rows] == 1).all()  # 'dog' is class 1 at both sites


def test_string_labels_in_a_sites_own_file_without_declared_classes_are_refused_naming_the_fix(tmp_path):
    """They were numbered per file by np.unique: 'dog' was class 1 at one site and class 0 at the other."""
    cfg = DataConfig(dataset="own", label_column="kind")
    path = _site(tmp_path, "b.csv", ["dog", "fox"])
    with pytest.raises(DataError, match=rf"{path}: labels \['dog', 'fox'\] are strings, and this file alone would "
                                        r"number them by its own sorted set \('dog' = 0, 'fox' = 1\); another "
                                        r".* Declare the classes every site uses, the same in every site's config: "
                                        r'\[data\] classes = \["dog", "fox"\]'):
        load_party(cfg, path, 0)
    # numeric labels are the same numbers at every site, and the one-file demo numbers its one file: both load
    assert list(load_party(cfg, _site(tmp_path, "n.csv", ["0", "2"]), 0).classes) == [0, 2]
    shared = load_federated(DataConfig(dataset=f"csv:{path}", label_column="kind"), ["p1", "p2"], 0)
    assert list(shared.classes) == [0, 1]


def test_a_label_outside_the_declared_classes_is_refused_naming_the_file_the_label_and_the_list(tmp_path):
    path = _site(tmp_path, "a.csv", ["cat", "dog", "emu"])
    cfg = DataConfig(dataset="own", label_column="kind", classes=("cat", "dog"))
    with pytest.raises(DataError, match=rf"{path}: line 4 has label 'emu', which is not one of the declared "
                                        r"data.classes = \['cat', 'dog'\]; add it to data.classes"):
        load_party(cfg, path, 0)
    with pytest.raises(DataError, match="label 'emu', which is not one of the declared"):
        load_federated(DataConfig(dataset=f"csv:{path}", label_column="kind", classes=("cat", "dog")), ["p"], 0)
    numbered = DataConfig(dataset="own", label_column="kind", classes=(2, 0, 1))
    site = load_party(numbered, _site(tmp_path, "n.csv", ["0", "1.0", "2"]), 0)
    assert sorted(set(site.train.y) | set(site.held_out.y)) == [0, 1, 2] and list(site.classes) == [0, 1, 2]
    y = np.concatenate([site.train.y, site.held_out.y])
    X = np.vstack([site.train.X, site.held_out.X])
    assert set(y[X[:, 0] == X[:, 0].min()]) == {1}  # the first row, label 0, is the declared list's index 1
    with pytest.raises(DataError, match=r"line 2 has label '3', which is not one of the declared data.classes = "
                                        r"\[2, 0, 1\]"):
        load_party(numbered, _site(tmp_path, "m.csv", ["3", "0"]), 0)


def test_declared_classes_are_checked_as_a_list_of_distinct_strings_or_integers():
    own = "[data]\ndataset = \"own\"\n"
    assert config.loads(own + "classes = [\"b\", \"a\"]\n").data.classes == ("b", "a")
    assert config.loads(own + "classes = [0, 1, 2]\n").data.class_labels == (0, 1, 2)
    assert config.loads(own).data.class_labels is None
    for bad, error in [("[]", "declare at least two class labels"), ("[\"a\"]", "declare at least two"),
                       ("[\"a\", \"b\", \"a\"]", r"repeats \['a'\]; list each class label once"),
                       ("[\"a\", 1]", "wrong type; expected an integer or a list of a string or a list of an integer"),
                       ("[true, false]", "wrong type"), ("\"a\"", "wrong type")]:
        with pytest.raises(ConfigError, match=rf"data.classes: .*{error}"):
            config.loads(own + f"classes = {bad}\n")
    with pytest.raises(ConfigError, match="data.classes: a list declares the labels of CSV files"):
        config.loads("[data]\ndataset = \"iris\"\nclasses = [\"a\", \"b\"]\n")


def test_with_declared_classes_a_site_lacking_a_class_trains_the_same_model_as_the_others(tmp_path):
    """Without the declaration a site lacking one of three classes trained 6 parameters where the others had 9."""
    from securefl.core.federation import PartyDataFederation

    cfg = config.loads("[federation]\nparties = 2\n[data]\ndataset = \"own\"\nlabel_column = \"kind\"\n"
                       "classes = [\"cat\", \"dog\", \"fox\"]\n[model]\nkind = \"logistic\"\n")
    sizes = set()
    for name, labels in (("a.csv", ["cat", "dog", "fox"]), ("b.csv", ["dog", "fox"])):
        fed = PartyDataFederation(cfg, _site(tmp_path, name, labels))
        start = fed.evaluator.initial_parameters()
        update, weight = fed.trainer("party-1").fit(start, 0)
        sizes.update({start.size, update.size})
        assert np.isfinite(update).all() and weight > 0
    assert sizes == {9}  # (2 features + 1) x 3 classes at both sites


def test_sites_whose_numeric_labels_differ_without_declared_classes_are_told_to_declare_them(tmp_path):
    """Numeric labels [0, 1, 2] at one site and [0, 2] at another build models of two sizes: the second site
    refuses the first's model at once, naming its classes and ``data.classes``, instead of a bare shape error."""
    from securefl.config import ModelConfig
    from securefl.errors import PartyError
    from securefl.ml.models import make_adapter
    from securefl.ml.trainer import KindTrainer

    cfg = DataConfig(dataset="own", label_column="kind")
    sites = [load_party(cfg, _site(tmp_path, f"{n}.csv", labels), 0)
             for n, labels in (("a", ["0", "1", "2"]), ("b", ["0", "2"]))]
    trainers = [KindTrainer(make_adapter(ModelConfig(), s.n_features, s.classes, 0), s.train, s.held_out)
                for s in sites]
    model = trainers[0].initial_parameters()
    trainers[0].fit(model.copy(), 0)  # the site the model came from trains as before
    with pytest.raises(PartyError, match=r"this party's model has the classes \[0, 2\].*\[data\] classes = "):
        trainers[1].fit(model.copy(), 0)
