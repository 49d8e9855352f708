"""What the roles send each other, as bytes.  The same bytes travel in-process and over a network.

The global model the aggregator hands to parties is either ``open`` (a float64
vector: the scheme revealed at the aggregator) or ``sealed`` (the aggregate
envelope: only parties can open it), a sealed one with the contributors' signed
:class:`~crypto_backends.statements.Evidence` when ``crypto.verify_aggregate`` asks
for it.  Framing: one tag byte, then the body (for ``E``: the evidence's length,
the evidence, then the envelope).  A model's :attr:`GlobalModel.digest` is of the
model alone (its ``O`` or ``S`` form), never of the evidence: it is what parties sign
as the model they trained from.
A model is serialised once and parsed once: :class:`GlobalModel` keeps its
bytes and, when sealed, the parsed :class:`~crypto_backends.envelope.Envelope`.

The other steps' messages (see :mod:`securefl.transport.base`):

* ``share`` request: :func:`share_request_bytes` - the public message of the
  scheme's :class:`~crypto_backends.base.ShareRequest`, then the aggregate.
* ``evaluate`` reply: :func:`metrics_bytes` - the trainer's metrics as a JSON object (empty: not measured).
* ``init`` reply: :func:`vector_bytes` - the trainer's initial parameters as float64.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from crypto_backends.envelope import Envelope
from crypto_backends.errors import MalformedCiphertextError
from crypto_backends.jsonheader import load_header
from crypto_backends.statements import Evidence

_OPEN, _SEALED, _EVIDENCED = b"O", b"S", b"E"
_F8 = np.dtype("<f8")
_LEN = struct.Struct(">I")


@dataclass(frozen=True)
class GlobalModel:
    """The model a round starts from: an open vector, or a sealed aggregate only parties can open."""

    vector: np.ndarray | None = None
    aggregate: Envelope | None = None
    evidence: Evidence | None = None
    """A sealed model's proof, for its verifiers (see :mod:`crypto_backends.statements`)."""
    _cache: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)
    """``wire``: the message, made or received once; ``digest``: its SHA-256."""

    @classmethod
    def open(cls, vector: np.ndarray) -> GlobalModel:
        """A model sent in the clear: ``vector`` as float64."""
        return cls(vector=np.asarray(vector, dtype=_F8))

    @classmethod
    def of_aggregate(cls, aggregate: Envelope, evidence: Evidence | None = None) -> GlobalModel:
        """A model sent sealed: the encrypted aggregate the parties reveal themselves (with its ``evidence``)."""
        return cls(aggregate=aggregate, evidence=evidence)

    @property
    def is_sealed(self) -> bool:
        """Whether the model is an encrypted aggregate rather than a clear vector."""
        return self.aggregate is not None

    @property
    def length(self) -> int:
        """How many parameters the model has."""
        if self.aggregate is not None:
            return self.aggregate.length
        assert self.vector is not None
        return int(self.vector.size)

    @property
    def digest(self) -> bytes:
        """SHA-256 of the model without its evidence (computed once): which model this is, to parties that keep a
        decryption and to the statements they sign."""
        if "digest" not in self._cache:
            wire = memoryview(self.to_bytes())  # hashed in place: a model may be large, copy it no more
            if self.evidence is None:
                h = hashlib.sha256(wire)
            else:  # the envelope is the message's tail, after the tag, the evidence's length and the evidence
                (n,) = _LEN.unpack_from(wire, 1)
                h = hashlib.sha256(_SEALED)
                h.update(wire[1 + _LEN.size + n :])
            self._cache["digest"] = h.digest()
        return self._cache["digest"]

    def to_bytes(self) -> bytes:
        """The model's message (made once, then reused for every party and every call)."""
        if "wire" not in self._cache:
            if self.aggregate is None:
                assert self.vector is not None
                self._cache["wire"] = _OPEN + self.vector.astype(_F8, copy=False).tobytes()
            elif self.evidence is None:
                self._cache["wire"] = _SEALED + self.aggregate.to_bytes()
            else:
                proof = self.evidence.to_bytes()
                self._cache["wire"] = _EVIDENCED + _LEN.pack(len(proof)) + proof + self.aggregate.to_bytes()
        return self._cache["wire"]

    def shown(self, evidence: Evidence | None) -> bytes:
        """This sealed model's message with ``evidence`` in place of its own (one verifier's sampled openings); the
        same model, by :attr:`digest`."""
        wire = memoryview(self.to_bytes())
        if self.evidence is None:
            tail = wire[1:]
        else:
            (n,) = _LEN.unpack_from(wire, 1)
            tail = wire[1 + _LEN.size + n :]
        if evidence is None:
            return _SEALED + tail
        proof = evidence.to_bytes()
        return b"".join((_EVIDENCED, _LEN.pack(len(proof)), proof, tail))

    @classmethod
    def from_bytes(cls, data: bytes) -> GlobalModel:
        """Parse a model message; a sealed one's envelope is parsed here, and only here."""
        tag, body = data[:1], memoryview(data)[1:]
        if tag in (_SEALED, _EVIDENCED):
            evidence, body = _evidence_first(body) if tag == _EVIDENCED else (None, body)
            model = cls(aggregate=Envelope.from_bytes(body), evidence=evidence)
            model._cache["wire"] = bytes(data)
            return model
        if tag == _OPEN and len(body) % 8 == 0:
            vec = np.frombuffer(body, dtype=_F8).copy()
            if not np.isfinite(vec).all():
                raise MalformedCiphertextError("global model holds non-finite values")
            return cls(vector=vec)
        raise MalformedCiphertextError("not a securefl global-model message")


