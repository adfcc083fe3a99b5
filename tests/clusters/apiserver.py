"""etcd and kube-apiserver of the local twin clusters: PKI, flags, start, bootstrap.

Per cluster: a CA, an API server serving certificate, an admin client certificate (group
``system:masters``), the client certificate the API server presents to the node agent when it
fetches logs, a kubelet serving certificate the node agent may use, and a ServiceAccount
signing key pair. Each cluster has its own etcd (listening on kf-world's loopback only, so pods
cannot reach it): real clusters do not share a datastore, and a test can stop one cluster's
etcd without touching the other. There is no controller-manager, so the bootstrap here creates
the ``default`` ServiceAccounts and the ``kube-root-ca.crt`` ConfigMaps, and installs the Route
API as a CRD on the source cluster.

All network calls (readiness, bootstrap) must run inside kf-world: see ``world.entered``.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from . import world

HERE = Path(__file__).resolve().parent
ROUTE_CRD = HERE / "manifests" / "route-crd.yaml"
API_PORT = 6443
ADMIN_USER = "kubeferry-admin"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
CERT_DAYS = 365
# StorageObjectInUseProtection adds pvc/pv-protection finalizers that only the (absent)
# controller-manager removes: with it every PVC deletion would hang forever.
DISABLED_ADMISSION = ("StorageObjectInUseProtection",)
# Defaults stay on (ServiceAccount, PodSecurity, ...); NodeRestriction as kubeadm enables it.
ENABLED_ADMISSION = ("NodeRestriction",)


@dataclass(frozen=True)
class Cluster:
    name: str
    address: str
    node_address: str
    service_range: str
    etcd_client_port: int
    etcd_peer_port: int
    route_api: bool

    @property
    def server(self) -> str:
        return f"https://{self.address}:{API_PORT}"

    @property
    def service_ip(self) -> str:
        # The API server takes the first address of the range for the `kubernetes` Service.
        return str(next(ipaddress.ip_network(self.service_range).hosts()))

    @property
    def node_name(self) -> str:
        # The name the node agent registers (tests/clusters/node).
        return f"kf-{self.name}-node"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_client_port}"


CLUSTERS = {
    "source": Cluster("source", "198.18.0.10", "198.18.0.11", "198.18.16.0/20", 2379, 2380, True),
    "destination": Cluster(
        "destination", "198.18.0.20", "198.18.0.21", "198.18.32.0/20", 2479, 2480, False
    ),
}


@dataclass(frozen=True)
class Paths:
    """Where a cluster's files live under the state directory (``.clusters``)."""

    state_dir: Path
    cluster: str

    @property
    def pki(self) -> Path:
        return self.state_dir / "pki" / self.cluster

    def cert(self, name: str) -> Path:
        return self.pki / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.pki / f"{name}.key"

    @property
    def sa_public(self) -> Path:
        return self.pki / "sa.pub"

    @property
    def sa_private(self) -> Path:
        return self.pki / "sa.key"

    @property
    def etcd_data(self) -> Path:
        return self.state_dir / "etcd" / self.cluster

    def log(self, component: str) -> Path:
        return self.state_dir / "logs" / f"{component}-{self.cluster}.log"

    def pid(self, component: str) -> Path:
        return self.state_dir / "run" / f"{component}-{self.cluster}.pid"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / f"kubeconfig-{self.cluster}"


