# Copyright: kubeferry developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Progress of a running copy, read from the transfer program's own log lines.

rsync: ``--info=progress2`` lines (redrawn with carriage returns) and the ``--stats`` block
it prints at the end. rclone: the ``--stats`` blocks of ``-v`` (the one-line form is read
too, but it leaves out the file count once nothing is in flight, so the role uses blocks).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re

from ansible_collections.kubeferry.state_transfer.plugins.module_utils.common import (
    ModuleFailure,
    TransientError,
    split_lines,
    tail,
)
from ansible_collections.kubeferry.state_transfer.plugins.module_utils.exit_codes import (
    FAILED as STATE_FAILED,
)
from ansible_collections.kubeferry.state_transfer.plugins.module_utils.exit_codes import (
    classify_exit,
)
from ansible_collections.kubeferry.state_transfer.plugins.module_utils.pods import (
    FAILED,
    container_statuses,
    pod_verdict,
)
from ansible_collections.kubeferry.state_transfer.plugins.module_utils.waiter import (
    WaitTimeout,
    wait_for,
)

# rsync prints rates in units of 1024 ("kB/s" is KiB/s); with -h its byte counts take
# K/M/G/T suffixes.
_RSYNC_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}
_NUM = r"[\d,]+(?:\.\d+)?[KMGTP]?"

RSYNC_PROGRESS = re.compile(
    r"^\s*(?P<bytes>" + _NUM + r")\s+(?P<percent>\d+)%\s+"
    r"(?P<rate>[\d.]+)(?P<unit>[kKMGTP]?B)/s\s+"
    r"(?P<h>\d+):(?P<m>\d\d):(?P<s>\d\d)"
    r"(?:\s+\(xfr#(?P<xfr>\d+),\s+(?:ir|to)-chk=(?P<left>\d+)/(?P<total>\d+)\))?"
)
RSYNC_STATS = {
    "total_files": re.compile(r"^Number of files:\s+(" + _NUM + ")"),
    "files": re.compile(r"^Number of regular files transferred:\s+(" + _NUM + ")"),
    "total_bytes": re.compile(r"^Total file size:\s+(" + _NUM + ") bytes"),
    "bytes": re.compile(r"^Total transferred file size:\s+(" + _NUM + ") bytes"),
    # Entries new on the destination (directories and links too) and, with --delete, removed.
    "created": re.compile(r"^Number of created files:\s+(" + _NUM + ")"),
    "deleted": re.compile(r"^Number of deleted files:\s+(" + _NUM + ")"),
}
RSYNC_SUMMARY = re.compile(
    r"^sent\s+(" + _NUM + r") bytes\s+received\s+(" + _NUM + r") bytes\s+([\d,.]+) bytes/sec"
)

# rclone: binary units; rclone < 1.56 wrote "kBytes"/"MBytes" for the same 1024 steps.
_RCLONE_UNITS = {
    "B": 1,
    "Bytes": 1,
    "KiB": 1024,
    "kBytes": 1024,
    "MiB": 1024**2,
    "MBytes": 1024**2,
    "GiB": 1024**3,
    "GBytes": 1024**3,
    "TiB": 1024**4,
    "TBytes": 1024**4,
    "PiB": 1024**5,
    "PBytes": 1024**5,
}
_SIZE = r"(?P<{0}>[\d.]+)\s*(?P<{0}_unit>[kKMGTP]?(?:i?B|Bytes))"
RCLONE_BYTES = re.compile(
    r"(?:Transferred:|INFO\s*:)\s*"
    + _SIZE.format("done")
    + r"\s*/\s*"
    + _SIZE.format("total")
    + r",\s*(?:(?P<percent>\d+)%|-),\s*"
    + _SIZE.format("rate")
    + r"/s,\s*ETA\s*(?P<eta>\S+)"
    r"(?:\s*\(xfr#(?P<xfr>\d+)/(?P<xfr_total>\d+)\))?"
)
# Only in a block where rclone sync deleted something: "Deleted: 3 (files), 1 (dirs)".
RCLONE_DELETED = re.compile(r"Deleted:\s*(?P<files>\d+)\s*\(files\),\s*(?P<dirs>\d+)\s*\(dirs\)")
RCLONE_FILES = re.compile(r"Transferred:\s*(?P<done>\d+)\s*/\s*(?P<total>\d+),\s*(?:\d+%|-)\s*$")
# The last line of a block of stats: a block without a files line has transferred none.
RCLONE_BLOCK_END = re.compile(r"^Elapsed time:")
# Retries after a broken connection: rsync-client.sh's lines (each retry, then the total),
# rclone's "Attempt 2/5 failed with 1 errors ..." and "Attempt 3/5 succeeded".
RSYNC_RETRY = re.compile(r"kubeferry: (?:rsync exit code \d+ \(connection\); retry|retries:) (\d+)")
RCLONE_ATTEMPT = re.compile(r"Attempt (\d+)/(\d+) (failed|succeeded)")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|y|w|d|h|m|s)")
_DURATION_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_SECONDS["y"] = 365 * 86400


