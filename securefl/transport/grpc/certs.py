"""A federation's private certificate authority, and each role's TLS identity.

``securefl certs OUTDIR`` makes one EC P-256 CA and one certificate per role
member: the aggregator, the key authority and every party.  A certificate's
subject says who its holder is: ``OU`` is the role (``party``, ``aggregator``,
``authority``) and ``CN`` the name (the party id; ``aggregator``;
``authority``).  Servers read that subject from the verified client certificate
of each connection (never from a field the client fills in).

Server certificates (aggregator, authority) carry the DNS name
``securefl-<role>`` besides the host names asked for; clients always check the
server against that role name (``grpc.ssl_target_name_override``), so a
certificate issued to one role cannot stand in for the other even when both
run on the same host.  Party certificates are client-only and name no host.

Layout of OUTDIR: ``ca.pem`` (give it to every machine), ``ca.key`` (keep it
offline: it can mint identities), ``<name>.pem`` and ``<name>.key`` per member.
Private keys are written with mode 0600 and never overwritten.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from crypto_backends.envelope import PARTY_ID_RE
from securefl.errors import ConfigError, TransportError

AGGREGATOR, AUTHORITY, PARTY = "aggregator", "authority", "party"
SERVER_ROLES = (AGGREGATOR, AUTHORITY)
ORGANIZATION = "securefl federation"


def server_name(role: str) -> str:
    """The DNS name every server certificate of ``role`` carries and every client checks."""
    return f"securefl-{role}"


@dataclass(frozen=True)
class Identity:
    """Who is at the other end of a connection, as its verified certificate says."""

    role: str
    name: str

    def __str__(self) -> str:
        return f"{self.role} {self.name!r}"


@dataclass(frozen=True)
class TLSFiles:
    """PEM bytes a role needs for mutual TLS: the CA, its own chain and private key."""

    ca: bytes
    chain: bytes
    key: bytes


# --- making certificates -----------------------------------------------------
def _name(common: str, unit: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
        x509.NameAttribute(NameOID.COMMON_NAME, common),
    ])


def _san(hosts: Iterable[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _write_private(path: Path, data: bytes) -> None:
    # O_EXCL: never replace a key someone may already rely on; 0600 from creation on, no window
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _write_public(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_certificates(outdir: str | Path, party_ids: Sequence[str], *, hosts: Sequence[str] = (),
                      days: int = 365) -> list[Path]:
    """Make a CA and certificates for the aggregator, the authority and ``party_ids`` in ``outdir``.

    ``hosts`` are extra names/addresses for the two server certificates (``127.0.0.1``
    and ``localhost`` are always included).  Refuses to touch an ``outdir`` that
    already holds a CA.  Returns the files written.
    """
    out = Path(outdir)
    if (out / "ca.pem").exists() or (out / "ca.key").exists():
        raise ConfigError(f"{out} already holds a certificate authority (ca.pem); choose an empty directory, "
                          "or delete the old CA first if you really mean to replace every identity")
    issued = issue_certificates(party_ids, hosts=hosts, days=days)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "ca.key", out / "ca.pem"]
    _write_private(written[0], issued.ca_key)
    _write_public(written[1], issued.ca)
    for name, (key, cert) in issued.members.items():
        _write_private(out / f"{name}.key", key)
        _write_public(out / f"{name}.pem", cert)
        written += [out / f"{name}.key", out / f"{name}.pem"]
    return written


@dataclass(frozen=True)
class Issued:
    """A federation's CA and its members' keys and certificates, as PEM bytes (:func:`issue_certificates`).

    ``members`` maps each member's name (``aggregator``, ``authority``, each party id) to
    ``(private key, certificate)``.  ``ca_key`` signs certificates: it belongs to whoever
    runs the federation's CA, never to a member.
    """

    ca: bytes
    ca_key: bytes = field(repr=False)
    members: Mapping[str, tuple[bytes, bytes]] = field(repr=False)

    def tls(self, name: str) -> TLSFiles:
        """Member ``name``'s TLS material: the CA certificate, its own certificate and its private key."""
        key, cert = self.members[name]
        return TLSFiles(ca=self.ca, chain=cert, key=key)


