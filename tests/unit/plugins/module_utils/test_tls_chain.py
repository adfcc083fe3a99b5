"""The run's CA, server and client certificates, checked with cryptography itself."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from ansible_collections.kubeferry.state_transfer.plugins.module_utils import tls

NOW = datetime.datetime(2024, 5, 1, 10, 0, tzinfo=datetime.timezone.utc)


@pytest.fixture(scope="module")
def material():
    return tls.generate("kubeferry-server", "kubeferry-client", valid_days=7, now=NOW)


def load(pem):
    return x509.load_pem_x509_certificate(pem.encode())


def test_server_certificate_verifies_against_the_ca_for_its_name(material):
    store = Store([load(material["ca_cert"])])
    verifier = (
        PolicyBuilder()
        .store(store)
        .time(NOW)
        .build_server_verifier(x509.DNSName("kubeferry-server"))
    )
    chain = verifier.verify(load(material["server_cert"]), [])
    assert chain[-1] == load(material["ca_cert"])


def test_server_certificate_does_not_verify_for_another_name(material):
    store = Store([load(material["ca_cert"])])
    verifier = (
        PolicyBuilder()
        .store(store)
        .time(NOW)
        .build_server_verifier(x509.DNSName("attacker.example.com"))
    )
    with pytest.raises(VerificationError):
        verifier.verify(load(material["server_cert"]), [])


def test_client_certificate_verifies_as_a_client(material):
    store = Store([load(material["ca_cert"])])
    verifier = PolicyBuilder().store(store).time(NOW).build_client_verifier()
    verified = verifier.verify(load(material["client_cert"]), [])
    assert verified.subjects == [x509.DNSName("kubeferry-client")]


def test_a_certificate_of_another_run_does_not_verify(material):
    other = tls.generate("kubeferry-server", "kubeferry-client", now=NOW)
    store = Store([load(material["ca_cert"])])
    verifier = (
        PolicyBuilder()
        .store(store)
        .time(NOW)
        .build_server_verifier(x509.DNSName("kubeferry-server"))
    )
    with pytest.raises(VerificationError):
        verifier.verify(load(other["server_cert"]), [])
    with pytest.raises(InvalidSignature):
        load(other["server_cert"]).verify_directly_issued_by(load(material["ca_cert"]))


def test_the_client_certificate_cannot_serve_and_the_server_cannot_be_a_client(material):
    store = Store([load(material["ca_cert"])])
    builder = PolicyBuilder().store(store).time(NOW)
    with pytest.raises(VerificationError):
        builder.build_server_verifier(x509.DNSName("kubeferry-client")).verify(
            load(material["client_cert"]), []
        )
    with pytest.raises(VerificationError):
        builder.build_client_verifier().verify(load(material["server_cert"]), [])


def test_extensions(material):
    ca = load(material["ca_cert"])
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign

    server = load(material["server_cert"])
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == (
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])
    )
    assert server.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.DNSName) == ["kubeferry-server"]

    client = load(material["client_cert"])
    assert client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == (
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
    )
    assert client.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.DNSName) == ["kubeferry-client"]


def test_validity_window(material):
    server = load(material["server_cert"])
    assert server.not_valid_before_utc == NOW - datetime.timedelta(minutes=5)
    assert server.not_valid_after_utc == NOW + datetime.timedelta(days=7)


def test_keys_are_unencrypted_pkcs8_matching_their_certificates(material):
    for side in ("server", "client"):
        pem = material[side + "_key"]
        assert pem.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8, not "EC PRIVATE KEY"
        key = serialization.load_pem_private_key(pem.encode(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert key.curve.name == "secp256r1"
        assert key.public_key() == load(material[side + "_cert"]).public_key()
    assert "ca_key" not in material


def test_rsa_keys():
    material = tls.generate("s", "c", key_type="rsa", now=NOW)
    key = serialization.load_pem_private_key(material["server_key"].encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 3072
    usage = load(material["server_cert"]).extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.value.key_encipherment


def test_every_run_gets_a_new_ca(material):
    other = tls.generate("kubeferry-server", "kubeferry-client", now=NOW)
    assert other["ca_cert"] != material["ca_cert"]
    assert other["server_key"] != material["server_key"]
