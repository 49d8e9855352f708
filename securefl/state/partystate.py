"""Durable security state of the roles: what must survive a restart for a guarantee to hold.

Two records live here, each one small JSON file per role and federation in the
state directory (``transport.state_dir``), written by :func:`write_private`
before anything they guard leaves the role:

* :class:`PartyState` - the rounds a party answered (and under which key set) and
  how many rounds its privacy accountant charged.  A restarted party answers no
  round twice and regains no budget, whatever round the aggregator announces.
* :class:`PolicyState` - the key authority's record of the function keys it
  granted, per federation rather than per key set, so a restarted authority that
  made new keys still refuses a second sum of a round (the scheme's
  :meth:`~crypto_backends.base.Scheme.policy_record`).

A federation is named by :func:`federation_id`: a digest of its party ids and
``federation.seed`` (which fixes the demo's split, the initial model and the local
training's randomness).  Starting a new federation over the same parties is an
explicit act: a new seed (and so a new id and new state files).

Files go through :mod:`securefl.state.atomic`, as the key store and checkpoints do:
written atomically (a temporary file from :func:`tempfile.mkstemp` in the target
directory, mode 0600, fsync'ed, then ``os.replace``d, and the directory fsync'ed)
and read without following symbolic links; a file other users can read or write is
refused.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from securefl.errors import ReplayError, StateError, StateLockedError
from securefl.state.atomic import read_private, write_private

__all__ = ["PartyState", "PolicyState", "federation_id", "hold", "read_private", "release", "write_private"]


def federation_id(party_ids: Sequence[str], seed: int) -> str:
    """The federation's name in state files: a digest of its sorted party ids and its seed."""
    h = hashlib.sha256(b"securefl/federation/v1\x00")
    h.update(json.dumps([sorted(party_ids), int(seed)], separators=(",", ":")).encode())
    return h.hexdigest()[:32]


_HELD: dict[str, int] = {}
"""Lock files this process holds (real path -> descriptor), each for the rest of its life."""
_HELD_GUARD = threading.Lock()


