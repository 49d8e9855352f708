"""The round's one step order (SecureSum): what every driver sends, in which order, and what it refuses."""

from __future__ import annotations

import inspect
from collections.abc import Mapping

import numpy as np
import pytest

from crypto_backends import roundtrip
from crypto_backends.capabilities import ConsistencyCheck, InteractiveSetup, ShareRequest, ShareReveal
from crypto_backends.envelope import Envelope
from crypto_backends.errors import KeyRoleError, ShareError
from crypto_backends.keys import FunctionKey, KeySet
from crypto_backends.plaintext import PlainScheme
from crypto_backends.protocol import CheckShare, Roles, SecureSum
from tests.schemes import SharedPlain, make_scheme

PARTIES = ("alice", "bob", "carol")
VECTORS = {"alice": np.array([1.0, -2.0]), "bob": np.array([4.0, 2.0]), "carol": np.array([0.0, 1.0])}


class Quorum(SharedPlain):
    """SharedPlain asking ``asked`` (default: every contributor) and needing ``needed`` valid shares."""

    def __init__(self, needed: int, asked: tuple[str, ...] | None = None) -> None:
        super().__init__()
        self.needed, self.asked = needed, asked

    def share_request(self, key, aggregate):
        return ShareRequest(parties=self.asked or aggregate.parties, needed=self.needed, message=b"unmask")

    def reveal_shares(self, key, aggregate, shares):
        assert len(shares) >= self.needed
        return self._vector(aggregate).copy()


class TwoSteps(PlainScheme, InteractiveSetup):
    """Two setup steps: bob is not asked at step 1, and carol's setup is refused when it is done."""

    def setup_steps(self, round):
        return 2

    def setup_messages(self, key, *, round, step, parties, replies):
        return {p: b"hello" for p in parties if step == 0 or p != "bob"}

    def setup_reply(self, key, *, round, step, message):
        return b"ok"

    def setup_done(self, key, *, round, replies):
        return tuple(p for p in replies if p != "carol")


class Recorder(Roles):
    """Plays every role honestly by direct calls and records what the protocol asked, in order."""

    def __init__(self, scheme, keys: KeySet, round: int = 0, *, forge: str | None = None, extra: str | None = None):
        self.scheme, self.keys, self.round, self.forge, self.extra = scheme, keys, round, forge, extra
        self.calls: list[tuple[str, object]] = []
        self.left: dict[str, str] = {}

    def setup(self, step: int, messages: Mapping[str, bytes]) -> dict[str, bytes]:
        self.calls.append(("setup", (step, tuple(sorted(messages)))))
        cap = self.scheme.capability(InteractiveSetup)
        return {p: cap.setup_reply(self.keys.parties[p], round=self.round, step=step, message=m)
                for p, m in messages.items()}

    def collect(self, parties: tuple[str, ...]) -> Envelope:
        self.calls.append(("collect", parties))
        ups = [self.scheme.protect(self.keys.parties[p], VECTORS[p], weight=1.0, round=self.round) for p in parties]
        return self.scheme.combine(self.keys.aggregator, ups, round=self.round)

    def consistency(self, request: ShareRequest, aggregate: Envelope, check: CheckShare) -> dict[str, bytes]:
        self.calls.append(("consistency", request.parties))
        cap = self.scheme.capability(ConsistencyCheck)
        return {p: check(p, cap.consistency_reply(self.keys.parties[p], aggregate, request.message))
                for p in request.parties}

    def shares(self, request: ShareRequest, aggregate: Envelope, check: CheckShare) -> dict[str, bytes]:
        self.calls.append(("shares", request.parties))
        cap = self.scheme.capability(ShareReveal)
        got: dict[str, bytes] = {}
        senders = [*request.parties, *([self.extra] if self.extra else [])]
        for party in senders:
            key = self.keys.parties[party if party in self.keys.parties else request.parties[0]]
            share = cap.decryption_share(key, aggregate, request.message)
            if party == self.forge:
                share = b"forged"
            try:
                got[party] = check(party, share)
            except ShareError as exc:  # a refused share costs only its sender
                self.calls.append(("refused", (party, str(exc))))
        return got

    def function_key(self, aggregate: Envelope) -> FunctionKey:
        self.calls.append(("function_key", aggregate.parties))
        fkey = roundtrip.function_key_for(self.scheme, self.keys, aggregate)
        assert fkey is not None
        return fkey

    def left_out(self, party: str, why: str) -> None:
        self.left[party] = why


