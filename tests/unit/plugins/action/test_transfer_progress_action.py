"""The transfer_progress action plugin: live lines, stop conditions, summary, report."""

import json
from unittest import mock

import pytest
from ansible.playbook.task import Task

from ansible_collections.kubeferry.state_transfer.plugins.action import transfer_progress
from ansible_collections.kubeferry.state_transfer.plugins.module_utils.progress import (
    pod_progress,
    queued_entry,
    worth_returning,
)
from ansible_collections.kubeferry.state_transfer.plugins.modules import (
    transfer_progress as progress_module,
)

MIB = 1024 * 1024
SPECS = [
    dict(name="kubeferry-3f9c2a1b-data-0", pvc="data-0", transfer="rsync", container="transfer"),
    dict(name="kubeferry-3f9c2a1b-logs", pvc="logs", transfer="rsync", container="transfer"),
]


def entry(kube, spec, pod_case, log_name=None):
    pod = kube.api_object("pods", pod_case) if pod_case else None
    log = kube.log_fixture(log_name) if log_name else ""
    return pod_progress(pod, spec, log, 5)


def make_action(args, check_mode=False):
    task = mock.MagicMock(spec=Task)
    task.args = args
    task.check_mode = check_mode
    task.async_val = 0
    task.action = "kubeferry.state_transfer.transfer_progress"
    connection = mock.MagicMock()
    connection._shell.tmpdir = None
    action = transfer_progress.ActionModule(
        task, connection, mock.MagicMock(), loader=None, templar=None, shared_loader_obj=None
    )
    action._remove_tmp_path = mock.MagicMock()
    return action


def waiting_module(clock, side_effect=None, return_value=None):
    """_execute_module stand-in: like the module, each run watches for its watch_seconds (on
    the fake clock, which records them in clock.sleeps) unless its answer is worth returning
    at once (every transfer ended, one failed)."""
    answers = iter(side_effect) if side_effect is not None else None

    def run(module_name, module_args, task_vars):
        answer = next(answers) if answers is not None else return_value
        if module_args.get("watch_seconds") and not worth_returning(answer.get("pods") or []):
            clock.sleep(module_args["watch_seconds"])
        return answer

    return mock.MagicMock(side_effect=run)


@pytest.fixture
def display(monkeypatch):
    fake = mock.MagicMock()
    monkeypatch.setattr(transfer_progress, "display", fake)
    return fake


def lines(display):
    return [c.args[0] for c in display.display.call_args_list]


BASE = dict(
    namespace="app", pods=SPECS, kubeconfig="/tmp/destination.kubeconfig", context="destination"
)