_CHALLENGE = struct.Struct(">32sI")


def challenge_bytes(aggregate_digest: bytes, blocks: int) -> bytes:
    """A ``challenge`` request (``verify_aggregate = "sampled"``): the fixed aggregate's digest, its block count."""
    return _CHALLENGE.pack(aggregate_digest, blocks)


def parse_challenge(data: bytes) -> tuple[bytes, int]:
    """Inverse of :func:`challenge_bytes`."""
    if len(data) != _CHALLENGE.size:
        raise MalformedCiphertextError("a garbled challenge request")
    digest, blocks = _CHALLENGE.unpack(data)
    if not 1 <= blocks <= 2**31:
        raise MalformedCiphertextError(f"a challenge over {blocks} blocks")
    return bytes(digest), int(blocks)


def indices_bytes(indices: Sequence[int]) -> bytes:
    """A ``challenge`` reply: the block indices a verifier drew, each 4 bytes big-endian."""
    return b"".join(_LEN.pack(i) for i in indices)


def max_indices_bytes(samples: int) -> int:
    """Most bytes an honest ``challenge`` reply takes when each verifier draws ``samples`` blocks."""
    return samples * _LEN.size


def parse_indices(data: bytes, blocks: int, most: int) -> tuple[int, ...]:
    """Inverse of :func:`indices_bytes`: ``min(most, blocks)`` distinct sorted indices below ``blocks``, or refused."""
    if len(data) % _LEN.size:
        raise MalformedCiphertextError("a garbled challenge reply")
    got = tuple(_LEN.unpack_from(data, i)[0] for i in range(0, len(data), _LEN.size))
    if len(got) != min(most, blocks) or list(got) != sorted(set(got)) or (got and got[-1] >= blocks):
        raise MalformedCiphertextError(f"a challenge reply must name {min(most, blocks)} distinct sorted block "
                                       f"indices below {blocks}")
    return got


def _evidence_first(body: memoryview) -> tuple[Evidence | None, memoryview]:
    """The length-prefixed evidence at the start of ``body`` (length 0: none), and the rest."""
    if len(body) < _LEN.size:
        raise MalformedCiphertextError("a message's evidence is truncated")
    (n,) = _LEN.unpack_from(body)
    if _LEN.size + n > len(body):
        raise MalformedCiphertextError("a message's evidence is longer than the message")
    evidence = Evidence.from_bytes(body[_LEN.size : _LEN.size + n]) if n else None
    return evidence, body[_LEN.size + n :]


def share_request_bytes(message: bytes, aggregate: Envelope, evidence: Evidence | None = None) -> bytes:
    """A ``share`` request: the scheme's public message, the aggregate's evidence (if any), then the aggregate."""
    proof = evidence.to_bytes() if evidence is not None else b""
    return _LEN.pack(len(message)) + bytes(message) + _LEN.pack(len(proof)) + proof + aggregate.to_bytes()


def parse_share_request(data: bytes) -> tuple[bytes, Envelope, Evidence | None]:
    """Inverse of :func:`share_request_bytes`."""
    if len(data) < _LEN.size:
        raise MalformedCiphertextError("share request is truncated")
    (n,) = _LEN.unpack_from(data)
    if _LEN.size + n > len(data):
        raise MalformedCiphertextError("share request's message is longer than the request")
    view = memoryview(data)
    evidence, rest = _evidence_first(view[_LEN.size + n :])
    return bytes(view[_LEN.size : _LEN.size + n]), Envelope.from_bytes(rest), evidence


MAX_METRICS_BYTES = 16 * 1024


def metrics_bytes(metrics: Mapping[str, float]) -> bytes:
    """An ``evaluate`` reply: the trainer's metrics as a JSON object (empty: not measured)."""
    return json.dumps(dict(metrics), separators=(",", ":"), allow_nan=False).encode()


def parse_metrics(data: bytes) -> dict[str, float]:
    """Inverse of :func:`metrics_bytes`; refuses anything but a small object of finite numbers."""
    if len(data) > MAX_METRICS_BYTES:
        raise MalformedCiphertextError(f"a metrics reply is at most {MAX_METRICS_BYTES} bytes, got {len(data)}")
    obj = load_header(data, "a metrics reply")
    if not isinstance(obj, dict) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for k, v in obj.items()):
        raise MalformedCiphertextError("a metrics reply must map names to finite numbers")
    return {k: float(v) for k, v in obj.items()}


def vector_bytes(vector: np.ndarray) -> bytes:
    """An ``init`` reply: the initial parameters as little-endian float64."""
    return np.asarray(vector, dtype=_F8).tobytes()


def parse_vector(data: bytes) -> np.ndarray:
    """Inverse of :func:`vector_bytes`: a non-empty vector of finite float64 values."""
    if not data or len(data) % _F8.itemsize:
        raise MalformedCiphertextError(f"initial parameters are float64 values, got {len(data)} bytes")
    vec = np.frombuffer(data, dtype=_F8).copy()
    if not np.isfinite(vec).all():
        raise MalformedCiphertextError("initial parameters hold non-finite values")
    return vec
