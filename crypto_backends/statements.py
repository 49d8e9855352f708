"""Signed upload statements and the verified reveal: an aggregator that cheats is caught before anything opens.

Against an aggregator that deviates (it substitutes, fabricates, replays or shows
different parties different things), every party signs, with its identity key,
one :class:`Statement` per upload binding:

* the federation's context (a digest of its roster and setting, chosen by the caller),
* the key set's fingerprint and the round,
* its own id and its public weight,
* the digest of the global model it trained from,
* the SHA-256 of the protected upload it sends.

The aggregator keeps the signed statements with the uploads and must present them,
as :class:`Evidence`, to whichever role reveals (a party opening a sealed aggregate,
a party giving a decryption or unmasking share).  :func:`verify_aggregate` is that
role's check before it reveals anything: every signature verifies for a distinct
party of the roster; all are of this round and key set and name **one** global
model (Pasquini, Francati and Ateniese, CCS 2022: different models to different
parties isolate one update); the contributors and weights the aggregate claims are
exactly the signed ones, at least ``least`` of them (so a DP minimum of
contributors counts signatures, not the aggregate's claims); and, with the uploads
themselves in the evidence (``full``), the verifier folds them with the scheme's own
accumulator and checks that the aggregate is exactly that fold, so an aggregator
that sends one party's upload, or pads an aggregate with its own encryptions of
zero, is refused with :class:`~crypto_backends.errors.AggregateMismatchError`.

What is promised: with ``full`` evidence, a verifier reveals only the fold of at
least ``least`` uploads signed by distinct parties for this round, key set and one
model.  What is not: the aggregator may still drop honest parties' uploads (the
round then has fewer contributors, down to ``least``), and a verifier that receives
only statements (``Evidence.uploads`` empty) checks who contributed, not that the
aggregate is their fold.  Refolding needs the aggregator's key, which holds no
secret under any scheme here (``AggregatorKey.holds_secret`` is false): every
verifier holds a copy.  Cost of ``full``: each verifier receives every contributor's
upload (contributors x upload bytes) and folds them once, the aggregator's own work.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from .base import Scheme
from .capabilities import BlockFold, InteractiveSetup
from .envelope import Envelope, check_party_id
from .errors import AggregateMismatchError, MalformedCiphertextError, SecureFLError
from .keys import AggregatorKey, PartyIdentity
from .sampling import MAX_SAMPLES, Sampler, check_samples

VerifyMode = Literal["full", "sampled", "off"]
VERIFY_MODES: tuple[VerifyMode, ...] = ("full", "sampled", "off")
"""``full``: statements and uploads, refolded by every verifier; ``sampled``: statements, and blocks each verifier
picked at random, checked against the signed block commitments (:mod:`crypto_backends.sampling`); ``off``: no
evidence (honest-but-curious)."""

_DOMAIN = b"securefl-upload-statement-v1|"
_DIGEST = 32
_U32 = struct.Struct(">I")
_EVIDENCE = b"SFLV1"
_SAMPLED = b"SFLV2"
_SIGNED_UPLOAD = b"SFLU1"


class SignatureChecks(Protocol):
    """Checks a party's signature and certificate (a :class:`~crypto_backends.keys.PartyIdentity` does, and so
    does a verify-only checker held by a role that is no party)."""

    def verify(self, party: str, data: bytes, signature: bytes, certificate: bytes) -> None:
        """Raise a :class:`~crypto_backends.errors.SecureFLError` unless ``signature`` is ``party``'s over ``data``."""
        ...


def digest(data: bytes | memoryview) -> bytes:
    """SHA-256 of ``data``: how a statement names an upload or a model."""
    return hashlib.sha256(data).digest()