def rsync_number(text):
    """'1,234,567' -> 1234567; '3.01M' (rsync -h) -> 3156213."""
    text = text.replace(",", "")
    unit = text[-1] if text[-1:].isalpha() else ""
    value = float(text[:-1] if unit else text)
    return int(round(value * _RSYNC_UNITS[unit.upper()]))


def rclone_size(value, unit):
    return int(round(float(value) * _RCLONE_UNITS.get(unit, 1)))


def go_duration(text):
    """rclone's ETA ('1h2m3s', '45s', '-') in seconds; None when unknown."""
    parts = _DURATION_PART.findall(text or "")
    if not parts:
        return None
    return int(round(sum(float(n) * _DURATION_SECONDS[unit] for n, unit in parts)))


def empty_progress():
    return dict(
        bytes=None,
        total_bytes=None,
        files=None,
        total_files=None,
        percent=None,
        rate=None,
        eta=None,
        created=None,
        deleted=None,
        retries=0,
        complete=False,
    )


def parse_rsync(text):
    """Progress from rsync's log: the last progress2 line, then the --stats block if any."""
    found = empty_progress()
    for line in split_lines(text):
        match = RSYNC_RETRY.search(line)
        if match:
            found["retries"] = max(found["retries"], int(match.group(1)))
            continue
        match = RSYNC_PROGRESS.match(line)
        if match:
            found["bytes"] = rsync_number(match.group("bytes"))
            found["percent"] = int(match.group("percent"))
            found["rate"] = int(
                round(float(match.group("rate")) * _RSYNC_UNITS[match.group("unit")[0].upper()])
            )
            seconds = int(match.group("h")) * 3600 + int(match.group("m")) * 60
            seconds += int(match.group("s"))
            # The time column is the ETA while running and the elapsed time at 100 %.
            found["eta"] = seconds if found["percent"] < 100 else 0
            if match.group("xfr"):
                found["files"] = int(match.group("xfr"))
                found["total_files"] = int(match.group("total"))
            if found["percent"]:
                found["total_bytes"] = int(found["bytes"] * 100 / found["percent"])
            continue
        line = line.strip()
        for key, pattern in RSYNC_STATS.items():
            match = pattern.match(line)
            if match:
                found[key] = rsync_number(match.group(1))
                found["complete"] = True
        match = RSYNC_SUMMARY.match(line)
        if match:
            found["rate"] = int(float(match.group(3).replace(",", "")))
    if found["complete"]:
        found["percent"], found["eta"] = 100, 0
    return found


