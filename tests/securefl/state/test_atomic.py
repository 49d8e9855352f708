"""The private atomic writer every state file goes through (key store, checkpoints, state files)."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from securefl.core.messages import GlobalModel
from securefl.state.atomic import write_private
from securefl.state.checkpoint import Checkpoint
from securefl.state.keystore import KeyStore
from tests.schemes import make_scheme


def _mode(path: os.PathLike[str] | str) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_written_files_are_0600_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        write_private(tmp_path / "state", b"secret")
    finally:
        os.umask(old)
    assert (tmp_path / "state").read_bytes() == b"secret"
    assert _mode(tmp_path / "state") == 0o600
    assert os.listdir(tmp_path) == ["state"]  # no temporary file left behind


def _plant_old_temp_names(tmp_path, name):
    """Symlinks at the temporary names the old writers used, pointing at a file the attacker wants overwritten."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"untouched")
    for tmp in (f".{name}.{os.getpid()}.tmp", f"{name}.tmp"):
        (tmp_path / tmp).symlink_to(victim)
    return victim


def test_a_symlink_at_the_old_temporary_name_is_not_followed(tmp_path):
    victim = _plant_old_temp_names(tmp_path, "state")
    write_private(tmp_path / "state", b"new")
    assert victim.read_bytes() == b"untouched"
    assert not (tmp_path / "state").is_symlink()
    assert (tmp_path / "state").read_bytes() == b"new"


def test_a_symlink_at_the_target_is_replaced_not_written_through(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"untouched")
    (tmp_path / "state").symlink_to(victim)
    write_private(tmp_path / "state", b"new")
    assert victim.read_bytes() == b"untouched"
    assert not (tmp_path / "state").is_symlink() and _mode(tmp_path / "state") == 0o600


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    write_private(tmp_path / "state", b"old")

    def broken(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError, match="disk full"):
        write_private(tmp_path / "state", b"new")
    assert (tmp_path / "state").read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["state"]


def test_the_key_store_and_checkpoints_go_through_it(tmp_path):
    scheme = make_scheme("plain")
    from securefl.core.authority import Authority

    keys = Authority(scheme, ["p1", "p2"])._keys
    victim = _plant_old_temp_names(tmp_path, "keys")
    _plant_old_temp_names(tmp_path, "ckpt")
    KeyStore(tmp_path / "keys", scheme).save(keys)
    Checkpoint("plain", "00", 0, (), GlobalModel.open(np.zeros(3)).to_bytes()).save(tmp_path / "ckpt")
    assert victim.read_bytes() == b"untouched"
    for name in ("keys", "ckpt"):
        assert not (tmp_path / name).is_symlink() and _mode(tmp_path / name) == 0o600
    assert Checkpoint.load(tmp_path / "ckpt") is not None