@dataclass(frozen=True)
class Statement:
    """What one party vouches for with one upload (see the module docstring); :meth:`to_bytes` is what it signs."""

    context: bytes
    key_id: bytes
    round: int
    party: str
    weight: float
    model: bytes
    """Digest of the global model the party trained from."""
    payload: bytes
    """Digest of the protected upload it sent (its envelope's bytes)."""

    def to_bytes(self) -> bytes:
        """The canonical signed form: a domain tag, then every field at a fixed width or length-prefixed."""
        if len(self.context) != _DIGEST or len(self.model) != _DIGEST or len(self.payload) != _DIGEST:
            raise MalformedCiphertextError("a statement's context, model and payload are 32-byte digests")
        name, key = self.party.encode(), bytes(self.key_id)
        return (_DOMAIN + self.context + struct.pack(">H", len(key)) + key + struct.pack(">Q", self.round)
                + struct.pack(">H", len(name)) + name + struct.pack(">d", self.weight) + self.model + self.payload)

    @classmethod
    def from_bytes(cls, data: bytes) -> Statement:
        """Inverse of :meth:`to_bytes`; :class:`MalformedCiphertextError` for anything else."""
        try:
            if not data.startswith(_DOMAIN):
                raise ValueError("not a statement")
            at = len(_DOMAIN)
            context = data[at : at + _DIGEST]
            at += _DIGEST
            (klen,) = struct.unpack_from(">H", data, at)
            key_id = data[at + 2 : at + 2 + klen]
            at += 2 + klen
            (rnd,) = struct.unpack_from(">Q", data, at)
            (nlen,) = struct.unpack_from(">H", data, at + 8)
            party = check_party_id(data[at + 10 : at + 10 + nlen].decode())
            at += 10 + nlen
            (weight,) = struct.unpack_from(">d", data, at)
            model, payload = data[at + 8 : at + 8 + _DIGEST], data[at + 8 + _DIGEST : at + 8 + 2 * _DIGEST]
            made = cls(context, key_id, rnd, party, weight, model, payload)
            if made.to_bytes() != data:
                raise ValueError("trailing or truncated bytes")
        except (ValueError, struct.error, UnicodeDecodeError) as exc:
            raise MalformedCiphertextError(f"a garbled upload statement ({exc})") from None
        return made


@dataclass(frozen=True)
class Signed:
    """A :class:`Statement` with its party's signature and the certificate naming that party."""

    statement: Statement
    signature: bytes
    certificate: bytes

    @classmethod
    def sign(cls, statement: Statement, identity: PartyIdentity) -> Signed:
        """``statement`` signed with ``identity`` (the party's own key)."""
        signature, certificate = identity.sign(statement.to_bytes())
        return cls(statement, signature, certificate)

    def verify(self, verifier: SignatureChecks) -> None:
        """Raise :class:`AggregateMismatchError` unless the signature is the named party's, certified for it."""
        try:
            verifier.verify(self.statement.party, self.statement.to_bytes(), self.signature, self.certificate)
        except SecureFLError as exc:
            raise AggregateMismatchError(f"the upload statement of {self.statement.party} does not verify ({exc}): "
                                         "forged or altered by the aggregator; nothing is revealed") from None

    def to_bytes(self) -> bytes:
        """Three length-prefixed fields: statement, signature, certificate."""
        return b"".join(_U32.pack(len(x)) + x for x in (self.statement.to_bytes(), self.signature, self.certificate))

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> Signed:
        """Inverse of :meth:`to_bytes`."""
        fields = _split(bytes(data), 3, "signed statement")
        return cls(Statement.from_bytes(fields[0]), fields[1], fields[2])


def _split(data: bytes, count: int, what: str) -> list[bytes]:
    """``count`` length-prefixed fields filling ``data`` exactly."""
    out, at = [], 0
    for _ in range(count):
        if at + _U32.size > len(data):
            raise MalformedCiphertextError(f"a truncated {what}")
        (n,) = _U32.unpack_from(data, at)
        at += _U32.size
        if at + n > len(data):
            raise MalformedCiphertextError(f"a truncated {what}")
        out.append(data[at : at + n])
        at += n
    if at != len(data):
        raise MalformedCiphertextError(f"trailing bytes after a {what}")
    return out


def signed_upload_bytes(signed: Signed, upload: bytes) -> bytes:
    """An upload as it travels when statements are on: a tag, the signed statement, the envelope's bytes."""
    head = signed.to_bytes()
    return _SIGNED_UPLOAD + _U32.pack(len(head)) + head + upload


def parse_upload(data: bytes | memoryview) -> tuple[Signed | None, memoryview]:
    """``(signed statement or None, envelope bytes)`` of an upload, signed (:func:`signed_upload_bytes`) or not."""
    view = memoryview(data)
    if bytes(view[: len(_SIGNED_UPLOAD)]) != _SIGNED_UPLOAD:
        return None, view
    at = len(_SIGNED_UPLOAD)
    if len(view) < at + _U32.size:
        raise MalformedCiphertextError("a truncated signed upload")
    (n,) = _U32.unpack_from(view, at)
    at += _U32.size
    if at + n > len(view):
        raise MalformedCiphertextError("a truncated signed upload")
    return Signed.from_bytes(view[at : at + n]), view[at + n :]


