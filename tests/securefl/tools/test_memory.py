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
    out = subprocess.run([sys.executable, "-m", "securefl.tools.memory", "--parties", "12", "--params", "100000"],
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.stdout, out.stderr
    result = json.loads(out.stdout)
    assert out.returncode == (0 if result["ok"] else 1), out.stderr  # a 0.8 MiB model: the verdict is noise here
    assert result["contributors"] == 12
    # plain holds its sum and the sum's exact rounding error (two models) and reads one upload at a time
    assert result["peak_mib"] < result["baseline_mib"] + 4 * result["model_mib"]
    assert result["limit_mib"] == pytest.approx(result["baseline_mib"] + 3 * result["model_mib"], abs=0.1)
    assert result["ok"] == (result["peak_mib"] < result["limit_mib"])


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
