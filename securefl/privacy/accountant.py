"""The privacy budget: epsilon and delta spent across rounds, refused before they are exceeded.

See :mod:`securefl.privacy.calibration` for how much one round spends; this module
keeps the count (basic composition, or zCDP) and refuses the round that would
exceed ``privacy.epsilon_budget`` / ``privacy.delta_budget``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from diffprivlib import BudgetAccountant
from diffprivlib.utils import BudgetError

from securefl.config import PrivacyConfig
from securefl.errors import BudgetExceededError, UsageError
from securefl.ml.models import Sensitivity
from securefl.privacy.calibration import round_rho, zcdp_epsilon

__all__ = ["PrivacyAccountant"]


class PrivacyAccountant:
    """Epsilon and delta spent so far against the configured budget (see the module docstring)."""

    def __init__(self, cfg: PrivacyConfig, blocks: Sequence[Sensitivity] = ()) -> None:
        if cfg.composition == "zcdp" and not blocks:
            raise UsageError("PrivacyAccountant: privacy.composition = 'zcdp' needs blocks, the vector's "
                             "sensitivities (ModelAdapter.sensitivity(privacy.clip_norm))")
        self.cfg = cfg
        self._budget = BudgetAccountant(epsilon=cfg.epsilon_budget, delta=cfg.delta_budget)
        self._rho_round = round_rho(cfg, blocks) if cfg.composition == "zcdp" else 0.0
        self._rho = 0.0
        self.rounds_charged = 0

    def _would_spend(self) -> tuple[float, float]:
        if self.cfg.composition == "zcdp":
            return zcdp_epsilon(self._rho + self._rho_round, self.cfg.delta_budget), self.cfg.delta_budget
        eps, delta = self.spent
        return eps + self.cfg.epsilon, 1 - (1 - delta) * (1 - self.cfg.delta_per_round)

    def _fits(self, eps: float, delta: float) -> bool:
        """Whether one more round of ``eps`` / ``delta`` stays within the budget."""
        if self.cfg.composition == "zcdp":
            return self._would_spend()[0] <= self.cfg.epsilon_budget * (1 + 1e-12)
        try:
            self._budget.check(eps, delta)
        except BudgetError:
            return False
        return True

    def charge(self, round: int) -> None:
        """Spend one round's epsilon and delta, or raise :class:`BudgetExceededError` and spend nothing."""
        eps, delta = self.cfg.epsilon, self.cfg.delta_per_round
        if not self._fits(eps, delta):
            spent, after = self.spent, self._would_spend()
            raise BudgetExceededError(
                f"round {round} refused: it would spend epsilon {eps:g} and delta {delta:g} on top of "
                f"epsilon {spent[0]:g} and delta {spent[1]:.3g} already spent ({self.cfg.composition} composition: "
                f"epsilon {after[0]:.4g} in total), beyond the budget (privacy.epsilon_budget = "
                f"{self.cfg.epsilon_budget:g}, privacy.delta_budget = {self.cfg.delta_budget:g}). Raise the budget, "
                "lower privacy.epsilon, or run fewer rounds"
            )
        if self.cfg.composition == "zcdp":
            self._rho += self._rho_round
        else:
            self._budget.spend(eps, delta)
        self.rounds_charged += 1

    def replay(self, rounds: int) -> None:
        """Count rounds ``rounds_charged .. rounds - 1`` as spent: what an earlier run, or this role before a restart,
        released (a restarted role cannot know which of them it released, so it counts them all).

        Raises :class:`BudgetExceededError` if they do not fit the budget; a count at or below
        :attr:`rounds_charged` changes nothing.
        """
        for past in range(self.rounds_charged, rounds):
            self.charge(past)

    @property
    def spent(self) -> tuple[float, float]:
        """(epsilon, delta) spent so far under the configured composition rule."""
        if self.cfg.composition == "zcdp":
            return (zcdp_epsilon(self._rho, self.cfg.delta_budget), self.cfg.delta_budget if self._rho else 0.0)
        total = self._budget.total()
        return float(total[0]), float(total[1])

    def as_json(self) -> dict[str, Any]:
        """The privacy report of the run: mode, mechanism, per-round and spent budgets, composition."""
        eps, delta = self.spent
        return {
            "mode": self.cfg.mode, "mechanism": self.cfg.mechanism,
            "epsilon_per_round": self.cfg.epsilon, "delta_per_round": self.cfg.delta_per_round,
            "epsilon_spent": eps, "delta_spent": delta,
            "epsilon_budget": self.cfg.epsilon_budget, "delta_budget": self.cfg.delta_budget,
            "rounds_charged": self.rounds_charged, "composition": self.cfg.composition,
        }