@dataclass(frozen=True)
class Evidence:
    """What the aggregator shows a verifier with an aggregate: every contributor's signed statement, and with
    ``full`` the uploads themselves (the same order; empty for statements only), or with ``sampled`` each upload's
    :class:`~crypto_backends.sampling.Opening` at the verifier's ``indices``."""

    signed: tuple[Signed, ...]
    uploads: tuple[bytes, ...] = ()
    indices: tuple[int, ...] = ()
    openings: tuple[bytes, ...] = ()

    def statements_only(self) -> Evidence:
        """This evidence without uploads or openings."""
        return Evidence(self.signed)

    def to_bytes(self) -> bytes:
        """A tag, the count of statements and of uploads (or of indices, then the indices), then each item
        length-prefixed."""
        if self.openings:
            items = [s.to_bytes() for s in self.signed] + [bytes(o) for o in self.openings]
            return (_SAMPLED + _U32.pack(len(self.signed)) + _U32.pack(len(self.indices))
                    + b"".join(_U32.pack(i) for i in self.indices) + b"".join(_U32.pack(len(x)) + x for x in items))
        items = [s.to_bytes() for s in self.signed] + [bytes(u) for u in self.uploads]
        return (_EVIDENCE + _U32.pack(len(self.signed)) + _U32.pack(len(self.uploads))
                + b"".join(_U32.pack(len(x)) + x for x in items))

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> Evidence:
        """Inverse of :meth:`to_bytes`."""
        data = bytes(data)
        head = len(_EVIDENCE) + 2 * _U32.size
        if data[: len(_EVIDENCE)] not in (_EVIDENCE, _SAMPLED) or len(data) < head:
            raise MalformedCiphertextError("not a securefl evidence message")
        (ns,), (nu,) = _U32.unpack_from(data, len(_EVIDENCE)), _U32.unpack_from(data, len(_EVIDENCE) + _U32.size)
        if data[: len(_SAMPLED)] == _SAMPLED:
            if nu > MAX_SAMPLES or len(data) < head + nu * _U32.size:
                raise MalformedCiphertextError("a garbled sampled evidence message")
            indices = tuple(_U32.unpack_from(data, head + i * _U32.size)[0] for i in range(nu))
            items = _split(data[head + nu * _U32.size:], 2 * ns, "evidence message")
            return cls(tuple(Signed.from_bytes(x) for x in items[:ns]), (), indices, tuple(items[ns:]))
        if nu not in (0, ns):
            raise MalformedCiphertextError("evidence holds uploads for some statements only")
        items = _split(data[head:], ns + nu, "evidence message")
        return cls(tuple(Signed.from_bytes(x) for x in items[:ns]), tuple(items[ns:]))


@dataclass(frozen=True)
class Verifier:
    """One role's check of an aggregate before it reveals (see :func:`verify_aggregate`)."""

    scheme: Scheme
    aggregator_key: AggregatorKey
    """The aggregator's (public) key, for refolding the uploads."""
    checks: SignatureChecks
    """Checks each statement's certificate against the federation's CA and its signature."""
    roster: frozenset[str]
    context: bytes
    least: int
    """Fewest distinct signed contributors an aggregate may have."""
    full: bool = True
    """Refold the uploads (``verify_aggregate = "full"``); else check the statements (and samples) only."""
    sampler: Sampler | None = None
    """With ``verify_aggregate = "sampled"`` (and not ``full``): check the blocks this verifier drew."""

    def commitment(self, upload: Envelope, data: bytes | memoryview) -> bytes:
        """What a statement names ``upload`` (whose bytes are ``data``) by: a block root when sampled, else SHA-256."""
        return self.sampler.commit(upload) if self.sampler is not None else digest(data)


def refoldable(scheme: Scheme) -> bool:
    """Whether a verifier can fold ``scheme``'s signed uploads with the aggregator's public key alone: what
    ``full`` (every upload) and ``sampled`` (drawn blocks) check beyond the statements.

    Not for a scheme with setup exchanges (secagg): folding its masked uploads needs the round's setup,
    which only the aggregator ran; there the verifiers check the signed statements (who, what weight,
    one model, how many) and the scheme's own consistency round checks the survivor set.  Not under a
    function-key reveal (fe) either: a function key opens only the weighted sum of the round's ciphertexts
    of the parties it names, and a ciphertext the aggregator fabricated or replayed does not cancel that
    round's pads (it decrypts to noise), so what the key authority must check is who contributed and with
    what weight - the signed statements - and it has no use for the uploads.
    """
    return scheme.capability(InteractiveSetup) is None and not scheme.declarations.reveal.function_key


