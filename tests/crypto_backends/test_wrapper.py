"""SchemeWrapper forwards everything; its declarations are read from the inner scheme, never stored.

That a wrapper overriding nothing passes the whole contract is tested in
test_contract.py (every test runs for ``wrapped:<scheme>`` too).
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from crypto_backends.base import Scheme
from crypto_backends.capabilities import FunctionKeys, InteractiveSetup, ShareRequest, ShareReveal
from crypto_backends.dp import DPScheme, NoisePlan, NoiseSegment
from crypto_backends.plaintext import PlainScheme
from crypto_backends.roundtrip import secure_weighted_mean
from crypto_backends.wrapper import SchemeWrapper, declaration
from tests.schemes import PassThrough, SharedPlain, make_scheme

#: Scheme members a wrapper may inherit: they only read the (forwarded) declarations, or are hooks a
#: wrapper never reaches (it forwards the public operation that would call them).
INHERITED = {"_make_envelope", "_check_envelope", "_check_key", "_applied_weight", "_publish"}


def _members(cls: type) -> dict[str, object]:
    return {n: v for n, v in vars(cls).items() if not (n.startswith("__") and n.endswith("__"))}


def test_every_scheme_operation_hook_and_declaration_is_forwarded():
    methods = {n for n, v in _members(Scheme).items() if inspect.isfunction(v) or isinstance(v, property)}
    declarations = {n for n in Scheme.__annotations__} | {"params"}
    wrapper = _members(SchemeWrapper)
    assert methods - INHERITED - set(wrapper) == set(), "SchemeWrapper does not forward these"
    assert {n for n in declarations if not isinstance(wrapper.get(n), declaration)} == set()


def test_declarations_are_the_inner_schemes_and_read_only():
    inner = make_scheme("fe")
    wrapped = PassThrough(inner)
    for name in ("name", "version", "params_type", "params", "reveal_plan", "threat_model"):
        assert getattr(wrapped, name) == getattr(inner, name), name
        with pytest.raises(AttributeError, match="declared by the wrapped scheme"):
            setattr(wrapped, name, None)
    assert set(vars(wrapped)) == {"inner"}  # nothing of the inner scheme is copied onto the wrapper
    assert (wrapped.declarations.security_bits, wrapped.declarations.value_bound, wrapped.tolerance([1.0, 2.0])) == (
        inner.declarations.security_bits, inner.declarations.value_bound, inner.tolerance([1.0, 2.0]))
    assert isinstance(PassThrough.name, declaration)  # read from the class: the descriptor
    assert repr(wrapped) == f"PassThrough({inner!r})"


def test_dp_overrides_its_threat_model_and_stores_no_declaration():
    inner = make_scheme("ckks")
    dp = DPScheme(inner, NoisePlan("gaussian", (NoiseSegment(4, 1.0),), mode="distributed", min_contributors=2))
    assert dp.threat_model.aggregator_learns.startswith(inner.threat_model.aggregator_learns)
    assert "distributed differential privacy" in dp.threat_model.aggregator_learns
    # the noise floor is a count of contributors: signed ones under verify_aggregate "full", claimed ones under "off"
    tm = dp.threat_model
    assert tm.malicious_aggregator.startswith(inner.threat_model.malicious_aggregator)
    assert tm.malicious_aggregator.endswith("floor of 2 contributors is counted from the parties' signed statements")
    assert tm.malicious_aggregator_unverified.startswith(inner.threat_model.malicious_aggregator_unverified)
    assert "the contributors the aggregator claims, so it can zero-pad" in tm.malicious_aggregator_unverified
    assert (dp.name, dp.reveal_plan.site, dp.params) == (inner.name, inner.reveal_plan.site, inner.params)
    assert not {"name", "version", "params", "threat_model", "declarations"} & set(vars(dp))


class _Steps(PlainScheme, InteractiveSetup, ShareReveal):
    """Records which protocol step was asked for and answers with its name."""

    name = "steps-test"

    def setup_steps(self, round):
        return 7

    def setup_messages(self, key, *, round, step, parties, replies):
        return {p: b"setup_messages" for p in parties}

    def setup_reply(self, key, *, round, step, message):
        return b"setup_reply"

    def setup_done(self, key, *, round, replies):
        return ("setup_done",)

    def share_request(self, key, aggregate):
        return ShareRequest(parties=("share_request",), needed=1)

    def decryption_share(self, key, aggregate, message):
        return b"decryption_share"

    def check_share(self, key, aggregate, party, share):
        raise LookupError("check_share")

    def reveal_shares(self, key, aggregate, shares):
        return np.array([42.0])


def test_protocol_steps_are_forwarded():
    wrapped = PassThrough(_Steps())
    keys = wrapped.keygen(["alice"])
    agg, party = keys.aggregator, keys.parties["alice"]
    env = wrapped.combine(agg, [wrapped.protect(party, np.ones(1), weight=1.0, round=0)], round=0)
    assert wrapped.capability(FunctionKeys) is None
    setup, shares = wrapped.capability(InteractiveSetup), wrapped.capability(ShareReveal)
    assert setup is not None and shares is not None
    assert setup.setup_steps(0) == 7
    assert setup.setup_messages(agg, round=0, step=0, parties=["alice"], replies={}) == {"alice": b"setup_messages"}
    assert setup.setup_reply(party, round=0, step=0, message=b"") == b"setup_reply"
    assert setup.setup_done(agg, round=0, replies={}) == ("setup_done",)
    assert shares.share_request(agg, env) == ShareRequest(parties=("share_request",), needed=1)
    assert shares.decryption_share(party, env, b"") == b"decryption_share"
    with pytest.raises(LookupError, match="check_share"):
        shares.check_share(agg, env, "alice", b"")
    assert shares.reveal_shares(agg, env, {}).tolist() == [42.0]


@pytest.mark.parametrize("wrap", [False, True])
def test_a_scheme_revealing_from_shares_round_trips_bare_and_wrapped(wrap):
    scheme: Scheme = PassThrough(SharedPlain()) if wrap else SharedPlain()
    keys = scheme.keygen(["alice", "bob"])
    vectors = {"alice": np.array([1.0, -2.0]), "bob": np.array([4.0, 2.0])}
    fused = secure_weighted_mean(scheme, keys, vectors, {"alice": 1.0, "bob": 3.0})
    assert np.allclose(fused, [3.25, 1.0])
