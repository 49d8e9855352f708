"""A party's TLS certificate as its identity inside a scheme (:class:`crypto_backends.keys.PartyIdentity`).

Schemes that publish per-round keys through the aggregator (``secagg``) sign them
with the party's TLS private key and send its certificate along; a receiver
accepts them only if the certificate was issued by the federation's CA, is a
party certificate naming the advertised party id, is within its validity period,
and its key verifies the signature (ECDSA P-256, SHA-256).  So an aggregator that
substitutes a party's keys is detected: it holds no party's TLS key.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from crypto_backends.errors import ShareError
from securefl.errors import SecureFLError
from securefl.transport.grpc.certs import PARTY, Identity, TLSFiles, identity_of


class CertificateVerifier:
    """Verifies parties' signatures against the federation's CA, and signs nothing: what a role that is no
    party (the aggregator, the authority) holds to check the parties' signed statements."""

    def __init__(self, ca: bytes) -> None:
        self._ca = x509.load_pem_x509_certificate(ca)

    def verify(self, party: str, data: bytes, signature: bytes, certificate: bytes) -> None:
        """Raise :class:`~crypto_backends.errors.ShareError` unless the DER ``certificate`` passes every check of
        the module docstring for ``party`` and its key verifies ``signature`` over ``data``.

        The certificate must be issued directly by the CA (no intermediates); revocation is not checked.
        """
        if not signature or not certificate:
            raise ShareError(f"the keys advertised for {party} carry no signature: refused (every party of a "
                             "TLS federation signs its advertisement; the aggregator may have replaced it)")
        try:
            cert = x509.load_der_x509_certificate(certificate)
            cert.verify_directly_issued_by(self._ca)
        except (ValueError, TypeError, InvalidSignature):
            raise ShareError(f"the certificate sent with {party}'s keys was not issued by the federation's CA: "
                             "refused") from None
        now = dt.datetime.now(dt.UTC)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise ShareError(f"the certificate sent with {party}'s keys is expired or not yet valid: refused")
        try:
            who = identity_of(cert.public_bytes(serialization.Encoding.PEM))
        except SecureFLError:
            who = None
        if who != Identity(PARTY, party):
            raise ShareError(f"the keys advertised for {party} are signed by {who}, not by that party: refused")
        public = cert.public_key()
        try:
            if not isinstance(public, ec.EllipticCurvePublicKey):
                raise InvalidSignature
            public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise ShareError(f"the signature on {party}'s advertised keys does not verify: the keys were altered "
                             "(a substituting aggregator?): refused") from None


class CertificateIdentity(CertificateVerifier):
    """Signs with one party's TLS key; verifies peers against the federation's CA (see the module docstring)."""

    def __init__(self, tls: TLSFiles, party: str) -> None:
        super().__init__(tls.ca)
        key = serialization.load_pem_private_key(tls.key, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ShareError(f"{party}'s TLS key is not an EC key; make the certificates with `securefl certs`")
        self._key = key
        self._cert = x509.load_pem_x509_certificate(tls.chain)
        self.party = party

    def __repr__(self) -> str:
        return f"CertificateIdentity({self.party!r})"

    def sign(self, data: bytes) -> tuple[bytes, bytes]:
        """``(signature, certificate)``: ``data`` signed with the TLS key (ECDSA, SHA-256), and the DER certificate."""
        signature = self._key.sign(data, ec.ECDSA(hashes.SHA256()))
        return signature, self._cert.public_bytes(serialization.Encoding.DER)