def parse_rclone(text):
    """Progress from rclone's -v stats lines (one-line or block form)."""
    found = empty_progress()
    block_counted_files = False
    for line in split_lines(text):
        match = RCLONE_ATTEMPT.search(line)
        if match:
            attempt, attempts = int(match.group(1)), int(match.group(2))
            # A failed attempt is retried unless it was the last one.
            done = attempt if match.group(3) == "failed" and attempt < attempts else attempt - 1
            found["retries"] = max(found["retries"], done)
            continue
        if RCLONE_BLOCK_END.match(line):
            if not block_counted_files:  # rclone leaves the line out while it is 0 of 0
                found["files"] = found["total_files"] = 0
            block_counted_files = False
            continue
        match = RCLONE_BYTES.search(line)
        if match:
            found["bytes"] = rclone_size(match.group("done"), match.group("done_unit"))
            found["total_bytes"] = rclone_size(match.group("total"), match.group("total_unit"))
            percent = match.group("percent")
            found["percent"] = int(percent) if percent is not None else None
            found["rate"] = rclone_size(match.group("rate"), match.group("rate_unit"))
            found["eta"] = go_duration(match.group("eta"))
            if match.group("xfr"):
                found["files"] = int(match.group("xfr"))
                found["total_files"] = int(match.group("xfr_total"))
            elif found["total_files"] and found["bytes"] == found["total_bytes"]:
                # The one-line form drops "(xfr#n/m)" once nothing is in flight: all done.
                found["files"] = found["total_files"]
            continue
        match = RCLONE_DELETED.search(line)
        if match:
            found["deleted"] = int(match.group("files")) + int(match.group("dirs"))
            continue
        match = RCLONE_FILES.search(line)
        if match:
            found["files"] = int(match.group("done"))
            found["total_files"] = int(match.group("total"))
            block_counted_files = True
    return found


PARSERS = {"rsync": parse_rsync, "rclone": parse_rclone}

# Options of the transfer_progress action plugin (the watch loop). The module accepts and
# ignores them, so that one argument spec documents the task.
WATCH_SPEC = dict(
    wait_timeout=dict(type="int", default=86400),
    interval=dict(type="int", default=10),
    unschedulable_grace=dict(type="int", default=30),
    fail_on_failure=dict(type="bool", default=True),
    report_path=dict(type="path"),
)


def _container_status(pod, container):
    for status in container_statuses(pod):
        if status.get("name") == container:
            return status
    return {}


def _entry(spec):
    return dict(
        name=spec["name"],
        pvc=spec["pvc"],
        transfer=spec["transfer"],
        phase="",
        finished=False,
        exit_code=None,
        started_at="",
        finished_at="",
        log_tail=[],
        terminal_failure="",
        terminal_reason="",
    )


def queued_entry(spec):
    """A Pod the watch has yet to create: it waits for a place, it has not failed."""
    entry = _entry(spec)
    entry.update(empty_progress())
    entry.pop("complete", None)
    entry["queued"] = True
    return entry


def log_progress(spec, log_text, log_lines):
    """What a transfer container's log tells: its progress and last lines."""
    progress = PARSERS[spec["transfer"]](log_text or "")
    progress.pop("complete")
    progress["log_tail"] = tail(log_text or "", log_lines)
    return progress


def pod_progress(pod, spec, log_text, log_lines):
    """One transfer pod's state and progress, as the module returns it."""
    entry = _entry(spec)
    entry.update(log_progress(spec, log_text, log_lines))
    if pod is None:
        entry["terminal_failure"] = "Pod {0} not found (deleted?)".format(spec["name"])
        entry["terminal_reason"] = "Deleted"
        return entry
    phase = (pod.get("status") or {}).get("phase") or "Pending"
    entry["phase"] = phase
    state = _container_status(pod, spec["container"]).get("state") or {}
    terminated = state.get("terminated")
    running = state.get("running")
    if terminated:
        entry["exit_code"] = terminated.get("exitCode")
        entry["started_at"] = terminated.get("startedAt") or ""
        entry["finished_at"] = terminated.get("finishedAt") or ""
    elif running:
        entry["started_at"] = running.get("startedAt") or ""
    entry["finished"] = bool(terminated) or phase in ("Succeeded", "Failed")
    # Exit codes are the summary's business; here only what no exit code can explain.
    verdict = pod_verdict(pod, "completed", fail_on_exit_code=False)
    if verdict.state == FAILED:
        entry["terminal_failure"] = verdict.describe()
        entry["terminal_reason"] = verdict.reason
    return entry


