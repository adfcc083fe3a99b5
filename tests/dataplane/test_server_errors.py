"""Data plane: when the rclone server fails requests, no file is left out in silence.

Between the client and the server runs faulty_http.py (in the server's network namespace,
as nobody), which answers some requests with 500: every fifth one (a flaky hop), or every
request for one path (a file or directory the server cannot serve). A copy then either
arrives whole or fails its PVC; a mirror never deletes a destination file because the
source's listing missed it.
"""

import os
import shutil
import sys

import pytest
import tree
from test_transfer import assert_rclone_copy, finish_client, make_dir, start_client, start_server

SERVER_PORT = 8873  # the null transport's port, where the rclone server listens
FAULTY_PORT = 8874  # where the client connects: faulty_http.py
NOBODY = 65534
FAULTY_HTTP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "faulty_http.py")


def start_faulty_http(cluster, *fault_args):
    """faulty_http.py as a container of a pod of its own in the server's network namespace;
    it stops with the cluster's other processes."""
    host = cluster.server_address
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    spec = {
        "name": "faulty-http",
        "command": [python, FAULTY_HTTP, host, str(FAULTY_PORT), host, str(SERVER_PORT)],
        "args": list(fault_args),
        "securityContext": {
            "runAsUser": NOBODY,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "readinessProbe": {"tcpSocket": {"port": FAULTY_PORT}},
    }
    pod = cluster.pod("server", "faulty-http")
    container = pod.start(spec)
    container.wait_ready()
    return container


def failed_requests(faulty):
    return [line for line in faulty.log().splitlines() if line.startswith("FAILED ")]


def test_rclone_copies_everything_through_a_hop_that_fails_every_fifth_request(
    rendered, cluster_for, workdir
):
    combo = rendered("rclone", "null", port=FAULTY_PORT, transfer_rclone_retries_sleep="1s")
    cluster = cluster_for(combo)
    source = make_dir(os.path.join(workdir, "source-pvc"))
    tree.build(source, many=40)
    before = tree.snapshot(source)
    destination = make_dir(os.path.join(workdir, "destination-pvc"))
    start_server(cluster, combo, {"data": source})
    faulty = start_faulty_http(cluster, "--every", "5")

    log = finish_client(start_client(cluster, combo, destination, "client"))

    assert len(failed_requests(faulty)) >= 5, faulty.log()
    assert_rclone_copy(before, tree.snapshot(destination))
    assert tree.snapshot(source) == before, log


@pytest.mark.parametrize("broken", ["dir/file.txt", "dir/sub"], ids=["file", "directory"])
def test_rclone_fails_the_pvc_when_the_server_never_serves_a_path(
    rendered, cluster_for, workdir, broken
):
    combo = rendered(
        "rclone",
        "null",
        port=FAULTY_PORT,
        transfer_rclone_mirror=True,
        transfer_rclone_retries=2,
        transfer_rclone_retries_sleep="1s",
        # A 500 is tried low-level-retries squared times per attempt (rclone's pacer retries
        # inside each low-level retry), 2 s apart once the pacer has backed off: 4, not 100.
        transfer_rclone_extra_args=["--low-level-retries=2"],
    )
    cluster = cluster_for(combo)
    source = make_dir(os.path.join(workdir, "source-pvc"))
    tree.build(source)
    before = tree.snapshot(source)
    # The destination has an older copy of the source, and a file of its own.
    destination = make_dir(os.path.join(workdir, "destination-pvc"))
    shutil.copytree(os.path.join(source, "dir"), os.path.join(destination, "dir"), symlinks=True)
    with open(os.path.join(destination, "dir", "file.txt"), "w") as handle:
        handle.write("an older version\n")
    with open(os.path.join(destination, "dir", "only-here"), "w") as handle:
        handle.write("only on the destination\n")
    kept = tree.snapshot(os.path.join(destination, "dir"))
    start_server(cluster, combo, {"data": source})
    faulty = start_faulty_http(cluster, "--path", "/data/" + broken)

    client = start_client(cluster, combo, destination, "client")
    code = client.containers["transfer"].wait(180)
    log = client.containers["transfer"].log()

    assert failed_requests(faulty), faulty.log()
    assert code != 0, log
    assert broken.split("/")[-1] in log, log
    # sync deletes nothing after an error: what the destination had is all still there.
    after = tree.snapshot(os.path.join(destination, "dir"))
    assert set(kept) <= set(after), sorted(set(kept) - set(after))
    assert os.path.exists(os.path.join(destination, "dir", "only-here"))
    assert tree.snapshot(source) == before
