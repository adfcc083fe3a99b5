"""The transfer_progress module: one snapshot per call."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from unittest import mock

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
    # An ended transfer's log is read with its Pod, a running one's when the module returns.
    client = kube.fake_client(
        [kube.instance(running), kube.instance(finished), kube.not_found()],
        logs=[
            kube.log_fixture("rclone_oneline_done.log"),
            kube.log_fixture("rsync_daemon_pull_running.log.gz"),
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


# Starting the Pods, `parallel` at a time --------------------------------------------------


def queued(name):
    definition = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}}
    return dict(name=name, pvc=name, transfer="rsync", definition=definition)


class Namespace:
    """The destination namespace as the module sees it: a Pod exists once created, and each
    read of it returns the next of its states (the last one stays). A watch of its pods
    (between two reads) sees the changes of the pods named in ``changes``, none by default:
    the timeout passes."""

    def __init__(self, kube, states, refuse=(), changes=()):
        self.kube = kube
        self.states = states  # pod name -> fixture cases of pods.yaml, one per read
        self.refuse = refuse
        self.changes = changes
        self.watches = []
        self.created = []
        self.reads = {}
        self.ended = set()
        self.running_when_created = []

    def revision(self, namespace, limit):
        meta = {"resourceVersion": "4711"}
        return self.kube.instance({"apiVersion": "v1", "kind": "PodList", "metadata": meta})

    def watch(self, namespace, resource_version, timeout):
        self.watches.append((namespace, resource_version, timeout))
        for name in self.changes:
            yield {"type": "MODIFIED", "raw_object": {"metadata": {"name": name}}}

    def create(self, resource, definition, namespace):
        name = definition["metadata"]["name"]
        if name in self.refuse:
            raise self.kube.api_error(403, 'pods "{0}" is forbidden: exceeded quota'.format(name))
        self.running_when_created.append(len(set(self.created) - self.ended))
        self.created.append(name)
        return self.kube.instance(definition)

    def get(self, resource, name, namespace):
        if name not in self.created:
            raise self.kube.not_found()
        states = self.states[name]
        case = states[min(self.reads.get(name, 0), len(states) - 1)]
        self.reads[name] = self.reads.get(name, 0) + 1
        if case.startswith("completed"):
            self.ended.add(name)
        return self.kube.instance(self.kube.api_object("pods", case))

    def client(self):
        client = self.kube.fake_client(self.get)
        client.create.side_effect = self.create
        client.resource.return_value.get.side_effect = self.revision
        client.resource.return_value.watch.side_effect = self.watch
        return client


def test_pods_start_as_places_free_up_within_one_run(kube, clock):
    namespace = Namespace(
        kube,
        {
            "a": ["transfer_running", "completed_success"],
            "b": ["transfer_running", "transfer_running", "transfer_running", "completed_success"],
            "c": ["transfer_running", "completed_success"],
        },
    )
    args = dict(ARGS, pods=[queued("a"), queued("b"), queued("c")], parallel=2, watch_seconds=30)
    result, failed = kube.run_module(transfer_progress, args, namespace.client())
    assert not failed, result
    # Two at once; c as soon as a ended, never a third at the same time.
    assert namespace.created == ["a", "b", "c"] == result["started"]
    assert namespace.running_when_created == [0, 1, 1]
    assert [entry["finished"] for entry in result["pods"]] == [True, True, True]
    assert result["changed"] is True
    # It returned once every transfer had ended, not after watch_seconds; an ended Pod is
    # not read again.
    assert clock.sleeps == [1, 1, 1, 1]
    assert namespace.reads == {"a": 2, "b": 4, "c": 2}


def test_a_pod_that_changes_is_read_at_once_not_at_the_next_poll(kube, clock):
    # The same run as above, but the watch between two reads sees one of the Pods change:
    # the next read comes at once. That is what takes a freed place within a moment.
    states = {
        "a": ["transfer_running", "completed_success"],
        "b": ["transfer_running", "transfer_running", "transfer_running", "completed_success"],
        "c": ["transfer_running", "completed_success"],
    }
    namespace = Namespace(kube, states, changes=["some-other-pod", "b"])
    args = dict(ARGS, pods=[queued("a"), queued("b"), queued("c")], parallel=2, watch_seconds=30)
    result, failed = kube.run_module(transfer_progress, args, namespace.client())
    assert not failed, result
    assert namespace.created == ["a", "b", "c"]
    assert namespace.running_when_created == [0, 1, 1]
    assert namespace.reads == {"a": 2, "b": 4, "c": 2}
    assert clock.sleeps == []
    # Each watch starts from the revision of the namespace's pods and lasts one poll.
    assert namespace.watches == [("app", "4711", 1)] * 4


def test_a_change_of_another_pod_does_not_wake_the_watch(kube, clock):
    namespace = Namespace(
        kube, {"a": ["transfer_running", "completed_success"]}, changes=["some-other-pod"]
    )
    args = dict(ARGS, pods=[queued("a")], parallel=1, watch_seconds=30)
    result, failed = kube.run_module(transfer_progress, args, namespace.client())
    assert not failed, result
    # Created at the first read, running at the second, ended at the third.
    assert clock.sleeps == [1, 1]
    assert len(namespace.watches) == 2


def test_a_watch_the_api_server_refuses_falls_back_to_the_poll(kube, clock):
    # Without the watch right (an older copy of rbac/destination.yml) the module still
    # works: it reads every second.
    namespace = Namespace(kube, {"a": ["transfer_running", "completed_success"]})
    client = namespace.client()
    client.resource.return_value.watch.side_effect = kube.api_error(403, "Forbidden")
    args = dict(ARGS, pods=[queued("a")], parallel=1, watch_seconds=30)
    result, failed = kube.run_module(transfer_progress, args, client)
    assert not failed, result
    assert [entry["finished"] for entry in result["pods"]] == [True]
    assert clock.sleeps == [1, 1]


def sidecar_stopping_for(monkeypatch, seconds):
    """The module's wall clock, `seconds` after the transfer of transfer_done_sidecar_running
    ended (its container's finishedAt)."""
    import datetime

    from ansible_collections.kubeferry.state_transfer.plugins.module_utils import progress

    ended = datetime.datetime(2024, 5, 1, 10, 1, 45, tzinfo=datetime.timezone.utc)
    now = ended + datetime.timedelta(seconds=seconds)
    monkeypatch.setattr(progress, "utcnow", lambda: now)


def test_an_ended_transfer_keeps_its_place_until_its_pod_ended(kube, clock, monkeypatch):
    # The transfer container exited; its Pod runs on while the stunnel sidecar stops. The
    # next Pod waits for that: `parallel` counts the client Pods on the cluster.
    sidecar_stopping_for(monkeypatch, 5)
    namespace = Namespace(
        kube,
        {
            "a": ["transfer_running"]
            + ["transfer_done_sidecar_running"] * 2
            + ["completed_success"],
            "b": ["transfer_running"] * 6 + ["completed_success"],
            "c": ["completed_success"],
        },
    )
    args = dict(ARGS, pods=[queued("a"), queued("b"), queued("c")], parallel=2, watch_seconds=30)
    result, failed = kube.run_module(transfer_progress, args, namespace.client())
    assert not failed, result
    assert namespace.created == ["a", "b", "c"]
    assert namespace.running_when_created == [0, 1, 1]
    # a was read twice more after its transfer ended, c created once a's Pod had ended.
    assert namespace.reads["a"] == 4
    assert [entry["finished"] for entry in result["pods"]] == [True, True, True]
    assert result["pods"][0]["phase"] == "Succeeded"


def test_a_sidecar_that_does_not_stop_gives_up_its_place_in_time(kube, clock, monkeypatch):
    sidecar_stopping_for(monkeypatch, 31)
    namespace = Namespace(
        kube, {"a": ["transfer_done_sidecar_running"], "b": ["completed_success"]}
    )
    args = dict(ARGS, pods=[queued("a"), queued("b")], parallel=1, watch_seconds=30)
    result, failed = kube.run_module(transfer_progress, args, namespace.client())
    assert not failed, result
    assert namespace.created == ["a", "b"]
    assert result["pods"][0]["phase"] == "Running"


def test_while_it_watches_a_running_transfer_s_log_is_read_once_at_the_end(kube, clock):
    # Only the snapshot returned shows progress, and a running rsync's progress is one ever
    # longer log line: reading it every second would take CPU from the copy for nothing. An
    # ended transfer's log is read when it ended (it is not read again).
    namespace = Namespace(
        kube, {"a": ["transfer_running"], "b": ["transfer_running", "completed_success"]}
    )
    client = namespace.client()
    logs = client.resource.return_value.log.get
    logs.side_effect = lambda **kwargs: mock.Mock(
        data=kube.log_fixture(
            "rsync_daemon_pull_running.log.gz"
            if kwargs["name"] == "a"
            else "rsync_progress2_stats_exit0.log.gz"
        ).encode()
    )
    args = dict(ARGS, pods=[queued("a"), queued("b")], parallel=2, watch_seconds=5)
    result, failed = kube.run_module(transfer_progress, args, client)
    assert not failed, result
    assert clock.sleeps == [1] * 5
    assert namespace.reads == {"a": 5, "b": 2}
    assert sorted(c.kwargs["name"] for c in logs.call_args_list) == ["a", "b"]
    running, ended = result["pods"]
    assert (running["finished"], running["files"], bool(running["log_tail"])) == (False, 53, True)
    assert (ended["finished"], ended["files"], ended["percent"]) == (True, 240, 100)


def test_without_watch_seconds_it_starts_what_fits_and_returns(kube, clock):
    namespace = Namespace(kube, {"a": ["pending_container_creating"]})
    args = dict(ARGS, pods=[queued("a"), queued("b")], parallel=1)
    result, failed = kube.run_module(transfer_progress, args, namespace.client())
    assert not failed, result
    assert result["started"] == ["a"]
    first, second = result["pods"]
    assert (first["queued"], first["phase"], first["terminal_failure"]) == (False, "Pending", "")
    assert (second["queued"], second["phase"], second["terminal_failure"]) == (True, "", "")
    assert clock.sleeps == []


def test_a_refused_pod_fails_alone(kube, clock):
    namespace = Namespace(kube, {"b": ["completed_success"]}, refuse=("a",))
    args = dict(ARGS, pods=[queued("a"), queued("b")], parallel=1, watch_seconds=30)
    result, failed = kube.run_module(transfer_progress, args, namespace.client())
    assert not failed, result
    refused, other = result["pods"]
    assert refused["terminal_reason"] == "CreateFailed"
    assert refused["terminal_failure"].startswith("could not create Pod a: ")
    assert "exceeded quota" in refused["terminal_failure"]
    # The next Pod took the place; the module returned at once, for the watch to decide.
    assert result["started"] == ["b"]
    assert other["phase"] == "Pending"
    assert clock.sleeps == []


def test_check_mode_starts_nothing(kube, clock):
    namespace = Namespace(kube, {})
    args = dict(ARGS, pods=[queued("a")], parallel=1)
    result, failed = kube.run_module(transfer_progress, args, namespace.client(), check_mode=True)
    assert not failed, result
    assert namespace.created == [] == result["started"]
    assert result["pods"][0]["queued"] is True


def test_an_unschedulable_pod_is_watched_until_the_time_is_up(kube, clock):
    # It may only wait for its volume: the action plugin's grace decides, at the regular
    # return; a Pod failed for good ends the run at once.
    namespace = Namespace(kube, {"a": ["unschedulable_unbound_pvc"], "b": ["oomkilled"]})
    namespace.created = ["a", "b"]
    pods = [dict(name=name, pvc=name, transfer="rsync") for name in "ab"]
    result, failed = kube.run_module(
        transfer_progress, dict(ARGS, pods=pods[:1], watch_seconds=5), namespace.client()
    )
    assert not failed, result
    assert result["pods"][0]["terminal_reason"] == "Unschedulable"
    assert clock.sleeps == [1] * 5
    result, failed = kube.run_module(
        transfer_progress, dict(ARGS, pods=pods, watch_seconds=5), namespace.client()
    )
    assert result["pods"][1]["terminal_reason"] == "OOMKilled"
    assert clock.sleeps == [1] * 5
