"""Data plane: restricted mode, mirror mode, many entries, a server that comes up late."""

import os
import stat
import time

import pytest
import tree
from test_transfer import (
    assert_rclone_copy,
    assert_rsync_copy,
    finish_client,
    make_dir,
    regular_files_transferred,
    run_client,
    start_client,
    start_server,
)

RUN_AS = 1000


@pytest.mark.parametrize("transfer", ["rsync", "rclone"])
def test_restricted_mode_runs_non_root(rendered, cluster_for, workdir, transfer):
    """Non-root: rsync keeps contents, modes, times, links, ACLs and xattrs (not owners)."""
    combo = rendered(transfer, "stunnel", mode="restricted")
    cluster = cluster_for(combo)
    source = make_dir(os.path.join(workdir, "source-pvc"))
    tree.build(source, specials=False)
    tree.give_to_workload(source, RUN_AS)
    before = tree.snapshot(source)
    # The destination volume as the kubelet leaves it for an fsGroup: root-owned, setgid.
    destination = make_dir(os.path.join(workdir, "destination-pvc"), 0o2775, 0, RUN_AS)
    os.makedirs(os.path.join(destination, "lost+found"), mode=0o700)
    destination_root = os.stat(destination)

    server = start_server(cluster, combo, {"data": source}, fs_group=RUN_AS)
    for container in server.containers.values():
        with open("/proc/{0}/status".format(container.popen.pid)) as handle:
            status = handle.read()
        assert "Uid:\t{0}\t{0}\t{0}".format(RUN_AS) in status
        assert "CapEff:\t0000000000000000" in status
    run_client(cluster, combo, destination, "client-1", fs_group=RUN_AS)
    after = tree.snapshot(destination)

    if transfer == "rsync":
        assert_rsync_copy(before, after, owners=False, root=False, specials=False)
    else:
        assert_rclone_copy(before, after)
    for rel, entry in after.items():
        if rel != "." and not rel.startswith("lost+found"):
            assert entry["uid"] == RUN_AS, rel
    # The volume root is left as the cluster made it.
    root = os.stat(destination)
    assert (root.st_uid, root.st_gid, root.st_mode) == (
        destination_root.st_uid,
        destination_root.st_gid,
        destination_root.st_mode,
    )
    assert os.stat(os.path.join(destination, "owned/by-65534")).st_uid == RUN_AS
    assert tree.snapshot(source) == before

    second = run_client(cluster, combo, destination, "client-2", fs_group=RUN_AS)
    assert tree.snapshot(destination) == after
    if transfer == "rsync":
        assert regular_files_transferred(second) == 0
    else:
        assert "Copied" not in second


MIRROR_CASES = [
    ("rsync", "preserve"),
    ("rsync", "restricted"),
    ("rclone", "preserve"),
]


@pytest.mark.parametrize("transfer,mode", MIRROR_CASES, ids=["-".join(c) for c in MIRROR_CASES])
@pytest.mark.parametrize("mirror", [False, True], ids=["copy", "mirror"])
def test_only_mirror_mode_deletes(rendered, cluster_for, workdir, transfer, mode, mirror):
    combo = rendered(transfer, "null", mode, **{"transfer_{0}_mirror".format(transfer): mirror})
    fs_group = RUN_AS if mode == "restricted" else None
    owner = RUN_AS if mode == "restricted" else 0
    cluster = cluster_for(combo)
    source = make_dir(os.path.join(workdir, "source-pvc"), uid=owner, gid=owner)
    make_dir(os.path.join(source, "dir"), uid=owner, gid=owner)
    for rel in ("kept", "dir/kept"):
        with open(os.path.join(source, rel), "w") as handle:
            handle.write("on the source\n")
        os.chown(os.path.join(source, rel), owner, owner)
    destination = make_dir(os.path.join(workdir, "destination-pvc"), 0o2775, 0, owner)
    os.makedirs(os.path.join(destination, "lost+found"), mode=0o700)
    make_dir(os.path.join(destination, "dir"), uid=owner, gid=owner)
    for rel in ("extra", "dir/extra"):
        with open(os.path.join(destination, rel), "w") as handle:
            handle.write("only on the destination\n")
        os.chown(os.path.join(destination, rel), owner, owner)
    start_server(cluster, combo, {"data": source}, fs_group=fs_group)
    run_client(cluster, combo, destination, "client", fs_group=fs_group)
    assert os.path.exists(os.path.join(destination, "kept"))
    assert os.path.exists(os.path.join(destination, "dir/kept"))
    assert os.path.isdir(os.path.join(destination, "lost+found"))
    assert os.path.exists(os.path.join(destination, "extra")) is not mirror
    assert os.path.exists(os.path.join(destination, "dir/extra")) is not mirror


@pytest.mark.parametrize("mode", ["preserve", "restricted"])
def test_rsync_many_top_level_entries(rendered, cluster_for, workdir, mode):
    """More top-level names than fit into one command line: never a list of them in argv."""
    combo = rendered("rsync", "null", mode)
    fs_group = RUN_AS if mode == "restricted" else None
    cluster = cluster_for(combo)
    source = make_dir(os.path.join(workdir, "source-pvc"))
    count = 12000
    for index in range(count):
        with open(os.path.join(source, "m{0:05d}-{1}".format(index, "x" * 200)), "w") as handle:
            handle.write(str(index))
    names_bytes = sum(len(name) + 1 for name in os.listdir(source))
    assert names_bytes > os.sysconf("SC_ARG_MAX")
    owner = RUN_AS if mode == "restricted" else 0
    destination = make_dir(os.path.join(workdir, "destination-pvc"), 0o2775, 0, owner)
    start_server(cluster, combo, {"data": source}, fs_group=fs_group)
    log = run_client(cluster, combo, destination, "client", fs_group=fs_group)
    assert regular_files_transferred(log) == count
    assert sorted(os.listdir(destination)) == sorted(os.listdir(source))


def test_rsync_client_retries_until_the_server_is_up(rendered, cluster_for, workdir):
    """The client starts first: connection refused (code 10) is retried with backoff."""
    combo = rendered("rsync", "stunnel")
    cluster = cluster_for(combo)
    source = make_dir(os.path.join(workdir, "source-pvc"))
    with open(os.path.join(source, "file"), "w") as handle:
        handle.write("late\n")
    destination = make_dir(os.path.join(workdir, "destination-pvc"))
    client = start_client(cluster, combo, destination, "client")
    time.sleep(3)
    assert client.containers["transfer"].popen.poll() is None, "gave up too early"
    start_server(cluster, combo, {"data": source})
    log = finish_client(client, timeout=60)
    assert "retry 1 of 5" in log
    with open(os.path.join(destination, "file")) as handle:
        assert handle.read() == "late\n"


def test_rsync_client_gives_up_after_its_retries(rendered, cluster_for, workdir):
    """No server at all: bounded retries, the done marker, and rsync's exit code."""
    combo = rendered("rsync", "null", transfer_rsync_retries=2)
    cluster = cluster_for(combo)
    destination = make_dir(os.path.join(workdir, "destination-pvc"))
    started = time.monotonic()
    client = start_client(cluster, combo, destination, "client")
    code = client.containers["transfer"].wait(60)
    elapsed = time.monotonic() - started
    assert code == 10, client.containers["transfer"].log()
    assert 6 <= elapsed < 30, elapsed  # 2 s + 4 s of backoff
    assert os.path.exists(os.path.join(client.volumes["run"], "done"))
    assert stat.S_ISDIR(os.stat(destination).st_mode) and os.listdir(destination) == []
