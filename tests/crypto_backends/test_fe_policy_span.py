"""Issue 22 item 6: the fe authority refuses a key whose span with the keys granted before isolates a party."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto_backends import SECRET_ACCESS
from crypto_backends.errors import InvalidParameterError, MalformedCiphertextError, PolicyError
from crypto_backends.fe import FEParams, FEScheme, policy, span
from crypto_backends.roundtrip import secure_weighted_mean

IDS = [f"party-{i}" for i in range(1, 6)]
SAMPLES = {"party-1": 30.0, "party-2": 50.0, "party-3": 40.0, "party-4": 20.0, "party-5": 60.0}
# all / all - {4,5} / all - {3,5} / all - {3,4}: every pair differs by two parties
ATTACK = [set(IDS), set(IDS) - {"party-4", "party-5"}, set(IDS) - {"party-3", "party-5"},
          set(IDS) - {"party-3", "party-4"}]


def scheme(**changes: object) -> FEScheme:
    """The test table, the default policy's minimum of 3 parties, shares up to 0.6 (the attack's sets pass it)."""
    settings: dict[str, Any] = {"min_parties": 3, "max_share": 0.6, **changes}
    return FEScheme(dataclasses.replace(FEParams.preset("test"), **settings))


def weights(parties: set[str] | Sequence[str], scale: float = 1.0) -> dict[str, float]:
    return {p: SAMPLES[p] * scale for p in parties}


# --- the attack ---------------------------------------------------------------------------------
def test_the_four_round_attack_recovers_party_4_without_the_span_check_and_its_fourth_key_is_refused():
    rng = np.random.default_rng(22)
    updates = {p: rng.uniform(-1, 1, 32) for p in IDS}  # the settled model: each party's step is the same
    # without the check (min_parties_changed = 1) every key is granted and party-4's step comes out
    off = scheme(min_parties_changed=1)
    keys = off.keygen(IDS)
    sums = []
    for r, parties in enumerate(ATTACK):
        mean = secure_weighted_mean(off, keys, {p: updates[p] for p in parties}, weights(parties), round=r)
        sums.append(mean * sum(SAMPLES[p] for p in parties))
    a, b, c, d = sums
    recovered = ((a - b) + (c - d)) / 2 / SAMPLES["party-4"]
    assert np.max(np.abs(recovered - updates["party-4"])) < 0.05
    # with the default policy the fourth key is refused, by name; each pair alone passed the old check
    on = scheme()
    keys = on.keygen(IDS)
    for r, parties in enumerate(ATTACK[:3]):
        on.function_key(keys.authority, round=r, weights=weights(parties))
    with pytest.raises(PolicyError, match=r"function key for round 3 refused: with the function keys of rounds "
                       r"0, 1, 2, .* the update of any one of party-3, party-4, party-5 alone \(1 < "
                       r"min_parties_changed = 2\)"):
        on.function_key(keys.authority, round=3, weights=weights(ATTACK[3]))
    assert sorted(policy.Ledger.from_bytes(on.policy_record(keys.authority))[0].entries()) == [0, 1, 2]


def test_the_attack_in_another_order_or_with_scaled_weights_is_refused_too():
    s = scheme()
    keys = s.keygen(IDS)
    scales = [1.0, 2.0, 0.5, 3.0]  # the aggregator may normalise: a scaled vector spans the same
    for r in (3, 1, 0):
        s.function_key(keys.authority, round=r, weights=weights(ATTACK[r], scales[r]))
    with pytest.raises(PolicyError, match="party-4"):
        s.function_key(keys.authority, round=2, weights=weights(ATTACK[2], scales[2]))


def test_a_difference_of_two_rounds_with_scaled_weights_is_refused_a_vector_in_the_span_is_granted():
    s = scheme()
    keys = s.keygen(IDS)
    s.function_key(keys.authority, round=0, weights=weights(IDS))
    s.function_key(keys.authority, round=1, weights=weights(IDS, 2.0))  # proportional: nothing new
    with pytest.raises(PolicyError, match=r"the update of party-2 alone"):
        s.function_key(keys.authority, round=2, weights=weights(set(IDS) - {"party-2"}, 2.0))
    # two weights changed together: the difference is on two parties, granted
    s.function_key(keys.authority, round=3, weights=weights(IDS) | {"party-1": 31.0, "party-2": 51.0})
    # one weight changed alone: the difference is that party's update (and then party-2's follows)
    with pytest.raises(PolicyError, match=r"the update of any one of party-1, party-2 alone"):
        s.function_key(keys.authority, round=4, weights=weights(IDS) | {"party-1": 32.0, "party-2": 51.0})


def test_the_rank_is_exact_where_floating_point_rank_is_not():
    """Weights 1 and 1 + 2**-52 on one party: numpy's rank sees one vector, the aggregator sees party-3 alone."""
    near = 1.0 + 2.0**-52
    rows = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, near]])
    assert np.linalg.matrix_rank(rows) == 1
    s = scheme(max_share=1.0)
    keys = s.keygen(IDS)
    s.function_key(keys.authority, round=0, weights={"party-1": 1.0, "party-2": 1.0, "party-3": 1.0})
    with pytest.raises(PolicyError, match="party-3 alone"):
        s.function_key(keys.authority, round=1, weights={"party-1": 1.0, "party-2": 1.0, "party-3": near})


