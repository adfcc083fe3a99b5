"""NetworkPolicy enforcement by the node agent (node/netpol.py), against the real API servers.

Run as root from the repository root: ``pytest -m clusters tests/clusters/test_netpol.py``.
The test thread lives in kf-world: towards a pod IP it is "the node" (the pod sees the
node's address on the pod bridge, as it sees the LB/NodePort proxies and the router).
"""

from __future__ import annotations

import socket
import time

import pytest

from .network import layout
from .node.testing import is_ready, pod_body, wait_for, wait_pod, wait_ready

pytestmark = pytest.mark.clusters

CLUSTER = "source"
NODE = layout.CLUSTERS[CLUSTER]["gateway"]  # what a pod sees of the node
PODS = layout.CLUSTERS[CLUSTER]["subnet"]
# A TCP server on each port given: greets with "port <n>" and hangs up.
LISTENER = r"""
import socket, sys, threading
def serve(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(16)
    while True:
        c, _ = s.accept()
        try:
            c.sendall(b"port %d\n" % port)
        except OSError:  # probes hang up early
            pass
        c.close()
for port in sys.argv[1:]:
    threading.Thread(target=serve, args=(int(port),)).start()
"""
# From another pod: "<port>: <greeting>" or "<port>: blocked" for each port.
DIALLER = r"""
import socket, sys
for port in sys.argv[2:]:
    try:
        with socket.create_connection((sys.argv[1], int(port)), 3) as s:
            print("%s: %s" % (port, s.recv(100).decode().strip()))
    except OSError:
        print("%s: blocked" % port)
"""


def _apis(clusters):
    from kubernetes import client

    api_client = clusters.client(CLUSTER)
    return client.CoreV1Api(api_client), client.NetworkingV1Api(api_client)