def block_source(scheme: Scheme) -> BlockFold | None:
    """``scheme``'s blocks where ``sampled`` verifiers check drawn blocks of the uploads: where
    :func:`refoldable` and its payloads are blocks that fold one by one
    (:class:`~crypto_backends.capabilities.BlockFold`); ``None`` elsewhere (the statements alone are checked)."""
    blocks = scheme.capability(BlockFold)
    return blocks if blocks is not None and refoldable(scheme) else None


def block_sampler(scheme: Scheme, aggregator_key: AggregatorKey, samples: int) -> Sampler | None:
    """How ``scheme``'s uploads commit to their blocks and a verifier checks ``samples`` of them under
    ``sampled`` (:func:`block_source`); ``None`` where the statements alone are checked."""
    blocks = block_source(scheme)
    return Sampler(blocks, aggregator_key, samples) if blocks is not None else None


def verify_aggregate(verifier: Verifier, aggregate: Envelope, evidence: Evidence | None, *,
                     own: Statement | None = None, drawn: tuple[int, tuple[int, ...]] | None = None) -> None:
    """Raise :class:`AggregateMismatchError` unless ``evidence`` proves ``aggregate`` (see the module docstring).

    ``own``: what the verifying party itself signed for this round, if it contributed:
    every contributor must name its model, and its own statement, if listed, must be it.
    ``drawn``: under ``sampled``, the (block count, indices) this verifier drew for this
    aggregate (:meth:`~crypto_backends.sampling.Sampler.draw`); none drawn is a refusal.
    """
    evidence = verify_contributors(verifier, aggregate.round, aggregate.key_id,
                                   dict(zip(aggregate.parties, aggregate.weights, strict=True)), evidence, own=own)
    if verifier.full:
        _check_fold(verifier, aggregate, evidence)
    elif verifier.sampler is not None:
        if drawn is None or not evidence.openings:
            raise AggregateMismatchError(f"round {aggregate.round}: no blocks of this aggregate were drawn by this "
                                         "party or opened for it (verify_aggregate = 'sampled'): refused")
        order = sorted(range(len(evidence.signed)), key=lambda i: evidence.signed[i].statement.party)
        roots = [(evidence.signed[i].statement.party, evidence.signed[i].statement.weight,
                  evidence.signed[i].statement.payload) for i in order]
        if len(evidence.openings) != len(evidence.signed):
            raise AggregateMismatchError(f"round {aggregate.round}: the evidence opens some uploads only: refused")
        check_samples(verifier.sampler, aggregate, roots, [evidence.openings[i] for i in order], evidence.indices,
                      drawn)


def verify_contributors(verifier: Verifier, rnd: int, key_id: bytes, claimed: Mapping[str, float],
                        evidence: Evidence | None, *, own: Statement | None = None) -> Evidence:
    """The statements half of :func:`verify_aggregate`: ``evidence`` signs exactly the ``claimed`` contributors and
    weights of round ``rnd`` under key set ``key_id``, at least ``verifier.least`` distinct roster parties, one
    model (and ``own`` unchanged); :class:`AggregateMismatchError` otherwise.  Returns ``evidence``.

    For a role that checks who an aggregate is of without its bytes (a key authority asked for a function key).
    """
    if evidence is None:
        raise AggregateMismatchError(f"round {rnd}: the aggregate comes without its contributors' signed "
                                     "statements: refused (the aggregator must show them; verify_aggregate)")
    signed = {s.statement.party: s for s in evidence.signed}
    if len(signed) != len(evidence.signed):
        raise AggregateMismatchError(f"round {rnd}: one party's statement is shown twice: refused")
    unknown = sorted(set(signed) - verifier.roster)
    if unknown:
        raise AggregateMismatchError(f"round {rnd}: statements of {', '.join(unknown)}, not parties of this "
                                     "federation: refused (fabricated contributors)")
    for s in evidence.signed:
        _check_statement(verifier, s, rnd, key_id)
    got = {p: s.statement.weight for p, s in signed.items()}
    if got != dict(claimed):
        raise AggregateMismatchError(
            f"round {rnd}: the aggregate claims contributors {sorted(claimed)} but the signed statements are of "
            f"{sorted(got)} (or their weights differ): refused (contributors added or weights changed)")
    if len(signed) < verifier.least:
        raise AggregateMismatchError(f"round {rnd}: {len(signed)} signed contributor(s), fewer than the "
                                     f"{verifier.least} an aggregate must hold: refused (none is revealed for fewer)")
    models = {s.statement.model for s in evidence.signed} | ({own.model} if own is not None else set())
    if len(models) != 1:
        raise AggregateMismatchError(f"round {rnd}: the contributors trained from {len(models)} different global "
                                     "models: refused (an aggregator that sends different models to different "
                                     "parties could isolate one update)")
    mine = signed.get(own.party) if own is not None else None
    if mine is not None and mine.statement != own:
        raise AggregateMismatchError(f"round {rnd}: this party's own upload was replaced in the aggregate: refused")
    return evidence


