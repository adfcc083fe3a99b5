"""Helpers for tests against the twin clusters' node agents (pods, waiting, certificates)."""

import datetime
import ipaddress
import time

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

TERMINAL = ("Succeeded", "Failed")


def pod_body(name, script, labels=None, restart="Never", **spec):
    """A bare Pod running ``sh -c script`` (the image is ignored by the node agent)."""
    container = {"name": "main", "image": "registry.invalid/any", "command": ["sh", "-c", script]}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "automountServiceAccountToken": False,
            "restartPolicy": restart,
            "containers": [container] + spec.pop("extra_containers", []),
            **spec,
        },
    }


def wait_for(predicate, timeout=60, interval=0.25, what="condition"):
    """Poll ``predicate`` until it returns a truthy value (bounded)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def wait_pod(core, namespace, name, phases=TERMINAL, timeout=60):
    def check():
        pod = core.read_namespaced_pod(name, namespace)
        return pod if pod.status.phase in phases else None

    return wait_for(check, timeout, what=f"pod {namespace}/{name} in {phases}")


def is_ready(pod):
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def wait_ready(core, namespace, name, timeout=60):
    def check():
        pod = core.read_namespaced_pod(name, namespace)
        if pod.status.phase in TERMINAL:
            raise AssertionError(f"pod {name} ended: {pod.status}")
        return pod if is_ready(pod) else None

    return wait_for(check, timeout, what=f"pod {namespace}/{name} Ready")


def wait_gone(read, timeout=60, what="object"):
    def check():
        try:
            read()
        except ApiException as exc:
            if exc.status == 404:
                return True
            raise
        return False

    return wait_for(check, timeout, what=f"{what} deleted")


def core(api_client):
    return k8s.CoreV1Api(api_client)


def tls_material(host_names):
    """A CA and a server certificate for ``host_names`` (PEM strings: ca, cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kf test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans = []
    for h in host_names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kf test server")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return (
        ca.public_bytes(pem).decode(),
        cert.public_bytes(pem).decode(),
        key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
    )