def hold(path: Path, role: str) -> None:
    """Hold ``path``'s lock file (``<path>.lock``, with this process's pid) for the life of this process.

    One process of a role may use its state: a second live process on the same state
    (a hung party and its restart, two replicas) would pass the replay check from its
    own copy and answer a round twice.  The lock is ``fcntl.flock``'s, so the kernel
    releases it when its holder dies (a ``kill -9`` included).  Objects of this
    process share the one lock.  :class:`StateLockedError` names the other holder's pid.
    """
    lock = path.with_name(path.name + ".lock")
    lock.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = os.path.realpath(lock)
    with _HELD_GUARD:
        if key in _HELD:
            return
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise StateLockedError(
                f"{role}: another process (pid {other}) holds its security state {path}; two processes of one "
                "role would both answer a round. Stop that process (or wait for it to exit), then start this one"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _HELD[key] = fd


def release(path: Path) -> None:
    """Give up this process's lock on ``path`` (a role handing its state to another process before it exits)."""
    key = os.path.realpath(path.with_name(path.name + ".lock"))
    with _HELD_GUARD:
        fd = _HELD.pop(key, None)
    if fd is not None:
        os.close(fd)  # closing the last descriptor of the lock releases it


class _JsonState:
    """A JSON record for one role of one federation at ``path`` (``None``: in memory only).

    The file is locked for this process (:func:`hold`) and re-read before every change, so two
    objects of one process over one file see each other's records.
    """

    FORMAT: str

    def __init__(self, path: str | Path | None, federation: str, role: str) -> None:
        self.path = None if path is None else Path(path)
        self.federation, self.role = federation, role
        self._lock = threading.Lock()
        if self.path is not None:
            hold(self.path, role)
        self.data: dict[str, Any] = self._read()

    def _read(self) -> dict[str, Any]:
        raw = None if self.path is None else read_private(self.path)
        return self._parse(raw) if raw is not None else {}

    def _parse(self, raw: bytes) -> dict[str, Any]:
        try:
            doc = json.loads(raw.decode("utf-8"))
            ok = isinstance(doc, dict) and doc.get("format") == self.FORMAT
        except (UnicodeDecodeError, ValueError):
            ok = False
        if not ok:
            raise StateError(f"{self.path} is not a {self.FORMAT} file; restore it from a backup. Deleting it "
                             "gives up the guarantee it keeps (see SECURITY.md, 'Security state')")
        if doc.get("federation") != self.federation or doc.get("role") != self.role:
            raise StateError(f"{self.path} belongs to another federation or role ({doc.get('federation')}, "
                             f"{doc.get('role')}); each role keeps its own file in transport.state_dir")
        body = doc.get("state")
        if not isinstance(body, dict):
            raise StateError(f"{self.path} is damaged (no state); restore it from a backup")
        return body

    def save(self) -> None:
        if self.path is None:
            return
        doc = {"format": self.FORMAT, "federation": self.federation, "role": self.role, "state": self.data}
        write_private(self.path, json.dumps(doc, sort_keys=True).encode("utf-8"))


class PartyState(_JsonState):
    """A party's answered rounds and spent privacy rounds (see the module docstring)."""

    FORMAT = "securefl/party-state/v1"

    @classmethod
    def in_dir(cls, state_dir: str | Path, federation: str, party: str) -> PartyState:
        """The state of ``party`` in ``federation``, kept in ``state_dir``."""
        return cls(Path(state_dir) / f"party-{party}-{federation}.json", federation, f"party:{party}")

    def __init__(self, path: str | Path | None, federation: str, role: str) -> None:
        super().__init__(path, federation, role)
        self.answered: dict[int, str] = {}
        self.charged: int = 0
        """Rounds this party's privacy accountant has charged, over every run of the federation."""
        self._merge(self.data)

    def _merge(self, data: dict[str, Any]) -> None:
        # what the file says joins what this object knows: an answered round stays answered, a count only grows
        rounds, charged = data.get("rounds", {}), data.get("charged", 0)
        if (not isinstance(rounds, dict) or not all(isinstance(v, str) for v in rounds.values())
                or not isinstance(charged, int) or charged < 0):
            raise StateError(f"{self.path} is damaged (rounds or charged); restore it from a backup")
        try:
            self.answered.update({int(r): k for r, k in rounds.items()})
        except ValueError:
            raise StateError(f"{self.path} is damaged (a round that is not a number)") from None
        self.charged = max(self.charged, charged)

    def _refresh(self) -> None:
        if self.path is not None:  # another object of this process may have recorded since
            self._merge(self._read())

    def check(self, round: int, key_id: bytes) -> None:
        """Raise :class:`ReplayError` if ``round`` was answered before (under any key set), as the file says now."""
        with self._lock:
            self._refresh()
            previous = self.answered.get(int(round))
        if previous is None:
            return
        where = ("under another key set (" + previous[:16] + ")" if previous != key_id.hex()
                 else "before (this party restarted, or the aggregator asked again)")
        raise ReplayError(f"{self.role} already answered round {round} of this federation {where}; a second answer "
                          "would let the aggregator difference out this party's update, so it sits the round out. "
                          "To start over, start a new federation (a new federation.seed)")

    def record(self, round: int, key_id: bytes, *, charged: int) -> None:
        """Note ``round`` as answered under ``key_id`` and the accountant's count, durably (before the reply leaves)."""
        with self._lock:
            self._refresh()
            self.answered[int(round)] = key_id.hex()
            self.charged = max(self.charged, int(charged))
            self.data = {"rounds": {str(r): k for r, k in sorted(self.answered.items())}, "charged": self.charged}
            self.save()

    def charge(self, charged: int) -> None:
        """Note the accountant's count alone (rounds charged without an answer sent), durably."""
        with self._lock:
            self._refresh()
            if charged <= self.charged:
                return
            self.charged = int(charged)
            self.data = {"rounds": {str(r): k for r, k in sorted(self.answered.items())}, "charged": self.charged}
            self.save()


class PolicyState(_JsonState):
    """The key authority's function-key record for one federation (the scheme's own bytes, hex-encoded)."""

    FORMAT = "securefl/authority-policy/v1"

    @classmethod
    def in_dir(cls, state_dir: str | Path, federation: str) -> PolicyState:
        """The authority's policy record of ``federation``, kept in ``state_dir``."""
        return cls(Path(state_dir) / f"authority-{federation}.json", federation, "authority")

    @property
    def record(self) -> bytes:
        """The scheme's policy record as last saved (empty before the first function key)."""
        try:
            return bytes.fromhex(str(self.data.get("record", "")))
        except ValueError:
            raise StateError(f"{self.path} is damaged (record); restore it from a backup") from None

    def store(self, record: bytes) -> None:
        """Replace the record, durably (before the function key it covers leaves the authority)."""
        with self._lock:
            self.data = {"record": record.hex()}
            self.save()
