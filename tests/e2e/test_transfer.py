"""The product, end to end: playbooks/state_transfer.yml moving real data between the two
local clusters, verified on the destination's volume, with nothing left behind.

Every combination, refused ones included, runs in tests/matrix (`make matrix` on the full
data set, `make e2e` on the small one); these are the stories the matrix does not tell:
--check, several PVCs at bounded parallelism, restricted mode.
"""

import os
import threading
import time

import pytest
from dataplane import tree

from .playbook import output_of

pytestmark = [pytest.mark.clusters, pytest.mark.e2e]


def assert_rsync_kept(source_snap, copied_snap, **fidelity):
    """Everything rsync is documented to keep (roles/transfer_rsync/README.md)."""
    problems = tree.rsync_differences(source_snap, copied_snap, **fidelity)
    assert not problems, "\n".join(problems[:20])


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
    assert_rsync_kept(source_before["data"], copied)
    assert copied["sparse.img"]["blocks"] < copied["sparse.img"]["size"] // 512 // 4, (
        "sparse file was filled"
    )
    assert_rsync_kept(
        source_before["logs"], tree.snapshot(transfer.pvc_dir("destination", "logs-copy"))
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


# The longest name Kubernetes allows for a PVC (a DNS label): 63 characters.
LONGEST_NAME = "customer-invoices-archive-of-the-online-shop-eu-west-1-zone-b-01"[:63]


ACTIVE = ("Pending", "Running")


class ClientPodWatch(threading.Thread):
    """Counts the destination's client pods that are pending or running, every 0.2 s."""

    def __init__(self, transfer, limit_seconds=900):
        super().__init__(daemon=True)
        self.transfer = transfer
        self.deadline = time.monotonic() + limit_seconds
        self.stop = threading.Event()
        self.most_at_once = 0
        self.seen = set()

    def run(self):  # a thread created in kf-world stays there (setns is per thread)
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            pods = self.transfer.core["destination"].list_namespaced_pod(
                self.transfer.namespaces["destination"], label_selector="kubeferry.io/side=client"
            )
            active = [p.metadata.name for p in pods.items if p.status.phase in ACTIVE]
            self.seen.update(active)
            self.most_at_once = max(self.most_at_once, len(active))
            self.stop.wait(0.2)


def test_several_pvcs_of_different_sizes_at_most_two_at_a_time(transfer):
    assert len(LONGEST_NAME) == 63
    contents = {"orders": 24, "media": 40, "sessions": 2, LONGEST_NAME: 8}  # MiB of data
    sizes = {"orders": "1Gi", "media": "3Gi", "sessions": "256Mi", LONGEST_NAME: "2Gi"}
    before = {}
    for name, mib in contents.items():
        root = transfer.create_pvc("source", name, size=sizes[name])
        os.makedirs(os.path.join(root, "nested", "deeper"))
        for index in range(mib):
            with open(os.path.join(root, "nested", "deeper", "part-{0}".format(index)), "wb") as h:
                h.write(os.urandom(tree.MIB))
        before[name] = tree.snapshot(root)
    pairs = [{"source": name} for name in contents]
    pairs[0]["destination"] = LONGEST_NAME[:-1] + "x"  # a 63-character destination name too

    watch = ClientPodWatch(transfer)
    watch.start()
    try:
        result = transfer.playbook(
            state_transfer_pvcs=pairs,
            state_transfer_transfer="rsync",
            state_transfer_transport="stunnel",
            state_transfer_endpoint="node_port",
            state_transfer_parallel=2,
            state_transfer_bwlimit="10M",  # every pod lives long enough to be seen
        )
    finally:
        watch.stop.set()
        watch.join()
    assert result.returncode == 0, output_of(result)
    assert len(watch.seen) == 4, watch.seen
    assert watch.most_at_once == 2, "client pods at once: {0}".format(watch.most_at_once)

    destination = {pair["source"]: pair.get("destination", pair["source"]) for pair in pairs}
    states = {entry["pvc"]: entry["state"] for entry in result.report["pvcs"]}
    assert states == {name: "success" for name in destination.values()}
    claims = {
        p.metadata.name: p.spec.resources.requests["storage"]
        for p in transfer.core["destination"]
        .list_namespaced_persistent_volume_claim(transfer.namespaces["destination"])
        .items
    }
    assert claims == {destination[name]: sizes[name] for name in contents}
    for name, copy in destination.items():
        assert_rsync_kept(before[name], tree.snapshot(transfer.pvc_dir("destination", copy)))
    assert transfer.leftovers() == []


RUN_AS = 1000


def test_restricted_mode_keeps_everything_but_owners(transfer):
    """Non-root pods: contents, modes, times, hard links, ACLs and xattrs; owners become
    run_as_user (the documented difference from preserve mode)."""
    data = transfer.create_pvc("source", "data")
    tree.build(data, specials=False)
    tree.give_to_workload(data, RUN_AS)
    before = tree.snapshot(data)
    assert before["owned/by-65534"]["uid"] == 65534
    result = transfer.playbook(
        state_transfer_pvcs=["data"],
        state_transfer_transfer="rsync",
        state_transfer_transport="stunnel",
        state_transfer_endpoint="route",
        state_transfer_mode="restricted",
        state_transfer_run_as_user=RUN_AS,
    )
    assert result.returncode == 0, output_of(result)
    copied = tree.snapshot(transfer.pvc_dir("destination", "data"))
    assert_rsync_kept(before, copied, owners=False, root=False, specials=False)
    owners = {
        (entry["uid"], entry["gid"])
        for rel, entry in tree.without_lost_found(copied).items()
        if rel != "."
    }
    assert owners == {(RUN_AS, RUN_AS)}, owners
    assert tree.snapshot(data) == before
    assert transfer.leftovers() == []