def is_running(entry):
    """The transfer container runs: its log still grows."""
    return bool(entry.get("started_at")) and not entry.get("finished")


# Seconds a Pod may go on running after its transfer container ended (its transport sidecar
# stops within a fifth of a second of the transfer's done marker) before its place is given to the
# next Pod anyway: a sidecar that does not stop must not hold up the queue.
SIDECAR_STOP_SECONDS = 30


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def winding_down(entry):
    """Whether the transfer ended but its Pod has not yet: the transport sidecar is stopping.
    Such a Pod still runs on a node, so it still counts against ``parallel``."""
    if not entry.get("finished") or entry.get("phase") in ("Succeeded", "Failed", ""):
        return False
    ended = parse_time(entry.get("finished_at"))
    return ended is None or (utcnow() - ended).total_seconds() < SIDECAR_STOP_SECONDS


def occupies_a_place(entry):
    """Whether a created Pod counts against ``parallel``: its Pod still runs (a transfer that
    ended keeps its place until its sidecar stopped too) and has not failed for good (an
    unschedulable Pod may only wait for its volume to be provisioned)."""
    if entry.get("queued"):
        return False
    if entry.get("finished"):
        return winding_down(entry)
    return not entry.get("terminal_failure") or entry.get("terminal_reason") == "Unschedulable"


def is_final(entry):
    """A state no later read changes: the transfer ended, or its Pod could not be created."""
    return bool(entry and (entry.get("finished") or entry.get("terminal_reason") == "CreateFailed"))


def _phase(cluster, spec, params, last):
    """The phase of a Pod whose transfer ended: only whether the Pod ended too matters."""
    try:
        pod = cluster.get("Pod", spec["name"], params["namespace"])
    except TransientError:
        return last  # the next poll reads it again
    return ((pod or {}).get("status") or {}).get("phase") or "Failed"  # deleted: gone too


def _log(cluster, spec, params):
    """The last ``log_lines`` of a transfer container's log."""
    return cluster.log(
        spec["name"],
        params["namespace"],
        container=spec["container"],
        tail_lines=params["log_lines"],
    )


def snapshot(cluster, params, previous=None, running_logs=True):
    """One read of every transfer pod: state, progress and log tail.

    A Pod with a ``definition`` that this module run has not created yet is queued (not
    read); an entry of ``previous`` in a final state is kept as it is, not read again, but for
    the phase of a Pod still winding down. Without ``running_logs`` the log of a container
    that still runs is not read (its progress is empty; see with_running_logs); an ended
    one's always is, as it is not read again.
    """
    previous = previous or [None] * len(params["pods"])
    result = []
    for spec, before in zip(params["pods"], previous):
        if is_final(before):
            if winding_down(before):
                before = dict(before, phase=_phase(cluster, spec, params, before["phase"]))
            result.append(before)
            continue
        if spec.get("definition") and (before is None or before.get("queued")):
            result.append(queued_entry(spec))
            continue
        try:
            pod = cluster.get("Pod", spec["name"], params["namespace"])
        except TransientError as exc:
            # One failed read is not a failed copy: report it and let the next poll retry.
            entry = pod_progress({}, spec, "", 0)
            entry.update(phase="Unknown", read_error=str(exc), terminal_failure="")
            entry["terminal_reason"] = ""
            result.append(entry)
            continue
        log_text = ""
        state = (_container_status(pod, spec["container"]) if pod else {}).get("state") or {}
        if state.get("terminated") or (running_logs and state.get("running")):
            log_text = _log(cluster, spec, params)
        result.append(pod_progress(pod, spec, log_text, params["log_lines"]))
    return result


