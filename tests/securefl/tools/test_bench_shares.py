"""``securefl bench`` for a scheme that reveals from shares (secagg): masking and unmasking apart, 10% dropped."""

from __future__ import annotations

from securefl.tools import bench


def test_secagg_rows_time_masking_and_unmasking_apart_and_recover_a_round_with_10_percent_dropped():
    rows = {r.scheme: r for r in bench.run(["plain", "secagg"], parties=20, params=2_000)}
    secagg, plain = rows["secagg"], rows["plain"]
    assert secagg.error is None, secagg.error
    extra = secagg.extra
    assert extra["mask_s"] == secagg.encrypt_s and extra["unmask_s"] > 0 and extra["setup_s"] > 0
    assert extra["unmask_s"] <= secagg.decrypt_s  # the parties' shares are the rest of decrypt_s
    assert extra["drop10_dropped"] == 2
    assert extra["drop10_max_abs_error"] <= extra["drop10_tolerance"]
    assert "unmasking" in secagg.note and "2 of 20 dropped" in secagg.note
    assert "unmask_s" not in plain.extra  # only schemes with a share exchange get the columns
