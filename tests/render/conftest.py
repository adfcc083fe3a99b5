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
SEVERAL_PVCS = [
    {"source": "data"},
    {"source": "logs", "destination": "logs-copy"},
    {"source": "p" * 63},
]


def combinations():
    for combo in itertools.product(TRANSFERS, TRANSPORTS, ENDPOINTS):
        if combo not in REFUSED:
            yield combo


def render_runs(workdir, specs, extra_vars=None):
    """Run tests/render/render_all.yml with one local inventory host per spec.

    A spec's "host_vars" become variables of its host (above the roles' defaults), for the
    part roles' options: {"transport_stunnel_proxy": "proxy:3128"}.
    """
    hosts = {
        "render-{0:02d}".format(index): dict(
            spec.get("host_vars") or {},
            ansible_connection="local",
            ansible_python_interpreter=sys.executable,
            render=spec,
        )
        for index, spec in enumerate(specs)
    }
    inventory = os.path.join(str(workdir), "inventory.json")
    with open(inventory, "w") as handle:
        json.dump({"all": {"hosts": hosts}}, handle)
    extra = os.path.join(str(workdir), "extra-vars.json")
    with open(extra, "w") as handle:
        json.dump(extra_vars or {}, handle)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    bindir = os.path.dirname(sys.executable)
    command = [
        os.path.join(bindir, "ansible-playbook"),
        "tests/render/render_all.yml",
        "-i",
        inventory,
        "-e",
        "@" + extra,
        "--forks",
        "4",
    ]
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800, check=False
    )


def load_side(render_dir, side):
    with open(os.path.join(render_dir, side + ".yaml")) as handle:
        return [obj for obj in yaml.safe_load_all(handle) if obj]


@pytest.fixture(scope="session")
def rendered(tmp_path_factory):
    """{(transfer, transport, endpoint, n_pvcs, mode): {"source": [...], "destination": [...]}}"""
    base = tmp_path_factory.mktemp("render")
    renders = []
    for transfer, transport, endpoint in combinations():
        for pvcs in (ONE_PVC, SEVERAL_PVCS):
            key = (transfer, transport, endpoint, len(pvcs), "preserve")
            renders.append(
                (key, dict(transfer=transfer, transport=transport, endpoint=endpoint, pvcs=pvcs))
            )
    for transfer in TRANSFERS:
        key = (transfer, "stunnel", "load_balancer", 1, "restricted")
        renders.append(
            (
                key,
                dict(
                    transfer=transfer,
                    transport="stunnel",
                    endpoint="load_balancer",
                    pvcs=ONE_PVC,
                    mode="restricted",
                    run_as_user=1000,
                ),
            )
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
    result = render_runs(
        base, [spec for _key, spec in entries], {"__state_transfer_password": PASSWORD}
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    output = {}
    for key, spec in entries:
        output[key] = {side: load_side(spec["dir"], side) for side in ("source", "destination")}
    output["__stdout__"] = result.stdout
    return output
