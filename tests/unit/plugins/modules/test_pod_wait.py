"""pod_wait run as a module against a mocked client: fast failures with logs, timeouts."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import itertools

from ansible_collections.kubeferry.state_transfer.plugins.modules import pod_wait

SERVER = dict(namespace="app", names=["kubeferry-3f9c2a1b-server"], state="ready")
CLIENT = dict(namespace="app", names=["kubeferry-3f9c2a1b-data-0"], state="completed")
RSYNC_FAILURE_LOG = (
    "rsync: [Receiver] failed to connect to 127.0.0.1 (127.0.0.1): Connection refused (111)\n"
    "rsync error: error in socket IO (code 10) at clientserver.c(139) [Receiver=3.2.7]\n"
)


def pods(kube, *cases):
    return [kube.instance(kube.api_object("pods", case)) for case in cases]


def run(kube, args, reads, logs="", check_mode=False):
    client = kube.fake_client(reads, logs)
    result, failed = kube.run_module(pod_wait, args, client, check_mode)
    return result, failed, client


def log_query(client):
    return dict(client.resource.return_value.log.get.call_args.kwargs["query_params"])


def test_server_becomes_ready(kube, clock):
    reads = pods(kube, "pending_container_creating", "running_not_ready", "running_ready")
    result, failed, client = run(kube, SERVER, reads, logs="rsyncd version 3.2.7 starting\n")
    assert not failed
    assert result["changed"] is False
    (pod,) = result["pods"]
    assert (pod["name"], pod["phase"], pod["ready"], pod["reason"]) == (
        "kubeferry-3f9c2a1b-server",
        "Running",
        True,
        "Ready",
    )
    assert pod["node"] == "worker-a"
    assert pod["log_tail"] == ["rsyncd version 3.2.7 starting"]
    assert clock.sleeps == [2, 2]
    assert client.get.call_args.kwargs == dict(name="kubeferry-3f9c2a1b-server", namespace="app")


def test_image_pull_failure_is_fast_and_shows_the_reason_and_log(kube, clock):
    result, failed, client = run(
        kube, CLIENT, pods(kube, "pending_container_creating", "err_image_pull")
    )
    assert failed
    assert result["msg"].startswith(
        "Pod app/kubeferry-3f9c2a1b-data-0 failed: ErrImagePull: failed to pull and unpack image"
    )
    assert "(container transfer)" in result["msg"]
    assert clock.elapsed == 2
    assert result["pods"][0]["reason"] == "ErrImagePull"


def test_crash_loop_shows_the_previous_containers_log(kube, clock):
    result, failed, client = run(
        kube, SERVER, pods(kube, "crash_loop_backoff"), logs=RSYNC_FAILURE_LOG
    )
    assert failed
    assert result["msg"].startswith("Pod app/kubeferry-3f9c2a1b-server failed: CrashLoopBackOff")
    assert result["msg"].endswith("Last log lines of rsyncd:\n" + RSYNC_FAILURE_LOG.rstrip("\n"))
    assert log_query(client) == {"container": "rsyncd", "tailLines": 20, "previous": "true"}
    assert result["pods"][0]["log_tail"][-1].startswith("rsync error: error in socket IO")


def test_unschedulable_fails_after_its_grace_not_at_the_timeout(kube, clock):
    stuck = pods(kube, "unschedulable_unbound_pvc")[0]
    result, failed, _client = run(
        kube, dict(CLIENT, unschedulable_grace=10), itertools.repeat(stuck)
    )
    assert failed
    assert result["msg"] == (
        "Pod app/kubeferry-3f9c2a1b-data-0 failed: Unschedulable: 0/3 nodes are available: pod has "
        "unbound immediate PersistentVolumeClaims. preemption: 0/3 nodes are available: 3 "
        "Preemption is not helpful for scheduling."
    )
    assert clock.elapsed == 10


def test_oomkilled(kube, clock):
    result, failed, _client = run(
        kube, dict(CLIENT, fail_on_exit_code=False), pods(kube, "oomkilled")
    )
    assert failed
    assert "OOMKilled: container transfer ran out of memory (exit code 137)" in result["msg"]


def test_non_zero_exit_fails_fast_with_the_log(kube, clock):
    reads = pods(kube, "transfer_running", "transfer_exit23_sidecar_running")
    log = kube.log_fixture("rsync_exit23.log.gz")
    result, failed, client = run(kube, dict(CLIENT, log_lines=2), reads, logs=log)
    assert failed
    assert result["msg"].startswith(
        "Pod app/kubeferry-3f9c2a1b-data-0 failed: Error: container transfer exited with code 23"
    )
    assert result["msg"].endswith(
        "rsync error: some files/attrs were not transferred (see previous errors) (code 23) at "
        "main.c(1394) [sender=3.5.0]"
    )
    assert result["pods"][0]["exit_code"] == 23
    assert log_query(client) == {"container": "transfer", "tailLines": 2}


def test_exit_codes_are_returned_when_the_caller_classifies_them(kube, clock):
    reads = pods(kube, "transfer_running", "transfer_exit23_sidecar_running", "completed_exit23")
    args = dict(CLIENT, fail_on_exit_code=False, container="transfer")
    result, failed, _client = run(kube, args, reads, logs="x\n")
    assert not failed
    (pod,) = result["pods"]
    assert (pod["phase"], pod["exit_code"], pod["exit_codes"]) == (
        "Failed",
        23,
        {"transfer": 23, "stunnel": 0},
    )
    assert clock.sleeps == [2, 2]


def test_pod_deleted_while_waiting(kube, clock):
    reads = pods(kube, "transfer_running") + [kube.not_found()]
    result, failed, _client = run(kube, CLIENT, reads)
    assert failed
    assert result["msg"] == (
        "Pod app/kubeferry-3f9c2a1b-data-0 failed: Deleted: the Pod was deleted (or never created)"
    )


def test_timeout_names_each_pod_and_its_state(kube, clock):
    creating = pods(kube, "pending_container_creating")[0]
    result, failed, _client = run(kube, dict(SERVER, wait_timeout=20), itertools.repeat(creating))
    assert failed
    assert result["msg"] == (
        "Timed out after 20 s waiting for Pods in app to be ready: "
        "kubeferry-3f9c2a1b-server (Pending: ContainerCreating (transfer))"
    )
    assert result["pods"][0]["phase"] == "Pending"


def test_label_selector_waits_for_pods_to_appear(kube, clock):
    a = kube.api_object("pods", "completed_success")
    b = kube.api_object("pods", "completed_success")
    b["metadata"]["name"] = "kubeferry-3f9c2a1b-data-1"
    reads = [kube.listing("Pod", []), kube.listing("Pod", [a]), kube.listing("Pod", [a, b])]
    args = dict(namespace="app", label_selector="kubeferry.io/run=3f9c2a1b", state="completed")
    result, failed, client = run(kube, args, reads)
    assert not failed
    # The first read with one pod already satisfies the wait: every matched pod completed.
    assert [p["name"] for p in result["pods"]] == ["kubeferry-3f9c2a1b-data-0"]
    assert client.get.call_args.kwargs == dict(
        namespace="app", label_selector="kubeferry.io/run=3f9c2a1b"
    )


def test_label_selector_pod_that_disappears_counts_as_deleted(kube, clock):
    running = kube.api_object("pods", "transfer_running")
    reads = [kube.listing("Pod", [running]), kube.listing("Pod", [])]
    args = dict(namespace="app", label_selector="kubeferry.io/run=3f9c2a1b", state="completed")
    result, failed, _client = run(kube, args, reads)
    assert failed
    assert "Deleted" in result["msg"]


def test_label_selector_that_never_matches(kube, clock):
    args = dict(namespace="app", label_selector="kubeferry.io/run=nope", wait_timeout=6)
    result, failed, _client = run(kube, args, itertools.repeat(kube.listing("Pod", [])))
    assert failed
    assert (
        result["msg"]
        == "No Pod matched label selector kubeferry.io/run=nope in namespace app within 6 s"
    )


def test_names_and_label_selector_are_exclusive(kube, clock):
    result, failed, _client = run(kube, dict(SERVER, label_selector="a=b"), [])
    assert failed
    assert "mutually exclusive" in result["msg"]


def test_check_mode(kube, clock):
    result, failed, _client = run(kube, SERVER, [kube.not_found()], check_mode=True)
    assert not failed
    assert result["msg"] == (
        "Pods kubeferry-3f9c2a1b-server in app do not exist yet; would wait until they are ready"
    )
    result, failed, _client = run(kube, SERVER, pods(kube, "running_not_ready"), check_mode=True)
    assert not failed
    assert result["msg"].endswith("are not ready yet; would wait for them")
    assert clock.sleeps == []
