# Copyright: kubeferry developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A certificate authority made for one run, and a server and a client certificate from it.

Both sides of stunnel verify the peer against this CA (mutual TLS), so a certificate that
another CA signed, or a leaked certificate of another run, is refused.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError as exc:
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = exc

RSA_KEY_SIZE = 3072
# Nodes' clocks drift; a certificate valid from "now" can be "not yet valid" on the peer.
BACKDATE = datetime.timedelta(minutes=5)


def new_key(key_type):
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_SIZE)
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name):
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kubeferry.state_transfer"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(cert_sign=False, key_encipherment=False):
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _validity(valid_days, now):
    return now - BACKDATE, now + datetime.timedelta(days=valid_days)


def make_ca(key, valid_days, now):
    not_before, not_after = _validity(valid_days, now)
    subject = _name("kubeferry run CA")
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )


def make_leaf(name, usage, key, ca_cert, ca_key, valid_days, now):
    not_before, not_after = _validity(valid_days, now)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage(key_encipherment=isinstance(key, rsa.RSAPrivateKey)), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def key_pem(key):
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def generate(server_name, client_name, valid_days=7, key_type="ec", now=None):
    """PEM strings: ca_cert, server_cert, server_key, client_cert, client_key.

    The CA's private key is dropped on return: nothing can sign another certificate for
    this run afterwards.
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    ca_key = new_key(key_type)
    ca_cert = make_ca(ca_key, valid_days, now)
    server_key, client_key = new_key(key_type), new_key(key_type)
    server_cert = make_leaf(
        server_name, ExtendedKeyUsageOID.SERVER_AUTH, server_key, ca_cert, ca_key, valid_days, now
    )
    client_cert = make_leaf(
        client_name, ExtendedKeyUsageOID.CLIENT_AUTH, client_key, ca_cert, ca_key, valid_days, now
    )
    return dict(
        ca_cert=cert_pem(ca_cert),
        server_cert=cert_pem(server_cert),
        server_key=key_pem(server_key),
        client_cert=cert_pem(client_cert),
        client_key=key_pem(client_key),
    )