def _greeting(address, port, timeout=1.5):
    """What the server on address:port says, b"" when a proxy hangs up, None when the
    connection is not accepted (dropped: it times out)."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as s:
            s.settimeout(max(timeout, 10))
            chunks = []
            while True:
                data = s.recv(100)
                if not data:
                    return b"".join(chunks)
                chunks.append(data)
    except OSError:
        return None


def _listener(core, namespace, name, ports, probe_port):
    body = pod_body(name, "", labels={"app": name})
    container = body["spec"]["containers"][0]
    container["command"] = ["python3", "-c", LISTENER, *[str(p) for p in ports]]
    container["ports"] = [
        {"name": f"p{port}", "containerPort": port, "protocol": "TCP"} for port in ports
    ]
    container["readinessProbe"] = {
        "tcpSocket": {"port": probe_port},
        "periodSeconds": 1,
        "failureThreshold": 1,
    }
    core.create_namespaced_pod(namespace, body)
    return wait_ready(core, namespace, name).status.pod_ip


def _dial_from_pod(core, namespace, name, address, ports):
    """{port: greeting or "blocked"} as seen by a new pod of the same cluster."""
    body = pod_body(name, "")
    body["spec"]["containers"][0]["command"] = [
        "python3",
        "-c",
        DIALLER,
        address,
        *[str(p) for p in ports],
    ]
    core.create_namespaced_pod(namespace, body)
    pod = wait_pod(core, namespace, name, timeout=60)
    out = core.read_namespaced_pod_log(name, namespace)
    assert pod.status.phase == "Succeeded", out
    return dict(line.split(": ", 1) for line in out.splitlines())


def _policy(name, selector, ingress):
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name},
        "spec": {
            "podSelector": {"matchLabels": selector},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }


def test_a_policy_admits_only_its_port_and_deleting_it_opens_the_pod(clusters, namespace):
    core, net = _apis(clusters)
    # 8080 is admitted, 8081 is not, 8082 only serves the readiness probe.
    ip = _listener(core, namespace, "guarded", (8080, 8081, 8082), probe_port=8082)
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "guarded"},
            "spec": {
                "type": "LoadBalancer",
                "selector": {"app": "guarded"},
                "ports": [
                    {"name": "open", "port": 9080, "targetPort": 8080},
                    {"name": "shut", "port": 9081, "targetPort": 8081},
                ],
            },
        },
    )

    def lb_address():
        svc = core.read_namespaced_service("guarded", namespace)
        ingress = svc.status.load_balancer.ingress if svc.status.load_balancer else None
        return ingress[0].ip if ingress else None

    lb = wait_for(lb_address, 30, what="LoadBalancer address")
    # Open before any policy: directly and through the load balancer.
    for port in (8080, 8081, 8082):
        assert wait_for(lambda p=port: _greeting(ip, p), 10, what=f"port {port}") == (
            b"port %d\n" % port
        )
    assert wait_for(lambda: _greeting(lb, 9081), 20, what="LB to 8081") == b"port 8081\n"

    net.create_namespaced_network_policy(
        namespace,
        _policy("only-8080", {"app": "guarded"}, [{"ports": [{"protocol": "TCP", "port": 8080}]}]),
    )
    wait_for(lambda: _greeting(ip, 8081) is None, 20, what="port 8081 dropped")
    assert _greeting(ip, 8080) == b"port 8080\n"
    # The node's traffic is filtered like any other, except the kubelet's readiness probe.
    assert _greeting(ip, 8082) == b"port 8082\n"
    # Through the load balancer: the proxy connects from the node's address; for 8081 its
    # connection is dropped and it hangs up on the client after its connect timeout.
    assert _greeting(lb, 9080) == b"port 8080\n"
    assert _greeting(lb, 9081, timeout=15) == b""
    # From another pod: only the admitted port; the probe port is not open to pods.
    assert _dial_from_pod(core, namespace, "client", ip, (8080, 8081, 8082)) == {
        "8080": "port 8080",
        "8081": "blocked",
        "8082": "blocked",
    }
    # The probe on 8082 still passes (failureThreshold 1: one dropped probe would show).
    time.sleep(3)
    assert is_ready(core.read_namespaced_pod("guarded", namespace))

    net.delete_namespaced_network_policy("only-8080", namespace)
    assert wait_for(lambda: _greeting(ip, 8081), 20, what="port 8081 open again") == (
        b"port 8081\n"
    )
    assert wait_for(lambda: _greeting(lb, 9081), 20, what="LB to 8081") == b"port 8081\n"
    assert _dial_from_pod(core, namespace, "client-after", ip, (8080, 8081, 8082)) == {
        "8080": "port 8080",
        "8081": "port 8081",
        "8082": "port 8082",
    }


def test_ip_blocks_named_ports_and_unselected_pods(clusters, namespace):
    core, net = _apis(clusters)
    ip = _listener(core, namespace, "guarded", (8080, 8081), probe_port=8080)
    bystander = _listener(core, namespace, "bystander", (8081,), probe_port=8081)
    net.create_namespaced_network_policy(
        namespace,
        _policy(
            "pods-only",
            {"app": "guarded"},
            [
                # By name: the container port p8080, from anywhere.
                {"ports": [{"port": "p8080"}]},
                # 8081 from the pods of the cluster, not from the node's address.
                {
                    "ports": [{"protocol": "TCP", "port": 8081}],
                    "from": [{"ipBlock": {"cidr": PODS, "except": [f"{NODE}/32"]}}],
                },
            ],
        ),
    )
    wait_for(lambda: _greeting(ip, 8081) is None, 20, what="port 8081 dropped for the node")
    assert _greeting(ip, 8080) == b"port 8080\n"
    assert _dial_from_pod(core, namespace, "client", ip, (8080, 8081)) == {
        "8080": "port 8080",
        "8081": "port 8081",
    }
    # A pod the policy does not select stays open.
    assert _greeting(bystander, 8081) == b"port 8081\n"
