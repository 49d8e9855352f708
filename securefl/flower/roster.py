"""Which Flower node is which securefl party: the roster, fixed for a run and checked on every message.

By default the federation's party ids (``federation.ids``, sorted) are given to the
Flower node ids in ascending order, and exactly as many nodes as parties must be
connected when the first round starts; with ``node_ids`` (node id -> party id) the
mapping is explicit and other nodes may be connected (they are left out).  Either
way the mapping is fixed at the first round: a node that is not in it is never sent
a key or a step, and a reply from it is refused (:class:`RosterError`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from securefl.errors import ConfigError


class RosterError(ConfigError):
    """A Flower node is not one of the federation's parties, or the nodes do not match the roster."""


class Roster:
    """The run's fixed mapping between Flower node ids and securefl party ids (see the module docstring)."""

    def __init__(self, node_of: Mapping[str, int]) -> None:
        if len(set(node_of.values())) != len(node_of):
            raise RosterError("two parties of the roster are mapped to one Flower node: give each party its own node")
        self.node_of = dict(node_of)
        self.party_of = {node: pid for pid, node in node_of.items()}

    @classmethod
    def bind(cls, party_ids: Iterable[str], connected: Iterable[int],
             node_ids: Mapping[int, str] | None = None) -> Roster:
        """The roster for ``party_ids`` over the ``connected`` nodes (see the module docstring)."""
        ids, nodes = sorted(party_ids), sorted(connected)
        if node_ids is None:
            if len(nodes) != len(ids):
                raise RosterError(f"{len(nodes)} Flower nodes are connected but the securefl federation has "
                                  f"{len(ids)} parties (federation.parties): with the default roster (party ids "
                                  "in sorted order on the sorted node ids) they must match. Run as many nodes as "
                                  "parties, or give SecureFLWorkflow(node_ids={node_id: party_id, ...})")
            return cls(dict(zip(ids, nodes, strict=True)))
        if sorted(node_ids.values()) != ids:
            raise RosterError(f"node_ids maps the parties {sorted(node_ids.values())}, but the federation's are "
                              f"{ids}: map each party id of federation.party_ids to one Flower node")
        missing = sorted(set(node_ids) - set(nodes))
        if missing:
            raise RosterError(f"node_ids names Flower nodes {missing}, which are not connected: start them, or "
                              "correct the mapping")
        return cls({pid: node for node, pid in node_ids.items()})

    def party(self, node_id: int) -> str:
        """The party at ``node_id``; :class:`RosterError` for a node outside the roster."""
        try:
            return self.party_of[node_id]
        except KeyError:
            raise RosterError(f"Flower node {node_id} is not in this federation's roster (nodes "
                              f"{sorted(self.party_of)}): it is refused. Map it in SecureFLWorkflow(node_ids=...) "
                              "before the first round to make it a party") from None

    def outside(self, node_ids: Iterable[int]) -> list[int]:
        """The nodes of ``node_ids`` that are not in the roster, sorted."""
        return sorted(set(node_ids) - set(self.party_of))
