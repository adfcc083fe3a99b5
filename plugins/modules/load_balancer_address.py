#!/usr/bin/python
# Copyright: kubeferry developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Imports follow the documentation, as ansible-test's validate-modules requires.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: load_balancer_address
short_description: Wait for the address of a LoadBalancer Service
version_added: 0.1.0
author:
  - kubeferry developers (@kubeferry)
description:
  - Waits until a Service of type C(LoadBalancer) has an address in C(status.loadBalancer.ingress),
    then (with O(resolve)) until its hostname resolves from the controller, and returns the host
    and port that the other cluster dials.
  - Fails at once when the Service does not exist or is not of type C(LoadBalancer). After
    O(wait_timeout) the message says what was missing; no address at all usually means that no
    load-balancer controller runs in the cluster (use the node_port endpoint there).
  - Only reads from the cluster. In check mode it reads once and does not wait.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
options:
  name:
    description: Name of the Service.
    type: str
    required: true
  namespace:
    description: Namespace of the Service.
    type: str
    required: true
  port:
    description:
      - Name or number of the Service port to return.
      - The first port of the Service when omitted.
    type: str
  wait_timeout:
    description:
      - Seconds to wait for the address and its DNS name together.
      - Cloud load balancers often take minutes.
    type: int
    default: 600
  wait_sleep:
    description: Seconds between two reads.
    type: int
    default: 5
  resolve:
    description:
      - After an ingress hostname appears, wait until it resolves with C(getaddrinfo) on the
        controller (a hostname in DNS lags behind the Service's status).
      - Set to V(false) when only the other cluster can resolve the name.
    type: bool
    default: true
requirements:
  - "python >= 3.9"
  - "kubernetes >= 24.2.0"
"""

EXAMPLES = r"""
- name: Wait for the transfer server's load balancer on the source cluster
  kubeferry.state_transfer.load_balancer_address:
    name: kubeferry-3f9c2a1b-server
    namespace: app
    port: tls
    context: source
  register: lb

- name: Show what the destination will dial
  ansible.builtin.debug:
    msg: "{{ lb.host }}:{{ lb.port }} ({{ lb.addresses | join(', ') }})"

- name: Wait without resolving a name that only the other cluster's DNS knows
  kubeferry.state_transfer.load_balancer_address:
    name: kubeferry-3f9c2a1b-server
    namespace: app
    resolve: false
    wait_timeout: 1200
"""

RETURN = r"""
host:
  description:
    - The ingress hostname when the load balancer has one, else its IP.
    - Empty in check mode while the Service has no address.
  returned: always
  type: str
  sample: a1b2c3.elb.eu-west-1.amazonaws.com
port:
  description: The Service port (not the target port) selected by O(port).
  returned: always
  type: int
  sample: 6443
addresses:
  description:
    - The IP addresses the host resolved to on the controller.
    - Empty with O(resolve=false).
  returned: always
  type: list
  elements: str
  sample: ["198.18.0.20"]
service:
  description: The Service object as last read.
  returned: always
  type: dict
msg:
  description: In check mode, what the module would have waited for.
  returned: when in check mode and the address is not there yet
  type: str
"""

from ansible_collections.kubeferry.state_transfer.plugins.module_utils.cluster import (
    argument_spec,
    run_module,
)
from ansible_collections.kubeferry.state_transfer.plugins.module_utils.load_balancer import (
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
        name=dict(type="str", required=True),
        namespace=dict(type="str", required=True),
        port=dict(type="str"),
        wait_timeout=dict(type="int", default=600),
        wait_sleep=dict(type="int", default=5),
        resolve=dict(type="bool", default=True),
    )


def main():
    module = AnsibleK8SModule(
        module_class=AnsibleModule, argument_spec=argspec(), supports_check_mode=True
    )
    run_module(module, execute)


if __name__ == "__main__":
    main()
