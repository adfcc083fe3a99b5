"""An AWX job on the local clusters: the credential types of extensions/awx injected the way
AWX injects them (a private kubeconfig file per side, flat extra vars), survey answers as
the strings AWX passes, and playbooks/state_transfer.yml moving real data with them.
"""

import os

import pytest
import yaml
from dataplane import tree
from render.test_awx import credential_type, inject

from .playbook import output_of

pytestmark = [pytest.mark.clusters, pytest.mark.e2e]


def test_an_awx_job_with_two_credentials_and_string_answers(transfer, tmp_path):
    for name in ("data", "logs"):
        root = transfer.create_pvc("source", name)
        with open(os.path.join(root, name + ".txt"), "w") as handle:
            handle.write("{0}\n".format(name) * 1000)
    before = {name: tree.snapshot(transfer.pvc_dir("source", name)) for name in ("data", "logs")}
    with open(transfer.kubeconfig) as handle:
        kubeconfig = handle.read()
    os.makedirs(tmp_path / "env")
    arguments = []
    for side in ("source", "destination"):
        credential = {"kubeconfig": kubeconfig, "context": side}
        arguments += inject(credential_type(side), credential, str(tmp_path))
    # Survey answers: text and multiple choice arrive as strings.
    answers = tmp_path / "survey.yml"
    answers.write_text(
        yaml.safe_dump(
            {
                "state_transfer_source_namespace": transfer.namespaces["source"],
                "state_transfer_destination_namespace": transfer.namespaces["destination"],
                "state_transfer_pvcs": "data\nlogs:logs-copy",
                "state_transfer_endpoint": "node_port",
                "state_transfer_parallel": "2",
                "state_transfer_mirror": "false",
                "state_transfer_create_destination_pvcs": "true",
            }
        )
    )
    result = transfer.playbook(
        *arguments,
        "-e",
        "@{0}".format(answers),
        # Only what AWX gives: no per-side dicts from the test's defaults.
        state_transfer_source={},
        state_transfer_destination={},
    )
    assert result.returncode == 0, output_of(result)
    states = {entry["pvc"]: entry["state"] for entry in result.report["pvcs"]}
    assert states == {"data": "success", "logs-copy": "success"}
    for name, copy in (("data", "data"), ("logs", "logs-copy")):
        copied = tree.snapshot(transfer.pvc_dir("destination", copy))
        problems = tree.rsync_differences(before[name], copied)
        assert not problems, problems[:10]
    assert transfer.leftovers() == []
    key = [line for line in kubeconfig.splitlines() if "client-key-data" in line][0].split()[-1]
    assert key[-40:] not in result.stdout + result.stderr, "a credential appeared in the output"
