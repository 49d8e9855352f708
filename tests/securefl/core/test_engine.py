"""The round engine: declared protocol steps (with a test scheme that uses both), faults, accounting, resuming."""

from __future__ import annotations

import json
import math
import os
import struct

import numpy as np
import pytest

from crypto_backends.statements import parse_upload, signed_upload_bytes
from securefl import config
from securefl.core.engine import RoundEngine
from securefl.core.messages import GlobalModel
from securefl.core.party import Party
from securefl.errors import BudgetExceededError, QuorumError
from securefl.simulation import Simulation
from securefl.transport.base import Accept, Replies, Request, T
from securefl.transport.inproc import InProcessTransport
from tests.federation import FAST, GarbageShare, assert_share_refused_every_round
from tests.federation import replace as _replace
from tests.federation import sim as _sim
from tests.paths import CONFIGS
from tests.stepscheme import NAME, registered


@pytest.fixture
def relay(tmp_path, monkeypatch):
    with registered(tmp_path, monkeypatch):
        yield


class WrongRelay(Party):
    """Claims to have seen another list of nonces than everyone else."""

    def respond(self, step: str, round: int, stage: int, payload: bytes) -> bytes:
        reply = super().respond(step, round, stage, payload)
        return os.urandom(len(reply)) if step == "setup" and stage == 1 else reply


def test_a_scheme_with_setup_and_share_steps_gives_the_plain_model(relay):
    sim = _sim(f"crypto.scheme={NAME}")
    result = sim.run()
    plain = _sim().run()
    np.testing.assert_allclose(result.final_parameters, plain.final_parameters, atol=1e-9)
    assert [r.accuracy for r in result.rounds] == [r.accuracy for r in plain.rounds]
    assert all(r.parties == plain.rounds[0].parties and not r.dropped for r in result.rounds)
    # every party completed both setup stages of every round, in its own session
    sessions = {(p, rnd): sim.scheme.session(p, rnd) for p in sim.parties for rnd in range(3)}  # type: ignore[attr-defined]
    assert all(sessions.values()) and len({s for (p, rnd), s in sessions.items() if rnd == 1}) == 1


def test_a_forged_share_is_named_and_the_round_completes_from_the_honest_ones(relay):
    sim = _sim(f"crypto.scheme={NAME}")
    _replace(sim, "party-2", GarbageShare)
    assert_share_refused_every_round(sim.run(), "party-2", "commitment")


def test_too_few_valid_shares_stop_the_round_with_the_reason(relay):
    sim = Simulation(config.loads((CONFIGS / "plain.toml").read_text() + f'\n[crypto."{NAME}"]\nthreshold = 5\n',
                                  [*FAST, f"crypto.scheme={NAME}"]))
    _replace(sim, "party-4", GarbageShare)
    with pytest.raises(QuorumError, match=r"round 0: only 4 usable share\(s\), the quorum is 5.*party-4"):
        sim.run()


def test_a_party_whose_setup_disagrees_sits_the_round_out(relay):
    sim = _sim(f"crypto.scheme={NAME}")
    _replace(sim, "party-3", WrongRelay)
    result = sim.run()
    for r in result.rounds:
        assert "party-3" not in r.parties and "setup was refused" in r.dropped["party-3"]
        assert len(r.parties) == 4


class Recording(InProcessTransport):
    """The in-process transport, recording every request; optionally deaf to some steps."""

    def __init__(self, sim: Simulation, *, deaf: tuple[str, ...] = ()) -> None:
        super().__init__(sim.parties, sim.authority)
        self.requests: list[Request] = []
        self.deaf = deaf

    def exchange(self, request: Request, accept: Accept[T], *, timeout: float) -> Replies[T]:
        self.requests.append(request)
        if request.step in self.deaf:
            return Replies(dropped=dict.fromkeys(request.payloads, f"no answer within {timeout} s"))
        return super().exchange(request, accept, timeout=timeout)


class Saved:
    def __init__(self) -> None:
        self.rounds: list[int] = []

    def save(self, model: GlobalModel, history) -> None:
        self.rounds.append(len(history) - 1)


def _engine(sim: Simulation, transport: Recording, **kw) -> RoundEngine:
    return RoundEngine(sim.federation, sim.aggregator, transport, **kw)


def test_one_train_and_one_evaluate_request_a_round_and_a_checkpoint_after_each():
    sim = _sim()
    transport, saved = Recording(sim), Saved()
    result = _engine(sim, transport, checkpoint=saved).run()
    assert [(r.step, r.round) for r in transport.requests] == [
        (s, rnd) for rnd in range(3) for s in ("train", "evaluate")]
    # federated evaluation: every contributor measures the released model on its own held-out rows
    assert all(r.parties == sim.federation.party_ids for r in transport.requests if r.step == "evaluate")
    # weighted by the rows each measured on, the average is exactly the accuracy on all held-out rows
    assert result.final_accuracy == sim.federation.metric_of(result.final_parameters)
    assert saved.rounds == [0, 1, 2]
    assert len({id(p) for r in transport.requests if r.step == "train" for p in r.payloads.values()}) == 3, \
        "one model message a round, shared by every party"
    assert result.final_accuracy > 0.9


