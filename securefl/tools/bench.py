"""``securefl bench``: the same update vectors through every scheme, side by side.

Every scheme (and every requested baseline) sees the same standard-normal float64
vectors, one per party, with weights 1..N, in the same process and run, so the
ratios between rows are meaningful on a noisy machine even when the absolute
numbers are not.  Columns:

* ``encrypt_s``: median seconds for one party to protect one update, serialisation
  to bytes included;
* ``aggregate_s``: parsing every upload and combining all N into the aggregate's bytes;
* ``decrypt_s``: from the aggregate's bytes to the fused vector, any function-key step included;
* ``bytes_per_party``: size of one serialised upload;
* ``max_abs_error``: of the vector a user receives, the fused mean as *published*
  (:func:`crypto_backends.roundtrip.release_mean`: after ``Scheme.release``, where
  ckks adds its noise flooding), against numpy's weighted mean of the raw vectors;
* ``decrypt_error``: the same for the fused mean as decrypted, before publication
  (equal to ``max_abs_error`` for a scheme whose publication adds nothing).  Under
  differential privacy both include the noise the plan adds to the updates (and
  the clipping); the bare scheme's row beside it shows the scheme's own part.

A scheme that reveals from parties' shares (``secagg``, ``threshold_paillier``) also
gets, in ``extra`` and a note: ``mask_s`` (median per-party protection, the same as
``encrypt_s``); the asked parties compute their shares at once (one thread each), so
``share_s`` is one share's CPU seconds (the phase's CPU time over ``shares_asked``, checks
excluded) and ``share_wall_s`` its wall time here (stretched when parties outnumber cores),
``shares_total_s`` and ``shares_wall_s`` the CPU and wall time of all of them;
``unmask_s`` (the aggregator's checking and combination of the shares);
``reveal_latency_s = share_s + unmask_s`` (each holder on its own core) apart from
``reveal_work_s = shares_total_s + unmask_s``; where the scheme states a share's
arithmetic floor (:meth:`~crypto_backends.capabilities.ShareReveal.share_floor_s`, measured in
the same run), ``share_floor_s``, ``share_floor_ratio = share_s / share_floor_s`` and
``unmask_ratio = unmask_s / share_s``; ``setup_s
(any setup exchange, every role one after the other) and, for a scheme with setup
steps, a second round with 10% of the parties dropped after them: ``drop10_unmask_s``
and ``drop10_max_abs_error`` against the survivors' weighted mean
(``drop10_tolerance`` is what the scheme promises).
A scheme with a consistency exchange before its shares (``secagg``) also gets
``consistency_s`` (median per-party signed confirmation), ``consistency_bytes``
(what one party receives and sends in that exchange, the aggregate apart) and
``share_message_bytes`` (the share request's message, which then carries every
confirmation; the parties' verification of them is inside ``share_s``).

With ``verify`` (``securefl bench --verify``: ``("full", "sampled")``, or either), every scheme row also runs
``repeat`` rounds per mode with the verified reveal of :mod:`crypto_backends.statements`, as
``crypto.verify_aggregate`` runs it in a federation (:func:`crypto_backends.roundtrip.run_round`), under the
same keys and vectors: each party signs its upload's statement (under ``sampled`` naming the Merkle root of its
blocks), the aggregator checks each on arrival (recomputing that root); every role that reveals then checks the
aggregate: under ``full`` it refolds the signed uploads under the aggregator's public key; under ``sampled``
(``samples`` blocks, ``crypto.verify_samples``) it draws block indices once the aggregate is fixed, the aggregator
opens every signed upload there, and it refolds those blocks.  A scheme whose verifiers cannot fold its uploads
(:func:`~crypto_backends.statements.refoldable`: secagg, fe) has its statements checked alone in either mode.
Each mode's columns in ``extra`` end in ``_full`` or ``_sampled``: ``sign_s`` (median per party), ``check_s``
(the aggregator's checks of all N statements and, under ``full``, its serialisation of the evidence),
``prove_s`` (``sampled``: the aggregator's digest of the aggregate, Merkle trees and every verifier's openings),
``verify_s`` (median per verifier: its draw, parsing the evidence, N signature checks, the refold of every upload
or of the drawn blocks), ``verifiers`` (the party opening a sealed aggregate, or every party asked for a share;
0 where the aggregator reveals, as ``fe``: nothing to verify), ``statement_bytes`` (what a signed statement adds
to one upload), ``evidence_bytes`` (what each verifier receives beside the aggregate), ``challenge_bytes``
(``sampled``: one verifier's challenge request and reply); ``verify_added_s = N * sign_s + check_s + prove_s +
verifiers * verify_s`` (the work verification adds), ``verify_work_s`` (``work_s`` of the verified rounds,
verification included), and ratios to the rounds without verification measured just before in the same run:
``verify_added_x = (work_s + verify_added_s) / work_s`` (total work, from the added parts: the figure to read),
``verify_x = verify_work_s / work_s`` (the same from the whole verified rounds: it also holds the two rounds'
noise and warm-up, e.g. a table built on first use), ``verify_round_x = (round_s + sign_s + check_s + prove_s +
verify_s) / round_s`` (latency: parties sign at once, one verifier on the critical path) and ``verify_bytes_x``
(one verifier's traffic, its upload and the aggregate, with the statement, evidence and challenge over without);
``blocks`` and ``samples`` (``sampled``: the aggregate's blocks, those each verifier drew), ``detect_one_block``
(the chance one verifier catches a single altered block: ``samples / blocks`` under ``sampled``, 1 where ``full``
refolds, 0 where only statements are checked) and ``detect_one_block_any`` (by at least one of the verifiers),
as the run JSON's ``verification`` reports them.

``round_s = encrypt_s + aggregate_s + decrypt_s`` is a round's latency with parties
working in parallel; ``work_s = N * encrypt_s + aggregate_s + decrypt_s`` is the
total work, which is what ``x_numpy`` divides by numpy's own weighted mean (of the
same N parties).  ``security_bits`` is ``None`` for a scheme that does not hide
updates (``hides_updates = False``, as ``plain``): it offers no security at all,
whatever its parameters' nominal level.

Several party counts (``parties=[10, 100, 1000]``) run one after the other in the
same process, each with its own vectors and its own numpy row.

Memory is checked before the work (:func:`check_inputs` for the vectors and the
smallest possible uploads, then per scheme :func:`memory_needed` from the
scheme's own upload size, measured on a short probe): past the machine's
available memory a scheme's row is an :class:`~securefl.tools.machine.InsufficientMemoryError`
instead of an out-of-memory kill.  The estimate is an order of magnitude, not a bound.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import numpy as np

from crypto_backends import registry
from crypto_backends.base import Scheme, SchemeParams, offered
from crypto_backends.capabilities import InteractiveSetup, ShareReveal
from crypto_backends.dp import DPScheme
from crypto_backends.errors import InvalidParameterError
from crypto_backends.roundtrip import RoundTrip, run_round, run_setup
from crypto_backends.sampling import DEFAULT_SAMPLES, detection
from crypto_backends.statements import VerifyMode, refoldable
from securefl.config import PrivacyConfig
from securefl.ml.models import clipped_update_sensitivity
from securefl.privacy import noise_plan
from securefl.tools import baselines as baseline_registry
from securefl.tools import machine

PROBE_VALUES = 4096
"""Length of the vector a scheme protects once to measure its upload's bytes per value."""


