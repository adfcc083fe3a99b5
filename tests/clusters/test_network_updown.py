"""``python -m tests.clusters.network up|down`` in a private world namespace (needs root).

Uses its own world namespace and pod-namespace prefix (environment overrides of the layout),
so it runs next to a live pair of clusters without touching it.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

pytestmark = pytest.mark.clusters

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))


def _ip(*args):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


@pytest.fixture
def private_world():
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    name = f"kfu-{secrets.token_hex(3)}"
    _ip("netns", "add", name)
    yield name
    _ip("netns", "del", name)


def _network(world, prefix, action, state_dir):
    env = {**os.environ, "KF_WORLD_NETNS": world, "KF_POD_NETNS_PREFIX": prefix, "PYTHONPATH": REPO}
    return subprocess.run(
        [sys.executable, "-m", "tests.clusters.network", action, "--state-dir", str(state_dir)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_network_up_then_down_twice_leaves_nothing(private_world, tmp_path):
    prefix = f"{private_world}-p-"
    up = _network(private_world, prefix, "up", tmp_path)
    assert up.returncode == 0, up.stderr
    links = _ip("-n", private_world, "-br", "addr").stdout
    assert "198.18.1.1/24" in links and "198.18.2.1/24" in links and "198.18.0.53/32" in links
    rules = subprocess.run(
        ["ip", "netns", "exec", private_world, "iptables", "-S"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "-A KF-ISOLATE -s 198.18.1.0/24 -d 198.18.2.0/24 -j DROP" in rules
    with open(tmp_path / "run" / "dnsmasq.pid") as fh:
        dnsmasq = int(fh.read())
    assert os.path.exists(f"/proc/{dnsmasq}")
    # What a crashed node agent leaves: a pod network namespace.
    _ip("netns", "add", f"{prefix}source-deadbeef")
    for _attempt in range(2):  # idempotent
        down = _network(private_world, prefix, "down", tmp_path)
        assert down.returncode == 0, down.stderr
    assert f"{prefix}source-deadbeef" not in _ip("netns", "list").stdout
    assert (
        not os.path.exists(f"/proc/{dnsmasq}")
        or "dnsmasq" not in open(f"/proc/{dnsmasq}/cmdline").read()
    )
    rules = subprocess.run(
        ["ip", "netns", "exec", private_world, "iptables", "-S"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "KF-ISOLATE" not in rules
    assert _ip("-n", private_world, "link", "show", "kfsrc0").returncode != 0
    assert _ip("-n", private_world, "link", "show", "kfw0").returncode != 0


def test_a_pod_bridge_keeps_its_mac_while_pods_come_and_go(private_world, tmp_path):
    # Pods cache their gateway's MAC (the bridge's). A bridge without a fixed MAC takes the
    # lowest of its ports: a pod veth with a lower one would change it, and running pods
    # would send to a MAC nobody answers until their neighbour entry expired.
    prefix = f"{private_world}-p-"
    up = _network(private_world, prefix, "up", tmp_path)
    assert up.returncode == 0, up.stderr

    def ip(*args):
        done = _ip("-n", private_world, *args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def bridge_mac():
        return ip("-br", "link", "show", "kfdst0").split()[2]

    try:
        before = bridge_mac()
        lowest = "00:00:00:00:00:01"  # lower than any MAC a pod veth gets
        ip("link", "add", "kfvmac", "address", lowest, "type", "veth", "peer", "name", "kfvmacp")
        ip("link", "set", "kfvmac", "master", "kfdst0", "up")
        with_the_port = bridge_mac()
        ip("link", "del", "kfvmac")
        assert (with_the_port, bridge_mac()) == (before, before)
        assert before != "00:00:00:00:00:00"
    finally:
        down = _network(private_world, prefix, "down", tmp_path)
        assert down.returncode == 0, down.stderr
