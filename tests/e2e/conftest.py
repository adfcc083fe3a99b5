"""End-to-end runs of playbooks/state_transfer.yml on the local twin clusters."""

import json
import os
import sys
import time

import pytest
from clusters import pvcs
from clusters.fixtures import clusters, namespace  # noqa: F401  (pytest finds fixtures by name)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MANAGED = "app.kubernetes.io/managed-by=kubeferry.state_transfer"


class Transfer:
    """Helpers of one test: PVCs with content, playbook runs, what is left on the clusters."""

    def __init__(self, clusters, namespace, tmp_path):
        from kubernetes import client as k8s

        self.clusters = clusters
        self.namespace = namespace
        self.tmp_path = tmp_path
        self.core = {
            name: k8s.CoreV1Api(clusters.client(name)) for name in ("source", "destination")
        }
        self.custom = k8s.CustomObjectsApi(clusters.client("source"))

    def create_pvc(self, cluster, name, size="1Gi", modes=("ReadWriteOnce",)):
        return pvcs.create(self.clusters.client(cluster), self.namespace, name, size, modes)

    def pvc_dir(self, cluster, name):
        return pvcs.host_dir(self.clusters.client(cluster), self.namespace, name)

    def vars_file(self, **variables):
        base = {
            "state_transfer_source": {
                "kubeconfig": str(self.clusters.kubeconfig),
                "context": "source",
                "namespace": self.namespace,
            },
            "state_transfer_destination": {
                "kubeconfig": str(self.clusters.kubeconfig),
                "context": "destination",
                "namespace": self.namespace,
            },
            "state_transfer_progress_interval": 2,
            "state_transfer_server_timeout": 120,
            "state_transfer_endpoint_timeout": 120,
            "state_transfer_transfer_timeout": 600,
        }
        base.update(variables)
        path = self.tmp_path / "vars-{0}.json".format(time.monotonic_ns())
        path.write_text(json.dumps(base))
        return str(path)

    def playbook(self, *args, **variables):
        """Run playbooks/state_transfer.yml next to the clusters; returns CompletedProcess."""
        report = self.tmp_path / "report-{0}.json".format(time.monotonic_ns())
        variables.setdefault("state_transfer_report_path", str(report))
        command = [
            os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
            os.path.join(ROOT, "playbooks", "state_transfer.yml"),
            "-e",
            "@" + self.vars_file(**variables),
            *args,
        ]
        env = dict(
            os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1"
        )
        result = self.clusters.run(*command, env=env, cwd=ROOT, timeout=1200)
        result.report = json.loads(report.read_text()) if report.exists() else None
        return result

    def leftovers(self):
        """Every object of any kubeferry run still on either cluster (never PVCs)."""
        left = []
        for cluster, core in self.core.items():
            for kind, lister in (
                ("Pod", core.list_namespaced_pod),
                ("Service", core.list_namespaced_service),
                ("Secret", core.list_namespaced_secret),
                ("ConfigMap", core.list_namespaced_config_map),
            ):
                for item in lister(self.namespace, label_selector=MANAGED).items:
                    left.append("{0}: {1}/{2}".format(cluster, kind, item.metadata.name))
        routes = self.custom.list_namespaced_custom_object(
            "route.openshift.io", "v1", self.namespace, "routes", label_selector=MANAGED
        )
        left += ["source: Route/{0}".format(r["metadata"]["name"]) for r in routes["items"]]
        return left

    def pvc_names(self, cluster):
        return sorted(
            p.metadata.name
            for p in self.core[cluster]
            .list_namespaced_persistent_volume_claim(self.namespace)
            .items
        )


@pytest.fixture
def transfer(clusters, namespace, tmp_path):
    return Transfer(clusters, namespace, tmp_path)


def output_of(result):
    return result.stdout[-8000:] + "\n" + result.stderr[-4000:]
