"""``python -m tests.clusters.network up|down|status --state-dir DIR``: shared network pieces.

``up`` (run after the harness made the world namespace, before the node agents): pod bridges
and gateways of both clusters, forwarding and the isolation chain in the world namespace,
the DNS/router addresses on the internet bridge and dnsmasq on 198.18.0.53. ``down`` removes
all of it and everything the node agents left behind after a crash (pod processes, pod
network namespaces, HAProxy, LB addresses); it is idempotent.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

from . import layout
from .dns import hosts_dir

DNSMASQ_PID = "dnsmasq.pid"


def _run_dir(state_dir):
    d = os.path.join(state_dir, "run")
    os.makedirs(d, exist_ok=True)
    return d


def _link_exists(name):
    return layout.wrun(["ip", "link", "show", name], check=False).returncode == 0


def setup_bridges(state_dir):
    layout.wrun(["ip", "link", "set", "lo", "up"])
    if not _link_exists(layout.WORLD_BRIDGE):
        layout.wrun(["ip", "link", "add", layout.WORLD_BRIDGE, "type", "bridge"])
        with open(os.path.join(_run_dir(state_dir), "network-created-kfw0"), "w") as fh:
            fh.write("1\n")
    layout.wrun(["ip", "link", "set", layout.WORLD_BRIDGE, "up"])
    have = layout.world_addresses()
    if layout.WORLD_ADDRESS not in have:
        layout.wrun(["ip", "addr", "add", f"{layout.WORLD_ADDRESS}/24", "dev", layout.WORLD_BRIDGE])
    wanted = [layout.DNS_ADDRESS]
    for c in layout.CLUSTERS.values():
        wanted += [c["node"], c["router"]]
    for addr in wanted:
        layout.ensure_world_address(addr)
    for c in layout.CLUSTERS.values():
        br = c["bridge"]
        if not _link_exists(br):
            layout.wrun(["ip", "link", "add", br, "type", "bridge"])
        # A fixed MAC: a bridge without one takes the lowest MAC of its ports, so it changed
        # whenever a pod's veth came or went, and running pods kept sending to the gateway's
        # old MAC until their neighbour entry expired. Their TCP segments were lost for 30 to
        # 60 s (a client stalled for a minute, then retransmission backoff let it go on).
        layout.wrun(["ip", "link", "set", br, "address", c["bridge_mac"]])
        prefix = c["subnet"].split("/")[1]
        if c["gateway"] not in layout.world_addresses():
            layout.wrun(["ip", "addr", "add", f"{c['gateway']}/{prefix}", "dev", br])
        layout.wrun(["ip", "link", "set", br, "up"])
    layout.wrun(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])


def setup_isolation():
    chain = layout.ISOLATION_CHAIN
    layout.wrun(["iptables", "-N", chain], check=False)
    layout.wrun(["iptables", "-F", chain])
    src, dst = layout.CLUSTERS["source"]["subnet"], layout.CLUSTERS["destination"]["subnet"]
    # Pods of one cluster never reach pod IPs of the other: only exposed endpoints, which
    # all live on addresses of the world namespace itself (INPUT, not FORWARD).
    rules = [["-s", src, "-d", dst], ["-s", dst, "-d", src]]
    for c in layout.CLUSTERS.values():
        rules.append(["-s", c["subnet"], "!", "-d", c["subnet"]])
    for r in rules:
        layout.wrun(["iptables", "-A", chain, *r, "-j", "DROP"])
    if layout.wrun(["iptables", "-C", "FORWARD", "-j", chain], check=False).returncode != 0:
        layout.wrun(["iptables", "-I", "FORWARD", "1", "-j", chain])


def teardown_isolation():
    chain = layout.ISOLATION_CHAIN
    for _attempt in range(5):
        if layout.wrun(["iptables", "-D", "FORWARD", "-j", chain], check=False).returncode:
            break
    layout.wrun(["iptables", "-F", chain], check=False)
    layout.wrun(["iptables", "-X", chain], check=False)


def _kill_pidfile(path, marker, grace=3.0):
    try:
        with open(path) as fh:
            pid = int(fh.read().strip() or 0)
    except (FileNotFoundError, ValueError):
        return
    if pid and layout.pid_alive(pid, marker):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and layout.pid_alive(pid, marker):
            time.sleep(0.05)
        if layout.pid_alive(pid, marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def start_dnsmasq(state_dir):
    run_dir = _run_dir(state_dir)
    pidfile = os.path.join(run_dir, DNSMASQ_PID)
    _kill_pidfile(pidfile, "dnsmasq")
    hdir = hosts_dir(state_dir)
    os.makedirs(hdir, exist_ok=True)
    logs = os.path.join(state_dir, "logs")
    os.makedirs(logs, exist_ok=True)
    args = [
        "dnsmasq",
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--no-poll",
        "--user=root",
        "--group=root",
        "--bind-interfaces",
        f"--listen-address={layout.DNS_ADDRESS}",
        "--except-interface=lo",
        f"--pid-file={pidfile}.daemon",
        "--local=/kf.test/",
        "--domain-needed",
        "--bogus-priv",
        "--local-ttl=1",
        "--neg-ttl=1",
        f"--hostsdir={hdir}",
        f"--log-facility={os.path.join(logs, 'dnsmasq.log')}",
        "--log-queries",
    ]
    for name, c in layout.CLUSTERS.items():
        args.append(f"--address=/{layout.apps_domain(name)}/{c['router']}")
        args.append(f"--host-record=api.{name}.kf.test,{c['api']}")
        args.append(f"--host-record=node.{name}.kf.test,{c['node']}")
        args.append(f"--host-record=router.{name}.kf.test,{c['router']}")
    proc = subprocess.Popen(
        layout.world_cmd(args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(logs, "dnsmasq.stderr"), "ab"),
        start_new_session=True,
    )
    with open(pidfile, "w") as fh:
        fh.write(str(proc.pid))
    # Ready when it answers; bounded wait.
    for _attempt in range(50):
        if proc.poll() is not None:
            raise RuntimeError(f"dnsmasq exited with {proc.returncode}; see {logs}/dnsmasq.stderr")
        probe = layout.wrun(
            ["python3", "-c", _DNS_PROBE, layout.DNS_ADDRESS, "api.source.kf.test"], check=False
        )
        if probe.returncode == 0:
            return proc.pid
        time.sleep(0.1)
    raise RuntimeError("dnsmasq did not answer on 198.18.0.53 within 5s")


# Minimal DNS A query over UDP (no dig/nslookup on the machine).
_DNS_PROBE = r"""
import socket, struct, sys
server, name = sys.argv[1], sys.argv[2]
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
q += struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
s.sendto(q, (server, 53))
data = s.recv(512)
sys.exit(0 if struct.unpack(">H", data[6:8])[0] > 0 else 3)
"""


def kill_pod_processes(state_dir):
    """Kill container shims a crashed node agent left (pid files under DIR/run/pods)."""
    base = os.path.join(_run_dir(state_dir), "pods")
    if not os.path.isdir(base):
        return 0
    n = 0
    for root, _dirs, files in os.walk(base):
        for f in files:
            if f.endswith(".pid"):
                path = os.path.join(root, f)
                try:
                    with open(path) as fh:
                        pid = int(fh.read().strip() or 0)
                except (ValueError, FileNotFoundError):
                    continue
                if pid and layout.pid_alive(pid, "launcher.py"):
                    try:
                        os.kill(pid, signal.SIGKILL)
                        n += 1
                    except ProcessLookupError:
                        pass
                os.unlink(path)
    return n


def kill_agent_children(state_dir):
    run_dir = _run_dir(state_dir)
    for f in os.listdir(run_dir):
        if f.startswith("haproxy-") and f.endswith(".pid"):
            _kill_pidfile(os.path.join(run_dir, f), "haproxy")


def remove_pod_netns():
    out = layout.run(["ip", "netns", "list"], check=False).stdout
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(layout.POD_NETNS_PREFIX):
            layout.run(["ip", "netns", "del", name], check=False)


def down(state_dir):
    kill_pod_processes(state_dir)
    kill_agent_children(state_dir)
    _kill_pidfile(os.path.join(_run_dir(state_dir), DNSMASQ_PID), "dnsmasq")
    remove_pod_netns()
    if layout.netns_inode(layout.WORLD) is not None:
        teardown_isolation()
        for c in layout.CLUSTERS.values():
            layout.wrun(["ip", "link", "del", c["bridge"]], check=False)
        marker = os.path.join(_run_dir(state_dir), "network-created-kfw0")
        if os.path.exists(marker):
            layout.wrun(["ip", "link", "del", layout.WORLD_BRIDGE], check=False)
            os.unlink(marker)
        else:
            mine = {layout.DNS_ADDRESS}
            for c in layout.CLUSTERS.values():
                mine.update([c["router"], *c["lb_pool"]])
            for addr in mine & layout.world_addresses():
                layout.remove_world_address(addr)
    dns_dir = os.path.join(state_dir, "dns")
    if os.path.isdir(dns_dir):
        subprocess.run(["rm", "-rf", dns_dir], check=False)


def up(state_dir):
    if layout.netns_inode(layout.WORLD) is None:
        raise SystemExit(f"network namespace {layout.WORLD} does not exist: create the world first")
    os.makedirs(state_dir, exist_ok=True)
    setup_bridges(state_dir)
    setup_isolation()
    pid = start_dnsmasq(state_dir)
    return {"dnsmasq_pid": pid}


def status(state_dir):
    out = {"world": layout.netns_inode(layout.WORLD) is not None}
    if out["world"]:
        out["bridges"] = {c["bridge"]: _link_exists(c["bridge"]) for c in layout.CLUSTERS.values()}
        chk = layout.wrun(["iptables", "-C", "FORWARD", "-j", layout.ISOLATION_CHAIN], check=False)
        out["isolation"] = chk.returncode == 0
    try:
        with open(os.path.join(_run_dir(state_dir), DNSMASQ_PID)) as fh:
            pid = int(fh.read())
        out["dnsmasq"] = layout.pid_alive(pid, "dnsmasq")
    except (FileNotFoundError, ValueError):
        out["dnsmasq"] = False
    ns = layout.run(["ip", "netns", "list"], check=False).stdout.split("\n")
    out["pod_netns"] = [n.split()[0] for n in ns if n.startswith(layout.POD_NETNS_PREFIX)]
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tests.clusters.network")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--state-dir", required=True)
    a = p.parse_args(argv)
    state_dir = os.path.abspath(a.state_dir)
    if a.action == "up":
        print(json.dumps(up(state_dir)))
    elif a.action == "down":
        down(state_dir)
    else:
        print(json.dumps(status(state_dir), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
