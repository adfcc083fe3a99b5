"""The server's NetworkPolicy, rendered without a cluster: present by default, selecting
exactly the server pod, admitting only the port its Service targets; ipBlocks only from
state_transfer_network_policy_source_ranges; absent when state_transfer_network_policy is
false."""

import os

import pytest
import yaml

from .conftest import ONE_PVC, load_side, render_runs
from .test_render import CASES, case_id, objects_of, pods

pytestmark = pytest.mark.render

# The container port each transport exposes to the endpoint (the roles' defaults).
EXPOSED = {"stunnel": ("transport", "tls", 6443), "null": (None, "transfer", 8873)}


def policies(objects):
    return [obj for obj in objects if obj["kind"] == "NetworkPolicy"]


def selects(policy, pod):
    """What a network plugin does with matchLabels (the policy uses nothing else)."""
    selector = policy["spec"]["podSelector"]
    assert set(selector) == {"matchLabels"}, selector
    labels = pod["metadata"].get("labels") or {}
    return policy["metadata"]["namespace"] == pod["metadata"]["namespace"] and all(
        labels.get(key) == value for key, value in selector["matchLabels"].items()
    )


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_the_server_pod_admits_only_its_service_port(rendered, case):
    transport = case[1]
    source = objects_of(rendered, case, "source")
    [policy] = policies(source)
    assert policies(objects_of(rendered, case, "destination")) == []
    [server] = pods(source)
    [service] = [obj for obj in source if obj["kind"] == "Service"]
    # Named and labelled like the run's other server objects.
    assert policy["metadata"]["name"] == server["metadata"]["name"] == service["metadata"]["name"]
    assert policy["metadata"]["namespace"] == server["metadata"]["namespace"]
    assert policy["metadata"]["labels"] == server["metadata"]["labels"]
    # Exactly this run's server pod: its labels, none of the clients of the same render.
    assert policy["spec"]["podSelector"] == {"matchLabels": server["metadata"]["labels"]}
    assert selects(policy, server)
    others = [pod for pod in pods(objects_of(rendered, case)) if pod is not server]
    assert others and not any(selects(policy, pod) for pod in others)
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert "egress" not in policy["spec"]
    # One rule: TCP to the container port the Service targets, from anywhere.
    [rule] = policy["spec"]["ingress"]
    assert "from" not in rule
    [target] = [port["targetPort"] for port in service["spec"]["ports"]]
    container_ports = {
        port["name"]: (container["name"], port["containerPort"])
        for container in server["spec"]["containers"]
        for port in container.get("ports", [])
    }
    container, number = container_ports[target]
    assert rule["ports"] == [{"protocol": "TCP", "port": number}]
    want_container, want_name, want_port = EXPOSED[transport]
    assert (target, number) == (want_name, want_port)
    if want_container:
        assert container == want_container
    # Applied before the Pod, so the pod never runs without it.
    kinds = [obj["kind"] for obj in source]
    assert kinds.index("NetworkPolicy") < kinds.index("Pod")


def _spec(tmp_path, name, endpoint="load_balancer", transport="stunnel", **host_vars):
    return {
        "dir": str(tmp_path / name),
        "source": {"context": "source", "namespace": "shop"},
        "destination": {"context": "destination", "namespace": "shop-new"},
        "pvcs": ONE_PVC,
        "transfer": "rsync",
        "transport": transport,
        "endpoint": endpoint,
        "host_vars": host_vars,
    }


def test_ip_blocks_only_from_the_policy_source_ranges_and_off_when_asked(tmp_path):
    lb_ranges = ["198.51.100.0/24"]
    specs = {
        # A string, as from -e or an AWX survey; the LB's ranges stay on the Service.
        "ranges": _spec(
            tmp_path,
            "ranges",
            endpoint_load_balancer_source_ranges=lb_ranges,
            state_transfer_network_policy_source_ranges="203.0.113.0/24, 2001:db8::/32",
        ),
        "node-port-ranges": _spec(
            tmp_path,
            "node-port-ranges",
            endpoint="node_port",
            transport="null",
            state_transfer_network_policy_source_ranges=["192.0.2.7/32"],
        ),
        "lb-ranges-only": _spec(
            tmp_path, "lb-ranges-only", endpoint_load_balancer_source_ranges=lb_ranges
        ),
        "off": _spec(tmp_path, "off", endpoint="route", state_transfer_network_policy="false"),
    }
    result = render_runs(tmp_path, list(specs.values()))
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    source = {name: load_side(spec["dir"], "source") for name, spec in specs.items()}

    [policy] = policies(source["ranges"])
    assert policy["spec"]["ingress"] == [
        {
            "ports": [{"protocol": "TCP", "port": 6443}],
            "from": [
                {"ipBlock": {"cidr": "203.0.113.0/24"}},
                {"ipBlock": {"cidr": "2001:db8::/32"}},
            ],
        }
    ]
    [service] = [obj for obj in source["ranges"] if obj["kind"] == "Service"]
    assert service["spec"]["loadBalancerSourceRanges"] == lb_ranges

    [policy] = policies(source["node-port-ranges"])
    assert policy["spec"]["ingress"] == [
        {
            "ports": [{"protocol": "TCP", "port": 8873}],
            "from": [{"ipBlock": {"cidr": "192.0.2.7/32"}}],
        }
    ]

    # loadBalancerSourceRanges alone do not narrow the policy: behind the load balancer the
    # pod may see a node's or the balancer's address (see network-policy.yaml.j2).
    [policy] = policies(source["lb-ranges-only"])
    assert policy["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 6443}]}]

    assert policies(source["off"]) == []
    assert [obj["kind"] for obj in source["off"]].count("Pod") == 1
    with open(os.path.join(specs["off"]["dir"], "plan.yaml")) as handle:
        settings = yaml.safe_load(handle)["settings"]
    assert settings["network_policy"] is False
    with open(os.path.join(specs["ranges"]["dir"], "plan.yaml")) as handle:
        settings = yaml.safe_load(handle)["settings"]
    assert settings["network_policy"] is True
    assert settings["network_policy_source_ranges"] == ["203.0.113.0/24", "2001:db8::/32"]


def test_a_source_range_that_is_no_cidr_is_refused_before_anything_is_written(tmp_path):
    spec = _spec(tmp_path, "bad", state_transfer_network_policy_source_ranges=["203.0.113.10"])
    result = render_runs(tmp_path, [spec])
    assert result.returncode != 0
    assert "state_transfer_network_policy_source_ranges: '203.0.113.10' is not a CIDR" in (
        result.stdout
    ), result.stdout[-4000:]
    assert not os.path.exists(spec["dir"])