@dataclass(frozen=True)
class BenchResult:
    """One row of ``securefl bench``: a scheme at one party count, its timings, sizes and error, or its error."""

    scheme: str
    parties: int
    params: int
    encrypt_s: float
    aggregate_s: float
    decrypt_s: float
    bytes_per_party: float
    max_abs_error: float
    decrypt_error: float | None = None
    keygen_s: float = 0.0
    security_bits: int | None = None
    hides_updates: bool | None = None
    round_s: float = 0.0
    work_s: float = 0.0
    x_numpy: float | None = None
    error: str | None = None
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """Every field, as the row of ``--json``'s ``results`` list."""
        return asdict(self)


def bench_vectors(parties: int, params: int, seed: int = 0) -> tuple[list[np.ndarray], list[float]]:
    """The bench's inputs: standard-normal float64 vectors (test data, not secrets) and weights 1..N."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(params) for _ in range(parties)], [float(i + 1) for i in range(parties)]


def bench_scheme(
    name: str,
    vectors: Sequence[np.ndarray],
    weights: Sequence[float],
    *,
    params: SchemeParams | None = None,
    repeat: int = 1,
    wrap: Callable[[Scheme], Scheme] | None = None,
    label: str | None = None,
    on_estimate: Callable[[float], None] | None = None,
    verify: Sequence[VerifyMode] = (),
    samples: int = DEFAULT_SAMPLES,
) -> BenchResult:
    """Measure one scheme on ``vectors`` (see the module docstring for the columns).

    ``verify``: the verified reveal's modes (``"full"``, ``"sampled"`` with ``samples`` blocks per verifier):
    for each, also ``repeat`` rounds with it, after the measured ones, and its ``*_<mode>`` columns in ``extra``.

    ``wrap`` (differential privacy) turns the scheme into the one measured; its
    data-independent work (:meth:`~crypto_backends.base.Scheme.prepare`) is timed
    apart, as ``extra["prepare_s"]``, and not counted in ``encrypt_s``.  Each round is
    :func:`crypto_backends.roundtrip.run_round`, which times the steps.

    ``on_estimate``: called once, before the measured rounds, with their estimated
    seconds (:func:`probe_estimate`), when the vectors are long enough for a probe to
    be cheap beside them (at least :data:`PROBE_VALUES` x 4 values).
    """
    n, dim = len(vectors), int(vectors[0].size)
    ids = [f"party-{i + 1}" for i in range(n)]
    expected = np.average(np.stack(vectors), axis=0, weights=weights)
    resolved = (params or registry.get(name).params_type()).for_federation(n)
    scheme = registry.create(name, resolved)
    if wrap is not None:
        scheme = wrap(scheme)
    t0 = time.perf_counter()
    keys = scheme.keygen(ids)
    keygen_s = time.perf_counter() - t0
    if on_estimate is not None and dim >= 4 * PROBE_VALUES:
        on_estimate(probe_estimate(scheme, keys, dict(zip(ids, vectors, strict=True)),
                                   dict(zip(ids, weights, strict=True)), repeat=repeat, verify=verify,
                                   samples=samples))
    enc: list[float] = []
    agg: list[float] = []
    dec: list[float] = []
    sizes: list[int] = []
    errors: list[float] = []
    decrypt_errors: list[float] = []
    prep: list[float] = []
    trips = []
    for rnd in range(repeat):
        trip = run_round(scheme, keys, dict(zip(ids, vectors, strict=True)),
                         dict(zip(ids, weights, strict=True)), round=rnd, publish=True)
        enc.extend(trip.protect_s)
        prep.extend(trip.prepare_s)
        sizes.extend(trip.upload_bytes)
        agg.append(trip.combine_s)
        dec.append(trip.reveal_s)
        errors.append(float(np.max(np.abs(trip.published - expected))) if dim else 0.0)
        decrypt_errors.append(float(np.max(np.abs(trip.fused - expected))) if dim else 0.0)
        trips.append(trip)
    extra, note = {"prepare_s": statistics.median(prep)}, ""
    if trips[0].share_s:
        more, note = _share_columns(scheme, keys, ids, vectors, weights, trips, round=repeat)
        extra.update(more)
    note = _floor_column(resolved, n, statistics.mean(sizes) / dim if dim else 0.0, extra, note)
    declared = scheme.declarations
    row = _result(label or name, n, dim, statistics.median(enc), statistics.median(agg), statistics.median(dec),
                  statistics.mean(sizes), max(errors), decrypt_error=max(decrypt_errors), keygen_s=keygen_s,
                  hides_updates=declared.hides_updates,
                  security_bits=declared.security_bits if declared.hides_updates else None,
                  extra=extra, note=note)
    for at, mode in enumerate(verify):
        verified = [run_round(scheme, keys, dict(zip(ids, vectors, strict=True)), dict(zip(ids, weights, strict=True)),
                              round=repeat + 2 + at * repeat + rnd, verify=mode, samples=samples)
                    for rnd in range(repeat)]
        extra.update(verify_columns(row, verified, mode, refolds=refoldable(scheme)))
    return row


def verify_columns(row: BenchResult, trips: Sequence[RoundTrip], mode: VerifyMode = "full", *,
                   refolds: bool = True) -> dict[str, float]:
    """The ``*_<mode>`` columns (see the module docstring) of verified rounds ``trips`` of ``mode``, against
    ``row``, the same scheme's rounds without verification measured in the same run; ``refolds``: the scheme's
    verifiers fold its uploads (:func:`~crypto_backends.statements.refoldable`), else they check statements only."""
    n, med = row.parties, statistics.median
    sign = med(t for trip in trips for t in trip.sign_s)
    check, prove = med(trip.check_s for trip in trips), med(trip.prove_s for trip in trips)
    verifiers = len(trips[0].verifiers)
    verify = med(t for trip in trips for t in trip.verify_s) if verifiers else 0.0
    statement = med(b for trip in trips for b in trip.statement_bytes)
    evidence = med(trip.evidence_bytes for trip in trips)
    challenge = med(b for trip in trips for b in trip.challenge_bytes) if trips[0].challenge_bytes else 0.0
    encrypt, combine, reveal = (med(t for trip in trips for t in trip.protect_s), med(trip.combine_s for trip in trips),
                                med(trip.reveal_s for trip in trips))
    added = n * sign + check + prove + verifiers * verify
    work = n * encrypt + combine + reveal + added
    aggregate = len(trips[0].aggregate.to_bytes()) if trips[0].aggregate is not None else 0
    upload = row.bytes_per_party
    blocks, drawn = trips[0].blocks, trips[0].samples
    one = detection(blocks, drawn) if blocks else (1.0 if refolds and mode == "full" and verifiers else 0.0)
    columns = {"sign_s": sign, "check_s": check, "prove_s": prove, "verify_s": verify, "verifiers": float(verifiers),
               "statement_bytes": statement, "evidence_bytes": float(evidence), "challenge_bytes": float(challenge),
               "verify_added_s": added, "verify_work_s": work,
               "verify_x": work / row.work_s if row.work_s else math.nan,
               "verify_added_x": (row.work_s + added) / row.work_s if row.work_s else math.nan,
               "verify_round_x": ((row.round_s + sign + check + prove + verify) / row.round_s
                                  if row.round_s else math.nan),
               "verify_bytes_x": ((upload + statement + aggregate + evidence + challenge) / (upload + aggregate)
                                  if verifiers else (upload + statement) / upload),
               "blocks": float(blocks), "samples": float(drawn), "detect_one_block": one,
               "detect_one_block_any": 1 - (1 - one) ** verifiers}
    return {f"{name}_{mode}": value for name, value in columns.items()}


def probe_estimate(scheme: Scheme, keys: Any, vectors: Mapping[str, np.ndarray], weights: Mapping[str, float], *,
                   repeat: int, verify: Sequence[VerifyMode] = (), samples: int = DEFAULT_SAMPLES) -> float:
    """Seconds the measured rounds of :func:`bench_scheme` should take, from one round of the first
    :data:`PROBE_VALUES` values of each vector (under the same keys, in a round number the measured rounds
    do not use), scaled linearly by length; a scheme with setup steps also runs its 10%-dropped round.
    With ``verify``, a verified probe round of each mode runs too, and the verified rounds are counted.

    An order of magnitude, not a bound: work that does not grow with the length (a table built on first
    use) makes it too high, caches warmed by the probe make the real rounds a little faster.
    """
    dim = len(next(iter(vectors.values())))
    short = {p: v[:PROBE_VALUES] for p, v in vectors.items()}
    trip = run_round(scheme, keys, short, weights, round=repeat + 1)
    seconds = (sum(trip.prepare_s) + sum(trip.protect_s) + trip.combine_s + trip.reveal_s) * dim / PROBE_VALUES
    verified = 0.0
    for at, mode in enumerate(verify):  # round numbers the measured rounds do not use
        probe = run_round(scheme, keys, short, weights, round=repeat + 2 + repeat * len(verify) + at, verify=mode,
                          samples=samples)
        verified += (sum(probe.sign_s) + probe.check_s + probe.prove_s + sum(probe.verify_s)) * dim / PROBE_VALUES
    setup = scheme.capability(InteractiveSetup)
    rounds = repeat + (1 if trip.share_s and setup is not None and setup.setup_steps(repeat) else 0)
    checked = repeat * len(verify)
    return trip.setup_s * (rounds + checked) + seconds * (rounds + checked) + verified * repeat


def _floor_column(params: SchemeParams, n: int, per_value: float, extra: dict[str, float], note: str) -> str:
    """``floor_bytes_per_value`` and ``x_floor`` in ``extra`` and the note, for parameters that state a packing floor.

    A scheme's parameters state it with a ``floor_bytes_per_value(parties)`` method
    (``paillier``, ``threshold_paillier``): the upload size that nothing but the sum's own bits would take.
    """
    floor = getattr(params, "floor_bytes_per_value", None)
    if not callable(floor) or not per_value:
        return note
    least = float(floor(n))
    extra.update(floor_bytes_per_value=least, x_floor=per_value / least)
    said = f"{per_value:.2f} B per value, {per_value / least:.2f}x the packing floor {least:.2f} B"
    return f"{note}; {said}" if note else said


def _share_columns(scheme: Scheme, keys: Any, ids: Sequence[str], vectors: Sequence[np.ndarray],
                   weights: Sequence[float], trips: Sequence[Any], *, round: int) -> tuple[dict[str, float], str]:
    """The share exchange's parts, and for a scheme with setup steps a round with 10% dropped after them.

    See the module docstring for the columns.
    """
    asked = len(trips[0].share_s)
    extra = {"mask_s": statistics.median(t for trip in trips for t in trip.protect_s),
             "share_s": statistics.median(trip.shares_cpu_s / asked for trip in trips),
             "share_wall_s": statistics.median(t for trip in trips for t in trip.share_s),
             "shares_total_s": statistics.median(trip.shares_cpu_s for trip in trips),
             "shares_wall_s": statistics.median(trip.shares_wall_s for trip in trips),
             "shares_asked": float(asked),
             "unmask_s": statistics.median(trip.unmask_s for trip in trips),
             "setup_s": statistics.median(trip.setup_s for trip in trips)}
    if trips[0].consistency_s:  # the survivors' signed confirmations before the shares (secagg's consistency round)
        extra.update(consistency_s=statistics.median(t for trip in trips for t in trip.consistency_s),
                     consistency_bytes=statistics.median(b for trip in trips for b in trip.consistency_bytes),
                     share_message_bytes=statistics.median(trip.share_message_bytes for trip in trips))
    extra.update(reveal_latency_s=extra["share_s"] + extra["unmask_s"],
                 reveal_work_s=extra["shares_total_s"] + extra["unmask_s"])
    note = _share_note(scheme, keys, trips[-1].aggregate, extra)
    setup = scheme.capability(InteractiveSetup)
    if setup is None or not setup.setup_steps(round):
        return extra, note
    by_id, w = dict(zip(ids, vectors, strict=True)), dict(zip(ids, weights, strict=True))
    drop = run_round(scheme, keys, by_id, w, round=round, drop=0.1)
    alive = [p for p in ids if p not in drop.dropped]
    survivors = np.average(np.stack([by_id[p] for p in alive]), axis=0, weights=[w[p] for p in alive])
    extra.update(drop10_unmask_s=drop.unmask_s, drop10_dropped=float(len(drop.dropped)),
                 drop10_max_abs_error=float(np.max(np.abs(drop.fused - survivors))),
                 drop10_tolerance=scheme.tolerance([w[p] for p in alive]))
    note = (f"masking {extra['mask_s'] * 1e3:.1f} ms per party, unmasking {extra['unmask_s'] * 1e3:.1f} ms at the "
            f"aggregator (+ {extra['share_s'] * 1e3:.2f} ms per party for its share; key exchange "
            f"{extra['setup_s']:.2f} s, all roles in turn); {len(drop.dropped)} of {len(ids)} dropped after the "
            f"key exchange: unmasking {drop.unmask_s * 1e3:.1f} ms, max |error| vs the survivors' mean "
            f"{extra['drop10_max_abs_error']:.2e} (promised <= {extra['drop10_tolerance']:.2e})")
    return extra, note


def _share_note(scheme: Scheme, keys: Any, aggregate: Any, extra: dict[str, float]) -> str:
    """The share exchange's note: latency (one share, the holders working at once) apart from the work (every
    share), and, where the scheme states one, the share's arithmetic floor measured now and the ratios to it."""
    share, unmask = extra["share_s"], extra["unmask_s"]
    floor = offered(scheme, ShareReveal).share_floor_s(keys.aggregator, aggregate) if aggregate else None
    against = ""
    if floor:
        extra.update(share_floor_s=floor, share_floor_ratio=share / floor, unmask_ratio=unmask / share)
        against = (f"; its floor, gmpy2 powmod of the same ciphertexts to a share-sized exponent, {floor * 1e3:.1f} "
                   f"ms: {share / floor:.2f}x; checks and combination {unmask / share:.2f}x of a share")
    return (f"decrypt = {extra['shares_asked']:.0f} parties' shares computed at once ({extra['shares_wall_s']:.2f} s "
            f"wall here, {os.cpu_count() or 1} cores) + the aggregator's checks and combination "
            f"({unmask * 1e3:.1f} ms); one share {share * 1e3:.1f} ms CPU{against}; latency with each holder on "
            f"its own core {extra['reveal_latency_s']:.2f} s, work {extra['reveal_work_s']:.2f} s CPU")


