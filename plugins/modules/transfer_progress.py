#!/usr/bin/python
# Copyright: kubeferry developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Imports follow the documentation, as ansible-test's validate-modules requires.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: transfer_progress
short_description: Show the progress of running transfers and summarise them when they end
version_added: 0.1.0
author:
  - kubeferry developers (@kubeferry)
description:
  - Watches the client Pods of a transfer until every one has finished or one has failed in a
    way no exit code explains (image pull errors, OOMKilled, deleted, unschedulable...).
  - While they run, prints a line per PVC on the controller's output when its transfer starts,
    at most once per O(interval) while it runs, and when it ends, for example
    C(data-0 - 45% 1.2 GiB of 2.6 GiB, 12.3 MiB/s, ETA 0:01:54, 3,210 files).
    Progress comes from the transfer program's own log - rsync C(--info=progress2) lines
    and its C(--stats) block, rclone C(-v --stats) lines (one-line or block form).
  - At the end returns RV(summary), one entry per PVC with the exit code classified - rsync 0
    success, 24 warning (files vanished on a live source), 23 and every other code failed;
    rclone 0 success, every other code failed - and optionally writes it as JSON on the
    controller (O(report_path)).
  - This is an action plugin that runs the module of the same name once per O(interval). Each
    run of the module watches until then (O(watch_seconds)), reading every second and at once
    when one of the Pods changes (a watch of the API server), so that a freed place is taken,
    and a failure or the last transfer's end is seen, within a moment; the module alone
    returns one snapshot in RV(pods). Options of
    C(module_defaults) for the C(group/kubeferry.state_transfer.k8s) action group reach the
    module.
  - Starts the transfer Pods given with a O(pods[].definition), at most O(parallel) running at
    a time, the next one as soon as one ends (a rolling window, not batches that wait for
    their slowest Pod). Otherwise only reads from the cluster. In check mode it takes no
    snapshot, starts nothing and returns an empty summary.
  - With O(fail_on_failure=false) a Pod that fails for good (image pull error, OOMKilled...)
    ends its own watch only; the others go on. With O(fail_on_failure=true) the watch stops
    there.
  - The task reports C(changed) when a transfer changed its destination volume - files
    copied, entries created or deleted (RV(summary[].changed)) - so that a re-run that finds
    nothing to copy is C(ok).
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
options:
  namespace:
    description: Namespace of the client Pods.
    type: str
    required: true
  pods:
    description: The transfer Pods to watch, one per PVC pair.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Pod name.
        type: str
        required: true
      pvc:
        description: The PVC the Pod copies (names the line and the summary entry).
        type: str
        required: true
      transfer:
        description: The transfer program, which decides how its log and exit code are read.
        type: str
        choices: [rsync, rclone]
        required: true
      container:
        description: The container that runs the transfer program.
        type: str
        default: transfer
      definition:
        description:
          - The Pod to create, when this task should start it (its C(metadata.name) is
            O(pods[].name)). It is created once a place is free (O(parallel)), never
            replaced; the API server's refusal fails this PVC only.
          - Without it the Pod must exist already.
        type: dict
  parallel:
    description:
      - At most this many Pods of O(pods) with a O(pods[].definition) run at a time; C(0) starts
        them all at once.
      - A Pod keeps its place until it ended, its transport sidecar included (the sidecar stops
        within a fifth of a second of the transfer container). A Pod still running 30 seconds
        after its transfer ended gives up its place all the same.
    type: int
    default: 0
  watch_seconds:
    description:
      - Seconds one run of the module keeps reading (every second, and at once when one of
        the Pods changes) to start a waiting Pod as soon as a place frees up, before it
        returns its snapshot; it returns earlier once every transfer ended or one failed for
        good. The action plugin sets it to the time until its next snapshot is due; C(0)
        reads once.
      - While it watches it reads the Pods; the log of a transfer that still runs is read
        once, for the snapshot it returns (an ended transfer's log when it ended).
    type: int
    default: 0
  log_lines:
    description: How many of the last log lines to read (and return) per Pod.
    type: int
    default: 50
  wait_timeout:
    description:
      - Seconds each transfer may take, counted from the creation of its Pod (or from the start
        of the watch for a Pod that existed); an unfinished transfer is then reported failed.
        With O(fail_on_failure=true) the watch stops there.
      - A O(wait_timeout) in C(module_defaults) of the action group applies here too (it is
        meant for short waits there); set it on this task for long copies.
      - Handled by the action plugin.
    type: int
    default: 86400
  interval:
    description:
      - Seconds between two snapshots, and so between two progress lines of a PVC; the
        task returns within a moment of the last transfer's end whatever this is. Handled by
        the action plugin.
    type: int
    default: 10
  unschedulable_grace:
    description:
      - Seconds a Pod may stay unschedulable (for example while its PVC is provisioned) before
        it counts as failed. Handled by the action plugin.
    type: int
    default: 30
  fail_on_failure:
    description:
      - Whether the task fails when a transfer ended C(failed). RV(summary) is returned either way.
      - Handled by the action plugin.
    type: bool
    default: true
  report_path:
    description:
      - Path on the controller where the summary is written as JSON, an object whose C(runs)
        is RV(summary), with the namespace, start and end times and why the watch stopped.
      - Handled by the action plugin.
    type: path
requirements:
  - "python >= 3.9"
  - "kubernetes >= 24.2.0"
"""

EXAMPLES = r"""
- name: Show the progress of the copies and keep a JSON report
  kubeferry.state_transfer.transfer_progress:
    namespace: app
    pods:
      - name: kubeferry-3f9c2a1b-data-0
        pvc: data-0
        transfer: rsync
      - name: kubeferry-3f9c2a1b-logs
        pvc: logs
        transfer: rclone
        container: transfer
    interval: 10
    report_path: /tmp/kubeferry-3f9c2a1b.json
    fail_on_failure: false
  register: transfer

- name: Fail when a copy did not succeed, after the summary was shown
  ansible.builtin.assert:
    that: transfer.summary | selectattr('state', 'equalto', 'failed') | list | length == 0
"""

RETURN = r"""
summary:
  description: One entry per PVC, in the order of O(pods). Returned by the action plugin.
  returned: always
  type: list
  elements: dict
  contains:
    pvc:
      description: The PVC.
      type: str
    pod:
      description: The transfer Pod.
      type: str
    state:
      description: V(success), V(warning) (rsync 24) or V(failed).
      type: str
    changed:
      description:
        - Whether the destination volume changed - files copied, entries created or deleted.
          A change of only a file's mode, owner or times is in no stats line and does not
          count. True when the counts are unknown (the transfer never reported them).
      type: bool
    exit_code:
      description: The transfer program's exit code (null when it never ended).
      type: int
    bytes:
      description: Bytes transferred (rsync Total transferred file size; rclone Transferred).
      type: int
    files:
      description: Files transferred.
      type: int
    created:
      description:
        - Entries created on the destination (rsync Number of created files; null for rclone).
      type: int
    deleted:
      description:
        - Entries deleted from the destination in mirror mode (rsync Number of deleted files;
          rclone Deleted files and directories; null when none were reported).
      type: int
    retries:
      description:
        - Times the copy was tried again after a broken connection (rsync-client.sh's bounded
          retries, rclone's C(--retries)); 0 when the first attempt went through.
      type: int
    started_at:
      description: When the transfer container started (RFC 3339, UTC; empty if it never did).
      type: str
    finished_at:
      description: When the transfer container ended (RFC 3339, UTC; empty while it runs).
      type: str
    duration_seconds:
      description: From the transfer container's start to its end (or to the last snapshot).
      type: float
    rate_bytes_per_second:
      description: RV(summary[].bytes) over RV(summary[].duration_seconds).
      type: float
    message:
      description: Why it is a warning or failed, with the exit code's documented meaning.
      type: str
    log_tail:
      description: The last log lines of the transfer container.
      type: list
      elements: str
pods:
  description: The last snapshot, one entry per Pod (what the module itself returns).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Pod name.
      type: str
    pvc:
      description: The PVC.
      type: str
    transfer:
      description: The transfer program, V(rsync) or V(rclone).
      type: str
    phase:
      description: Pod phase (empty when the Pod does not exist).
      type: str
    finished:
      description: Whether the transfer container (or the Pod) has ended.
      type: bool
    exit_code:
      description: Exit code of the transfer container once it ended.
      type: int
    bytes:
      description: Bytes transferred so far.
      type: int
    total_bytes:
      description: Bytes to transfer in all (rsync - estimated from the percentage until its stats).
      type: int
    files:
      description: Files transferred so far.
      type: int
    total_files:
      description: Files to transfer in all, as far as the transfer program has counted them.
      type: int
    created:
      description: Entries created on the destination (rsync stats, at the end; null for rclone).
      type: int
    deleted:
      description: Entries deleted from the destination (mirror mode, at the end).
      type: int
    retries:
      description: Retries after a broken connection so far.
      type: int
    percent:
      description: Percentage done, as the transfer program reports it.
      type: int
    rate:
      description: Transfer rate in bytes per second.
      type: int
    eta:
      description: Seconds left, as the transfer program estimates them.
      type: int
    started_at:
      description: When the transfer container started (RFC 3339).
      type: str
    finished_at:
      description: When the transfer container ended (RFC 3339).
      type: str
    log_tail:
      description:
        - Last O(log_lines) log lines as a terminal shows them.
        - Of a progress line that rsync redraws, only its last state.
      type: list
      elements: str
    terminal_failure:
      description:
        - Why the Pod can never finish (image pull error, OOMKilled, deleted...).
        - Empty when nothing stops it.
      type: str
    terminal_reason:
      description: The short reason of RV(pods[].terminal_failure) (for example C(Unschedulable)).
      type: str
    read_error:
      description:
        - Why the Pod could not be read in this snapshot (the API server did not answer); the
          watch tries again at the next O(interval). Only present then.
      type: str
    queued:
      description:
        - The Pod waits for a place to be created (O(pods[].definition)). Only present then.
      type: bool
started:
  description: The Pods this run of the module created (the action plugin's result leaves it out).
  returned: success
  type: list
  elements: str
msg:
  description:
    - How many transfers finished; what went wrong; or in check mode what would have been watched.
  returned: always
  type: str
"""

from ansible_collections.kubeferry.state_transfer.plugins.module_utils.cluster import (
    argument_spec,
    run_module,
)
from ansible_collections.kubeferry.state_transfer.plugins.module_utils.progress import (
    WATCH_SPEC,
    execute,
)
from ansible_collections.kubernetes.core.plugins.module_utils.ansiblemodule import (
    AnsibleModule,
)
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import (
    AnsibleK8SModule,
)


def argspec():
    return argument_spec(
        namespace=dict(type="str", required=True),
        pods=dict(
            type="list",
            elements="dict",
            required=True,
            options=dict(
                name=dict(type="str", required=True),
                pvc=dict(type="str", required=True),
                transfer=dict(type="str", required=True, choices=["rsync", "rclone"]),
                container=dict(type="str", default="transfer"),
                definition=dict(type="dict"),
            ),
        ),
        log_lines=dict(type="int", default=50),
        parallel=dict(type="int", default=0),
        watch_seconds=dict(type="int", default=0),
        **WATCH_SPEC,
    )


def main():
    module = AnsibleK8SModule(
        module_class=AnsibleModule, argument_spec=argspec(), supports_check_mode=True
    )
    run_module(module, execute)


if __name__ == "__main__":
    main()
