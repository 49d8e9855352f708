"""examples/hybridalpha_claim.py: its savings come from what it measured, not from the paper."""

from __future__ import annotations

import importlib.util
import itertools
import sys
import warnings

import pytest

from crypto_backends import InsecureParametersWarning
from securefl import config
from tests.paths import CONFIGS, EXAMPLES

TINY = ["federation.rounds=1", "federation.parties=3", "federation.quorum=3",
        "crypto.fe.preset=test", "crypto.threshold_paillier.preset=test"]


@pytest.fixture(scope="module")
def example():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("hybridalpha_claim", EXAMPLES / "hybridalpha_claim.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _claim(example, monkeypatch, ticks):  # type: ignore[no-untyped-def]
    clock = itertools.accumulate(itertools.chain([0.0], itertools.cycle(ticks)))
    monkeypatch.setattr(example, "clock", lambda: next(clock))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureParametersWarning)
        return example.claim(config.load(CONFIGS / "plain.toml", TINY))


def test_savings_are_computed_from_the_measured_times_and_bytes(example, monkeypatch):
    # each run reads the clock three times: setup takes 1 s, training 2 s (fe) or 8 s (threshold_paillier)
    c = _claim(example, monkeypatch, [1.0, 2.0, 0.0, 1.0, 8.0, 0.0])
    assert (c.fe.train_s, c.threshold_paillier.train_s, c.fe.setup_s) == (2.0, 8.0, 1.0)
    assert c.time_saving == pytest.approx(0.75)
    other = _claim(example, monkeypatch, [1.0, 4.0, 0.0, 1.0, 5.0, 0.0])
    assert other.time_saving == pytest.approx(0.2)  # another measurement, another figure: nothing is fixed
    for run in (c.fe, c.threshold_paillier):
        # everything the aggregator exchanged includes the uploads the rounds report, and the model sent out
        assert run.bytes > run.upload_bytes > 0
        assert run.rounds == 1 and 0.5 < run.accuracy <= 1.0
    assert c.bytes_saving == pytest.approx(1 - c.fe.bytes / c.threshold_paillier.bytes)
    assert c.fe.accuracy == pytest.approx(c.threshold_paillier.accuracy, abs=0.05)
    text = example.report(c)
    assert f"{c.time_saving:.1%}" in text and f"{c.bytes_saving:.1%}" in text and "paper: 92%" in text
