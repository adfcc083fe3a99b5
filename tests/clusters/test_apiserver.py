"""Self-tests of the control plane of the local twin clusters (issue 3).

Run as root from the repository root: ``pytest -m clusters tests/clusters/test_apiserver.py``.
The ``clusters`` fixture starts the pair (or reuses a running one) and puts the test thread in
the kf-world network namespace.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from . import harness, world

pytestmark = pytest.mark.clusters

SERVICE_RANGES = {"source": "198.18.16.0/20", "destination": "198.18.32.0/20"}
ROUTE = ("route.openshift.io", "v1", "routes")


def _k8s():
    from kubernetes import client

    return client


def _api_exception():
    from kubernetes.client.exceptions import ApiException

    return ApiException


def _route(name: str, **spec_overrides) -> dict:
    spec = {
        "host": f"{name}.apps.source.kf.test",
        "to": {"kind": "Service", "name": name, "weight": 100},
        "port": {"targetPort": 8443},
        "tls": {"termination": "passthrough", "insecureEdgeTerminationPolicy": "None"},
    }
    spec.update(spec_overrides)
    return {
        "apiVersion": "route.openshift.io/v1",
        "kind": "Route",
        "metadata": {"name": name},
        "spec": spec,
    }


def _harness_cli(clusters, *args: str) -> subprocess.CompletedProcess:
    with clusters.on_host():
        return subprocess.run(
            [sys.executable, "-m", "tests.clusters.harness", *args],
            cwd=harness.REPO,
            env={**os.environ, "PYTHONPATH": str(harness.REPO)},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )


def test_both_api_servers_serve_the_pinned_version(clusters):
    for cluster in ("source", "destination"):
        version = _k8s().VersionApi(clusters.client(cluster)).get_code()
        assert version.git_version == "v1.35.4"
        # The `kubernetes` Service gets the first address of the cluster's own range.
        kubernetes_svc = (
            _k8s()
            .CoreV1Api(clusters.client(cluster))
            .read_namespaced_service("kubernetes", "default")
        )
        assert kubernetes_svc.spec.cluster_ip == clusters.cluster(cluster).service_ip


def test_kubeconfig_has_both_contexts_with_embedded_ca(clusters):
    import yaml

    config = yaml.safe_load(clusters.kubeconfig.read_text())
    servers = {c["name"]: c["cluster"]["server"] for c in config["clusters"]}
    assert servers == {
        "source": "https://198.18.0.10:6443",
        "destination": "https://198.18.0.20:6443",
    }
    assert {c["name"] for c in config["contexts"]} == {"source", "destination"}
    assert all("certificate-authority-data" in c["cluster"] for c in config["clusters"])
    assert oct(clusters.kubeconfig.stat().st_mode & 0o777) == "0o600"
    for cluster in ("source", "destination"):
        single = yaml.safe_load(clusters.paths(cluster).kubeconfig.read_text())
        assert [c["name"] for c in single["contexts"]] == [cluster]


def test_namespace_has_default_serviceaccount_and_root_ca(clusters, namespace):
    for cluster in ("source", "destination"):
        core = _k8s().CoreV1Api(clusters.client(cluster))
        assert core.read_namespaced_service_account("default", namespace).metadata.name
        root_ca = core.read_namespaced_config_map("kube-root-ca.crt", namespace).data["ca.crt"]
        assert root_ca == clusters.paths(cluster).cert("ca").read_text()


def test_admin_creates_pod_service_and_route(clusters, namespace):
    k8s = _k8s()
    for cluster in ("source", "destination"):
        core = k8s.CoreV1Api(clusters.client(cluster))
        pod = core.create_namespaced_pod(
            namespace,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "probe", "labels": {"app": "probe"}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "main", "image": "busybox", "command": ["sh", "-c", "exit 0"]}
                    ],
                },
            },
        )
        assert pod.metadata.uid
        service = core.create_namespaced_service(
            namespace,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "probe"},
                "spec": {
                    "type": "NodePort",
                    "selector": {"app": "probe"},
                    "ports": [{"port": 873, "targetPort": 873}],
                },
            },
        )
        # ClusterIP and NodePort are allocated by the API server from this cluster's ranges.
        cluster_ip = ipaddress.ip_address(service.spec.cluster_ip)
        assert cluster_ip in ipaddress.ip_network(SERVICE_RANGES[cluster])
        assert 30000 <= service.spec.ports[0].node_port <= 32767

    custom = k8s.CustomObjectsApi(clusters.client("source"))
    created = custom.create_namespaced_custom_object(
        *ROUTE[:2], namespace, ROUTE[2], _route("probe")
    )
    assert created["spec"]["wildcardPolicy"] == "None"  # the schema's default
    # Route status is a subresource: the router writes it, a spec update cannot.
    status = {
        "ingress": [
            {
                "host": "probe.apps.source.kf.test",
                "routerName": "default",
                "wildcardPolicy": "None",
                "conditions": [
                    {
                        "type": "Admitted",
                        "status": "True",
                        "lastTransitionTime": datetime.datetime.now(datetime.UTC).strftime(
                            "%Y-%m-%dT%H:%M:%SZ"
                        ),
                    }
                ],
            }
        ]
    }
    custom.patch_namespaced_custom_object(
        *ROUTE[:2], namespace, ROUTE[2], "probe", {"status": {"ingress": []}, "spec": {}}
    )
    assert "status" not in custom.get_namespaced_custom_object(
        *ROUTE[:2], namespace, ROUTE[2], "probe"
    )
    custom.patch_namespaced_custom_object_status(
        *ROUTE[:2], namespace, ROUTE[2], "probe", {"status": status}
    )
    read = custom.get_namespaced_custom_object(*ROUTE[:2], namespace, ROUTE[2], "probe")
    assert read["status"]["ingress"][0]["conditions"][0]["type"] == "Admitted"

    # The Route API exists on the source cluster only, as with OpenShift -> plain Kubernetes.
    with pytest.raises(_api_exception()) as missing:
        k8s.CustomObjectsApi(clusters.client("destination")).list_namespaced_custom_object(
            *ROUTE[:2], namespace, ROUTE[2]
        )
    assert missing.value.status == 404


@pytest.mark.parametrize(
    ("case", "spec", "message"),
    [
        ("termination", {"tls": {"termination": "bogus"}}, "spec.tls.termination"),
        (
            "insecure-policy",
            {"tls": {"termination": "edge", "insecureEdgeTerminationPolicy": "X"}},
            "insecureEdgeTerminationPolicy",
        ),
        ("to-kind", {"to": {"kind": "Pod", "name": "x"}}, "spec.to.kind"),
        ("wildcard", {"wildcardPolicy": "Everything"}, "spec.wildcardPolicy"),
        (
            "passthrough-cert",
            {"tls": {"termination": "passthrough", "certificate": "PEM"}},
            "passthrough termination does not support certificates",
        ),
    ],
)
def test_route_validation_rejects_invalid_routes(clusters, namespace, case, spec, message):
    custom = _k8s().CustomObjectsApi(clusters.client("source"))
    with pytest.raises(_api_exception()) as rejected:
        custom.create_namespaced_custom_object(
            *ROUTE[:2], namespace, ROUTE[2], _route(f"bad-{case}", **spec)
        )
    assert rejected.value.status == 422
    assert message in rejected.value.body


def test_route_accepts_named_target_port_and_edge(clusters, namespace):
    custom = _k8s().CustomObjectsApi(clusters.client("source"))
    route = _route(
        "edge",
        port={"targetPort": "https"},
        tls={"termination": "edge", "insecureEdgeTerminationPolicy": "Redirect"},
    )
    created = custom.create_namespaced_custom_object(*ROUTE[:2], namespace, ROUTE[2], route)
    assert created["spec"]["port"]["targetPort"] == "https"


def _client_with_token(clusters, cluster: str, token: str):
    k8s = _k8s()
    configuration = k8s.Configuration()
    configuration.host = clusters.cluster(cluster).server
    configuration.ssl_ca_cert = str(clusters.paths(cluster).cert("ca"))
    configuration.api_key = {"authorization": f"Bearer {token}"}
    return clusters.client_with(configuration)


def test_rbac_denies_a_serviceaccount_without_rights(clusters, namespace):
    k8s = _k8s()
    admin = clusters.client("source")
    core = k8s.CoreV1Api(admin)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "nobody"}})
    token = core.create_namespaced_service_account_token(
        "nobody", namespace, {"spec": {"expirationSeconds": 600}}
    ).status.token
    as_nobody = k8s.CoreV1Api(_client_with_token(clusters, "source", token))
    for call in (
        lambda: as_nobody.list_namespaced_pod(namespace),
        as_nobody.list_namespace,
        lambda: as_nobody.read_namespaced_config_map("kube-root-ca.crt", namespace),
    ):
        with pytest.raises(_api_exception()) as denied:
            call()
        assert denied.value.status == 403
        assert f"system:serviceaccount:{namespace}:nobody" in denied.value.body

    # The token is valid: a RoleBinding is all it takes, so RBAC is what denied above.
    rbac = k8s.RbacAuthorizationV1Api(admin)
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "pod-reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "nobody-reads-pods"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "pod-reader",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "nobody", "namespace": namespace}],
        },
    )
    # The RBAC authorizer reads bindings from its informer cache: a new binding takes effect
    # within moments, not at once (a bounded wait, 10 s at most).
    deadline = time.monotonic() + 10
    while True:
        try:
            assert as_nobody.list_namespaced_pod(namespace).items == []
            break
        except _api_exception() as error:
            if error.status != 403 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)

    # The other cluster has its own signing key: the token means nothing there.
    elsewhere = k8s.CoreV1Api(_client_with_token(clusters, "destination", token))
    with pytest.raises(_api_exception()) as unknown:
        elsewhere.list_namespaced_pod(namespace)
    assert unknown.value.status == 401


def test_rbac_denies_a_certificate_user_without_bindings(clusters, namespace, tmp_path):
    paths = clusters.paths("destination")
    ca_cert = x509.load_pem_x509_certificate(paths.cert("ca").read_bytes())
    ca_key = serialization.load_pem_private_key(paths.key("ca").read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kf-stranger")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "user.crt", tmp_path / "user.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    k8s = _k8s()
    configuration = k8s.Configuration()
    configuration.host = clusters.cluster("destination").server
    configuration.ssl_ca_cert = str(paths.cert("ca"))
    configuration.cert_file, configuration.key_file = str(cert_file), str(key_file)
    stranger = clusters.client_with(configuration)
    with pytest.raises(_api_exception()) as denied:
        k8s.CoreV1Api(stranger).create_namespaced_config_map(
            namespace, {"metadata": {"name": "nope"}, "data": {"a": "b"}}
        )
    assert denied.value.status == 403
    assert 'User "kf-stranger"' in json.loads(denied.value.body)["message"]


def test_pod_security_admission_is_enforced(clusters, namespace):
    core = _k8s().CoreV1Api(clusters.client("destination"))
    core.patch_namespace(
        namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    with pytest.raises(_api_exception()) as denied:
        core.create_namespaced_pod(
            namespace,
            {
                "metadata": {"name": "root"},
                "spec": {
                    "automountServiceAccountToken": False,
                    "containers": [{"name": "main", "image": "x", "command": ["true"]}],
                },
            },
        )
    assert denied.value.status == 403
    assert "violates PodSecurity" in denied.value.body


def test_harness_exec_runs_in_kf_world_with_harness_dns(clusters):
    result = _harness_cli(clusters, "exec", "--", "sh", "-c", "cat /etc/resolv.conf; env")
    assert result.returncode == 0, result.stderr
    assert f"nameserver {world.DNS_ADDRESS}" in result.stdout
    assert f"KUBECONFIG={clusters.kubeconfig}" in result.stdout
    addresses = _harness_cli(clusters, "exec", "--", "ip", "-4", "-o", "addr", "show", "kfw0")
    for address in ("198.18.0.1/", "198.18.0.10/", "198.18.0.20/"):
        assert address in addresses.stdout


def test_up_reuses_the_running_pair(clusters):
    before = {p.name: p.read_text() for p in (clusters.state_dir / "run").glob("*.pid")}
    result = _harness_cli(clusters, "up")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "reusing the running pair" in result.stdout
    after = {p.name: p.read_text() for p in (clusters.state_dir / "run").glob("*.pid")}
    assert after == before
    assert _harness_cli(clusters, "status").returncode == 0


@pytest.mark.clusters_last
def test_up_replaces_a_pair_with_a_dead_component(clusters):
    """A crashed API server makes `harness up` clean up the rest and start a fresh pair."""
    dead = clusters.paths("source").pid("kube-apiserver")
    dead_pid = int(dead.read_text().split()[0])
    os.kill(dead_pid, signal.SIGKILL)
    assert _harness_cli(clusters, "status").returncode == 3
    mode = [] if clusters.node_side else ["--control-plane-only"]
    result = _harness_cli(clusters, "up", *mode)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "partly there; cleaning it up first" in result.stdout
    assert "reusing the running pair" not in result.stdout
    assert int(dead.read_text().split()[0]) != dead_pid
    clusters.enter_world()
    version = _k8s().VersionApi(clusters.client("source")).get_code()
    assert version.git_version == "v1.35.4"


def _machine_state(state_dir: Path) -> dict[str, list[str]]:
    """The kinds of objects the harness makes, listed the way an operator would."""
    processes = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                # etcd and kube-apiserver of this state dir (other copies may run elsewhere).
                if str(state_dir).encode() in (entry / "cmdline").read_bytes():
                    processes.append(entry.name)
            except OSError:
                continue
    netns = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=False
    ).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=False).stdout
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=False).stdout
    mounts = Path("/proc/self/mountinfo").read_text()
    return {
        "processes": processes,
        "netns": [
            n.split()[0] for n in netns.splitlines() if world.OWNED_NETNS.match(n.split()[0])
        ],
        "links": [n for n in world.LAYOUT_LINKS if f" {n}:" in links or f" {n}@" in links],
        "rules": [r for r in rules.splitlines() if world.RULE_COMMENT in r or "KF-" in r],
        "mounts": [m for m in mounts.splitlines() if "/netns/kf-world" in m or "/netns/kfp-" in m],
        "etc_netns": [
            p.name for p in Path("/etc/netns").glob("*") if world.OWNED_NETNS.match(p.name)
        ],
    }


@pytest.mark.clusters_last
def test_down_after_a_crash_leaves_nothing_behind(clusters):
    """`harness down` cleans up even when the record of a process is lost (a crashed run)."""
    with clusters.on_host():
        before = _machine_state(clusters.state_dir)
    assert before["processes"] and before["netns"] and before["mounts"]
    # A run that crashed before recording its etcd: down must find it by its namespace.
    lost = clusters.paths("destination").pid("etcd")
    lost_pid = int(lost.read_text().split()[0])
    lost.unlink()

    result = _harness_cli(clusters, "down")
    assert result.returncode == 0, result.stdout + result.stderr
    with clusters.on_host():
        after = _machine_state(clusters.state_dir)
    assert after == {key: [] for key in after}, result.stdout
    assert not world.alive(lost_pid)  # at most a zombie until its adoptive parent reaps it
    second = _harness_cli(clusters, "down")
    assert second.returncode == 0, second.stdout + second.stderr

    if not clusters.started:
        # The pair was up before this session: leave it up again.
        mode = [] if clusters.node_side else ["--control-plane-only"]
        restored = _harness_cli(clusters, "up", *mode)
        assert restored.returncode == 0, restored.stdout + restored.stderr
