"""``securefl bench --verify``: the verified reveal's costs beside each scheme row, and their ratios."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from crypto_backends.roundtrip import RoundTrip
from securefl.tools import bench
from tests.schemes import fast_params


def test_verify_adds_the_verified_reveal_columns_to_each_scheme_row():
    rows = bench.run(["paillier", "threshold_paillier", "plain"], parties=3, params=40, scheme_params=fast_params,
                     verify=True)
    by = {r.scheme: r for r in rows}
    assert all(r.error is None for r in rows)
    paillier, shares, plain = by["paillier"].extra, by["threshold_paillier"].extra, by["plain"].extra
    assert paillier["verifiers"] == 1 and shares["verifiers"] >= 2 and plain["verifiers"] == 0
    for e, row in ((paillier, by["paillier"]), (shares, by["threshold_paillier"])):
        assert e["sign_s"] > 0 and e["check_s"] > 0 and e["verify_s"] > 0
        assert e["verify_added_s"] == pytest.approx(3 * e["sign_s"] + e["check_s"] + e["verifiers"] * e["verify_s"])
        assert e["verify_added_x"] == pytest.approx(1 + e["verify_added_s"] / row.work_s) and e["verify_x"] > 0
        assert e["evidence_bytes"] > 3 * row.bytes_per_party  # every contributor's upload, and its statement
        assert e["verify_bytes_x"] > 1
    assert plain["verify_s"] == 0 and plain["evidence_bytes"] == 0
    assert "verify_x" not in by["baseline:numpy"].extra


def test_without_verify_no_verified_round_runs():
    rows = bench.run(["paillier"], parties=3, params=20, scheme_params=fast_params)
    assert not any(k.startswith("verify") for r in rows for k in r.extra)


def _trip(**kw: Any) -> RoundTrip:
    return dataclasses.replace(RoundTrip(np.zeros(1), (100, 100), (0.0, 0.0), (1.0, 1.0), 2.0, 3.0), **kw)


def test_the_ratios_are_the_added_parts_over_the_round_without():
    row = bench._result("s", 2, 10, 1.0, 2.0, 3.0, 100.0, 0.0)  # work 2*1 + 2 + 3 = 7 s, round 6 s
    trip = _trip(sign_s=(0.5, 0.5), check_s=1.0, verifiers=("a",), verify_s=(2.0,), statement_bytes=(40, 40),
                 evidence_bytes=300)
    e = bench.verify_columns(row, [trip])
    assert e["verify_added_s"] == 2 * 0.5 + 1.0 + 2.0
    assert e["verify_added_x"] == pytest.approx((7 + 4) / 7)
    assert e["verify_round_x"] == pytest.approx((6 + 0.5 + 1.0 + 2.0) / 6)
    assert e["verify_x"] == pytest.approx((2 * 1.0 + 2.0 + 3.0 + 4.0) / 7)
    assert (e["statement_bytes"], e["evidence_bytes"]) == (40, 300)
    # one verifier's traffic: its upload and the aggregate (none here), with the statement and the evidence
    assert e["verify_bytes_x"] == pytest.approx((100 + 40 + 300) / 100)
