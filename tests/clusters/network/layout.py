"""The fixed network layout of the twin clusters (see the shared plan of issue 3).

Only 198.18.0.0/15, only inside network namespaces the harness makes. The world namespace
name and the prefix of pod namespaces can be overridden through the environment so that
self-tests can run a private copy of the layout next to a running pair of clusters.
"""

import ipaddress
import os
import subprocess

WORLD = os.environ.get("KF_WORLD_NETNS", "kf-world")
POD_NETNS_PREFIX = os.environ.get("KF_POD_NETNS_PREFIX", "kfp-")
WORLD_BRIDGE = "kfw0"
WORLD_ADDRESS = "198.18.0.1"
DNS_ADDRESS = "198.18.0.53"
ISOLATION_CHAIN = "KF-ISOLATE"

CLUSTERS = {
    "source": {
        "bridge": "kfsrc0",
        "bridge_mac": "02:6b:66:00:01:01",
        "subnet": "198.18.1.0/24",
        "gateway": "198.18.1.1",
        "api": "198.18.0.10",
        "node": "198.18.0.11",
        "router": "198.18.0.12",
        "lb_pool": [f"198.18.0.{i}" for i in range(100, 150)],
    },
    "destination": {
        "bridge": "kfdst0",
        "bridge_mac": "02:6b:66:00:02:01",
        "subnet": "198.18.2.0/24",
        "gateway": "198.18.2.1",
        "api": "198.18.0.20",
        "node": "198.18.0.21",
        "router": "198.18.0.22",
        "lb_pool": [f"198.18.0.{i}" for i in range(150, 200)],
    },
}


def apps_domain(cluster):
    return f"apps.{cluster}.kf.test"


def lb_domain(cluster):
    return f"lb.{cluster}.kf.test"


def pod_addresses(cluster):
    """Pod IPs of a cluster: the subnet without network, gateway and broadcast."""
    net = ipaddress.ip_network(CLUSTERS[cluster]["subnet"])
    gw = ipaddress.ip_address(CLUSTERS[cluster]["gateway"])
    return [str(a) for a in net.hosts() if a != gw]


def netns_inode(name):
    try:
        return os.stat(f"/run/netns/{name}").st_ino
    except FileNotFoundError:
        return None


def in_world():
    """True when this process already runs in the world network namespace."""
    ino = netns_inode(WORLD)
    return ino is not None and ino == os.stat("/proc/self/ns/net").st_ino


def world_cmd(cmd):
    """Prefix a command so that it runs in the world namespace."""
    return list(cmd) if in_world() else ["ip", "netns", "exec", WORLD, *cmd]


def run(cmd, check=True, timeout=30):
    """Run a command, returning CompletedProcess; errors carry stderr in the message."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def wrun(cmd, check=True, timeout=30):
    return run(world_cmd(cmd), check=check, timeout=timeout)


def world_addresses():
    out = wrun(["ip", "-o", "-4", "addr", "show"], check=False).stdout
    return {line.split()[3].split("/")[0] for line in out.splitlines() if len(line.split()) > 3}


def ensure_world_address(address, dev=WORLD_BRIDGE):
    if address not in world_addresses():
        wrun(["ip", "addr", "add", f"{address}/32", "dev", dev], check=False)


def remove_world_address(address, dev=WORLD_BRIDGE):
    wrun(["ip", "addr", "del", f"{address}/32", "dev", dev], check=False)


def pid_alive(pid, marker=None):
    """True if pid runs and (when given) its command line contains marker."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
    except (FileNotFoundError, IndexError):
        return False
    return marker is None or marker in cmdline
