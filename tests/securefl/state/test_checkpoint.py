from __future__ import annotations

import math
import os

import numpy as np
import pytest

from securefl.core.federation import RoundMetrics
from securefl.core.messages import GlobalModel
from securefl.errors import TransportError
from securefl.state.checkpoint import Checkpoint


def _ckpt(next_round: int = 2) -> Checkpoint:
    rounds = tuple(RoundMetrics(r, 0.5 + r / 10, 1.0, 100.0, ("a", "b"), {"c": "no update"}) for r in range(next_round))
    return Checkpoint("plain", "ab" * 16, next_round, rounds, GlobalModel.open(np.arange(5.0)).to_bytes())


def test_round_trip_and_atomic_replace(tmp_path):
    path = tmp_path / "agg.ckpt"
    assert Checkpoint.load(path) is None
    _ckpt(1).save(path)
    _ckpt(2).save(path)
    loaded = Checkpoint.load(path)
    assert loaded == _ckpt(2)
    assert os.listdir(tmp_path) == ["agg.ckpt"], "no temporary file is left behind"
    assert os.stat(path).st_mode & 0o077 == 0


def test_a_failed_write_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "agg.ckpt"
    _ckpt(1).save(path)

    def crash(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        _ckpt(2).save(path)
    assert Checkpoint.load(path) == _ckpt(1) and os.listdir(tmp_path) == ["agg.ckpt"]


@pytest.mark.parametrize("mangle, needle", [
    (lambda b: b"XXXXXXXX" + b[8:], "bad magic"),
    (lambda b: b[:12] + b"[" + b[13:], "garbled header"),
    (lambda b: b.replace(b'"next_round":2', b'"next_round":3'), "next_round does not match"),
])
def test_garbled_checkpoints_are_refused(tmp_path, mangle, needle):
    path = tmp_path / "agg.ckpt"
    path.write_bytes(mangle(_ckpt().to_bytes()))
    with pytest.raises(TransportError, match=needle):
        Checkpoint.load(path)


def test_a_round_nobody_measured_is_checkpointed_as_null_and_resumed_as_nan(tmp_path):
    unmeasured = RoundMetrics(0, math.nan, 0.5, 100.0, ("p1",))
    Checkpoint("plain", "00", 1, (unmeasured,), GlobalModel.open(np.zeros(2)).to_bytes()).save(tmp_path / "c")
    assert b"NaN" not in (tmp_path / "c").read_bytes()
    back = Checkpoint.load(tmp_path / "c")
    assert back is not None and math.isnan(back.rounds[0].accuracy)
