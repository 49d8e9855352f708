from __future__ import annotations

import stat

import pytest

from securefl.errors import ConfigError
from securefl.transport.grpc import certs


def test_certificates_name_each_member_and_keys_are_private(tmp_path):
    written = certs.make_certificates(tmp_path, ["site-a", "site-b"], hosts=["10.0.0.5", "agg.example.org"])
    names = {p.name for p in written}
    assert {"ca.pem", "ca.key", "aggregator.pem", "authority.key", "site-a.pem", "site-b.key"} <= names
    for p in written:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o600 if p.suffix == ".key" else 0o644), p
    assert certs.identity_of((tmp_path / "site-a.pem").read_bytes()) == certs.Identity("party", "site-a")
    assert certs.identity_of((tmp_path / "aggregator.pem").read_bytes()) == certs.Identity("aggregator", "aggregator")
    from cryptography import x509

    cert = x509.load_pem_x509_certificate((tmp_path / "authority.pem").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "securefl-authority" in san.get_values_for_type(x509.DNSName)
    assert "agg.example.org" in san.get_values_for_type(x509.DNSName)
    party = x509.load_pem_x509_certificate((tmp_path / "site-a.pem").read_bytes())
    with pytest.raises(x509.ExtensionNotFound):
        party.extensions.get_extension_for_class(x509.SubjectAlternativeName)  # a party is no server


def test_an_existing_ca_is_never_replaced(tmp_path):
    certs.make_certificates(tmp_path, ["p"])
    before = (tmp_path / "ca.key").read_bytes()
    with pytest.raises(ConfigError, match="already holds a certificate authority"):
        certs.make_certificates(tmp_path, ["p"])
    assert (tmp_path / "ca.key").read_bytes() == before


@pytest.mark.parametrize("ids", [[], ["a", "a"], ["bad id"]])
def test_party_ids_are_checked(tmp_path, ids):
    with pytest.raises(ConfigError):
        certs.make_certificates(tmp_path, ids)


def test_loading_checks_role_name_and_key_permissions(tmp_path):
    certs.make_certificates(tmp_path, ["p"])
    assert certs.load_tls(tmp_path, "p", role="party").chain.startswith(b"-----BEGIN CERTIFICATE")
    with pytest.raises(ConfigError, match="belongs to party 'p', not aggregator 'p'"):
        certs.load_tls(tmp_path, "p", role="aggregator")
    with pytest.raises(ConfigError, match="cannot read .*q.pem"):
        certs.load_tls(tmp_path, "q", role="party")
    (tmp_path / "p.key").chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        certs.load_tls(tmp_path, "p", role="party")
