"""Self-tests of the twin clusters' networking (issue 3): LB, NodePort, Route, DNS, isolation.

Run as root from the repository root: ``pytest -m clusters tests/clusters/test_network.py``.
The test thread lives in kf-world (the ``clusters`` fixture), where the exposed endpoints are.
"""

from __future__ import annotations

import socket
import ssl
import time

import pytest

from .node.testing import pod_body, tls_material, wait_for, wait_pod, wait_ready

pytestmark = pytest.mark.clusters

ROUTE = ("route.openshift.io", "v1")
ROUTER = "198.18.0.12"
SOURCE_NODE = "198.18.0.11"

# A TCP server (greets, then sends `size` bytes) in the pod's own python3.
GREETER = r"""
import os, socket, sys
size = int(sys.argv[1])
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080)); s.listen(16)
while True:
    c, _ = s.accept()
    try:
        c.sendall(b"hello from " + os.uname().nodename.encode() + b"\n" + b"x" * size)
    except OSError:  # probes and reset tests hang up early
        pass
    c.close()
"""


def _api(clusters, cluster):
    from kubernetes import client

    api_client = clusters.client(cluster)
    return client.CoreV1Api(api_client), client.CustomObjectsApi(api_client)


def _greeter(core, namespace, name, size=0, **extra):
    body = pod_body(name, "", labels={"app": name}, **extra)
    c = body["spec"]["containers"][0]
    c["command"] = ["python3", "-c", GREETER, str(size)]
    c["ports"] = [{"name": "greet", "containerPort": 8080}]
    c["readinessProbe"] = {"tcpSocket": {"port": "greet"}, "periodSeconds": 1}
    core.create_namespaced_pod(namespace, body)


def _service(core, namespace, name, typ="LoadBalancer", annotations=None, ports=None):
    return core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": name, "annotations": annotations or {}},
            "spec": {
                "type": typ,
                "selector": {"app": name},
                "ports": ports or [{"name": "greet", "port": 9000, "targetPort": "greet"}],
            },
        },
    )


def _ingress(core, namespace, name, timeout=30):
    def check():
        svc = core.read_namespaced_service(name, namespace)
        ing = svc.status.load_balancer.ingress if svc.status.load_balancer else None
        return svc if ing else None

    return wait_for(check, timeout, what=f"LoadBalancer ingress of {name}")


def _recv_all(address, port, timeout=5):
    with socket.create_connection((address, port), timeout=timeout) as s:
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)


def _resolve(clusters, name):
    proc = clusters.run("getent", "ahostsv4", name, timeout=20)
    return proc.stdout.split()[0] if proc.returncode == 0 and proc.stdout else None


