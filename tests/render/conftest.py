"""Render whole runs with ansible-playbook, once per test session, for the render tests."""

import itertools
import json
import os
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRANSFERS = ("rsync", "rclone")
TRANSPORTS = ("stunnel", "null")
ENDPOINTS = ("load_balancer", "route", "node_port")
REFUSED = {("rsync", "null", "route")}
# Known values for the run's generated secrets (extra vars win over the role's own
# set_fact), so the tests can search every rendered object for them.
PASSWORD = "RenderTestPassword0123456789abcdefABCDEF"
ONE_PVC = [{"source": "data"}]
SEVERAL_PVCS = [{"source": "data"}, {"source": "logs", "destination": "logs-copy"}, {"source": "p" * 63}]


def combinations():
    for combo in itertools.product(TRANSFERS, TRANSPORTS, ENDPOINTS):
        if combo not in REFUSED:
            yield combo


def ansible_playbook(*args, extra_vars_file):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    bindir = os.path.dirname(sys.executable)
    command = [os.path.join(bindir, "ansible-playbook"), *args, "-e", "@" + extra_vars_file]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def load_dir(path):
    objects = []
    for name in sorted(os.listdir(path)):
        with open(os.path.join(path, name)) as handle:
            objects.append(yaml.safe_load(handle))
    return objects


@pytest.fixture(scope="session")
def rendered(tmp_path_factory):
    """{(transfer, transport, endpoint, n_pvcs, mode): {"source": [...], "destination": [...]}}"""
    base = tmp_path_factory.mktemp("render")
    renders = []
    for transfer, transport, endpoint in combinations():
        for pvcs in (ONE_PVC, SEVERAL_PVCS):
            key = (transfer, transport, endpoint, len(pvcs), "preserve")
            renders.append((key, dict(transfer=transfer, transport=transport, endpoint=endpoint, pvcs=pvcs)))
    for transfer in TRANSFERS:
        key = (transfer, "stunnel", "load_balancer", 1, "restricted")
        renders.append(
            (key, dict(transfer=transfer, transport="stunnel", endpoint="load_balancer", pvcs=ONE_PVC, mode="restricted", run_as_user=1000))
        )
    entries = []
    for index, (key, spec) in enumerate(renders):
        spec = dict(
            spec,
            dir=str(base / "{0:02d}-{1}".format(index, "-".join(str(part) for part in key))),
            source={"context": "source", "namespace": "shop"},
            destination={"context": "destination", "namespace": "shop-new"},
        )
        entries.append((key, spec))
    vars_file = base / "renders.json"
    vars_file.write_text(json.dumps({"renders": [spec for _, spec in entries], "__state_transfer_password": PASSWORD}))
    result = ansible_playbook("tests/render/render_all.yml", extra_vars_file=str(vars_file))
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    output = {}
    for key, spec in entries:
        output[key] = {side: load_dir(os.path.join(spec["dir"], side)) for side in ("source", "destination")}
    output["__stdout__"] = result.stdout
    return output
