"""`make demo`: the collection's main job on the local twin clusters, start to finish.

Starts the two local clusters (tests/clusters), puts sample data into a PVC of the source
cluster, runs playbooks/state_transfer.yml with rsync over stunnel through a LoadBalancer
(the defaults), verifies the copy file by file on the destination's volume, checks that
nothing of the run is left on either cluster, and takes the clusters down again (unless
--keep). Needs root (network namespaces).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dataplane import tree
from e2e.playbook import CLUSTERS, Transfer, on_local_clusters

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "shop"
PVC = "shop-data"
WORK = ROOT / ".demo"


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
        for _mib in range(64):
            handle.write(os.urandom(1024 * 1024))


def run_transfer(transfer: Transfer):
    variables = dict(
        state_transfer_pvcs=[{"source": PVC}],
        state_transfer_transfer="rsync",
        state_transfer_transport="stunnel",
        state_transfer_endpoint="load_balancer",
        state_transfer_report_path=str(WORK / "report.json"),
    )
    say("running: ansible-playbook playbooks/state_transfer.yml -e @.demo/vars-demo.json")
    return transfer.playbook(name="demo", **variables)


def demo(transfer: Transfer) -> int:
    """Sample data, the transfer, the verification; the exit code of `make demo`."""
    try:
        source_dir = transfer.create_pvc("source", PVC, size="2Gi")
        say(f"filling source PVC {NAMESPACE}/{PVC} with sample data")
        fill_sample_data(source_dir)
    except Exception as error:  # an earlier demo left the PVC: reuse its data
        if "AlreadyExists" not in str(error):
            raise
        source_dir = transfer.pvc_dir("source", PVC)
        say(f"reusing source PVC {NAMESPACE}/{PVC} of an earlier demo")
    before = tree.snapshot(source_dir)
    files = sum(1 for entry in before.values() if entry["sha256"])
    mib = sum(entry["size"] or 0 for entry in before.values()) // 2**20
    say(f"source: {files} files, {mib} MiB")

    result = run_transfer(transfer)
    if result.returncode != 0:
        say(f"the transfer failed (exit {result.returncode})")
        return result.returncode

    copied = tree.snapshot(transfer.pvc_dir("destination", PVC))
    problems = tree.rsync_differences(before, copied)
    if tree.snapshot(source_dir) != before:
        problems.append("the source changed")
    problems += [f"left behind: {item}" for item in transfer.leftovers()]
    if problems:
        say("verification FAILED:\n  " + "\n  ".join(problems[:20]))
        return 1
    say(
        f"verified: all {files} files arrived with the same content, modes, owners, times, "
        "hard links, ACLs and xattrs; the source is unchanged; nothing of the run is left "
        "on either cluster"
    )
    say(f"report: {WORK / 'report.json'}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="leave the clusters running")
    args = parser.parse_args()
    namespaces = {name: NAMESPACE for name in CLUSTERS}
    # capture=False: the user watches the playbook's own output.
    with on_local_clusters(WORK, namespaces, capture=False, keep=args.keep, say=say) as transfer:
        return demo(transfer)


if __name__ == "__main__":
    sys.exit(main())