def upload_bytes_per_value(name: str, params: SchemeParams | None = None, parties: int = 2) -> float:
    """Bytes per value of one serialised upload of scheme ``name``: fresh keys, a :data:`PROBE_VALUES`-long
    vector of zeros protected once by one party, after any setup exchange (packing and chunking included).

    Two parties are keyed (a scheme with a setup exchange masks against a neighbour), or ``parties`` when
    the scheme's parameters cannot serve two (a decryption threshold above two)."""
    scheme = registry.create(name, params)
    try:
        scheme.params.check_federation(2)
        count = 2
    except InvalidParameterError:
        count = parties
    ids = [f"probe-{i}" for i in range(count)]
    keys = scheme.keygen(ids)
    run_setup(scheme, keys, ids, round=0)
    upload = scheme.protect(keys.parties[ids[0]], np.zeros(PROBE_VALUES), weight=1.0, round=0)
    return len(upload.to_bytes()) / PROBE_VALUES


def memory_needed(parties: int, params: int, upload_per_value: float, *, verify: bool = False) -> float:
    """Bytes one bench round holds at its peak, estimated: the float64 vectors and the stacked copy numpy's
    reference mean makes (16 B per value and party), every upload as bytes and parsed (twice its size), and a
    few model-sized float64 vectors (fused, expected, work space).  With ``verify``, every upload is also held
    about four more times: kept by the aggregator, in the evidence's bytes, and twice as a verifier parses them."""
    copies = 2.0 + (4.0 if verify else 0.0)
    return parties * params * (16.0 + copies * upload_per_value) + 4.0 * params * 8


