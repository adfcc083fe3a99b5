"""The product, end to end: playbooks/state_transfer.yml moving real data between the two
local clusters, verified on the destination's volume, with nothing left behind.

`make matrix` runs every combination on a large data set; these are the representative
runs of `make test`.
"""

import os
import stat

import pytest
from dataplane import tree

from .conftest import output_of

pytestmark = [pytest.mark.clusters, pytest.mark.e2e]

# What rsync keeps (docs/contract.md, roles/transfer_rsync/README.md).
RSYNC_KEPT = (
    "type",
    "mode",
    "uid",
    "gid",
    "mtime_ns",
    "size",
    "link",
    "sha256",
    "xattrs",
    "acl",
    "rdev",
)


def assert_same_tree(source, destination, kept):
    expected = {rel: entry for rel, entry in source.items() if not rel.startswith("lost+found")}
    assert sorted(destination) == sorted(expected), "paths differ"
    for rel, entry in expected.items():
        got = destination[rel]
        for key in kept:
            if rel == "." and key == "mtime_ns":
                continue
            assert got[key] == entry[key], "{0}: {1} {2!r} != {3!r}".format(
                rel, key, got[key], entry[key]
            )


def test_rsync_over_stunnel_through_a_load_balancer(transfer):
    data = transfer.create_pvc("source", "data")
    tree.build(data, specials=True)
    logs = transfer.create_pvc("source", "logs", size="512Mi")
    for index in range(50):
        with open(os.path.join(logs, "log-{0}".format(index)), "w") as handle:
            handle.write("line {0}\n".format(index) * 100)
    source_before = {"data": tree.snapshot(data), "logs": tree.snapshot(logs)}
    variables = dict(
        state_transfer_pvcs=[{"source": "data"}, {"source": "logs", "destination": "logs-copy"}],
        state_transfer_transfer="rsync",
        state_transfer_transport="stunnel",
        state_transfer_endpoint="load_balancer",
        state_transfer_parallel=1,
    )

    dry = transfer.playbook("--check", **variables)
    assert dry.returncode == 0, output_of(dry)
    assert transfer.leftovers() == []
    assert transfer.pvc_names("destination") == [], "--check created destination PVCs"

    first = transfer.playbook(**variables)
    assert first.returncode == 0, output_of(first)
    assert "data: 100%" in first.stdout, "no live progress line"
    states = {entry["pvc"]: entry["state"] for entry in first.report["pvcs"]}
    assert states == {"data": "success", "logs-copy": "success"}
    assert transfer.leftovers() == []
    assert transfer.pvc_names("destination") == ["data", "logs-copy"]

    copied = tree.snapshot(transfer.pvc_dir("destination", "data"))
    assert_same_tree(source_before["data"], copied, RSYNC_KEPT)
    assert tree.hard_link_groups(copied) == tree.hard_link_groups(source_before["data"])
    assert copied["sparse.img"]["blocks"] < copied["sparse.img"]["size"] // 512 // 4, (
        "sparse file was filled"
    )
    assert_same_tree(
        source_before["logs"],
        tree.snapshot(transfer.pvc_dir("destination", "logs-copy")),
        RSYNC_KEPT,
    )
    assert {"data": tree.snapshot(data), "logs": tree.snapshot(logs)} == source_before, (
        "the source changed"
    )

    # The same transfer again: same run id, only the change moves.
    with open(os.path.join(logs, "log-new"), "w") as handle:
        handle.write("new\n")
    second = transfer.playbook(**variables)
    assert second.returncode == 0, output_of(second)
    assert second.report["run_id"] == first.report["run_id"]
    moved = {entry["pvc"]: entry["files"] for entry in second.report["pvcs"]}
    assert moved == {"data": 0, "logs-copy": 1}
    assert transfer.leftovers() == []


def test_rclone_over_stunnel_through_a_passthrough_route(transfer):
    data = transfer.create_pvc("source", "data")
    tree.build(data, specials=False, owners=False)
    before = tree.snapshot(data)
    result = transfer.playbook(
        state_transfer_pvcs=[{"source": "data", "destination": "data-copy"}],
        state_transfer_transfer="rclone",
        state_transfer_transport="stunnel",
        state_transfer_endpoint="route",
    )
    assert result.returncode == 0, output_of(result)
    assert "SNI" in result.stdout
    copied = tree.snapshot(transfer.pvc_dir("destination", "data-copy"))
    for rel, entry in before.items():
        if entry["type"] == stat.S_IFREG and not rel.startswith("lost+found"):
            assert copied[rel]["sha256"] == entry["sha256"], rel
    assert transfer.leftovers() == []
    assert tree.snapshot(data) == before


def test_rsync_without_encryption_over_a_node_port(transfer):
    data = transfer.create_pvc("source", "data")
    tree.build(data, specials=False)
    before = tree.snapshot(data)
    result = transfer.playbook(
        state_transfer_pvcs=["data"],
        state_transfer_transfer="rsync",
        state_transfer_transport="null",
        state_transfer_endpoint="node_port",
    )
    assert result.returncode == 0, output_of(result)
    assert_same_tree(before, tree.snapshot(transfer.pvc_dir("destination", "data")), RSYNC_KEPT)
    assert transfer.leftovers() == []


def test_refused_combination_creates_nothing(transfer):
    transfer.create_pvc("source", "data")
    result = transfer.playbook(
        state_transfer_pvcs=["data"],
        state_transfer_transfer="rsync",
        state_transfer_transport="null",
        state_transfer_endpoint="route",
    )
    assert result.returncode != 0
    assert "plain rsync never sends" in result.stdout
    assert transfer.leftovers() == []
    assert transfer.pvc_names("destination") == []
