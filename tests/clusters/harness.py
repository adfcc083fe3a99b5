"""Bring the local twin clusters up and down.

    python -m tests.clusters.harness up        # idempotent: reuses a running pair
    python -m tests.clusters.harness down      # idempotent: also cleans up after a crash
    python -m tests.clusters.harness status
    python -m tests.clusters.harness exec -- CMD ARGS...

``up`` builds or reuses the binaries, creates the kf-world namespace, starts one etcd and one
kube-apiserver per cluster inside it, bootstraps them, writes ``.clusters/kubeconfig``
(contexts ``source`` and ``destination``), then starts the node-side components
(``tests.clusters.network up`` and one ``tests.clusters.node`` per cluster) when those modules
exist. ``exec`` runs a command inside kf-world with ``KUBECONFIG`` set and the harness DNS as
its resolver (``ip netns exec`` bind-mounts ``/etc/netns/kf-world/resolv.conf``), which is how
ansible-playbook or pytest run "next to" the clusters without touching /etc/resolv.conf.
Run as root (network namespaces).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import apiserver, binaries, world
from .apiserver import CLUSTERS, Paths

REPO = Path(__file__).resolve().parents[2]
# Module path of this package for `python -m` from the repository root (pytest may import it
# under another name).
PACKAGE = "tests.clusters"
DEFAULT_STATE_DIR = Path(os.environ.get("KUBEFERRY_CLUSTERS_DIR", REPO / ".clusters"))
NODE_STOP_TIMEOUT = 30.0
DAEMON_STOP_TIMEOUT = 15.0
NODE_READY_TIMEOUT = 60.0
# A cold build of the binaries inside another run's `up` takes minutes.
LOCK_TIMEOUT = 1800.0


def log(message: str) -> None:
    print(message, flush=True)


def _has_module(name: str) -> bool:
    """Whether the other helper's runnable module ``name`` is there (it may not be yet)."""
    here = Path(__file__).resolve().parent
    return (here / name / "__main__.py").is_file() or (here / f"{name}.py").is_file()


def _python_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _started_with(state_dir: Path, key: str) -> bool:
    try:
        return bool(json.loads((state_dir / "run" / "harness.json").read_text())[key])
    except (OSError, ValueError, KeyError):
        return False


def _node_side_started(state_dir: Path) -> bool:
    return _started_with(state_dir, "node_side")


def _components(state_dir: Path) -> list[tuple[str, str]]:
    """(component, cluster) pairs that run while the pair is up, in start order."""
    pairs = [(c, name) for name in CLUSTERS for c in ("etcd", "kube-apiserver")]
    if _started_with(state_dir, "node_agents"):
        pairs += [("node", name) for name in CLUSTERS]
    return pairs


def is_up(state_dir: Path) -> bool:
    if not world.exists() or not (state_dir / "kubeconfig").is_file():
        return False
    for component, cluster in _components(state_dir):
        if apiserver.recorded_pid(component, Paths(state_dir, cluster)) is None:
            return False
    with world.entered():
        return all(
            apiserver.readyz(cluster, Paths(state_dir, cluster.name))[0]
            for cluster in CLUSTERS.values()
        )


def _anything_left(state_dir: Path) -> bool:
    if any(world.leftovers(state_roots=(state_dir,)).values()):
        return True
    return (state_dir / "run").is_dir() and any((state_dir / "run").iterdir())


_lock_depth = 0


@contextlib.contextmanager
def _exclusive(state_dir: Path):
    """One `up`/`down` at a time (two test sessions may start together); re-entrant."""
    global _lock_depth
    if _lock_depth:
        _lock_depth += 1
        try:
            yield
        finally:
            _lock_depth -= 1
        return
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / ".harness.lock", "a+") as handle:
        deadline = time.monotonic() + LOCK_TIMEOUT
        waited = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"another harness run held {handle.name} too long") from None
                if not waited:
                    log("harness: waiting for another harness run to finish")
                    waited = True
                time.sleep(1)
        _lock_depth = 1
        try:
            yield
        finally:
            _lock_depth = 0
            fcntl.flock(handle, fcntl.LOCK_UN)


def up(state_dir: Path = DEFAULT_STATE_DIR, node_side: bool = True) -> None:
    """Start the pair; ``node_side=False`` starts only etcd and the API servers."""
    state_dir = state_dir.resolve()
    with _exclusive(state_dir):
        _up_locked(state_dir, node_side)


