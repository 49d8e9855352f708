"""The versioned ciphertext envelope and its byte format.

Every protected update, and every combined aggregate, travels as an
:class:`Envelope`.  Its byte form is explicit framing, never pickle::

    b"SFLE"                 4-byte magic
    header length           4 bytes, big-endian unsigned
    header                  UTF-8 JSON object with exactly the fields below
    payload length          8 bytes, big-endian unsigned
    payload                 scheme-defined bytes

Parsing is strict: unknown or missing header fields, wrong types, party ids
outside ``[A-Za-z0-9._-]{1,64}``, negative rounds, trailing bytes and truncation
are all :class:`~crypto_backends.errors.MalformedCiphertextError`, and so are deep
nesting, huge integers and out-of-range numbers in the header
(:func:`~crypto_backends.jsonheader.load_header`).  Parsing does
not copy the payload (it is a ``memoryview`` into the input).
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .errors import MalformedCiphertextError
from .jsonheader import load_header

MAGIC = b"SFLE"
MAX_HEADER_BYTES = 1 << 20
MAX_PARTIES = 10_000
MAX_ROUND = 2**31 - 1
MAX_LENGTH = 2**31 - 1
PARTY_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_HEADER_FIELDS = {"scheme", "version", "key_id", "round", "kind", "parties", "weights", "length"}
Kind = Literal["update", "aggregate"]


def check_party_id(party_id: str) -> str:
    """Return ``party_id`` if it is a valid id, else raise :class:`MalformedCiphertextError`."""
    if not isinstance(party_id, str) or not PARTY_ID_RE.fullmatch(party_id):
        raise MalformedCiphertextError(
            f"invalid party id {party_id!r}: use 1-64 characters from letters, digits, '.', '_' and '-'"
        )
    return party_id


@dataclass(frozen=True)
class Envelope:
    """A protected vector plus the metadata needed to check it before use.

    ``parties`` and ``weights`` name who contributed: one entry for an ``update``,
    every contributor for an ``aggregate``.  ``length`` is the number of plaintext
    values.  ``payload`` is scheme-defined and opaque to everything else.
    """

    scheme: str
    version: int
    key_id: bytes
    round: int
    kind: Kind
    parties: tuple[str, ...]
    weights: tuple[float, ...]
    length: int
    payload: bytes | bytearray | memoryview

    @property
    def party(self) -> str:
        """The single sender of an ``update``."""
        if self.kind != "update":
            raise MalformedCiphertextError("an aggregate has no single party; read .parties")
        return self.parties[0]

    @property
    def total_weight(self) -> float:
        """The sum of the contributors' weights (exactly rounded, ``math.fsum``)."""
        return math.fsum(self.weights)

    def _header(self) -> bytes:
        return json.dumps(
            {
                "scheme": self.scheme,
                "version": self.version,
                "key_id": self.key_id.hex(),
                "round": self.round,
                "kind": self.kind,
                "parties": list(self.parties),
                "weights": list(self.weights),
                "length": self.length,
            },
            separators=(",", ":"),
            allow_nan=False,
        ).encode()

    def head_bytes(self) -> bytes:
        """The header alone (canonical JSON, no payload): what a block commitment binds besides the blocks."""
        return self._header()

    @classmethod
    def from_head(cls, data: bytes | memoryview) -> Envelope:
        """An envelope with an empty payload from :meth:`head_bytes`; refused unless ``data`` is canonical."""
        if len(data) > MAX_HEADER_BYTES:
            raise MalformedCiphertextError("envelope header too long")
        made = cls(payload=b"", **_validate_header(load_header(memoryview(data), "envelope header")))
        if made.head_bytes() != bytes(data):
            raise MalformedCiphertextError("envelope header is not in canonical form")
        return made

    def to_bytes(self) -> bytes:
        """Serialize (one copy of the payload)."""
        header = self._header()
        payload = self.payload
        plen = memoryview(payload).nbytes
        return b"".join((MAGIC, struct.pack(">I", len(header)), header, struct.pack(">Q", plen), payload))

    def nbytes(self) -> int:
        """Size of :meth:`to_bytes` without building it."""
        return 16 + len(self._header()) + memoryview(self.payload).nbytes

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Envelope:
        """Parse and validate; the returned payload is a view into ``data``."""
        view = memoryview(data).cast("B")
        if len(view) < 16 or bytes(view[:4]) != MAGIC:
            raise MalformedCiphertextError(
                "not a securefl envelope (bad magic or shorter than 16 bytes): "
                "pass the exact bytes produced by Envelope.to_bytes()"
            )
        (hlen,) = struct.unpack(">I", view[4:8])
        if hlen > MAX_HEADER_BYTES or 8 + hlen + 8 > len(view):
            raise MalformedCiphertextError("envelope truncated inside its header")
        header = load_header(view[8 : 8 + hlen], "envelope header")
        (plen,) = struct.unpack(">Q", view[8 + hlen : 16 + hlen])
        start = 16 + hlen
        if start + plen != len(view):
            raise MalformedCiphertextError(
                f"envelope payload is {len(view) - start} bytes but its header announces {plen}: "
                "the message was truncated or extended in transit"
            )
        fields = _validate_header(header)
        return cls(payload=view[start:], **fields)


