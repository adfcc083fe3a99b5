#!/usr/bin/python
# Copyright: kubeferry developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Imports follow the documentation, as ansible-test's validate-modules requires.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: pod_wait
short_description: Wait until Pods are ready or completed, failing fast when they cannot be
version_added: 0.1.0
author:
  - kubeferry developers (@kubeferry)
description:
  - Waits until every Pod named in O(names), or every Pod that O(label_selector) matches, is
    ready (O(state=ready), for servers) or has completed (O(state=completed), for clients).
  - Fails at once, not at the timeout, on states that waiting does not fix, with the reason
    and the last log lines of the failing container - image pull errors (C(ErrImagePull),
    C(ImagePullBackOff), C(InvalidImageName)), C(CreateContainerConfigError),
    C(CreateContainerError), C(CrashLoopBackOff), C(OOMKilled), a container that exited non-zero
    (with O(state=ready), any exit of a container), Pod phase C(Failed), a Pod deleted while
    waiting, and a Pod the scheduler cannot place (C(PodScheduled=False), for example because
    of an unbound PersistentVolumeClaim) for longer than O(unschedulable_grace).
  - Only reads from the cluster. In check mode it reads once and does not wait.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
options:
  namespace:
    description: Namespace of the Pods.
    type: str
    required: true
  names:
    description: Names of the Pods. Exactly one of O(names) and O(label_selector) is required.
    type: list
    elements: str
  label_selector:
    description:
      - Label selector of the Pods,
        for example C(kubeferry.io/run=3f9c2a1b,kubeferry.io/side=client).
      - The wait goes on until at least one Pod matches; a Pod that matched once and then
        disappears counts as deleted.
    type: str
  state:
    description:
      - V(ready) waits for phase C(Running) with condition C(Ready=True).
      - V(completed) waits for phase C(Succeeded) (or C(Failed), see O(fail_on_exit_code)).
    type: str
    choices: [ready, completed]
    default: ready
  container:
    description:
      - The container whose exit code is returned as RV(pods[].exit_code).
      - The first container of the Pod spec when omitted.
    type: str
  fail_on_exit_code:
    description:
      - With O(state=completed), whether a container that exited non-zero fails the task.
      - When V(false), such Pods are returned with their exit codes and the caller classifies
        them (rsync's code 24, for example, is only a warning). C(OOMKilled) and the other
        terminal states still fail.
    type: bool
    default: true
  unschedulable_grace:
    description:
      - Seconds a Pod may stay unschedulable before the wait fails. The scheduler reports a
        Pod unschedulable for a moment while its volume is still being provisioned.
    type: int
    default: 30
  log_lines:
    description: How many of the last log lines to return (and to show in a failure message).
    type: int
    default: 20
  wait_timeout:
    description: Seconds to wait.
    type: int
    default: 300
  wait_sleep:
    description: Seconds between two reads.
    type: int
    default: 2
requirements:
  - "python >= 3.9"
  - "kubernetes >= 24.2.0"
"""

EXAMPLES = r"""
- name: Wait until the transfer server accepts connections
  kubeferry.state_transfer.pod_wait:
    namespace: app
    names:
      - kubeferry-3f9c2a1b-server
    state: ready

- name: Wait until every client of the run has finished, keeping non-zero exits for the summary
  kubeferry.state_transfer.pod_wait:
    namespace: app
    label_selector: kubeferry.io/run=3f9c2a1b,kubeferry.io/side=client
    state: completed
    container: transfer
    fail_on_exit_code: false
    wait_timeout: 86400
  register: clients
"""

RETURN = r"""
pods:
  description: One entry per Pod, also when the task fails.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Pod name.
      type: str
    phase:
      description: Pod phase (empty when the Pod does not exist).
      type: str
    ready:
      description: Whether the Pod is Running and Ready.
      type: bool
    exit_code:
      description: Exit code of O(container) (or the first container) once it terminated, else null.
      type: int
    exit_codes:
      description: Exit code of every container that terminated, by container name.
      type: dict
    reason:
      description:
        - Why the Pod is done, waiting or failed.
        - For example C(Ready), C(Completed), C(ImagePullBackOff).
      type: str
    message:
      description: The detail of the reason (the scheduler's or kubelet's message).
      type: str
    node:
      description: The node the Pod runs on.
      type: str
    log_tail:
      description: Last O(log_lines) log lines of the failing container, or of O(container).
      type: list
      elements: str
msg:
  description: In check mode, what the module would have waited for.
  returned: when in check mode and the Pods are not there or not done
  type: str
"""

from ansible_collections.kubeferry.state_transfer.plugins.module_utils.cluster import (
    argument_spec,
    run_module,
)
from ansible_collections.kubeferry.state_transfer.plugins.module_utils.pods import execute
from ansible_collections.kubernetes.core.plugins.module_utils.ansiblemodule import (
    AnsibleModule,
)
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import (
    AnsibleK8SModule,
)


def argspec():
    return argument_spec(
        namespace=dict(type="str", required=True),
        names=dict(type="list", elements="str"),
        label_selector=dict(type="str"),
        state=dict(type="str", choices=["ready", "completed"], default="ready"),
        container=dict(type="str"),
        fail_on_exit_code=dict(type="bool", default=True),
        unschedulable_grace=dict(type="int", default=30),
        log_lines=dict(type="int", default=20),
        wait_timeout=dict(type="int", default=300),
        wait_sleep=dict(type="int", default=2),
    )


def main():
    module = AnsibleK8SModule(
        module_class=AnsibleModule,
        argument_spec=argspec(),
        supports_check_mode=True,
        required_one_of=[("names", "label_selector")],
        mutually_exclusive=[("names", "label_selector")],
    )
    run_module(module, execute)


if __name__ == "__main__":
    main()