def test_a_model_nobody_measures_is_nan_and_the_run_goes_on():
    sim = _sim()
    result = _engine(sim, Recording(sim, deaf=("evaluate",))).run()
    assert len(result.rounds) == 3 and all(math.isnan(r.accuracy) for r in result.rounds)
    assert result.final_parameters is not None


def test_the_budget_refuses_a_round_before_any_party_is_asked():
    sim = Simulation(config.load(CONFIGS / "logistic_dp.toml", ["federation.rounds=3", "privacy.epsilon_budget=2",
                                                                  "privacy.epsilon=1"]))
    transport = Recording(sim)
    with pytest.raises(BudgetExceededError, match="round 2 refused"):
        _engine(sim, transport, accountant=sim.federation.accountant()).run()
    assert {r.round for r in transport.requests} == {0, 1}


def test_a_resumed_run_starts_after_its_history_and_counts_its_budget_as_spent():
    sim = _sim()
    first = _engine(sim, Recording(sim)).run()
    again = _sim("federation.rounds=5")
    transport = Recording(again)
    model = GlobalModel.open(first.final_parameters)
    result = _engine(again, transport).run(model=model, history=first.rounds)
    assert [r.round for r in result.rounds] == [0, 1, 2, 3, 4]
    assert {r.round for r in transport.requests} == {3, 4}
    cfg = config.load(CONFIGS / "logistic_dp.toml", ["federation.rounds=4", "privacy.epsilon_budget=3",
                                                      "privacy.epsilon=1"])
    dp = Simulation(cfg)
    with pytest.raises(BudgetExceededError, match="round 3 refused"):
        RoundEngine(dp.federation, dp.aggregator, Recording(dp), accountant=dp.federation.accountant()).run(
            model=GlobalModel.open(dp.evaluator.initial_parameters()), history=first.rounds)


def test_a_party_that_fails_a_step_is_dropped_not_fatal():
    sim = _sim()

    class Broken(Party):
        def respond(self, step: str, round: int, stage: int, payload: bytes) -> bytes:
            raise RuntimeError("disk full")

    _replace(sim, "party-5", Broken)
    result = sim.run()
    assert all("disk full" in r.dropped["party-5"] for r in result.rounds)


def test_a_sealed_model_is_decrypted_once_per_party_and_published_once():
    sim = Simulation(config.load(CONFIGS / "ckks.toml", FAST))
    scheme, counts = sim.scheme, {"reveal": 0, "release": 0}

    def counting(name: str):
        real = getattr(scheme, name)

        def call(*args, **kw):
            counts[name] += 1
            return real(*args, **kw)
        return call

    for name in counts:
        setattr(scheme, name, counting(name))
    result = sim.run()
    # each of the 3 sealed models is decrypted once by each of the 5 parties (evaluating it, then training
    # from it) and published once by each (for its evaluation); the released final model is one of those
    assert counts == {"reveal": 3 * 5, "release": 3 * 5}
    assert result.final_parameters is not None and result.final_accuracy > 0.9


def test_distributed_noise_around_a_scheme_with_protocol_steps(relay):
    # the DP wrapper forwards the setup and share steps; the revealed sum carries the central noise
    cfg = config.load(CONFIGS / "logistic_dp.toml", [*FAST, f"crypto.scheme={NAME}", "privacy.mode=distributed"])
    sim = Simulation(cfg)
    result = sim.run()
    assert type(sim.scheme).__name__ == "DPScheme"
    assert all(not r.dropped and len(r.parties) == 5 for r in result.rounds)
    assert result.rounds[-1].epsilon_spent == 3 * cfg.privacy.epsilon
    assert result.final_accuracy > 0.6


@pytest.mark.parametrize("token", ["[" * 50_000 + "]" * 50_000, "1" + "0" * 5000, "[1" + "0" * 400 + "]"],
                         ids=["deep-nesting", "5000-digit-integer", "weight-beyond-float"])
def test_an_upload_with_a_hostile_header_drops_its_sender_with_the_typed_error(token):
    sim = _sim("federation.rounds=1")

    class Hostile(Party):
        def respond(self, step: str, round: int, stage: int, payload: bytes) -> bytes:
            signed_reply = super().respond(step, round, stage, payload)
            if step != "train":
                return signed_reply
            signed, view = parse_upload(signed_reply)  # the envelope after the party's signed statement
            reply = bytes(view)
            (hlen,) = struct.unpack(">I", reply[4:8])
            head = json.loads(reply[8 : 8 + hlen])
            head["weights"] = "@"
            text = json.dumps(head).replace('"@"', token).encode()
            forged = reply[:4] + struct.pack(">I", len(text)) + text + reply[8 + hlen:]
            return forged if signed is None else signed_upload_bytes(signed, forged)

    _replace(sim, "party-5", Hostile)
    result = sim.run()
    assert result.rounds[0].dropped["party-5"].startswith("MalformedCiphertextError: envelope header")
    assert "party-5" not in result.rounds[0].parties and len(result.rounds[0].parties) == 4
