"""One secure weighted mean end to end, every role played in this process.

The one minimal helper of the hazmat layer: the contract tests, the benchmark and
anyone who wants a scheme without a federation around it use it.  The round's
steps and their order are :class:`~crypto_backends.protocol.SecureSum`'s, the same
the round engine runs; here every message is a direct call (:class:`_InProcess`):

* setup exchanges, if the scheme declares any (:func:`run_setup`); with ``drop`` a
  fraction of the parties set up then leaves before protecting (:func:`dropouts`).
  A scheme with setup exchanges signs round state with the parties' identities:
  unless the caller gives its own, every party gets a fresh one from an
  in-process authority (:func:`bind_identities`);
* every remaining party prepares (if the scheme offers
  :class:`~crypto_backends.capabilities.Precompute`) and protects its vector, to
  bytes; the aggregator parses and combines them, to bytes;
* the aggregate becomes the weighted sum as the scheme's reveal plan says
  (:func:`reveal_sum`): from checked shares (after the survivors' consistency
  exchange, if the scheme offers one), with the authority's function key
  (:func:`function_key_for`), at the aggregator, or opened by the first party;
* divided by the contributors' total weight, it is the fused mean;
* with ``verify="full"`` (or ``True``) or ``"sampled"``, the round also runs the verified reveal of
  :mod:`crypto_backends.statements` as ``crypto.verify_aggregate`` says: every party signs its upload's
  :class:`~crypto_backends.statements.Statement` (under ``sampled`` naming the Merkle root of its blocks),
  the aggregator checks each on arrival (:func:`~crypto_backends.statements.check_upload`),
  and every role that reveals (the party that opens a sealed aggregate, every party
  asked for a share) first verifies the aggregate against the
  :class:`~crypto_backends.statements.Evidence` (every signature, and under ``full`` the uploads
  refolded under the aggregator's public key; under ``sampled`` it draws block indices once the aggregate
  is fixed, the aggregator opens them, and it refolds those blocks) and raises
  :class:`~crypto_backends.errors.AggregateMismatchError` for one that is not their fold;
* with ``publish=True``, the sum also goes through the publication step a real
  federation applies before the fused vector leaves the key holders
  (:func:`release_mean`: :meth:`~crypto_backends.base.Scheme.release` where parties
  reveal, e.g. ckks' noise flooding): ``RoundTrip.released``, what a user receives.

:func:`run_round` does all of it and times each step (:class:`RoundTrip`);
:func:`secure_weighted_mean` returns only the fused mean.  Every party plays
honestly here: a share that fails its check raises instead of being dropped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import RevealSite, Scheme, offered, weighted_mean
from .capabilities import ConsistencyCheck, FunctionKeys, InteractiveSetup, Precompute, ShareRequest, ShareReveal
from .envelope import Envelope
from .errors import InvalidParameterError, KeyRoleError, ShareError
from .identities import LocalAuthority
from .keys import FunctionKey, Key, KeySet, PartyIdentity
from .protocol import CheckShare, Roles, SecureSum
from .sampling import DEFAULT_SAMPLES, Prover
from .statements import (
    Evidence,
    Signed,
    Statement,
    Verifier,
    VerifyMode,
    block_sampler,
    check_upload,
    context_of,
    digest,
    parse_upload,
    refoldable,
    signed_upload_bytes,
    verify_aggregate,
)

MODEL_DIGEST = digest(b"securefl-roundtrip-model")
"""The global model every party of a verified in-process round names in its statement (there is no model here)."""
_U32 = 4
"""Bytes of a count or a block index in the engine's challenge messages (``securefl.core.messages``)."""


def contributor_weights(aggregate: Envelope) -> dict[str, float]:
    """The weight vector an aggregate holds, party -> weight: what a function key is asked for."""
    return dict(zip(aggregate.parties, aggregate.weights, strict=True))


