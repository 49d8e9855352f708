"""The round's messages per scheme, recorded from the one step order, and README's diagram drawn from them.

:func:`trace` runs one round of a scheme through
:class:`~crypto_backends.protocol.SecureSum` with every role played here and
records each exchange the protocol asks for (``setup:<stage>``, ``train``,
``consistency``, ``share``, ``function_key``; ``open`` where the parties open a sealed aggregate,
``reveal`` where the aggregator reveals with its own key).  :func:`diagram` draws
README.md's sequence diagram from the built-in schemes' traces, so the diagram
changes when the code does (``python -m securefl.tools.docs`` regenerates it, and
the docs test fails while it is stale); a test compares each trace with the
requests a real federation's engine sends.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from crypto_backends import InsecureParametersWarning, registry
from crypto_backends.base import Scheme
from crypto_backends.capabilities import ConsistencyCheck, InteractiveSetup, ShareRequest, ShareReveal
from crypto_backends.envelope import Envelope
from crypto_backends.keys import FunctionKey, KeySet
from crypto_backends.protocol import CheckShare, Roles, SecureSum
from crypto_backends.roundtrip import bind_identities, function_key_for, revealing_key

PARTIES = ("alice", "bob", "carol")


class _Recording(Roles):
    """Every role played honestly by direct calls; what the protocol asked for, in order, in ``steps``."""

    def __init__(self, scheme: Scheme, keys: KeySet) -> None:
        self.scheme, self.keys = scheme, keys
        self.steps: list[str] = []

    def setup(self, step: int, messages: Mapping[str, bytes]) -> dict[str, bytes]:
        self.steps.append(f"setup:{step}")
        cap = self.scheme.capability(InteractiveSetup)
        assert cap is not None  # the protocol asks only when the scheme offers setup
        return {p: cap.setup_reply(self.keys.parties[p], round=0, step=step, message=m) for p, m in messages.items()}

    def collect(self, parties: tuple[str, ...]) -> Envelope:
        self.steps.append("train")
        ups = [self.scheme.protect(self.keys.parties[p], np.zeros(4), weight=1.0, round=0) for p in parties]
        return self.scheme.combine(self.keys.aggregator, ups, round=0)

    def consistency(self, request: ShareRequest, aggregate: Envelope, check: CheckShare) -> dict[str, bytes]:
        self.steps.append("consistency")
        cap = self.scheme.capability(ConsistencyCheck)
        assert cap is not None
        return {p: check(p, cap.consistency_reply(self.keys.parties[p], aggregate, request.message))
                for p in request.parties}

    def shares(self, request: ShareRequest, aggregate: Envelope, check: CheckShare) -> dict[str, bytes]:
        self.steps.append("share")
        cap = self.scheme.capability(ShareReveal)
        assert cap is not None
        return {p: check(p, cap.decryption_share(self.keys.parties[p], aggregate, request.message))
                for p in request.parties}

    def function_key(self, aggregate: Envelope) -> FunctionKey:
        self.steps.append("function_key")
        fkey = function_key_for(self.scheme, self.keys, aggregate)
        assert fkey is not None
        return fkey

    def open(self, aggregate: Envelope) -> np.ndarray:
        self.steps.append("open")
        return self.scheme.reveal(revealing_key(self.scheme, self.keys), aggregate)


def trace(name: str) -> tuple[str, ...]:
    """The exchanges one round of scheme ``name`` asks for, in order (its fast preset: the steps do not vary)."""
    presets = registry.params_type(name).presets()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureParametersWarning)
        scheme = registry.create(name, presets.get("test", presets["default"]))
    keys = scheme.keygen(list(PARTIES))
    bind_identities(scheme, keys)  # a scheme that signs round state needs the parties' identities
    roles = _Recording(scheme, keys)
    steps = SecureSum(scheme, keys.aggregator)
    steps.run(roles, 0, PARTIES)
    if not (steps.shares or steps.plan.function_key or "open" in roles.steps):
        roles.steps.append("reveal")  # the aggregator revealed with its own key: no message
    return tuple(roles.steps)


_REVEALS = {  # the last exchange of a trace -> the diagram's branch for it
    "share": ("from shares", ["A->>P: share request, with the aggregate",
                              "P-->>A: decryption share, checked on arrival",
                              "Note over A: the weighted sum from at least the needed valid shares"]),
    "function_key": ("with a function key", ["A->>K: function key for the contributors' weights",
                                            "K-->>A: the key, or a refusal the policy records",
                                            "Note over A: the weighted sum, with that key"]),
    "reveal": ("at the aggregator", ["Note over A: the weighted sum, with its own key"]),
    "open": ("at the parties", ["Note over A: the aggregate stays sealed: it is the next global model",
                                "Note over P: each party opens it with its key"]),
}


def diagram(traces: Mapping[str, Sequence[str]]) -> str:
    """A mermaid sequence diagram of one round for the schemes of ``traces`` (see the module docstring)."""
    lines = ["```mermaid", "sequenceDiagram", "    participant A as Aggregator", "    participant P as Parties",
             "    participant K as Authority",
             "    Note over A: account: the privacy budget is charged before anything leaves"]
    setup = {n: sum(s.startswith("setup:") for s in t) for n, t in traces.items()}
    with_setup = [f"{n}: {k} stages" for n, k in setup.items() if k]
    if with_setup:
        lines += [f"    opt setup ({', '.join(with_setup)})", "        A->>P: setup message of each stage",
                  "        P-->>A: setup reply", "    end"]
    lines += ["    A->>P: train: the global model", "    P-->>A: protected update, folded on arrival and dropped"]
    branches: dict[str, list[str]] = {}
    for name, steps in traces.items():
        branches.setdefault(steps[-1], []).append(name)
    for i, (last, names) in enumerate(branches.items()):
        title, body = _REVEALS[last]
        lines.append(f"    {'alt' if i == 0 else 'else'} reveal {title} ({', '.join(names)})")
        confirming = [n for n in names if "consistency" in traces[n]]
        if confirming:
            lines += [f"        opt consistency ({', '.join(confirming)})",
                      "            A->>P: consistency request, with the aggregate",
                      "            P-->>A: signed confirmation of the survivor set, checked on arrival",
                      "        end"]
        lines += [f"        {line}" for line in body]
    lines += ["    end", "    A->>P: evaluate: the model as released", "    P-->>A: metrics on held-out rows",
              "    Note over A: checkpoint, then the round's RoundMetrics", "```"]
    return "\n".join(lines)


def builtin_diagram() -> str:
    """README.md's round diagram, from every built-in scheme's trace."""
    return diagram({name: trace(name) for name in registry.builtin()})


__all__ = ["PARTIES", "builtin_diagram", "diagram", "trace"]
