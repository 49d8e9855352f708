from __future__ import annotations

import json
import os
import stat
import struct

import numpy as np
import pytest

from crypto_backends import registry
from crypto_backends.capabilities import InteractiveSetup
from crypto_backends.keys import SECRET_ACCESS, Key, KeySet, PartyKey
from crypto_backends.roundtrip import reveal_sum, run_setup
from securefl.core.authority import Authority, PersistentAuthority
from securefl.errors import KeyErasedError, StateError, TransportError
from securefl.state.atomic import write_private
from securefl.state.keystore import KeyStore, PartyKeyFile, dump_keyset, load_keyset
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
        # reloaded party keys give the shares, unless the shares live in the round's setup state, or the parties
        # keep their own keys (the reloaded authority holds none: the parties' first keys give the shares)
        kept = scheme.capability(InteractiveSetup) or scheme.threat_model.dealer_erases_party_keys
        revealers = mixed if kept else KeySet(aggregator=mixed.aggregator,
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


def _legacy_store(scheme, keys: KeySet) -> bytes:
    """A key store as securefl wrote it before issue 22 item 5: every party key in it, shares included."""
    assert keys.authority is not None
    entries: list[tuple[str, Key]] = [("aggregator", keys.aggregator), ("authority", keys.authority),
                                      *((f"party:{p}", keys.parties[p]) for p in sorted(keys.parties))]
    head = json.dumps({"scheme": scheme.name, "keys": [role for role, _ in entries]}).encode()
    blobs = [scheme.dump_key(k, secret_access=SECRET_ACCESS if k.holds_secret else None) for _, k in entries]
    return b"".join([b"SFLKEYS1", struct.pack(">I", len(head)), head,
                     *(struct.pack(">Q", len(b)) + b for b in blobs)])


def _share_bytes(scheme, key: PartyKey) -> bytes:
    share = int(key.unwrap(scheme.name).share)
    return share.to_bytes((share.bit_length() + 7) // 8, "big")


def test_an_older_store_with_the_dealers_shares_is_rewritten_without_them_before_any_key_is_served(tmp_path):
    scheme = make_scheme("threshold_paillier")
    keys = scheme.keygen(IDS)
    path = tmp_path / "keys"
    write_private(path, _legacy_store(scheme, keys))
    assert all(_share_bytes(scheme, keys.parties[p]) in path.read_bytes() for p in IDS)
    authority = PersistentAuthority(scheme, IDS, KeyStore(path, scheme))
    data = path.read_bytes()  # rewritten at load, before any party key left
    assert not [p for p in IDS if _share_bytes(scheme, keys.parties[p]) in data] and b"party:" not in data
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # the parties that never kept their key (they ran the older version) get it once more, then it is gone
    for p in IDS:
        assert authority.party_key(p).key_id == keys.key_id
        with pytest.raises(KeyErasedError):
            authority.party_key(p)
    again = PersistentAuthority(scheme, IDS, KeyStore(path, scheme))
    assert again.aggregator_key().key_id == keys.key_id
    with pytest.raises(KeyErasedError):
        again.party_key("p1")


def test_a_store_of_a_scheme_that_keeps_party_keys_still_needs_every_party(tmp_path):
    scheme = make_scheme("plain")
    data = dump_keyset(scheme, KeySet(aggregator=Authority(scheme, IDS).aggregator_key(), parties={}))
    with pytest.raises(TransportError, match="holds keys for parties"):
        load_keyset(scheme, data, IDS)


def test_a_party_keeps_its_own_key_and_uses_it_once_the_authority_erased_its_copy(tmp_path):
    scheme = make_scheme("threshold_paillier")
    authority = Authority(scheme, IDS)
    own = PartyKeyFile.in_dir(tmp_path / "state", "fed", scheme, "p1")
    first = own.obtain(lambda: authority.party_key("p1"))
    assert stat.S_IMODE(os.stat(own.path).st_mode) == 0o600
    assert own.path.read_bytes() == scheme.dump_key(first, secret_access=SECRET_ACCESS)  # the scheme's bytes
    again = own.obtain(lambda: authority.party_key("p1"))  # the authority refuses: the kept key is used
    assert again.key_id == first.key_id and _share_bytes(scheme, again) == _share_bytes(scheme, first)
    # a party that lost its file gets the authority's refusal, which names the fix
    with pytest.raises(KeyErasedError, match="new key set"):
        PartyKeyFile.in_dir(tmp_path / "other", "fed", scheme, "p1").obtain(lambda: authority.party_key("p1"))
    # an authority that made new keys does not silently replace the share of the old key set
    with pytest.raises(StateError, match="a new key set.*transport.authority_keys"):
        own.obtain(lambda: Authority(scheme, IDS).party_key("p1"))
    assert own.load() is not None and own.load().key_id == first.key_id  # type: ignore[union-attr]
    with pytest.raises(StateError, match="not the key of 'p2'"):
        PartyKeyFile(own.path, scheme, "p2").load()
    own.path.chmod(0o644)
    with pytest.raises(StateError, match="chmod 600"):
        own.load()
    own.path.chmod(0o600)
    own.path.write_bytes(b"garbage")
    with pytest.raises(StateError, match="is not a threshold_paillier party key"):
        own.load()