# ---------------------------------------------------------------------------------------- PKI


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _issue(
    subject: x509.Name,
    key,
    issuer_cert: x509.Certificate | None,
    issuer_key,
    *,
    ca: bool = False,
    server: bool = False,
    client: bool = False,
    ips: tuple[str, ...] = (),
    dns: tuple[str, ...] = (),
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if issuer_cert is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
    if ca:
        usage = {"key_cert_sign": True, "crl_sign": True, "digital_signature": True}
    else:
        usage = {"key_cert_sign": False, "crl_sign": False, "digital_signature": True}
    builder = builder.add_extension(
        x509.KeyUsage(
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            encipher_only=False,
            decipher_only=False,
            **usage,
        ),
        critical=True,
    )
    ekus = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    )
    if ekus:
        builder = builder.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
    sans = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips] + [
        x509.DNSName(name) for name in dns
    ]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _pki_is_current(paths: Paths) -> bool:
    needed = [paths.cert(n) for n in ("ca", "apiserver", "admin", "apiserver-kubelet-client")]
    needed += [paths.sa_public, paths.sa_private, paths.cert("kubelet-serving")]
    if not all(p.is_file() for p in needed):
        return False
    ca = x509.load_pem_x509_certificate(paths.cert("ca").read_bytes())
    remaining = ca.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    return remaining > datetime.timedelta(days=7)


def ensure_pki(cluster: Cluster, paths: Paths, log=print) -> None:
    """Create the cluster's certificates and keys unless a valid set exists."""
    if _pki_is_current(paths):
        return
    log(f"apiserver: creating PKI for {cluster.name} in {paths.pki}")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _issue(_name(f"kubeferry-{cluster.name}-ca"), ca_key, None, ca_key, ca=True)

    def leaf(name: str, subject: x509.Name, **kwargs) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(subject, key, ca_cert, ca_key, **kwargs)
        _write_private(paths.key(name), _key_pem(key))
        paths.cert(name).write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    _write_private(paths.key("ca"), _key_pem(ca_key))
    paths.cert("ca").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    leaf(
        "apiserver",
        _name("kube-apiserver"),
        server=True,
        ips=(cluster.address, cluster.service_ip, "127.0.0.1"),
        dns=(
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            f"api.{cluster.name}.kf.test",
            "localhost",
        ),
    )
    leaf("admin", _name(ADMIN_USER, "system:masters"), client=True)
    leaf(
        "apiserver-kubelet-client",
        _name("kube-apiserver-kubelet-client", "system:masters"),
        client=True,
    )
    # For the node agent's kubelet port; the API server does not verify it (no
    # --kubelet-certificate-authority), so a self-signed certificate works as well.
    leaf(
        "kubelet-serving",
        _name(f"system:node:{cluster.node_name}", "system:nodes"),
        server=True,
        client=True,
        ips=(cluster.node_address,),
        dns=(cluster.node_name,),
    )
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_private(paths.sa_private, _key_pem(sa_key))
    paths.sa_public.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


# ----------------------------------------------------------------------------- command lines


def etcd_command(binary: Path, cluster: Cluster, paths: Paths) -> list[str]:
    client = cluster.etcd_url
    peer = f"http://127.0.0.1:{cluster.etcd_peer_port}"
    return [
        str(binary),
        f"--name={cluster.name}",
        f"--data-dir={paths.etcd_data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster={cluster.name}={peer}",
        "--initial-cluster-state=new",
        # Test data: durability across a machine crash is worth nothing, speed is.
        "--unsafe-no-fsync",
        "--snapshot-count=10000",
        "--log-level=warn",
    ]


def apiserver_command(binary: Path, cluster: Cluster, paths: Paths) -> list[str]:
    return [
        str(binary),
        f"--etcd-servers={cluster.etcd_url}",
        f"--bind-address={cluster.address}",
        f"--advertise-address={cluster.address}",
        f"--secure-port={API_PORT}",
        f"--tls-cert-file={paths.cert('apiserver')}",
        f"--tls-private-key-file={paths.key('apiserver')}",
        f"--client-ca-file={paths.cert('ca')}",
        "--authorization-mode=Node,RBAC",
        f"--service-cluster-ip-range={cluster.service_range}",
        "--service-node-port-range=30000-32767",
        f"--service-account-key-file={paths.sa_public}",
        f"--service-account-signing-key-file={paths.sa_private}",
        f"--service-account-issuer={SA_ISSUER}",
        f"--kubelet-client-certificate={paths.cert('apiserver-kubelet-client')}",
        f"--kubelet-client-key={paths.key('apiserver-kubelet-client')}",
        "--kubelet-preferred-address-types=InternalIP",
        f"--enable-admission-plugins={','.join(ENABLED_ADMISSION)}",
        f"--disable-admission-plugins={','.join(DISABLED_ADMISSION)}",
        "--allow-privileged=true",
        "--profiling=false",
        "--shutdown-delay-duration=0s",
        "--v=1",
    ]


