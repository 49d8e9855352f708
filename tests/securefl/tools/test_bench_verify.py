"""``securefl bench --verify``: the verified reveal's costs beside each scheme row, in both modes, and their ratios."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest

from crypto_backends.roundtrip import RoundTrip
from crypto_backends.sampling import detection
from crypto_backends.statements import VerifyMode
from securefl.tools import bench
from tests.schemes import fast_params

MODES: tuple[VerifyMode, ...] = ("full", "sampled")
COLUMNS = ("sign_s", "check_s", "prove_s", "verify_s", "verifiers", "statement_bytes", "evidence_bytes",
           "challenge_bytes", "verify_added_s", "verify_work_s", "verify_x", "verify_added_x", "verify_round_x",
           "verify_bytes_x", "blocks", "samples", "detect_one_block", "detect_one_block_any")


@pytest.fixture(scope="module")
def rows() -> dict[str, bench.BenchResult]:
    # 1000 values: the test preset's paillier packs them into more blocks than the 4 each verifier draws
    got = bench.run(["paillier", "threshold_paillier", "secagg", "plain"], parties=3, params=1000,
                    scheme_params=fast_params, verify=MODES, samples=4)
    assert all(r.error is None for r in got)
    return {r.scheme: r for r in got}


def test_verify_adds_every_column_of_both_modes_finite(rows):
    for name in ("paillier", "threshold_paillier", "secagg", "plain"):
        e = rows[name].extra
        for mode in MODES:
            assert all(math.isfinite(e[f"{c}_{mode}"]) for c in COLUMNS), (name, mode)
            assert e[f"verify_added_s_{mode}"] == pytest.approx(
                3 * e[f"sign_s_{mode}"] + e[f"check_s_{mode}"] + e[f"prove_s_{mode}"]
                + e[f"verifiers_{mode}"] * e[f"verify_s_{mode}"])
            assert e[f"verify_added_x_{mode}"] == pytest.approx(1 + e[f"verify_added_s_{mode}"] / rows[name].work_s)
    assert "verify_x_full" not in rows["baseline:numpy"].extra


@pytest.mark.parametrize("name", ["paillier", "threshold_paillier"])
def test_sampled_shows_each_verifier_its_drawn_blocks_only(rows, name):
    row = rows[name]
    e = row.extra
    blocks, drawn, verifiers = e["blocks_sampled"], e["samples_sampled"], e["verifiers_sampled"]
    assert drawn == 4 < blocks and e["blocks_full"] == 0
    # full shows every contributor's upload; sampled 4 blocks of each, with their paths: far fewer bytes
    assert e["evidence_bytes_full"] > 3 * row.bytes_per_party > e["evidence_bytes_sampled"]
    assert e["verify_bytes_x_sampled"] < e["verify_bytes_x_full"]
    assert e["prove_s_sampled"] > 0 and e["prove_s_full"] == 0  # the aggregator's openings, only when sampled
    assert e["challenge_bytes_sampled"] == 32 + 4 + 4 * drawn and e["challenge_bytes_full"] == 0
    one = detection(int(blocks), 4)
    assert e["detect_one_block_sampled"] == pytest.approx(one) and one < 1
    assert e["detect_one_block_any_sampled"] == pytest.approx(1 - (1 - one) ** verifiers)
    assert e["detect_one_block_full"] == e["detect_one_block_any_full"] == 1.0


def test_secagg_verifiers_check_the_statements_alone_in_either_mode(rows):
    e, upload = rows["secagg"].extra, rows["secagg"].bytes_per_party
    for mode in MODES:  # as the federation's parties: its masked uploads do not fold without the setup
        assert e[f"verifiers_{mode}"] >= 2 and e[f"evidence_bytes_{mode}"] < upload
        assert (e[f"prove_s_{mode}"], e[f"blocks_{mode}"], e[f"detect_one_block_{mode}"]) == (0, 0, 0)
    assert rows["plain"].extra["verifiers_full"] == 0 and rows["plain"].extra["evidence_bytes_sampled"] == 0


def test_without_verify_no_verified_round_runs():
    rows = bench.run(["paillier"], parties=3, params=20, scheme_params=fast_params)
    assert not any(k.startswith("verify") for r in rows for k in r.extra)


def _trip(**kw: Any) -> RoundTrip:
    return dataclasses.replace(RoundTrip(np.zeros(1), (100, 100), (0.0, 0.0), (1.0, 1.0), 2.0, 3.0), **kw)


def test_the_ratios_are_the_added_parts_over_the_round_without():
    row = bench._result("s", 2, 10, 1.0, 2.0, 3.0, 100.0, 0.0)  # work 2*1 + 2 + 3 = 7 s, round 6 s
    trip = _trip(sign_s=(0.5, 0.5), check_s=1.0, verifiers=("a",), verify_s=(2.0,), statement_bytes=(40, 40),
                 evidence_bytes=300)
    e = bench.verify_columns(row, [trip], "full")
    assert e["verify_added_s_full"] == 2 * 0.5 + 1.0 + 2.0
    assert e["verify_added_x_full"] == pytest.approx((7 + 4) / 7)
    assert e["verify_round_x_full"] == pytest.approx((6 + 0.5 + 1.0 + 2.0) / 6)
    assert e["verify_x_full"] == pytest.approx((2 * 1.0 + 2.0 + 3.0 + 4.0) / 7)
    assert (e["statement_bytes_full"], e["evidence_bytes_full"]) == (40, 300)
    # one verifier's traffic: its upload and the aggregate (none here), with the statement and the evidence
    assert e["verify_bytes_x_full"] == pytest.approx((100 + 40 + 300) / 100)


def test_sampled_ratios_count_the_aggregators_openings_and_the_challenge():
    row = bench._result("s", 2, 10, 1.0, 2.0, 3.0, 100.0, 0.0)
    trip = _trip(sign_s=(0.5, 0.5), check_s=1.0, prove_s=0.25, verifiers=("a", "b"), verify_s=(2.0, 2.0),
                 statement_bytes=(40, 40), evidence_bytes=50, challenge_bytes=(44, 44), blocks=10, samples=2,
                 verify_mode="sampled")
    e = bench.verify_columns(row, [trip], "sampled")
    assert e["verify_added_s_sampled"] == 2 * 0.5 + 1.0 + 0.25 + 2 * 2.0
    assert e["verify_round_x_sampled"] == pytest.approx((6 + 0.5 + 1.0 + 0.25 + 2.0) / 6)
    assert e["verify_bytes_x_sampled"] == pytest.approx((100 + 40 + 50 + 44) / 100)
    assert e["detect_one_block_sampled"] == pytest.approx(0.2)
    assert e["detect_one_block_any_sampled"] == pytest.approx(1 - 0.8**2)