def vectors_or_error(parties: int, params: int, seed: int) -> tuple[list[np.ndarray], list[float]]:
    """:func:`bench_vectors`, with an allocation that fails despite the estimate as the typed error."""
    try:
        return bench_vectors(parties, params, seed)
    except MemoryError:
        raise machine.InsufficientMemoryError(f"the vectors of {parties:,} parties x {params:,} parameters do not "
                                              "fit in the memory available now; lower --params or --parties") from None


def check_inputs(parties: Sequence[int], params: int, what: str = "securefl bench") -> None:
    """Refuse, before any work, a size whose vectors and smallest possible uploads (8 bytes per value,
    as ``plain``'s) already exceed the available memory."""
    for n in parties:
        machine.check_memory(memory_needed(n, params, 8.0), f"{what} at {n:,} parties x {params:,} parameters",
                             "lower --params or --parties")


_PER_VALUE: dict[tuple[str, str], float] = {}  # (scheme, its parameters' repr) -> upload bytes per value


def check_scheme_memory(name: str, parties: int, params: int, scheme_params: SchemeParams | None, *,
                        verify: bool = False) -> None:
    """Refuse scheme ``name`` at this size (verified rounds too, with ``verify``) if its estimated peak exceeds
    the available memory."""
    key = (name, repr(scheme_params))
    if key not in _PER_VALUE:
        _PER_VALUE[key] = upload_bytes_per_value(name, scheme_params, parties)
    need = memory_needed(parties, params, _PER_VALUE[key], verify=verify)
    machine.check_memory(need, f"{name} at {parties:,} parties x {params:,} parameters",
                         "lower --params or --parties, or leave this scheme out of --schemes")


