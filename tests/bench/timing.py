"""How long a container ran, at the node clock's resolution.

The API's start and end of a container are whole seconds (as a real kubelet writes them):
a 3 s copy may show as 2 s or 4 s, too coarse to compare methods that differ by a fraction
of that. The twin clusters' node agents also append each ended container run, with its
times in full, to a log of their own (tests/clusters/node/runtime.py, CONTAINER_TIMES),
as a container runtime keeps nanoseconds. The agent sees a process end within a quarter of
a second (it polls its containers 4 times a second), which is the resolution left. The
benchmark times copies from that log, and falls back to the API's seconds when a run is not
in it.
"""

from __future__ import annotations

import json
import statistics

from clusters import harness
from clusters.node.runtime import CONTAINER_TIMES


def span(cluster, pod, container, after):
    """(started, finished) in seconds since the epoch of the last run of that container that
    started after `after` (seconds since the epoch), or None when the log has none."""
    try:
        with open(harness.DEFAULT_STATE_DIR / CONTAINER_TIMES) as fh:
            lines = fh.readlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            run = json.loads(line)
        except ValueError:
            continue
        if run.get("started", 0) < after:
            continue
        if (run.get("cluster"), run.get("pod"), run.get("container")) == (cluster, pod, container):
            return run["started"], run["finished"]
    return None


def seconds(cluster, pod, container, after, fallback=None):
    """How long the last run of that container since `after` took; fallback when it is not
    in the log."""
    found = span(cluster, pod, container, after)
    return found[1] - found[0] if found else fallback


def cpu_ticks():
    """(all, steal) ticks of the machine's CPUs since boot, from /proc/stat. Steal is the time
    the hypervisor gave this machine's virtual CPUs to someone else: on a shared host it
    varies from one day to the next, and the figures of a run with more of it are slower."""
    with open("/proc/stat") as fh:
        fields = [int(value) for value in fh.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal [guest guest_nice: already in user]
    return sum(fields[:8]), fields[7] if len(fields) > 7 else 0


def steal_percent(before, after):
    """Share of the CPU time between two cpu_ticks() readings that the hypervisor took."""
    total = after[0] - before[0]
    return round(100.0 * (after[1] - before[1]) / total, 1) if total > 0 else 0.0


def _runs_since(cluster, namespace, after):
    """Each pod of `namespace` that a node took after `after`, from the node's log: its
    containers' (started, finished) and when the node took it, in the order it was taken."""
    pods = {}
    try:
        with open(harness.DEFAULT_STATE_DIR / CONTAINER_TIMES) as fh:
            lines = fh.readlines()
    except OSError:
        return []
    for line in lines:
        try:
            run = json.loads(line)
        except ValueError:
            continue
        if (run.get("cluster"), run.get("namespace")) != (cluster, namespace):
            continue
        if run.get("runner_started", 0) < after:
            continue
        pod = pods.setdefault(run["uid"], {"took": run["runner_started"], "containers": {}})
        pod["containers"][run["container"]] = (run["started"], run["finished"])
    return sorted(pods.values(), key=lambda pod: pod["took"])


def turns(cluster, namespace, after, transfer_container, parallel):
    """Where the time of the client pods of a run went, as medians over its pods: from the node
    taking a pod to its first container's start, the copy container's run, from the copy's
    end to the pod's end (the transport sidecar stopping), and, for a pod that waited for a
    place, from the end of the pod whose place it took to the node taking it (the watch
    seeing the end and creating the next pod). None when the node's log has no pod."""
    pods = [pod for pod in _runs_since(cluster, namespace, after) if pod["containers"]]
    if not pods:
        return None
    ends = [max(end for _start, end in pod["containers"].values()) for pod in pods]
    starts, copies, stops, takes = [], [], [], []
    for index, pod in enumerate(pods):
        starts.append(min(start for start, _end in pod["containers"].values()) - pod["took"])
        copy = pod["containers"].get(transfer_container)
        if copy:
            copies.append(copy[1] - copy[0])
            stops.append(ends[index] - copy[1])
        freed = [end for end in ends[:index] if end <= pod["took"]]
        if index >= parallel and freed:
            takes.append(pod["took"] - max(freed))

    def middle(values):
        return round(statistics.median(values), 2) if values else None

    return {
        "pods": len(pods),
        "span_seconds": round(max(ends) - pods[0]["took"], 1),
        "to_start": middle(starts),
        "copy": middle(copies),
        "sidecar_stop": middle(stops),
        "next_taken": middle(takes),
    }