# ---------------------------------------------------------------------------------- processes


def start(
    component: str,
    command: list[str],
    paths: Paths,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> int:
    """Start ``command`` inside kf-world as a daemon; record and return its PID."""
    log_path = paths.log(component)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    paths.pid(component).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        log_file.write(f"----- {stamp} harness starts {command[0]}\n".encode())
        log_file.flush()
        # `ip netns exec` execs the command, so the PID is the daemon's own.
        process = subprocess.Popen(
            world.in_world(*command),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=cwd or paths.state_dir,
            env=env,
        )
    paths.pid(component).write_text(f"{process.pid}\n{os.path.realpath(command[0])}\n")
    return process.pid


def recorded_pid(component: str, paths: Paths) -> int | None:
    """The PID recorded for ``component`` if that process still runs the recorded binary."""
    try:
        pid_text, binary = paths.pid(component).read_text().split("\n")[:2]
        pid = int(pid_text)
        exe = os.readlink(f"/proc/{pid}/exe")
    except (OSError, ValueError):
        return None
    # After `ip netns exec` has exec'd, the process is the daemon; before, it is `ip`.
    if exe.removesuffix(" (deleted)") in (binary, "/usr/sbin/ip", "/usr/bin/ip", "/bin/ip"):
        return pid
    return None


# ---------------------------------------------------------------------- readiness, bootstrap


def _ssl_context(paths: Paths) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(paths.cert("ca")))
    context.load_cert_chain(str(paths.cert("admin")), str(paths.key("admin")))
    return context


def readyz(cluster: Cluster, paths: Paths, timeout: float = 2.0) -> tuple[bool, str]:
    """One /readyz probe (call inside kf-world)."""
    try:
        with urllib.request.urlopen(
            f"{cluster.server}/readyz", context=_ssl_context(paths), timeout=timeout
        ) as response:
            return response.status == 200, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return False, error.read().decode(errors="replace")
    except (OSError, ssl.SSLError) as error:
        return False, str(error)


def wait_etcd(cluster: Cluster, paths: Paths, timeout: float = 30.0) -> None:
    """Wait, bounded, until etcd reports itself healthy (call inside kf-world)."""
    deadline = time.monotonic() + timeout
    detail = ""
    while time.monotonic() < deadline:
        if recorded_pid("etcd", paths) is None:
            raise RuntimeError(
                f"etcd of {cluster.name} exited; last log lines:\n" + tail(paths.log("etcd"))
            )
        try:
            with urllib.request.urlopen(f"{cluster.etcd_url}/health", timeout=2) as response:
                detail = response.read().decode(errors="replace")
                if '"health":"true"' in detail:
                    return
        except OSError as error:
            detail = str(error)
        time.sleep(0.2)
    raise TimeoutError(f"etcd of {cluster.name} not healthy after {timeout:.0f}s: {detail}")


def wait_ready(cluster: Cluster, paths: Paths, timeout: float = 90.0) -> None:
    """Wait, bounded, until /readyz answers 200; fail early if a process died."""
    deadline = time.monotonic() + timeout
    detail = ""
    while time.monotonic() < deadline:
        for component in ("etcd", "kube-apiserver"):
            if recorded_pid(component, paths) is None:
                raise RuntimeError(
                    f"{component} of {cluster.name} exited; last log lines:\n"
                    + tail(paths.log(component))
                )
        ok, detail = readyz(cluster, paths)
        if ok:
            return
        time.sleep(0.5)
    raise TimeoutError(
        f"kube-apiserver of {cluster.name} not ready after {timeout:.0f}s: {detail[-2000:]}\n"
        + tail(paths.log("kube-apiserver"))
    )


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def kubeconfig_dict(clusters: list[Cluster], state_dir: Path) -> dict:
    import base64

    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [],
        "users": [],
        "contexts": [],
        "current-context": clusters[0].name,
        "preferences": {},
    }
    for cluster in clusters:
        paths = Paths(state_dir, cluster.name)
        config["clusters"].append(
            {
                "name": cluster.name,
                "cluster": {
                    "server": cluster.server,
                    "certificate-authority-data": b64(paths.cert("ca")),
                },
            }
        )
        config["users"].append(
            {
                "name": f"{cluster.name}-admin",
                "user": {
                    "client-certificate-data": b64(paths.cert("admin")),
                    "client-key-data": b64(paths.key("admin")),
                },
            }
        )
        config["contexts"].append(
            {
                "name": cluster.name,
                "context": {"cluster": cluster.name, "user": f"{cluster.name}-admin"},
            }
        )
    return config


