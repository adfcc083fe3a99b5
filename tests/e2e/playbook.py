"""Run playbooks/state_transfer.yml on the local twin clusters, as a user would, and look at
what it did: the PVCs' volumes on the host and every object of a run left on either cluster.

Shared by the end-to-end tests (tests/e2e), `make matrix` (tests/matrix) and `make demo`.
The caller must already be in kf-world (``world.entered()`` or the ``clusters`` fixture) for
the Kubernetes clients; the playbook itself runs through ``ip netns exec kf-world`` so that
it resolves names with the harness DNS, like a machine next to the clusters.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from clusters import apiserver, harness, pvcs, world

ROOT = Path(__file__).resolve().parent.parent.parent
PLAYBOOK = ROOT / "playbooks" / "state_transfer.yml"
CLEANUP = ROOT / "playbooks" / "cleanup.yml"
MANAGED = "app.kubernetes.io/managed-by=kubeferry.state_transfer"
CLUSTERS = ("source", "destination")


class Transfer:
    """One namespace per cluster: PVCs with content, playbook runs, what a run left behind."""

    def __init__(self, clients, kubeconfig, work_dir, namespaces, capture=True):
        """clients and namespaces: {"source": ..., "destination": ...}."""
        from kubernetes import client as k8s

        self.clients = clients
        self.kubeconfig = str(kubeconfig)
        self.work_dir = Path(work_dir)
        self.namespaces = namespaces
        self.capture = capture
        self.core = {name: k8s.CoreV1Api(clients[name]) for name in CLUSTERS}
        self.custom = {name: k8s.CustomObjectsApi(clients[name]) for name in CLUSTERS}
        self.networking = {name: k8s.NetworkingV1Api(clients[name]) for name in CLUSTERS}

    def create_pvc(self, cluster, name, size="1Gi", modes=("ReadWriteOnce",)):
        """Create a PVC; returns the host directory behind it once it is Bound."""
        return pvcs.create(self.clients[cluster], self.namespaces[cluster], name, size, modes)

    def pvc_dir(self, cluster, name):
        return pvcs.host_dir(self.clients[cluster], self.namespaces[cluster], name)

    def delete_pvc(self, cluster, name):
        self.core[cluster].delete_namespaced_persistent_volume_claim(name, self.namespaces[cluster])

    def variables(self, **overrides):
        """The playbook's variables for these namespaces, with test-sized time limits."""
        variables = {
            "state_transfer_{0}".format(cluster): {
                "kubeconfig": self.kubeconfig,
                "context": cluster,
                "namespace": self.namespaces[cluster],
            }
            for cluster in CLUSTERS
        }
        variables.update(
            state_transfer_progress_interval=2,
            state_transfer_server_timeout=120,
            state_transfer_endpoint_timeout=120,
            state_transfer_transfer_timeout=1800,
        )
        variables.update(overrides)
        return variables

    def playbook(self, *args, name=None, timeout=3600, playbook=PLAYBOOK, **overrides):
        """Run the playbook with a vars file (vars-<name>.json in work_dir); the result has
        .report (the JSON summary) and .seconds (wall time)."""
        command, env, report = self._command(args, name, playbook, overrides)
        started = time.monotonic()
        result = subprocess.run(
            command,
            env=env,
            cwd=ROOT,
            timeout=timeout,
            capture_output=self.capture,
            text=True,
            check=False,
        )
        result.seconds = time.monotonic() - started
        result.report = json.loads(report.read_text()) if report.exists() else None
        return result

    def start(self, *args, name=None, playbook=PLAYBOOK, **overrides):
        """Start the playbook in the background (its own process group, output to
        work_dir/output-<name>.txt); the caller waits for, signals or kills it."""
        command, env, _report = self._command(args, name, playbook, overrides)
        output = open(self.work_dir / "output-{0}.txt".format(name), "w")  # noqa: SIM115
        with output:
            return subprocess.Popen(
                command,
                env=env,
                cwd=ROOT,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _command(self, args, name, playbook, overrides):
        stamp = name or time.monotonic_ns()
        overrides.setdefault(
            "state_transfer_report_path", str(self.work_dir / "report-{0}.json".format(stamp))
        )
        vars_file = self.work_dir / "vars-{0}.json".format(stamp)
        vars_file.write_text(json.dumps(self.variables(**overrides), indent=2))
        command = [
            os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
            str(playbook),
            "-e",
            "@{0}".format(vars_file),
            *args,
        ]
        env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
        if self.capture:
            env["ANSIBLE_NOCOLOR"] = "1"
        return world.in_world(*command), env, Path(overrides["state_transfer_report_path"])

    def leftovers(self):
        """Every object of any kubeferry run still on either cluster (PVCs are kept on purpose)."""
        left = []
        for cluster, core in self.core.items():
            namespace = self.namespaces[cluster]
            for kind, lister in (
                ("Pod", core.list_namespaced_pod),
                ("Service", core.list_namespaced_service),
                ("Secret", core.list_namespaced_secret),
                ("ConfigMap", core.list_namespaced_config_map),
                ("NetworkPolicy", self.networking[cluster].list_namespaced_network_policy),
            ):
                for item in lister(namespace, label_selector=MANAGED).items:
                    left.append("{0}: {1}/{2}".format(cluster, kind, item.metadata.name))
            for route in self._routes(cluster):
                left.append("{0}: Route/{1}".format(cluster, route["metadata"]["name"]))
        return left

    def _routes(self, cluster):
        from kubernetes.client.exceptions import ApiException

        namespace = self.namespaces[cluster]
        try:
            routes = self.custom[cluster].list_namespaced_custom_object(
                "route.openshift.io", "v1", namespace, "routes", label_selector=MANAGED
            )
        except ApiException as error:
            if error.status == 404:  # no Route API on this cluster
                return []
            raise
        return routes["items"]

    def pvc_names(self, cluster):
        claims = self.core[cluster].list_namespaced_persistent_volume_claim(
            self.namespaces[cluster]
        )
        return sorted(p.metadata.name for p in claims.items)


@contextlib.contextmanager
def on_local_clusters(work_dir, namespaces, capture=True, keep=False, say=print):
    """A Transfer on the local pair, for `make demo` and `make matrix`: the pair is started for
    the block if it is not up (and taken down after it, unless keep); the namespaces are made."""
    state_dir = harness.DEFAULT_STATE_DIR.resolve()
    started = not harness.is_up(state_dir)
    if started:
        say("starting the local clusters 'source' and 'destination'")
        harness.up(state_dir)
    try:
        with world.entered():
            clients = {name: apiserver.api_client(state_dir, name) for name in CLUSTERS}
            for cluster, api_client in clients.items():
                apiserver.ensure_namespace(api_client, namespaces[cluster])
            Path(work_dir).mkdir(exist_ok=True)
            yield Transfer(clients, state_dir / "kubeconfig", work_dir, namespaces, capture)
    finally:
        if started and not keep:
            say("taking the local clusters down")
            harness.down(state_dir)


def output_of(result):
    """The end of a captured run's output, for an assertion message."""
    return (result.stdout or "")[-8000:] + "\n" + (result.stderr or "")[-4000:]
