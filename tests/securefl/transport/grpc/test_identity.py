"""Advertised secagg keys bound to the parties' TLS certificates: a substituting aggregator is detected."""

from __future__ import annotations

import json

import numpy as np
import pytest

from crypto_backends.errors import ShareError
from crypto_backends.secagg import SecAggScheme
from securefl.transport.grpc.certs import PARTY, load_tls, make_certificates
from securefl.transport.grpc.identity import CertificateIdentity
from tests.exchange import confirm, setup_exchange

IDS = ["party-1", "party-2", "party-3", "party-4"]


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    out = tmp_path_factory.mktemp("certs")
    make_certificates(out, IDS)
    other = tmp_path_factory.mktemp("other-ca")
    make_certificates(other, IDS)
    return out, other


def _bound(certs_dir, scheme, ids=IDS):
    keys = scheme.keygen(ids)
    for p in ids:
        scheme.bind_identity(keys.parties[p], CertificateIdentity(load_tls(certs_dir, p, role=PARTY), p))
    return keys


def test_signed_advertisements_verify_and_the_round_sums(certs):
    scheme = SecAggScheme()
    keys = _bound(certs[0], scheme)
    ready = setup_exchange(scheme, keys, bind=False)
    assert ready == tuple(IDS)
    ups = [scheme.protect(keys.parties[p], np.full(8, 0.25), weight=1.0, round=0) for p in ready]
    aggregate = scheme.combine(keys.aggregator, ups, round=0)
    confirm(scheme, keys, aggregate)  # the survivors sign the survivor set with their certificates' keys
    req = scheme.share_request(keys.aggregator, aggregate)
    shares = {p: scheme.decryption_share(keys.parties[p], aggregate, req.message) for p in req.parties}
    assert np.allclose(scheme.reveal_shares(keys.aggregator, aggregate, shares), 1.0, atol=1e-3)


def _substitute(field):
    """An aggregator that swaps party-2's advertised key for one of its own, as party-1 receives it."""
    def tamper(step, party, message):
        if step != 1 or party != "party-1":
            return message
        obj = json.loads(message)
        for ad in obj["adverts"]:
            if ad["party"] == "party-2":
                ad[field] = bytes(32).hex() if field != "cert" else ad[field]
        return json.dumps(obj).encode()
    return tamper


@pytest.mark.parametrize("field", ["s_pk", "c_pk"])
def test_a_substituted_advertised_key_is_refused(certs, field):
    scheme = SecAggScheme()
    keys = _bound(certs[0], scheme)
    with pytest.raises(ShareError, match="party-2.*does not verify"):
        setup_exchange(scheme, keys, bind=False, tamper_message=_substitute(field))


@pytest.mark.parametrize(("case", "why"), [
    ("signed by party-3", "party-2 are signed by party 'party-3'"),
    ("another federation's CA", "party-2's keys was not issued by the federation's CA"),
    ("unsigned", "party-2 carry no signature"),
])
def test_an_advertisement_signed_by_another_party_or_another_ca_or_unsigned_is_refused(certs, case, why):
    good, foreign = certs
    alien = CertificateIdentity(load_tls(foreign, "party-2", role=PARTY), "party-2")

    def tamper(step, party, message):
        if step != 1 or party != "party-1":
            return message
        obj = json.loads(message)
        ads = {ad["party"]: ad for ad in obj["adverts"]}
        mine = ads["party-2"]
        data = bytes.fromhex(mine["c_pk"])  # any bytes: what matters is who signed
        if case == "signed by party-3":
            mine["cert"] = ads["party-3"]["cert"]
        elif case == "another federation's CA":
            mine["sig"], cert = (v.hex() for v in alien.sign(data))
            mine["cert"] = cert
        else:
            mine["sig"] = mine["cert"] = ""
        return json.dumps(obj).encode()

    scheme = SecAggScheme()
    keys = _bound(good, scheme)
    with pytest.raises(ShareError, match=why):
        setup_exchange(scheme, keys, bind=False, tamper_message=tamper)


def test_an_advertisement_replayed_from_an_earlier_round_is_refused(certs):
    scheme = SecAggScheme()
    keys = _bound(certs[0], scheme)
    seen = {}

    def record(step, party, message):
        if step == 1 and party == "party-1":
            seen.setdefault("old", message)
            return seen["old"]  # round 1 gets round 0's advertisements
        return message

    setup_exchange(scheme, keys, 0, bind=False, tamper_message=record)
    with pytest.raises(ShareError, match="does not verify"):
        setup_exchange(scheme, keys, 1, bind=False, tamper_message=record)
