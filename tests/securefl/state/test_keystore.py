from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from crypto_backends import registry
from crypto_backends.capabilities import InteractiveSetup
from crypto_backends.keys import KeySet
from crypto_backends.roundtrip import reveal_sum, run_setup
from securefl.core.authority import Authority, PersistentAuthority
from securefl.errors import TransportError
from securefl.state.keystore import KeyStore, dump_keyset, load_keyset
from tests.schemes import make_scheme

IDS = ["p1", "p2", "p3"]


@pytest.mark.parametrize("name", registry.available())
def test_a_reloaded_key_set_is_the_same_key_set(tmp_path, name):
    scheme = make_scheme(name)
    first = PersistentAuthority(scheme, IDS, KeyStore(tmp_path / "keys", scheme))
    assert stat.S_IMODE(os.stat(tmp_path / "keys").st_mode) == 0o600
    again = PersistentAuthority(scheme, IDS, KeyStore(tmp_path / "keys", scheme))
    assert again.aggregator_key().key_id == first.aggregator_key().key_id
    # an update protected with the first authority's key is fused and revealed under the reloaded keys
    x = np.linspace(-1, 1, 40)
    mixed = KeySet(aggregator=again.aggregator_key(), parties={p: first.party_key(p) for p in IDS})
    run_setup(scheme, mixed, IDS, round=0)  # a scheme's setup exchange, if it has one, between these keys
    envs = [scheme.protect(mixed.parties[p], x * (i + 1), weight=1.0, round=0) for i, p in enumerate(IDS)]
    aggregate = scheme.combine(mixed.aggregator, envs, round=0)
    if scheme.declarations.reveal.shares:
        # reloaded party keys give the shares, unless the shares live in the round's setup state
        revealers = mixed if scheme.capability(InteractiveSetup) else KeySet(aggregator=mixed.aggregator,
                                                                 parties={p: again.party_key(p) for p in IDS})
        total = reveal_sum(scheme, revealers, aggregate)
    else:
        fkey = (again.function_key(0, dict(zip(aggregate.parties, aggregate.weights, strict=True)))
                if scheme.reveal_plan.function_key else None)
        holder = again.aggregator_key() if scheme.reveal_plan.site.value == "aggregator" else again.party_key("p1")
        total = scheme.reveal(holder, aggregate, function_key=fkey)
    np.testing.assert_allclose(total, x * 6, atol=1e-2)


@pytest.mark.skipif("fe" not in registry.available(), reason="needs a scheme with function keys")
def test_the_function_key_ledger_survives_a_restart(tmp_path):
    from crypto_backends.errors import PolicyError

    scheme = make_scheme("fe")
    first = PersistentAuthority(scheme, IDS, KeyStore(tmp_path / "keys", scheme))
    first.function_key(0, {"p1": 1.0, "p2": 1.0, "p3": 1.0})
    again = PersistentAuthority(scheme, IDS, KeyStore(tmp_path / "keys", scheme))
    with pytest.raises(PolicyError):
        again.function_key(0, {"p1": 1.0, "p2": 1.0})


def test_damaged_or_foreign_stores_are_refused(tmp_path):
    scheme = make_scheme("plain")
    data = dump_keyset(scheme, Authority(scheme, IDS)._keys)
    assert load_keyset(scheme, data, IDS).aggregator.holds_secret is False
    for bad, needle in [(b"X" + data[1:], "damaged"), (data[:-3], "damaged"), (data + b"x", "damaged")]:
        with pytest.raises(TransportError, match=needle):
            load_keyset(scheme, bad, IDS)
    with pytest.raises(TransportError, match="holds keys for parties"):
        load_keyset(scheme, data, ["p1", "p2"])
    other = dump_keyset(scheme, Authority(scheme, IDS)._keys)
    # the aggregator's key of another key set (same length) in place of this one's
    start = data.index(b"SFLK", 12)
    end = data.index(b"SFLK", start + 4) - 8
    mixed = data[:start] + other[start:end] + data[end:]
    assert len(mixed) == len(data) and mixed != data
    with pytest.raises(TransportError, match="mixes keys"):
        load_keyset(scheme, mixed, IDS)
    path = tmp_path / "keys"
    path.write_bytes(data)
    path.chmod(0o644)
    with pytest.raises(TransportError, match="chmod 600"):
        KeyStore(path, scheme).load(IDS)


@pytest.mark.skipif("fe" not in registry.available(), reason="needs a scheme with function keys")
def test_a_restarted_authority_refuses_the_key_that_completes_an_isolating_span(tmp_path):
    """Issue 22 item 6: the last key of the four-round attack, after a restart with its store or only its record."""
    from crypto_backends.errors import PolicyError
    from securefl.state.partystate import PolicyState

    ids = [f"p{i}" for i in range(1, 6)]
    attack = [ids, ["p1", "p2", "p3"], ["p1", "p2", "p4"], ["p1", "p2", "p5"]]
    scheme = make_scheme("fe")
    first = PersistentAuthority(scheme, ids, KeyStore(tmp_path / "keys", scheme),
                                policy=PolicyState.in_dir(tmp_path, "fed"))
    for r, parties in enumerate(attack[:3]):
        first.function_key(r, dict.fromkeys(parties, 1.0))
    del first
    again = PersistentAuthority(scheme, ids, KeyStore(tmp_path / "keys", scheme))  # its key store only
    fresh = Authority(scheme, ids, policy=PolicyState.in_dir(tmp_path, "fed"))  # a new key set, the record only
    for authority in (again, fresh):
        with pytest.raises(PolicyError, match=r"rounds 0, 1, 2, .* any one of p3, p4, p5 alone"):
            authority.function_key(3, dict.fromkeys(attack[3], 1.0))
    fresh.function_key(3, dict.fromkeys(attack[0], 1.0))  # a vector already in the span: granted
