#!/usr/bin/python
# Copyright: kubeferry developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Imports follow the documentation, as ansible-test's validate-modules requires.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: endpoint_address
short_description: The host, port and SNI the other cluster dials for a Route or a NodePort
version_added: 0.1.0
author:
  - kubeferry developers (@kubeferry)
description:
  - For O(kind=route), waits until a router admits the OpenShift Route (a C(status.ingress[])
    entry with condition C(Admitted=True)) and returns its host, port 443 when the Route has TLS
    (else 80), and the SNI name to send for a passthrough Route. A Route that a router rejected
    (C(Admitted=False)) fails at once with the router's reason and message.
  - For O(kind=node_port), reads the Service's C(nodePort) and returns the address of a Ready
    node (or O(address)). The ClusterIP is never returned, because another cluster cannot reach
    it. Listing Nodes needs cluster-wide read access; without it, set O(address).
  - Only reads from the cluster. In check mode it reads once and does not wait.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
options:
  kind:
    description: What exposes the server.
    type: str
    required: true
    choices: [route, node_port]
  name:
    description: Name of the Route (O(kind=route)) or of the Service (O(kind=node_port)).
    type: str
    required: true
  namespace:
    description: Namespace of the Route or Service.
    type: str
    required: true
  port:
    description:
      - For O(kind=node_port), name or number of the Service port whose node port to return.
      - The first port of the Service when omitted. Ignored for routes.
    type: str
  address:
    description:
      - For O(kind=node_port), the host the other cluster should dial (a node's public name,
        a firewall's address), instead of a node address read from the cluster.
    type: str
  address_types:
    description:
      - For O(kind=node_port), the node address types to choose from, most preferred first.
      - A type wins over node preference (kube-proxy forwards a node port from every node);
        among nodes with that type, the nodes running the Service's pods come first. With
        C(externalTrafficPolicy=Local) only those nodes are used.
    type: list
    elements: str
    default: [ExternalIP, InternalIP]
  wait_timeout:
    description: Seconds to wait for the Route to be admitted, or for a usable node address.
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
- name: Wait until the router admits the transfer server's Route
  kubeferry.state_transfer.endpoint_address:
    kind: route
    name: kubeferry-3f9c2a1b-server
    namespace: app
  register: route_endpoint

- name: Find a node address for the transfer server's NodePort Service
  kubeferry.state_transfer.endpoint_address:
    kind: node_port
    name: kubeferry-3f9c2a1b-server
    namespace: app
    port: tls
    address_types: [ExternalIP, InternalIP]
  register: node_port_endpoint

- name: Dial a node port through an address the cluster does not know
  kubeferry.state_transfer.endpoint_address:
    kind: node_port
    name: kubeferry-3f9c2a1b-server
    namespace: app
    address: gateway.example.com
"""

RETURN = r"""
host:
  description:
    - What the other cluster dials. Empty in check mode while the Route or Service is not there.
  returned: always
  type: str
  sample: kubeferry-3f9c2a1b-server-app.apps.example.com
port:
  description: 443 or 80 for a Route; the node port for a Service.
  returned: always
  type: int
  sample: 443
sni:
  description: The TLS server name to send (the Route host for a passthrough Route), else empty.
  returned: always
  type: str
  sample: kubeferry-3f9c2a1b-server-app.apps.example.com
route:
  description: The Route as last read.
  returned: when O(kind=route)
  type: dict
service:
  description: The Service as last read.
  returned: when O(kind=node_port)
  type: dict
msg:
  description: In check mode, what the module would have waited for.
  returned: when in check mode and the endpoint is not ready yet
  type: str
"""

from ansible_collections.kubeferry.state_transfer.plugins.module_utils.cluster import (
    argument_spec,
    run_module,
)
from ansible_collections.kubeferry.state_transfer.plugins.module_utils.endpoint import (
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
        kind=dict(type="str", required=True, choices=["route", "node_port"]),
        name=dict(type="str", required=True),
        namespace=dict(type="str", required=True),
        port=dict(type="str"),
        address=dict(type="str"),
        address_types=dict(type="list", elements="str", default=["ExternalIP", "InternalIP"]),
        wait_timeout=dict(type="int", default=300),
        wait_sleep=dict(type="int", default=2),
    )


def main():
    module = AnsibleK8SModule(
        module_class=AnsibleModule, argument_spec=argspec(), supports_check_mode=True
    )
    run_module(module, execute)


if __name__ == "__main__":
    main()
