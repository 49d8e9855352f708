"""The authority role's own rules (issue 15 items 1 and 3): the noise plan's minimum, the federation's record;
and (issue 22 item 5) a dealer of key shares keeps none of them once delivered."""

from __future__ import annotations

from collections.abc import Mapping
from types import BuiltinFunctionType, FunctionType, MethodType, ModuleType

import numpy as np
import pytest
from gmpy2 import mpz

from crypto_backends.base import Scheme
from crypto_backends.capabilities import ShareReveal
from crypto_backends.envelope import Envelope
from crypto_backends.errors import PolicyError, ShareError
from crypto_backends.keys import AggregatorKey, PartyKey
from crypto_backends.threshold_paillier.scheme import ShareMaterial
from securefl import config
from securefl.core.authority import Authority, PersistentAuthority
from securefl.core.federation import make_scheme, min_contributors
from securefl.errors import KeyErasedError
from securefl.simulation import Simulation
from securefl.state.keystore import KeyStore
from tests.paths import CONFIGS
from tests.schemes import make_scheme as fast_scheme

DISTRIBUTED = ["federation.rounds=1", "crypto.fe.dlog_table_bits=14", "privacy.mode=distributed",
               "privacy.epsilon=5", "privacy.epsilon_budget=20", "privacy.row_norm=4.0", "privacy.delta=1e-6",
               "privacy.delta_budget=1e-5", "federation.quorum=4", "crypto.fe.min_parties=4"]


def test_the_authority_refuses_a_function_key_for_fewer_contributors_than_the_noise_plan_needs():
    # the statements' check (crypto.verify_aggregate) comes before this count: test_authority_statements.py
    cfg = config.load(str(CONFIGS / "fe.toml"), [*DISTRIBUTED, "crypto.verify_aggregate=off"])
    assert min_contributors(cfg) == 4
    sim = Simulation(cfg)
    assert sim.authority.min_contributors == 4
    # the networked authority's scheme is the bare one (it adds no noise): the role's own rule still holds
    bare = Authority(make_scheme(cfg), cfg.federation.ids, min_contributors=min_contributors(cfg))
    for authority in (sim.authority, bare):
        three = {"party-1": 50.0, "party-2": 50.0, "party-3": 50.0, "party-4": 0.0}
        with pytest.raises(PolicyError, match="covers 3 contributor"):
            authority.function_key(0, three)
        authority.function_key(0, three | {"party-4": 50.0})
    assert min_contributors(cfg.replace(["privacy.mode=local"])) == 1


# --- issue 22 item 5: the threshold_paillier dealer keeps no share once each party has its own ----------------------

IDS = ["p1", "p2", "p3"]


def _reachable(root: object) -> list[object]:
    """Every object reachable from ``root`` through attributes (``__dict__`` and slots) and containers."""
    seen: set[int] = set()
    stack, found = [root], []
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (type, ModuleType, FunctionType, MethodType, BuiltinFunctionType)):
            continue
        seen.add(id(obj))
        found.append(obj)
        if isinstance(obj, (str, bytes, bytearray, int, float, bool, mpz)) or obj is None:
            continue
        if isinstance(obj, Mapping):
            stack += [*obj.keys(), *obj.values()]
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack += list(obj)
        if hasattr(obj, "__dict__"):
            stack += list(vars(obj).values())
        for cls in type(obj).__mro__:
            for slot in getattr(cls, "__slots__", ()):
                if hasattr(obj, slot):
                    stack.append(getattr(obj, slot))
    return found


def _open(scheme: Scheme, aggregator: AggregatorKey, holders: list[PartyKey], aggregate: Envelope) -> np.ndarray:
    """What holders of ``holders`` can do with the aggregator's public key: one decryption share each, combined."""
    assert isinstance(scheme, ShareReveal)
    shares = {k.owner: scheme.decryption_share(k, aggregate, b"") for k in holders if k.owner is not None}
    return scheme.reveal_shares(aggregator, aggregate, shares)


def test_after_every_party_fetched_its_key_nothing_the_threshold_dealer_holds_decrypts_an_upload(tmp_path):
    scheme = fast_scheme("threshold_paillier")
    store = KeyStore(tmp_path / "keys", scheme)
    authority = PersistentAuthority(scheme, IDS, store)
    kept = {p: authority.party_key(p) for p in IDS}  # each party's one delivery
    x = np.linspace(-1, 1, 30)
    # one party's upload, as an aggregator "combines" it alone: what a dealer holding t shares could open
    upload = scheme.combine(authority.aggregator_key(), [scheme.protect(kept["p1"], x, weight=1.0, round=0)], round=0)
    np.testing.assert_allclose(_open(scheme, authority.aggregator_key(), list(kept.values()), upload), x,
                               atol=scheme.tolerance([1.0]))
    shares = {int(k.unwrap(scheme.name).share) for k in kept.values()}
    state = _reachable(authority)
    held = [o for o in state if isinstance(o, PartyKey) and o.holds_secret]
    with pytest.raises(ShareError, match="0 decryption share"):  # t = 2 shares needed, the dealer has none
        _open(scheme, authority.aggregator_key(), held, upload)
    assert held == [] and not [o for o in state if isinstance(o, ShareMaterial)]
    assert not [o for o in state if isinstance(o, (int, mpz)) and int(o) in shares]
    # nor its key store: public material only, read back with no party key
    data = store.path.read_bytes()
    assert not [s for s in shares if s.to_bytes((s.bit_length() + 7) // 8, "big") in data]
    assert b"party:" not in data and store.load(IDS) is not None and store.load(IDS).parties == {}  # type: ignore[union-attr]


def test_a_second_request_for_an_erased_party_key_is_refused_with_the_fix():
    scheme = fast_scheme("threshold_paillier")
    authority = Authority(scheme, IDS)
    assert authority.erases_party_keys and authority.party_ids == IDS
    first = authority.undelivered_key("p1")  # a delivery under way erases nothing yet ...
    assert authority.party_key("p1") is first  # ... its completion does
    with pytest.raises(KeyErasedError, match=r"hands each party's share out once.*transport\.state_dir.*new key set"):
        authority.party_key("p1")
    with pytest.raises(KeyErasedError):
        authority.undelivered_key("p1")
    assert authority.party_key("p2").owner == "p2"  # the others are not affected
    with pytest.raises(KeyError):
        authority.party_key("p4")
    # where every party holds the same key the authority keeps it: a restarted party fetches it again
    shared = Authority(fast_scheme("paillier"), IDS)
    assert not shared.erases_party_keys and shared.party_key("p1") is shared.party_key("p1")