def test_loops_prints_progress_and_summarises(kube, clock, display):
    snapshots = [
        dict(
            pods=[
                entry(kube, SPECS[0], "pending_container_creating"),
                entry(kube, SPECS[1], "transfer_running"),
            ]
        ),
        dict(
            pods=[
                entry(kube, SPECS[0], "transfer_running", "rsync_daemon_pull_running.log.gz"),
                entry(kube, SPECS[1], "transfer_running"),
            ]
        ),
        dict(
            pods=[
                entry(kube, SPECS[0], "completed_success", "rsync_progress2_stats_exit0.log.gz"),
                entry(kube, SPECS[1], "completed_exit24", "rsync_exit24_vanished.log.gz"),
            ]
        ),
    ]
    action = make_action(dict(BASE, interval=15, log_lines=5))
    action._execute_module = waiting_module(clock, side_effect=snapshots)
    result = action.run(task_vars={})

    assert not result.get("failed"), result
    # A snapshot per interval, however soon a transfer may end (ETA 0:00:00): the module's
    # watch returns as soon as the last one ended.
    assert clock.sleeps == [15, 15]
    # The module gets the connection options (module_defaults land in task args) but not
    # the plugin's own options.
    call = action._execute_module.call_args
    assert call.kwargs["module_name"] == "kubeferry.state_transfer.transfer_progress"
    assert call.kwargs["module_args"] == dict(
        namespace="app",
        pods=SPECS,
        kubeconfig="/tmp/destination.kubeconfig",
        context="destination",
        log_lines=5,
        watch_seconds=15,
    )
    assert lines(display) == [
        "data-0: waiting (Pending)",
        "logs: waiting (Running)",
        "data-0: 0% 283 B, 92.1 KiB/s, ETA 0:00:00, 53 files",
        "data-0: 100% 234.6 MiB of 234.6 MiB, 52.2 MiB/s, 240 files (finished, exit code 0)",
        "logs: 100% 5.7 MiB of 5.7 MiB, 868.7 KiB/s, 30 files (finished, exit code 24)",
    ]
    data, logs = result["summary"]
    assert (data["pvc"], data["pod"], data["state"], data["exit_code"]) == (
        "data-0",
        "kubeferry-3f9c2a1b-data-0",
        "success",
        0,
    )
    assert (data["bytes"], data["files"], data["duration_seconds"]) == (246000692, 240, 100.0)
    assert data["rate_bytes_per_second"] == 2460006.9
    assert logs["state"] == "warning"
    assert logs["message"].startswith("rsync exit code 24: some files vanished")
    assert result["msg"] == "2 transfer(s) finished"
    assert result["changed"] is True  # files were copied
    action._remove_tmp_path.assert_called_once()


def test_a_run_that_copied_nothing_is_not_a_change(kube, clock, display):
    done = [
        entry(kube, SPECS[0], "completed_success", "rsync_no_change.log.gz"),
        entry(kube, SPECS[1], "completed_success", "rsync_no_change.log.gz"),
    ]
    action = make_action(dict(BASE))
    action._execute_module = waiting_module(clock, return_value=dict(pods=done))
    result = action.run(task_vars={})
    assert not result.get("failed"), result
    assert result["changed"] is False
    assert [row["files"] for row in result["summary"]] == [0, 0]

    # One PVC with a deleted file (mirror) is enough for the task to be changed.
    done[1] = entry(kube, SPECS[1], "completed_success", "rsync_mirror_deleted.log.gz")
    action = make_action(dict(BASE))
    action._execute_module = waiting_module(clock, return_value=dict(pods=done))
    assert action.run(task_vars={})["changed"] is True


def test_a_terminal_failure_stops_the_watch_and_fails_the_task(kube, clock, display):
    snapshots = [
        dict(pods=[entry(kube, SPECS[0], "transfer_running"), entry(kube, SPECS[1], "oomkilled")]),
    ]
    action = make_action(dict(BASE))
    action._execute_module = waiting_module(clock, side_effect=snapshots)
    result = action.run(task_vars={})
    assert result["failed"] is True
    data, logs = result["summary"]
    assert logs["state"] == "failed" and logs["message"].startswith("OOMKilled")
    assert data["state"] == "failed"
    assert data["message"] == "did not finish: the watch stopped when logs failed"
    assert "logs: OOMKilled" in result["msg"]
    assert clock.sleeps == []


def test_exit_23_fails_unless_fail_on_failure_is_off(kube, clock, display):
    snapshot = dict(pods=[entry(kube, SPECS[0], "completed_exit23", "rsync_exit23.log.gz")])
    action = make_action(dict(BASE, pods=SPECS[:1]))
    action._execute_module = waiting_module(clock, return_value=snapshot)
    result = action.run(task_vars={})
    assert result["failed"] is True
    assert result["msg"].startswith("data-0: rsync exit code 23: partial transfer due to error")

    action = make_action(dict(BASE, pods=SPECS[:1], fail_on_failure=False))
    action._execute_module = waiting_module(clock, return_value=snapshot)
    result = action.run(task_vars={})
    assert not result.get("failed")
    assert result["summary"][0]["state"] == "failed"


