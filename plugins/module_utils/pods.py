# Copyright: kubeferry developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Is a Pod ready, finished, or stuck in a state that waiting will not fix?

``pod_verdict`` is a pure function of one Pod object (plus how long we have waited); the
module reads Pods and logs and hands them to it through the one waiter.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kubeferry.state_transfer.plugins.module_utils.common import (
    ModuleFailure,
    TransientError,
    tail,
    unreadable,
)
from ansible_collections.kubeferry.state_transfer.plugins.module_utils.waiter import (
    WaitFailed,
    WaitTimeout,
    wait_for,
)

# Waiting reasons the kubelet keeps retrying but that do not fix themselves.
STUCK_WAITING_REASONS = (
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "CrashLoopBackOff",
)

DONE, WAITING, FAILED = "done", "waiting", "failed"


class Verdict:
    """What one read of a Pod says: done, waiting or failed, why, and which container."""

    def __init__(self, state, reason="", message="", container=""):
        self.state = state
        self.reason = reason
        self.message = message
        self.container = container

    def __repr__(self):
        return "Verdict({0!r}, {1!r}, {2!r}, {3!r})".format(
            self.state, self.reason, self.message, self.container
        )

    def describe(self):
        text = self.reason
        if self.message:
            text = "{0}: {1}".format(text, self.message) if text else self.message
        if self.container:
            text += " (container {0})".format(self.container)
        return text


def _status(pod):
    return pod.get("status") or {}


def container_statuses(pod, init=False):
    key = "initContainerStatuses" if init else "containerStatuses"
    return _status(pod).get(key) or []


def condition(pod, kind):
    for entry in _status(pod).get("conditions") or []:
        if entry.get("type") == kind:
            return entry
    return None


def main_container(pod, container=None):
    """The container whose exit code is the Pod's: ``container`` or the first of the spec."""
    if container:
        return container
    containers = (pod.get("spec") or {}).get("containers") or []
    return containers[0].get("name", "") if containers else ""


def _terminated(status, last=False):
    state = status.get("lastState" if last else "state") or {}
    return state.get("terminated")


def exit_code(pod, container=None):
    """Exit code of the main container once it has terminated, else None."""
    name = main_container(pod, container)
    for status in container_statuses(pod):
        if status.get("name") == name:
            terminated = _terminated(status)
            return terminated.get("exitCode") if terminated else None
    return None


def exit_codes(pod):
    """{container: exit code} for the containers that have terminated."""
    codes = {}
    for status in container_statuses(pod):
        terminated = _terminated(status)
        if terminated:
            codes[status.get("name")] = terminated.get("exitCode")
    return codes


def is_ready(pod):
    ready = condition(pod, "Ready") or {}
    return _status(pod).get("phase") == "Running" and ready.get("status") == "True"


def _termination_verdict(status, terminated, init):
    kind = "init container" if init else "container"
    reason = terminated.get("reason") or "Error"
    message = "{0} {1} exited with code {2}".format(
        kind, status.get("name"), terminated.get("exitCode")
    )
    if terminated.get("message"):
        message += ": " + terminated["message"].strip()
    return Verdict(FAILED, reason, message, status.get("name"))


