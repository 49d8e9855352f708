"""securefl's schemes inside a Flower app: a server workflow and a client mod (the ``flower`` extra, ``flwr==1.42.*``).

Two lines change in a Flower app, in the places Flower's own SecAgg+ takes::

    workflow = DefaultWorkflow(fit_workflow=SecureFLWorkflow("securefl.toml"))   # ServerApp
    app = ClientApp(client_fn=client_fn, mods=[securefl_mod])                      # ClientApp

:class:`~securefl.flower.workflow.SecureFLWorkflow` runs securefl's round steps
(:class:`~securefl.core.engine.SecureRound`: setup exchanges, protected fit folded on
arrival, the reveal by the scheme's plan) over Flower's message passing
(:class:`~securefl.flower.transport.FlowerTransport`); :func:`~securefl.flower.mod.securefl_mod`
answers those steps at each node with a securefl :class:`~securefl.core.party.Party`
whose trainer is the node's own ``ClientApp`` (its fit's arrays are the update, its
``num_examples`` the securefl weight).  The strategy sees the fused arrays, so
``FedAvg``'s evaluation and metrics work unchanged.

This package imports ``flwr``; ``import securefl`` never imports it.
"""

from __future__ import annotations

from securefl.flower.mod import securefl_mod
from securefl.flower.roster import Roster, RosterError
from securefl.flower.workflow import RoundReport, SecureFLWorkflow, simulation_backend

__all__ = ["RoundReport", "Roster", "RosterError", "SecureFLWorkflow", "securefl_mod", "simulation_backend"]
