"""Who a party is, proved by signature: its identity key and certificate from the federation's CA.

A party signs what the aggregator relays on its behalf (``secagg``'s key
advertisements today) with its identity key; every receiver checks the
certificate against the federation's CA
(:class:`~securefl.transport.grpc.identity.CertificateIdentity`), so an aggregator
that substitutes a party's message is caught: it holds no party's key.

In a deployment the identity is the party's TLS key and certificate (``securefl
certs``).  A simulation makes a CA of its own in memory (:class:`InProcessCA`), so
that threads, Ray actors and processes run the same checks; its CA key never
leaves the process that made it, and each party's key goes only to where that
party runs.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path

from crypto_backends.base import Scheme
from crypto_backends.capabilities import InteractiveSetup
from crypto_backends.keys import PartyIdentity, PartyKey
from securefl.errors import TransportError
from securefl.state.atomic import write_private
from securefl.transport.grpc.certs import PARTY, Issued, TLSFiles, issue_certificates, load_tls
from securefl.transport.grpc.identity import CertificateIdentity, CertificateVerifier

SIMULATION_DAYS = 7
"""How long an in-process CA's certificates are valid: a simulation is not a deployment."""


def bind_identity(scheme: Scheme, key: PartyKey, identity: PartyIdentity) -> None:
    """Give ``key`` its party's identity wherever ``scheme`` signs with it (its setup exchanges)."""
    setup = scheme.capability(InteractiveSetup)
    if setup is not None:
        setup.bind_identity(key, identity)


class InProcessCA:
    """A federation's CA and every party's identity, made in memory for one simulation.

    With ``path`` (a simulation whose key set outlives the run: ``transport.authority_keys``)
    the identities are kept in that file (0600; the CA's own signing key is not: nothing
    is issued later), so a rerun that resumes a sealed model checks its signed evidence
    against the same CA.  A file of other parties is refused.
    """

    @classmethod
    def from_cert_dir(cls, cert_dir: str | Path, party_ids: Sequence[str]) -> InProcessCA:
        """The parties' identities from a deployment's ``securefl certs`` directory (its CA, their TLS keys), so a
        simulation of a deployment's config checks the signatures the deployment made (e.g. in its checkpoint)."""
        made = cls.__new__(cls)
        tls = {pid: load_tls(cert_dir, pid, role=PARTY) for pid in party_ids}
        made._issued = Issued(tls[party_ids[0]].ca, b"", {pid: (t.key, t.chain) for pid, t in tls.items()})
        return made

    def __init__(self, party_ids: Sequence[str], path: str | Path | None = None) -> None:
        if path is not None and Path(path).exists():
            self._issued = _load(Path(path), party_ids)
            return
        self._issued = issue_certificates(list(party_ids), days=SIMULATION_DAYS)
        if path is not None:
            pems = {name: [base64.b64encode(x).decode() for x in pair] for name, pair in self._issued.members.items()}
            write_private(path, json.dumps({"ca": base64.b64encode(self._issued.ca).decode(), "members": pems},
                                           sort_keys=True).encode())

    def verifier(self) -> CertificateVerifier:
        """A checker of the parties' signatures that can sign nothing (for the aggregator and the authority)."""
        return CertificateVerifier(self._issued.ca)

    def identity(self, party: str) -> CertificateIdentity:
        """``party``'s identity (its own key and certificate, the CA to check its peers against)."""
        return CertificateIdentity(self._issued.tls(party), party)

    def export(self, party: str) -> bytes:
        """``party``'s identity as bytes, for the one process or actor that runs that party (:func:`load_identity`)."""
        tls = self._issued.tls(party)
        pems = {"ca": tls.ca, "chain": tls.chain, "key": tls.key}
        return json.dumps({"party": party, **{k: base64.b64encode(v).decode() for k, v in pems.items()}},
                          sort_keys=True).encode()


def _load(path: Path, party_ids: Sequence[str]) -> Issued:
    try:
        fields = json.loads(path.read_bytes())
        members = {name: (base64.b64decode(k, validate=True), base64.b64decode(c, validate=True))
                   for name, (k, c) in fields["members"].items()}
        issued = Issued(base64.b64decode(fields["ca"], validate=True), b"", members)
    except (ValueError, KeyError, TypeError) as exc:
        raise TransportError(f"{path} is not a simulation's identities file ({exc!r}); delete it (with the key "
                             "store beside it) to start a new federation") from None
    if not set(party_ids) <= set(members):
        raise TransportError(f"{path} holds the identities of other parties than {', '.join(party_ids)}: delete "
                             "it (with the key store beside it) to start a new federation")
    return issued


def load_identity(data: bytes, party: str) -> CertificateIdentity:
    """The identity :meth:`InProcessCA.export` made for ``party``; :class:`TransportError` for another party's."""
    try:
        fields = json.loads(data)
        tls = TLSFiles(*(base64.b64decode(fields[k], validate=True) for k in ("ca", "chain", "key")))
        owner = fields["party"]
    except (ValueError, KeyError, TypeError) as exc:
        raise TransportError(f"the identity sent for {party} is garbled ({exc!r}); restart the simulation") from None
    if owner != party:
        raise TransportError(f"the identity sent for {party} is {owner!r}'s: each party takes its own identity only")
    return CertificateIdentity(tls, party)


__all__ = ["InProcessCA", "bind_identity", "load_identity"]