def issue_certificates(party_ids: Sequence[str], *, hosts: Sequence[str] = (), days: int = 365) -> Issued:
    """A new CA (ECDSA P-256) and a certificate for the aggregator, the authority and each of ``party_ids``, in
    memory (:func:`make_certificates` writes them to files; a simulation keeps them in its process)."""
    if not 1 <= days <= 3650:
        raise ConfigError("--days must be between 1 and 3650")
    for pid in party_ids:
        if not PARTY_ID_RE.fullmatch(pid):
            raise ConfigError(f"party id {pid!r} is not valid: use 1-64 letters, digits, '.', '_', '-'")
    if len(set(party_ids)) != len(party_ids) or not party_ids:
        raise ConfigError("give at least one party id, each once")
    now = dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(minutes=5), now + dt.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("securefl federation CA", "ca")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))
    members: dict[str, tuple[bytes, bytes]] = {}
    for role, name in [(AGGREGATOR, AGGREGATOR), (AUTHORITY, AUTHORITY)] + [(PARTY, pid) for pid in party_ids]:
        key = ec.generate_private_key(ec.SECP256R1())
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = (x509.CertificateBuilder().subject_name(_name(name, role)).issuer_name(ca_name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(end)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                                key_encipherment=False, data_encipherment=False,
                                                key_agreement=False, key_cert_sign=False, crl_sign=False,
                                                encipher_only=False, decipher_only=False), critical=True)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                                  critical=False))
        if role in SERVER_ROLES:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
            names = _san([server_name(role), "localhost", "127.0.0.1", *hosts])
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False).sign(ca_key, hashes.SHA256())
        members[name] = (_key_pem(key), cert.public_bytes(serialization.Encoding.PEM))
    return Issued(ca.public_bytes(serialization.Encoding.PEM), _key_pem(ca_key), members)


# --- reading them ----------------------------------------------------------------
def identity_of(pem: bytes) -> Identity:
    """The role and name a (verified) certificate states."""
    cert = x509.load_pem_x509_certificate(pem)
    subject = cert.subject

    def one(oid: x509.ObjectIdentifier) -> str:
        attrs = subject.get_attributes_for_oid(oid)
        if len(attrs) != 1:
            raise TransportError(f"certificate subject {subject.rfc4514_string()} must hold exactly one {oid._name}")
        return str(attrs[0].value)

    return Identity(role=one(NameOID.ORGANIZATIONAL_UNIT_NAME), name=one(NameOID.COMMON_NAME))


def load_tls(cert_dir: str | Path, name: str, *, role: str) -> TLSFiles:
    """Read ``ca.pem``, ``<name>.pem`` and ``<name>.key`` from ``cert_dir`` and check they fit ``role``."""
    base = Path(cert_dir)
    paths = {"ca": base / "ca.pem", "chain": base / f"{name}.pem", "key": base / f"{name}.key"}
    try:
        files = TLSFiles(**{k: p.read_bytes() for k, p in paths.items()})
    except OSError as exc:
        raise ConfigError(
            f"cannot read {exc.filename}: {exc.strerror}. Set transport.cert_dir to the directory made by "
            f"`securefl certs` (it must hold ca.pem, {name}.pem and {name}.key)") from None
    mode = paths["key"].stat().st_mode & 0o077
    if mode:
        raise ConfigError(f"{paths['key']} is readable by other users "
                          f"(mode {oct(paths['key'].stat().st_mode & 0o777)}); run chmod 600 {paths['key']}")
    who = identity_of(files.chain)
    if who != Identity(role, name):
        raise ConfigError(f"{paths['chain']} belongs to {who}, not {Identity(role, name)}; "
                          "use the certificate `securefl certs` made for this role and name")
    return files
