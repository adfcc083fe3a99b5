"""Fault knob: ``python -m tests.clusters.node.kill --state-dir DIR NAMESPACE POD CONTAINER``.

Sends SIGKILL (or ``--signal``) to the container's PID 1, as an OOM kill or a runtime kill
would; the node agent then records the exit (137) and applies the restart policy. Tests can
also set the Pod annotation ``kf.test/kill-container: <container>`` (once per value).
"""

import argparse
import glob
import os
import signal
import sys


def init_pid(state_dir, namespace, pod, container):
    logs = glob.glob(os.path.join(state_dir, "logs", "pods", f"{namespace}_{pod}_*"))
    for d in sorted(logs, key=os.path.getmtime, reverse=True):
        uid = os.path.basename(d)[len(f"{namespace}_{pod}_") :]
        pattern = os.path.join(
            state_dir, "node", "*", "pods", uid, "containers", f"{container}-*", "init.pid"
        )
        found = sorted(glob.glob(pattern), key=lambda p: int(p.rsplit("-", 1)[1].split("/")[0]))
        if found:
            with open(found[-1]) as fh:
                return int(fh.read().strip())
    return None


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tests.clusters.node.kill")
    p.add_argument("--state-dir", required=True)
    p.add_argument("--signal", default="KILL")
    p.add_argument("namespace")
    p.add_argument("pod")
    p.add_argument("container")
    a = p.parse_args(argv)
    pid = init_pid(os.path.abspath(a.state_dir), a.namespace, a.pod, a.container)
    if pid is None:
        print(f"no running container {a.container} in {a.namespace}/{a.pod}", file=sys.stderr)
        return 1
    os.kill(pid, getattr(signal, f"SIG{a.signal.upper().removeprefix('SIG')}"))
    print(pid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
