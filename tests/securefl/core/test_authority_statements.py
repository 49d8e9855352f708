"""Issue 22 item 2 for ``fe``: the key authority derives a function key only for contributors that signed.

The authority's :class:`~crypto_backends.statements.Verifier` (the one every party builds, from the config
alone) checks a request's signed statements before the DP minimum and the scheme's policy count anything:
exactly the claimed contributors and weights, this round and key set, distinct parties of the roster
certified by the federation's CA, one global model.  A refusal records nothing in the policy.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Mapping

import pytest

from crypto_backends import InsecureParametersWarning
from crypto_backends.errors import AggregateMismatchError, PolicyError
from crypto_backends.statements import Evidence, Signed, Statement, digest
from securefl import config
from securefl.config import Config
from securefl.core.authority import Authority, PersistentAuthority
from securefl.core.federation import make_scheme, min_contributors, statement_verifier, verifies
from securefl.errors import ConfigError
from securefl.identity import InProcessCA
from securefl.state.keystore import KeyStore
from tests.paths import CONFIGS

MODEL = digest(b"the global model of this round")


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureParametersWarning)
        yield


def _cfg(*extra: str) -> Config:
    return config.load(str(CONFIGS / "fe.toml"), ["federation.parties=4", "federation.quorum=3",
                                                  "crypto.fe.preset=test", *extra])


class Setup:
    """An fe authority with the federation's statement verifier, and the parties' identities to sign with."""

    def __init__(self, cfg: Config, authority: Authority | None = None) -> None:
        self.cfg, self.scheme = cfg, make_scheme(cfg)
        self.ca = InProcessCA(cfg.federation.ids)
        self.authority = authority if authority is not None else Authority(
            self.scheme, cfg.federation.ids, min_contributors=min_contributors(cfg))
        self.authority.verifier = statement_verifier(cfg, self.scheme, self.authority.aggregator_key(),
                                                     self.ca.verifier())
        self.key_id = self.authority.aggregator_key().key_id

    def evidence(self, rnd: int, weights: Mapping[str, float], *, model: bytes = MODEL) -> Evidence:
        """What honest parties would have signed for ``weights`` in round ``rnd``."""
        assert self.authority.verifier is not None
        return Evidence(tuple(
            Signed.sign(Statement(self.authority.verifier.context, self.key_id, rnd, pid, w, model,
                                  digest(f"{pid}'s upload".encode())), self.ca.identity(pid))
            for pid, w in sorted(weights.items())))

    def record(self) -> object:
        """The fe policy's record of granted keys (what a refusal must leave as it was)."""
        fkeys, keys = self.authority._fkeys, self.authority._keys
        assert fkeys is not None and keys.authority is not None
        return fkeys.policy_record(keys.authority)


ALL = {"party-1": 10.0, "party-2": 20.0, "party-3": 30.0, "party-4": 40.0}


def test_fe_signs_and_its_authority_checks_unless_verification_is_off():
    cfg = _cfg()
    assert verifies(cfg, make_scheme(cfg)) and not verifies(cfg.replace(["crypto.verify_aggregate=off"]),
                                                            make_scheme(cfg))
    verifier = statement_verifier(cfg, make_scheme(cfg), Authority(make_scheme(cfg), cfg.federation.ids)
                                  .aggregator_key(), InProcessCA(cfg.federation.ids).verifier())
    assert not verifier.full and verifier.least == 3  # statements only (nothing to refold), at least the quorum


def test_a_function_key_is_granted_for_exactly_the_signed_contributors(caplog):
    s = Setup(_cfg())
    with caplog.at_level(logging.INFO):
        key = s.authority.function_key(0, ALL, s.evidence(0, ALL))
    assert key.weights == ALL
    assert "round 0: function key granted for 4 parties (their signed statements verified)" in caplog.text


