"""Render the part roles' fragments by running their entry points with ansible-playbook."""

import copy
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOK = os.path.join(REPO, "tests", "roles", "render_side.yml")
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")

RUN_ID = "dp0test1"
LABELS = {
    "app.kubernetes.io/managed-by": "kubeferry.state_transfer",
    "app.kubernetes.io/name": "kubeferry",
    "kubeferry.io/run": RUN_ID,
}


def run_dicts(keys, mode="preserve", run_as_user=None):
    """state_transfer_run of the server side and of the client side of each key."""
    name = "kubeferry-" + RUN_ID
    pvcs = [
        {
            "source": key,
            "destination": key,
            "key": key,
            "label": key,
            "index": index,
            "volume": "source-{0}".format(index),
            "mount_path": "/mnt/source/" + key,
        }
        for index, key in enumerate(keys)
    ]
    common = dict(id=RUN_ID, name=name, mode=mode, run_as_user=run_as_user)
    server = dict(
        common,
        namespace="source-ns",
        side="server",
        labels=dict(LABELS, **{"kubeferry.io/side": "server"}),
        pod_name=name + "-server",
        pvcs=pvcs,
    )
    clients = {}
    for pvc in pvcs:
        client_pvc = dict(pvc, volume="destination", mount_path="/mnt/destination")
        clients[pvc["key"]] = dict(
            common,
            namespace="destination-ns",
            side="client",
            labels=dict(
                LABELS, **{"kubeferry.io/side": "client", "kubeferry.io/pvc": pvc["label"]}
            ),
            pod_name="{0}-{1}".format(name, pvc["key"]),
            pvcs=[client_pvc],
        )
    return server, clients


def render(workdir, label, extra_vars, check=False):
    """Run tests/roles/render_side.yml; return (fragments dict, ansible output)."""
    output = os.path.join(workdir, "fragments-{0}.json".format(label))
    vars_file = os.path.join(workdir, "vars-{0}.json".format(label))
    variables = copy.deepcopy(extra_vars)
    variables["kf_output"] = output
    with open(os.open(vars_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        json.dump(variables, handle)
    result = subprocess.run(
        [ANSIBLE_PLAYBOOK, PLAYBOOK, "-v", "-e", "@" + vars_file] + (["--check"] if check else []),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    log = result.stdout + result.stderr
    if result.returncode != 0:
        raise RuntimeError("rendering {0} failed:\n{1}".format(label, log))
    with open(output) as handle:
        return json.load(handle), log


def server_pod(fragments, run):
    """The server pod's containers, volumes and objects, assembled as the orchestrator does."""
    containers = fragments["transfer"]["containers"] + fragments["transport"]["containers"]
    volumes = [
        {
            "name": pvc["volume"],
            "persistentVolumeClaim": {"claimName": pvc["source"], "readOnly": True},
        }
        for pvc in run["pvcs"]
    ]
    volumes += fragments["transfer"]["volumes"] + fragments["transport"]["volumes"]
    objects = fragments["transport"]["objects"] + fragments["transfer"]["objects"]
    return containers, volumes, objects


def client_pod(fragments, run):
    """A client pod: the shared "run" emptyDir is mounted in every container."""
    containers = copy.deepcopy(
        fragments["transfer"]["containers"] + fragments["transport"]["containers"]
    )
    for container in containers:
        mounts = container.setdefault("volumeMounts", [])
        if not any(m["name"] == "run" for m in mounts):
            mounts.append({"name": "run", "mountPath": "/run/kubeferry"})
    volumes = [
        {
            "name": "destination",
            "persistentVolumeClaim": {"claimName": run["pvcs"][0]["destination"]},
        }
    ]
    volumes += [{"name": "run", "emptyDir": {}}]
    volumes += fragments["transfer"]["volumes"] + fragments["transport"]["volumes"]
    objects = fragments["transport"]["objects"] + fragments["transfer"]["objects"]
    return containers, volumes, objects
