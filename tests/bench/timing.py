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
