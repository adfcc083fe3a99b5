"""Data plane: the rendered containers of each transfer/transport combination, run for real."""

import json
import os
import re

import pytest
import render
import tree

from ansible_collections.kubeferry.state_transfer.plugins.module_utils.progress import parse_rclone

COMBOS = [
    ("rsync", "stunnel"),
    ("rsync", "null"),
    ("rclone", "stunnel"),
    ("rclone", "null"),
]


def make_dir(path, mode=0o755, uid=0, gid=0):
    os.makedirs(path)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    return path


def start_server(cluster, combo, sources, fs_group=None):
    pod = cluster.pod("server", "server", fs_group)
    containers, volumes, objects = render.server_pod(combo.server, combo.server_run)
    pod.add_volumes(
        volumes, objects, dict((p["volume"], sources[p["key"]]) for p in combo.server_run["pvcs"])
    )
    for container in containers:
        pod.start(container)
    for container in pod.containers.values():
        container.wait_ready()
    return pod


def start_client(cluster, combo, destination, name, fs_group=None):
    pod = cluster.pod("client", name, fs_group)
    containers, volumes, objects = render.client_pod(combo.client, combo.client_run)
    pod.add_volumes(volumes, objects, {"destination": destination})
    for container in containers:
        pod.start(container)
    return pod


def finish_client(pod, timeout=180):
    """Wait for the transfer client, then for the sidecar it releases; return the log."""
    transfer = pod.containers["transfer"]
    code = transfer.wait(timeout)
    log = transfer.log()
    assert code == 0, "transfer client exited {0}:\n{1}".format(code, log)
    assert os.path.exists(os.path.join(pod.volumes["run"], "done"))
    transport = pod.containers.get("transport")
    if transport is not None:
        assert transport.wait(15) == 0, transport.log()
    return log


def run_client(cluster, combo, destination, name, fs_group=None):
    return finish_client(start_client(cluster, combo, destination, name, fs_group))


def regular_files_transferred(rsync_log):
    match = re.search(r"Number of regular files transferred: ([\d,]+)", rsync_log)
    assert match, rsync_log
    return int(match.group(1).replace(",", ""))


def assert_rsync_copy(source_snap, dest_snap, **fidelity):
    problems = tree.rsync_differences(source_snap, dest_snap, **fidelity)
    assert not problems, "\n".join(problems[:20])


def assert_rclone_copy(source_snap, dest_snap):
    problems = tree.rclone_differences(source_snap, dest_snap)
    assert not problems, "\n".join(problems[:20])


@pytest.mark.parametrize("transfer,transport", COMBOS, ids=["-".join(c) for c in COMBOS])
def test_transfer_moves_the_tree(rendered, cluster_for, workdir, transfer, transport):
    combo = rendered(transfer, transport)
    cluster = cluster_for(combo)
    source = make_dir(os.path.join(workdir, "source-pvc"))
    tree.build(source)
    before = tree.snapshot(source)
    destination = make_dir(os.path.join(workdir, "destination-pvc"))
    os.makedirs(os.path.join(destination, "lost+found"), mode=0o700)
    own_lost_found = tree.snapshot(os.path.join(destination, "lost+found"))

    server = start_server(cluster, combo, {"data": source})

    # The source is mounted read-only: even the server's root cannot write to it.
    attempt = server.containers["transfer"].exec(
        ["sh", "-c", "echo x > /mnt/source/data/kubeferry-write-test"]
    )
    assert attempt.returncode != 0
    assert "Read-only file system" in attempt.stderr
    assert not os.path.exists(os.path.join(source, "kubeferry-write-test"))

    first = run_client(cluster, combo, destination, "client-1")
    after_first = tree.snapshot(destination)
    assert tree.snapshot(source) == before, "the source changed"
    assert tree.snapshot(os.path.join(destination, "lost+found")) == own_lost_found
    if transfer == "rsync":
        assert_rsync_copy(before, after_first)
        assert regular_files_transferred(first) > 0
        assert "to-chk=" in first, "no --info=progress2 output"
    else:
        assert_rclone_copy(before, after_first)
        # What the run's progress lines and summary are made of (rclone's block of stats).
        progress = parse_rclone(first)
        assert progress["percent"] == 100, first
        assert progress["files"] == progress["total_files"] > 0, first

    # A second run finds nothing to move and changes nothing.
    second = run_client(cluster, combo, destination, "client-2")
    after_second = tree.snapshot(destination)
    assert after_second == after_first
    if transfer == "rsync":
        assert regular_files_transferred(second) == 0
    else:
        assert "Copied" not in second, second
    assert tree.snapshot(source) == before


@pytest.mark.parametrize("transfer,transport", COMBOS, ids=["-".join(c) for c in COMBOS])
def test_secrets_stay_out_of_specs_configmaps_and_logs(
    rendered, cluster_for, workdir, tls, transfer, transport
):
    combo = rendered(transfer, transport)
    password = combo.password
    keys = [tls["server_key"], tls["client_key"]]
    secret_texts = [password] + [k.strip().splitlines()[1] for k in keys]
    for fragments in (combo.server, combo.client):
        for part in fragments.values():
            for container in part["containers"]:
                visible = json.dumps(
                    [container.get("command"), container.get("args"), container.get("env")]
                )
                probe = json.dumps(container.get("readinessProbe"))
                for text in secret_texts:
                    assert text not in visible and text not in probe
                assert "env" not in container and "envFrom" not in container
            for volume in part["volumes"]:
                if "secret" in volume:
                    assert volume["secret"]["defaultMode"] == 0o400
            for obj in part["objects"]:
                assert len(obj["metadata"]["name"]) <= 63
                assert obj["metadata"]["labels"]["kubeferry.io/run"] == render.RUN_ID
                if obj["kind"] == "ConfigMap":
                    for text in secret_texts:
                        assert text not in json.dumps(obj)
    for text in secret_texts:
        assert text not in combo.logs, "a secret appears in ansible-playbook's output"

    # Nor in the running processes' command lines or environments.
    cluster = cluster_for(combo)
    source = make_dir(os.path.join(workdir, "source-pvc"))
    server = start_server(cluster, combo, {"data": source})
    for container in server.containers.values():
        pid = container.popen.pid
        for name in ("cmdline", "environ"):
            with open("/proc/{0}/{1}".format(pid, name), "rb") as handle:
                assert password.encode() not in handle.read()