def revealing_key(scheme: Scheme, keys: KeySet, party: str | None = None) -> Key:
    """The key of the role that reveals aggregates under ``scheme`` (``party``'s, or the first party's)."""
    if scheme.declarations.reveal.site is RevealSite.AGGREGATOR:
        return keys.aggregator
    return keys.parties[party if party is not None else sorted(keys.parties)[0]]


def function_key_for(scheme: Scheme, keys: KeySet, aggregate: Envelope) -> FunctionKey | None:
    """The authority's function key for ``aggregate``'s contributors, or ``None`` if the scheme needs none."""
    if not scheme.declarations.reveal.function_key:
        return None
    if keys.authority is None:
        raise KeyRoleError(
            f"the {scheme.name} scheme reveals with function keys, which only the authority's key derives, "
            "and this key set has none: pass the KeySet that the scheme's keygen() returned"
        )
    fkeys = offered(scheme, FunctionKeys)
    return fkeys.function_key(keys.authority, round=aggregate.round, weights=contributor_weights(aggregate))


def bind_identities(scheme: Scheme, keys: KeySet, identities: Mapping[str, PartyIdentity] | None = None) -> None:
    """Bind each party key of ``keys`` to its identity in ``identities``, or to a fresh one of a new
    :class:`~crypto_backends.identities.LocalAuthority` when none are given; nothing for a scheme without
    setup exchanges (it signs nothing)."""
    setup = scheme.capability(InteractiveSetup)
    if setup is None:
        return
    given = identities if identities is not None else LocalAuthority().issue_all(keys.parties)
    for party, key in keys.parties.items():
        setup.bind_identity(key, given[party])


