"""Predicates of the endpoint waits on real Service, Route and Node shapes."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.kubeferry.state_transfer.plugins.module_utils.common import (
    ModuleFailure,
)
from ansible_collections.kubeferry.state_transfer.plugins.module_utils.endpoint import (
    node_port_of,
    pick_node_address,
    route_address,
    route_admitted,
    route_problem,
    selector_string,
)
from ansible_collections.kubeferry.state_transfer.plugins.module_utils.load_balancer import (
    has_ingress,
    ingress_host,
    resolve,
    service_port,
    service_type_problem,
)

REF = "Service app/kubeferry-3f9c2a1b-server"


def test_lb_without_ingress_is_not_ready(kube):
    service = kube.api_object("services", "lb_pending")
    assert not has_ingress(service)
    assert ingress_host(service) == ""


def test_lb_with_ip(kube):
    service = kube.api_object("services", "lb_ip")
    assert has_ingress(service)
    assert ingress_host(service) == "198.18.0.20"


def test_lb_hostname_wins(kube):
    service = kube.api_object("services", "lb_hostname")
    service["status"]["loadBalancer"]["ingress"][0]["ip"] = "198.18.0.21"
    assert ingress_host(service) == "a1b2c3d4e5f6-123456789.eu-west-1.elb.amazonaws.com"


def test_empty_ingress_entry_is_no_address(kube):
    service = kube.api_object("services", "lb_pending")
    service["status"]["loadBalancer"]["ingress"] = [{"ipMode": "VIP"}]
    assert not has_ingress(service)


def test_service_type_problems(kube):
    assert service_type_problem(None, REF) == REF + " not found"
    assert (
        service_type_problem(kube.api_object("services", "clusterip"), REF)
        == REF + " is of type ClusterIP, not LoadBalancer"
    )
    assert service_type_problem(kube.api_object("services", "lb_ip"), REF) == ""


def test_service_port_by_name_number_and_default(kube):
    service = kube.api_object("services", "lb_pending")
    assert service_port(service, None, REF)["port"] == 6443
    assert service_port(service, "metrics", REF)["port"] == 9090
    assert service_port(service, "9090", REF)["name"] == "metrics"
    with pytest.raises(ModuleFailure) as info:
        service_port(service, "ssh", REF)
    assert info.value.msg == REF + " has no port ssh; its ports: tls (6443), metrics (9090)"


def test_resolve_uses_getaddrinfo_and_treats_failure_as_empty():
    assert resolve("127.0.0.1") == ["127.0.0.1"]
    assert resolve("does-not-exist.invalid") == []


def test_routes(kube):
    assert route_admitted(kube.api_object("routes", "admitted_passthrough"))
    assert not route_admitted(kube.api_object("routes", "pending"))
    assert not route_admitted(kube.api_object("routes", "rejected"))
    assert route_problem(kube.api_object("routes", "pending"), "Route app/x") == ""
    assert route_problem(None, "Route app/x") == "Route app/x not found"


def test_rejected_route_names_router_reason_and_message(kube):
    problem = route_problem(kube.api_object("routes", "rejected"), "Route app/x")
    assert problem == (
        "Route app/x was rejected by router default: HostAlreadyClaimed: route "
        "kubeferry-3f9c2a1b-server already exposes taken.apps.example.com and is older"
    )


def test_route_addresses(kube):
    host = "kubeferry-3f9c2a1b-server-app.apps.example.com"
    assert route_address(kube.api_object("routes", "admitted_passthrough")) == dict(
        host=host, port=443, sni=host
    )
    # No spec.host: the router's generated host; edge TLS: 443 but no SNI of ours.
    assert route_address(kube.api_object("routes", "admitted_generated_host_edge")) == dict(
        host="kubeferry-3f9c2a1b-server-app.apps.cluster.example.org", port=443, sni=""
    )
    assert route_address(kube.api_object("routes", "admitted_plain")) == dict(
        host="plain.apps.example.com", port=80, sni=""
    )


def nodes(kube, *cases):
    return [kube.api_object("nodes", case) for case in cases]


def server_pod_on(kube, node):
    pod = kube.api_object("pods", "running_ready")
    pod["spec"]["nodeName"] = node
    return pod


def test_external_ip_is_preferred_over_internal(kube):
    found = pick_node_address(
        nodes(kube, "worker_internal_only", "worker_external"), [], ["ExternalIP", "InternalIP"]
    )
    assert found == ("worker-a", "198.18.10.11")


def test_not_ready_nodes_are_skipped(kube):
    found = pick_node_address(
        nodes(kube, "worker_not_ready", "worker_internal_only"), [], ["ExternalIP", "InternalIP"]
    )
    assert found == ("worker-b", "10.0.1.12")


def test_the_node_running_the_pods_comes_first_among_equal_types(kube):
    all_nodes = nodes(kube, "worker_external", "worker_internal_only")
    pods = [server_pod_on(kube, "worker-b")]
    assert pick_node_address(all_nodes, pods, ["InternalIP"]) == ("worker-b", "10.0.1.12")
    # A preferred type still wins over the pod's node.
    assert pick_node_address(all_nodes, pods, ["ExternalIP", "InternalIP"])[0] == "worker-a"


def test_local_traffic_policy_only_uses_the_pods_nodes(kube):
    all_nodes = nodes(kube, "worker_external", "worker_internal_only")
    pods = [server_pod_on(kube, "worker-b")]
    assert pick_node_address(all_nodes, pods, ["ExternalIP", "InternalIP"], True) == (
        "worker-b",
        "10.0.1.12",
    )
    assert pick_node_address(all_nodes, [], ["ExternalIP"], True) == ("", "")


def test_no_address_of_the_wanted_types(kube):
    assert pick_node_address(nodes(kube, "worker_internal_only"), [], ["ExternalIP"]) == ("", "")


def test_node_port_of(kube):
    service = kube.api_object("services", "nodeport")
    assert node_port_of(service, "plain")[0]["nodePort"] == 30873
    assert node_port_of(service, None)[0]["nodePort"] == 30643
    assert node_port_of(service, "6443")[0]["nodePort"] == 30643
    assert node_port_of(service, "ssh") == (None, "has no port ssh (its ports: tls, plain)")
    clusterip = kube.api_object("services", "clusterip")
    assert node_port_of(clusterip, "tls") == (None, "port tls has no nodePort")


def test_selector_string(kube):
    assert (
        selector_string(kube.api_object("services", "nodeport"))
        == "kubeferry.io/run=3f9c2a1b,kubeferry.io/side=server"
    )