def _run(scheme, roles=None, **kw):
    keys = scheme.keygen(list(PARTIES))
    roundtrip.bind_identities(scheme, keys)
    roles = roles(scheme, keys, **kw) if roles else Recorder(scheme, keys, **kw)
    aggregate, total = SecureSum(scheme, keys.aggregator).run(roles, 0, PARTIES)
    return roles, aggregate, total


def test_without_setup_or_shares_a_round_is_collect_then_reveal_at_the_aggregator():
    roles, aggregate, total = _run(make_scheme("plain"))
    assert roles.calls == [("collect", PARTIES)]
    assert np.allclose(total, sum(VECTORS.values()))


def test_a_sealed_aggregate_is_passed_on_unless_the_driver_opens_it():
    roles, aggregate, total = _run(make_scheme("paillier"))
    assert total is None and roles.calls == [("collect", PARTIES)]  # the parties open it later


def test_a_function_key_is_asked_for_the_aggregates_contributors_before_the_reveal():
    roles, aggregate, total = _run(make_scheme("fe"))
    assert roles.calls == [("collect", PARTIES), ("function_key", PARTIES)]
    assert np.allclose(total, sum(VECTORS.values()), atol=1e-2)


def test_setup_steps_come_first_and_only_the_set_up_parties_protect():
    scheme = make_scheme("secagg")
    roles, aggregate, total = _run(scheme)
    steps = scheme.capability(InteractiveSetup).setup_steps(0)
    assert [c for c, _ in roles.calls] == ["setup"] * steps + ["collect", "consistency", "shares"]
    assert [arg[0] for c, arg in roles.calls if c == "setup"] == list(range(steps))
    assert roles.calls[steps] == ("collect", PARTIES)
    assert np.allclose(total, sum(VECTORS.values()), atol=1e-3)


def test_a_party_the_scheme_stops_asking_at_setup_is_named_and_does_not_protect():
    roles, aggregate, total = _run(TwoSteps())
    assert roles.calls[:2] == [("setup", (0, PARTIES)), ("setup", (1, ("alice", "carol")))]
    assert roles.left == {"bob": "left out by the scheme at setup stage 1",
                          "carol": "its setup was refused by the scheme"}
    assert roles.calls[2] == ("collect", ("alice",)) and aggregate.parties == ("alice",)
    assert np.allclose(total, VECTORS["alice"])


def test_a_forged_share_costs_its_sender_and_the_reveal_stands_on_the_others():
    scheme = Quorum(2)
    roles, aggregate, total = _run(scheme, forge="bob")
    assert any(c == "refused" and arg[0] == "bob" for c, arg in roles.calls)
    assert np.allclose(total, sum(VECTORS.values()))


def test_a_share_from_a_party_that_was_not_asked_is_refused():
    scheme = Quorum(2, asked=("alice", "bob"))
    roles, aggregate, total = _run(scheme, extra="carol")
    refused = [arg for c, arg in roles.calls if c == "refused"]
    assert refused and refused[0][0] == "carol" and "not asked" in refused[0][1]


def test_fewer_valid_shares_than_needed_is_a_share_error_naming_both_counts():
    scheme = Quorum(3)
    with pytest.raises(ShareError, match=r"2 valid share\(s\).*needs 3"):
        _run(scheme, forge="bob")


def test_a_driver_without_a_share_exchange_or_an_authority_says_so():
    class Minimal(Roles):
        def setup(self, step, messages):
            return {}

        def collect(self, parties):
            return scheme.combine(keys.aggregator, [], round=0)

    scheme = Quorum(1)
    keys = scheme.keygen(list(PARTIES))
    aggregate = scheme.combine(keys.aggregator,
                               [scheme.protect(keys.parties["alice"], VECTORS["alice"], weight=1.0, round=0)], round=0)
    with pytest.raises(KeyRoleError, match="decryption shares"):
        SecureSum(scheme, keys.aggregator).reveal(Minimal(), aggregate)
    fe = make_scheme("fe")
    fkeys = fe.keygen(list(PARTIES))
    sealed = fe.combine(fkeys.aggregator, [fe.protect(fkeys.parties["alice"], VECTORS["alice"], weight=1.0, round=0)],
                        round=0)
    with pytest.raises(KeyRoleError, match="function key"):
        SecureSum(fe, fkeys.aggregator).reveal(Minimal(), sealed)


def test_the_round_engine_and_roundtrip_both_drive_secure_sum():
    # the one order: neither driver calls a scheme's setup, share or reveal steps itself
    from securefl.core import engine

    for module in (engine, roundtrip):
        source = inspect.getsource(module)
        assert "SecureSum" in source
        for step in ("setup_messages(", "setup_done(", ".share_request(", "reveal_shares("):
            assert step not in source, f"{module.__name__} calls {step} itself"
