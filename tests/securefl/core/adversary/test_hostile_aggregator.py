"""Issue 22: an aggregator that cheats is refused by every party before anything is revealed.

Each attack is a :class:`Hostile` aggregator: it runs the honest protocol, then
alters what it presents with the round's aggregate (the sealed model under
paillier and ckks, the share request under threshold_paillier and secagg).  Under
``crypto.verify_aggregate = "full"`` (the default) every party refuses with
:class:`AggregateMismatchError` naming the attack, no party opens the aggregate or
gives a share, and the round stops for want of answers.  The honest path still
gives the same model as with verification off.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest

from crypto_backends import InsecureParametersWarning, registry
from crypto_backends.envelope import Envelope
from crypto_backends.errors import SecureFLError
from crypto_backends.statements import Evidence, Statement
from securefl import config
from securefl.core.party import Party
from securefl.simulation import Simulation
from tests.adversary import ATTACKS, Attack, applies, hostile
from tests.paths import CONFIGS

SEALED = ["paillier", "ckks"]
"""Schemes whose parties open the aggregate themselves (the sealed model carries the evidence)."""
SHARED = ["threshold_paillier", "secagg"]
"""Schemes whose parties give decryption or unmasking shares (the share request carries it)."""


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureParametersWarning)
        yield


def _hostile(sim: Simulation, attack: Attack) -> None:
    sim.aggregator = hostile(sim.aggregator, attack, {pid: p.key for pid, p in sim.parties.items()})


def _sim(scheme: str, *extra: str, parties: int = 4) -> Simulation:
    fast = scheme != "ckks" and "test" in registry.params_type(scheme).presets()
    preset = [f"crypto.{scheme}.preset=test"] if fast else []
    return Simulation(config.load(CONFIGS / "plain.toml", [
        "federation.rounds=2", f"federation.parties={parties}", "federation.quorum=3", f"crypto.scheme={scheme}",
        *preset, *extra]))


@pytest.mark.parametrize("mode", ["full", "sampled"])
@pytest.mark.parametrize("scheme", SEALED + SHARED)
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_every_party_refuses_a_cheating_aggregator_and_reveals_nothing(scheme, attack, mode, caplog):
    if why_not := applies(scheme, attack):
        pytest.skip(why_not)
    sim = _sim(scheme, f"crypto.verify_aggregate={mode}")
    fn, why = ATTACKS[attack]
    _hostile(sim, fn)
    opened: list[str] = []
    for p in sim.parties.values():  # record every reveal: none may happen for a cheated round
        _spy(p, opened)
    with caplog.at_level(logging.ERROR), pytest.raises(SecureFLError):
        sim.run()
    refusals = [r for r in caplog.records if "reveals nothing" in r.getMessage()]
    assert refusals and all(why in r.getMessage() for r in refusals), [r.getMessage() for r in caplog.records]
    cheated = 1 if attack == "replayed round" else 0
    assert not [o for o in opened if int(o.split(":")[1]) >= cheated], opened


def _spy(party: Party, opened: list[str]) -> None:
    """Record each aggregate ``party`` passes (then opens or gives a share of)."""
    def check_then(aggregate: Envelope, evidence: Evidence | None) -> None:
        Party.check(party, aggregate, evidence)
        opened.append(f"{party.party_id}:{aggregate.round}")

    party.check = check_then  # type: ignore[method-assign]


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_fes_authority_refuses_a_cheating_aggregator_and_derives_no_function_key(attack, caplog, monkeypatch):
    """Under fe the aggregator reveals with a function key: the authority is the verifier that refuses."""
    if why_not := applies("fe", attack):
        pytest.skip(why_not)
    sim = _sim("fe")
    fn, why = ATTACKS[attack]
    _hostile(sim, fn)
    fkeys = sim.authority._fkeys
    assert fkeys is not None
    derived: list[int] = []
    honest = fkeys.function_key

    def spy(key, *, round, weights):  # type: ignore[no-untyped-def]
        derived.append(round)
        return honest(key, round=round, weights=weights)

    monkeypatch.setattr(fkeys, "function_key", spy)
    with caplog.at_level(logging.WARNING), pytest.raises(SecureFLError):
        sim.run()
    refusals = [r.getMessage() for r in caplog.records if "function key refused" in r.getMessage()]
    assert refusals and all(why in m for m in refusals), [r.getMessage() for r in caplog.records]
    cheated = 1 if attack == "replayed round" else 0
    assert [r for r in derived if r >= cheated] == [] and derived == list(range(cheated)), derived


@pytest.mark.parametrize("scheme", [*SEALED, *SHARED, "fe"])
def test_the_honest_path_gives_the_same_model_with_verification_on_and_off(scheme):
    on, off = _sim(scheme).run(), _sim(scheme, "crypto.verify_aggregate=off").run()
    assert [r.parties for r in on.rounds] == [r.parties for r in off.rounds]
    if scheme in ("paillier", "threshold_paillier", "fe"):  # exact schemes: bit-identical
        np.testing.assert_array_equal(on.final_parameters, off.final_parameters)
    else:  # ckks's encryption noise and secagg's stochastic rounding differ run to run: equal up to them
        np.testing.assert_allclose(on.final_parameters, off.final_parameters, atol=2e-3)


def test_a_statement_carries_what_the_issue_asks_and_round_trips():
    st = Statement(b"\x01" * 32, b"k" * 16, 3, "party-2", 12.5, b"\x02" * 32, b"\x03" * 32)
    assert Statement.from_bytes(st.to_bytes()) == st
    with pytest.raises(SecureFLError):
        Statement.from_bytes(st.to_bytes() + b"x")


@pytest.mark.parametrize("scheme", ["paillier", "threshold_paillier"])
def test_sampled_an_aggregate_swapped_after_the_parties_drew_their_blocks_is_refused(scheme, caplog, monkeypatch):
    """The draw names the aggregate it is for: the aggregator cannot learn the indices on one aggregate and then
    show another (here: one party's upload alone) with openings that fit the honest one."""
    from securefl.core.proofs import Proofs

    honest: list[Envelope] = []

    def swap(agg, stream, c):
        honest.append(c.aggregate)
        return ATTACKS["single upload decrypted"][0](agg, stream, c)

    challenge = Proofs.for_parties

    def drawn_on_the_honest_one(self, rnd, aggregate, evidence, parties):
        return challenge(self, rnd, honest[-1] if honest else aggregate, evidence, parties)

    monkeypatch.setattr(Proofs, "for_parties", drawn_on_the_honest_one)
    sim = _sim(scheme, "crypto.verify_aggregate=sampled")
    _hostile(sim, swap)
    with caplog.at_level(logging.ERROR), pytest.raises(SecureFLError):
        sim.run()
    refusals = [r.getMessage() for r in caplog.records if "reveals nothing" in r.getMessage()]
    assert refusals and all("no blocks of this aggregate were drawn" in m for m in refusals), refusals


def test_sampled_reports_its_detection_chance_and_shows_each_party_a_fraction_of_full(monkeypatch):
    from securefl.core.proofs import Proofs

    shown: dict[str, list[int]] = {"full": [], "sampled": []}
    payloads = Proofs.model_payloads
    for mode in shown:
        def sizes(self, rnd, model, parties, mode=mode):
            out = payloads(self, rnd, model, parties)
            shown[mode] += [len(v) for v in out.values()]
            return out

        monkeypatch.setattr(Proofs, "model_payloads", sizes)
        result = _sim("paillier", f"crypto.verify_aggregate={mode}", "crypto.verify_samples=1").run()
        last = result.rounds[-1].verification
        if mode == "sampled":
            assert last["mode"] == "sampled" and last["samples"] == 1 and last["verifiers"] == 4
            assert last["detect_one_block"] == pytest.approx(1 / last["blocks"])
            assert last["detect_one_block_any"] == pytest.approx(1 - (1 - 1 / last["blocks"]) ** 4)
            assert result.as_json()["rounds"][-1]["verification"] == last
        else:
            assert last == {}
    assert max(shown["sampled"]) < min(s for s in shown["full"] if s > 2000)