def with_running_logs(cluster, params, entries):
    """The entries, with the progress of the transfers still running read from their logs."""
    result = []
    for spec, entry in zip(params["pods"], entries):
        if is_running(entry) and not entry.get("read_error"):
            log_text = _log(cluster, spec, params)
            entry = dict(entry, **log_progress(spec, log_text, params["log_lines"]))
        result.append(entry)
    return result


def start_queued(cluster, params, entries):
    """Creates the queued Pods that fit in ``parallel``, in the order of ``pods``; returns
    their names. A Pod the API server refuses is failed; the others go on."""
    limit = params.get("parallel") or len(entries)
    free = limit - sum(1 for entry in entries if occupies_a_place(entry))
    started = []
    for spec, entry in zip(params["pods"], entries):
        if free <= 0:
            break
        if not entry.get("queued"):
            continue
        try:
            cluster.create("Pod", spec["definition"], params["namespace"])
        except TransientError:
            break  # the API server is busy: the next round tries again
        except ModuleFailure as exc:
            entry.update(
                queued=False,
                terminal_failure="could not create Pod {0}: {1}".format(spec["name"], exc.msg),
                terminal_reason="CreateFailed",
            )
            continue
        entry.update(queued=False, phase="Pending")
        started.append(spec["name"])
        free -= 1
    return started


# Seconds between two reads while one run of the module watches (watch_seconds).
WATCH_POLL = 1


def worth_returning(entries):
    """Whether the module should return before watch_seconds are up: nothing is left to wait
    for, or a Pod failed for good and the watch must decide (an unschedulable Pod is left to
    the action plugin's grace at the regular return)."""
    if all(is_final(entry) for entry in entries):
        return True
    return any(
        entry.get("terminal_failure") and entry.get("terminal_reason") != "Unschedulable"
        for entry in entries
    )


def execute(cluster, params, check_mode):
    """The module: start the queued Pods that fit in ``parallel`` and take a snapshot. With
    ``watch_seconds``, go on reading every WATCH_POLL seconds, and at once when one of the
    Pods changes (a watch of the API server), starting a queued Pod as soon as a place frees
    up, and return when the time is up or earlier (worth_returning): one module run for a
    whole wait, so that a freed place or the last transfer's end is seen within a moment of
    the Pod's end. In check mode it only reads.

    While it watches, only the Pods are read, not the logs of the transfers that still run:
    their progress counts only in the snapshot it returns, so their logs are read once, at
    the end (a running rsync's progress is one ever longer log line)."""
    state = dict(entries=None, started=[])

    def read():
        state["entries"] = snapshot(cluster, params, state["entries"], running_logs=False)
        if not check_mode:
            state["started"] += start_queued(cluster, params, state["entries"])
        return state["entries"]

    def wake(seconds):
        names = [spec["name"] for spec in params["pods"]]
        return cluster.wait_for_change("Pod", params["namespace"], names, seconds)

    try:
        wait_for(read, worth_returning, params.get("watch_seconds") or 0, WATCH_POLL, wake=wake)
    except WaitTimeout:
        pass  # the watch time is up: the last snapshot is the answer
    entries = with_running_logs(cluster, params, state["entries"])
    return dict(changed=bool(state["started"]), pods=entries, started=state["started"])


# Formatting for the controller's output ----------------------------------------------------

_IEC = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(value):
    value = float(value or 0)
    for unit in _IEC:
        if abs(value) < 1024 or unit == _IEC[-1]:
            return (
                "{0:.0f} {1}".format(value, unit)
                if unit == "B"
                else "{0:.1f} {1}".format(value, unit)
            )
        value /= 1024.0
    return ""  # pragma: no cover