def _check_statement(verifier: Verifier, s: Signed, rnd: int, key_id: bytes) -> None:
    st = s.statement
    if st.context != verifier.context:
        raise AggregateMismatchError(f"round {rnd}: the statement of {st.party} is of another federation: refused")
    if st.round != rnd or st.key_id != key_id:
        raise AggregateMismatchError(f"round {rnd}: the statement of {st.party} is of round {st.round} "
                                     "or another key set: refused (a replayed statement)")
    s.verify(verifier.checks)


def _check_fold(verifier: Verifier, aggregate: Envelope, evidence: Evidence) -> None:
    rnd = aggregate.round
    if len(evidence.uploads) != len(evidence.signed):
        raise AggregateMismatchError(f"round {rnd}: the evidence holds no uploads to refold (verify_aggregate = "
                                     "'full' needs them): refused")
    acc = verifier.scheme.accumulator(verifier.aggregator_key, round=rnd)
    for s, upload in sorted(zip(evidence.signed, evidence.uploads, strict=True), key=lambda x: x[0].statement.party):
        st = s.statement
        if digest(upload) != st.payload:
            raise AggregateMismatchError(f"round {rnd}: the upload shown for {st.party} is not the one it signed: "
                                         "refused (a substituted upload)")
        try:
            env = Envelope.from_bytes(upload)
            if env.kind != "update" or env.party != st.party or env.weights[0] != st.weight:
                raise MalformedCiphertextError("it names another party, kind or weight than its statement")
            acc.add(env)
        except SecureFLError as exc:
            raise AggregateMismatchError(f"round {rnd}: the signed upload of {st.party} does not fold ({exc}): "
                                         "refused") from None
    try:
        refolded = acc.result()
    except SecureFLError as exc:
        raise AggregateMismatchError(f"round {rnd}: the signed uploads do not fold ({exc}): refused") from None
    if acc.rejected or refolded.to_bytes() != aggregate.to_bytes():
        raise AggregateMismatchError(f"round {rnd}: the aggregate is not the fold of its contributors' signed "
                                     "uploads: refused (a substituted, padded or altered aggregate)")


def check_upload(signed: Signed | None, sender: str, upload: Envelope, body: bytes | memoryview, *,
                 context: bytes, model: bytes, checks: SignatureChecks, sampler: Sampler | None = None) -> None:
    """The aggregator's check of one upload's statement on arrival: there, the sender's, naming this upload
    (party, round, key set, weight, digest) and the model the aggregator sent; :class:`AggregateMismatchError`
    otherwise (the upload is refused: it costs its sender only)."""
    if signed is None:
        raise AggregateMismatchError(f"the upload of {sender} carries no signed statement, but crypto.verify_aggregate "
                                     "asks for one: every role must run with the same [crypto] settings")
    st = signed.statement
    if (st.party, st.round, st.key_id, st.weight) != (sender, upload.round, upload.key_id, upload.weights[0]) \
            or st.context != context or st.payload != (sampler.commit(upload) if sampler else digest(body)):
        raise AggregateMismatchError(f"the statement sent with the upload of {sender} does not describe that upload "
                                     "(party, round, key set, weight or digest): refused")
    if st.model != model:
        raise AggregateMismatchError(f"{sender} trained round {st.round} from another global model than the one "
                                     "sent to it: refused (a stale or misrouted model)")
    signed.verify(checks)


def context_of(roster: Sequence[str], setting: bytes = b"") -> bytes:
    """A federation's statement context: the digest of its sorted roster and ``setting`` (e.g. its name)."""
    names = sorted(roster)
    return digest(b"securefl-federation|" + struct.pack(">I", len(names))
                  + b"".join(struct.pack(">H", len(n.encode())) + n.encode() for n in names) + setting)


__all__ = [
    "VERIFY_MODES",
    "Evidence",
    "SignatureChecks",
    "Signed",
    "Statement",
    "Verifier",
    "VerifyMode",
    "block_sampler",
    "check_upload",
    "context_of",
    "digest",
    "parse_upload",
    "refoldable",
    "signed_upload_bytes",
    "verify_aggregate",
]