class _Statements:
    """A verified round's statements, as :mod:`crypto_backends.statements` runs them, with their costs.

    Each party signs its upload with its identity; the aggregator checks each statement on arrival and
    keeps it with the upload; a role that reveals parses the :class:`Evidence` and verifies the aggregate
    before it reveals, as the federation's roles do under ``mode``: ``full`` refolds the uploads, ``sampled``
    runs the challenge (the aggregator names the fixed aggregate's digest, the verifier draws block indices,
    the aggregator opens them, :class:`~crypto_backends.sampling.Prover`) and checks the drawn blocks; where
    the scheme is not :func:`~crypto_backends.statements.refoldable` (secagg, fe), the statements alone are
    checked in either mode.  Times are ``time.perf_counter`` seconds.
    """

    def __init__(self, scheme: Scheme, keys: KeySet, identities: Mapping[str, PartyIdentity], mode: VerifyMode,
                 samples: int) -> None:
        self.identities = identities
        self.context = context_of(sorted(keys.parties), scheme.name.encode())
        checks = next(iter(identities.values()))  # any identity of the one authority checks every certificate
        sampler = block_sampler(scheme, keys.aggregator, samples) if mode == "sampled" else None
        self.verifier = Verifier(scheme, keys.aggregator, checks, frozenset(keys.parties), self.context, least=1,
                                 full=mode == "full" and refoldable(scheme), sampler=sampler)
        plan = scheme.declarations.reveal
        self.keep = (plan.shares or plan.site is RevealSite.PARTIES) and (self.verifier.full or sampler is not None)
        """Keep the uploads for the evidence: parties reveal, and refold them or blocks of them first (as the
        federation's aggregator does)."""
        self.own: dict[str, Statement] = {}
        self.kept: dict[str, tuple[Signed, bytes]] = {}
        self.sign_s: list[float] = []
        self.check_s = 0.0
        self.prove_s = 0.0
        self.verify_s: list[float] = []
        self.verifiers: list[str] = []
        self.statement_bytes: list[int] = []
        self.evidence_bytes: list[int] = []
        self.challenge_bytes: list[int] = []
        self.evidence: bytes = b""
        self._sealed: Evidence | None = None
        self._prover: Prover | None = None
        self._digest: tuple[Envelope, bytes] | None = None  # the aggregator hashes each aggregate once
        self._drawn: dict[str, tuple[bytes, tuple[int, tuple[int, ...]]]] = {}  # party -> (digest, its draw)

    def sign(self, party: str, upload: Envelope, data: bytes) -> bytes:
        """``data`` (``upload``'s bytes) with ``party``'s signed statement of it (its digest, or its block root
        under ``sampled``), as it travels."""
        t0 = time.perf_counter()
        statement = Statement(self.context, upload.key_id, upload.round, party, upload.weights[0], MODEL_DIGEST,
                              self.verifier.commitment(upload, data))
        wire = signed_upload_bytes(Signed.sign(statement, self.identities[party]), data)
        self.sign_s.append(time.perf_counter() - t0)
        self.own[party] = statement
        self.statement_bytes.append(len(wire) - len(data))
        return wire

    def accept(self, sender: str, wire: bytes) -> Envelope:
        """The aggregator's parse and check of one signed upload (the check timed apart from the parse)."""
        signed, body = parse_upload(wire)
        upload = Envelope.from_bytes(body)
        t0 = time.perf_counter()
        check_upload(signed, sender, upload, body, context=self.context, model=MODEL_DIGEST,
                     checks=self.verifier.checks, sampler=self.verifier.sampler)
        assert signed is not None  # check_upload refuses an upload without its statement
        self.kept[sender] = (signed, bytes(body) if self.keep else b"")
        self.check_s += time.perf_counter() - t0
        return upload

    def seal(self, aggregate: Envelope) -> None:
        """The aggregator's evidence for ``aggregate``'s contributors: serialised once for every verifier, or
        under ``sampled`` kept for the openings each verifier's draw asks for."""
        t0 = time.perf_counter()
        kept = [self.kept[p] for p in aggregate.parties]
        sealed = Evidence(tuple(s for s, _ in kept), tuple(u for _, u in kept) if self.keep else ())
        if self.verifier.sampler is not None and self.keep:
            self._sealed, self._prover = sealed, Prover(self.verifier.sampler, sealed.uploads)
        else:
            self.evidence = sealed.to_bytes()
        self.kept.clear()  # the uploads now live in the evidence only
        self.check_s += time.perf_counter() - t0

    def verify(self, party: str, aggregate: Envelope) -> None:
        """``party``'s check before it reveals: under ``sampled`` first the challenge (:meth:`_challenge`), then
        parse the evidence shown to it, verify every signature, and refold the uploads or the drawn blocks."""
        wire = self._challenge(party, aggregate) if self._prover is not None else self.evidence
        t0 = time.perf_counter()
        drawn = None
        if self._prover is not None:  # the party finds its draw by the digest of the aggregate it is shown
            key, mine = self._drawn[party]
            drawn = mine if digest(aggregate.to_bytes()) == key else None
        verify_aggregate(self.verifier, aggregate, Evidence.from_bytes(wire), own=self.own.get(party), drawn=drawn)
        spent = time.perf_counter() - t0
        if self._prover is not None:
            self.verify_s[-1] += spent  # after its draw's time
        else:
            self.verify_s.append(spent)
            self.verifiers.append(party)
        self.evidence_bytes.append(len(wire))

    def _challenge(self, party: str, aggregate: Envelope) -> bytes:
        """The ``sampled`` challenge with ``party``: the aggregator names the aggregate's digest and block count
        (timed in :attr:`prove_s`), ``party`` draws and keeps its indices (in its ``verify_s``), the aggregator
        opens every signed upload there and serialises the evidence shown to ``party`` (:attr:`prove_s`)."""
        sampler, prover, sealed = self.verifier.sampler, self._prover, self._sealed
        assert sampler is not None and prover is not None and sealed is not None
        t0 = time.perf_counter()
        if self._digest is None or self._digest[0] is not aggregate:
            self._digest = (aggregate, digest(aggregate.to_bytes()))
        key, count = self._digest[1], sampler.blocks.block_count(aggregate.length)
        t1 = time.perf_counter()
        indices = sampler.draw(count)
        self._drawn[party] = (key, (count, indices))
        t2 = time.perf_counter()
        wire = Evidence(sealed.signed, (), indices, prover.open(indices)).to_bytes()
        self.prove_s += (t1 - t0) + (time.perf_counter() - t2)
        self.verify_s.append(t2 - t1)
        self.verifiers.append(party)
        # the engine's challenge request (the digest, a 4-byte block count) and reply (4 bytes per index)
        self.challenge_bytes.append(len(key) + _U32 + _U32 * len(indices))
        return wire


