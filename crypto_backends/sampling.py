"""Sampled verification of an aggregate (``crypto.verify_aggregate = "sampled"``): block commitments and openings.

Under ``full`` every verifier receives every signed upload and refolds it (bytes:
contributors x upload size).  Under ``sampled`` a party commits to its upload
block by block: its signed statement names a Merkle root (:func:`commit`) over
the envelope's header and its ciphertext blocks (:class:`~.capabilities.BlockFold`).
Once the aggregate is fixed, each verifier names the digest of the aggregate it
was shown and draws ``samples`` block indices from the OS CSPRNG (:func:`draw`),
which the aggregator cannot predict; the aggregator answers with, for every
signed upload, its header and those blocks with their Merkle paths
(:class:`Prover`); the verifier checks each path against the signed root, folds
block ``i`` of the uploads with the aggregator's public key and compares it with
block ``i`` of the aggregate (:func:`check_samples`).

What is promised: an aggregate whose blocks all differ from the fold of the
signed uploads (one upload passed off as the sum, a zero-padded sum, another
round's aggregate) is caught by every verifier with certainty; an aggregate in
which ``b`` of ``B`` blocks differ is caught by one verifier with probability
``1 - C(B-b, k) / C(B, k)`` for ``k`` samples (:func:`detection`), and by at
least one of ``m`` independent verifiers with ``1 - (1-p)^m``.  Not promised: a
single altered block is caught with certainty (``k/B`` per verifier for ``b =
1``): that is the trade ``full`` does not make.  The statements themselves (who,
what weight, one model, how many) are checked in full in both modes.

The Merkle tree is RFC 6962's shape (leaf and node hashes domain-separated; an
odd node is promoted), with the leaf count bound into the root.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from .capabilities import BlockFold
from .envelope import Envelope
from .errors import AggregateMismatchError, MalformedCiphertextError, SecureFLError
from .keys import AggregatorKey

_U32 = struct.Struct(">I")
_HASH = 32
MAX_SAMPLES = 4096
"""Most blocks one verifier may ask to see of each upload."""
DEFAULT_SAMPLES = 32
"""Blocks of each upload one verifier checks unless told otherwise (``crypto.verify_samples``)."""


def _leaf(tag: bytes, data: bytes | memoryview) -> bytes:
    h = hashlib.sha256(b"\x00" + tag)
    h.update(data)
    return h.digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _levels(leaves: list[bytes]) -> list[list[bytes]]:
    levels = [leaves]
    while len(levels[-1]) > 1:
        cur = levels[-1]
        levels.append([_node(cur[i], cur[i + 1]) if i + 1 < len(cur) else cur[i] for i in range(0, len(cur), 2)])
    return levels


def _root(levels: list[list[bytes]]) -> bytes:
    return hashlib.sha256(b"\x02" + struct.pack(">Q", len(levels[0])) + levels[-1][0]).digest()


def _leaves(head: bytes, blocks: Sequence[bytes | memoryview]) -> list[bytes]:
    return [_leaf(b"H", head), *(_leaf(b"B", b) for b in blocks)]


def _path(levels: list[list[bytes]], index: int) -> list[bytes]:
    out = []
    for level in levels[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            out.append(level[sibling])
        index //= 2
    return out


def _root_from_path(leaf: bytes, index: int, count: int, path: Sequence[bytes]) -> bytes | None:
    """The root ``leaf`` at ``index`` of ``count`` leaves leads to along ``path``, or ``None`` if it does not fit."""
    node, width, used = leaf, count, 0
    while width > 1:
        sibling = index ^ 1
        if sibling < width:
            if used == len(path):
                return None
            node = _node(node, path[used]) if index % 2 == 0 else _node(path[used], node)
            used += 1
        index //= 2
        width = (width + 1) // 2
    if used != len(path):
        return None
    return hashlib.sha256(b"\x02" + struct.pack(">Q", count) + node).digest()


@dataclass(frozen=True)
class Sampler:
    """A scheme's blocks under the aggregator's (public) key, and how many each verifier checks."""

    blocks: BlockFold
    key: AggregatorKey
    samples: int

    def commit(self, upload: Envelope) -> bytes:
        """What a statement names ``upload`` by: the Merkle root over its header and its blocks."""
        return _root(_levels(_leaves(upload.head_bytes(), self.blocks.blocks(self.key, upload))))

    def draw(self, count: int) -> tuple[int, ...]:
        """``min(samples, count)`` distinct block indices below ``count``, from the OS CSPRNG, sorted."""
        if count < 1:
            raise MalformedCiphertextError("an aggregate of no blocks cannot be sampled")
        return tuple(sorted(secrets.SystemRandom().sample(range(count), min(self.samples, count))))


def detection(blocks: int, samples: int, altered: int = 1) -> float:
    """Chance one verifier drawing ``samples`` of ``blocks`` blocks sees at least one of ``altered`` changed ones."""
    k = min(samples, blocks)
    if altered <= 0:
        return 0.0
    if blocks - altered < k:
        return 1.0
    return 1.0 - math.comb(blocks - altered, k) / math.comb(blocks, k)


@dataclass(frozen=True)
class Opening:
    """One signed upload's header and its blocks at the verifier's indices, each with its Merkle path."""

    head: bytes
    head_path: tuple[bytes, ...]
    blocks: tuple[bytes, ...]
    paths: tuple[tuple[bytes, ...], ...]

    def to_bytes(self) -> bytes:
        """Length-prefixed header and its path, then per block: the block, then its path's hash count and hashes."""
        parts = [_U32.pack(len(self.head)), self.head, _U32.pack(len(self.head_path)), *self.head_path,
                 _U32.pack(len(self.blocks))]
        for block, path in zip(self.blocks, self.paths, strict=True):
            parts += [_U32.pack(len(block)), block, _U32.pack(len(path)), *path]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> Opening:
        """Inverse of :meth:`to_bytes`; :class:`MalformedCiphertextError` for anything else."""
        view, at = memoryview(data).cast("B"), 0

        def take(n: int) -> bytes:
            nonlocal at
            if at + n > len(view):
                raise MalformedCiphertextError("a truncated block opening")
            at += n
            return bytes(view[at - n : at])

        def count() -> int:
            return int(_U32.unpack(take(_U32.size))[0])

        def path() -> tuple[bytes, ...]:
            n = count()
            if n > 64:
                raise MalformedCiphertextError("a block opening's Merkle path is longer than any tree here")
            return tuple(take(_HASH) for _ in range(n))

        head = take(count())
        head_path = path()
        blocks, paths = [], []
        for _ in range(count()):
            blocks.append(take(count()))
            paths.append(path())
        if at != len(view):
            raise MalformedCiphertextError("trailing bytes after a block opening")
        return cls(head, head_path, tuple(blocks), tuple(paths))


