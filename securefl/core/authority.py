"""The key authority (dealer): makes a federation's keys and hands each role only its own.

For schemes with function keys (``fe``) it also answers the aggregator's
per-round function-key requests; the scheme enforces its inference-prevention
policy inside :meth:`~crypto_backends.capabilities.FunctionKeys.function_key`, and this role
logs every grant and refusal.  The master secret never leaves this object.

Two rules are this role's own, because they outlive a key set or concern the run:

* with a :class:`~securefl.state.partystate.PolicyState`, the scheme's record of
  granted keys is kept per federation and written durably before each function key
  leaves; a new key set for the same federation (a restart without the key store)
  adopts it, so a restart cannot buy a second sum of a round;
* ``min_contributors`` (distributed differential privacy: the noise plan's
  minimum): a function key over fewer non-zero weights is refused, since their sum
  would carry less noise than the accountant counts.

With a :class:`~crypto_backends.statements.Verifier` (``crypto.verify_aggregate`` not
``"off"``) a function-key request must carry the contributors' signed statements
(:class:`~crypto_backends.statements.Evidence`): the key is derived only if they sign
exactly the requested contributors and weights, for this round and key set, from at
least ``verifier.least`` distinct parties of the roster who all trained from one global
model (:func:`~crypto_backends.statements.verify_contributors`).  That check comes
first, so the DP minimum and the scheme's policy count signed contributors, not the
aggregator's claims; a refused request
(:class:`~crypto_backends.errors.AggregateMismatchError`) is logged and leaves nothing
in the policy's record.

A scheme whose party keys are distinct shares of a decryption key
(``threat_model.dealer_erases_party_keys``: ``threshold_paillier``) makes the
dealer trusted at setup only: each party key is handed out once and then dropped
from this object (and a key store never holds it), so after every party has
fetched its key nothing here decrypts an upload; a second request is a
:class:`~securefl.errors.KeyErasedError`.  As with the dealt factors, "dropped"
means no reference survives here: Python cannot zero a big integer's memory.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace

from crypto_backends.base import Scheme
from crypto_backends.capabilities import FunctionKeys
from crypto_backends.errors import AggregateMismatchError, PolicyError
from crypto_backends.keys import AggregatorKey, FunctionKey, KeySet, PartyKey
from crypto_backends.statements import Evidence, Verifier, verify_contributors
from securefl.errors import ConfigError, KeyErasedError
from securefl.state.keystore import KeyStore
from securefl.state.partystate import PolicyState

log = logging.getLogger(__name__)


class Authority:
    """Holds the :class:`~crypto_backends.keys.KeySet`; gives out role keys one at a time."""

    def __init__(self, scheme: Scheme, party_ids: Sequence[str], *, keys: KeySet | None = None,
                 policy: PolicyState | None = None, min_contributors: int = 1,
                 verifier: Verifier | None = None) -> None:
        """Make a new key set for ``party_ids``, or take ``keys`` (a key set made earlier, e.g. reloaded).

        ``policy``: the federation's durable record of granted function keys (see the module
        docstring); ``min_contributors``: fewest non-zero weights a function key may cover;
        ``verifier``: the check of a function-key request's signed statements (``None``: none is
        checked, ``crypto.verify_aggregate = "off"``); it may also be set later, as :attr:`verifier`,
        once the key set (made here) is known.
        """
        self.scheme = scheme
        made = keys if keys is not None else scheme.keygen(list(party_ids))
        self._ids = tuple(sorted(party_ids))
        self.erases_party_keys = scheme.declarations.threat_model.dealer_erases_party_keys
        """Whether each party key is handed out once and then forgotten (the scheme's declaration)."""
        # under an erasing scheme the party keys live only here until delivered, never in the key set this role keeps
        self._undelivered: dict[str, PartyKey] = dict(made.parties) if self.erases_party_keys else {}
        self._keys = replace(made, parties={}) if self.erases_party_keys else made
        del made
        self._guard = threading.Lock()
        self.policy, self.min_contributors = policy, min_contributors
        self._verifier: Verifier | None = None
        self.verifier = verifier
        log.info("keys %s for %d parties under %s (fingerprint %s)", "loaded" if keys else "made", len(party_ids),
                 scheme.name, self._keys.aggregator.fingerprint)
        self._fkeys = scheme.capability(FunctionKeys)
        if policy is not None and self._keys.authority is not None and policy.record:
            if self._fkeys is None:
                raise PolicyError(f"a policy record was given, but the {scheme.name} scheme keeps none (it derives "
                                  "no function keys): remove the record or use the scheme that wrote it")
            self._fkeys.adopt_policy_record(self._keys.authority, policy.record)
            log.info("policy record of this federation adopted from %s", policy.path)

    @property
    def verifier(self) -> Verifier | None:
        """The check of each function-key request's signed statements (``None``: not checked)."""
        return self._verifier

    @verifier.setter
    def verifier(self, verifier: Verifier | None) -> None:
        if verifier is not None and verifier.aggregator_key.key_id != self._keys.aggregator.key_id:
            raise ConfigError("the authority's statement verifier was built for another key set than the one it "
                              "holds: build it from this authority's aggregator_key()")
        self._verifier = verifier

    @property
    def party_ids(self) -> list[str]:
        """The ids of every party of the key set, sorted (under an erasing scheme, delivered keys included)."""
        return list(self._ids)

    def party_key(self, party_id: str) -> PartyKey:
        """The key for ``party_id`` (to be delivered to that party only).

        Under a scheme that declares ``dealer_erases_party_keys`` this is its one delivery: the
        key is erased here on return, and a second request raises :class:`~securefl.errors.KeyErasedError`.
        """
        key = self.undelivered_key(party_id)
        self.erase_party_key(party_id)
        return key

    def undelivered_key(self, party_id: str) -> PartyKey:
        """The key for ``party_id``, not yet erased: for a delivery that ends with :meth:`erase_party_key`.

        A transport calls this, sends the key, and erases it only once the sending
        completed, so a delivery broken on the way does not lose the party's key.
        Raises ``KeyError`` for a party outside the key set, and
        :class:`~securefl.errors.KeyErasedError` for a key delivered (and erased) before.
        """
        if not self.erases_party_keys:
            return self._keys.parties[party_id]
        if party_id not in self._ids:
            raise KeyError(party_id)
        with self._guard:
            key = self._undelivered.get(party_id)
        if key is None:
            raise KeyErasedError(
                f"the key of {party_id!r} is not held here: under {self.scheme.name} the key authority hands each "
                "party's share out once and then erases it, and its key store keeps none (the authority is trusted "
                "at setup only). The party keeps its own key in "
                "its transport.state_dir; restart it with that directory. A party that lost its key needs a new "
                "key set: start a new federation (delete the key store and the aggregator's checkpoint)"
            )
        return key

    def erase_party_key(self, party_id: str) -> None:
        """Forget ``party_id``'s key after its delivery, if the scheme says so (otherwise a no-op)."""
        if not self.erases_party_keys:
            return
        with self._guard:
            erased = self._undelivered.pop(party_id, None) is not None
            left = len(self._undelivered)
        if erased:
            log.info("key of %s delivered and erased here (%d party key(s) still to deliver)", party_id, left)

    def aggregator_key(self) -> AggregatorKey:
        """The aggregator's key: public material only for schemes that decrypt at the parties."""
        return self._keys.aggregator

    def function_key(self, round: int, weights: Mapping[str, float], evidence: Evidence | None = None) -> FunctionKey:
        """A function key for ``weights`` in ``round``, if the signed statements and the scheme's policy allow it.

        With a :attr:`verifier`, ``evidence`` must sign exactly ``weights`` (see the module docstring):
        :class:`~crypto_backends.errors.AggregateMismatchError` otherwise, before any policy is asked.
        Without one, ``evidence`` is not looked at.  A refusal (that, or :class:`PolicyError`) is logged
        as "function key refused" and records nothing.
        """
        if self._keys.authority is None or self._fkeys is None:
            raise PolicyError(f"the {self.scheme.name} scheme derives no function keys (no authority key, or its "
                              "reveal plan needs none)")
        try:
            if self._verifier is not None:  # first: the counts below are of signed contributors only
                verify_contributors(self._verifier, round, self._keys.aggregator.key_id, weights, evidence)
            contributors = sum(1 for w in weights.values() if w != 0)
            if contributors < self.min_contributors:
                raise PolicyError(
                    f"function key for round {round} refused: it covers {contributors} contributor(s), and the "
                    f"differential-privacy noise plan needs at least {self.min_contributors} (each adds one share "
                    "of the noise); fewer would release a sum with less noise than the budget counts"
                )
            key = self._fkeys.function_key(self._keys.authority, round=round, weights=weights)
        except (PolicyError, AggregateMismatchError) as exc:
            log.warning("round %d: function key refused: %s", round, exc)
            raise
        if self.policy is not None:  # on disk before the key leaves this role
            self.policy.store(self._fkeys.policy_record(self._keys.authority))
        log.info("round %d: function key granted for %d parties%s", round, len(weights),
                 " (their signed statements verified)" if self._verifier is not None else "")
        return key


class PersistentAuthority(Authority):
    """An :class:`~securefl.core.authority.Authority` whose key set lives in a :class:`KeyStore` as well."""

    def __init__(self, scheme: Scheme, party_ids: Sequence[str], store: KeyStore, *,
                 policy: PolicyState | None = None, min_contributors: int = 1,
                 verifier: Verifier | None = None) -> None:
        keys = store.load(party_ids)
        super().__init__(scheme, party_ids, keys=keys, policy=policy, min_contributors=min_contributors,
                         verifier=verifier)
        self.store = store
        if keys is None:
            store.save(self._keys)  # under an erasing scheme self._keys holds no party key: public material only
        del keys
        log.info("key store: %s", store.path)

    def function_key(self, round: int, weights: Mapping[str, float], evidence: Evidence | None = None) -> FunctionKey:
        """As :meth:`Authority.function_key`, but the key set is saved first, with the policy's record of this grant.

        A refused key (PolicyError, AggregateMismatchError) saves nothing; a failed save raises and the key is
        not handed out.
        """
        key = super().function_key(round, weights, evidence)
        # the policy's record of this grant is on disk before the key leaves the authority
        self.store.save(self._keys)
        return key
