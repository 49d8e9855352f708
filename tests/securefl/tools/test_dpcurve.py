from __future__ import annotations

import json

import pytest

from securefl import config
from securefl.tools import dpcurve
from securefl.cli.main import main
from securefl.errors import ConfigError

NB = "examples/configs/naive_bayes_dp.toml"


def test_curve_has_every_method_when_a_hiding_scheme_is_installed(sealed_scheme):
    cfg = config.load(NB, [f"crypto.scheme={sealed_scheme}"])
    curve = dpcurve.run_curve(cfg, epsilons=(0.5, 10.0), seeds=2)
    assert curve["distributed_scheme"] == sealed_scheme
    assert set(curve["methods"]) == set(dpcurve.METHODS)
    for row in curve["methods"].values():
        assert len(row["mean"]) == 2 and all(0 <= a <= 1 for a in row["mean"])
    np_acc = curve["methods"]["non_private"]["mean"]
    assert np_acc[0] == np_acc[1] > 0.85  # independent of epsilon


def test_dp_curve_command_writes_png_and_json(tmp_path):
    out = tmp_path / "curve"
    assert main(["dp-curve", "--config", NB, "--seeds", "1", "--out", str(out)]) == 0
    data = json.loads((out / "dp_curve.json").read_text())
    assert data["epsilons"] == list(dpcurve.EPSILONS)
    assert {"local", "central_securefl", "central", "non_private"} <= set(data["methods"])
    assert (out / "dp_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dp_curve_needs_naive_bayes():
    with pytest.raises(ConfigError, match="naive_bayes"):
        dpcurve.run_curve(config.load("examples/configs/plain.toml"), seeds=1)


@pytest.mark.slow
def test_distributed_naive_bayes_matches_central_noise_and_beats_local(sealed_scheme):
    """The issue's bar at epsilon 1 on breast_cancer with 5 parties, averaged over 300 data splits
    (accuracy varies by about 0.1 from split to split, so fewer would not resolve 0.03)."""
    cfg = config.load(NB, [f"crypto.scheme={sealed_scheme}", "federation.seed=5000"])
    curve = dpcurve.run_curve(cfg, epsilons=(1.0,), seeds=300)
    acc = {m: row["mean"][0] for m, row in curve["methods"].items()}
    assert acc["distributed"] >= acc["central"] - 0.03  # diffprivlib's centralised GaussianNB
    assert abs(acc["distributed"] - acc["central_securefl"]) <= 0.04  # same noise as one curator's
    assert acc["distributed"] > acc["local"]