def _result(name: str, n: int, dim: int, e: float, a: float, d: float, size: float, err: float,
            **kw: Any) -> BenchResult:
    return BenchResult(name, n, dim, e, a, d, size, err, round_s=e + a + d, work_s=n * e + a + d, **kw)


def run(
    schemes: Sequence[str],
    *,
    parties: int | Sequence[int] = 10,
    params: int = 100_000,
    repeat: int = 1,
    scheme_params: Callable[[str], SchemeParams | None] = lambda name: None,
    baselines: Sequence[str] = (),
    seed: int = 0,
    on_step: Callable[[str], None] = lambda label: None,
    privacy: PrivacyConfig | None = None,
    baseline_options: Mapping[str, Any] | None = None,
    on_estimate: Callable[[str, float], None] = lambda label, seconds: None,
    verify: Sequence[VerifyMode] = (),
    samples: int = DEFAULT_SAMPLES,
) -> list[BenchResult]:
    """Bench ``schemes`` and ``baselines`` on one set of vectors; a failing scheme becomes an error row.

    ``verify``: every scheme row also measures the verified reveal in each of these modes (``"full"``,
    ``"sampled"`` with ``samples`` blocks per verifier: the ``*_<mode>`` columns of the module docstring);
    the baselines and numpy are not verified.

    With ``privacy`` enabled, every scheme also gets a ``<scheme>+dp(<mode>)`` row:
    the same scheme wrapped with differential privacy calibrated from ``privacy``
    (vectors clipped to ``privacy.clip_norm``; distributed shares sized for all
    ``parties``), so the cost of DP is a ratio measured in one run.

    ``parties`` may be several counts: every scheme and baseline runs at each, in the order given.
    ``baseline_options`` go to the baselines that take them (:func:`securefl.tools.baselines.measure`).
    The numpy floor is always measured (once per count, however often ``baselines`` names it).
    ``on_step`` is called with each row's label before it is measured, ``on_estimate`` with the label and
    the estimated seconds of a row long enough to be probed first (:func:`probe_estimate`).
    """
    counts = [parties] if isinstance(parties, int) else list(parties)
    check_inputs(counts, params)
    results: list[BenchResult] = []
    for n in counts:
        step = on_step if len(counts) == 1 else _prefixed(on_step, f"{n} parties: ")
        estimate = on_estimate if len(counts) == 1 else _prefixed_estimate(on_estimate, f"{n} parties: ")
        results += _run_parties(schemes, n, params, repeat, scheme_params, baselines, seed, (step, estimate),
                                privacy, baseline_options, (tuple(verify), samples))
    return results