def test_unschedulable_within_grace_keeps_watching(kube, clock, display):
    stuck = dict(pods=[entry(kube, SPECS[0], "unschedulable_unbound_pvc")])
    done = dict(pods=[entry(kube, SPECS[0], "completed_success")])
    action = make_action(dict(BASE, pods=SPECS[:1], interval=10, unschedulable_grace=30))
    action._execute_module = waiting_module(clock, side_effect=[stuck, stuck, done])
    result = action.run(task_vars={})
    assert result["summary"][0]["state"] == "success"

    # A pending pod is read every 10 s: the read at 20 s is past a 15 s grace.
    action = make_action(dict(BASE, pods=SPECS[:1], interval=10, unschedulable_grace=15))
    action._execute_module = waiting_module(clock, side_effect=[stuck] * 9 + [done])
    result = action.run(task_vars={})
    assert result["summary"][0]["state"] == "failed"
    assert result["summary"][0]["message"].startswith("Unschedulable: 0/3 nodes are available")


def test_wait_timeout(kube, clock, display):
    long_copy = entry(kube, SPECS[0], "transfer_running", "rsync_daemon_pull_running.log.gz")
    long_copy["eta"] = 3600
    running = dict(pods=[long_copy])
    action = make_action(dict(BASE, pods=SPECS[:1], interval=10, wait_timeout=25))
    action._execute_module = waiting_module(clock, return_value=running)
    result = action.run(task_vars={})
    assert result["failed"] is True
    assert (
        result["summary"][0]["message"] == "did not finish: still running after wait_timeout (25 s)"
    )
    assert clock.sleeps == [10, 10, 5]
    # The same line is not printed again and again.
    assert lines(display) == ["data-0: 0% 283 B, 92.1 KiB/s, ETA 1:00:00, 53 files"]


def test_a_snapshot_per_interval_whatever_the_eta_and_the_end_at_once(kube, clock, display):
    # A copy that may end any moment (ETA 0:00:00) gets no quicker snapshots: each is a module
    # run, about a CPU second taken from the copies. Its end is seen at once all the same: the
    # module watching at that moment returns.
    def running(size):
        line = "  {0:,}  99%   12.34MB/s    0:00:00 (xfr#3, to-chk=1/5)".format(size)
        pod = entry(kube, SPECS[0], "transfer_running")
        pod.update(pod_progress(kube.api_object("pods", "transfer_running"), SPECS[0], line, 5))
        return dict(pods=[pod])

    done = dict(
        pods=[entry(kube, SPECS[0], "completed_success", "rsync_progress2_stats_exit0.log.gz")]
    )
    snapshots = [running(1000 * n) for n in range(1, 4)] + [done]
    action = make_action(dict(BASE, pods=SPECS[:1], interval=10))
    action._execute_module = waiting_module(clock, side_effect=snapshots)
    result = action.run(task_vars={})
    assert clock.sleeps == [10] * 3
    assert action._execute_module.call_count == 4
    shown = lines(display)
    assert [line.split(",")[0] for line in shown[:3]] == [
        "data-0: 99% 1000 B of 1010 B",
        "data-0: 99% 2.0 KiB of 2.0 KiB",
        "data-0: 99% 2.9 KiB of 3.0 KiB",
    ]
    assert shown[3].endswith("(finished, exit code 0)")
    assert len(shown) == 4
    assert result["summary"][0]["state"] == "success"


def test_module_failure_is_returned_as_is(kube, clock, display):
    action = make_action(dict(BASE))
    action._execute_module = waiting_module(
        clock,
        return_value=dict(
            failed=True, msg="Could not create API client: Invalid kube-config file."
        ),
    )
    result = action.run(task_vars={})
    assert result["failed"] is True
    assert result["msg"] == "Could not create API client: Invalid kube-config file."