class _InProcess(Roles):
    """Every role played here by direct calls, timing each step; every party answers honestly.

    ``gone`` (:func:`dropouts` of the set-up parties, for ``drop``) leave after setup.
    ``statements``: the verified reveal's signing, checks and verification (``None``: not verified).
    """

    def __init__(self, scheme: Scheme, keys: KeySet, vectors: Mapping[str, np.ndarray] | None = None,
                 weights: Mapping[str, float] | None = None, *, round: int = 0, drop: float = 0.0,
                 statements: _Statements | None = None) -> None:
        self.scheme, self.keys, self.round, self.drop = scheme, keys, round, drop
        self.statements = statements
        self.vectors, self.weights = dict(vectors or {}), dict(weights or {})
        self.clock = time.perf_counter
        self.started = self.clock()
        self.setup_s = self.combine_s = self.in_shares_s = self.checking_s = 0.0
        self.prepare_s: list[float] = []
        self.protect_s: list[float] = []
        self.share_s: list[float] = []
        self.shares_cpu_s = 0.0
        self.consistency_s: list[float] = []
        self.consistency_bytes: list[int] = []
        """Per asked party: the seconds of its confirmation, and the bytes it received and sent in that exchange."""
        self.share_message_bytes = 0
        """The share request's public message, as each asked party receives it (with the aggregate)."""
        self.upload_bytes: tuple[int, ...] = ()
        self.gone: tuple[str, ...] = ()

    def setup(self, step: int, messages: Mapping[str, bytes]) -> dict[str, bytes]:
        cap = offered(self.scheme, InteractiveSetup)
        return {p: cap.setup_reply(self.keys.parties[p], round=self.round, step=step, message=m)
                for p, m in messages.items()}

    def collect(self, parties: tuple[str, ...]) -> Envelope:
        clock = self.clock
        self.setup_s = clock() - self.started
        self.gone = dropouts(parties, self.drop)
        ready = set(parties) - set(self.gone)
        precompute = self.scheme.capability(Precompute)
        wire: dict[str, bytes] = {}
        sizes: list[int] = []
        for party, vector in self.vectors.items():
            if party not in ready:
                continue
            key, weight = self.keys.parties[party], self.weights[party]
            t0 = clock()
            if precompute is not None:
                precompute.prepare(key, length=int(np.size(vector)), weight=weight, round=self.round)
            t1 = clock()
            upload = self.scheme.protect(key, vector, weight=weight, round=self.round)
            data = upload.to_bytes()
            t2 = clock()
            self.prepare_s.append(t1 - t0)
            self.protect_s.append(t2 - t1)
            sizes.append(len(data))
            wire[party] = data if self.statements is None else self.statements.sign(party, upload, data)
        self.upload_bytes = tuple(sizes)
        t0 = clock()
        if self.statements is None:
            uploads = [Envelope.from_bytes(b) for b in wire.values()]
        else:  # the parse is the aggregator's usual work; the statements' checks are timed apart
            before = self.statements.check_s
            uploads = [self.statements.accept(p, b) for p, b in wire.items()]
            t0 += self.statements.check_s - before
        aggregate = self.scheme.combine(self.keys.aggregator, uploads, round=self.round).to_bytes()
        self.combine_s = clock() - t0
        del wire, uploads  # large uploads need not outlive the combination (unless kept as evidence)
        combined = Envelope.from_bytes(aggregate)
        if self.statements is not None:
            self.statements.seal(combined)
        return combined

    def shares(self, request: ShareRequest, aggregate: Envelope, check: CheckShare) -> dict[str, bytes]:
        """Every asked party computes its share at once, each on its own thread, as over a transport; the
        aggregator checks them here, in the order asked, each as soon as it (and those before it) arrived.

        Threads give real parallelism where the scheme's arithmetic releases the GIL (gmpy2's
        ``powmod_base_list`` does, ``powmod`` does not).  CPU time is counted for the whole process
        (``time.process_time``): the shares' work is the phase's CPU time less the checks' own
        (``time.thread_time`` of this thread while it checks).
        """
        cap = offered(self.scheme, ShareReveal)
        clock, parties = self.clock, list(request.parties)
        self.share_message_bytes = len(request.message)

        def compute(party: str) -> tuple[bytes, float]:
            t0 = clock()
            share = cap.decryption_share(self.keys.parties[party], aggregate, request.message)
            return share, clock() - t0

        if self.statements is not None:  # a share leaves a party only for an aggregate its evidence proves
            for party in parties:
                self.statements.verify(party, aggregate)
        t_in, cpu_in = clock(), time.process_time()
        shares: dict[str, bytes] = {}
        with ThreadPoolExecutor(max_workers=max(1, len(parties)), thread_name_prefix="share") as pool:
            futures = [pool.submit(compute, party) for party in parties]
            for party, future in zip(parties, futures, strict=True):
                share, spent = future.result()
                c0 = time.thread_time()
                shares[party] = check(party, share)  # an honest party's share that fails its check raises here
                self.checking_s += time.thread_time() - c0
                self.share_s.append(spent)
        self.in_shares_s = clock() - t_in
        self.shares_cpu_s = time.process_time() - cpu_in - self.checking_s
        return shares

    def consistency(self, request: ShareRequest, aggregate: Envelope, check: CheckShare) -> dict[str, bytes]:
        cap = offered(self.scheme, ConsistencyCheck)
        clock, replies = self.clock, {}
        for party in request.parties:
            t0 = clock()
            reply = cap.consistency_reply(self.keys.parties[party], aggregate, request.message)
            self.consistency_s.append(clock() - t0)
            self.consistency_bytes.append(len(request.message) + len(reply))
            replies[party] = check(party, reply)  # an honest party's confirmation that fails its check raises here
        return replies

    def function_key(self, aggregate: Envelope) -> FunctionKey:
        fkey = function_key_for(self.scheme, self.keys, aggregate)
        assert fkey is not None  # the protocol asks only where the plan reveals with a function key
        return fkey

    def open(self, aggregate: Envelope) -> np.ndarray:
        party = sorted(self.keys.parties)[0]  # the first party opens, as revealing_key says
        if self.statements is not None:  # it checks the aggregate before it decrypts
            self.statements.verify(party, aggregate)
        return self.scheme.reveal(revealing_key(self.scheme, self.keys, party), aggregate)