def _prefixed(on_step: Callable[[str], None], prefix: str) -> Callable[[str], None]:
    return lambda label: on_step(prefix + label)


def _prefixed_estimate(on_estimate: Callable[[str, float], None], prefix: str) -> Callable[[str, float], None]:
    return lambda label, seconds: on_estimate(prefix + label, seconds)


def _run_parties(
    schemes: Sequence[str],
    parties: int,
    params: int,
    repeat: int,
    scheme_params: Callable[[str], SchemeParams | None],
    baselines: Sequence[str],
    seed: int,
    callbacks: tuple[Callable[[str], None], Callable[[str, float], None]],
    privacy: PrivacyConfig | None,
    baseline_options: Mapping[str, Any] | None,
    verified: tuple[Sequence[VerifyMode], int] = ((), DEFAULT_SAMPLES),
) -> list[BenchResult]:
    on_step, on_estimate = callbacks
    verify, samples = verified
    vectors, weights = vectors_or_error(parties, params, seed)
    results: list[BenchResult] = []
    numpy_row = _baseline("numpy", vectors, weights, repeat)
    variants: list[tuple[str, Callable[[Scheme], Scheme] | None]] = [("", None)]
    if privacy is not None and privacy.enabled:
        variants.append((dp_suffix(privacy), dp_wrapper(privacy, params, weights)))
    for name in schemes:
        for suffix, wrap in variants:
            label = name + suffix
            on_step(label)
            try:
                check_scheme_memory(name, parties, params, scheme_params(name), verify=bool(verify))
                results.append(bench_scheme(name, vectors, weights, params=scheme_params(name), repeat=repeat,
                                            wrap=wrap, label=label, on_estimate=partial(on_estimate, label),
                                            verify=verify, samples=samples))
            except Exception as exc:  # noqa: BLE001 - a report row, not a crash (see docstring)
                results.append(_failed(label, parties, params, exc))
    for name in dict.fromkeys(baselines):
        if name == "numpy":
            continue  # measured above, reported once at the end
        on_step(f"baseline {name}")
        try:
            results.append(_baseline(name, vectors, weights, repeat, baseline_options))
        except Exception as exc:  # noqa: BLE001 - a report row, not a crash
            results.append(_failed(f"baseline:{name}", parties, params, exc))
    results.append(numpy_row)
    floor = numpy_row.aggregate_s
    return [
        r if r.error or r.scheme == numpy_row.scheme else _with_ratio(r, floor) for r in results
    ]


