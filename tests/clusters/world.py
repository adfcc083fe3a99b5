"""The network namespace ``kf-world``: "the internet" plus both clusters' infrastructure.

Everything of the harness runs inside it. This module creates the namespace, its loopback, the
internet bridge ``kfw0`` with the addresses of the controller, the API servers and the nodes,
and ``/etc/netns/kf-world/resolv.conf`` (``ip netns exec`` bind-mounts it over /etc/resolv.conf,
so commands run there resolve through the harness DNS without touching the machine's file).
It also finds and removes what a crashed run left: every name used here starts with ``kf``.
Only addresses from 198.18.0.0/15 are used, and only inside namespaces made here.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

WORLD = "kf-world"
BRIDGE = "kfw0"
PREFIX_LEN = 24
CONTROLLER_ADDRESS = "198.18.0.1"
DNS_ADDRESS = "198.18.0.53"
# Addresses this module owns on kfw0; the network helper adds DNS, routers and LB addresses.
WORLD_ADDRESSES = (
    CONTROLLER_ADDRESS,
    "198.18.0.10",  # source API server
    "198.18.0.11",  # source node
    "198.18.0.20",  # destination API server
    "198.18.0.21",  # destination node
)
NETNS_DIR = Path("/run/netns")
ETC_NETNS = Path("/etc/netns")
# Names of network namespaces the harness (and the node agents for pods) create.
OWNED_NETNS = re.compile(r"^(kf-world|kfp-.+)$")
# iptables rules the harness family might add outside kf-world carry this comment.
RULE_COMMENT = "kubeferry"
CLONE_NEWNET = 0x40000000


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


def in_world(*args: str) -> list[str]:
    """The command line that runs ``args`` inside kf-world (with the harness resolv.conf)."""
    return ["ip", "netns", "exec", WORLD, *args]


def exists() -> bool:
    return (NETNS_DIR / WORLD).exists()


def up(log=print) -> None:
    """Create kf-world, idempotently."""
    if not exists():
        log(f"world: creating network namespace {WORLD}")
        _run("ip", "netns", "add", WORLD)
    _run("ip", "-n", WORLD, "link", "set", "lo", "up")
    if _run("ip", "-n", WORLD, "link", "show", BRIDGE, check=False).returncode != 0:
        _run("ip", "-n", WORLD, "link", "add", BRIDGE, "type", "bridge")
    _run("ip", "-n", WORLD, "link", "set", BRIDGE, "up")
    present = _run("ip", "-n", WORLD, "-4", "-o", "addr", "show", "dev", BRIDGE).stdout
    for address in WORLD_ADDRESSES:
        if f" {address}/" not in present:
            _run("ip", "-n", WORLD, "addr", "add", f"{address}/{PREFIX_LEN}", "dev", BRIDGE)
    # Pods reach the world's addresses through their bridge gateways: kf-world routes.
    _run(*in_world("sysctl", "-q", "-w", "net.ipv4.ip_forward=1"))
    etc = ETC_NETNS / WORLD
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "resolv.conf").write_text(f"nameserver {DNS_ADDRESS}\noptions timeout:2 attempts:2\n")


def netns_names() -> list[str]:
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if OWNED_NETNS.match(p.name))


def _netns_inode(name: str) -> int | None:
    try:
        return os.stat(NETNS_DIR / name).st_ino
    except OSError:
        return None


def pids_in_netns(names: list[str] | None = None) -> list[int]:
    """PIDs of processes living in the harness's network namespaces.

    Everything started there went through ``ip netns exec`` (or descends from such a process)
    and so has a mount namespace of its own. A process that shares this process's mount
    namespace only moved a thread in with setns (the pytest fixture does): it is a visitor,
    e.g. another test session, and is left alone rather than killed without a word.
    """
    inodes = {_netns_inode(name) for name in (netns_names() if names is None else names)}
    inodes.discard(None)
    # Never this process or its ancestors: e.g. `harness exec -- pytest` running `harness down`.
    spared = _ancestors()
    own_mnt = os.stat("/proc/self/ns/mnt").st_ino
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in spared:
            continue
        try:
            if os.stat(entry / "ns" / "net").st_ino not in inodes:
                continue
            if os.stat(entry / "ns" / "mnt").st_ino == own_mnt:
                continue
        except OSError:
            continue
        found.append(int(entry.name))
    return found


def _exe_name(pid: int) -> str:
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe")).removesuffix(" (deleted)")
    except OSError:
        return ""


def _describe(pids: list[int]) -> str:
    described = []
    for pid in pids:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:3]
        except OSError:
            argv = []
        described.append(f"{pid} ({' '.join(a.decode(errors='replace') for a in argv)})")
    return ", ".join(described)


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def kill_pids(pids: list[int], log=print, timeout: float = 10.0) -> None:
    """SIGTERM, wait (bounded), then SIGKILL what is left."""
    running = []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            running.append(pid)
    deadline = time.monotonic() + timeout
    while running and time.monotonic() < deadline:
        time.sleep(0.2)
        running = [pid for pid in running if alive(pid)]
    for pid in running:
        log(f"world: process {pid} ignored SIGTERM for {timeout:.0f}s, killing it")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def owned_mounts(extra_roots: tuple[Path, ...] = ()) -> list[str]:
    """Mount points the harness family made: netns files and anything under its state dir."""
    roots = tuple(str(r) for r in extra_roots)
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = line.split()[4].replace("\\040", " ")
        if mount_point.startswith(str(NETNS_DIR) + "/"):
            if OWNED_NETNS.match(mount_point.rsplit("/", 1)[1]):
                found.append(mount_point)
        elif roots and any(mount_point == r or mount_point.startswith(r + "/") for r in roots):
            found.append(mount_point)
    return found


def host_rules() -> list[str]:
    """iptables rules in the machine's own namespace that carry the harness comment."""
    rules = []
    for tool in ("iptables-save", "ip6tables-save"):
        if shutil.which(tool) is None:
            continue
        out = _run(tool, check=False).stdout
        table = None
        for line in out.splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith("-A ") and RULE_COMMENT in line:
                rules.append(f"{tool.split('-', maxsplit=1)[0]} -t {table} {line}")
    return rules


