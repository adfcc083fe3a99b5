#!/usr/bin/python
# Copyright: kubeferry developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Imports follow the documentation, as ansible-test's validate-modules requires.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: objects_info
short_description: Read several kinds of objects of one cluster in one module run
version_added: 0.1.0
author:
  - kubeferry developers (@kubeferry)
description:
  - Reads each query like M(kubernetes.core.k8s_info) would (a named object, or the objects of a
    kind in a namespace, optionally by labels) and returns them by the query's key.
  - One module run instead of one per kind; each run of a Kubernetes module costs about a
    second of start-up and API discovery.
  - Objects are returned without C(metadata.managedFields), as C(kubectl get) shows them.
  - Only reads from the cluster; the same in check mode.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
options:
  queries:
    description: What to read.
    type: list
    elements: dict
    required: true
    suboptions:
      key:
        description: Under which key of RV(resources) and RV(api_found) the result is returned.
        type: str
        required: true
      kind:
        description: Kind of the objects, such as C(Pod).
        type: str
        required: true
      api_version:
        description: API version of the kind, such as C(route.openshift.io/v1).
        type: str
        default: v1
      name:
        description: Read only the object of this name (a list of one, or empty when missing).
        type: str
      namespace:
        description: Namespace of the objects; omitted for cluster-scoped kinds.
        type: str
      label_selectors:
        description: Only objects with all these labels (C(key=value)).
        type: list
        elements: str
        default: []
      optional:
        description:
          - The kind may not be served by the cluster (OpenShift Routes elsewhere). Then the
            result is empty and RV(api_found) false, instead of a failure.
        type: bool
        default: false
      skip:
        description:
          - Leave the query out, for a query only some runs need. Its key is then missing from
            RV(resources) and RV(api_found).
        type: bool
        default: false
requirements:
  - "python >= 3.9"
  - "kubernetes >= 24.2.0"
"""

EXAMPLES = r"""
- name: Read the namespace, its PVCs and the run's Routes, if the cluster has Routes
  kubeferry.state_transfer.objects_info:
    context: source
    queries:
      - key: namespace
        kind: Namespace
        name: app
      - key: pvcs
        kind: PersistentVolumeClaim
        namespace: app
      - key: routes
        api_version: route.openshift.io/v1
        kind: Route
        namespace: app
        label_selectors:
          - kubeferry.io/run=3f9c2a1b
        optional: true
  register: source

- name: Show the PVCs and whether Routes exist
  ansible.builtin.debug:
    msg: >-
      {{ source.resources.pvcs | map(attribute='metadata.name') }}
      {{ source.api_found.routes }}
"""

RETURN = r"""
resources:
  description: For each query's key, the objects read (a named object is a list of one or none).
  returned: always
  type: dict
  sample: {"namespace": [{"kind": "Namespace", "metadata": {"name": "app"}}], "routes": []}
api_found:
  description: For each query's key, whether the cluster serves the kind.
  returned: always
  type: dict
  sample: {"namespace": true, "routes": false}
"""

from ansible_collections.kubeferry.state_transfer.plugins.module_utils.cluster import (
    argument_spec,
    run_module,
)
from ansible_collections.kubeferry.state_transfer.plugins.module_utils.objects import (
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
        queries=dict(
            type="list",
            elements="dict",
            required=True,
            options=dict(
                key=dict(type="str", required=True, no_log=False),
                kind=dict(type="str", required=True),
                api_version=dict(type="str", default="v1"),
                name=dict(type="str"),
                namespace=dict(type="str"),
                label_selectors=dict(type="list", elements="str", default=[]),
                optional=dict(type="bool", default=False),
                skip=dict(type="bool", default=False),
            ),
        ),
    )


def main():
    module = AnsibleK8SModule(
        module_class=AnsibleModule, argument_spec=argspec(), supports_check_mode=True
    )
    run_module(module, execute)


if __name__ == "__main__":
    main()
