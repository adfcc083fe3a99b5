"""endpoint_address run as a module against a mocked client."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import itertools

from ansible_collections.kubeferry.state_transfer.plugins.modules import endpoint_address

ROUTE = dict(kind="route", name="kubeferry-3f9c2a1b-server", namespace="app")
NODE_PORT = dict(kind="node_port", name="kubeferry-3f9c2a1b-server", namespace="app", port="tls")
HOST = "kubeferry-3f9c2a1b-server-app.apps.example.com"


def run(kube, args, reads, check_mode=False):
    client = kube.fake_client(reads)
    result, failed = kube.run_module(endpoint_address, args, client, check_mode)
    return result, failed, client


def test_route_waits_until_admitted(kube, clock):
    pending = kube.instance(kube.api_object("routes", "pending"))
    admitted = kube.instance(kube.api_object("routes", "admitted_passthrough"))
    result, failed, client = run(kube, ROUTE, [pending, pending, admitted])
    assert not failed
    assert (result["host"], result["port"], result["sni"]) == (HOST, 443, HOST)
    assert clock.sleeps == [2, 2]
    client.resource.assert_called_with("Route", "route.openshift.io/v1")


def test_rejected_route_fails_at_once_with_the_routers_reason(kube, clock):
    rejected = kube.instance(kube.api_object("routes", "rejected"))
    result, failed, client = run(kube, ROUTE, [rejected])
    assert failed
    assert result["msg"] == (
        "Route app/kubeferry-3f9c2a1b-server was rejected by router default: HostAlreadyClaimed: "
        "route kubeferry-3f9c2a1b-server already exposes taken.apps.example.com and is older"
    )
    assert client.get.call_count == 1


def test_route_never_admitted_times_out(kube, clock):
    pending = kube.instance(kube.api_object("routes", "pending"))
    result, failed, _client = run(kube, dict(ROUTE, wait_timeout=30), itertools.repeat(pending))
    assert failed
    assert result["msg"].startswith(
        "Route app/kubeferry-3f9c2a1b-server was not admitted by any router after 30 s"
    )
    assert clock.elapsed == 30


def test_missing_route(kube, clock):
    result, failed, _client = run(kube, ROUTE, [kube.not_found()])
    assert failed
    assert result["msg"] == "Route app/kubeferry-3f9c2a1b-server not found"


def test_route_check_mode(kube, clock):
    result, failed, _client = run(kube, ROUTE, [kube.not_found()], check_mode=True)
    assert not failed
    assert result["host"] == ""
    assert result["msg"].endswith("would wait for a router to admit it")
    admitted = kube.instance(kube.api_object("routes", "admitted_plain"))
    result, failed, _client = run(kube, ROUTE, [admitted], check_mode=True)
    assert (result["host"], result["port"], result["sni"]) == ("plain.apps.example.com", 80, "")
    assert clock.sleeps == []


def node_port_reads(kube, service_case, node_cases, pod_nodes=()):
    service = kube.api_object("services", service_case)
    pods = []
    for node in pod_nodes:
        pod = kube.api_object("pods", "running_ready")
        pod["spec"]["nodeName"] = node
        pods.append(pod)
    nodes = [kube.api_object("nodes", case) for case in node_cases]
    return [kube.instance(service), kube.listing("Pod", pods), kube.listing("Node", nodes)]


def test_node_port_uses_a_ready_nodes_external_ip(kube, clock):
    reads = node_port_reads(
        kube, "nodeport", ["worker_not_ready", "worker_internal_only", "worker_external"]
    )
    result, failed, client = run(kube, NODE_PORT, reads)
    assert not failed
    assert (result["host"], result["port"], result["sni"]) == ("198.18.10.11", 30643, "")
    # The Service's pods are looked up by its selector; Nodes cluster-wide.
    pods_call, nodes_call = client.get.call_args_list[1:]
    assert pods_call.kwargs == dict(
        namespace="app", label_selector="kubeferry.io/run=3f9c2a1b,kubeferry.io/side=server"
    )
    assert nodes_call.kwargs == dict(namespace=None)


def test_node_port_never_returns_the_cluster_ip(kube, clock):
    reads = node_port_reads(kube, "nodeport", ["worker_internal_only"])
    result, failed, _client = run(kube, dict(NODE_PORT, address_types=["InternalIP"]), reads)
    assert result["host"] == "10.0.1.12"
    assert result["host"] != result["service"]["spec"]["clusterIP"]


def test_node_port_address_override_reads_only_the_service(kube, clock):
    service = kube.instance(kube.api_object("services", "nodeport"))
    result, failed, client = run(
        kube, dict(NODE_PORT, port="plain", address="gw.example.com"), [service]
    )
    assert not failed
    assert (result["host"], result["port"]) == ("gw.example.com", 30873)
    assert client.get.call_count == 1


def test_node_port_local_policy_waits_for_the_pods_node(kube, clock):
    without_pod = node_port_reads(
        kube, "nodeport_local", ["worker_external", "worker_internal_only"]
    )
    with_pod = node_port_reads(
        kube, "nodeport_local", ["worker_external", "worker_internal_only"], pod_nodes=["worker-b"]
    )
    result, failed, _client = run(kube, NODE_PORT, without_pod + with_pod)
    assert not failed
    assert result["host"] == "10.0.1.12"
    assert clock.sleeps == [2]


def test_node_port_without_usable_node_times_out_and_says_what_is_missing(kube, clock):
    reads = itertools.chain.from_iterable(
        node_port_reads(kube, "nodeport", ["worker_internal_only"])
        for _attempt in itertools.count()
    )
    result, failed, _client = run(
        kube, dict(NODE_PORT, address_types=["ExternalIP"], wait_timeout=10), reads
    )
    assert failed
    assert result["msg"].startswith(
        "Service app/kubeferry-3f9c2a1b-server: found no node address to dial after 10 s: "
        "no Ready node has an address of type ExternalIP. Set address"
    )


def test_node_port_on_a_cluster_ip_service_fails_at_once(kube, clock):
    reads = node_port_reads(kube, "clusterip", ["worker_external"])
    result, failed, _client = run(kube, NODE_PORT, reads)
    assert failed
    assert result["msg"] == (
        "Service app/kubeferry-3f9c2a1b-server is of type ClusterIP, not NodePort or LoadBalancer"
    )


def test_node_port_unknown_port(kube, clock):
    reads = node_port_reads(kube, "nodeport", ["worker_external"])
    result, failed, _client = run(kube, dict(NODE_PORT, port="ssh"), reads)
    assert failed
    assert (
        result["msg"]
        == "Service app/kubeferry-3f9c2a1b-server has no port ssh (its ports: tls, plain)"
    )


def test_node_port_forbidden_to_list_nodes_suggests_address(kube, clock):
    service = kube.instance(kube.api_object("services", "nodeport"))
    reads = [service, kube.listing("Pod", []), kube.api_error(403, "Forbidden")]
    result, failed, _client = run(kube, NODE_PORT, reads)
    assert failed
    assert "listing Nodes needs cluster-wide read access. Set address" in result["msg"]


def test_node_port_check_mode(kube, clock):
    result, failed, client = run(kube, NODE_PORT, [kube.not_found()], check_mode=True)
    assert not failed
    assert result["msg"].endswith("does not exist yet; would wait for its node port")
    assert client.get.call_count == 1


def test_route_on_a_cluster_without_the_route_api(kube, clock):
    from kubernetes.dynamic.exceptions import ResourceNotFoundError

    client = kube.fake_client([])
    client.resource.side_effect = ResourceNotFoundError("No matches found for {'kind': 'Route'}")
    result, failed = kube.run_module(endpoint_address, ROUTE, client)
    assert failed
    assert result["msg"] == (
        "The cluster does not serve Route (route.openshift.io/v1): Routes exist on OpenShift "
        "only; elsewhere use endpoint load_balancer or node_port"
    )
