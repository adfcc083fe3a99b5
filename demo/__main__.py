"""`make demo`: the collection's main job on the local twin clusters, start to finish.

Starts the two local clusters (tests/clusters), puts sample data into a PVC of the source
cluster, runs playbooks/state_transfer.yml with rsync over stunnel through a LoadBalancer
(the defaults), verifies the copy file by file on the destination's volume, checks that
nothing of the run is left on either cluster, and takes the clusters down again (unless
--keep). Needs root (network namespaces).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.clusters import apiserver, harness, pvcs, world
from tests.dataplane import tree

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "shop"
PVC = "shop-data"
WORK = ROOT / ".demo"
MANAGED = "app.kubernetes.io/managed-by=kubeferry.state_transfer"


def say(message: str) -> None:
    print(f"demo: {message}", flush=True)


def fill_sample_data(root: str) -> None:
    """What a shop's volume might hold: uploads, a database dump, many small files."""
    tree.build(root, specials=False)
    uploads = Path(root, "uploads")
    for index in range(2000):
        folder = uploads / f"{index // 100:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"image-{index:04d}.txt").write_text(f"picture {index}\n" * 20)
    with open(Path(root, "database.dump"), "wb") as handle:
        for _ in range(64):
            handle.write(os.urandom(1024 * 1024))


def leftovers(clients) -> list[str]:
    from kubernetes import client as k8s

    left = []
    for cluster, api_client in clients.items():
        core = k8s.CoreV1Api(api_client)
        for kind, lister in (
            ("Pod", core.list_namespaced_pod),
            ("Service", core.list_namespaced_service),
            ("Secret", core.list_namespaced_secret),
            ("ConfigMap", core.list_namespaced_config_map),
        ):
            for item in lister(NAMESPACE, label_selector=MANAGED).items:
                left.append(f"{cluster}: {kind}/{item.metadata.name}")
    return left


def differences(source: dict, copied: dict) -> list[str]:
    """What rsync should have kept but did not (lost+found is never copied)."""
    kept = ("type", "mode", "uid", "gid", "size", "link", "sha256")
    problems = []
    for rel, entry in source.items():
        if rel.startswith("lost+found"):
            continue
        if rel not in copied:
            problems.append(f"missing: {rel}")
            continue
        problems += [f"{rel}: {key} differs" for key in kept if copied[rel][key] != entry[key]]
    return problems


def run_transfer(state_dir: Path) -> subprocess.CompletedProcess:
    WORK.mkdir(exist_ok=True)
    variables = {
        "state_transfer_source": {
            "kubeconfig": str(state_dir / "kubeconfig"),
            "context": "source",
            "namespace": NAMESPACE,
        },
        "state_transfer_destination": {
            "kubeconfig": str(state_dir / "kubeconfig"),
            "context": "destination",
            "namespace": NAMESPACE,
        },
        "state_transfer_pvcs": [{"source": PVC}],
        "state_transfer_transfer": "rsync",
        "state_transfer_transport": "stunnel",
        "state_transfer_endpoint": "load_balancer",
        "state_transfer_progress_interval": 2,
        "state_transfer_report_path": str(WORK / "report.json"),
    }
    vars_file = WORK / "vars.json"
    vars_file.write_text(json.dumps(variables, indent=2))
    playbook = Path(sys.executable).parent / "ansible-playbook"
    command = [str(playbook), str(ROOT / "playbooks" / "state_transfer.yml"), "-e", f"@{vars_file}"]
    say("running: ansible-playbook playbooks/state_transfer.yml -e @.demo/vars.json")
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    # In kf-world, next to the clusters, resolving names through the harness DNS.
    return subprocess.run(world.in_world(*command), cwd=ROOT, env=env, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="leave the clusters running")
    args = parser.parse_args()
    state_dir = harness.DEFAULT_STATE_DIR.resolve()
    started = not harness.is_up(state_dir)
    if started:
        say("starting the local clusters 'source' and 'destination'")
        harness.up(state_dir)
    try:
        with world.entered():
            clients = {
                name: apiserver.api_client(state_dir, name) for name in ("source", "destination")
            }
            for api_client in clients.values():
                apiserver.ensure_namespace(api_client, NAMESPACE)
            try:
                source_dir = pvcs.create(clients["source"], NAMESPACE, PVC, size="2Gi")
                say(f"filling source PVC {NAMESPACE}/{PVC} with sample data")
                fill_sample_data(source_dir)
            except Exception as error:  # an earlier demo left the PVC: reuse its data
                if "AlreadyExists" not in str(error):
                    raise
                source_dir = pvcs.host_dir(clients["source"], NAMESPACE, PVC)
                say(f"reusing source PVC {NAMESPACE}/{PVC} of an earlier demo")
            before = tree.snapshot(source_dir)
            files = sum(1 for entry in before.values() if entry["sha256"])
            mib = sum(entry["size"] or 0 for entry in before.values()) // 2**20
            say(f"source: {files} files, {mib} MiB")

            result = run_transfer(state_dir)
            if result.returncode != 0:
                say(f"the transfer failed (exit {result.returncode})")
                return result.returncode

            copied = tree.snapshot(pvcs.host_dir(clients["destination"], NAMESPACE, PVC))
            problems = differences(before, copied)
            if tree.snapshot(source_dir) != before:
                problems.append("the source changed")
            left = leftovers(clients)
            problems += [f"left behind: {item}" for item in left]
            if problems:
                say("verification FAILED:\n  " + "\n  ".join(problems[:20]))
                return 1
            say(
                f"verified: all {files} files arrived with the same content, modes and owners; "
                "the source is unchanged; nothing of the run is left on either cluster"
            )
            say(f"report: {WORK / 'report.json'}")
            return 0
    finally:
        if started and not args.keep:
            say("taking the local clusters down")
            harness.down(state_dir)


if __name__ == "__main__":
    sys.exit(main())
