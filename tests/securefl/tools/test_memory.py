"""The aggregator's memory does not grow with the number of parties (streaming aggregation)."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

from crypto_backends import registry
from securefl.core.aggregator import Aggregator

PARAMS = 50_000
MODEL = PARAMS * 8


def _fold_peak(parties: int) -> int:
    """Peak traced bytes while ``parties`` uploads arrive one by one and are folded, as the engine does."""
    scheme = registry.create("plain")
    ids = [f"p{i}" for i in range(parties)]
    keys = scheme.keygen(ids)
    aggregator = Aggregator(scheme, keys.aggregator, num_parameters=PARAMS, quorum=1)
    rng = np.random.default_rng(0)
    tracemalloc.start()
    try:
        stream = aggregator.stream(0)
        for i, pid in enumerate(ids):  # one upload exists at a time, as it would arrive from the network
            data = scheme.protect(keys.parties[pid], rng.standard_normal(PARAMS), weight=i + 1.0, round=0).to_bytes()
            stream.accept(pid, data)
            del data
        combined = aggregator.finish(stream)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(combined.contributors) == parties
    return peak


def test_aggregator_memory_does_not_grow_with_the_number_of_parties():
    few, many = _fold_peak(4), _fold_peak(64)
    # buffering the uploads would add 60 models; streaming adds nothing beyond noise
    assert many < few + MODEL / 2, (few / MODEL, many / MODEL)
    # the running sum and its error term, one upload, and (made in this process) its vector and weighted copy
    assert many < 8 * MODEL


def test_the_memory_tool_measures_the_aggregator_side():
    # plain's one-model running sum: the aggregator holds the sum and the upload being read, two models of
    # 15 MiB each, under the limit of three: the verdict must be a pass and the exit status 0
    out = subprocess.run([sys.executable, "-m", "securefl.tools.memory", "--parties", "12", "--params", "2000000",
                          "--param", "exact_sum=false"], capture_output=True, text=True, timeout=300, check=False)
    assert out.stdout, out.stderr
    result = json.loads(out.stdout)
    assert result["ok"] is True and out.returncode == 0, (result, out.stderr)
    assert result["contributors"] == 12
    assert result["model_mib"] == round(2_000_000 * 8 / 2**20, 2)
    assert result["peak_mib"] < result["baseline_mib"] + 3 * result["model_mib"]
    assert result["limit_mib"] == pytest.approx(result["baseline_mib"] + 3 * result["model_mib"], abs=0.1)


@pytest.mark.parametrize(("growth", "ok"), [(0.0, True), (2.5, True), (2.9, True), (2.96, False), (3.0, False),
                                            (3.5, False), (64.0, False)])
def test_the_verdict_is_the_peak_against_three_models_above_the_baseline(monkeypatch, growth, ok):
    """Injected RSS figures: a peak of ``growth`` models above a 100 MiB baseline passes only below three

    (compared as reported, to 0.1 MiB: 102.96 is reported as 103.0, which is not below the limit).
    """
    from securefl.tools import memory

    params = 131_072  # one model is exactly 1 MiB
    monkeypatch.setattr(memory, "reset_peak_mib", lambda: 100.0)
    monkeypatch.setattr(memory, "peak_rss_mib", lambda: 100.0 + growth)
    result = memory.measure(parties=2, params=params)
    assert result["model_mib"] == 1.0 and result["baseline_mib"] == 100.0 and result["limit_mib"] == 103.0
    assert result["peak_mib"] == round(100.0 + growth, 1) and result["growth_models"] == round(growth, 3)
    assert result["ok"] is ok


def test_the_exit_status_follows_the_verdict(monkeypatch, capsys):
    from securefl.tools import memory

    monkeypatch.setattr(memory, "reset_peak_mib", lambda: 50.0)
    monkeypatch.setattr(memory, "peak_rss_mib", lambda: 50.0 + 4.0)  # four 1 MiB models: over the limit
    assert memory.main(["--parties", "2", "--params", "131072"]) == 1
    assert json.loads(capsys.readouterr().out)["ok"] is False
    monkeypatch.setattr(memory, "peak_rss_mib", lambda: 50.0 + 1.0)  # one model: under it
    assert memory.main(["--parties", "2", "--params", "131072"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_plains_one_model_running_sum_needs_a_model_less():
    def run(*extra: str) -> dict:
        out = subprocess.run([sys.executable, "-m", "securefl.tools.memory", "--parties", "4", "--params", "2000000",
                              *extra], capture_output=True, text=True, timeout=300, check=False)
        assert out.stdout, out.stderr
        return json.loads(out.stdout)

    exact, running = run(), run("--param", "exact_sum=false")
    assert running["changes"] == {"exact_sum": False} and exact["changes"] == {}
    # the error term is one model: without it the aggregator holds the sum and the upload being read
    growth = (exact["peak_mib"] - exact["baseline_mib"]) - (running["peak_mib"] - running["baseline_mib"])
    assert 0.7 * exact["model_mib"] < growth < 1.3 * exact["model_mib"], (exact, running)
    assert running["ok"]


def test_the_memory_tool_names_an_unknown_parameter():
    out = subprocess.run([sys.executable, "-m", "securefl.tools.memory", "--parties", "2", "--params", "10",
                          "--param", "bogus=1"], capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 2 and "--param" in out.stderr and "bogus" in out.stderr


def _preset(name: str) -> str:
    return "test" if "test" in registry.get(name).params_type.presets() else "default"


@pytest.mark.parametrize("name", registry.builtin())
def test_the_memory_tool_runs_every_scheme_through_the_engines_steps(name):
    """secagg's setup exchange included: the parties in the child answer the engine's own setup requests."""
    out = subprocess.run([sys.executable, "-m", "securefl.tools.memory", "--scheme", name, "--preset", _preset(name),
                          "--parties", "4", "--params", "3000"], capture_output=True, text=True, timeout=300)
    assert out.stdout, out.stderr
    result = json.loads(out.stdout)
    assert (result["scheme"], result["contributors"]) == (name, 4), out.stderr


def test_a_producer_that_fails_is_a_typed_error(monkeypatch):
    from securefl.tools import memory

    monkeypatch.setattr(memory.sys, "executable", "/bin/false")  # the child exits at once, answering nothing
    with pytest.raises(memory.ProducerError, match="producer"):  # before or after its keys, by timing
        memory.measure(parties=3, params=10)