def clock_time(seconds):
    seconds = int(seconds or 0)
    return "{0}:{1:02d}:{2:02d}".format(seconds // 3600, seconds // 60 % 60, seconds % 60)


def progress_line(entry):
    """'data-0: 45% 1.2 GiB of 2.6 GiB, 12.3 MiB/s, ETA 0:01:54, 3,210 files'."""
    label = entry.get("pvc") or entry.get("name")
    if entry.get("terminal_failure"):
        return "{0}: failed: {1}".format(label, entry["terminal_failure"])
    if entry.get("bytes") is None:
        if entry.get("finished"):
            return "{0}: finished (exit code {1})".format(label, entry.get("exit_code"))
        return "{0}: waiting ({1})".format(label, entry.get("phase") or "no Pod yet")
    parts = []
    head = human_bytes(entry["bytes"])
    if entry.get("total_bytes"):
        head += " of " + human_bytes(entry["total_bytes"])
    if entry.get("percent") is not None:
        head = "{0}% {1}".format(entry["percent"], head)
    parts.append(head)
    if entry.get("rate") is not None:
        parts.append(human_bytes(entry["rate"]) + "/s")
    if entry.get("eta") is not None and not entry.get("finished"):
        parts.append("ETA " + clock_time(entry["eta"]))
    if entry.get("files") is not None:
        parts.append("{0:,} files".format(entry["files"]))
    line = "{0}: {1}".format(label, ", ".join(parts))
    if entry.get("finished"):
        line += " (finished, exit code {0})".format(entry.get("exit_code"))
    return line


def parse_time(value):
    """RFC 3339 timestamp of the API ('2024-05-01T10:00:00Z') as an aware datetime, or None."""
    if not value:
        return None
    try:
        return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc
        )
    except ValueError:
        return None


def duration_seconds(entry, now, observed=None):
    """Seconds the transfer container ran: its own timestamps, else what the watch observed."""
    started = parse_time(entry.get("started_at"))
    finished = parse_time(entry.get("finished_at")) or (now if started else None)
    if started and finished:
        return max(0.0, (finished - started).total_seconds())
    return float(observed or 0.0)


def destination_changed(entry):
    """Whether the transfer changed the destination volume, as far as its stats tell.

    Files copied, entries created (directories, links) or deleted count; a change of only
    the metadata of a file already there (mode, owner, times) is not in any stats line.
    When the counts are unknown (no stats: the transfer failed or never ran) the answer is
    True, the safe side for a task's ``changed``.
    """
    counts = [entry.get(key) for key in ("files", "created", "deleted")]
    if entry.get("files") is None:
        return True
    return bool(entry.get("bytes")) or any(count for count in counts if count)


def summarise(pods, now, stopped_because="", observed=None):
    """The summary entry of each PVC from the last snapshot.

    ``stopped_because`` says why the watch ended before a pod finished (timeout, another
    transfer failed); ``observed`` maps a pod name to the seconds the watch saw it.
    """
    summary = []
    for entry in pods:
        if entry.get("terminal_failure"):
            state, message = STATE_FAILED, entry["terminal_failure"]
        elif entry.get("finished"):
            state, message = classify_exit(entry.get("transfer"), entry.get("exit_code"))
        else:
            state = STATE_FAILED
            message = "did not finish: {0}".format(stopped_because or "the watch stopped")
        duration = duration_seconds(entry, now, (observed or {}).get(entry.get("name")))
        transferred = entry.get("bytes") or 0
        summary.append(
            dict(
                pvc=entry.get("pvc"),
                pod=entry.get("name"),
                state=state,
                changed=destination_changed(entry),
                exit_code=entry.get("exit_code"),
                bytes=transferred,
                files=entry.get("files"),
                created=entry.get("created"),
                deleted=entry.get("deleted"),
                retries=entry.get("retries") or 0,
                started_at=entry.get("started_at") or "",
                finished_at=entry.get("finished_at") or "",
                duration_seconds=round(duration, 1),
                rate_bytes_per_second=round(transferred / duration, 1) if duration else 0.0,
                message=message,
                log_tail=entry.get("log_tail") or [],
            )
        )
    return summary