# --- what stays possible ---------------------------------------------------------------------------
def test_honest_dropout_patterns_that_isolate_no_one_are_granted():
    ids = [f"party-{i}" for i in range(1, 9)]
    sizes = {p: float(10 + 7 * i) for i, p in enumerate(ids)}
    s = scheme(max_share=0.5)
    keys = s.keygen(ids)
    patterns = [ids, ids, ids[2:], ids, ids[:2] + ids[4:], ids[4:],  # ids[4:] = b + c - a: already in the span
                ids[:4] + ids[6:], ids]  # pairs drop together: every vector of the span is on two or more
    for r, parties in enumerate(patterns):
        s.function_key(keys.authority, round=r, weights={p: sizes[p] for p in parties})
    with pytest.raises(PolicyError, match="party-1"):  # one party of a pair away: it stands alone
        s.function_key(keys.authority, round=len(patterns), weights={p: sizes[p] for p in ids[1:]})
    # a larger threshold asks more: with 3, sums over two parties are refused as well
    strict = scheme(max_share=0.5, min_parties_changed=3)
    skeys = strict.keygen(ids)
    strict.function_key(skeys.authority, round=0, weights={p: sizes[p] for p in ids})
    with pytest.raises(PolicyError, match=r"a sum over only party-1, party-2 \(2 < min_parties_changed = 3\)"):
        strict.function_key(skeys.authority, round=1, weights={p: sizes[p] for p in ids[2:]})
    strict.function_key(skeys.authority, round=1, weights={p: sizes[p] for p in ids[3:]})  # three away: granted


def test_differential_privacy_turns_the_span_check_off():
    s = FEScheme(scheme().params.under_differential_privacy())
    keys = s.keygen(IDS)
    for r, parties in enumerate(ATTACK):
        s.function_key(keys.authority, round=r, weights=weights(parties))


# --- the window --------------------------------------------------------------------------------------
def test_the_window_counts_only_the_keys_of_rounds_close_enough():
    s = scheme(policy_window=2)  # the grants of two consecutive rounds are combined
    keys = s.keygen(IDS)
    for r, parties in enumerate(ATTACK):  # no two consecutive sets isolate a party
        s.function_key(keys.authority, round=r, weights=weights(parties))
    with pytest.raises(PolicyError, match=r"with the function keys of round 3, .* party-3 alone .* within the "
                       r"policy window of 2 rounds"):
        s.function_key(keys.authority, round=4, weights=weights(set(IDS) - {"party-4"}))  # round 3's and party-3
    wide = scheme(policy_window=4)  # four rounds hold the whole attack
    wkeys = wide.keygen(IDS)
    for r, parties in enumerate(ATTACK[:3]):
        wide.function_key(wkeys.authority, round=r, weights=weights(parties))
    with pytest.raises(PolicyError, match="party-4"):
        wide.function_key(wkeys.authority, round=3, weights=weights(ATTACK[3]))
    # at round 4, round 0 has left the window: rounds 1, 2 and 4 isolate no one
    wide.function_key(wkeys.authority, round=4, weights=weights(ATTACK[3]))


def test_a_key_asked_between_two_granted_rounds_is_checked_against_each_window_holding_it():
    s = scheme(policy_window=2)
    keys = s.keygen(IDS)
    s.function_key(keys.authority, round=10, weights=weights(IDS))
    s.function_key(keys.authority, round=12, weights=weights(IDS[1:]))  # 10 and 12 share no window of 2 rounds
    with pytest.raises(PolicyError, match=r"with the function keys of round 12, .* party-1 alone"):
        s.function_key(keys.authority, round=11, weights=weights(IDS))  # [11, 12] holds both
    with pytest.raises(PolicyError, match=r"with the function keys of round 10, .* party-1 alone"):
        s.function_key(keys.authority, round=11, weights=weights(IDS[1:]))  # [10, 11] holds both the other way
    s.function_key(keys.authority, round=11, weights=weights(set(IDS) - {"party-2", "party-3"}))  # safe in both


@pytest.mark.parametrize("bad", [-1, True, 1.5, "3", 2**31])
def test_a_bad_window_is_a_typed_error_naming_the_field(bad):
    with pytest.raises(InvalidParameterError, match=r"fe policy_window must be an integer in \[0, "):
        dataclasses.replace(FEParams.preset("test"), policy_window=bad).validate()


# --- the record ---------------------------------------------------------------------------------------
def _outcome(s: FEScheme, key, round: int, vector: Mapping[str, float]) -> str:
    try:
        s.function_key(key, round=round, weights=vector)
    except PolicyError as exc:
        return str(exc)
    return "granted"


