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

It holds every secret the authority keeps (the parties' shared decryption key
for ``paillier`` and ``ckks``, the ``fe`` master secret and its function-key
ledger), so it is written with mode 0600 and atomically, and it is rewritten
after every function key *before* that key leaves the authority, so the
ledger of granted weight vectors survives a crash.

Under a scheme that declares ``dealer_erases_party_keys`` (``threshold_paillier``,
whose party keys are shares of the decryption key) it holds public material only:
the aggregator key and the authority's (public) key, of one key id, and no party
key; the header then lists no ``party:`` role.  A store an older version wrote
with the shares in it is rewritten without them as soon as it is loaded (before
any key is served): refusing it would leave that file, which alone decrypts every
upload, on disk, and would end a federation whose parties never kept their own
key.  The shares read from it are handed out once more from memory, then erased.
Copies of the old file (backups) still hold them: delete those.

:class:`PartyKeyFile` is the party's side: its own key in its ``transport.state_dir``.
"""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Callable, Sequence
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
from securefl.errors import KeyErasedError, StateError, TransportError
from securefl.state.atomic import read_private, write_private

MAGIC = b"SFLKEYS1"
log = logging.getLogger(__name__)


def _erases(scheme: Scheme) -> bool:
    return scheme.declarations.threat_model.dealer_erases_party_keys


def dump_keyset(scheme: Scheme, keys: KeySet) -> bytes:
    """Every key of ``keys`` the authority keeps (secrets included) as one file's bytes.

    Under a scheme that declares ``dealer_erases_party_keys`` the party keys are left out,
    whatever ``keys`` holds: the file then holds public material only.
    """
    entries: list[tuple[str, Key]] = [("aggregator", keys.aggregator)]
    if keys.authority is not None:
        entries.append(("authority", keys.authority))
    if not _erases(scheme):
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
    # under an erasing scheme, no party key (this version's) or every party's (an older version's, to be rewritten)
    if sorted(parties) != sorted(party_ids) and not (parties == {} and _erases(scheme)):
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
        keys = load_keyset(self.scheme, data, party_ids, str(self.path))
        if keys.parties and _erases(self.scheme):
            self.save(keys)  # an older version's store: the shares leave the disk before anything is served
            log.warning("%s held every party's key share (written by an older securefl); rewritten with public "
                        "material only. Each share is handed out once more, then erased; delete any copy of the "
                        "old file", self.path)
        return keys

    def save(self, keys: KeySet) -> None:
        """Store ``keys`` atomically, readable by this user only (no party key under an erasing scheme)."""
        write_private(self.path, dump_keyset(self.scheme, keys))


class PartyKeyFile:
    """One party's own key at ``path``, for a scheme whose authority erases it after delivery.

    The file holds the scheme's :meth:`~crypto_backends.base.Scheme.dump_key` bytes of the
    party's key (never pickle), written by :func:`~securefl.state.atomic.write_private`
    (atomic, mode 0600) and read by :func:`~securefl.state.atomic.read_private` (a file
    others may read, or a symbolic link, is refused).
    """

    def __init__(self, path: str | Path, scheme: Scheme, party_id: str) -> None:
        self.path, self.scheme, self.party_id = Path(path), scheme, party_id

    @classmethod
    def in_dir(cls, state_dir: str | Path, federation: str, scheme: Scheme, party_id: str) -> PartyKeyFile:
        """``party_id``'s key file in ``federation`` (see :func:`~securefl.state.partystate.federation_id`)."""
        return cls(Path(state_dir) / f"party-{party_id}-{federation}.key", scheme, party_id)

    def load(self) -> PartyKey | None:
        """The stored key, or ``None`` if there is none; a damaged file or another party's key is a StateError."""
        data = read_private(self.path)
        if data is None:
            return None
        try:
            key = self.scheme.load_key(data)
        except SecureFLError as exc:
            raise StateError(f"{self.path} is not a {self.scheme.name} party key ({exc}); restore it from a backup. "
                             "Without it this party needs a new key set (a new federation)") from None
        if not isinstance(key, PartyKey) or key.owner != self.party_id:
            raise StateError(f"{self.path} holds {key!r}, not the key of {self.party_id!r}; each party keeps its "
                             "own key in its transport.state_dir")
        return key

    def save(self, key: PartyKey) -> None:
        """Store ``key`` atomically, readable by this user only."""
        write_private(self.path, self.scheme.dump_key(key, secret_access=SECRET_ACCESS))

    def obtain(self, fetch: Callable[[], PartyKey]) -> PartyKey:
        """This party's key: ``fetch``ed from the authority and stored here, or, once the authority erased it, the
        stored one.

        The authority is asked even when a key is stored: an authority that still holds
        a key for this party made a new key set, and a stored key of another key set is
        refused (:class:`~securefl.errors.StateError`) rather than silently replaced, since
        replacing it loses this party's share of the old one.  ``fetch`` raising
        :class:`~securefl.errors.KeyErasedError` with no key stored re-raises it.
        """
        stored = self.load()
        try:
            key = fetch()
        except KeyErasedError:
            if stored is None:
                raise
            log.info("%s: the authority erased its copy; using the key kept in %s (fingerprint %s)", self.party_id,
                     self.path, stored.fingerprint)
            return stored
        if stored is None:
            self.save(key)
            log.info("%s: key kept in %s", self.party_id, self.path)
        elif stored.key_id != key.key_id:
            raise StateError(
                f"the authority sent {self.party_id!r} a key of a new key set ({key.fingerprint}), but {self.path} "
                f"keeps its key of {stored.fingerprint}. If the authority was restarted without its key store by "
                "mistake, restart it with transport.authority_keys; if the federation started over with new keys, "
                f"delete {self.path}"
            )
        return key
