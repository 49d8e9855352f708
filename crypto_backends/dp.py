"""Differential privacy as a wrapper around any scheme: clip, add calibrated noise, snap.

:class:`DPScheme` takes an inner :class:`~crypto_backends.base.Scheme` and a
:class:`NoisePlan` and *is* a scheme: every declaration and operation is the
inner scheme's, except that :meth:`DPScheme.protect` first clips the update to
an L2 bound and adds noise, and (in distributed mode) :meth:`DPScheme.reveal`
snaps the revealed sum.  Vectors in, vectors out: this module knows nothing of
rounds, budgets or models; calibration (which noise scale gives which epsilon)
and accounting live in ``securefl.privacy``.

Two modes:

``local``
    Each party adds the full noise to its own update and snaps the result
    (:mod:`crypto_backends.noise`), so whatever the aggregator sees of one update
    is already differentially private.  Works under any scheme, ``plain`` included.
``distributed``
    Each party adds one *share*, sized so that any ``min_contributors`` shares sum
    to exactly the noise one central mechanism would add (Gaussian shares of
    ``sigma / sqrt(m)``; Laplace shares ``Gamma(1/m, b) - Gamma(1/m, b)``).  More
    contributors only add noise.  The inner scheme must hide individual updates
    (:attr:`~crypto_backends.base.Scheme.hides_updates`), or the aggregator would
    see each weakly-noised share: that is refused.

Weights.  The inner scheme computes ``sum_i w_i * v_i``.  Noise scales in the plan
are *per unit weight*: in local mode party ``i``'s weighted contribution carries
noise ``w_i * scale`` (its sensitivity is ``w_i`` times the unit sensitivity); in
distributed mode the sum carries ``weight_bound * scale``, which covers every
party whose (public) weight is at most ``weight_bound``; a larger weight is refused.

What is promised: the released vectors (local: each update; distributed: the
revealed sum) are the ideal clipped Gaussian / Laplace mechanism's output up to
the floating-point argument in :mod:`crypto_backends.noise`.  What is not: any
accuracy bound (:meth:`DPScheme.tolerance` is infinite); privacy of anything the
caller does not route through :meth:`DPScheme.protect`.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, cast

import numpy as np

from . import noise
from .base import (
    AggregatorKey,
    AuthorityKey,
    C,
    Declarations,
    Envelope,
    FunctionKey,
    Key,
    PartyKey,
    Scheme,
    ThreatModel,
    as_update_vector,
    check_weight,
)
from .capabilities import FunctionKeys, Precompute, ShareRequest, ShareReveal
from .errors import InvalidInputError, InvalidParameterError, MismatchError, PolicyError
from .wrapper import SchemeWrapper, declaration

Mechanism = Literal["gaussian", "laplace"]
Mode = Literal["local", "distributed"]


@dataclass(frozen=True)
class NoiseSegment:
    """A run of ``length`` consecutive coordinates sharing one noise ``scale`` (sigma, or Laplace b) per unit weight."""

    length: int
    scale: float


@dataclass(frozen=True)
class NoisePlan:
    """Everything the wrapper needs to know; public by construction (every party uses the same plan)."""

    mechanism: Mechanism
    segments: tuple[NoiseSegment, ...]
    mode: Mode = "local"
    clip_norm: float | None = None
    """L2 bound each (unweighted) update is clipped to; ``None`` when the caller bounds its values itself."""
    min_contributors: int = 1
    """Distributed mode: the fewest parties whose shares make up the noise (the quorum's minimum)."""
    weight_bound: float = 1.0
    """Distributed mode: the largest weight any party may use."""

    def __post_init__(self) -> None:
        if self.mechanism not in ("gaussian", "laplace"):
            raise InvalidParameterError(f"unknown mechanism {self.mechanism!r}; use 'gaussian' or 'laplace'")
        if self.mode not in ("local", "distributed"):
            raise InvalidParameterError(f"unknown mode {self.mode!r}; use 'local' or 'distributed'")
        bad = [s for s in self.segments if s.length < 1 or not (s.scale > 0 and math.isfinite(s.scale))]
        if not self.segments or bad:
            raise InvalidParameterError("a noise plan needs segments of positive length and positive, finite scale")
        if self.clip_norm is not None and not (self.clip_norm > 0 and math.isfinite(self.clip_norm)):
            raise InvalidParameterError("clip_norm must be positive and finite")
        if self.min_contributors < 1 or not (self.weight_bound > 0 and math.isfinite(self.weight_bound)):
            raise InvalidParameterError("min_contributors must be >= 1 and weight_bound positive")

    @property
    def length(self) -> int:
        """The number of values the plan covers: the sum of its segments' lengths."""
        return sum(s.length for s in self.segments)

    @property
    def shares(self) -> int:
        """Into how many shares each segment's noise is split: 1 in local mode."""
        return self.min_contributors if self.mode == "distributed" else 1


class DPScheme(SchemeWrapper, Precompute):
    """``inner`` plus clipping, calibrated noise and snapping (see the module docstring).

    Everything not overridden here is the inner scheme's (:class:`SchemeWrapper`):
    the wrapper *is* the inner scheme on the wire, same name, version and envelopes.
    """

    def __init__(self, inner: Scheme, plan: NoisePlan) -> None:
        if isinstance(inner, DPScheme):
            raise InvalidParameterError("the scheme is already wrapped with differential privacy")
        if plan.mode == "distributed" and not inner.declarations.hides_updates:
            raise InvalidParameterError(
                f"distributed DP needs a scheme that hides individual updates; {inner.name!r} shows each "
                "update (and so each small noise share) to the aggregator. Use an encrypting scheme, or local mode"
            )
        super().__init__(inner)
        self.plan = plan
        self._prepared: dict[tuple[str | None, int], tuple[float, np.ndarray]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"DPScheme({self.inner!r}, mode={self.plan.mode}, mechanism={self.plan.mechanism})"

    # --- declarations -------------------------------------------------------------
    @declaration
    def threat_model(self) -> ThreatModel:
        """The inner scheme's, plus what the noise adds and when it holds."""
        tm, plan = self.inner.threat_model, self.plan
        added = f"; {plan.mode} differential privacy: " + (
            "each update carries the full calibrated noise" if plan.mode == "local"
            else f"the sum of any {plan.min_contributors} updates carries the calibrated noise"
        )
        # distributed noise is a count of contributors: who counts them is what a malicious aggregator attacks
        if plan.mode == "local":
            verified = unverified = "; every update carries its full noise whatever the aggregator sends"
        else:
            floor = f"; the noise floor of {plan.min_contributors} contributors is counted from "
            verified = floor + "the parties' signed statements"
            unverified = floor + ("the contributors the aggregator claims, so it can zero-pad an aggregate (name "
                                  "parties whose uploads it replaced by zeros) and open a sum with less noise")
        return dataclasses.replace(
            tm, aggregator_learns=tm.aggregator_learns + added,
            dropouts=tm.dropouts + f"; the noise guarantee holds while at least {plan.shares} parties contribute",
            malicious_aggregator=tm.malicious_aggregator + verified,
            malicious_aggregator_unverified=tm.malicious_aggregator_unverified + unverified,
        )

    @property
    def declarations(self) -> Declarations:
        """The inner scheme's, with this wrapper's threat model and release norm bound."""
        return dataclasses.replace(self.inner.declarations, threat_model=self.threat_model,
                                   release_norm_bound=self.release_norm_bound)

    def tolerance(self, weights: Sequence[float]) -> float:
        """Infinite: the fused vector differs from the exact mean on purpose (noise and clipping)."""
        return math.inf

    # --- noise ----------------------------------------------------------------------
    RELEASE_TAIL_BITS = 40
    """An honest party's release exceeds :attr:`release_norm_bound` with probability below ``2**-39``."""

    @property
    def release_norm_bound(self) -> float | None:
        """Local mode with ``clip_norm``: ``clip_norm`` plus a tail bound of the noise's L2 norm, plus snapping.

        Gaussian noise (standard deviations ``s_i``): Laurent and Massart (2000, Lemma 1),
        ``|z|^2 <= sum s_i^2 + 2 sqrt(t sum s_i^4) + 2 t max s_i^2`` except with probability
        ``exp(-t)``.  Laplace noise (scales ``b_i``): each ``|z_i| <= b_i (ln d + t)`` except with
        probability ``exp(-t)`` (union bound), and then Bernstein's inequality bounds ``sum z_i^2``
        by its mean plus ``sqrt(2 t Var) + (2/3) t max b_i^2 (ln d + t)^2``.  Snapping moves
        each value by at most half a grid step (``std / 32``).  Distributed mode, or no
        ``clip_norm``: the inner scheme's bound (the aggregator sees no single share anyway).
        """
        plan = self.plan
        if plan.mode != "local" or plan.clip_norm is None:
            return self.inner.declarations.release_norm_bound
        t = self.RELEASE_TAIL_BITS * math.log(2.0)
        stds = [(seg.length, noise.share_std(plan.mechanism, seg.scale, 1)) for seg in plan.segments]
        if plan.mechanism == "gaussian":
            sum2 = math.fsum(n * s * s for n, s in stds)
            sum4 = math.fsum(n * s**4 for n, s in stds)
            noise_bound = math.sqrt(sum2 + 2 * math.sqrt(t * sum4) + 2 * t * max(s * s for _, s in stds))
        else:  # Laplace, b = std / sqrt(2): z_i^2 = b_i^2 L_i^2 with E L^2 = 2, Var L^2 = 20, |L_i| <= ln(d) + t
            d = sum(n for n, _ in stds)
            b2 = [(n, s * s / 2) for n, s in stds]
            top = (math.log(d) + t) ** 2 * max(v for _, v in b2)
            noise_bound = math.sqrt(math.fsum(2 * n * v for n, v in b2)
                                    + math.sqrt(2 * t * math.fsum(20 * n * v * v for n, v in b2)) + 2 / 3 * top * t)
        snapping = math.sqrt(math.fsum(n * (s / 32) ** 2 for n, s in stds))
        return (plan.clip_norm + noise_bound + snapping) * (1 + 1e-9)

    def _noise_scale(self, seg: NoiseSegment, weight: float) -> float:
        """Per-share scale on this party's *unweighted* values (see "Weights" in the module docstring)."""
        if self.plan.mode == "local":
            return seg.scale
        return seg.scale * self.plan.weight_bound / weight

    def sample_noise(self, length: int, weight: float) -> np.ndarray:
        """One party's noise (or noise share) for an update of ``length`` values at ``weight``."""
        if length != self.plan.length:
            raise MismatchError("length", f"the noise plan covers {self.plan.length} values, the update has {length}")
        shares = self.plan.shares
        draw = noise.gaussian_share if self.plan.mechanism == "gaussian" else noise.laplace_share
        out = np.concatenate([draw(s.length, self._noise_scale(s, weight), shares) for s in self.plan.segments])
        dither = self.dither_std(weight)
        if dither > 0:
            out += noise.gaussian(length, dither)
        return out

    DITHER_FACTOR = 8.0

    def dither_std(self, weight: float) -> float:
        """Distributed mode: a Gaussian dither of 8x the inner scheme's per-value error (0 in local mode).

        The inner scheme rounds each share-carrying value (fixed-point step, CKKS
        error) and that rounding error depends on the value.  A Gaussian dither
        eight times wider than the error makes the value modulo the step uniform
        and independent of the data (statistical distance below ``exp(-2 pi^2 64)``),
        so the revealed sum is the central mechanism's output plus data-independent
        noise (post-processing).  Gamma shares alone do not smooth enough for that.
        """
        if self.plan.mode != "distributed":
            return 0.0
        tol = self.inner.tolerance([weight])
        return self.DITHER_FACTOR * tol if math.isfinite(tol) and tol > 0 else 0.0

    def _check_weight(self, weight: float) -> float:
        w = check_weight(weight)
        if self.plan.mode == "distributed" and w > self.plan.weight_bound * (1 + 1e-12):
            raise InvalidInputError(
                f"weight {w} exceeds the plan's weight_bound {self.plan.weight_bound}: the shared noise would "
                "not cover this party's sensitivity; rebuild the plan with the largest weight of the federation"
            )
        return w

    def prepare(self, key: PartyKey, *, length: int, weight: float, round: int) -> None:
        """Sample this party's noise for ``round`` ahead of time (it does not depend on the data).

        :meth:`protect` for the same party, round and weight then only clips, adds and
        snaps.  A prepared vector is used once, then discarded.
        """
        w = self._check_weight(weight)
        vec = self.sample_noise(length, w)
        with self._lock:
            self._prepared[(key.owner, int(round))] = (w, vec)
        inner = self.inner.capability(Precompute)
        if inner is not None:
            inner.prepare(key, length=length, weight=weight, round=round)

    def _take_noise(self, key: PartyKey, length: int, weight: float, round: int) -> np.ndarray:
        with self._lock:
            prepared = self._prepared.pop((key.owner, int(round)), None)
            for stale in [k for k in self._prepared if k[0] == key.owner and k[1] < round]:
                del self._prepared[stale]
        if prepared is not None and prepared[0] == weight and prepared[1].size == length:
            return prepared[1]
        return self.sample_noise(length, weight)

    def clip_factor(self, values: np.ndarray) -> float:
        """The factor (at most 1) that scales ``values`` down to L2 norm ``clip_norm``."""
        if self.plan.clip_norm is None:
            return 1.0
        # einsum, not np.dot: BLAS threads cost more than they save on a busy machine
        norm = math.sqrt(float(np.einsum("i,i->", values, values)))
        return min(1.0, self.plan.clip_norm / norm) if norm > 0 else 1.0

    # --- the round (everything else is the inner scheme's) ------------------------------
    def protect(self, key: PartyKey, values: np.ndarray, *, weight: float, round: int) -> Envelope:
        """Clip, add this party's noise (or share), snap in local mode, then protect with the inner scheme."""
        x = as_update_vector(values)
        w = self._check_weight(weight)
        if x.size != self.plan.length:
            raise MismatchError("length", f"the noise plan covers {self.plan.length} values, the update has {x.size}")
        noisy = self._take_noise(key, x.size, w, round)
        factor = self.clip_factor(x)
        snap = self.plan.mode == "local"
        grids = self._grids([self._noise_scale(s, w) for s in self.plan.segments], shares=1)
        # noise + factor * x, then snap, in place and in cache-sized chunks: the update is read once
        # and the noise read and written once, as for the bare scheme's own pass over the values
        for start, stop, grid in self._chunks(grids):
            nv, xv = noisy[start:stop], x[start:stop]
            if factor < 1.0:
                nv /= factor
                nv += xv
                nv *= factor
            else:
                nv += xv
            if snap:
                noise.snap(nv, grid)
        return self.inner.protect(key, noisy, weight=w, round=round)

    _CHUNK = 1 << 15

    def _grids(self, scales: Sequence[float], *, shares: int) -> list[float]:
        return [noise.grid_for(noise.share_std(self.plan.mechanism, sc, shares)) for sc in scales]

    def _chunks(self, grids: Sequence[float]) -> Iterator[tuple[int, int, float]]:
        start = 0
        for seg, grid in zip(self.plan.segments, grids, strict=True):
            for lo in range(start, start + seg.length, self._CHUNK):
                yield lo, min(lo + self._CHUNK, start + seg.length), grid
            start += seg.length

    def _snap(self, vec: np.ndarray, scales: Sequence[float], *, shares: int) -> None:
        for start, stop, grid in self._chunks(self._grids(scales, shares=shares)):
            noise.snap(vec[start:stop], grid)

    def _release(self, total: np.ndarray) -> np.ndarray:
        if self.plan.mode == "local":
            return total  # a sum of released (snapped) updates: post-processing
        # distributed: the sum is the release; snap it to the grid of the central noise it carries
        total = np.array(total, dtype=np.float64)
        self._snap(total, [s.scale * self.plan.weight_bound for s in self.plan.segments], shares=1)
        return total

    def check_contributors(self, aggregate: Envelope) -> None:
        """Distributed mode: :class:`PolicyError` unless ``aggregate`` sums at least ``min_contributors`` updates.

        Each update carries one share of the noise, so a sum of fewer carries less noise
        than the plan (and the accountant) counts.  Checked wherever decryption happens
        (reveal, publish, release, a decryption share), not only by the aggregator,
        which under some schemes is the party the noise protects against.
        """
        if not isinstance(aggregate, Envelope):
            return  # the inner scheme's checks name the problem
        count = sum(1 for w in aggregate.weights if w != 0)
        if self.plan.mode == "distributed" and count < self.plan.min_contributors:
            raise PolicyError(
                f"the aggregate of round {aggregate.round} sums {count} update(s), and the noise plan needs at least "
                f"{self.plan.min_contributors} (each carries one share of the noise): it is not decrypted, since "
                "its noise would fall short of the differential-privacy guarantee"
            )

    def reveal(self, key: Key, aggregate: Envelope, *, function_key: FunctionKey | None = None) -> np.ndarray:
        """The inner scheme's reveal, after :meth:`check_contributors`; in distributed mode the sum is snapped.

        Raises :class:`PolicyError` (distributed mode) for an aggregate of fewer than
        ``min_contributors`` updates, before the inner scheme decrypts anything.
        """
        self.check_contributors(aggregate)
        return self._release(self.inner.reveal(key, aggregate, function_key=function_key))

    def release(self, key: Key, aggregate: Envelope, total: np.ndarray) -> np.ndarray:
        """The inner scheme's publication step, after :meth:`check_contributors`; distributed mode snaps the sum.

        Raises :class:`PolicyError` as :meth:`reveal` does.
        """
        self.check_contributors(aggregate)
        return self._release(self.inner.release(key, aggregate, total))

    def capability(self, kind: type[C]) -> C | None:
        """The inner scheme's capabilities, with the contributor check wherever a share or function key is made.

        Shares and function keys open an aggregate as much as :meth:`reveal` does, so they
        are refused for an aggregate (or weight vector) of fewer than ``min_contributors``.
        """
        offered = super().capability(kind)
        if kind is ShareReveal and isinstance(offered, ShareReveal):
            return cast(C, _CheckedShares(self, offered))
        if kind is FunctionKeys and isinstance(offered, FunctionKeys):
            return cast(C, _CheckedFunctionKeys(self, offered))
        return offered

    def check_weights(self, round: int, weights: Mapping[str, float]) -> None:
        """Distributed mode: :class:`PolicyError` for a function key over fewer than ``min_contributors``."""
        count = sum(1 for w in weights.values() if w != 0)
        if self.plan.mode == "distributed" and count < self.plan.min_contributors:
            raise PolicyError(
                f"function key for round {round} refused: it covers {count} contributor(s), and the noise plan "
                f"needs at least {self.plan.min_contributors} (each carries one share of the noise)"
            )


class _CheckedShares(ShareReveal):
    """The inner scheme's share exchange, refusing an aggregate of too few contributors (and snapping the sum)."""

    def __init__(self, dp: DPScheme, inner: ShareReveal) -> None:
        self.dp, self.inner = dp, inner

    def share_request(self, key: AggregatorKey, aggregate: Envelope) -> ShareRequest:
        return self.inner.share_request(key, aggregate)

    def decryption_share(self, key: PartyKey, aggregate: Envelope, message: bytes) -> bytes:
        self.dp.check_contributors(aggregate)
        return self.inner.decryption_share(key, aggregate, message)

    def check_share(self, key: AggregatorKey, aggregate: Envelope, party: str, share: bytes) -> None:
        self.inner.check_share(key, aggregate, party, share)

    def reveal_shares(self, key: AggregatorKey, aggregate: Envelope, shares: Mapping[str, bytes]) -> np.ndarray:
        self.dp.check_contributors(aggregate)
        return self.dp._release(self.inner.reveal_shares(key, aggregate, shares))


class _CheckedFunctionKeys(FunctionKeys):
    """The inner scheme's function keys, refused for a weight vector of too few contributors."""

    def __init__(self, dp: DPScheme, inner: FunctionKeys) -> None:
        self.dp, self.inner = dp, inner

    def function_key(self, key: AuthorityKey, *, round: int, weights: Mapping[str, float]) -> FunctionKey:
        self.dp.check_weights(round, weights)
        return self.inner.function_key(key, round=round, weights=weights)

    def policy_record(self, key: AuthorityKey) -> bytes:
        return self.inner.policy_record(key)

    def adopt_policy_record(self, key: AuthorityKey, record: bytes) -> None:
        self.inner.adopt_policy_record(key, record)


__all__ = ["DPScheme", "Mechanism", "Mode", "NoisePlan", "NoiseSegment"]