def test_a_new_key_set_that_adopts_the_record_refuses_the_fourth_key_as_the_old_one_would():
    s = scheme()
    old, new = s.keygen(IDS), s.keygen(IDS)
    for r, parties in enumerate(ATTACK[:3]):
        s.function_key(old.authority, round=r, weights=weights(parties))
    s.adopt_policy_record(new.authority, s.policy_record(old.authority))
    restored = s.load_key(s.dump_key(old.authority, secret_access=SECRET_ACCESS))
    answers = {_outcome(s, key, 3, weights(ATTACK[3])) for key in (old.authority, new.authority, restored)}
    assert len(answers) == 1 and "party-4" in answers.pop()


def test_a_record_of_the_first_format_is_refused_by_name():
    legacy = b"\x00\x00\x00\x00"  # the first format: a row count, digests only
    s = scheme()
    keys = s.keygen(IDS)
    with pytest.raises(MalformedCiphertextError, match="not of the current format"):
        s.adopt_policy_record(keys.authority, legacy)
    record = s.policy_record(keys.authority)
    assert record.startswith(policy.RECORD_MAGIC)
    with pytest.raises(MalformedCiphertextError):
        s.adopt_policy_record(keys.authority, record + b"x")


requests = st.lists(st.tuples(st.sets(st.sampled_from(IDS), min_size=3), st.sampled_from([1.0, 2.0, 0.5])),
                    min_size=1, max_size=9)


@settings(max_examples=40, deadline=None)
@given(requests, st.integers(0, 9), st.sampled_from([0, 2, 3]), st.sampled_from([2, 3]))
def test_an_authority_restarted_at_any_round_answers_every_later_request_as_the_old_one(asked, split, window, k):
    s = scheme(max_share=1.0, policy_window=window, min_parties_changed=k)
    old, new = s.keygen(IDS), s.keygen(IDS)
    for r, (parties, scale) in enumerate(asked):
        if r == split:
            s.adopt_policy_record(new.authority, s.policy_record(old.authority))
        vector = weights(sorted(parties), scale)
        before = _outcome(s, old.authority, r, vector)
        if r >= split:
            assert _outcome(s, new.authority, r, vector) == before


# --- the exact check against brute force --------------------------------------------------------
def _rank(rows: Sequence[Sequence[Fraction]]) -> int:
    """Rank by plain Gaussian elimination over Fractions (independent of :mod:`crypto_backends.fe.span`)."""
    m = [list(r) for r in rows]
    rank, cols = 0, len(m[0]) if m else 0
    for c in range(cols):
        pivot = next((i for i in range(rank, len(m)) if m[i][c] != 0), None)
        if pivot is None:
            continue
        m[rank], m[pivot] = m[pivot], m[rank]
        for i in range(len(m)):
            if i != rank and m[i][c] != 0:
                f = m[i][c] / m[rank][c]
                m[i] = [x - f * y for x, y in zip(m[i], m[rank], strict=True)]
        rank += 1
    return rank


def _sparse_supports(matrix: Sequence[Sequence[Fraction]], at_most: int) -> list[frozenset[int]]:
    """Every column set T (|T| <= at_most) holding a non-zero vector of the row space: deleting T drops the rank."""
    full = _rank(matrix)
    n = len(matrix[0])
    out = []
    for size in range(1, at_most + 1):
        for cols in itertools.combinations(range(n), size):
            rest = [[row[c] for c in range(n) if c not in cols] for row in matrix]
            if _rank(rest) < full:
                out.append(frozenset(cols))
    return out


NAMES = [f"q{i}" for i in range(6)]
matrices = st.integers(1, 6).flatmap(lambda n: st.lists(
    st.lists(st.sampled_from([0, 0, 1, 2, 3, 0.5, 7]), min_size=n, max_size=n), min_size=1, max_size=5))


@settings(max_examples=150, deadline=None)
@given(matrices, st.integers(1, 4))
def test_the_exact_check_agrees_with_brute_force_on_small_instances(rows, at_most):
    matrix = [[Fraction(v) for v in row] for row in rows]
    basis = span.span_of(span.integer_row(zip(NAMES, row, strict=False)) for row in rows)
    assert basis.rank == _rank(matrix)
    brute = _sparse_supports(matrix, at_most)
    found = span.sparse_support(basis, at_most)
    assert bool(found) == bool(brute)
    if at_most == 1:  # every isolated party is named
        assert {next(iter(s)) for s in found} == {NAMES[next(iter(t))] for t in brute}
    for support in found:  # and what is named holds a vector of the span: deleting it drops the rank
        assert 0 < len(support) <= at_most
        assert frozenset(NAMES.index(p) for p in support) in brute


def test_a_search_beyond_its_budget_refuses_and_says_so(monkeypatch):
    ids = [f"party-{i}" for i in range(1, 13)]
    s = scheme(max_share=1.0, min_parties_changed=5)
    keys = s.keygen(ids)
    s.function_key(keys.authority, round=0, weights=dict.fromkeys(ids, 1.0))
    monkeypatch.setattr(span, "DEFAULT_BUDGET", 10)
    with pytest.raises(PolicyError, match="exceeded its budget, so the key is refused to be safe"):
        s.function_key(keys.authority, round=1, weights={p: float(i + 1) for i, p in enumerate(ids)})
    monkeypatch.undo()
    s.function_key(keys.authority, round=1, weights={p: float(i + 1) for i, p in enumerate(ids)})
