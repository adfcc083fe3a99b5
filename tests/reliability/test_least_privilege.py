"""Least privilege, end to end: playbooks/state_transfer.yml runs as two ServiceAccounts that
have nothing but the rights of the shipped rbac/source.yml and rbac/destination.yml (bound
in the test's namespace), through kubeconfigs that hold only a token of the TokenRequest API.

tests/unit/test_rbac.py checks statically that the manifests grant exactly what the code
calls; here the API server is the judge: every endpoint works with those rights and leaves
nothing behind, and a run with one right taken away fails before it touches the
destination, with the API server's refusal naming the right (resource and verb).
"""

import contextlib
import os
import re
import threading
import time
from pathlib import Path

import pytest
import yaml
from e2e.playbook import CLUSTERS, ROOT, output_of

pytestmark = [pytest.mark.clusters, pytest.mark.e2e]

RBAC = ROOT / "rbac"
PLACEHOLDER = "KUBEFERRY_NAMESPACE"
TOKEN_SECONDS = 3600
MIB = 1024 * 1024


def identity(side):
    return "kubeferry-state-transfer-" + side


def rbac_objects(side, namespace, without=()):
    """The objects of rbac/<side>.yml for namespace, less the (resource, verb) pairs of
    without in its Role and ClusterRole."""
    text = (RBAC / "{0}.yml".format(side)).read_text().replace(PLACEHOLDER, namespace)
    objects = yaml.safe_load(text)["items"]  # one List
    for body in objects:
        if body["kind"] in ("Role", "ClusterRole"):
            body["rules"] = [
                dict(rule, resources=[resource], verbs=verbs)
                for rule in body["rules"]
                for resource in rule["resources"]
                for verbs in [[v for v in rule["verbs"] if (resource, v) not in without]]
                if verbs
            ]
    return objects


def apply(api_client, objects):
    """Create each object, or replace what an earlier test left (the shared ClusterRole)."""
    from kubernetes.dynamic import DynamicClient
    from kubernetes.dynamic.exceptions import ConflictError

    dynamic = DynamicClient(api_client)
    for body in objects:
        resource = dynamic.resources.get(api_version=body["apiVersion"], kind=body["kind"])
        namespace = body["metadata"].get("namespace")
        try:
            dynamic.create(resource, body=body, namespace=namespace)
        except ConflictError:
            name = body["metadata"]["name"]
            current = dynamic.get(resource, name=name, namespace=namespace)
            body["metadata"]["resourceVersion"] = current.metadata.resourceVersion
            dynamic.replace(resource, body=body, name=name, namespace=namespace)


def delete_cluster_scoped(api_client, objects):
    """Namespaced objects go with the test's namespace; the cluster-wide ones do not."""
    from kubernetes.dynamic import DynamicClient
    from kubernetes.dynamic.exceptions import NotFoundError

    dynamic = DynamicClient(api_client)
    for body in reversed(objects):
        if body["metadata"].get("namespace"):
            continue
        resource = dynamic.resources.get(api_version=body["apiVersion"], kind=body["kind"])
        with contextlib.suppress(NotFoundError):
            dynamic.delete(resource, name=body["metadata"]["name"])


def service_account_token(api_client, namespace, name):
    """A token of the TokenRequest API, for the API server's own audience (empty list)."""
    from kubernetes import client as k8s

    request = k8s.AuthenticationV1TokenRequest(
        spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=TOKEN_SECONDS)
    )
    answer = k8s.CoreV1Api(api_client).create_namespaced_service_account_token(
        name, namespace, request
    )
    return answer.status.token


def write_token_kubeconfig(admin_kubeconfig, cluster, user, token, path):
    """A kubeconfig with the admin kubeconfig's server and CA for cluster, and a token user."""
    admin = yaml.safe_load(Path(admin_kubeconfig).read_text())
    server = next(entry for entry in admin["clusters"] if entry["name"] == cluster)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [server],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user}}],
        "current-context": cluster,
        "preferences": {},
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(yaml.safe_dump(config))