def collect_shares(scheme: Scheme, keys: KeySet, aggregate: Envelope, request: ShareRequest) -> dict[str, bytes]:
    """Every requested party's decryption share of ``aggregate``, each checked by the aggregator on arrival."""
    steps = SecureSum(scheme, keys.aggregator)
    shares = _InProcess(scheme, keys, round=aggregate.round).shares(
        request, aggregate, steps.share_check(aggregate, request))
    if len(shares) < request.needed:
        raise ShareError(
            f"the {scheme.name} scheme asked {len(request.parties)} parties for shares but needs {request.needed}: "
            "its share_request must name at least as many parties as it needs"
        )
    return shares


def run_setup(scheme: Scheme, keys: KeySet, parties: Sequence[str], *, round: int = 0,
              identities: Mapping[str, PartyIdentity] | None = None) -> tuple[str, ...]:
    """Run ``scheme``'s setup exchanges for ``round`` among ``parties`` (:class:`SecureSum`); returns who is set up.

    Without setup steps, every party is set up.  Every party answers honestly here, so a
    refusal raises instead of costing only its sender.  The parties' identities are
    bound first (:func:`bind_identities`: ``identities``, or fresh in-process ones).
    """
    bind_identities(scheme, keys, identities)
    return SecureSum(scheme, keys.aggregator).setup(_InProcess(scheme, keys, round=round), round, parties)


