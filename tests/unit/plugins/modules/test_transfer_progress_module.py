"""The transfer_progress module: one snapshot per call."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kubeferry.state_transfer.plugins.modules import transfer_progress

ARGS = dict(
    namespace="app",
    pods=[
        dict(name="kubeferry-3f9c2a1b-data-0", pvc="data-0", transfer="rsync"),
        dict(name="kubeferry-3f9c2a1b-logs", pvc="logs", transfer="rclone"),
        dict(name="kubeferry-3f9c2a1b-gone", pvc="gone", transfer="rsync"),
    ],
    log_lines=3,
)


def test_snapshot(kube):
    running = kube.api_object("pods", "transfer_running")
    finished = kube.api_object("pods", "completed_success")
    client = kube.fake_client(
        [kube.instance(running), kube.instance(finished), kube.not_found()],
        logs=[
            kube.log_fixture("rsync_daemon_pull_running.log.gz"),
            kube.log_fixture("rclone_oneline_done.log"),
        ],
    )
    result, failed = kube.run_module(transfer_progress, ARGS, client)
    assert not failed
    assert result["changed"] is False
    data, logs, gone = result["pods"]
    assert (data["pvc"], data["phase"], data["finished"], data["files"]) == (
        "data-0",
        "Running",
        False,
        53,
    )
    assert (logs["finished"], logs["exit_code"], logs["percent"], logs["files"]) == (
        True,
        0,
        100,
        240,
    )
    assert logs["finished_at"] == "2024-05-01T10:01:45Z"
    assert len(logs["log_tail"]) == 3
    assert gone["terminal_failure"] == "Pod kubeferry-3f9c2a1b-gone not found (deleted?)"
    queries = [
        dict(c.kwargs["query_params"]) for c in client.resource.return_value.log.get.call_args_list
    ]
    assert queries == [{"container": "transfer", "tailLines": 3}] * 2


def test_no_log_is_read_before_the_container_starts(kube):
    creating = kube.api_object("pods", "pending_container_creating")
    client = kube.fake_client([kube.instance(creating)])
    args = dict(ARGS, pods=ARGS["pods"][:1])
    result, failed = kube.run_module(transfer_progress, args, client)
    assert not failed
    assert result["pods"][0]["phase"] == "Pending"
    assert result["pods"][0]["bytes"] is None
    assert not client.resource.return_value.log.get.called


def test_a_failed_read_is_not_a_failed_transfer(kube):
    client = kube.fake_client([kube.api_error(503, "Service Unavailable")])
    result, failed = kube.run_module(transfer_progress, dict(ARGS, pods=ARGS["pods"][:1]), client)
    assert not failed
    (entry,) = result["pods"]
    assert entry["phase"] == "Unknown"
    assert entry["terminal_failure"] == ""
    assert "Service Unavailable" in entry["read_error"]


def test_pods_are_validated(kube):
    args = dict(ARGS, pods=[dict(name="x", pvc="y", transfer="scp")])
    result, failed = kube.run_module(transfer_progress, args, kube.fake_client([]))
    assert failed
    assert "transfer" in result["msg"] and "rsync, rclone" in result["msg"]
