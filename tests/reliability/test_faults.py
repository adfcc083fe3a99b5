"""Faults of real clusters, made with the harness's knobs (tests/clusters/network/services.py,
tests/clusters/node): a connection reset mid-file, killed pods, a load balancer without an
address or with late DNS, a PVC that stays Pending, a destination too small, a program
missing from an image, an unreachable API server, an interrupted playbook.

Each test checks what a user relies on: the source is unchanged, the destination is either
verified against it or its PVC reported as failed with a message that says why, and nothing
of the run is left on either cluster afterwards.
"""

import os
import re
import signal
import time

import pytest
import yaml
from clusters.node.testing import wait_for
from dataplane import tree
from e2e.playbook import CLEANUP, output_of

pytestmark = [pytest.mark.clusters, pytest.mark.e2e]

MIB = tree.MIB
RSYNC_STUNNEL_LB = dict(
    state_transfer_transfer="rsync",
    state_transfer_transport="stunnel",
    state_transfer_endpoint="load_balancer",
)


def fill(root, big_mib=0, small=20):
    """A random file of big_mib MiB (if any) and small files in a directory."""
    if big_mib:
        with open(os.path.join(root, "big.bin"), "wb") as handle:
            for _mib in range(big_mib):
                handle.write(os.urandom(MIB))
    os.makedirs(os.path.join(root, "small"))
    for index in range(small):
        with open(os.path.join(root, "small", "f{0:03d}".format(index)), "w") as handle:
            handle.write("file {0}\n".format(index) * (index + 1))
    return tree.snapshot(root)


def assert_copied(transfer, source_snap, destination_pvc):
    copied = tree.snapshot(transfer.pvc_dir("destination", destination_pvc))
    problems = tree.rsync_differences(source_snap, copied)
    assert not problems, "\n".join(problems[:20])


def states(result):
    return {entry["pvc"]: entry["state"] for entry in (result.report or {}).get("pvcs", [])}


def entry(result, pvc):
    return next(e for e in result.report["pvcs"] if e["pvc"] == pvc)


def wait_for_pod(transfer, cluster, side, timeout=120):
    """The name of the run's first Running pod of side (server or client) on cluster."""

    def running():
        pods = transfer.core[cluster].list_namespaced_pod(
            transfer.namespaces[cluster], label_selector="kubeferry.io/side={0}".format(side)
        )
        names = [pod.metadata.name for pod in pods.items if pod.status.phase == "Running"]
        return names[0] if names else None

    return wait_for(running, timeout, interval=0.2, what="a Running {0} pod".format(side))


def kill_container(transfer, cluster, pod, container):
    """SIGKILL to the container's process, as an OOM kill or a node problem would do."""
    transfer.core[cluster].patch_namespaced_pod(
        pod,
        transfer.namespaces[cluster],
        {"metadata": {"annotations": {"kf.test/kill-container": container}}},
    )


def test_a_connection_reset_mid_file_is_retried_and_the_file_resumed(transfer):
    before = fill(transfer.create_pvc("source", "data"), big_mib=48)
    result = transfer.playbook(
        state_transfer_pvcs=[{"source": "data"}],
        # The first connection through the load balancer is reset after 20 MiB.
        endpoint_load_balancer_annotations={"kf.test/reset-after-bytes": str(20 * MIB)},
        **RSYNC_STUNNEL_LB,
    )
    assert result.returncode == 0, output_of(result)
    data = entry(result, "data")
    assert data["state"] == "success"
    assert data["retries"] >= 1, data
    assert "retried" in result.stdout, "the summary does not show the retry"
    # --partial kept what had arrived: the retry sent less than the whole file as literal data.
    literal = next(
        int(m.group(1).replace(",", ""))
        for line in data["log_tail"]
        for m in [re.match(r"Literal data: ([\d,]+) bytes", line.strip())]
        if m
    )
    assert literal < 40 * MIB, "the big file was sent again from the start ({0})".format(literal)
    assert_copied(transfer, before, "data")
    assert tree.snapshot(transfer.pvc_dir("source", "data")) == before
    assert transfer.leftovers() == []


