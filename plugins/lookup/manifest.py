# Copyright: kubeferry developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ansible.builtin.template, without its deep copy of every variable of the task.

The template lookup of ansible-core deep-copies all the task's variables before it adds its
own (template_path, template_host, ...) to the copy. A run renders a dozen manifests a client
pod, and the copy grows with the run (its plan, the PVCs it creates, the summary so far): at
50 PVCs the copies cost more than the rest of the rendering. A shallow copy is enough, since
the lookup only adds keys to it (ansible-core's own comment there asks for a ChainMap).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: manifest
version_added: 0.1.0
author:
  - kubeferry developers (@kubeferry)
short_description: Render a template like ansible.builtin.template, copying fewer variables
description:
  - Returns what the C(ansible.builtin.template) lookup returns for the same terms and
    options; it calls that lookup.
  - The task's variables are copied shallowly instead of deeply before the lookup adds its
    own, which makes rendering a template cost the same however many variables a play holds.
  - The roles of this collection render their Kubernetes manifests with it.
options:
  _terms:
    description:
      - Templates to render, found as C(ansible.builtin.template) finds them (a role's
        C(templates) directory).
    type: list
    elements: str
    required: true
notes:
  - Every option of C(ansible.builtin.template), such as
    O(ansible.builtin.template#lookup:template_vars), is passed on to it.
seealso:
  - plugin: ansible.builtin.template
    plugin_type: lookup
"""

EXAMPLES = r"""
- name: Render a Pod of the role's templates into a dict
  ansible.builtin.set_fact:
    pod: "{{ lookup('kubeferry.state_transfer.manifest', 'pod.yaml.j2') | from_yaml }}"
"""

RETURN = r"""
_raw:
  description: The rendered templates, one string each.
  type: list
  elements: str
"""


from ansible.plugins.loader import lookup_loader
from ansible.plugins.lookup import LookupBase


class CopiedShallowly(dict):
    """Variables whose deep copy is a shallow one."""

    def __deepcopy__(self, memo):
        return dict(self)


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        template = lookup_loader.get(
            "ansible.builtin.template", loader=self._loader, templar=self._templar
        )
        return template.run(terms, variables=CopiedShallowly(variables or {}), **kwargs)