def test_server_reachable_by_lb_nodeport_and_route_but_not_pod_ip(clusters, namespace):
    src, custom = _api(clusters, "source")
    dst, _custom = _api(clusters, "destination")
    route_host = f"tls-{namespace}.apps.source.kf.test"
    ca, cert, key = tls_material([route_host])
    src.create_namespaced_secret(
        namespace, {"metadata": {"name": "tls"}, "stringData": {"tls.crt": cert, "tls.key": key}}
    )
    dst.create_namespaced_config_map(
        namespace, {"metadata": {"name": "ca"}, "data": {"ca.crt": ca}}
    )
    _greeter(
        src,
        namespace,
        "greet",
        extra_containers=[
            {
                "name": "tls",
                "image": "any",
                "command": [
                    "openssl",
                    "s_server",
                    "-accept",
                    "8443",
                    "-www",
                    "-cert",
                    "/tls/tls.crt",
                    "-key",
                    "/tls/tls.key",
                ],
                "ports": [{"name": "https", "containerPort": 8443}],
                "volumeMounts": [{"name": "tls", "mountPath": "/tls", "readOnly": True}],
            }
        ],
        volumes=[{"name": "tls", "secret": {"secretName": "tls"}}],
    )
    _service(
        src,
        namespace,
        "greet",
        ports=[
            {"name": "greet", "port": 9000, "targetPort": "greet"},
            {"name": "https", "port": 443, "targetPort": "https"},
        ],
    )
    custom.create_namespaced_custom_object(
        *ROUTE,
        namespace,
        "routes",
        {
            "apiVersion": "route.openshift.io/v1",
            "kind": "Route",
            "metadata": {"name": "tls"},
            "spec": {
                "to": {"kind": "Service", "name": "greet"},
                "port": {"targetPort": "https"},
                "tls": {"termination": "passthrough"},
            },
        },
    )
    pod = wait_ready(src, namespace, "greet")
    svc = _ingress(src, namespace, "greet")
    lb_ip = svc.status.load_balancer.ingress[0].ip
    assert lb_ip.startswith("198.18.0.") and 100 <= int(lb_ip.rsplit(".", 1)[1]) < 150
    node_port = [p.node_port for p in svc.spec.ports if p.name == "greet"][0]

    assert _recv_all(lb_ip, 9000) == b"hello from greet\n"
    assert _recv_all(SOURCE_NODE, node_port) == b"hello from greet\n"

    def admitted():
        r = custom.get_namespaced_custom_object(*ROUTE, namespace, "routes", "tls")
        ing = (r.get("status") or {}).get("ingress") or []
        return r if ing and ing[0]["conditions"][0]["status"] == "True" else None

    route = wait_for(admitted, 30, what="Route admitted")
    assert route["status"]["ingress"][0]["host"] == route_host
    assert _resolve(clusters, route_host) == ROUTER

    # TLS passthrough by SNI from the test thread: the pod's own certificate answers.
    ctx = ssl.create_default_context(cadata=ca)

    def tls_get(server_name):
        try:
            with socket.create_connection((ROUTER, 443), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname=server_name) as tls:
                    tls.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    return tls.recv(4096)
        except (ssl.SSLError, OSError):
            return None

    # The router picks up the pod once it listens (the tls container has no probe).
    assert b"HTTP/1.0 200 ok" in wait_for(lambda: tls_get(route_host), 20, what="TLS via router")
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        with socket.create_connection((ROUTER, 443), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="nobody.apps.source.kf.test"):
                pass

    pod_ip = pod.status.pod_ip
    # From a pod of the destination cluster: exposed endpoints work, the pod IP does not.
    client_script = "; ".join(
        [
            f"python3 -c \"import socket; s=socket.create_connection(('{lb_ip}', 9000), 5); "
            "print('lb:', s.recv(100).decode().strip())\"",
            f"python3 -c \"import socket; socket.create_connection(('{pod_ip}', 8080), 3)"
            '" 2>/dev/null && echo pod-ip: reachable || echo pod-ip: unreachable',
            f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | openssl s_client -quiet "
            f"-connect {route_host}:443 "
            f"-servername {route_host} -CAfile /ca/ca.crt -verify_return_error 2>/dev/null "
            "| head -1",
        ]
    )
    dst.create_namespaced_pod(
        namespace,
        pod_body(
            "client",
            client_script,
            volumes=[{"name": "ca", "configMap": {"name": "ca"}}],
            container={"volumeMounts": [{"name": "ca", "mountPath": "/ca"}]},
        ),
    )
    done = wait_pod(dst, namespace, "client", timeout=60)
    out = dst.read_namespaced_pod_log("client", namespace)
    assert done.status.phase == "Succeeded", out
    assert out.splitlines() == ["lb: hello from greet", "pod-ip: unreachable", "HTTP/1.0 200 ok"]