def wait_until_bound(kubeconfig, cluster, namespace, timeout=30.0):
    """The token works in its namespace (RBAC caches have the new binding) and is refused
    elsewhere (the kubeconfig is the ServiceAccount's, not the admin's)."""
    from kubernetes import client as k8s
    from kubernetes import config
    from kubernetes.client.exceptions import ApiException

    api_client = config.new_client_from_config(
        config_file=str(kubeconfig), context=cluster, persist_config=False
    )
    try:
        core = k8s.CoreV1Api(api_client)
        deadline = time.monotonic() + timeout
        while True:
            try:
                core.list_namespaced_pod(namespace)
                break
            except ApiException as error:
                if error.status not in (401, 403) or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        with pytest.raises(ApiException) as refused:
            core.list_namespaced_pod("kube-system")
        assert refused.value.status == 403
    finally:
        api_client.close()


class LeastPrivilege:
    """Binds the shipped manifests to ServiceAccounts of the test's namespace on both clusters
    and gives the playbook's side variables for them."""

    def __init__(self, transfer, work_dir):
        self.transfer = transfer
        self.work_dir = work_dir
        self.applied = []  # (api_client, objects)

    def grant(self, without=None):
        """{state_transfer_source: ..., state_transfer_destination: ...}: kubeconfig, context
        and namespace of each side's ServiceAccount. without: {side: {(resource, verb)}}."""
        without = without or {}
        variables = {}
        for side in CLUSTERS:  # the local clusters are named after the sides
            namespace = self.transfer.namespaces[side]
            api_client = self.transfer.clients[side]
            objects = rbac_objects(side, namespace, without.get(side, ()))
            self.applied.append((api_client, objects))
            apply(api_client, objects)
            token = service_account_token(api_client, namespace, identity(side))
            kubeconfig = self.work_dir / "kubeconfig-{0}".format(side)
            write_token_kubeconfig(
                self.transfer.kubeconfig, side, identity(side), token, kubeconfig
            )
            wait_until_bound(kubeconfig, side, namespace)
            variables["state_transfer_{0}".format(side)] = {
                "kubeconfig": str(kubeconfig),
                "context": side,
                "namespace": namespace,
            }
        return variables

    def remove(self):
        for api_client, objects in self.applied:
            delete_cluster_scoped(api_client, objects)


@pytest.fixture
def least_privilege(transfer, tmp_path):
    rights = LeastPrivilege(transfer, tmp_path)
    yield rights
    rights.remove()


# Files of a few kinds: text, a name with a space, nested directories, a random 2 MiB file.
def fill(root):
    files = {
        "hello.txt": b"hello from the source\n",
        "with space.txt": b"a name with a space\n",
        "nested/deeper/random.bin": os.urandom(2 * MIB),
    }
    for rel, content in files.items():
        os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
        with open(os.path.join(root, rel), "wb") as handle:
            handle.write(content)
    return files


def assert_arrived(transfer, files, pvc="data"):
    root = transfer.pvc_dir("destination", pvc)
    for rel, content in files.items():
        with open(os.path.join(root, rel), "rb") as handle:
            assert handle.read() == content, rel


def states(result):
    return {entry["pvc"]: entry["state"] for entry in (result.report or {}).get("pvcs", [])}


COMBINATIONS = [
    ("rsync", "stunnel", "load_balancer"),
    ("rsync", "stunnel", "route"),
    ("rclone", "null", "node_port"),
]


@pytest.mark.parametrize(
    "tool, transport, endpoint", COMBINATIONS, ids=["-".join(c) for c in COMBINATIONS]
)
def test_the_shipped_rights_are_enough(transfer, least_privilege, tool, transport, endpoint):
    files = fill(transfer.create_pvc("source", "data"))  # the admin makes and fills it
    sides = least_privilege.grant()

    result = transfer.playbook(
        state_transfer_pvcs=["data"],
        state_transfer_transfer=tool,
        state_transfer_transport=transport,
        state_transfer_endpoint=endpoint,
        **sides,
    )

    assert result.returncode == 0, output_of(result)
    assert states(result) == {"data": "success"}, output_of(result)
    assert result.report["cleanup_failures"] == [], output_of(result)
    assert transfer.pvc_names("destination") == ["data"]  # created by the ServiceAccount
    assert_arrived(transfer, files)
    assert transfer.leftovers() == []


