"""`make matrix`: every transfer x transport x endpoint combination, end to end, verified.

    PYTHONPATH=tests python -m matrix [--scale full|small] [--only rsync-stunnel-route] [--keep]

Starts the local twin clusters (unless they are up), fills one source PVC with the data set
(tests/matrix/dataset.py), then for each of the 12 combinations runs
playbooks/state_transfer.yml into a destination PVC of its own and checks, as a user would:

- functional rows: the copy, file by file, against the fidelity documented for the transfer
  tool (rsync: everything; rclone: contents, file times to the second, links, directories);
  a second run after one new source file moves exactly that file; the source is unchanged;
- refused rows: the playbook fails before anything is created and says why;
- every row: nothing of the run is left on either cluster.

Prints a Markdown table (also written to .matrix/table.md, with .matrix/results.json) and
exits 1 when a row differs from tests/matrix/expected.yml, the matrix the README promises.
Needs root (network namespaces, file owners).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import yaml
from dataplane import tree
from e2e.playbook import CLUSTERS, ROOT, Transfer, on_local_clusters

from . import dataset

HERE = Path(__file__).resolve().parent
EXPECTED = HERE / "expected.yml"
WORK = ROOT / ".matrix"
SOURCE_PVC = "dataset"
NAMESPACES = {"source": "matrix-source", "destination": "matrix-destination"}
PREVIEW = 3  # problems shown per row


def say(message: str) -> None:
    print(f"matrix: {message}", flush=True)


def combo_name(row: dict) -> str:
    return "-".join((row["transfer"], row["transport"], row["endpoint"])).replace("_", "-")


def expected_rows() -> list[dict]:
    return yaml.safe_load(EXPECTED.read_text())


def refusal_message(result) -> str:
    """The error the user sees for a refused run (ansible-core prints it as [ERROR])."""
    output = (result.stdout or "") + (result.stderr or "")
    match = re.search(r"\[ERROR\]: Task failed: (?:Action failed: )?(.*)", output)
    if not match:
        return "no error message"
    return match.group(1).strip().strip("[]").strip("'\"")


def differences(transfer_tool: str, before: dict, copied: dict) -> list[str]:
    if transfer_tool == "rsync":
        return tree.rsync_differences(before, copied)
    return tree.rclone_differences(before, copied)


def run_row(transfer: Transfer, row: dict, source_dir: str, before: dict) -> dict:
    """One combination: first run, verification, a change, a second run, leftovers."""
    name = combo_name(row)
    destination = f"copy-{name}"
    variables = dict(
        state_transfer_pvcs=[{"source": SOURCE_PVC, "destination": destination}],
        state_transfer_transfer=row["transfer"],
        state_transfer_transport=row["transport"],
        state_transfer_endpoint=row["endpoint"],
    )
    result = dict(row, state="failed", bytes=None, files=None, seconds=None, rerun=None)
    problems = []
    first = transfer.playbook(**variables)
    (WORK / f"{name}-first.log").write_text((first.stdout or "") + (first.stderr or ""))
    result["seconds"] = round(first.seconds, 1)
    if first.returncode != 0:
        message = refusal_message(first)
        created = destination in transfer.pvc_names("destination")
        refused_early = not created and not transfer.leftovers()
        result.update(state="refused" if refused_early else "failed", message=message)
        if not refused_early:
            problems.append("failed after creating objects or the destination PVC")
        if row.get("refused_because") and row["refused_because"] not in message:
            problems.append("the message does not say why")
        result["verification"] = "; ".join(problems) or "nothing created"
        result["ok"] = result["state"] == row["state"] and not problems
        return result

    pvc = (first.report or {}).get("pvcs", [{}])[0]
    result.update(
        state="functional",
        bytes=pvc.get("bytes"),
        files=pvc.get("files"),
        data_seconds=pvc.get("duration_seconds"),
    )
    copied_dir = transfer.pvc_dir("destination", destination)
    problems += differences(row["transfer"], before, tree.snapshot(copied_dir))
    problems += [f"left behind: {item}" for item in transfer.leftovers()]

    # A change on the source, then the same transfer again: only the change moves. The
    # directory's times are put back afterwards, so the next row expects the same tree.
    change = Path(source_dir, "many", f"changed-for-{name}.txt")
    times = os.stat(change.parent)
    change.write_text(f"written after the first run of {name}\n")
    try:
        second = transfer.playbook(**variables)
    finally:
        change.unlink()
        os.utime(change.parent, ns=(times.st_atime_ns, times.st_mtime_ns))
    (WORK / f"{name}-second.log").write_text((second.stdout or "") + (second.stderr or ""))
    if second.returncode != 0:
        problems.append(f"the second run failed (exit {second.returncode})")
    else:
        moved = (second.report or {}).get("pvcs", [{}])[0].get("files")
        result["rerun"] = {"files": moved, "seconds": round(second.seconds, 1)}
        if moved != 1:
            problems.append(f"the second run moved {moved} files, not the 1 changed")
        arrived = Path(copied_dir, "many", change.name)
        if not arrived.is_file() or "after the first run" not in arrived.read_text():
            problems.append("the change did not arrive")
    problems += [f"left behind: {item}" for item in transfer.leftovers()]
    transfer.delete_pvc("destination", destination)

    checked = sum(1 for rel, entry in before.items() if entry["sha256"] and "lost+found" not in rel)
    fidelity = "rsync: all metadata" if row["transfer"] == "rsync" else "rclone: contents, times"
    result["problems"] = problems
    result["verification"] = (
        f"ok: {checked} files ({fidelity}); re-run moved 1; nothing left"
        if not problems
        else "FAILED: " + "; ".join(problems[:PREVIEW])
    )
    result["ok"] = row["state"] == "functional" and not problems
    return result


def human(size) -> str:
    if size is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def table(results: list[dict]) -> str:
    lines = [
        "| transfer | transport | endpoint | state | expected | bytes | files moved "
        "| seconds (data) | re-run: files, seconds | verification |",
        "| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        rerun = f"{r['rerun']['files']}, {r['rerun']['seconds']}" if r.get("rerun") else "-"
        seconds = r["seconds"]
        if r.get("data_seconds") is not None:
            seconds = f"{seconds} ({r['data_seconds']})"
        files = "-" if r["files"] is None else r["files"]
        verification = r["verification"]
        if r["state"] == "refused":
            verification = f"{verification}; says: {r['message']}"
        lines.append(
            f"| {r['transfer']} | {r['transport']} | {r['endpoint']} | {r['state']} "
            f"| {r['expected']} | {human(r['bytes'])} | {files} "
            f"| {seconds} | {rerun} | {verification.replace('|', '/')} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(dataset.SCALES), default="full")
    parser.add_argument("--only", action="append", default=[], help="e.g. rsync-stunnel-route")
    parser.add_argument("--keep", action="store_true", help="leave the clusters running")
    args = parser.parse_args()
    rows = [r for r in expected_rows() if not args.only or combo_name(r) in args.only]
    if not rows:
        parser.error("--only matches no combination of tests/matrix/expected.yml")
    shutil.rmtree(WORK, ignore_errors=True)
    with on_local_clusters(WORK, NAMESPACES, keep=args.keep, say=say) as transfer:
        return run_matrix(transfer, rows, args.scale)


def run_matrix(transfer: Transfer, rows: list[dict], scale: str) -> int:
    for cluster in CLUSTERS:  # a fresh start: PVCs of an earlier matrix run go
        for name in transfer.pvc_names(cluster):
            transfer.delete_pvc(cluster, name)
    time.sleep(1)
    source_dir = transfer.create_pvc("source", SOURCE_PVC, size="4Gi")
    if os.listdir(source_dir):  # the volume of an earlier run, not yet removed
        say(f"the new source volume {source_dir} is not empty; run `make clusters-down` first")
        return 2
    files, size = dataset.build(source_dir, scale)
    before = tree.snapshot(source_dir)
    say(f"data set ({scale}): {files} files, {human(size)} in {source_dir}")

    results = []
    for row in rows:
        say(f"{combo_name(row)}: expected {row['state']}")
        result = run_row(transfer, row, source_dir, before)
        result["expected"] = row["state"]
        say(f"{combo_name(row)}: {result['state']}, {result['verification']}")
        results.append(result)
    source_changed = tree.snapshot(source_dir) != before
    if source_changed:
        say("FAILED: the source volume changed")
    markdown = table(results)
    (WORK / "table.md").write_text(markdown + "\n")
    (WORK / "results.json").write_text(
        json.dumps({"scale": scale, "files": files, "bytes": size, "rows": results}, indent=2)
    )
    print(markdown, flush=True)
    failed = [combo_name(r) for r in results if not r.get("ok")]
    if failed or source_changed:
        say("rows that differ from tests/matrix/expected.yml: " + ", ".join(failed))
        return 1
    say(f"all {len(results)} rows as expected (tests/matrix/expected.yml)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