# Links of the layout; they live inside kf-world, so in the machine's namespace they are leaks.
LAYOUT_LINKS = ("kfw0", "kfsrc0", "kfdst0")


def host_links() -> list[str]:
    out = _run("ip", "-o", "link", "show", check=False).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]
    return [name for name in names if name in LAYOUT_LINKS]


def down(state_roots: tuple[Path, ...] = (), log=print) -> None:
    """Remove every namespace, mount, rule and file of the world; kill what still runs there."""
    leftover = pids_in_netns()
    if leftover:
        log(f"world: stopping processes still inside harness namespaces: {_describe(leftover)}")
        # etcd last: an API server whose etcd is gone does not finish shutting down.
        datastores = [pid for pid in leftover if _exe_name(pid) == "etcd"]
        kill_pids([pid for pid in leftover if pid not in datastores], log=log)
        kill_pids(datastores, log=log)
    for name in netns_names():
        if name != WORLD:
            _delete_netns(name, log)
    if exists():
        _delete_netns(WORLD, log)
    for mount_point in owned_mounts(state_roots):
        log(f"world: unmounting {mount_point}")
        _run("umount", "-l", mount_point, check=False)
    for rule in host_rules():
        tool, _table_option, table, _append, spec = rule.split(" ", 4)
        log(f"world: deleting host rule {rule}")
        _run(tool, "-t", table, "-D", *spec.split(), check=False)
    for link in host_links():
        log(f"world: deleting host link {link}")
        _run("ip", "link", "del", link, check=False)
    if ETC_NETNS.is_dir():
        for path in ETC_NETNS.iterdir():
            if OWNED_NETNS.match(path.name):
                shutil.rmtree(path, ignore_errors=True)


def _delete_netns(name: str, log) -> None:
    log(f"world: deleting network namespace {name}")
    if _run("ip", "netns", "del", name, check=False).returncode != 0:
        # A half-made namespace (a crash between mkdir and mount) is a plain file.
        _run("umount", "-l", str(NETNS_DIR / name), check=False)
        with contextlib.suppress(OSError):
            (NETNS_DIR / name).unlink()


def leftovers(state_roots: tuple[Path, ...] = ()) -> dict[str, list]:
    """What of the harness still exists; all lists are empty after a clean ``down``."""
    return {
        "netns": netns_names(),
        "processes": pids_in_netns(),
        "mounts": owned_mounts(state_roots),
        "host_rules": host_rules(),
        "host_links": host_links(),
        "etc_netns": sorted(p.name for p in ETC_NETNS.glob("*") if OWNED_NETNS.match(p.name))
        if ETC_NETNS.is_dir()
        else [],
    }


_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def entered(name: str = WORLD):
    """Run the body with this thread's sockets in network namespace ``name``.

    Only the calling thread moves (setns on a network namespace is per thread), and it moves
    back afterwards, so the process can still manage the host side.
    """
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(NETNS_DIR / name, os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(original)
    finally:
        os.close(target)
        os.close(original)
