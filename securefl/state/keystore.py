"""The key authority's key store: the whole key set on disk, so a restarted authority serves the same keys.

Without it (``transport.authority_keys = ""``) the key set lives only in the
authority's memory and a restarted authority makes a new one, which the
running aggregator, the parties and the aggregator's checkpoint do not match.

Format (explicit, never pickle)::

    b"SFLKEYS1"         magic and format version
    header length       4 bytes, big-endian unsigned
    header              UTF-8 JSON: {"scheme": name, "keys": [role, ...]} with roles
                        "aggregator", "authority" and "party:<id>" in the order of the blobs
    per key             8-byte big-endian length, then the scheme's dump_key bytes

It holds every secret of the federation (the parties' shared decryption key
for ``paillier`` and ``ckks``, the ``fe`` master secret and its function-key
ledger), so it is written with mode 0600 and atomically, and it is rewritten
after every function key *before* that key leaves the authority, so the
ledger of granted weight vectors survives a crash.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from pathlib import Path

from crypto_backends.base import Scheme
from crypto_backends.errors import SecureFLError
from crypto_backends.jsonheader import load_header
from crypto_backends.keys import (
    SECRET_ACCESS,
    AggregatorKey,
    AuthorityKey,
    Key,
    KeySet,
    PartyKey,
)
from securefl.errors import TransportError
from securefl.state.atomic import write_private

MAGIC = b"SFLKEYS1"


def dump_keyset(scheme: Scheme, keys: KeySet) -> bytes:
    """Every key of ``keys`` (secrets included) as one file's bytes: only for a role that already holds them all."""
    entries: list[tuple[str, Key]] = [("aggregator", keys.aggregator)]
    if keys.authority is not None:
        entries.append(("authority", keys.authority))
    entries += [(f"party:{pid}", keys.parties[pid]) for pid in sorted(keys.parties)]
    head = json.dumps({"scheme": scheme.name, "keys": [role for role, _ in entries]}).encode()
    blobs = [scheme.dump_key(key, secret_access=SECRET_ACCESS) for _, key in entries]
    return b"".join([MAGIC, struct.pack(">I", len(head)), head,
                     *(struct.pack(">Q", len(b)) + b for b in blobs)])


def load_keyset(scheme: Scheme, data: bytes, party_ids: Sequence[str], source: str = "key store") -> KeySet:
    """Parse a key store and check it is ``scheme``'s, for exactly ``party_ids``, all of one key set."""
    try:
        if data[:8] != MAGIC:
            raise ValueError("bad magic")
        (hlen,) = struct.unpack(">I", data[8:12])
        head = load_header(data[12 : 12 + hlen], "key store header")
        if not isinstance(head, dict) or set(head) != {"scheme", "keys"}:
            raise ValueError("garbled header")
        if head["scheme"] != scheme.name:
            raise TransportError(f"{source} holds {head['scheme']} keys but the config's scheme is {scheme.name}; "
                                 "point transport.authority_keys at another file or restore the old config")
        pos, keys = 12 + hlen, {}
        for role in head["keys"]:
            (n,) = struct.unpack(">Q", data[pos : pos + 8])
            keys[role] = scheme.load_key(data[pos + 8 : pos + 8 + n])
            pos += 8 + n
        if pos != len(data):
            raise ValueError("trailing bytes")
    except TransportError:
        raise
    except (ValueError, KeyError, TypeError, struct.error, SecureFLError) as exc:
        raise TransportError(f"{source} is damaged ({exc}); restore it from a backup, or delete it (and the "
                             "aggregator's checkpoint) to start a new federation with new keys") from None
    parties = {role.split(":", 1)[1]: key for role, key in keys.items() if role.startswith("party:")}
    if sorted(parties) != sorted(party_ids):
        raise TransportError(f"{source} holds keys for parties {sorted(parties)}, the config names "
                             f"{sorted(party_ids)}; a key set is made for one set of parties")
    aggregator, authority = keys.get("aggregator"), keys.get("authority")
    owned = {pid: k for pid, k in parties.items() if isinstance(k, PartyKey) and k.owner == pid}
    if (not isinstance(aggregator, AggregatorKey) or not (authority is None or isinstance(authority, AuthorityKey))
            or len(owned) != len(parties) or len({k.key_id for k in keys.values()}) != 1):
        raise TransportError(f"{source} mixes keys of different roles or key sets; restore it from a backup")
    return KeySet(aggregator=aggregator, parties=owned, authority=authority, key_id=aggregator.key_id)


class KeyStore:
    """The key set at ``path``: loaded if it exists, otherwise made by the caller and saved."""

    def __init__(self, path: str | Path, scheme: Scheme) -> None:
        self.path, self.scheme = Path(path), scheme

    def load(self, party_ids: Sequence[str]) -> KeySet | None:
        """The stored key set for ``party_ids``, or ``None`` if there is none; refused if others can read the file."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        if self.path.stat().st_mode & 0o077:
            raise TransportError(f"{self.path} is readable by other users; it holds every secret key of the "
                                 f"federation: run chmod 600 {self.path}")
        return load_keyset(self.scheme, data, party_ids, str(self.path))

    def save(self, keys: KeySet) -> None:
        """Store ``keys`` atomically, readable by this user only."""
        write_private(self.path, dump_keyset(self.scheme, keys))
