"""tls_material run as a module: no cluster, nothing changed, works in check mode."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from cryptography import x509

from ansible_collections.kubeferry.state_transfer.plugins.module_utils import tls
from ansible_collections.kubeferry.state_transfer.plugins.modules import tls_material

KEYS = ("ca_cert", "server_cert", "server_key", "client_cert", "client_key")


@pytest.mark.parametrize("check_mode", [False, True])
def test_returns_pem_material_and_changes_nothing(kube, check_mode):
    result, failed = kube.run_module(
        tls_material, dict(server_name="srv.kubeferry"), check_mode=check_mode
    )
    assert not failed
    assert result["changed"] is False
    assert set(KEYS) <= set(result)
    server = x509.load_pem_x509_certificate(result["server_cert"].encode())
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["srv.kubeferry"]
    server.verify_directly_issued_by(x509.load_pem_x509_certificate(result["ca_cert"].encode()))


def test_rejects_a_validity_below_one_day(kube):
    result, failed = kube.run_module(tls_material, dict(valid_days=0))
    assert failed
    assert result["msg"] == "valid_days must be at least 1"


def test_missing_cryptography_is_reported(kube, monkeypatch):
    monkeypatch.setattr(tls, "HAS_CRYPTOGRAPHY", False)
    result, failed = kube.run_module(tls_material, {})
    assert failed
    assert "cryptography" in result["msg"]