def test_report_path_writes_json(kube, clock, display, tmp_path):
    snapshot = dict(
        pods=[entry(kube, SPECS[0], "completed_success", "rsync_progress2_stats_exit0.log.gz")]
    )
    path = tmp_path / "reports" / "run.json"
    action = make_action(dict(BASE, pods=SPECS[:1], report_path=str(path)))
    action._execute_module = waiting_module(clock, return_value=snapshot)
    result = action.run(task_vars={})
    report = json.loads(path.read_text())
    assert report["runs"] == result["summary"]
    assert report["namespace"] == "app"
    assert report["runs"][0]["state"] == "success"
    assert report["stopped_because"] == ""


def test_invalid_plugin_option(kube, clock, display):
    action = make_action(dict(BASE, interval="often"))
    with pytest.raises(Exception, match="interval"):
        action.run(task_vars={})


def test_check_mode_watches_nothing(kube, clock, display):
    action = make_action(dict(BASE), check_mode=True)
    action._execute_module = mock.MagicMock()
    result = action.run(task_vars={})
    assert result["summary"] == []
    assert result["msg"] == "check mode: would watch 2 transfer(s)"
    assert not action._execute_module.called


def test_the_action_plugin_splits_off_exactly_the_documented_watch_options():
    # Here, not with the module's tests: ansible-test runs those where only what a module may
    # import (ansible.module_utils) can be imported, and the action plugin imports ansible.errors.
    spec = progress_module.argspec()
    for option, definition in transfer_progress.WATCH_SPEC.items():
        assert spec[option] == definition


# Pods the watch starts, `parallel` at a time (pods[].definition) -----------------------------


