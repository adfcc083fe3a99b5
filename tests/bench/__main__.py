"""`make bench`: our data phase against the physical limit and the other tools' methods.

    PYTHONPATH=tests python -m bench [--runs 3] [--other-runs 1] [--large-mib 1024] [--files 50000]
                                     [--only NAME ...] [--skip-overhead] [--keep]

On the local twin clusters (started unless up), with the source and destination volumes on
tmpfs (no disk noise), it measures, each as the median of --runs runs (--other-runs for
the combinations the goals do not compare, and the 10 and 50 PVC overhead runs: 1):

- the limit: local ``cp -a`` and local ``rsync -a`` of the same tree, and a tar stream over
  one raw TCP connection on the path the transfers take (tests/bench/methods.py);
- our data phase for every functional transfer x transport x endpoint combination: a
  playbooks/state_transfer.yml run per combination with both sets, one client at a time,
  timed by the client containers' start and end at the node clock's resolution
  (tests/bench/timing.py; the run's summary has whole seconds), with the role's default
  progress interval and time limits, as a user runs it;
- the other tools' methods with the same programs on the same path: rsync -avz over ssh
  (pv-migrate) and rsync -aAhHSxz through stunnel with a pre-shared key (VolSync);
- a re-run with nothing to copy (the data phase of the many-files set);
- orchestration overhead: playbook wall time minus the time any client was copying, for 1,
  10 and 50 PVCs of small data.

Prints Markdown tables (absolute figures and ratios) and the goals of issue 6, and writes them
to .bench/results.json and .bench/table.md. Every copy is checked (file count and bytes).
Needs root (mounts, network namespaces). Exits 1 when a measurement failed, not when a goal
is missed: goals are for people to read.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml
from e2e.playbook import ROOT, on_local_clusters

from . import datasets, methods, timing

WORK = ROOT / ".bench"
NAMESPACES = {"source": "bench-source", "destination": "bench-destination"}
TRANSFERS = ("rsync", "rclone")
TRANSPORTS = ("stunnel", "null")
ENDPOINTS = ("load_balancer", "route", "node_port")
# rsync over the null transport cannot go through a Route (the planner refuses it).
COMBOS = [
    f"{transfer}-{transport}-{endpoint}"
    for transfer in TRANSFERS
    for transport in TRANSPORTS
    for endpoint in ENDPOINTS
    if (transfer, transport, endpoint) != ("rsync", "null", "route")
]
DEFAULT = "rsync-stunnel-load_balancer"
UNENCRYPTED = "rsync-null-load_balancer"
RERUN_COMBOS = (DEFAULT, "rclone-stunnel-load_balancer")
OVERHEAD_PVCS = (1, 10, 50)
PARALLEL = 5  # the role's state_transfer_parallel, which the overhead runs keep
# The client container of ours that runs rsync or rclone (the roles' __transfer_*_container_name).
TRANSFER_CONTAINER = "transfer"
PAIRS = [{"source": name, "destination": f"{name}-copy"} for name in datasets.SETS]
# The settings the e2e helper shortens for its tests, at the role's defaults (a KeyError here
# when one is renamed, rather than a bench that silently runs with the helper's values).
_DEFAULTS = yaml.safe_load((ROOT / "roles/state_transfer/defaults/main.yml").read_text())
ROLE_DEFAULTS = {
    name: _DEFAULTS[name]
    for name in (
        "state_transfer_progress_interval",
        "state_transfer_server_timeout",
        "state_transfer_endpoint_timeout",
    )
}


def say(message: str) -> None:
    print(f"bench: {message}", flush=True)


def median(values):
    values = [value for value in values if value is not None]
    return round(statistics.median(values), 2) if values else None


def agent_pid(cluster):
    """The node agent of a cluster: its pods get their mounts from its mount namespace."""
    from clusters import apiserver, harness

    paths = apiserver.Paths(harness.DEFAULT_STATE_DIR.resolve(), cluster)
    pid = apiserver.recorded_pid("node", paths)
    if pid is None:
        raise RuntimeError(f"no node agent of {cluster} runs")
    return pid


class Volumes:
    """PVC directories on tmpfs. The host's root mount is private (no propagation), so a
    mount is made in the node agent's mount namespace, where pods take theirs from, and the
    bench reads and writes the volume through /proc/<agent>/root."""

    def __init__(self):
        self.pids = {cluster: agent_pid(cluster) for cluster in ("source", "destination")}
        self.mounted = []

    def view(self, cluster, path):
        return f"/proc/{self.pids[cluster]}/root{path}"

    def _in_agent(self, cluster, *command, check=True):
        ns = f"--mount=/proc/{self.pids[cluster]}/ns/mnt"
        return subprocess.run(["nsenter", ns, *command], check=check, capture_output=True)

    def tmpfs(self, cluster, path, size_mib):
        """An empty tmpfs on the volume directory path (a fresh one if one is there)."""
        if os.path.ismount(self.view(cluster, path)):
            self._in_agent(cluster, "umount", path)
        options = f"size={size_mib}m,mode=0755"
        self._in_agent(cluster, "mount", "-t", "tmpfs", "-o", options, "kf-bench", path)
        self.mounted.append((cluster, path))

    def release(self):
        for cluster, path in reversed(self.mounted):
            if os.path.ismount(self.view(cluster, path)):
                self._in_agent(cluster, "umount", path, check=False)


def mount_tmpfs(path, size_mib):
    """An empty tmpfs at path on the host (a fresh one if one is there)."""
    if os.path.ismount(path):
        subprocess.run(["umount", path], check=True)
    os.makedirs(path, exist_ok=True)
    options = f"size={size_mib}m,mode=0755"
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "kf-bench", path], check=True)


def unmount(path):
    if os.path.ismount(path):
        subprocess.run(["umount", path], check=False)


def parse_time(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc
    )


def client_span(entry, after):
    """(start, end) of a PVC's transfer container in seconds since the epoch, from the node's
    log when it has the run, started after `after` (tests/bench/timing.py), else from the
    run's summary."""
    found = timing.span("destination", entry.get("pod"), TRANSFER_CONTAINER, after)
    if found:
        return found
    if entry.get("started_at") and entry.get("finished_at"):
        return tuple(parse_time(entry[k]).timestamp() for k in ("started_at", "finished_at"))
    return None