def _up_locked(state_dir: Path, node_side: bool) -> None:
    started = time.monotonic()
    if is_up(state_dir):
        log(f"harness: reusing the running pair; KUBECONFIG={state_dir / 'kubeconfig'}")
        return
    if _anything_left(state_dir):
        log("harness: a previous pair is partly there; cleaning it up first")
        down(state_dir)
    try:
        _up(state_dir, node_side)
    except BaseException:
        log(f"harness: bringing the pair up failed; cleaning up (logs kept in {state_dir}/logs)")
        down(state_dir)
        raise
    log(
        f"harness: pair up in {time.monotonic() - started:.1f}s; "
        f"KUBECONFIG={state_dir / 'kubeconfig'}"
    )


def _up(state_dir: Path, node_side: bool) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    paths_of = {name: Paths(state_dir, name) for name in CLUSTERS}
    bins = binaries.ensure(log=log)
    world.up(log=log)
    for name, cluster in CLUSTERS.items():
        paths = paths_of[name]
        apiserver.ensure_pki(cluster, paths, log=log)
        shutil.rmtree(paths.etcd_data, ignore_errors=True)
        paths.etcd_data.parent.mkdir(parents=True, exist_ok=True)
        pid = apiserver.start("etcd", apiserver.etcd_command(bins["etcd"], cluster, paths), paths)
        log(f"harness: etcd of {name} started (pid {pid}, {cluster.etcd_url} in {world.WORLD})")
    kubeconfig = apiserver.write_kubeconfigs(state_dir)
    with world.entered():
        for name, cluster in CLUSTERS.items():
            # An API server started before its etcd answers floods its log with dial errors.
            apiserver.wait_etcd(cluster, paths_of[name])
            command = apiserver.apiserver_command(bins["kube-apiserver"], cluster, paths_of[name])
            pid = apiserver.start("kube-apiserver", command, paths_of[name])
            log(f"harness: kube-apiserver of {name} started (pid {pid}, {cluster.server})")
        for name, cluster in CLUSTERS.items():
            apiserver.wait_ready(cluster, paths_of[name])
            log(f"harness: kube-apiserver of {name} is ready")
            apiserver.bootstrap(cluster, state_dir, log=log)
    node_side &= _has_module("network") or _has_module("node")
    (state_dir / "run" / "harness.json").write_text(
        json.dumps({"node_side": node_side, "node_agents": node_side and _has_module("node")})
    )
    if not node_side:
        log("harness: control plane only (no network pieces, no node agents)")
        return
    if _has_module("network"):
        log("harness: starting the network pieces (tests.clusters.network up)")
        subprocess.run(
            [sys.executable, "-m", f"{PACKAGE}.network", "up", "--state-dir", str(state_dir)],
            check=True,
            cwd=REPO,
            env=_python_env(),
        )
    else:
        log("harness: tests/clusters/network is not there; skipping the network pieces")
    if _has_module("node"):
        for name in CLUSTERS:
            command = [
                sys.executable,
                "-m",
                f"{PACKAGE}.node",
                "--cluster",
                name,
                "--kubeconfig",
                str(kubeconfig),
                "--state-dir",
                str(state_dir),
            ]
            pid = apiserver.start("node", command, paths_of[name], cwd=REPO, env=_python_env())
            log(f"harness: node agent of {name} started (pid {pid})")
        with world.entered():
            for name in CLUSTERS:
                _wait_node_ready(state_dir, name)
    else:
        log("harness: tests/clusters/node is not there; skipping the node agents")


def _wait_node_ready(state_dir: Path, cluster: str, timeout: float = NODE_READY_TIMEOUT) -> None:
    """Wait, bounded, for the node agent's Node to be Ready (call inside kf-world)."""
    from kubernetes import client as k8s

    paths = Paths(state_dir, cluster)
    api_client = apiserver.api_client(state_dir, cluster)
    try:
        core = k8s.CoreV1Api(api_client)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if apiserver.recorded_pid("node", paths) is None:
                raise RuntimeError(
                    f"the node agent of {cluster} exited; last log lines:\n"
                    + apiserver.tail(paths.log("node"))
                )
            for node in core.list_node().items:
                conditions = node.status.conditions or []
                if any(c.type == "Ready" and c.status == "True" for c in conditions):
                    log(f"harness: node {node.metadata.name} of {cluster} is Ready")
                    return
            time.sleep(0.5)
    finally:
        api_client.close()
    raise TimeoutError(f"no Ready Node on {cluster} after {timeout:.0f}s")


