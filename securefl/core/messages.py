"""What the roles send each other, as bytes.  The same bytes travel in-process and over a network.

The global model the aggregator hands to parties is either ``open`` (a float64
vector: the scheme revealed at the aggregator) or ``sealed`` (the aggregate
envelope: only parties can open it).  Framing: one tag byte, then the body.
A model is serialised once and parsed once: :class:`GlobalModel` keeps its
bytes and, when sealed, the parsed :class:`~crypto_backends.envelope.Envelope`.

The other steps' messages (see :mod:`securefl.transport.base`):

* ``share`` request: :func:`share_request_bytes` - the public message of the
  scheme's :class:`~crypto_backends.base.ShareRequest`, then the aggregate.
* ``evaluate`` reply: :func:`metric_bytes` - one little-endian float64 (NaN: not measured).
"""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass, field

import numpy as np

from crypto_backends.envelope import Envelope
from crypto_backends.errors import MalformedCiphertextError

_OPEN, _SEALED = b"O", b"S"
_F8 = np.dtype("<f8")
_LEN = struct.Struct(">I")
_METRIC = struct.Struct("<d")


@dataclass(frozen=True)
class GlobalModel:
    """The model a round starts from: an open vector, or a sealed aggregate only parties can open."""

    vector: np.ndarray | None = None
    aggregate: Envelope | None = None
    _cache: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)
    """``wire``: the message, made or received once; ``digest``: its SHA-256."""

    @classmethod
    def open(cls, vector: np.ndarray) -> GlobalModel:
        return cls(vector=np.asarray(vector, dtype=_F8))

    @classmethod
    def of_aggregate(cls, aggregate: Envelope) -> GlobalModel:
        return cls(aggregate=aggregate)

    @property
    def is_sealed(self) -> bool:
        return self.aggregate is not None

    @property
    def digest(self) -> bytes:
        """SHA-256 of :meth:`to_bytes` (computed once): which model this is, to parties that keep a decryption."""
        if "digest" not in self._cache:
            self._cache["digest"] = hashlib.sha256(self.to_bytes()).digest()
        return self._cache["digest"]

    def to_bytes(self) -> bytes:
        """The model's message (made once, then reused for every party and every call)."""
        if "wire" not in self._cache:
            if self.aggregate is not None:
                self._cache["wire"] = _SEALED + self.aggregate.to_bytes()
            else:
                assert self.vector is not None
                self._cache["wire"] = _OPEN + self.vector.astype(_F8, copy=False).tobytes()
        return self._cache["wire"]

    @classmethod
    def from_bytes(cls, data: bytes) -> GlobalModel:
        """Parse a model message; a sealed one's envelope is parsed here, and only here."""
        tag, body = data[:1], memoryview(data)[1:]
        if tag == _SEALED:
            model = cls(aggregate=Envelope.from_bytes(body))
            model._cache["wire"] = bytes(data)
            return model
        if tag == _OPEN and len(body) % 8 == 0:
            vec = np.frombuffer(body, dtype=_F8).copy()
            if not np.isfinite(vec).all():
                raise MalformedCiphertextError("global model holds non-finite values")
            return cls(vector=vec)
        raise MalformedCiphertextError("not a securefl global-model message")


def share_request_bytes(message: bytes, aggregate: Envelope) -> bytes:
    """A ``share`` request: the scheme's public message, then the aggregate to make a share of."""
    return _LEN.pack(len(message)) + bytes(message) + aggregate.to_bytes()


def parse_share_request(data: bytes) -> tuple[bytes, Envelope]:
    """Inverse of :func:`share_request_bytes`."""
    if len(data) < _LEN.size:
        raise MalformedCiphertextError("share request is truncated")
    (n,) = _LEN.unpack_from(data)
    if _LEN.size + n > len(data):
        raise MalformedCiphertextError("share request's message is longer than the request")
    view = memoryview(data)
    return bytes(view[_LEN.size : _LEN.size + n]), Envelope.from_bytes(view[_LEN.size + n :])


def metric_bytes(metric: float | None) -> bytes:
    """An ``evaluate`` reply: the metric, NaN when it could not be measured."""
    return _METRIC.pack(float("nan") if metric is None else float(metric))


def parse_metric(data: bytes) -> float:
    """Inverse of :func:`metric_bytes`; refuses anything but one float64 (infinities included)."""
    if len(data) != _METRIC.size:
        raise MalformedCiphertextError(f"a metric is {_METRIC.size} bytes, got {len(data)}")
    (value,) = _METRIC.unpack(data)
    if math.isinf(value):
        raise MalformedCiphertextError("a metric must be finite (or NaN: not measured)")
    return float(value)
