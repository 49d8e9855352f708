"""Sampled verification (crypto.verify_aggregate = "sampled"): block commitments, openings, what is caught."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from crypto_backends import InsecureParametersWarning, registry
from crypto_backends.capabilities import BlockFold
from crypto_backends.envelope import Envelope
from crypto_backends.errors import AggregateMismatchError, MalformedCiphertextError
from crypto_backends.sampling import (
    Opening,
    Prover,
    Sampler,
    _levels,
    _path,
    _root,
    _root_from_path,
    check_samples,
    detection,
)

PARTIES = ["p1", "p2", "p3"]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureParametersWarning)
        yield


def _round(name: str, length: int = 400, preset: str | None = None):
    scheme = registry.create(name, registry.params_type(name).preset(preset) if preset else None)
    keys = scheme.keygen(PARTIES)
    rng = np.random.default_rng(3)  # test data only
    uploads = [scheme.protect(keys.parties[p], rng.uniform(-1, 1, length), weight=1.0 + i, round=2)
               for i, p in enumerate(PARTIES)]
    aggregate = scheme.combine(keys.aggregator, uploads, round=2)
    blocks = scheme.capability(BlockFold)
    assert blocks is not None
    return scheme, keys, uploads, aggregate, blocks


def _roots(sampler: Sampler, uploads: list[Envelope]) -> list[tuple[str, float, bytes]]:
    return sorted((u.party, u.weights[0], sampler.commit(u)) for u in uploads)


@pytest.mark.parametrize("count", range(1, 18))
def test_every_leaf_of_a_tree_of_any_size_proves_its_place_and_no_other(count):
    leaves = [bytes([i]) * 32 for i in range(count)]
    levels = _levels(leaves)
    root = _root(levels)
    for i in range(count):
        path = _path(levels, i)
        assert _root_from_path(leaves[i], i, count, path) == root
        assert _root_from_path(b"\xff" * 32, i, count, path) != root  # another leaf
        if count > 1:
            assert _root_from_path(leaves[i], (i + 1) % count, count, path) != root  # another place
        assert _root_from_path(leaves[i], i, count + 1, path) != root  # another leaf count


@pytest.mark.parametrize("name", ["paillier", "ckks", "threshold_paillier"])
def test_an_honest_aggregate_passes_and_its_blocks_are_the_fold_of_the_uploads_blocks(name):
    scheme, keys, uploads, aggregate, blocks = _round(name, preset="test")
    sampler = Sampler(blocks, keys.aggregator, samples=4)
    count = blocks.block_count(aggregate.length)
    assert len(blocks.blocks(keys.aggregator, aggregate)) == count
    for i in range(count):  # the promise BlockFold makes, at every index
        folded = blocks.fold_blocks(keys.aggregator, i, [blocks.blocks(keys.aggregator, u)[i] for u in uploads])
        assert folded == bytes(blocks.blocks(keys.aggregator, aggregate)[i])
    indices = sampler.draw(count)
    prover = Prover(sampler, [u.to_bytes() for u in sorted(uploads, key=lambda u: u.party)])
    check_samples(sampler, aggregate, _roots(sampler, uploads), prover.open(indices), indices, (count, indices))


def test_the_draw_is_distinct_in_range_and_not_predictable():
    _, keys, _, _, blocks = _round("paillier", preset="test")
    sampler = Sampler(blocks, keys.aggregator, samples=8)
    draws = {sampler.draw(1000) for _ in range(50)}
    assert len(draws) == 50  # 50 fresh draws of 8 of 1000 blocks never repeat (chance ~1e-17)
    for d in draws:
        assert len(set(d)) == 8 and list(d) == sorted(d) and all(0 <= i < 1000 for i in d)
    assert sampler.draw(3) == (0, 1, 2)  # fewer blocks than samples: every block


def test_detection_is_the_hypergeometric_chance_and_certain_when_every_block_differs():
    assert detection(100, 10) == pytest.approx(0.1)
    assert detection(100, 10, altered=2) == pytest.approx(1 - (90 * 89) / (100 * 99))
    assert detection(100, 10, altered=100) == 1.0
    assert detection(5, 32) == 1.0  # every block drawn


def _setup(name="paillier"):
    scheme, keys, uploads, aggregate, blocks = _round(name, length=2000, preset="test")
    sampler = Sampler(blocks, keys.aggregator, samples=3)
    count = blocks.block_count(aggregate.length)
    ordered = sorted(uploads, key=lambda u: u.party)
    return scheme, keys, ordered, aggregate, blocks, sampler, count, Prover(sampler, [u.to_bytes() for u in ordered])


def test_an_aggregate_with_one_altered_block_is_caught_exactly_when_that_block_is_drawn():
    """The stated limit of sampling: one altered block of B is seen with chance k/B per verifier."""
    _, keys, uploads, aggregate, blocks, sampler, count, prover = _setup()
    assert count >= 6
    victim = blocks.blocks(keys.aggregator, uploads[0])
    payload = bytearray(aggregate.payload)
    body = blocks.blocks(keys.aggregator, aggregate)
    start = bytes(aggregate.payload).index(bytes(body[4]))
    payload[start:start + len(body[4])] = bytes(victim[4])  # block 4: the victim's own ciphertext
    altered = dataclasses.replace(aggregate, payload=bytes(payload))
    roots = _roots(sampler, uploads)
    missed = (0, 1, 2)
    check_samples(sampler, altered, roots, prover.open(missed), missed, (count, missed))  # not drawn: passes
    caught = (1, 4, 5)
    with pytest.raises(AggregateMismatchError, match="block 4 of the aggregate is not the fold"):
        check_samples(sampler, altered, roots, prover.open(caught), caught, (count, caught))


def test_a_substituted_upload_block_a_foreign_header_and_undrawn_indices_are_refused():
    scheme, keys, uploads, aggregate, blocks, sampler, count, prover = _setup()
    roots = _roots(sampler, uploads)
    drawn = (0, 2, 3)
    openings = list(prover.open(drawn))
    # a block of another party's upload shown in place of p1's: its path does not lead to p1's signed root
    o, other = Opening.from_bytes(openings[0]), Opening.from_bytes(openings[1])
    forged = Opening(o.head, o.head_path, (other.blocks[0], *o.blocks[1:]), o.paths)
    with pytest.raises(AggregateMismatchError, match="block 0 shown for p1 is not in the upload it signed"):
        check_samples(sampler, aggregate, roots, [forged.to_bytes(), *openings[1:]], drawn, (count, drawn))
    # p1's header with another weight
    head = Envelope.from_head(o.head)
    reweighted = dataclasses.replace(head, weights=(9.0,)).head_bytes()
    with pytest.raises(AggregateMismatchError, match="header shown for p1"):
        check_samples(sampler, aggregate, roots, [Opening(reweighted, o.head_path, o.blocks, o.paths).to_bytes(),
                                                  *openings[1:]], drawn, (count, drawn))
    # blocks the verifier did not draw (the aggregator chose which to show)
    with pytest.raises(AggregateMismatchError, match="not the ones this party drew"):
        check_samples(sampler, aggregate, roots, prover.open((0, 1, 2)), (0, 1, 2), (count, drawn))
    # the block count understated in the challenge (the party drew from too few blocks)
    with pytest.raises(AggregateMismatchError, match="not the ones this party drew"):
        check_samples(sampler, aggregate, roots, openings, drawn, (count - 1, drawn))
    # one upload left unopened
    with pytest.raises(AggregateMismatchError, match="opens 2 upload"):
        check_samples(sampler, aggregate, roots, openings[:2], drawn, (count, drawn))


def test_a_garbled_opening_is_a_typed_error():
    with pytest.raises(MalformedCiphertextError):
        Opening.from_bytes(b"\x00\x00\x00\x05abc")
    o = Opening(b"h", (b"\x01" * 32,), (b"blk",), ((b"\x02" * 32,),))
    assert Opening.from_bytes(o.to_bytes()) == o
    with pytest.raises(MalformedCiphertextError):
        Opening.from_bytes(o.to_bytes() + b"x")