def write_kubeconfigs(state_dir: Path) -> Path:
    """Write ``kubeconfig`` (contexts source, destination) and ``kubeconfig-<cluster>``."""
    everything = state_dir / "kubeconfig"
    _write_private(
        everything,
        yaml.safe_dump(kubeconfig_dict(list(CLUSTERS.values()), state_dir)).encode(),
    )
    for cluster in CLUSTERS.values():
        _write_private(
            Paths(state_dir, cluster.name).kubeconfig,
            yaml.safe_dump(kubeconfig_dict([cluster], state_dir)).encode(),
        )
    return everything


def api_client(state_dir: Path, cluster: str):
    """A kubernetes.client.ApiClient with the admin identity of ``cluster``."""
    from kubernetes import config

    return config.new_client_from_config(
        config_file=str(state_dir / "kubeconfig"), context=cluster, persist_config=False
    )


def ensure_namespace(client, name: str, labels: dict | None = None) -> None:
    """Create a namespace with what a cluster's controllers would add to it.

    That is its ``default`` ServiceAccount and the ``kube-root-ca.crt`` ConfigMap; existing
    objects are left as they are.
    """
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    core = k8s.CoreV1Api(client)

    def create(call, *args) -> None:
        try:
            call(*args)
        except ApiException as error:
            if error.status != 409:
                raise

    create(
        core.create_namespace,
        k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name, labels=labels or {})),
    )
    create(
        core.create_namespaced_service_account,
        name,
        k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name="default")),
    )
    ca_pem = _client_ca_pem(client)
    create(
        core.create_namespaced_config_map,
        name,
        k8s.V1ConfigMap(
            metadata=k8s.V1ObjectMeta(name="kube-root-ca.crt"), data={"ca.crt": ca_pem}
        ),
    )


def _client_ca_pem(client) -> str:
    path = client.configuration.ssl_ca_cert
    return Path(path).read_text()


def install_route_crd(client, timeout: float = 30.0) -> None:
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    api = k8s.ApiextensionsV1Api(client)
    body = yaml.safe_load(ROUTE_CRD.read_text())
    name = body["metadata"]["name"]
    try:
        api.create_custom_resource_definition(body)
    except ApiException as error:
        if error.status != 409:
            raise
        current = api.read_custom_resource_definition(name)
        body["metadata"]["resourceVersion"] = current.metadata.resource_version
        api.replace_custom_resource_definition(name, body)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conditions = api.read_custom_resource_definition(name).status.conditions or []
        if any(c.type == "Established" and c.status == "True" for c in conditions):
            return
        time.sleep(0.3)
    raise TimeoutError(f"CRD {name} not Established after {timeout:.0f}s")


def bootstrap(cluster: Cluster, state_dir: Path, log=print) -> None:
    """What a controller-manager would have done (call inside kf-world, cluster ready)."""
    client = api_client(state_dir, cluster.name)
    try:
        for namespace in ("default", "kube-system", "kube-public", "kube-node-lease"):
            ensure_namespace(client, namespace)
        if cluster.route_api:
            install_route_crd(client)
            log(f"apiserver: installed route.openshift.io/v1 Route CRD on {cluster.name}")
    finally:
        client.close()