def transfer_seconds(entry, after):
    """How long a PVC's transfer container ran (see client_span)."""
    found = client_span(entry, after)
    return found[1] - found[0] if found else entry.get("duration_seconds")


def busy_seconds(entries, after):
    """Seconds during which at least one client was copying (union of their intervals)."""
    spans = sorted(filter(None, (client_span(e, after) for e in entries)))
    total, end = 0.0, None
    for start, finish in spans:
        if end is None or start > end:
            total += finish - start
            end = finish
        elif finish > end:
            total += finish - end
            end = finish
    return total


class Bench:
    def __init__(self, transfer, args):
        self.transfer = transfer
        self.args = args
        self.playbook_started = 0.0  # time.time() when the last playbook run began
        self.volumes = Volumes()
        self.dirs = {}  # PVC name -> its directory as the bench sees it
        self.paths = {}  # PVC name -> its directory on the node
        self.expected = {}  # set -> (files, bytes)
        self.failures = []
        self.results = {
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "kernel": platform.release(),
            },
            "settings": {
                "runs": args.runs,
                "other_runs": args.other_runs,
                "large_mib": args.large_mib,
                "files": args.files,
            },
            "sets": {},
            "data": {},
            "rerun": {},
            "overhead": [],
        }

    def wanted(self, name):
        return not self.args.only or name in self.args.only

    # -- the volumes ---------------------------------------------------------------------------
    def tmpfs_size(self, set_name):
        # Files of 1-8 KiB take a 4 KiB page each at least.
        return self.args.large_mib + 256 if set_name == "large" else self.args.files // 64 + 256

    def prepare(self):
        for cluster in ("source", "destination"):  # a fresh start
            for name in self.transfer.pvc_names(cluster):
                self.transfer.delete_pvc(cluster, name)
        time.sleep(1)
        for set_name in datasets.SETS:
            for cluster, name in (("source", set_name), ("destination", f"{set_name}-copy")):
                path = self.transfer.create_pvc(cluster, name, size="4Gi")
                self.volumes.tmpfs(cluster, path, self.tmpfs_size(set_name))
                self.dirs[name] = self.volumes.view(cluster, path)
                self.paths[name] = path
            source = self.dirs[set_name]
            started = time.monotonic()
            files, size = datasets.build(set_name, source, self.args.large_mib, self.args.files)
            self.expected[set_name] = (files, size)
            self.results["sets"][set_name] = {"files": files, "bytes": size}
            say(
                f"set {set_name}: {files} files, {size / datasets.MIB:.0f} MiB "
                f"(made in {time.monotonic() - started:.0f} s)"
            )

    def fresh_copy(self, set_name):
        path = self.paths[f"{set_name}-copy"]
        self.volumes.tmpfs("destination", path, self.tmpfs_size(set_name))

    def check_copy(self, label, set_name, root):
        got = datasets.count(root)
        if got != self.expected[set_name]:
            self.failures.append(
                f"{label} {set_name}: copied {got}, expected {self.expected[set_name]}"
            )
            return False
        return True

    def record(self, name, set_name, seconds, extra=None):
        entry = self.results["data"].setdefault(name, {}).setdefault(set_name, {"runs": []})
        entry["runs"].append(round(seconds, 2) if seconds is not None else None)
        entry["seconds"] = median(entry["runs"])
        entry.update(extra or {})

    # -- the limit -----------------------------------------------------------------------------
    def local(self, tool):
        scratch = str(WORK / "local")
        for set_name in datasets.SETS:
            for _run in range(self.args.runs):
                mount_tmpfs(scratch, self.tmpfs_size(set_name))
                source = self.dirs[set_name]
                command = (
                    ["cp", "-a", f"{source}/.", scratch]
                    if tool == "cp -a"
                    else ["rsync", "-a", f"{source}/", f"{scratch}/"]
                )
                started = time.monotonic()
                subprocess.run(command, check=True)
                seconds = time.monotonic() - started
                self.check_copy(tool, set_name, scratch)
                self.record(f"local {tool}", set_name, seconds)
            median_seconds = self.results["data"][f"local {tool}"][set_name]["seconds"]
            say(f"local {tool} {set_name}: {median_seconds} s")
        unmount(scratch)

    # -- the yardsticks on the clusters --------------------------------------------------------
    def method(self, name):
        for set_name in datasets.SETS:
            for _run in range(self.args.runs):
                self.fresh_copy(set_name)
                outcome = methods.Method(self.transfer, name).run(set_name, f"{set_name}-copy")
                ok = outcome["exit_code"] == 0 and self.check_copy(
                    name, set_name, self.dirs[f"{set_name}-copy"]
                )
                if not ok:
                    self.failures.append(
                        f"{name} {set_name}: exit {outcome['exit_code']}: "
                        f"{outcome['log_tail'][-500:]}"
                    )
                self.record(name, set_name, outcome["seconds"] if ok else None)
            say(f"{name} {set_name}: {self.results['data'][name][set_name]['seconds']} s")

    # -- ours ----------------------------------------------------------------------------------
    def combo_variables(self, combo):
        transfer, transport, endpoint = combo.split("-", 2)
        return dict(
            state_transfer_transfer=transfer,
            state_transfer_transport=transport,
            state_transfer_endpoint=endpoint,
        )

    def playbook(self, label, **variables):
        self.playbook_started = time.time()  # the containers of this run start after it
        # The role's defaults, as a user runs it: the e2e helper shortens the progress
        # interval (a progress snapshot is a module run, which competes with the copy for CPU).
        variables = dict(ROLE_DEFAULTS, **variables)
        result = self.transfer.playbook(name=label, **variables)
        (WORK / f"{label}.log").write_text((result.stdout or "") + (result.stderr or ""))
        if result.returncode != 0 or not result.report:
            self.failures.append(
                f"{label}: the playbook failed (exit {result.returncode}), see .bench/{label}.log"
            )
            return None
        return result

    def ours(self, combo):
        key = combo in (DEFAULT, UNENCRYPTED)
        for index in range(self.args.runs if key else self.args.other_runs):
            for set_name in datasets.SETS:
                self.fresh_copy(set_name)
            # One client at a time: each set has the path to itself.
            variables = dict(
                self.combo_variables(combo), state_transfer_pvcs=PAIRS, state_transfer_parallel=1
            )
            result = self.playbook(f"{combo}-{index}", **variables)
            by_pvc = {e["pvc"]: e for e in (result.report["pvcs"] if result else [])}
            for set_name in datasets.SETS:
                entry = by_pvc.get(f"{set_name}-copy") or by_pvc.get(set_name) or {}
                ok = entry.get("state") == "success" and self.check_copy(
                    combo, set_name, self.dirs[f"{set_name}-copy"]
                )
                seconds = transfer_seconds(entry, self.playbook_started) if ok else None
                self.record(combo, set_name, seconds)
            if result and combo in RERUN_COMBOS:
                again = self.playbook(f"{combo}-{index}-again", **variables)
                for entry in again.report["pvcs"] if again else []:
                    set_name = entry["pvc"].replace("-copy", "")
                    rerun = (
                        self.results["rerun"]
                        .setdefault(combo, {})
                        .setdefault(set_name, {"runs": [], "files": []})
                    )
                    rerun["runs"].append(transfer_seconds(entry, self.playbook_started))
                    rerun["files"].append(entry.get("files"))
                    rerun["seconds"] = median(rerun["runs"])
        data = self.results["data"][combo]
        say(f"{combo}: " + ", ".join(f"{s} {data[s]['seconds']} s" for s in datasets.SETS))

    # -- orchestration overhead ----------------------------------------------------------------
    def overhead(self):
        made = 0
        for count in self.args.pvcs:
            while made < count:
                path = self.transfer.create_pvc("source", f"small-{made:03d}", size="64Mi")
                Path(path, "data.txt").write_text(f"small volume {made}\n" * 100)
                made += 1
            runs = self.args.runs if count == 1 else 1
            walls, busies, profiles = [], [], []
            for index in range(runs):
                pairs = [{"source": f"small-{i:03d}"} for i in range(count)]
                result = self.playbook(f"overhead-{count}-{index}", state_transfer_pvcs=pairs)
                if result:
                    walls.append(result.seconds)
                    busies.append(busy_seconds(result.report["pvcs"], self.playbook_started))
                    profiles.append(
                        timing.turns(
                            "destination",
                            NAMESPACES["destination"],
                            self.playbook_started,
                            "transfer",
                            PARALLEL,
                        )
                    )
                for i in range(count):
                    self.transfer.delete_pvc("destination", f"small-{i:03d}")
                time.sleep(1)
            entry = {
                "pvcs": count,
                "wall_seconds": median(walls),
                "data_seconds": median(busies),
                "overhead_seconds": median([w - b for w, b in zip(walls, busies)]),
                "runs": [round(w, 1) for w in walls],
                # the client pods of the last run, as the destination's node saw them
                "client_pods": profiles[-1] if profiles else None,
            }
            self.results["overhead"].append(entry)
            say(
                f"overhead, {count} PVCs: wall {entry['wall_seconds']} s, "
                f"data {entry['data_seconds']} s, overhead {entry['overhead_seconds']} s"
            )

    def cleanup(self):
        self.volumes.release()


