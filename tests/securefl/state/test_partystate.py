"""Security state that survives restarts (issue 15 items 1 and 4): real keys, real files, new role objects."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from crypto_backends import SECRET_ACCESS
from crypto_backends.errors import PolicyError
from crypto_backends.fe.policy import Ledger
from crypto_backends.keys import PartyKey
from securefl import config
from securefl.core.authority import Authority
from securefl.core.federation import party_state, policy_state
from securefl.core.messages import GlobalModel
from securefl.core.party import Party
from securefl.errors import BudgetExceededError, QuorumError, ReplayError, StateError, StateLockedError
from securefl.simulation import Simulation
from securefl.state.partystate import PartyState, federation_id, read_private, release, write_private
from tests.federation import AlwaysCrashing, replace
from tests.paths import CONFIGS, REPO

ONE_ROUND = ["federation.rounds=1", "crypto.fe.dlog_table_bits=14"]


class LeftOut(AlwaysCrashing):
    """party-2 of the attacker's second run: it is left out of round 0."""

    reason = "left out on purpose"


def _without_party_2(sim: Simulation) -> Simulation:
    replace(sim, "party-2", LeftOut)
    return sim


def _weighted_sum(sim: Simulation, mean: np.ndarray, parties) -> np.ndarray:
    return mean * sum(float(sim.parties[p].weight or 0.0) for p in parties)


def test_without_state_two_runs_give_one_partys_round_0_update_by_subtraction():
    """The attack of item 1, as it works when nothing is kept: a restarted authority makes a fresh key set."""
    cfg = config.load(str(CONFIGS / "fe.toml"), ONE_ROUND)
    full = Simulation(cfg)
    first = full.run()
    fewer = _without_party_2(Simulation(cfg))
    second = fewer.run()
    assert second.rounds[0].parties == ("party-1", "party-3", "party-4", "party-5")
    x2 = (_weighted_sum(full, first.final_parameters, first.rounds[0].parties)
          - _weighted_sum(fewer, second.final_parameters, second.rounds[0].parties)) / full.parties["party-2"].weight
    trainer = full.federation.trainer("party-2")
    expected, _ = trainer.fit(full.federation.initial.copy(), 0)
    assert np.max(np.abs(x2 - expected)) < 1e-3  # the party's update, to the scheme's rounding


def test_with_a_state_dir_the_second_run_of_round_0_is_refused_by_the_parties_and_by_the_authority(tmp_path):
    cfg = config.load(str(CONFIGS / "fe.toml"), ONE_ROUND)
    Simulation(cfg, state_dir=tmp_path).run()
    again = _without_party_2(Simulation(cfg, state_dir=tmp_path))  # new key set, new role objects
    with pytest.raises(QuorumError):
        again.run()
    # every party refused round 0 (it answered it under the first key set), so nothing was combined
    answered = PartyState.in_dir(tmp_path, federation_id(cfg.federation.ids, 7), "party-1")
    assert list(answered.answered) == [0]
    # and the authority alone (parties whose state was lost) refuses a second sum of round 0
    scheme = again.scheme
    fresh = Authority(scheme, cfg.federation.ids, policy=policy_state(cfg, tmp_path))
    four = {p: 100.0 for p in ("party-1", "party-3", "party-4", "party-5")}
    with pytest.raises(PolicyError, match="under another key set"):
        fresh.function_key(0, four)
    granted = dict(Ledger.from_bytes(policy_state(cfg, tmp_path).record)[0].entries()[0].vector)
    fresh.function_key(1, granted)  # the next round is the new key set's (the same vector adds no combination)
    # a new federation (another seed) is the explicit way to start over
    new = cfg.replace(["federation.seed=8"])
    Authority(scheme, cfg.federation.ids, policy=policy_state(new, tmp_path)).function_key(0, four)


DP = ["federation.rounds=2", "privacy.epsilon=5", "privacy.epsilon_budget=10"]  # two rounds spend the budget


def _dp_config():
    return config.load(str(CONFIGS / "logistic_dp.toml"), DP)


def _restarted(sim: Simulation, pid: str, tmp_path, *, reload_key: bool = True) -> Party:
    """Party ``pid`` as a new process would build it: its key reloaded from bytes, its state from the directory."""
    old = sim.parties[pid]
    key = sim.scheme.load_key(sim.scheme.dump_key(old.key, secret_access=SECRET_ACCESS)) if reload_key else old.key
    assert isinstance(key, PartyKey)
    return sim.federation.party(pid, key, state_dir=tmp_path, identity=sim.ca.identity(pid),
                                aggregator_key=sim.aggregator.key)


def test_a_restarted_party_never_answers_a_round_twice_even_with_the_same_key(tmp_path):
    """Item 4: under fe a second, different update for an answered round would give x - x' exactly."""
    cfg = config.load(str(CONFIGS / "fe.toml"), ["federation.rounds=2", "crypto.fe.dlog_table_bits=14"])
    sim = Simulation(cfg, state_dir=tmp_path)
    sim.run()
    party = _restarted(sim, "party-3", tmp_path)
    other_model = GlobalModel.open(np.full(sim.federation.initial.size, 0.25)).to_bytes()
    for rnd in (0, 1):
        with pytest.raises(ReplayError, match=f"already answered round {rnd}"):
            party.handle_round(rnd, other_model)
    party.handle_round(2, other_model)  # a round it never answered
    assert sorted(_restarted(sim, "party-3", tmp_path).state.answered) == [0, 1, 2]