@dataclass
class Prover:
    """The aggregator's side: opens the signed uploads (kept as evidence) at any verifier's indices."""

    sampler: Sampler
    uploads: Sequence[bytes]
    _trees: list[tuple[bytes, list[memoryview], list[list[bytes]]]] = field(default_factory=list)

    def open(self, indices: Sequence[int]) -> tuple[bytes, ...]:
        """Each upload's :class:`Opening` at ``indices``, serialized, in the uploads' order."""
        self._build()
        out = []
        for head, blocks, levels in self._trees:
            out.append(Opening(head, tuple(_path(levels, 0)), tuple(bytes(blocks[i]) for i in indices),
                               tuple(tuple(_path(levels, i + 1)) for i in indices)).to_bytes())
        return tuple(out)

    def _build(self) -> None:
        if self._trees or not self.uploads:
            return
        for data in self.uploads:  # each tree once per aggregate, however many verifiers ask
            env = Envelope.from_bytes(data)
            blocks = self.sampler.blocks.blocks(self.sampler.key, env)
            head = env.head_bytes()
            self._trees.append((head, blocks, _levels(_leaves(head, blocks))))


def check_samples(sampler: Sampler, aggregate: Envelope, roots: Sequence[tuple[str, float, bytes]],
                  openings: Sequence[bytes], indices: Sequence[int], drawn: tuple[int, tuple[int, ...]]) -> None:
    """Raise :class:`AggregateMismatchError` unless the sampled blocks of ``aggregate`` are the fold of the signed
    uploads' blocks.

    ``roots``: each signed upload's (party, weight, committed root), sorted by party;
    ``openings``: its :class:`Opening` at ``indices`` (the same order); ``drawn``: what
    this verifier drew for this aggregate, ``(block count, indices)`` (the caller found
    it by the aggregate's digest): the openings must be at exactly those indices.
    """
    rnd = aggregate.round
    count = sampler.blocks.block_count(aggregate.length)
    if drawn != (count, tuple(indices)):
        raise AggregateMismatchError(f"round {rnd}: the blocks shown are not the ones this party drew for this "
                                     "aggregate: refused")
    if len(openings) != len(roots):
        raise AggregateMismatchError(f"round {rnd}: the evidence opens {len(openings)} upload(s) for {len(roots)} "
                                     "signed statement(s): refused")
    try:
        mine = sampler.blocks.blocks(sampler.key, aggregate)
    except SecureFLError as exc:
        raise AggregateMismatchError(f"round {rnd}: the aggregate's blocks do not parse ({exc}): refused") from None
    if len(mine) != count:
        raise AggregateMismatchError(f"round {rnd}: the aggregate holds {len(mine)} blocks, not {count}: refused")
    columns: list[list[bytes]] = [[] for _ in indices]
    for (party, weight, root), raw in zip(roots, openings, strict=True):
        for j, block in enumerate(_opened_blocks(raw, aggregate, party, weight, root, indices, count)):
            columns[j].append(block)
    for j, i in enumerate(indices):
        try:
            folded = sampler.blocks.fold_blocks(sampler.key, i, columns[j])
        except SecureFLError as exc:
            raise AggregateMismatchError(f"round {rnd}: the signed uploads' block {i} does not fold ({exc}): "
                                         "refused") from None
        if folded != bytes(mine[i]):
            raise AggregateMismatchError(f"round {rnd}: block {i} of the aggregate is not the fold of its "
                                         "contributors' signed uploads: refused (a substituted, padded or altered "
                                         "aggregate)")


