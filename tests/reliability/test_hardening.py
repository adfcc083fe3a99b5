"""Hardening users ask for, on the local clusters: the load balancer admits only the source
ranges it is given, and the server pod's NetworkPolicy (enforced by the harness's node
agent, tests/clusters/node/netpol.py) admits the transfer and nothing else.

The stunnel client through an HTTP CONNECT proxy is proven with a real tinyproxy in
tests/dataplane/test_proxy.py; the Route's timeout annotations in tests/render.
"""

import pytest
from dataplane import tree
from e2e.playbook import output_of

pytestmark = [pytest.mark.clusters, pytest.mark.e2e]

# The destination's pods reach the source's load balancers from their own subnet
# (tests/clusters/network/layout.py): the "egress CIDR" of the destination cluster.
DESTINATION_EGRESS = "198.18.2.0/24"
SOMEWHERE_ELSE = "198.18.1.0/24"  # the source's pods, not the destination's


@pytest.mark.parametrize(
    "ranges, admitted",
    [([DESTINATION_EGRESS], True), ([SOMEWHERE_ELSE], False)],
    ids=["destination-admitted", "destination-not-in-the-ranges"],
)
def test_the_load_balancer_admits_only_its_source_ranges(transfer, ranges, admitted):
    data = transfer.create_pvc("source", "data")
    tree.build(data, specials=False)
    before = tree.snapshot(data)
    result = transfer.playbook(
        state_transfer_pvcs=[{"source": "data"}],
        state_transfer_transfer="rsync",
        state_transfer_transport="stunnel",
        state_transfer_endpoint="load_balancer",
        endpoint_load_balancer_source_ranges=ranges,
        transfer_rsync_retries=1,
    )
    output = output_of(result)
    if admitted:
        assert result.returncode == 0, output
        copied = tree.snapshot(transfer.pvc_dir("destination", "data"))
        assert not tree.rsync_differences(before, copied, specials=False)
    else:
        assert result.returncode != 0, output
        assert {e["pvc"]: e["state"] for e in result.report["pvcs"]} == {"data": "failed"}
        assert "rsync" in output and "retry 1 of 1" in output, output
    assert tree.snapshot(data) == before
    assert transfer.leftovers() == []


def test_the_network_policy_selects_the_server_and_admits_only_the_transfer_port(transfer):
    """The policy of a running transfer, read from the cluster: it selects exactly the server
    pod and admits one port, the one the Service targets; the transfer goes through it."""
    import threading

    from kubernetes import client as k8s

    data = transfer.create_pvc("source", "data")
    with open(data + "/big.bin", "wb") as handle:
        handle.write(b"\0" * (24 * tree.MIB))
    seen = {}
    stop = threading.Event()
    networking = k8s.NetworkingV1Api(transfer.clients["source"])
    namespace = transfer.namespaces["source"]

    def watch():  # a thread created in kf-world stays there (setns is per thread)
        while not stop.is_set() and "pod" not in seen:
            policies = networking.list_namespaced_network_policy(namespace).items
            pods = transfer.core["source"].list_namespaced_pod(
                namespace, label_selector="kubeferry.io/side=server"
            )
            services = transfer.core["source"].list_namespaced_service(namespace).items
            if policies and pods.items and services:
                seen.update(policy=policies[0], pod=pods.items[0], service=services[0])
            stop.wait(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        result = transfer.playbook(
            state_transfer_pvcs=[{"source": "data"}],
            state_transfer_transfer="rsync",
            state_transfer_transport="null",
            state_transfer_endpoint="load_balancer",
            state_transfer_bwlimit="8M",
        )
    finally:
        stop.set()
        watcher.join(timeout=10)
    assert result.returncode == 0, output_of(result)
    policy, pod, service = seen["policy"], seen["pod"], seen["service"]
    # The run's server labels (the pod may carry more, e.g. added by admission or the user).
    selector = policy.spec.pod_selector.match_labels
    assert selector["kubeferry.io/side"] == "server"
    assert selector.items() <= pod.metadata.labels.items()
    assert policy.spec.policy_types == ["Ingress"]
    [rule] = policy.spec.ingress
    [target] = [p.target_port for p in service.spec.ports]
    ports = {port.name: port.container_port for c in pod.spec.containers for port in c.ports or []}
    assert [(p.protocol, p.port) for p in rule.ports] == [("TCP", ports.get(target, target))]
    assert transfer.leftovers() == []