def parked_pod(name):
    """A Pod bound to a node that does not exist: an object to change, never run."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": "kubeferry-no-such-node",
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


@contextlib.contextmanager
def touching(core, namespace, name):
    """Changes the Pod's labels every half second (at most 60 times) while the body runs."""
    stop = threading.Event()

    def touch():
        for count in range(60):
            if stop.wait(0.5):
                return
            body = {"metadata": {"labels": {"kubeferry.test/touched": str(count)}}}
            core.patch_namespaced_pod(name, namespace, body)

    thread = threading.Thread(target=touch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def test_the_destination_account_sees_its_client_pods_change_at_once(transfer, least_privilege):
    # transfer_progress takes a freed place as soon as a client pod ends because it watches
    # the pods between two reads; the shipped rights must allow that watch (without it the
    # module silently falls back to reading every second).
    from ansible_collections.kubeferry.state_transfer.plugins.module_utils.cluster import (
        Cluster,
    )
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import (
        get_api_client,
    )

    side = least_privilege.grant()["state_transfer_destination"]
    namespace = side["namespace"]
    cluster = Cluster(get_api_client(kubeconfig=side["kubeconfig"], context=side["context"]))
    core = transfer.core["destination"]
    for name in ("kubeferry-watched", "kubeferry-other"):
        core.create_namespaced_pod(namespace, parked_pod(name))
    try:
        with touching(core, namespace, "kubeferry-other"):
            # A change of a pod it does not wait for does not end the wait.
            assert not cluster.wait_for_change("Pod", namespace, ["kubeferry-watched"], 3)
        with touching(core, namespace, "kubeferry-watched"):
            assert cluster.wait_for_change("Pod", namespace, ["kubeferry-watched"], 30)
    finally:
        for name in ("kubeferry-watched", "kubeferry-other"):
            core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)


# (id, rights taken away, endpoint, what the API server's refusal must say)
MISSING = [
    (
        "source-role-without-create-services",
        {"source": {("services", "create")}},
        "load_balancer",
        r"cannot create resource \W*services\W",
    ),
    (
        "source-without-the-nodes-cluster-role",
        {"source": {("nodes", "list")}},
        "node_port",
        r"cannot list resource \W*nodes\W",
    ),
]


@pytest.mark.parametrize(
    "without, endpoint, refusal",
    [case[1:] for case in MISSING],
    ids=[case[0] for case in MISSING],
)
def test_a_missing_right_fails_before_the_destination_is_touched(
    transfer, least_privilege, without, endpoint, refusal
):
    fill(transfer.create_pvc("source", "data"))
    sides = least_privilege.grant(without=without)

    result = transfer.playbook(
        state_transfer_pvcs=["data"],
        state_transfer_transfer="rsync",
        state_transfer_transport="stunnel",
        state_transfer_endpoint=endpoint,
        **sides,
    )

    assert result.returncode != 0, output_of(result)
    # kubernetes.core passes the API server's Status on: 'Failed to create object:
    # b'{..."message":"services \"<name>\" is forbidden: User
    # \"system:serviceaccount:<namespace>:kubeferry-state-transfer-source\" cannot create
    # resource \"services\" in API group \"\" in the namespace \"<namespace>\""...}''. The role
    # keeps it as the run's failure, in the report and in the play's last message.
    failure = result.report["failure"]
    assert re.search(refusal, failure), output_of(result)
    assert identity("source") in failure, failure
    # On the screen too (the play's last message, folded by the YAML callback).
    assert re.search(refusal, " ".join(result.stdout.split())), output_of(result)
    # Before the destination: the clients' phase never started, so no destination PVC (the
    # first thing it creates, and never deleted) and no client ran.
    assert "Run the clients on the destination cluster" not in result.stdout, output_of(result)
    assert transfer.pvc_names("destination") == []
    assert states(result) == {}
    # The cleanup needs no more than the rights that are left.
    assert result.report["cleanup_failures"] == [], output_of(result)
    assert transfer.leftovers() == []
