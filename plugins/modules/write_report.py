#!/usr/bin/python
# Copyright: kubeferry developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# The documentation of the action plugin of the same name (plugins/action/write_report.py),
# which does the work on the controller; there is no module code.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: write_report
short_description: Write a run's report as JSON to a file on the controller
version_added: 0.1.0
author:
  - kubeferry developers (@kubeferry)
description:
  - Writes O(report) as indented JSON with sorted keys to O(path) on the controller, replacing the
    file in one step (a reader never sees half of it).
  - Runs on the controller as an action plugin, without starting a module process (the
    C(ansible.builtin.copy) module would run two).
  - In check mode it only tells whether the file would change.
options:
  path:
    description:
      - The file to write, on the controller. Relative paths are relative to the directory
        C(ansible-playbook) runs in. Its directory must exist.
    type: path
    required: true
  report:
    description: What to write, any data that JSON can express.
    type: raw
    required: true
  mode:
    description: The file's permissions, as an octal string such as C('0600').
    type: raw
    default: "0644"
"""

EXAMPLES = r"""
- name: Write the summary of a run
  kubeferry.state_transfer.write_report:
    path: ./shop-report.json
    report:
      run_id: 3f9c2a1b
      pvcs: "{{ summary }}"
"""

RETURN = r"""
path:
  description: The file written.
  returned: always
  type: str
  sample: ./shop-report.json
"""