def test_lb_fault_knobs_never_and_dns_delay(clusters, namespace):
    core, _custom = _api(clusters, "destination")
    _greeter(core, namespace, "never")
    _greeter(core, namespace, "slow")
    _service(core, namespace, "never", annotations={"kf.test/lb-never": "true"})
    _service(core, namespace, "slow", annotations={"kf.test/lb-dns-delay-seconds": "4"})
    svc = _ingress(core, namespace, "slow")
    started = time.monotonic()
    hostname = svc.status.load_balancer.ingress[0].hostname
    assert hostname == f"slow-{namespace}.lb.destination.kf.test"
    assert svc.status.load_balancer.ingress[0].ip is None
    assert _resolve(clusters, hostname) is None
    address = wait_for(
        lambda: _resolve(clusters, hostname), 20, interval=0.5, what=f"DNS of {hostname}"
    )
    assert time.monotonic() - started > 2
    wait_ready(core, namespace, "slow")
    assert _recv_all(address, 9000) == b"hello from slow\n"
    never = core.read_namespaced_service("never", namespace)
    assert not (never.status.load_balancer and never.status.load_balancer.ingress)


def test_lb_reset_after_bytes_knob(clusters, namespace):
    core, _custom = _api(clusters, "source")
    _greeter(core, namespace, "flaky", size=200_000)
    _service(core, namespace, "flaky", annotations={"kf.test/reset-after-bytes": "1000"})
    wait_ready(core, namespace, "flaky")
    ip = _ingress(core, namespace, "flaky").status.load_balancer.ingress[0].ip
    received = bytearray()
    with pytest.raises(ConnectionResetError):
        with socket.create_connection((ip, 9000), timeout=5) as s:
            while True:
                data = s.recv(65536)
                if not data:
                    break
                received += data
                time.sleep(0.05)
    assert len(received) <= 1000
    # Only once: the next connection gets everything.
    assert len(_recv_all(ip, 9000)) == len(b"hello from flaky\n") + 200_000


def test_duplicate_route_host_is_not_admitted(clusters, namespace):
    core, custom = _api(clusters, "source")
    web = pod_body(
        "web",
        "mkdir -p /tmp/www && echo web-ok > /tmp/www/index.html && "
        "exec python3 -m http.server 8080 --directory /tmp/www",
        labels={"app": "web"},
        container={"readinessProbe": {"httpGet": {"port": 8080, "path": "/"}, "periodSeconds": 1}},
    )
    core.create_namespaced_pod(namespace, web)
    _service(
        core,
        namespace,
        "web",
        typ="ClusterIP",
        ports=[{"name": "http", "port": 80, "targetPort": 8080}],
    )
    host = f"same-{namespace}.apps.source.kf.test"
    for name in ("first", "second"):
        custom.create_namespaced_custom_object(
            *ROUTE,
            namespace,
            "routes",
            {
                "apiVersion": "route.openshift.io/v1",
                "kind": "Route",
                "metadata": {"name": name},
                "spec": {"host": host, "to": {"kind": "Service", "name": "web"}},
            },
        )
        time.sleep(1.1)  # creationTimestamp has second resolution: the first one is older

    def conditions(name):
        r = custom.get_namespaced_custom_object(*ROUTE, namespace, "routes", name)
        ing = (r.get("status") or {}).get("ingress") or []
        return ing[0]["conditions"][0] if ing else None

    first = wait_for(lambda: conditions("first"), 30, what="status of first")
    second = wait_for(lambda: conditions("second"), 30, what="status of second")
    assert first["status"] == "True"
    assert (second["status"], second["reason"]) == ("False", "HostAlreadyClaimed")
    # Plain HTTP on 80 by Host header reaches the first route's pods.
    wait_ready(core, namespace, "web")

    def get(host_header):
        with socket.create_connection((ROUTER, 80), timeout=5) as s:
            s.sendall(f"GET / HTTP/1.0\r\nHost: {host_header}\r\n\r\n".encode())
            return _recv_all_sock(s)

    def ok():
        reply = get(host)
        return reply if b" 200 " in reply.split(b"\r\n", maxsplit=1)[0] else None

    reply = wait_for(ok, 20, what="HTTP 200 through the router")
    assert reply.endswith(b"web-ok\n")
    assert b" 503 " in get(f"unknown-{namespace}.apps.source.kf.test").split(b"\r\n", maxsplit=1)[0]


def _recv_all_sock(s):
    chunks = []
    while True:
        data = s.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)