def _failed(label: str, parties: int, params: int, exc: Exception) -> BenchResult:
    return BenchResult(label, parties, params, math.nan, math.nan, math.nan, math.nan, math.nan,
                       error=f"{type(exc).__name__}: {exc}")


def dp_suffix(privacy: PrivacyConfig) -> str:
    """The label suffix of a differentially private variant: ``"+dp(local)"``."""
    return f"+dp({privacy.mode})"


def dp_wrapper(privacy: PrivacyConfig, params: int, weights: Sequence[float]) -> Callable[[Scheme], Scheme]:
    """Wrap a scheme with DP calibrated from ``privacy`` for ``params``-long vectors clipped to
    ``privacy.clip_norm``, distributed shares sized for all ``len(weights)`` parties."""
    plan = noise_plan(privacy, clipped_update_sensitivity(params, privacy.clip_norm), clip=True,
                      min_contributors=len(weights), weight_bound=max(weights))
    return lambda inner: DPScheme(inner, plan)


def _with_ratio(r: BenchResult, floor: float) -> BenchResult:
    data = r.as_json()
    data["x_numpy"] = r.work_s / floor if floor > 0 else None
    return BenchResult(**data)


def _baseline(name: str, vectors: Sequence[np.ndarray], weights: Sequence[float], repeat: int,
              options: Mapping[str, Any] | None = None) -> BenchResult:
    m: Mapping[str, Any] = baseline_registry.measure(name, vectors, weights, repeat, options)
    n = len(vectors)
    return _result(f"baseline:{name}", n, int(vectors[0].size), m["encrypt_s"], m["aggregate_s"],
                   m["decrypt_s"], m["bytes_per_party"], m["max_abs_error"], note=m.get("note", ""),
                   security_bits=m.get("security_bits"), hides_updates=m.get("hides_updates"))
