"""The README's round diagram is drawn from traces that match what a real federation's engine sends."""

from __future__ import annotations

import pytest

from crypto_backends import registry
from securefl.cli.main import main
from securefl.tools import roundtrace
from securefl.transport.inproc import InProcessTransport
from tests.paths import REPO

SILENT = {"open", "reveal"}  # reveals that send no message of their own


@pytest.mark.parametrize("name", registry.builtin())
def test_a_real_round_sends_what_the_trace_says(name, monkeypatch, tmp_path):
    sent: list[str] = []
    exchange, function_key = InProcessTransport.exchange, InProcessTransport.function_key

    def recording_exchange(self, request, accept, *, timeout):
        sent.append(f"setup:{request.stage}" if request.step == "setup" else request.step)
        return exchange(self, request, accept, timeout=timeout)

    def recording_function_key(self, round, weights, evidence):
        sent.append("function_key")
        return function_key(self, round, weights, evidence)

    monkeypatch.setattr(InProcessTransport, "exchange", recording_exchange)
    monkeypatch.setattr(InProcessTransport, "function_key", recording_function_key)
    fast = ["--set", f'crypto.{name}.preset="test"'] if "test" in registry.params_type(name).presets() else []
    code = main(["run", str(REPO / "examples" / "configs" / "plain.toml"), "--set", f'crypto.scheme="{name}"', *fast,
                 "--set", "federation.rounds=1", "--set", "federation.parties=3"])
    assert code == 0
    expected = [s for s in roundtrace.trace(name) if s not in SILENT] + ["evaluate"]
    assert [s for s in sent if s != "init"] == expected


def test_the_diagram_groups_schemes_by_their_traces():
    text = roundtrace.diagram({"a": ("train", "reveal"), "b": ("setup:0", "setup:1", "train", "share"),
                               "c": ("train", "share")})
    assert "opt setup (b: 2 stages)" in text
    assert "alt reveal at the aggregator (a)" in text and "else reveal from shares (b, c)" in text
    assert "function key" not in text  # no scheme asked for one
    assert text.index("setup message") < text.index("train:") < text.index("share request") < text.index("evaluate")
