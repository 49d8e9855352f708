"""securefl's steps as Flower messages: bytes inside a ``ConfigRecord``, never a pickled object.

A request is a Flower ``train`` message whose content holds the ConfigRecord
:data:`RECORD` with ``step``, ``round``, ``stage`` and ``payload`` (the very bytes
securefl's other transports send); a ``train`` step also carries the strategy's fit
config (:data:`FIT_CONFIG`) and the arrays' layout (their shapes and dtypes, JSON, in :data:`EXTRA`), so
that the node hands its ``ClientApp`` a normal fit message.  A reply holds
:data:`RECORD` with ``payload`` or, when the party failed, ``error`` (its text).

Besides the round engine's steps (:data:`securefl.transport.base.STEPS`) two are this
package's own: :data:`KEYS` (a node's key, identity and the federation's config, once
per run) and :data:`RELEASE` (a sealed model opened and published by one party, for
the strategy).  Flower carries a message in one gRPC frame of at most
:data:`MAX_MESSAGE_BYTES`; a larger payload is refused before it is sent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from flwr.app import ConfigRecord, RecordDict
from flwr.supercore.grpc import GRPC_MAX_MESSAGE_LENGTH

from securefl.errors import TransportError

RECORD = "securefl"
"""The ConfigRecord of a securefl step (request and reply)."""
FIT_CONFIG = "securefl.fit-config"
"""The strategy's fit config for this node, as Flower's ``FitIns.config``."""
EXTRA = "securefl.extra"
"""A step's own fields besides its payload: the arrays' ``layout`` (train); the node's ``party``, ``config``,
``identity`` and the ``aggregator``'s public key (keys)."""
KEYS, RELEASE = "keys", "release"
MAX_MESSAGE_BYTES = GRPC_MAX_MESSAGE_LENGTH - (1 << 20)
"""Flower's gRPC limit on one message (2 GiB - 1), less a megabyte for the message's own fields."""


@dataclass(frozen=True)
class Layout:
    """The shapes and dtypes of the strategy's arrays: how a flat securefl vector becomes Flower arrays."""

    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[str, ...]

    @classmethod
    def of(cls, arrays: Sequence[np.ndarray]) -> Layout:
        """The layout of ``arrays``."""
        return cls(tuple(tuple(int(d) for d in a.shape) for a in arrays), tuple(a.dtype.str for a in arrays))

    def flat(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """``arrays`` as one float64 vector; :class:`TransportError` unless they have this layout."""
        got = Layout.of(arrays)
        if got.shapes != self.shapes:
            raise TransportError(f"the ClientApp's fit returned arrays of shapes {list(got.shapes)}, but the global "
                                 f"model's are {list(self.shapes)}: return arrays of the model's shapes")
        if not arrays:
            return np.zeros(0)
        return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])

    def split(self, vector: np.ndarray) -> list[np.ndarray]:
        """``vector`` cut into arrays of this layout (each in its own dtype)."""
        sizes = [int(np.prod(s, dtype=np.int64)) for s in self.shapes]
        if int(vector.size) != sum(sizes):
            raise TransportError(f"a model of {vector.size} values does not fill arrays of shapes "
                                 f"{list(self.shapes)}")
        out, at = [], 0
        for shape, dtype, size in zip(self.shapes, self.dtypes, sizes, strict=True):
            out.append(vector[at:at + size].reshape(shape).astype(np.dtype(dtype)))
            at += size
        return out

    def to_text(self) -> str:
        """JSON text, as it travels."""
        return json.dumps({"shapes": self.shapes, "dtypes": self.dtypes})

    @classmethod
    def from_text(cls, text: str) -> Layout:
        """Inverse of :meth:`to_text`."""
        try:
            doc = json.loads(text)
            layout = cls(tuple(tuple(int(d) for d in s) for s in doc["shapes"]), tuple(str(t) for t in doc["dtypes"]))
            for t in layout.dtypes:
                np.dtype(t)
        except (ValueError, KeyError, TypeError) as exc:
            raise TransportError(f"a garbled array layout in a securefl train step ({exc!r})") from None
        return layout


def request(step: str, round: int, stage: int, payload: bytes) -> RecordDict:
    """A securefl step's content; :class:`TransportError` for a payload beyond Flower's message size."""
    size = len(payload)
    if size > MAX_MESSAGE_BYTES:
        raise TransportError(f"a securefl {step} message of {size} bytes exceeds Flower's limit of "
                             f"{MAX_MESSAGE_BYTES} bytes per message: use a smaller model or a scheme with "
                             "smaller ciphertexts (e.g. ckks, secagg)")
    return RecordDict({RECORD: ConfigRecord({"step": step, "round": round, "stage": stage, "payload": payload})})


def reply(payload: bytes | None = None, error: str | None = None) -> RecordDict:
    """A reply's content: ``payload``, or the party's ``error``."""
    return RecordDict({RECORD: ConfigRecord({"error": error} if error is not None else {"payload": payload or b""})})


def field(record: ConfigRecord, name: str, kind: type) -> Any:
    """``record[name]``, which must be of ``kind``; :class:`TransportError` otherwise."""
    value = record.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TransportError(f"a securefl message lacks its {name!r} field (or it is not {kind.__name__}); every "
                             "node and the server must run the same securefl")
    return value
