# Copyright: kubeferry developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write a run's report as JSON to a file on the controller, without running a module.

``ansible.builtin.copy`` with ``content`` runs two modules (stat, then copy), each a new
Python process on the target: about a second of a run. The report belongs on the controller
anyway (state_transfer_report_path says so), where an action plugin runs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import tempfile

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.json import AnsibleJSONEncoder
from ansible.plugins.action import ActionBase

SPEC = dict(
    path=dict(type="path", required=True),
    report=dict(type="raw", required=True),
    mode=dict(type="raw", default="0644"),
)


def render(report):
    """The file's text: indented, keys sorted, as to_nice_json writes it."""
    text = json.dumps(
        report, cls=AnsibleJSONEncoder, indent=4, sort_keys=True, separators=(",", ": ")
    )
    return text + "\n"


def write_atomically(path, text, mode):
    """Replace ``path`` with ``text`` in one step: a reader never sees half a report."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".report-", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def file_mode(value):
    """'0644', '644' or 0o644 (an int) -> 0o644."""
    if isinstance(value, int):
        return value
    try:
        return int(str(value), 8)
    except ValueError as exc:
        raise AnsibleActionFail(
            "mode: {0!r} is not an octal file mode such as '0644'".format(value)
        ) from exc


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        validated = ArgumentSpecValidator(SPEC).validate(dict(self._task.args))
        if validated.error_messages:
            raise AnsibleActionFail("; ".join(validated.error_messages))
        options = validated.validated_parameters
        path, text = options["path"], render(options["report"])
        mode = file_mode(options["mode"])
        try:
            with open(path, encoding="utf-8") as stream:
                changed = stream.read() != text
        except OSError:
            changed = True  # missing or unreadable: writing says why, if it cannot
        if changed and not self._task.check_mode:
            try:
                write_atomically(path, text, mode)
            except OSError as exc:
                raise AnsibleActionFail(
                    "Cannot write the report to {0}: {1}".format(path, exc.strerror or exc)
                ) from exc
        result.update(changed=changed, path=path)
        return result