def down(state_dir: Path = DEFAULT_STATE_DIR) -> None:
    """Stop everything and remove what the pair made; safe to run any number of times."""
    state_dir = state_dir.resolve()
    with _exclusive(state_dir):
        _down_locked(state_dir)


def _down_locked(state_dir: Path) -> None:
    # Node agents first: on SIGTERM they stop their pods, which needs the API server.
    pids = _recorded(state_dir, "node")
    if pids:
        log(f"harness: stopping node agents {pids}")
        world.kill_pids(pids, log=log, timeout=NODE_STOP_TIMEOUT)
    if _has_module("network"):
        log("harness: removing the network pieces (tests.clusters.network down)")
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                f"{PACKAGE}.network",
                "down",
                "--state-dir",
                str(state_dir),
            ],
            cwd=REPO,
            env=_python_env(),
            check=False,
        )
        if result.returncode != 0:
            log(f"harness: network down exited {result.returncode}; continuing the cleanup")
    # API servers before etcd: an API server whose etcd is gone does not finish shutting down.
    for component in ("kube-apiserver", "etcd"):
        pids = _recorded(state_dir, component)
        if pids:
            log(f"harness: stopping {component} {pids}")
            world.kill_pids(pids, log=log, timeout=DAEMON_STOP_TIMEOUT)
    world.down(state_roots=(state_dir,), log=log)
    shutil.rmtree(state_dir / "run", ignore_errors=True)
    shutil.rmtree(state_dir / "etcd", ignore_errors=True)
    left = {k: v for k, v in world.leftovers(state_roots=(state_dir,)).items() if v}
    if left:
        raise RuntimeError(f"harness: NOT clean after down: {left}")
    log("harness: down; no process, namespace, bridge, rule or mount of the pair is left")


def _recorded(state_dir: Path, component: str) -> list[int]:
    pids = []
    for name in CLUSTERS:
        pid = apiserver.recorded_pid(component, Paths(state_dir, name))
        if pid is not None:
            pids.append(pid)
    return pids


def status(state_dir: Path = DEFAULT_STATE_DIR) -> bool:
    state_dir = state_dir.resolve()
    running = True
    for component, cluster in _components(state_dir):
        pid = apiserver.recorded_pid(component, Paths(state_dir, cluster))
        running &= pid is not None
        log(f"{component:15} {cluster:12} {'pid ' + str(pid) if pid else 'not running'}")
    if world.exists():
        with world.entered():
            for cluster in CLUSTERS.values():
                ok, detail = apiserver.readyz(cluster, Paths(state_dir, cluster.name))
                running &= ok
                log(f"{'readyz':15} {cluster.name:12} {'ok' if ok else detail.splitlines()[-1:]}")
    else:
        running = False
        log(f"{world.WORLD} does not exist")
    left = {k: v for k, v in world.leftovers(state_roots=(state_dir,)).items() if v}
    log(f"harness objects: {left or 'none'}")
    log(f"KUBECONFIG={state_dir / 'kubeconfig'}" if running else "pair: down")
    return running


def exec_command(command: list[str], state_dir: Path = DEFAULT_STATE_DIR) -> int:
    if not world.exists():
        log(f"harness: {world.WORLD} does not exist; run `harness up` first")
        return 2
    env = _python_env()
    env["KUBECONFIG"] = str(state_dir.resolve() / "kubeconfig")
    return subprocess.run(world.in_world(*command), env=env, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.clusters.harness", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    sub = parser.add_subparsers(dest="action", required=True)
    start = sub.add_parser("up", help="start the pair (or reuse the running one)")
    start.add_argument(
        "--control-plane-only",
        action="store_true",
        help="start only etcd and the API servers (no network pieces, no node agents)",
    )
    sub.add_parser("down", help="stop the pair and remove everything it made")
    sub.add_parser("status", help="show what runs; exit 0 when the pair is up")
    run = sub.add_parser("exec", help="run a command inside kf-world with KUBECONFIG set")
    run.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("must run as root (it creates network namespaces)")
    if args.action == "status":
        return 0 if status(args.state_dir) else 3
    if args.action == "exec":
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        if not command:
            parser.error("exec needs a command: exec -- CMD ARGS...")
        return exec_command(command, args.state_dir)
    try:
        if args.action == "up":
            up(args.state_dir, node_side=not args.control_plane_only)
        else:
            down(args.state_dir)
    except (RuntimeError, TimeoutError, subprocess.CalledProcessError) as error:
        log(f"harness: {args.action} failed: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