def test_a_killed_client_pod_is_reported_and_a_rerun_completes(transfer):
    before = fill(transfer.create_pvc("source", "data"), big_mib=32)
    variables = dict(state_transfer_pvcs=[{"source": "data"}], **RSYNC_STUNNEL_LB)
    run = transfer.start(name="killed", state_transfer_bwlimit="4M", **variables)
    try:
        pod = wait_for_pod(transfer, "destination", "client")
        time.sleep(3)
        kill_container(transfer, "destination", pod, "transfer")
        assert run.wait(timeout=600) != 0
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    output = (transfer.work_dir / "output-killed.txt").read_text()
    assert "data" in output and "137" in output, output[-4000:]
    assert transfer.leftovers() == []
    assert tree.snapshot(transfer.pvc_dir("source", "data")) == before

    again = transfer.playbook(**variables)
    assert again.returncode == 0, output_of(again)
    assert_copied(transfer, before, "data")
    assert transfer.leftovers() == []


def test_a_killed_server_is_restarted_and_the_clients_reconnect(transfer):
    before = fill(transfer.create_pvc("source", "data"), big_mib=32)
    run = transfer.start(
        name="server-killed",
        state_transfer_pvcs=[{"source": "data"}],
        state_transfer_bwlimit="4M",
        **RSYNC_STUNNEL_LB,
    )
    try:
        wait_for_pod(transfer, "destination", "client")
        time.sleep(3)
        server = wait_for_pod(transfer, "source", "server")
        kill_container(transfer, "source", server, "transfer")
        assert run.wait(timeout=600) == 0, (
            transfer.work_dir / "output-server-killed.txt"
        ).read_text()
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    report = yaml.safe_load((transfer.work_dir / "report-server-killed.json").read_text())
    assert report["pvcs"][0]["retries"] >= 1, report["pvcs"][0]
    assert_copied(transfer, before, "data")
    assert tree.snapshot(transfer.pvc_dir("source", "data")) == before
    assert transfer.leftovers() == []


def test_a_load_balancer_without_an_address_times_out_naming_the_service(transfer):
    fill(transfer.create_pvc("source", "data"))
    result = transfer.playbook(
        state_transfer_pvcs=[{"source": "data"}],
        endpoint_load_balancer_annotations={"kf.test/lb-never": "true"},
        state_transfer_endpoint_timeout=6,
        **RSYNC_STUNNEL_LB,
    )
    output = output_of(result)
    assert result.returncode != 0, output
    assert re.search(r"Service \S+ .*(no address|ingress)", output), output
    assert "state_transfer_endpoint_timeout" in output, output
    assert transfer.leftovers() == []


def test_a_load_balancer_hostname_whose_dns_appears_late_is_waited_for(transfer):
    before = fill(transfer.create_pvc("source", "data"))
    result = transfer.playbook(
        state_transfer_pvcs=[{"source": "data"}],
        endpoint_load_balancer_annotations={"kf.test/lb-dns-delay-seconds": "8"},
        **RSYNC_STUNNEL_LB,
    )
    assert result.returncode == 0, output_of(result)
    assert ".lb.source.kf.test" in result.stdout, "the endpoint was not the hostname"
    assert_copied(transfer, before, "data")
    assert transfer.leftovers() == []


