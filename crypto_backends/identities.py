"""Party identities issued in one process: an Ed25519 authority and the identities it certifies.

A :class:`~crypto_backends.keys.PartyIdentity` is what a scheme signs round state
with and verifies its peers' signatures against (secagg's key advertisements and
its consistency round).  Over gRPC it is the party's TLS certificate
(``securefl.transport.grpc.identity``); where every role runs in one process (the
in-process driver :mod:`crypto_backends.roundtrip`, the benchmark, tests) this
module plays the certificate authority: :class:`LocalAuthority` makes a fresh
Ed25519 root key and issues each party an Ed25519 key pair with a certificate,
the root's signature over ``(authority fingerprint, party id, public key)``.
:meth:`LocalIdentity.verify` accepts a signature only if its certificate was
issued by the same authority, names the claimed party, and its key verifies the
signature (RFC 8032 Ed25519 over the exact bytes).

What is promised: a party's signature cannot be made without its private key,
and a certificate of another authority (another federation) is refused.  What is
not: revocation, expiry, or protection of the keys from code in the same process
(every key lives in this process's memory; this is a simulation's identity, not
a deployment's).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .envelope import check_party_id
from .errors import ShareError

_KEY = 32
_SIG = 64


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _certified(fingerprint: bytes, party: str, public: bytes) -> bytes:
    """What the authority signs for one party: its own fingerprint, the party id and the party's public key."""
    name = party.encode()
    return b"securefl-local-cert|" + fingerprint + struct.pack(">H", len(name)) + name + public


class LocalAuthority:
    """A fresh Ed25519 root that certifies party identities in this process (see the module docstring)."""

    def __init__(self) -> None:
        self._root = Ed25519PrivateKey.generate()
        self._public = self._root.public_key()
        self.fingerprint = hashlib.sha256(_raw(self._public)).digest()[:16]
        """16 bytes naming this authority: every certificate it issues carries them."""

    def __repr__(self) -> str:
        return f"LocalAuthority({self.fingerprint.hex()})"

    def issue(self, party: str) -> LocalIdentity:
        """A new identity for ``party`` (a valid party id): a fresh key pair and this authority's certificate."""
        check_party_id(party)
        key = Ed25519PrivateKey.generate()
        public = _raw(key.public_key())
        signature = self._root.sign(_certified(self.fingerprint, party, public))
        return LocalIdentity(party, key, public + signature, self)

    def issue_all(self, parties: Iterable[str]) -> dict[str, LocalIdentity]:
        """One identity per party id of ``parties``."""
        return {p: self.issue(p) for p in parties}

    def check_certificate(self, party: str, certificate: bytes) -> Ed25519PublicKey:
        """The public key ``certificate`` certifies for ``party``; :class:`ShareError` unless this authority made it."""
        if len(certificate) != _KEY + _SIG:
            raise ShareError(f"the certificate sent for {party} is not one of this federation's: refused")
        public = certificate[:_KEY]
        try:
            self._public.verify(certificate[_KEY:], _certified(self.fingerprint, party, public))
        except InvalidSignature:
            raise ShareError(f"the certificate sent for {party} was not issued to {party} by this federation's "
                             "authority: refused") from None
        return Ed25519PublicKey.from_public_bytes(public)


class LocalIdentity:
    """One party's identity from a :class:`LocalAuthority` (a :class:`~crypto_backends.keys.PartyIdentity`)."""

    def __init__(self, party: str, key: Ed25519PrivateKey, certificate: bytes, authority: LocalAuthority) -> None:
        self.party = party
        self._key, self._certificate, self._authority = key, certificate, authority

    def __repr__(self) -> str:
        return f"LocalIdentity({self.party!r}, {self._authority!r})"

    def sign(self, data: bytes) -> tuple[bytes, bytes]:
        """``(signature, certificate)``: ``data`` signed with this party's Ed25519 key, and its certificate."""
        return self._key.sign(data), self._certificate

    def verify(self, party: str, data: bytes, signature: bytes, certificate: bytes) -> None:
        """Raise :class:`~crypto_backends.errors.ShareError` unless ``certificate`` is this authority's for
        ``party`` and its key verifies ``signature`` over ``data``."""
        if not signature or not certificate:
            raise ShareError(f"the message of {party} carries no signature: refused (every party signs it)")
        public = self._authority.check_certificate(party, certificate)
        try:
            public.verify(signature, data)
        except InvalidSignature:
            raise ShareError(f"{party}'s signature does not verify: the signed message was altered or forged: "
                             "refused") from None


__all__ = ["LocalAuthority", "LocalIdentity"]
