"""The aggregator's checkpoint: where a restarted aggregator resumes, with the identical global model.

Format (explicit, never pickle)::

    b"SFLCKPT1"         8-byte magic and format version
    header length       4 bytes, big-endian unsigned
    header              UTF-8 JSON: scheme, key fingerprint, next round, rounds run so far
    model               the GlobalModel bytes the next round starts from (to the end of the file)

Writing is atomic: a temporary file in the same directory, flushed and
fsync'ed, then ``os.replace``d over the old checkpoint and the directory
fsync'ed, so a crash at any moment leaves either the old or the new checkpoint,
never a torn one.  The header's ``key_id`` ties the checkpoint to the key set it
was made under: resuming with another key set is refused.
"""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from crypto_backends.jsonheader import load_header
from securefl.core.federation import RoundMetrics
from securefl.core.messages import GlobalModel
from securefl.errors import TransportError
from securefl.state.atomic import write_private

log = logging.getLogger(__name__)

MAGIC = b"SFLCKPT1"
_FIELDS = {"scheme", "key_id", "next_round", "rounds"}


@dataclass(frozen=True)
class Checkpoint:
    """What a restarted aggregator resumes from: the key set it belongs to, the rounds done, the model after them."""

    scheme: str
    key_id: str
    next_round: int
    rounds: tuple[RoundMetrics, ...]
    model: bytes
    """:class:`~securefl.core.messages.GlobalModel` bytes."""

    def to_bytes(self) -> bytes:
        """The checkpoint's file format: magic, a JSON header (scheme, key id, rounds), the model's bytes."""
        head = json.dumps({"scheme": self.scheme, "key_id": self.key_id, "next_round": self.next_round,
                           "rounds": [r.as_json() for r in self.rounds]}, separators=(",", ":")).encode()
        return MAGIC + struct.pack(">I", len(head)) + head + self.model

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "checkpoint") -> Checkpoint:
        """Inverse of :meth:`to_bytes`; a :class:`TransportError` naming ``source`` for anything malformed."""
        if data[:8] != MAGIC or len(data) < 12:
            raise TransportError(f"{source} is not a securefl aggregator checkpoint (bad magic)")
        (hlen,) = struct.unpack(">I", data[8:12])
        try:
            head = load_header(data[12 : 12 + hlen], "checkpoint header", max_depth=8)
            if not isinstance(head, dict) or set(head) != _FIELDS:
                raise ValueError(f"fields {sorted(head) if isinstance(head, dict) else head!r}")
            rounds = tuple(RoundMetrics.from_json(r) for r in head["rounds"])
            next_round = head["next_round"]
            if not isinstance(next_round, int) or next_round != len(rounds):
                raise ValueError("next_round does not match the rounds recorded")
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise TransportError(f"{source} has a garbled header ({exc}); delete it to start over") from None
        model = bytes(data[12 + hlen :])
        GlobalModel.from_bytes(model)  # validate now, not at first use
        return cls(str(head["scheme"]), str(head["key_id"]), next_round, rounds, model)

    def save(self, path: str | Path) -> None:
        """Write atomically (see the module docstring)."""
        write_private(path, self.to_bytes())

    @classmethod
    def load(cls, path: str | Path) -> Checkpoint | None:
        """The checkpoint at ``path``, or ``None`` when there is none."""
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            return None
        return cls.from_bytes(data, source=str(path))


class CheckpointWriter:
    """The round engine's :class:`~securefl.core.engine.Checkpointer`: one atomic checkpoint after every round."""

    def __init__(self, path: str | Path, scheme: str, key_id: str) -> None:
        self.path, self.scheme, self.key_id = path, scheme, key_id

    def save(self, model: GlobalModel, history: Sequence[RoundMetrics]) -> None:
        """Write the checkpoint after the rounds of ``history`` atomically (a crash leaves the previous one)."""
        Checkpoint(self.scheme, self.key_id, len(history), tuple(history), model.to_bytes()).save(self.path)
        log.info("checkpoint written after round %d", len(history) - 1)


def resume(path: str, scheme: str, key_id: bytes, rounds: int, *, new_keys_hint: str,
           open_model_takes_new_keys: bool = False) -> tuple[GlobalModel | None, list[RoundMetrics]]:
    """Where a run under ``scheme`` and key set ``key_id`` starts: the checkpoint at ``path``, or the beginning.

    Returns the model and the rounds done (``None, []`` without a checkpoint).  A
    checkpoint of another scheme is refused, and so is one of another key set,
    unless ``open_model_takes_new_keys`` and its model is open (a vector in the
    clear does not depend on the keys; a sealed one only the old keys open): an
    in-process run makes new keys every time, a deployment's authority keeps them,
    so there new keys mean the operator lost the old ones.  ``new_keys_hint`` says
    how to keep the old key set, for the refusal's message.
    """
    ckpt = Checkpoint.load(path) if path else None
    if ckpt is None:
        return None, []
    model = GlobalModel.from_bytes(ckpt.model)
    if ckpt.scheme != scheme or (ckpt.key_id != key_id.hex() and (model.is_sealed or not open_model_takes_new_keys)):
        raise TransportError(
            f"checkpoint {path} was made under {ckpt.scheme} key set {ckpt.key_id[:16]}, but this run has {scheme} "
            f"key set {key_id.hex()[:16]}: its {'sealed ' if model.is_sealed else ''}global model cannot be used "
            f"here. Delete the checkpoint to start over, or {new_keys_hint}")
    if ckpt.key_id != key_id.hex():
        log.info("checkpoint %s was made under key set %s; its model is open, so the new key set %s takes it on",
                 path, ckpt.key_id[:16], key_id.hex()[:16])
    if ckpt.next_round >= rounds:
        log.warning("checkpoint %s already holds all %d rounds; the final model is served as it is", path,
                    ckpt.next_round)
    log.info("resumed from checkpoint %s at round %d", path, ckpt.next_round)
    return model, list(ckpt.rounds)