def test_a_restarted_party_regains_no_budget_whatever_round_is_announced(tmp_path):
    cfg = _dp_config()
    sim = Simulation(cfg, state_dir=tmp_path)
    sim.run()  # two rounds of epsilon 5: the budget of 10 is spent
    model = GlobalModel.open(sim.federation.initial).to_bytes()
    for announced in (0, 2, 7):
        party = _restarted(sim, "party-1", tmp_path)
        assert party.accountant.spent[0] == pytest.approx(10.0)
        with pytest.raises((BudgetExceededError, ReplayError)):
            party.handle_round(announced, model)
    party = _restarted(sim, "party-1", tmp_path)
    with pytest.raises(BudgetExceededError):
        party.handle_round(9, model)


def test_state_files_are_private_atomic_and_checked(tmp_path):
    path = tmp_path / "sub" / "state.json"
    write_private(path, b"one")
    write_private(path, b"two")
    assert read_private(path) == b"two" and (path.stat().st_mode & 0o777) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json"]  # no temporary file left
    os.chmod(path, 0o644)
    with pytest.raises(StateError, match="chmod 600"):
        read_private(path)
    os.chmod(path, 0o600)
    link = tmp_path / "link.json"
    link.symlink_to(path)
    with pytest.raises(StateError, match="symbolic link"):
        read_private(link)
    cfg = _dp_config()
    state = party_state(cfg, "party-1", tmp_path)
    assert state is not None
    state.record(3, b"\x01" * 16, charged=1)
    doc = json.loads(read_private(state.path))
    assert doc["state"] == {"rounds": {"3": "01" * 16}, "charged": 1}
    with pytest.raises(StateError, match="another federation or role"):
        PartyState(state.path, "f" * 32, "party:party-1")
    state.path.write_bytes(b"not json")
    with pytest.raises(StateError, match="not a securefl/party-state/v1 file"):
        party_state(cfg, "party-1", tmp_path)


RESTARTED_PARTY = """
import sys
import numpy as np
from pathlib import Path
from securefl import config
from securefl.core.federation import federation
from securefl.core.messages import GlobalModel
from securefl.errors import BudgetExceededError, ReplayError

cfg = config.load(sys.argv[1], sys.argv[4:])
fed = federation(cfg)
party = fed.party("party-1", fed.scheme.load_key(Path(sys.argv[2]).read_bytes()), state_dir=sys.argv[3])
print("spent", party.accountant.spent[0])
model = GlobalModel.open(np.full(fed.initial.size, 0.5)).to_bytes()
for announced in (1, 5):
    try:
        party.handle_round(announced, model)
        print(announced, "answered")
    except (ReplayError, BudgetExceededError) as exc:
        print(announced, type(exc).__name__)
"""


def test_a_second_process_reading_the_state_dir_answers_no_round_twice_and_spends_no_more(tmp_path):
    """Item 4 across processes: the party's state is all a new process has, and it is enough."""
    cfg = _dp_config()
    sim = Simulation(cfg, state_dir=tmp_path / "state")
    sim.run()
    key = tmp_path / "party-1.key"
    write_private(key, sim.scheme.dump_key(sim.parties["party-1"].key, secret_access=SECRET_ACCESS))
    release(sim.parties["party-1"].state.path)  # as the first process would by exiting: the new one takes over
    proc = subprocess.run([sys.executable, "-c", RESTARTED_PARTY, str(CONFIGS / "logistic_dp.toml"), str(key),
                           str(tmp_path / "state"), *DP, "crypto.verify_aggregate=off"],  # no CA in that process
                          capture_output=True, text=True, timeout=300,
                          cwd=str(CONFIGS.parent.parent))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split("\n")[:3] == ["spent 10.0", "1 ReplayError", "5 BudgetExceededError"]


HOLDER = """
import sys
from securefl.state.partystate import PartyState
PartyState.in_dir(sys.argv[1], "f" * 32, "party-1")
print("held", flush=True)
sys.stdin.read()  # hold the state until the test closes our stdin (or kills us)
"""


def test_a_second_live_process_on_one_partys_state_is_refused_naming_the_holders_pid(tmp_path):
    """Issue 21 item 2: a hung party and its restart (or two replicas) must not both answer round 6."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(StateLockedError, match=rf"party:party-1: another process \(pid {holder.pid}\) holds"):
            PartyState.in_dir(tmp_path, "f" * 32, "party-1")
        PartyState.in_dir(tmp_path, "f" * 32, "party-2")  # another party's state is another lock
    finally:
        holder.kill()
        holder.wait()
    # the kernel released the dead holder's lock: the restart takes the state over
    assert PartyState.in_dir(tmp_path, "f" * 32, "party-1").answered == {}


def test_two_objects_of_one_process_see_each_others_records_before_answering(tmp_path):
    first = PartyState.in_dir(tmp_path, "f" * 32, "party-1")
    second = PartyState.in_dir(tmp_path, "f" * 32, "party-1")  # made before the record below: read then
    first.record(6, b"\x02" * 16, charged=3)
    with pytest.raises(ReplayError, match="already answered round 6"):
        second.check(6, b"\x02" * 16)
    second.charge(2)  # a smaller count never lowers what the file says
    assert json.loads(read_private(first.path))["state"]["charged"] == 3