def _container_verdict(pod, state, fail_on_exit_code):
    """The first container problem waiting cannot fix, or None."""
    for init in (True, False):
        for status in container_statuses(pod, init=init):
            waiting = (status.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in STUCK_WAITING_REASONS:
                message = waiting.get("message", "")
                last = _terminated(status, last=True)
                if waiting["reason"] == "CrashLoopBackOff" and last:
                    # Why it keeps failing is in its last termination (exit code, message).
                    message += "; last time: " + _termination_verdict(status, last, init).message
                return Verdict(FAILED, waiting["reason"], message, status.get("name"))
            for last in (False, True):
                terminated = _terminated(status, last=last)
                if not terminated:
                    continue
                if terminated.get("reason") == "OOMKilled":
                    return Verdict(
                        FAILED,
                        "OOMKilled",
                        "container {0} ran out of memory (exit code {1}); raise its "
                        "memory limit".format(status.get("name"), terminated.get("exitCode")),
                        status.get("name"),
                    )
                if init:
                    if terminated.get("exitCode"):
                        return _termination_verdict(status, terminated, init)
                    continue
                if state == "ready":
                    # A server has no business exiting, not even with 0.
                    return _termination_verdict(status, terminated, init)
                if fail_on_exit_code and terminated.get("exitCode") and not last:
                    return _termination_verdict(status, terminated, init)
    return None


def pod_verdict(pod, state, fail_on_exit_code=True, unschedulable_grace=0, elapsed=0):
    """Verdict on one Pod for ``state`` ready or completed; ``None`` means it was deleted."""
    if pod is None:
        return Verdict(FAILED, "Deleted", "the Pod was deleted (or never created)")
    status = _status(pod)
    phase = status.get("phase") or "Pending"
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return Verdict(FAILED, "Terminating", "the Pod is being deleted")

    problem = _container_verdict(pod, state, fail_on_exit_code)
    if problem:
        return problem

    if phase == "Failed":
        if state == "completed" and not fail_on_exit_code and not status.get("reason"):
            return Verdict(DONE, "Failed", status.get("message", ""))
        return Verdict(
            FAILED,
            status.get("reason") or "Failed",
            status.get("message") or "the Pod failed",
        )
    if phase == "Succeeded":
        if state == "completed":
            return Verdict(DONE, "Completed")
        return Verdict(FAILED, "Completed", "the Pod ran to completion instead of serving")

    scheduled = condition(pod, "PodScheduled") or {}
    if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        if elapsed >= unschedulable_grace:
            return Verdict(FAILED, "Unschedulable", scheduled.get("message", ""))
        return Verdict(WAITING, "Unschedulable", scheduled.get("message", ""))

    if state == "ready" and is_ready(pod):
        return Verdict(DONE, "Ready")
    return Verdict(WAITING, *_waiting_reason(pod, phase))


def _waiting_reason(pod, phase):
    for status in container_statuses(pod, init=True) + container_statuses(pod):
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            return phase, "{0} ({1})".format(waiting["reason"], status.get("name"))
    if phase == "Running":
        ready = condition(pod, "Ready") or {}
        return phase, ready.get("message") or "not ready"
    return phase, ""


def describe_pod(pod, name, verdict, container=None):
    pod = pod or {}
    status = _status(pod)
    return dict(
        name=name,
        phase=status.get("phase") or ("" if not pod else "Pending"),
        ready=is_ready(pod) if pod else False,
        exit_code=exit_code(pod, container) if pod else None,
        exit_codes=exit_codes(pod) if pod else {},
        reason=verdict.reason,
        message=verdict.message,
        node=(pod.get("spec") or {}).get("nodeName") or "",
        log_tail=[],
    )


class PodSet:
    """The pods one wait is about: named ones, or every one a selector ever matched."""

    def __init__(self, cluster, namespace, names=None, label_selector=None):
        self.cluster = cluster
        self.namespace = namespace
        self.names = list(names or [])
        self.label_selector = label_selector

    def read(self):
        """[(name, pod or None)]: a pod that disappears stays in the list as None."""
        if not self.label_selector:
            return [(n, self.cluster.get("Pod", n, self.namespace)) for n in self.names]
        found = self.cluster.list("Pod", self.namespace, label_selector=self.label_selector)
        by_name = {p["metadata"]["name"]: p for p in found}
        for name in sorted(by_name):
            if name not in self.names:
                self.names.append(name)
        return [(n, by_name.get(n)) for n in self.names]


def verdicts(snapshot, params, elapsed):
    return [
        (
            name,
            pod,
            pod_verdict(
                pod,
                params["state"],
                params["fail_on_exit_code"],
                params["unschedulable_grace"],
                elapsed,
            ),
        )
        for name, pod in snapshot
    ]


def all_done(snapshot, params):
    """Predicate: there is at least one pod and every pod is done."""
    return bool(snapshot) and all(
        v.state == DONE for _n, _p, v in verdicts(snapshot, params, float("inf"))
    )


def first_failure(snapshot, params, elapsed):
    for name, pod, verdict in verdicts(snapshot, params, elapsed):
        if verdict.state == FAILED:
            return name, pod, verdict
    return None


def failure_reason(snapshot, params, elapsed):
    """The waiter's failure function: why the first failed pod failed, or ""."""
    found = first_failure(snapshot, params, elapsed)
    return "Pod {0} failed: {1}".format(found[0], found[2].describe()) if found else ""


def _log_tail(cluster, namespace, name, pod, container, lines):
    if pod is None or lines <= 0:
        return []
    previous = False
    for status in container_statuses(pod, init=True) + container_statuses(pod):
        if status.get("name") == container:
            waiting = (status.get("state") or {}).get("waiting") or {}
            previous = waiting.get("reason") == "CrashLoopBackOff"
    text = cluster.log(name, namespace, container=container, tail_lines=lines, previous=previous)
    return tail(text, lines)


def report(cluster, snapshot, params, elapsed, failing=None):
    """The ``pods`` list of the result, with the log tail of each pod's relevant container."""
    pods = []
    for name, pod, verdict in verdicts(snapshot, params, elapsed):
        container = verdict.container or main_container(pod or {}, params.get("container"))
        entry = describe_pod(pod, name, verdict, params.get("container"))
        if failing is None or name == failing:
            entry["log_tail"] = _log_tail(
                cluster, params["namespace"], name, pod, container, params["log_lines"]
            )
        pods.append(entry)
    return pods


def execute(cluster, params, check_mode):
    namespace = params["namespace"]
    podset = PodSet(cluster, namespace, params["names"], params["label_selector"])
    what = (
        "label selector {0}".format(params["label_selector"])
        if params["label_selector"]
        else ", ".join(params["names"])
    )

    if check_mode:
        # One read, no waiting: a --check run must not block on pods it did not create.
        snapshot = podset.read()
        if not snapshot or any(pod is None for _n, pod in snapshot):
            return dict(
                changed=False,
                pods=[],
                msg="Pods {0} in {1} do not exist yet; would wait until they are {2}".format(
                    what, namespace, params["state"]
                ),
            )
        result = dict(changed=False, pods=report(cluster, snapshot, params, 0))
        if not all_done(snapshot, params):
            result["msg"] = "Pods {0} in {1} are not {2} yet; would wait for them".format(
                what, namespace, params["state"]
            )
        return result

    try:
        snapshot, elapsed = wait_for(
            podset.read,
            lambda snap: all_done(snap, params),
            params["wait_timeout"],
            params["wait_sleep"],
            failure=lambda snap, elapsed: failure_reason(snap, params, elapsed),
            retry_on=(TransientError,),
        )
    except WaitFailed as exc:
        name, pod, verdict = first_failure(exc.last, params, exc.elapsed)
        pods = report(cluster, exc.last, params, exc.elapsed, failing=name)
        log_tail = next(p["log_tail"] for p in pods if p["name"] == name)
        msg = "Pod {0}/{1} failed: {2}".format(namespace, name, verdict.describe())
        if log_tail:
            msg += ". Last log lines{0}:\n{1}".format(
                " of " + verdict.container if verdict.container else "", "\n".join(log_tail)
            )
        raise ModuleFailure(msg, pods=pods) from exc
    except WaitTimeout as exc:
        if unreadable(exc, "Pods " + what):
            raise ModuleFailure(unreadable(exc, "Pods " + what), pods=[]) from exc
        snapshot = exc.last or []
        if not snapshot:
            raise ModuleFailure(
                "No Pod matched {0} in namespace {1} within {2:.0f} s".format(
                    what, namespace, exc.elapsed
                ),
                pods=[],
            ) from exc
        pods = report(cluster, snapshot, params, exc.elapsed)
        pending = [
            "{0} ({1})".format(name, verdict.describe())
            for name, _pod, verdict in verdicts(snapshot, params, exc.elapsed)
            if verdict.state != DONE
        ]
        raise ModuleFailure(
            "Timed out after {0:.0f} s waiting for Pods in {1} to be {2}: {3}".format(
                exc.elapsed, namespace, params["state"], ", ".join(pending)
            ),
            pods=pods,
        ) from exc
    return dict(changed=False, pods=report(cluster, snapshot, params, elapsed))