@pytest.mark.parametrize(("case", "why"), [
    ("no evidence", "without its contributors' signed statements"),
    ("a weight changed", "claims contributors"),
    ("a contributor added", "claims contributors"),
    ("forged signature", "does not verify"),
    ("another round's statements", "replayed statement"),
    ("another key set's statements", "replayed statement"),
    ("two global models", "different global models"),
    ("below the quorum of signers", r"2 signed contributor\(s\), fewer than the 3"),
    ("a statement shown twice", "shown twice"),
])
def test_a_request_its_statements_do_not_prove_is_refused_and_records_nothing(case, why, caplog):
    s = Setup(_cfg())
    weights, evidence = dict(ALL), s.evidence(0, ALL)
    if case == "no evidence":
        evidence = None  # type: ignore[assignment]
    elif case == "a weight changed":  # the aggregator inflates party-1's share of the sum
        weights["party-1"] = 1000.0
    elif case == "a contributor added":  # party-4 is claimed (its pad in the key), but never signed
        evidence = s.evidence(0, {p: w for p, w in ALL.items() if p != "party-4"})
    elif case == "forged signature":  # party-1's statement re-signed by a CA of the aggregator's own, same id
        rogue = InProcessCA(["party-1"]).identity("party-1")
        evidence = Evidence(tuple(Signed.sign(x.statement, rogue) if x.statement.party == "party-1" else x
                                  for x in evidence.signed))
    elif case == "another round's statements":
        evidence = s.evidence(1, ALL)
    elif case == "another key set's statements":
        other = Setup(_cfg())
        evidence = Evidence(tuple(Signed.sign(dataclasses.replace(x.statement, key_id=other.key_id),
                                              s.ca.identity(x.statement.party)) for x in evidence.signed))
    elif case == "two global models":
        evidence = Evidence((*s.evidence(0, {"party-1": 10.0}, model=digest(b"another model")).signed,
                             *s.evidence(0, {p: w for p, w in ALL.items() if p != "party-1"}).signed))
    elif case == "below the quorum of signers":
        weights = {"party-1": 10.0, "party-2": 20.0}
        evidence = s.evidence(0, weights)
    elif case == "a statement shown twice":
        evidence = Evidence((*evidence.signed, evidence.signed[0]))
    before = s.record()
    with caplog.at_level(logging.WARNING), pytest.raises(AggregateMismatchError, match=why):
        s.authority.function_key(0, weights, evidence)
    assert "round 0: function key refused" in caplog.text
    assert s.record() == before
    # nothing was recorded: fe grants one vector per round, and the honest one is still granted after the refusal
    honest = {"party-1": 11.0, "party-2": 20.0, "party-3": 30.0}
    assert s.authority.function_key(0, honest, s.evidence(0, honest)).weights == honest


def test_the_dp_minimum_counts_signed_contributors_not_the_claims():
    cfg = _cfg("privacy.mode=distributed", "privacy.epsilon=5", "privacy.epsilon_budget=20", "privacy.row_norm=4.0",
               "privacy.delta=1e-6", "privacy.delta_budget=1e-5", "federation.quorum=3", "crypto.fe.min_parties=3",
               "federation.parties=5")
    s = Setup(cfg)
    assert s.authority.min_contributors == 3 == s.authority.verifier.least  # type: ignore[union-attr]
    five = {f"party-{i}": 10.0 for i in range(1, 6)}
    two = {"party-1": 10.0, "party-2": 10.0}  # two signed; the aggregator claims five contributors
    with pytest.raises(AggregateMismatchError, match="claims contributors"):
        s.authority.function_key(0, five, s.evidence(0, two))
    with pytest.raises(AggregateMismatchError, match="fewer than the 3"):
        s.authority.function_key(0, two, s.evidence(0, two))
    assert s.authority.function_key(0, five, s.evidence(0, five)).weights == five


def test_without_a_verifier_the_evidence_is_not_looked_at():
    cfg = _cfg("crypto.verify_aggregate=off")
    authority = Authority(make_scheme(cfg), cfg.federation.ids)
    assert authority.verifier is None
    assert authority.function_key(0, ALL).weights == ALL  # honest-but-curious: the claims are counted


def test_a_persistent_authority_checks_too_and_saves_nothing_for_a_refused_request(tmp_path):
    cfg = _cfg()
    scheme = make_scheme(cfg)
    store = KeyStore(tmp_path / "keys", scheme)
    s = Setup(cfg, PersistentAuthority(scheme, cfg.federation.ids, store))
    saved = store.path.read_bytes()
    with pytest.raises(AggregateMismatchError, match="claims contributors"):
        s.authority.function_key(0, ALL, s.evidence(0, {p: w for p, w in ALL.items() if p != "party-4"}))
    assert store.path.read_bytes() == saved
    s.authority.function_key(0, ALL, s.evidence(0, ALL))
    assert store.path.read_bytes() != saved  # the grant's record is on disk before the key leaves


def test_a_verifier_of_another_key_set_is_refused():
    cfg = _cfg()
    s, other = Setup(cfg), Setup(cfg)
    with pytest.raises(ConfigError, match="another key set"):
        s.authority.verifier = other.authority.verifier


def test_a_simulation_of_fe_gives_its_authority_the_federations_verifier():
    from securefl.simulation import Simulation

    on, off = Simulation(_cfg()), Simulation(_cfg("crypto.verify_aggregate=off"))
    assert on.authority.verifier is not None and off.authority.verifier is None
    assert on.aggregator.statements is not None and not on.aggregator.statements.keep_uploads
    with pytest.raises(PolicyError):  # a scheme without function keys: the request is refused before any check
        Simulation(config.load(str(CONFIGS / "plain.toml"), ["crypto.scheme=paillier",
                                                               "crypto.paillier.preset=test"])
                   ).authority.function_key(0, ALL)