def dropouts(parties: Sequence[str], fraction: float) -> tuple[str, ...]:
    """``floor(fraction * n)`` of ``parties`` (sorted), spread evenly: who drops in :func:`run_round`."""
    ordered = sorted(parties)
    m = math.floor(fraction * len(ordered) + 1e-9)
    return tuple(ordered[(i * len(ordered)) // m] for i in range(m)) if m else ()


def reveal_sum(scheme: Scheme, keys: KeySet, aggregate: Envelope) -> np.ndarray:
    """The weighted sum in ``aggregate``, revealed as the scheme's plan says (:meth:`SecureSum.reveal`)."""
    total = SecureSum(scheme, keys.aggregator).reveal(_InProcess(scheme, keys, round=aggregate.round), aggregate)
    assert total is not None  # in one process a party opens a sealed aggregate at once
    return total


def reveal_mean(scheme: Scheme, keys: KeySet, aggregate: Envelope) -> np.ndarray:
    """:func:`reveal_sum` divided by the contributors' total weight: the fused mean."""
    return weighted_mean(reveal_sum(scheme, keys, aggregate), aggregate)


def release_mean(scheme: Scheme, keys: KeySet, aggregate: Envelope, total: np.ndarray) -> np.ndarray:
    """The fused mean as it is published, from the weighted sum ``total`` revealed from ``aggregate``.

    Where parties reveal (a sealed aggregate), what leaves them goes through
    :meth:`~crypto_backends.base.Scheme.release` (the first party's key, as the
    federation's party does for a published model); an aggregate revealed at the
    aggregator is published as revealed.  Each call is one publication (ckks counts
    them against ``flooding_queries``).
    """
    if scheme.declarations.reveal.site is RevealSite.PARTIES:
        total = scheme.release(revealing_key(scheme, keys), aggregate, total)
    return weighted_mean(total, aggregate)


@dataclass(frozen=True)
class RoundTrip:
    """What :func:`run_round` produced, and how long each step took (``time.perf_counter`` seconds).

    ``protect_s[i]`` covers protecting and serialising party ``i``'s update (its
    data-independent ``prepare`` is ``prepare_s[i]``, apart); ``combine_s`` parsing
    every upload, combining and serialising the aggregate; ``reveal_s`` parsing the
    aggregate through the fused mean (function key or share exchange included).
    ``setup_s`` is every role's setup work (all parties and the aggregator, one after
    the other); when the scheme reveals from shares, every asked party computes its share
    at once (one thread each): ``share_s[i]`` is the wall time of the ``i``-th asked party's
    share (stretched when the parties outnumber the cores), ``shares_cpu_s`` the CPU seconds
    of all of them together (the work, apart from the wall time), ``shares_wall_s`` the wall
    time from the request to the last share checked, and ``unmask_s`` the aggregator's checking
    (its CPU time) and combining of them;
    with a consistency exchange before the shares, ``consistency_s[i]`` is the ``i``-th
    asked party's confirmation and ``consistency_bytes[i]`` the bytes it received and sent in that
    exchange; ``share_message_bytes`` is the share request's message each asked party receives.
    ``dropped`` are the parties that were set up and then left; ``fused`` is the mean
    over the others, as decrypted; ``aggregate`` the aggregate that was revealed.  ``released`` is the fused
    mean as published (:func:`release_mean`; with ``publish=False`` it is ``fused``), the vector a user
    receives; ``release_s`` the publication step's time (not in ``reveal_s``).

    With ``verify`` (the verified reveal, ``"full"`` or ``"sampled"``, in ``verify_mode``), ``sign_s[i]`` is the
    ``i``-th uploading party's statement (its upload's commitment: the digest, or under ``sampled`` the Merkle root
    of its blocks; the signature, framing; not in ``protect_s``) and ``statement_bytes[i]`` what it adds to that
    upload on the wire (``upload_bytes`` stays the envelope's); ``check_s`` is the aggregator's check of every
    statement on arrival (the commitment recomputed) and its evidence (serialised once, not under ``sampled``; not
    in ``combine_s``); ``prove_s`` the aggregator's part of every ``sampled`` challenge (the aggregate's digest,
    the Merkle trees, each verifier's openings and their serialisation; not in ``reveal_s``); ``verifiers`` are
    the parties that verified the aggregate before revealing, in order, ``verify_s[i]`` the ``i``-th one's work
    (under ``sampled`` its draw and the aggregate's digest, then for both: its parse of the evidence, signature
    checks and refold of the uploads or of the drawn blocks; not in ``reveal_s``); ``evidence_bytes`` the most any
    verifier receives beside the aggregate (every contributor's signed statement, and its upload under ``full``
    or its openings under ``sampled``), ``challenge_bytes[i]`` the ``i``-th verifier's challenge request and
    reply (``sampled``); ``blocks`` and ``samples`` the aggregate's block count and the blocks each verifier drew
    (``sampled``, 0 otherwise).  A scheme revealed at the aggregator has no verifier: its statements are signed and
    checked only; a scheme that is not :func:`~crypto_backends.statements.refoldable` (secagg) has its statements
    checked in either mode, nothing refolded or sampled.
    """

    fused: np.ndarray
    upload_bytes: tuple[int, ...]
    prepare_s: tuple[float, ...]
    protect_s: tuple[float, ...]
    combine_s: float
    reveal_s: float
    setup_s: float = 0.0
    share_s: tuple[float, ...] = ()
    shares_cpu_s: float = 0.0
    shares_wall_s: float = 0.0
    unmask_s: float = 0.0
    dropped: tuple[str, ...] = ()
    aggregate: Envelope | None = None
    consistency_s: tuple[float, ...] = ()
    consistency_bytes: tuple[int, ...] = ()
    share_message_bytes: int = 0
    released: np.ndarray | None = None
    release_s: float = 0.0
    sign_s: tuple[float, ...] = ()
    statement_bytes: tuple[int, ...] = ()
    check_s: float = 0.0
    verifiers: tuple[str, ...] = ()
    verify_s: tuple[float, ...] = ()
    evidence_bytes: int = 0
    verify_mode: str = ""
    prove_s: float = 0.0
    challenge_bytes: tuple[int, ...] = ()
    blocks: int = 0
    samples: int = 0

    @property
    def published(self) -> np.ndarray:
        """The vector a user receives: ``released``, or ``fused`` where nothing was published."""
        return self.fused if self.released is None else self.released


def run_round(
    scheme: Scheme,
    keys: KeySet,
    vectors: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    *,
    round: int = 0,
    drop: float = 0.0,
    identities: Mapping[str, PartyIdentity] | None = None,
    publish: bool = False,
    verify: bool | VerifyMode = False,
    samples: int = DEFAULT_SAMPLES,
) -> RoundTrip:
    """One round through :class:`SecureSum` with every role here, timing each step (see the module docstring).

    ``drop``: the fraction of the parties that leave after the setup exchange (:func:`dropouts`);
    ``identities``: the parties' (:func:`bind_identities`; default: fresh in-process ones).
    ``publish``: also publish the fused mean (:func:`release_mean`) into ``RoundTrip.released``.
    ``verify``: signed uploads and the verified reveal, with these identities: ``"full"`` (or ``True``) or
    ``"sampled"`` (``samples`` blocks drawn by each verifier), as ``crypto.verify_aggregate``; ``"off"`` or
    ``False``: none.  An aggregate that is not the fold of the signed uploads (in a drawn block, under
    ``sampled``) raises :class:`~crypto_backends.errors.AggregateMismatchError` before anything is revealed.
    The honest result is the same as without.
    """
    mode = verify_mode(verify)
    if mode is not None and identities is None:
        identities = LocalAuthority().issue_all(keys.parties)
    bind_identities(scheme, keys, identities)
    statements = (_Statements(scheme, keys, identities, mode, samples)
                  if mode is not None and identities is not None else None)
    roles = _InProcess(scheme, keys, vectors, weights, round=round, drop=drop, statements=statements)
    steps = SecureSum(scheme, keys.aggregator)
    aggregate = steps.collect(roles, round, list(vectors))
    t0 = roles.clock()
    total = steps.reveal(roles, aggregate)
    assert total is not None  # in one process a party opens a sealed aggregate at once
    fused = weighted_mean(total, aggregate)
    verified = sum(statements.verify_s) + statements.prove_s if statements is not None else 0.0
    reveal_s = roles.clock() - t0 - verified
    unmask_s = reveal_s - roles.in_shares_s + roles.checking_s if steps.shares is not None else 0.0
    t1 = roles.clock()
    released = release_mean(scheme, keys, aggregate, total) if publish else None
    return RoundTrip(fused, roles.upload_bytes, tuple(roles.prepare_s), tuple(roles.protect_s), roles.combine_s,
                     reveal_s, setup_s=roles.setup_s, share_s=tuple(roles.share_s), shares_cpu_s=roles.shares_cpu_s,
                     shares_wall_s=roles.in_shares_s, unmask_s=unmask_s, dropped=roles.gone, aggregate=aggregate,
                     consistency_s=tuple(roles.consistency_s), consistency_bytes=tuple(roles.consistency_bytes),
                     share_message_bytes=roles.share_message_bytes, released=released, release_s=roles.clock() - t1,
                     **(_verified(statements, mode, aggregate) if statements is not None and mode else {}))


def verify_mode(verify: bool | str) -> VerifyMode | None:
    """The verified reveal ``verify`` asks for: ``"full"`` (``True``), ``"sampled"``, or ``None`` (``False``,
    ``"off"``); :class:`~crypto_backends.errors.InvalidParameterError` for anything else."""
    if verify is True or verify == "full":
        return "full"
    if verify == "sampled":
        return "sampled"
    if verify is False or verify == "off":
        return None
    raise InvalidParameterError(f"verify={verify!r}: the verified reveal is 'full', 'sampled' or 'off' "
                                "(crypto.verify_aggregate)")


def _verified(statements: _Statements, mode: VerifyMode, aggregate: Envelope) -> dict[str, Any]:
    """The :class:`RoundTrip` fields of a verified round's statements."""
    sampler = statements.verifier.sampler if statements.challenge_bytes else None
    blocks = sampler.blocks.block_count(aggregate.length) if sampler is not None else 0
    return {"sign_s": tuple(statements.sign_s), "statement_bytes": tuple(statements.statement_bytes),
            "check_s": statements.check_s, "verifiers": tuple(statements.verifiers),
            "verify_s": tuple(statements.verify_s), "evidence_bytes": max(statements.evidence_bytes, default=0),
            "verify_mode": mode, "prove_s": statements.prove_s, "challenge_bytes": tuple(statements.challenge_bytes),
            "blocks": blocks, "samples": min(sampler.samples, blocks) if sampler is not None else 0}


def secure_weighted_mean(
    scheme: Scheme,
    keys: KeySet,
    vectors: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    *,
    round: int = 0,
) -> np.ndarray:
    """The fused weighted mean of ``vectors`` through ``scheme`` (:func:`run_round` without the timings)."""
    return run_round(scheme, keys, vectors, weights, round=round).fused


__all__ = [
    "MODEL_DIGEST",
    "RoundTrip",
    "bind_identities",
    "collect_shares",
    "contributor_weights",
    "dropouts",
    "function_key_for",
    "release_mean",
    "reveal_mean",
    "reveal_sum",
    "revealing_key",
    "run_round",
    "run_setup",
    "secure_weighted_mean",
    "verify_mode",
]