def _opened_blocks(raw: bytes, aggregate: Envelope, party: str, weight: float, root: bytes,
                   indices: Sequence[int], count: int) -> tuple[bytes, ...]:
    """The blocks ``party``'s opening shows at ``indices``, each checked against its signed ``root``."""
    rnd = aggregate.round
    opening = _opening_of(raw, rnd, party)
    _check_head(opening.head, aggregate, party, weight)
    if len(opening.blocks) != len(indices):
        raise AggregateMismatchError(f"round {rnd}: the opening of {party}'s upload holds {len(opening.blocks)} "
                                     f"block(s), not the {len(indices)} drawn: refused")
    if _root_from_path(_leaf(b"H", opening.head), 0, count + 1, opening.head_path) != root:
        raise AggregateMismatchError(f"round {rnd}: the header shown for {party}'s upload is not the one it "
                                     "signed: refused (a substituted upload)")
    for i, block, path in zip(indices, opening.blocks, opening.paths, strict=True):
        if _root_from_path(_leaf(b"B", block), i + 1, count + 1, path) != root:
            raise AggregateMismatchError(f"round {rnd}: block {i} shown for {party} is not in the upload it "
                                         "signed: refused (a substituted upload)")
    return opening.blocks


def _opening_of(raw: bytes, rnd: int, party: str) -> Opening:
    try:
        return Opening.from_bytes(raw)
    except SecureFLError as exc:
        raise AggregateMismatchError(f"round {rnd}: the opening of {party}'s upload is garbled ({exc}): "
                                     "refused") from None


def _check_head(head: bytes, aggregate: Envelope, party: str, weight: float) -> None:
    rnd = aggregate.round
    try:
        env = Envelope.from_head(head)
    except SecureFLError as exc:
        raise AggregateMismatchError(f"round {rnd}: the header shown for {party}'s upload is garbled ({exc}): "
                                     "refused") from None
    if (env.kind, env.parties, env.weights, env.round, env.key_id, env.length, env.scheme) != (
            "update", (party,), (weight,), rnd, aggregate.key_id, aggregate.length, aggregate.scheme):
        raise AggregateMismatchError(f"round {rnd}: the header shown for {party}'s upload does not match its "
                                     "statement or the aggregate: refused")


__all__ = ["DEFAULT_SAMPLES", "MAX_SAMPLES", "Opening", "Prover", "Sampler", "check_samples", "detection"]