def _validate_header(header: object) -> dict[str, Any]:
    """The fields of a decoded envelope header, each checked; ``MalformedCiphertextError`` names the first bad one."""
    if not isinstance(header, dict) or set(header) != _HEADER_FIELDS:
        got = sorted(header) if isinstance(header, dict) else type(header).__name__
        raise MalformedCiphertextError(f"envelope header fields {got} differ from {sorted(_HEADER_FIELDS)}")
    scheme, version, key_hex = header["scheme"], header["version"], header["key_id"]
    rnd, kind, parties, weights, length = (
        header["round"], header["kind"], header["parties"], header["weights"], header["length"],
    )
    key_id = _check_origin(scheme, version, key_hex)
    if not _is_int(rnd) or not 0 <= rnd <= MAX_ROUND:
        raise MalformedCiphertextError(f"invalid round {rnd!r}: must be an integer in [0, {MAX_ROUND}]")
    if kind not in ("update", "aggregate"):
        raise MalformedCiphertextError(f"invalid envelope kind {kind!r}")
    _check_contributors(kind, parties, weights)
    if not _is_int(length) or not 0 <= length <= MAX_LENGTH:
        raise MalformedCiphertextError(f"invalid vector length {length!r}")
    return {
        "scheme": scheme, "version": version, "key_id": key_id, "round": rnd, "kind": kind,
        "parties": tuple(parties), "weights": tuple(float(w) for w in weights), "length": length,
    }


def _check_origin(scheme: Any, version: Any, key_hex: Any) -> bytes:
    """The scheme name, the format version and the key fingerprint of a header; returns the fingerprint's bytes."""
    if not isinstance(scheme, str) or not PARTY_ID_RE.fullmatch(scheme):
        raise MalformedCiphertextError(f"invalid scheme name in envelope: {scheme!r}")
    if not _is_int(version) or not 0 < version < 2**16:
        raise MalformedCiphertextError(f"invalid envelope version {version!r}")
    if not isinstance(key_hex, str) or len(key_hex) > 128:
        raise MalformedCiphertextError("invalid key fingerprint in envelope")
    try:
        return bytes.fromhex(key_hex)
    except ValueError:
        raise MalformedCiphertextError("key fingerprint in envelope is not hex") from None


def _check_contributors(kind: object, parties: object, weights: object) -> None:
    """Between 1 and MAX_PARTIES distinct valid party ids (one for an update), each with a finite positive weight."""
    if not isinstance(parties, list) or not 1 <= len(parties) <= MAX_PARTIES:
        raise MalformedCiphertextError("envelope must name between 1 and 10000 parties")
    for p in parties:
        check_party_id(p)
    if len(set(parties)) != len(parties):
        raise MalformedCiphertextError("envelope names a party twice")
    if kind == "update" and len(parties) != 1:
        raise MalformedCiphertextError("an update envelope names exactly one party")
    if not isinstance(weights, list) or len(weights) != len(parties):
        raise MalformedCiphertextError("envelope weights must be a list aligned with its parties")
    for w in weights:
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w <= 0:
            raise MalformedCiphertextError(f"invalid weight {w!r}: weights are finite and positive")


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def merged_contributors(updates: Sequence[Envelope]) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """Parties and weights of an aggregate built from ``updates`` (sorted by party id)."""
    pairs = sorted((u.party, u.weights[0]) for u in updates)
    return tuple(p for p, _ in pairs), tuple(w for _, w in pairs)
