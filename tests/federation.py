"""Helpers shared by the federation tests: a short simulation of an example config, and misbehaving parties.

A test swaps one honest party for a misbehaving subclass with :func:`replace`; the subclass keeps the
party's real trainer, scheme, key, accountant and state, so it differs from the honest party only in
what its class overrides.
"""

from __future__ import annotations

import os
from typing import Any

from securefl import config
from securefl.core.party import Party
from securefl.simulation import Simulation
from tests.paths import CONFIGS

FAST = ["federation.rounds=3"]
"""Overrides that keep an example config's run short (three rounds)."""


def sim(*overrides: str, path: str = "plain.toml", fast: list[str] = FAST) -> Simulation:
    """A simulation of ``examples/configs/<path>`` with ``fast`` and then ``overrides`` applied."""
    return Simulation(config.load(CONFIGS / path, [*fast, *overrides]))


def replace(sim: Simulation, pid: str, cls: type[Party]) -> None:
    """Replaces party ``pid`` of ``sim`` with an instance of ``cls`` holding the same key, trainer, state and
    identity (so it signs its uploads and checks aggregates as the honest one did)."""
    p = sim.parties[pid]
    sim.parties[pid] = cls(p.party_id, p.trainer, p.scheme, p.key, p.accountant, fuse=p.fuse, state=p.state,
                           identity=p.identity, verifier=p.verifier)


class Crashing(Party):
    """Raises instead of uploading in the rounds listed in ``crash_in`` (``None``: every round)."""

    crash_in: frozenset[int] | None = frozenset({1})
    reason = "disk full"

    def handle_round(self, round: int, model: bytes) -> bytes:
        if self.crash_in is None or round in self.crash_in:
            raise RuntimeError(self.reason)
        return super().handle_round(round, model)


class AlwaysCrashing(Crashing):
    """Raises instead of uploading in every round."""

    crash_in = None


class GarbageShare(Party):
    """Trains honestly but answers every share request with ``share_bytes`` random bytes."""

    share_bytes = 32

    def respond(self, step: str, round: int, stage: int, payload: bytes) -> bytes:
        if step == "share":
            return os.urandom(self.share_bytes)
        return super().respond(step, round, stage, payload)


def assert_share_refused_every_round(result: Any, pid: str, why: str) -> None:
    """``pid``'s share was refused (for ``why``) in every round, its update still summed, and the model learned."""
    for r in result.rounds:
        assert "share refused" in r.dropped[pid] and why in r.dropped[pid], r.dropped
        assert pid in r.parties  # its update is in the sum; only its share was refused
    assert result.final_accuracy > 0.9