def to_start(name):
    return dict(
        name=name,
        pvc=name,
        transfer="rsync",
        container="transfer",
        definition={"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}},
    )


def test_started_pods_are_only_read_and_one_failure_does_not_stop_the_others(kube, clock, display):
    a, b, c = (to_start(name) for name in "abc")
    snapshots = [
        dict(
            started=["a"],
            pods=[entry(kube, a, "pending_container_creating")]
            + [queued_entry(b), queued_entry(c)],
        ),
        dict(
            started=["b"],
            pods=[
                entry(kube, a, "oomkilled"),
                entry(kube, b, "pending_container_creating"),
                queued_entry(c),
            ],
        ),
        dict(
            started=["c"],
            pods=[entry(kube, b, "completed_success"), entry(kube, c, "transfer_running")],
        ),
        dict(pods=[entry(kube, c, "completed_success")]),
    ]
    action = make_action(dict(BASE, pods=[a, b, c], parallel=1, fail_on_failure=False))
    action._execute_module = waiting_module(clock, side_effect=snapshots)
    result = action.run(task_vars={})

    sent = [call.kwargs["module_args"] for call in action._execute_module.call_args_list]
    # A started Pod is passed without its definition (never created twice); a failed or
    # ended one is not passed again.
    assert [[(pod["name"], "definition" in pod) for pod in args["pods"]] for args in sent] == [
        [("a", True), ("b", True), ("c", True)],
        [("a", False), ("b", True), ("c", True)],
        [("b", False), ("c", True)],
        [("c", False)],
    ]
    assert all(args["parallel"] == 1 for args in sent)
    assert not result.get("failed"), result
    assert [row["state"] for row in result["summary"]] == ["failed", "success", "success"]
    assert result["summary"][0]["message"].startswith("OOMKilled")
    assert result["msg"].startswith("a: OOMKilled")
    # A Pod that waits for a place prints nothing until it is created.
    assert [line.split(":")[0] for line in lines(display)] == ["a", "a", "b", "b", "c", "c"]


def test_wait_timeout_counts_from_each_pods_creation(kube, clock, display):
    late = to_start("late")
    stuck = dict(SPECS[0])
    long_copy = entry(kube, stuck, "transfer_running", "rsync_daemon_pull_running.log.gz")
    long_copy["eta"] = 3600

    def module(module_name, module_args, task_vars):
        clock.sleep(module_args.get("watch_seconds", 0))
        names = [pod["name"] for pod in module_args["pods"]]
        if stuck["name"] in names:  # the place is taken until the first copy times out
            return dict(pods=[long_copy, queued_entry(late)])
        if "definition" in module_args["pods"][0]:
            return dict(started=["late"], pods=[entry(kube, late, "transfer_running")])
        return dict(pods=[entry(kube, late, "completed_success")])

    action = make_action(
        dict(BASE, pods=[stuck, late], parallel=1, wait_timeout=25, fail_on_failure=False)
    )
    action._execute_module = mock.MagicMock(side_effect=module)
    result = action.run(task_vars={})
    first, second = result["summary"]
    assert first["message"] == "did not finish: still running after wait_timeout (25 s)"
    # Started at about 26 s, it had its own 25 s: past the first one's limit, it succeeded.
    assert second["state"] == "success"
    assert clock.elapsed > 25


def test_a_pod_that_is_never_created_ends_the_watch_in_bounded_time(kube, clock, display):
    # The API server keeps failing (the module leaves the Pod queued and retries): the watch
    # ends once every Pod could have taken its whole wait_timeout, here 2 rounds of 1.
    first, second = to_start("first"), to_start("second")
    action = make_action(
        dict(BASE, pods=[first, second], parallel=1, wait_timeout=30, fail_on_failure=False)
    )
    action._execute_module = waiting_module(
        clock, return_value=dict(pods=[queued_entry(first), queued_entry(second)])
    )
    result = action.run(task_vars={})
    assert 60 <= clock.elapsed <= 62
    assert [row["message"] for row in result["summary"]] == [
        "did not start: its Pod was not created within 60 s"
    ] * 2
    assert lines(display) == []


def test_an_ended_transfer_is_asked_about_until_its_pod_ended_while_pods_wait(
    kube, clock, display, monkeypatch
):
    # The module frees a place when the Pod ended, not when its transfer container did (the
    # stunnel sidecar stops a second later): the watch must keep passing such a Pod while
    # others wait for a place, and may drop it once none does.
    import datetime

    from ansible_collections.kubeferry.state_transfer.plugins.module_utils import progress

    ended = datetime.datetime(2024, 5, 1, 10, 1, 45, tzinfo=datetime.timezone.utc)
    monkeypatch.setattr(progress, "utcnow", lambda: ended + datetime.timedelta(seconds=2))
    a, b, c = (to_start(name) for name in "abc")
    snapshots = [
        dict(
            started=["a"],
            pods=[entry(kube, a, "transfer_running"), queued_entry(b), queued_entry(c)],
        ),
        dict(
            pods=[entry(kube, a, "transfer_done_sidecar_running"), queued_entry(b), queued_entry(c)]
        ),
        dict(
            started=["b"],
            pods=[
                entry(kube, a, "completed_success"),
                entry(kube, b, "transfer_done_sidecar_running"),
                queued_entry(c),
            ],
        ),
        dict(
            started=["c"],
            pods=[
                entry(kube, b, "completed_success"),
                entry(kube, c, "transfer_done_sidecar_running"),
            ],
        ),
    ]
    action = make_action(dict(BASE, pods=[a, b, c], parallel=1))
    action._execute_module = waiting_module(clock, side_effect=snapshots)
    result = action.run(task_vars={})
    sent = [call.kwargs["module_args"] for call in action._execute_module.call_args_list]
    # a's transfer ended at the second call; it is asked about until its Pod ended. c's Pod
    # still winds down at the end, but nothing waits for its place: the watch is over.
    assert [[pod["name"] for pod in args["pods"]] for args in sent] == [
        ["a", "b", "c"],
        ["a", "b", "c"],
        ["a", "b", "c"],
        ["b", "c"],
    ]
    assert not result.get("failed"), result
    assert [row["state"] for row in result["summary"]] == ["success"] * 3