def test_a_destination_pvc_that_stays_pending_fails_the_pvc_in_bounded_time(transfer):
    fill(transfer.create_pvc("source", "data"))
    transfer.core["destination"].create_namespaced_persistent_volume_claim(
        transfer.namespaces["destination"],
        {
            "metadata": {"name": "data", "annotations": {"kf.test/stay-pending": "true"}},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )
    result = transfer.playbook(state_transfer_pvcs=[{"source": "data"}], **RSYNC_STUNNEL_LB)
    output = output_of(result)
    assert result.returncode != 0, output
    assert states(result) == {"data": "failed"}, output
    assert "Pending" in entry(result, "data")["message"] or "unbound" in output, output
    assert result.seconds < 240, "took {0:.0f} s".format(result.seconds)
    assert transfer.leftovers() == []


def test_a_destination_pvc_smaller_than_the_source_is_refused_before_anything_starts(transfer):
    fill(transfer.create_pvc("source", "data", size="2Gi"))
    transfer.create_pvc("destination", "data", size="512Mi")
    result = transfer.playbook(state_transfer_pvcs=[{"source": "data"}], **RSYNC_STUNNEL_LB)
    output = output_of(result)
    assert result.returncode != 0, output
    assert "destination PVC 'data' requests 512Mi, smaller than the source PVC" in output, output
    assert transfer.leftovers() == []
    assert os.listdir(transfer.pvc_dir("destination", "data")) == []


def test_a_program_missing_from_an_image_fails_with_the_reason(transfer):
    fill(transfer.create_pvc("source", "data"))
    result = transfer.playbook(
        state_transfer_pvcs=[{"source": "data"}],
        # The harness runs a container of an image tagged kf-test-without-<program> without it.
        transport_stunnel_image="quay.io/example/no-stunnel:kf-test-without-stunnel",
        **RSYNC_STUNNEL_LB,
    )
    output = output_of(result)
    assert result.returncode != 0, output
    assert 'exec: "stunnel": executable file not found' in output, output
    assert transfer.leftovers() == []
    assert transfer.pvc_names("destination") == []


def test_an_unreachable_api_server_stops_the_run_before_anything_is_created(transfer):
    config = yaml.safe_load(open(transfer.kubeconfig))
    for cluster in config["clusters"]:
        if cluster["name"] == "destination":
            cluster["cluster"]["server"] = "https://127.0.0.1:9"  # nothing listens there
    broken = transfer.work_dir / "kubeconfig-unreachable"
    broken.write_text(yaml.safe_dump(config))
    fill(transfer.create_pvc("source", "data"))
    variables = transfer.variables()
    destination = dict(variables["state_transfer_destination"], kubeconfig=str(broken))
    result = transfer.playbook(
        state_transfer_pvcs=[{"source": "data"}],
        state_transfer_destination=destination,
        **RSYNC_STUNNEL_LB,
    )
    output = output_of(result)
    assert result.returncode != 0, output
    assert "Cannot read the destination cluster (state_transfer_destination)" in output, output
    assert "host='127.0.0.1', port=9" in output and "Connection refused" in output, output
    assert result.seconds < 120, "took {0:.0f} s".format(result.seconds)
    assert transfer.leftovers() == []


def test_an_interrupted_run_is_removed_by_the_cleanup_playbook(transfer):
    before = fill(transfer.create_pvc("source", "data"), big_mib=32)
    variables = dict(state_transfer_pvcs=[{"source": "data"}], **RSYNC_STUNNEL_LB)
    run = transfer.start(name="interrupted", state_transfer_bwlimit="2M", **variables)
    try:
        wait_for_pod(transfer, "destination", "client")
    finally:
        os.killpg(run.pid, signal.SIGKILL)  # the controller dies: no cleanup of its own
        run.wait(timeout=60)
    assert transfer.leftovers() != [], "nothing to clean up: the run was not interrupted"
    # The run said, before it made anything, how to remove it.
    output = (transfer.work_dir / "output-interrupted.txt").read_text()
    run_id = re.search(r"-e state_transfer_run_id=(\w+)", output).group(1)

    cleanup = transfer.playbook(playbook=CLEANUP, state_transfer_run_id=run_id, **variables)
    assert cleanup.returncode == 0, output_of(cleanup)
    assert transfer.leftovers() == []
    assert tree.snapshot(transfer.pvc_dir("source", "data")) == before
