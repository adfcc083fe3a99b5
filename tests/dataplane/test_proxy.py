"""Data plane: the stunnel client through a real HTTP CONNECT proxy (tinyproxy).

tinyproxy runs in the client pod's network namespace on 127.0.0.1 (where a node-local or
sidecar proxy would be), in the foreground, started and stopped by its pid. A firewall rule
in that namespace refuses every direct connection to the server's TLS port except the
proxy's own (it runs as nobody): the copy can only arrive through the proxy.
"""

import os
import signal
import subprocess
import time

import pytest
import runner
import tree
from test_transfer import assert_rsync_copy, finish_client, make_dir, start_client, start_server

PROXY_PORT = 8888
PROXY_UID = 65534  # nobody: tinyproxy drops to it after binding
TLS_PORT = 6443


class Tinyproxy:
    """tinyproxy -d in the client's network namespace; its log (stdout) in a file."""

    def __init__(self, cluster, workdir, connect_port):
        self.cluster = cluster
        self.config = os.path.join(workdir, "tinyproxy.conf")
        self.log_path = os.path.join(workdir, "tinyproxy.log")
        with open(self.config, "w") as handle:
            handle.write(
                "\n".join(
                    [
                        "User {0}".format(PROXY_UID),
                        "Group {0}".format(PROXY_UID),
                        "Port {0}".format(PROXY_PORT),
                        "Listen 127.0.0.1",
                        "Allow 127.0.0.1",
                        # CONNECT only to the server's TLS port.
                        "ConnectPort {0}".format(connect_port),
                        # No LogFile and no Syslog: tinyproxy logs to stdout.
                        "Syslog Off",
                        "LogLevel Connect",
                        "MaxClients 16",
                        "Timeout 600",
                        "",
                    ]
                )
            )
        os.chmod(self.config, 0o644)
        self.popen = None

    def start(self, timeout=15):
        # `ip netns exec` replaces itself with tinyproxy: popen.pid is tinyproxy's pid.
        argv = ["ip", "netns", "exec", self.cluster.client_ns, "tinyproxy", "-d", "-c"]
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                argv + [self.config],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        probe = "exec 3<>/dev/tcp/127.0.0.1/{0}".format(PROXY_PORT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError("tinyproxy exited:\n" + self.log())
            if self.cluster.run_in_netns("client", ["bash", "-c", probe]).returncode == 0:
                return self
            time.sleep(0.2)
        raise TimeoutError("tinyproxy does not listen:\n" + self.log())

    def stop(self):
        if self.popen is None or self.popen.poll() is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.kill(self.popen.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.popen.wait(timeout=10)
                return
            except subprocess.TimeoutExpired:
                continue

    def log(self):
        with open(self.log_path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")


@pytest.fixture
def proxy_for(workdir, request):
    """proxy_for(cluster) -> a started Tinyproxy, stopped (by its pid) after the test."""
    started = []
    request.addfinalizer(lambda: [proxy.stop() for proxy in started])

    def _proxy(cluster):
        proxy = Tinyproxy(cluster, workdir, TLS_PORT)
        started.append(proxy)
        return proxy.start()

    return _proxy


def can_connect(cluster, host, port, uid=0):
    argv = ["setpriv", "--reuid={0}".format(uid), "--regid={0}".format(uid), "--clear-groups"]
    argv += ["timeout", "5", "bash", "-c", "exec 3<>/dev/tcp/{0}/{1}".format(host, port)]
    return cluster.run_in_netns("client", argv).returncode == 0


def test_rsync_over_stunnel_goes_through_an_http_connect_proxy(
    rendered, cluster_for, proxy_for, workdir
):
    # One retry: the first attempt may come before the sidecar listens (2 s backoff).
    combo = rendered(
        "rsync",
        "stunnel",
        transport_stunnel_proxy="127.0.0.1:{0}".format(PROXY_PORT),
        transfer_rsync_retries=1,
    )
    server_host = combo.endpoint["host"]
    [config] = [
        obj["data"]["stunnel.conf"]
        for obj in combo.client["transport"]["objects"]
        if obj["kind"] == "ConfigMap"
    ]
    assert "connect = 127.0.0.1:{0}\n".format(PROXY_PORT) in config, config
    assert "protocol = connect\n" in config, config
    assert "protocolHost = {0}:{1}\n".format(server_host, TLS_PORT) in config, config

    cluster = cluster_for(combo)
    source = make_dir(os.path.join(workdir, "source-pvc"))
    tree.build(source)
    before = tree.snapshot(source)
    start_server(cluster, combo, {"data": source})

    # Only the proxy's user may reach the server's TLS port from the client pod.
    runner.run(
        ["ip", "netns", "exec", cluster.client_ns, "iptables", "-A", "OUTPUT", "-p", "tcp",
         "-d", server_host, "--dport", str(TLS_PORT), "-m", "owner", "!", "--uid-owner",
         str(PROXY_UID), "-j", "REJECT", "--reject-with", "tcp-reset"]
    )  # fmt: skip
    assert not can_connect(cluster, server_host, TLS_PORT), "the direct path is open"
    assert can_connect(cluster, server_host, TLS_PORT, uid=PROXY_UID)

    proxy = proxy_for(cluster)
    destination = make_dir(os.path.join(workdir, "destination-pvc"))
    pod = start_client(cluster, combo, destination, "client-1")
    finish_client(pod)
    assert_rsync_copy(before, tree.snapshot(destination))
    assert tree.snapshot(source) == before

    # The proxy carried it: the client's stunnel asked it for a tunnel to the server.
    log = proxy.log()
    assert "CONNECT {0}:{1} HTTP/1.1".format(server_host, TLS_PORT) in log, log
    transport_log = pod.containers["transport"].log()
    assert "Connection refused" not in transport_log, transport_log

    # Without the proxy nothing arrives: the client never falls back to the direct path.
    proxy.stop()
    assert proxy.popen.returncode is not None
    assert not can_connect(cluster, "127.0.0.1", PROXY_PORT)
    second = make_dir(os.path.join(workdir, "destination-pvc-2"))
    pod = start_client(cluster, combo, second, "client-2")
    assert pod.containers["transfer"].wait(90) != 0
    assert os.listdir(second) == []
    # The sidecar still lets the pod complete once the transfer client gave up.
    assert pod.containers["transport"].wait(15) == 0
    transport_log = pod.containers["transport"].log()
    assert "127.0.0.1:{0}".format(PROXY_PORT) in transport_log, transport_log
    assert "Connection refused" in transport_log, transport_log
