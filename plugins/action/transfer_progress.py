# Copyright: kubeferry developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Watch transfers from the controller: live progress lines, then a summary.

The module of the same name returns one snapshot, after watching for up to
``watch_seconds`` (it starts the Pods given with a definition as places free up); this plugin
calls it until every transfer ended, a snapshot every ``interval`` seconds, and prints a
line per PVC between calls, which a module cannot do (its output only reaches the
controller when it returns). It keeps the state across calls: which Pods were created
(passed again without their definition) and which ended (not asked about again).

module_defaults: ansible-core merges the defaults of every action group that contains this
action into ``self._task.args`` while it finalises the task's arguments
(``Task._post_validate_args`` -> ``_get_action_arg_defaults``). ``_execute_module`` applies
no defaults of its own, so the module receives the connection options only because they
are passed on from ``self._task.args``.
"""

import datetime
import json
import os
import time

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.kubeferry.state_transfer.plugins.module_utils.exit_codes import FAILED
from ansible_collections.kubeferry.state_transfer.plugins.module_utils.progress import (
    WATCH_SPEC,
    progress_line,
    summarise,
    winding_down,
)

display = Display()

MODULE = "kubeferry.state_transfer.transfer_progress"


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def display_state(entry):
    """What a line says of a transfer: waiting, running or finished (printed at once)."""
    if entry.get("finished") or entry.get("terminal_failure"):
        return "finished"
    return "waiting" if entry.get("bytes") is None else "running"


def within_grace(entry, elapsed, grace):
    """A Pod unschedulable for less than ``grace`` seconds is still pending, not failed."""
    if entry.get("terminal_reason") == "Unschedulable" and elapsed < grace:
        return dict(entry, terminal_failure="", terminal_reason="")
    return entry


def watched(pods, entries, created):
    """The pods still to ask the module about: not ended, not failed for good (an ended
    transfer does not change any more, so its Pod and log are not read again). While Pods wait
    to be created, an ended transfer whose Pod is still winding down is asked about too: it
    holds its place until then. A Pod already created goes without its definition: the module
    must never create it twice."""
    waiting = any(
        spec["name"] not in created
        and not (entries.get(spec["name"]) or {}).get("terminal_failure")
        for spec in pods
    )
    result = []
    for spec in pods:
        latest = entries.get(spec["name"]) or {}
        if latest.get("terminal_failure"):
            continue
        if latest.get("finished") and not (waiting and winding_down(latest)):
            continue
        if spec["name"] in created:
            spec = dict((key, value) for key, value in spec.items() if key != "definition")
        result.append(spec)
    return result


def write_report(path, summary, namespace, started, finished, stopped_because):
    report = {
        "runs": summary,
        "namespace": namespace,
        "started": started.isoformat(),
        "finished": finished.isoformat(),
        "stopped_because": stopped_because,
    }
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2, sort_keys=True)
        handle.write("\n")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def _split_args(self):
        module_args = dict(self._task.args)
        # The watch options are this plugin's; every other argument goes to the module.
        own = {key: module_args.pop(key) for key in WATCH_SPEC if key in module_args}
        validated = ArgumentSpecValidator(WATCH_SPEC).validate(own)
        if validated.error_messages:
            raise AnsibleActionFail("; ".join(validated.error_messages))
        return validated.validated_parameters, module_args

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        options, module_args = self._split_args()
        pods = module_args.get("pods") or []
        if self._task.check_mode:
            result.update(
                changed=False,
                summary=[],
                pods=[],
                msg="check mode: would watch {0} transfer(s)".format(len(pods)),
            )
            return result
        try:
            return self._watch(result, options, module_args, task_vars)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)

    def _watch(self, result, options, module_args, task_vars):
        started_at = utcnow()
        start = time.monotonic()
        shown = {}  # pod -> (line, its display state, when it was printed)
        observed = {}
        entries = {}  # pod -> its latest entry
        created = {}  # pod -> seconds into the watch when it was created (0: before it)
        all_pods = module_args.get("pods") or []
        for spec in all_pods:
            if not spec.get("definition"):
                created[spec["name"]] = 0.0
        # A bound for the whole watch, should Pods never get created (an API server that
        # keeps refusing for a while): as long as every Pod took its whole wait_timeout.
        parallel = int(module_args.get("parallel") or 0)
        rounds = -(-len(all_pods) // parallel) if parallel and len(created) < len(all_pods) else 1
        deadline = options["wait_timeout"] * max(1, rounds)
        stopped_because = ""
        # One snapshot per interval, no more: each module run costs about a CPU second, taken
        # from the copies. The module returns within a moment of the last transfer's end, so
        # that end is seen at once all the same.
        watch_seconds = max(1, min(options["interval"], options["wait_timeout"]))
        while True:
            args = dict(module_args, pods=watched(all_pods, entries, created))
            args["watch_seconds"] = watch_seconds
            snapshot = self._execute_module(
                module_name=MODULE, module_args=args, task_vars=task_vars
            )
            if snapshot.get("failed"):
                result.update(snapshot)
                return result
            elapsed = time.monotonic() - start
            for name in snapshot.get("started") or []:
                created[name] = elapsed
            for entry in snapshot.get("pods") or []:
                since = elapsed - created.get(entry["name"], elapsed)
                entry = within_grace(entry, since, options["unschedulable_grace"])
                entries[entry["name"]] = entry
                if entry.get("queued"):
                    continue  # its first line comes when it is created
                observed[entry["name"]] = since
                # A new line when the transfer starts or ends at once, else once per interval.
                line, state = progress_line(entry), display_state(entry)
                last_line, last_state, last_time = shown.get(entry["name"], (None, None, None))
                due = last_time is None or elapsed - last_time >= options["interval"]
                if line != last_line and (state != last_state or due):
                    display.display(line)
                    shown[entry["name"]] = (line, state, elapsed)
            pods = [entries[spec["name"]] for spec in all_pods if spec["name"] in entries]
            # wait_timeout counts for each Pod from its creation (or the start of the watch).
            late = [
                entry
                for entry in pods
                if entry["name"] in created
                and not entry.get("finished")
                and not entry.get("terminal_failure")
                and elapsed - created[entry["name"]] >= options["wait_timeout"]
            ]
            if elapsed >= deadline:
                late = [
                    entry
                    for entry in pods
                    if not entry.get("finished") and not entry.get("terminal_failure")
                ]
            if late and options["fail_on_failure"]:
                stopped_because = "still running after wait_timeout ({0} s)".format(
                    options["wait_timeout"]
                )
                break
            for entry in late:
                # Failed, so no longer watched; its place goes to the next Pod.
                entry.update(
                    terminal_failure=(
                        "did not start: its Pod was not created within {0} s".format(deadline)
                        if entry.get("queued")
                        else "did not finish: still running after wait_timeout ({0} s)".format(
                            options["wait_timeout"]
                        )
                    ),
                    terminal_reason="Timeout",
                )
            failed = [entry for entry in pods if entry.get("terminal_failure")]
            if failed and options["fail_on_failure"]:
                stopped_because = "the watch stopped when {0} failed".format(
                    ", ".join(entry["pvc"] for entry in failed)
                )
                break
            if pods and not watched(all_pods, entries, created):
                break
            left = [deadline - elapsed] + [
                created[spec["name"]] + options["wait_timeout"] - elapsed
                for spec in watched(all_pods, entries, created)
                if spec["name"] in created
            ]
            # The module itself waits until the next snapshot is due: it starts waiting Pods
            # as places free up and returns as soon as the last transfer ended.
            watch_seconds = max(1, int(round(min([options["interval"]] + left))))

        finished_at = utcnow()
        summary = summarise(pods, finished_at, stopped_because, observed)
        if options["report_path"]:
            write_report(
                options["report_path"],
                summary,
                module_args.get("namespace"),
                started_at,
                finished_at,
                stopped_because,
            )
        # The task changed something when a transfer changed its destination volume.
        changed = any(entry["changed"] for entry in summary)
        result.update(changed=changed, summary=summary, pods=pods)
        bad = [entry for entry in summary if entry["state"] == FAILED]
        if bad:
            result["msg"] = "; ".join(
                "{0}: {1}".format(entry["pvc"], entry["message"]) for entry in bad
            )
            result["failed"] = bool(options["fail_on_failure"])
        else:
            result["msg"] = "{0} transfer(s) finished".format(len(summary))
        return result
