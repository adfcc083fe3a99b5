"""``python -m tests.clusters.node --cluster source|destination --kubeconfig K --state-dir DIR``

The node agent of one twin cluster (run inside kf-world). SIGTERM/SIGINT stop it cleanly:
every pod process is killed, pod network namespaces are removed, then it exits.
"""

import argparse
import logging
import os
import signal
import sys

from ..network import layout
from .agent import NodeAgent


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tests.clusters.node")
    p.add_argument("--cluster", required=True, choices=sorted(layout.CLUSTERS))
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--state-dir", required=True)
    p.add_argument(
        "--no-services",
        action="store_true",
        help="do not run the LoadBalancer/NodePort/Route controllers",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if a.verbose else logging.INFO,
        format=f"%(asctime)s {a.cluster} %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    agent = NodeAgent(
        a.cluster, os.path.abspath(a.kubeconfig), a.state_dir, services=not a.no_services
    )

    def on_signal(signum, _frame):
        logging.getLogger(__name__).info("signal %d: stopping", signum)
        agent.stop_event.set()
        agent.wake.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    agent.start()
    logging.getLogger(__name__).info("node %s ready (%s)", agent.node_name, agent.node_ip)
    agent.run_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
