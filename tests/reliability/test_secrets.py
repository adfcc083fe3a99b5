"""No generated secret leaves its Secret: a run at -vvv is searched for the actual values.

The run keeps its objects (state_transfer_cleanup: never) so that everything a user or an
attacker with read access to pods could look at is still there: the Ansible output at -vvv,
the Pod specs (env included), ConfigMaps, events, every container's log and the JSON report.
Then playbooks/cleanup.yml removes the run, also at -vvv and searched the same way.
"""

import base64
import json
import re

import pytest
from dataplane import tree
from e2e.playbook import CLEANUP, MANAGED, output_of

pytestmark = [pytest.mark.clusters, pytest.mark.e2e]

COMBINATIONS = {
    "rsync-stunnel-load_balancer": ("rsync", "stunnel", "load_balancer"),
    "rclone-stunnel-route": ("rclone", "stunnel", "route"),
    "rsync-null-node_port": ("rsync", "null", "node_port"),
}
PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z ]+)-----\s*(.*?)\s*-----END \1-----", re.S)


USER_PASSWORD = re.compile(r"^[^\s:=]+:\S+$")
BASIC_AUTH = re.compile(r"Basic (\S+)")


def secret_values(secrets):
    """What must never appear elsewhere: each value of each Secret (certificates aside, they
    are public), its base64 form, the body of each private key, each password of a
    user:password file."""
    values = set()
    for secret in secrets:
        for encoded in (secret.data or {}).values():
            text = base64.b64decode(encoded).decode(errors="replace")
            blocks = PEM_BLOCK.findall(text)
            for kind, body in blocks:
                if "PRIVATE KEY" in kind:
                    values.update(line for line in body.split() if len(line) >= 40)
            if blocks:
                continue
            values.update({text.strip(), encoded})
            for line in text.splitlines():
                # user:password (htpasswd, rsyncd secrets); not a URL of a config file, which
                # the server may well log (rclone serve prints where it listens).
                if USER_PASSWORD.match(line):
                    values.add(line.split(":", 1)[1].strip())
                # rclone.conf: headers = Authorization,Basic <base64 of user:password>
                values.update(BASIC_AUTH.findall(line))
    return {value for value in values if len(value) >= 12}


def cluster_texts(transfer):
    """Everything of the run the clusters show to readers of pods, configmaps and events."""
    texts = {}
    for cluster, core in transfer.core.items():
        namespace = transfer.namespaces[cluster]
        for pod in core.list_namespaced_pod(namespace, label_selector=MANAGED).items:
            name = pod.metadata.name
            texts["{0} Pod {1}".format(cluster, name)] = json.dumps(
                transfer.clients[cluster].sanitize_for_serialization(pod)
            )
            for container in pod.spec.containers:
                texts["{0} log {1}/{2}".format(cluster, name, container.name)] = (
                    core.read_namespaced_pod_log(name, namespace, container=container.name)
                )
        for config_map in core.list_namespaced_config_map(namespace).items:
            texts["{0} ConfigMap {1}".format(cluster, config_map.metadata.name)] = json.dumps(
                config_map.data or {}
            )
        events = core.list_namespaced_event(namespace).items
        texts["{0} events".format(cluster)] = "\n".join(e.message or "" for e in events)
    return texts


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_no_generated_secret_appears_outside_its_secret(transfer, combination):
    transfer_tool, transport, endpoint = COMBINATIONS[combination]
    data = transfer.create_pvc("source", "data")
    tree.build(data, specials=False)
    variables = dict(
        state_transfer_pvcs=[{"source": "data"}],
        state_transfer_transfer=transfer_tool,
        state_transfer_transport=transport,
        state_transfer_endpoint=endpoint,
    )
    run = transfer.playbook("-vvv", state_transfer_cleanup="never", **variables)
    assert run.returncode == 0, output_of(run)

    secrets = []
    for cluster, core in transfer.core.items():
        found = core.list_namespaced_secret(transfer.namespaces[cluster], label_selector=MANAGED)
        secrets += found.items
    values = secret_values(secrets)
    assert len(values) >= 3, "found too few secret values to search for: {0}".format(len(values))

    texts = cluster_texts(transfer)
    assert any(" log " in name and text for name, text in texts.items()), "no logs captured"
    cleanup = transfer.playbook(
        "-vvv", playbook=CLEANUP, state_transfer_run_id=run.report["run_id"], **variables
    )
    assert cleanup.returncode == 0, output_of(cleanup)
    assert transfer.leftovers() == []
    texts.update(
        {
            "ansible-playbook -vvv stdout": run.stdout,
            "ansible-playbook -vvv stderr": run.stderr,
            "JSON report": json.dumps(run.report),
            "cleanup -vvv output": cleanup.stdout + cleanup.stderr,
        }
    )
    # -vvv shows how each module runs and with which arguments: what must hold no secret.
    assert "ESTABLISH LOCAL CONNECTION FOR USER" in run.stdout, "that was no -vvv output"
    assert "module_args" in run.stdout, "that was no -vvv output"
    leaks = [
        "{0} contains {1}...".format(where, value[:6])
        for where, text in texts.items()
        for value in values
        if value in text
    ]
    assert leaks == []
