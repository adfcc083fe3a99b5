"""Session-scoped pytest fixtures for the local twin clusters.

``clusters`` brings the pair up once per test session, or reuses a pair that is already up
(then it leaves it running at the end). While it is active, the test process's main thread
lives in the kf-world network namespace (``setns``), so the kubernetes client reaches the API
servers at 198.18.0.10/20 directly: run pytest normally, as root, from the repository root
(``pytest -m clusters tests/clusters``); no wrapper is needed. Name resolution of that thread
still uses the machine's resolver: for names of the harness DNS run commands through
``clusters.run(...)``, which uses ``ip netns exec kf-world`` (harness resolv.conf).

``namespace`` gives each test a unique namespace that exists on both clusters, with its
``default`` ServiceAccount and ``kube-root-ca.crt``; it is deleted afterwards.

Environment: ``KUBEFERRY_CLUSTERS_CONTROL_PLANE_ONLY=1`` starts only etcd and the API servers.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from . import apiserver, binaries, harness, world

CLUSTER_NAMES = tuple(apiserver.CLUSTERS)


@dataclass
class Clusters:
    """What a test gets from the ``clusters`` fixture."""

    state_dir: Path
    started: bool
    node_side: bool
    host_netns_fd: int
    _clients: list = field(default_factory=list)

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    def client(self, cluster: str):
        """A kubernetes.client.ApiClient with the admin identity of ``cluster``."""
        api_client = apiserver.api_client(self.state_dir, cluster)
        self._clients.append(api_client)
        return api_client

    def client_with(self, configuration):
        """An ApiClient for another identity (``kubernetes.client.Configuration``)."""
        from kubernetes import client as k8s

        api_client = k8s.ApiClient(configuration)
        self._clients.append(api_client)
        return api_client

    def cluster(self, cluster: str) -> apiserver.Cluster:
        return apiserver.CLUSTERS[cluster]

    def paths(self, cluster: str) -> apiserver.Paths:
        return apiserver.Paths(self.state_dir, cluster)

    def run(self, *command: str, **kwargs) -> subprocess.CompletedProcess:
        """Run a command in kf-world with KUBECONFIG set and the harness DNS as resolver."""
        env = dict(kwargs.pop("env", None) or os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("timeout", 120)
        return subprocess.run(world.in_world(*command), env=env, check=False, **kwargs)

    @contextlib.contextmanager
    def on_host(self):
        """Run the body with this thread back in the machine's network namespace."""
        current = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            _setns(self.host_netns_fd)
            try:
                yield
            finally:
                _setns(current)
        finally:
            os.close(current)

    def enter_world(self) -> None:
        """Move this thread into the current kf-world (after the pair was recreated)."""
        target = os.open(world.NETNS_DIR / world.WORLD, os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)

    def close_clients(self) -> None:
        for api_client in self._clients:
            with contextlib.suppress(Exception):
                api_client.close()
        self._clients.clear()


_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, world.CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "the local clusters need root (network namespaces)"
    if shutil.which("ip") is None:
        return "the local clusters need iproute2 (ip)"
    cached = all(c.path().is_file() for c in binaries.COMPONENTS.values())
    if not cached and not (shutil.which("go") or shutil.which("go", path="/usr/local/go/bin")):
        return "kube-apiserver/etcd are not cached and there is no Go to build them"
    return None


@pytest.fixture(scope="session")
def clusters():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    state_dir = harness.DEFAULT_STATE_DIR.resolve()
    node_side = os.environ.get("KUBEFERRY_CLUSTERS_CONTROL_PLANE_ONLY", "") in ("", "0")
    started = False
    if harness.is_up(state_dir):
        harness.log(f"clusters: reusing the running pair ({state_dir})")
    else:
        harness.up(state_dir, node_side=node_side)
        started = True
    host = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    handle = Clusters(
        state_dir=state_dir,
        started=started,
        node_side=harness._node_side_started(state_dir),
        host_netns_fd=host,
    )
    try:
        with world.entered():
            yield handle
            handle.close_clients()
    finally:
        try:
            if started:
                harness.down(state_dir)
        finally:
            os.close(host)


def _namespace_name(node_name: str) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", node_name.lower()).strip("-")[:40].strip("-")
    return f"kft-{base}-{secrets.token_hex(3)}" if base else f"kft-{secrets.token_hex(3)}"


@pytest.fixture
def namespace(clusters, request):
    """A unique namespace on both clusters (with its default ServiceAccount); deleted after."""
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    name = _namespace_name(request.node.name)
    clients = {cluster: clusters.client(cluster) for cluster in CLUSTER_NAMES}
    for api_client in clients.values():
        apiserver.ensure_namespace(api_client, name, labels={"kubeferry.test/namespace": "true"})
    yield name
    for api_client in clients.values():
        # Not awaited: without a namespace controller, finalization is the node agent's job.
        with contextlib.suppress(ApiException):
            k8s.CoreV1Api(api_client).delete_namespace(name)
