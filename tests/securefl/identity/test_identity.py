"""The in-process CA: every party of a simulation signs as a deployed party does, with its own key only."""

from __future__ import annotations

import pytest

from crypto_backends.errors import ShareError
from securefl import config
from securefl.errors import TransportError
from securefl.identity import InProcessCA, load_identity
from securefl.simulation import Simulation


def test_each_party_signs_with_its_own_key_and_its_peers_check_it_against_the_federations_ca():
    ca = InProcessCA(["a", "b"])
    a, b = ca.identity("a"), ca.identity("b")
    signature, certificate = a.sign(b"round 3")
    b.verify("a", b"round 3", signature, certificate)  # a's signature, a's certificate: accepted
    with pytest.raises(ShareError, match="does not verify"):
        b.verify("a", b"round 4", signature, certificate)  # altered on the way
    with pytest.raises(ShareError, match="not by that party"):
        b.verify("b", b"round 3", signature, certificate)  # a's certificate presented as b's
    other = InProcessCA(["a", "b"]).identity("a")  # another simulation's CA
    with pytest.raises(ShareError, match="not issued by the federation's CA"):
        b.verify("a", b"round 3", *other.sign(b"round 3"))


def test_an_exported_identity_loads_only_as_its_own_party():
    ca = InProcessCA(["a", "b"])
    loaded = load_identity(ca.export("a"), "a")
    ca.identity("b").verify("a", b"x", *loaded.sign(b"x"))
    with pytest.raises(TransportError, match="is 'a''s: each party takes its own identity only"):
        load_identity(ca.export("a"), "b")
    with pytest.raises(TransportError, match="garbled"):
        load_identity(b"{not json", "a")


def test_a_simulation_binds_every_partys_identity_where_the_scheme_signs():
    cfg = config.loads('[federation]\nparties = 4\nrounds = 1\n[crypto]\nscheme = "secagg"\n'
                       "[crypto.secagg]\nallow_insecure = true\n")
    sim = Simulation(cfg)
    for pid, party in sim.parties.items():
        identity = party.key.unwrap("secagg").identity
        assert identity is not None and identity.party == pid
    assert sim.run().final_accuracy is not None  # the signed advertisements verify: the round completes
