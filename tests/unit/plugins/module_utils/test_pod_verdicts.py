"""pod_verdict on real Pod shapes: done, still waiting, or failed for a reason waiting won't fix."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.kubeferry.state_transfer.plugins.module_utils.pods import (
    DONE,
    FAILED,
    WAITING,
    exit_code,
    exit_codes,
    is_ready,
    pod_verdict,
)


@pytest.mark.parametrize(
    "case, reason, container, words",
    [
        ("err_image_pull", "ErrImagePull", "transfer", "401 UNAUTHORIZED"),
        ("image_pull_backoff", "ImagePullBackOff", "transfer", "Back-off pulling image"),
        ("invalid_image_name", "InvalidImageName", "transfer", "invalid reference format"),
        (
            "create_container_config_error",
            "CreateContainerConfigError",
            "transfer",
            'secret "kubeferry-3f9c2a1b-client-rsync" not found',
        ),
        ("create_container_error", "CreateContainerError", "transfer", "permission denied"),
        ("crash_loop_backoff", "CrashLoopBackOff", "rsyncd", "back-off 1m20s"),
        ("oomkilled", "OOMKilled", "transfer", "ran out of memory (exit code 137)"),
        ("evicted", "Evicted", "", "low on resource: ephemeral-storage"),
        ("terminating", "Terminating", "", "being deleted"),
        ("init_container_failed", "Error", "prepare", "init container prepare exited with code 2"),
    ],
)
@pytest.mark.parametrize("state", ["ready", "completed"])
def test_terminal_states_fail_in_both_waits(kube, case, reason, container, words, state):
    verdict = pod_verdict(kube.api_object("pods", case), state)
    assert verdict.state == FAILED
    assert verdict.reason == reason
    assert verdict.container == container
    assert words in verdict.message


def test_unschedulable_waits_for_its_grace_then_fails_with_the_schedulers_message(kube):
    pod = kube.api_object("pods", "unschedulable_unbound_pvc")
    early = pod_verdict(pod, "completed", unschedulable_grace=30, elapsed=10)
    assert early.state == WAITING
    late = pod_verdict(pod, "completed", unschedulable_grace=30, elapsed=30)
    assert late.state == FAILED
    assert late.reason == "Unschedulable"
    assert "pod has unbound immediate PersistentVolumeClaims" in late.message


def test_deleted_pod_fails():
    verdict = pod_verdict(None, "ready")
    assert (verdict.state, verdict.reason) == (FAILED, "Deleted")


@pytest.mark.parametrize("case", ["pending_container_creating", "running_not_ready"])
def test_starting_pods_wait(kube, case):
    verdict = pod_verdict(kube.api_object("pods", case), "ready")
    assert verdict.state == WAITING


def test_waiting_reason_names_the_container(kube):
    verdict = pod_verdict(kube.api_object("pods", "pending_container_creating"), "ready")
    assert verdict.describe() == "Pending: ContainerCreating (transfer)"
    verdict = pod_verdict(kube.api_object("pods", "running_not_ready"), "ready")
    assert verdict.describe() == "Running: containers with unready status: [stunnel]"


def test_ready_server(kube):
    pod = kube.api_object("pods", "running_ready")
    assert is_ready(pod)
    assert pod_verdict(pod, "ready").state == DONE
    # A running pod has not completed.
    assert pod_verdict(pod, "completed").state == WAITING


def test_a_server_container_that_exits_fails_the_ready_wait(kube):
    verdict = pod_verdict(kube.api_object("pods", "server_container_exited"), "ready")
    assert verdict.state == FAILED
    assert verdict.container == "stunnel"
    assert verdict.message == "container stunnel exited with code 1"


def test_a_server_that_completed_is_not_ready(kube):
    verdict = pod_verdict(kube.api_object("pods", "completed_success"), "ready")
    assert verdict.state == FAILED
    # Even an exit code 0 is a failure for a server.
    assert verdict.message == "container transfer exited with code 0"


def test_completed_success(kube):
    pod = kube.api_object("pods", "completed_success")
    assert pod_verdict(pod, "completed").state == DONE
    assert exit_code(pod) == 0
    assert exit_codes(pod) == {"transfer": 0, "stunnel": 0}


def test_non_zero_exit_fails_fast_even_while_the_sidecar_still_runs(kube):
    pod = kube.api_object("pods", "transfer_exit23_sidecar_running")
    verdict = pod_verdict(pod, "completed")
    assert verdict.state == FAILED
    assert verdict.message == "container transfer exited with code 23"
    # Without fail_on_exit_code the pod is still finishing (the sidecar runs).
    assert pod_verdict(pod, "completed", fail_on_exit_code=False).state == WAITING


@pytest.mark.parametrize("case, code", [("completed_exit23", 23), ("completed_exit24", 24)])
def test_non_zero_exit_is_returned_not_failed_without_fail_on_exit_code(kube, case, code):
    pod = kube.api_object("pods", case)
    assert pod_verdict(pod, "completed").state == FAILED
    assert pod_verdict(pod, "completed", fail_on_exit_code=False).state == DONE
    assert exit_code(pod) == code
    assert exit_code(pod, "stunnel") == 0


def test_oomkilled_fails_even_without_fail_on_exit_code(kube):
    verdict = pod_verdict(kube.api_object("pods", "oomkilled"), "completed", False)
    assert (verdict.state, verdict.reason) == (FAILED, "OOMKilled")


def test_evicted_fails_even_without_fail_on_exit_code(kube):
    verdict = pod_verdict(kube.api_object("pods", "evicted"), "completed", False)
    assert (verdict.state, verdict.reason) == (FAILED, "Evicted")


def test_a_crash_loop_says_why_the_container_keeps_failing(kube):
    verdict = pod_verdict(kube.api_object("pods", "crash_loop_backoff"), "ready")
    assert verdict.message.startswith("back-off 1m20s restarting failed container=rsyncd")
    assert verdict.message.endswith("; last time: container rsyncd exited with code 1")