def throughput(entry, size):
    return size / entry["seconds"] / datasets.MIB if entry and entry.get("seconds") else None


def fmt(value, digits=1):
    return "-" if value is None else f"{value:.{digits}f}"


def tables(results):
    sets, data = results["sets"], results["data"]
    large, many = sets["large"], sets["many"]
    limit = data.get("tcp", {})
    lines = [
        f"Data phase, median of {results['settings']['runs']} runs "
        f"({results['settings']['other_runs']} for the other combinations); large: 1 file of "
        f"{large['bytes'] // datasets.MIB} MiB (random), many: {many['files']:,} files of "
        f"1-8 KiB ({many['bytes'] // datasets.MIB} MiB). Ratios: throughput of the row over the "
        "raw TCP copy (the limit of the path); seconds of pv-migrate's and VolSync's methods "
        "over the row's (> 1: the row is faster).",
        "",
        "| what | large: s | MiB/s | × limit | many: s | files/s | × limit "
        "| vs pv-migrate (large, many) | vs VolSync (large, many) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def ratio(a, b):
        return a / b if a and b else None

    for name, entry in data.items():
        big, small = entry.get("large", {}), entry.get("many", {})
        speed = throughput(big, large["bytes"])
        files = many["files"] / small["seconds"] if small.get("seconds") else None
        versus = []
        for other in ("pv-migrate", "volsync"):
            o = data.get(other, {})
            versus.append(
                f"{fmt(ratio(o.get('large', {}).get('seconds'), big.get('seconds')), 2)}, "
                f"{fmt(ratio(o.get('many', {}).get('seconds'), small.get('seconds')), 2)}"
            )
        lines.append(
            f"| {name} | {fmt(big.get('seconds'))} | {fmt(speed, 0)} "
            f"| {fmt(ratio(limit.get('large', {}).get('seconds'), big.get('seconds')), 2)} "
            f"| {fmt(small.get('seconds'))} | {fmt(files, 0)} "
            f"| {fmt(ratio(limit.get('many', {}).get('seconds'), small.get('seconds')), 2)} "
            f"| {versus[0]} | {versus[1]} |"
        )
    if results["rerun"]:
        lines += [
            "",
            "Re-run with nothing to copy (data phase, median):",
            "",
            "| combination | large: s | many: s | files moved |",
            "| --- | ---: | ---: | ---: |",
        ]
        for combo, entry in results["rerun"].items():
            moved = sorted(set(f for s in entry.values() for f in s["files"]))
            lines.append(
                f"| {combo} | {fmt(entry.get('large', {}).get('seconds'))} "
                f"| {fmt(entry.get('many', {}).get('seconds'))} | {moved} |"
            )
    if results["overhead"]:
        lines += [
            "",
            "Orchestration overhead (playbook wall time minus the time clients copied; "
            "role defaults: rsync, stunnel, load_balancer, 5 clients at a time):",
            "",
            "| PVCs | wall s | data s | overhead s | overhead per PVC s |",
            "| ---: | ---: | ---: | ---: | ---: |",
        ]
        for entry in results["overhead"]:
            per = entry["overhead_seconds"] / entry["pvcs"] if entry["overhead_seconds"] else None
            lines.append(
                f"| {entry['pvcs']} | {fmt(entry['wall_seconds'])} | {fmt(entry['data_seconds'])} "
                f"| {fmt(entry['overhead_seconds'])} | {fmt(per, 2)} |"
            )
        lines += [
            "",
            "Where the client pods' time went (medians over the pods of the last run of each row, "
            "as the destination's node saw them; s):",
            "",
            "| PVCs | first pod taken to last pod ended | taken to started | copy container "
            "| copy end to pod end (sidecar) | pod end to the next pod taken |",
            "| ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for entry in results["overhead"]:
            pods = entry.get("client_pods") or {}
            lines.append(
                f"| {entry['pvcs']} | {fmt(pods.get('span_seconds'))} | "
                f"{fmt(pods.get('to_start'), 2)} | {fmt(pods.get('copy'), 2)} | "
                f"{fmt(pods.get('sidecar_stop'), 2)} | {fmt(pods.get('next_taken'), 2)} |"
            )
    return "\n".join(lines)


def goals(results):
    """Issue 6's goals, each (text, met or None when not measured, figures)."""
    data, overhead = (
        results["data"],
        {e["pvcs"]: e["overhead_seconds"] for e in results["overhead"]},
    )

    def seconds(name, set_name):
        return data.get(name, {}).get(set_name, {}).get("seconds")

    def speed_ratio(encrypted, unencrypted):
        ours, plain = seconds(encrypted, "large"), seconds(unencrypted, "large")
        return plain / ours if ours and plain else None

    checks = []
    value = speed_ratio(DEFAULT, UNENCRYPTED)
    # The same pair through the NodePort, for whether TLS or the LoadBalancer's proxy limits.
    node_port = speed_ratio("rsync-stunnel-node_port", "rsync-null-node_port")
    checks.append(
        (
            "rsync+stunnel >= 0.8x unencrypted rsync throughput (large)",
            None if value is None else value >= 0.8,
            fmt(value, 2)
            + ("" if node_port is None else "; through the NodePort " + fmt(node_port, 2)),
        )
    )
    for other in ("pv-migrate", "volsync"):
        for set_name in datasets.SETS:
            a, b = seconds(DEFAULT, set_name), seconds(other, set_name)
            checks.append(
                (
                    f"rsync+stunnel beats {other} ({set_name})",
                    None if not (a and b) else a < b,
                    f"{fmt(a)} s vs {fmt(b)} s",
                )
            )
    one = overhead.get(1)
    checks.append(("overhead for 1 PVC <= 20 s", None if one is None else one <= 20, fmt(one)))
    if all(overhead.get(n) is not None for n in OVERHEAD_PVCS):
        first = (overhead[10] - overhead[1]) / 9
        then = (overhead[50] - overhead[10]) / 40
        checks.append(
            (
                "overhead grows less than linearly (s per added PVC: 1->10 > 10->50)",
                then < first,
                f"{first:.2f} then {then:.2f}",
            )
        )
    rerun = results["rerun"].get(DEFAULT, {}).get("many", {}).get("seconds")
    checks.append(
        (
            f"no-change re-run of {results['sets']['many']['files']:,} files <= 2 s",
            None if rerun is None else rerun <= 2,
            fmt(rerun),
        )
    )
    return checks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--large-mib", type=int, default=1024)
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument(
        "--other-runs",
        type=int,
        default=1,
        help="runs of the combinations other than rsync over stunnel and over null through a "
        "LoadBalancer (the ones the goals compare)",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="a measurement: 'local cp -a', 'local rsync -a', tcp, pv-migrate, "
        "volsync or a combination such as rsync-stunnel-load_balancer",
    )
    parser.add_argument(
        "--pvcs",
        type=lambda text: [int(n) for n in text.split(",")],
        default=list(OVERHEAD_PVCS),
        help="PVC counts of the overhead runs (default 1,10,50)",
    )
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--keep", action="store_true", help="leave the clusters running")
    args = parser.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir()
    ticks = timing.cpu_ticks()
    with on_local_clusters(WORK, NAMESPACES, keep=args.keep, say=say) as transfer:
        bench = Bench(transfer, args)
        try:
            bench.prepare()
            for tool in ("cp -a", "rsync -a"):
                if bench.wanted(f"local {tool}"):
                    bench.local(tool)
            for name in methods.METHODS:
                if bench.wanted(name):
                    bench.method(name)
            for combo in COMBOS:
                if bench.wanted(combo):
                    bench.ours(combo)
            if not args.skip_overhead and (not args.only or "overhead" in args.only):
                bench.overhead()
        finally:
            bench.cleanup()
    results = bench.results
    results["machine"]["cpu_steal_percent"] = timing.steal_percent(ticks, timing.cpu_ticks())
    results["failures"] = bench.failures
    results["goals"] = [
        {"goal": text, "met": met, "figures": figures} for text, met, figures in goals(results)
    ]
    verdicts = {True: "met", False: "NOT met", None: "not measured"}
    markdown = (
        tables(results)
        + "\n\nCPU time the hypervisor took from this machine during the run (steal): "
        + f"{results['machine']['cpu_steal_percent']} % of its CPU time (a shared host; compare "
        "runs with similar steal)."
        + "\n\nGoals (issue 6):\n\n"
        + "\n".join(
            f"- {verdicts[met]}: {text} ({figures})" for text, met, figures in goals(results)
        )
    )
    (WORK / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (WORK / "table.md").write_text(markdown + "\n")
    print(markdown, flush=True)
    for failure in bench.failures:
        say(f"FAILED: {failure}")
    return 1 if bench.failures else 0


if __name__ == "__main__":
    sys.exit(main())
