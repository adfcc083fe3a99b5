"""The write_report action plugin: the report file on the controller, without a module."""

import json
import os
import stat
from unittest import mock

import pytest
from ansible.errors import AnsibleActionFail
from ansible.playbook.task import Task

from ansible_collections.kubeferry.state_transfer.plugins.action import write_report

REPORT = {"run_id": "3f9c2a1b", "pvcs": [{"pvc": "data", "state": "success", "bytes": 1536}]}


def run(args, check_mode=False):
    task = mock.MagicMock(spec=Task)
    task.args = args
    task.check_mode = check_mode
    task.async_val = 0
    task.action = "kubeferry.state_transfer.write_report"
    connection = mock.MagicMock()
    connection._shell.tmpdir = None
    action = write_report.ActionModule(
        task, connection, mock.MagicMock(), loader=None, templar=None, shared_loader_obj=None
    )
    action._execute_module = mock.MagicMock(side_effect=AssertionError("no module may run"))
    return action.run(task_vars={})


def test_writes_indented_sorted_json_that_reads_back(tmp_path):
    path = tmp_path / "report.json"
    result = run(dict(path=str(path), report=REPORT))
    assert result["changed"] is True and result["path"] == str(path)
    text = path.read_text()
    assert json.loads(text) == REPORT
    assert text.startswith('{\n    "pvcs": [') and text.endswith("}\n")  # to_nice_json's form
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary file left


def test_the_same_report_again_is_no_change(tmp_path):
    path = tmp_path / "report.json"
    run(dict(path=str(path), report=REPORT))
    assert run(dict(path=str(path), report=REPORT))["changed"] is False
    changed = dict(REPORT, run_id="another")
    assert run(dict(path=str(path), report=changed))["changed"] is True
    assert json.loads(path.read_text())["run_id"] == "another"


def test_mode(tmp_path):
    path = tmp_path / "report.json"
    run(dict(path=str(path), report=REPORT, mode="0600"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with pytest.raises(AnsibleActionFail, match="mode: 'rw' is not an octal file mode"):
        run(dict(path=str(path), report=REPORT, mode="rw"))


def test_check_mode_writes_nothing(tmp_path):
    path = tmp_path / "report.json"
    assert run(dict(path=str(path), report=REPORT), check_mode=True)["changed"] is True
    assert not path.exists()


def test_a_missing_directory_is_a_clear_failure(tmp_path):
    path = tmp_path / "missing" / "report.json"
    with pytest.raises(AnsibleActionFail) as info:
        run(dict(path=str(path), report=REPORT))
    assert str(info.value).startswith(
        "Cannot write the report to {0}: No such file or directory".format(path)
    )


def test_the_path_is_required():
    with pytest.raises(AnsibleActionFail, match="path"):
        run(dict(report=REPORT))
