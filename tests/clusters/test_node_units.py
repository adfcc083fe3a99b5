"""Unit tests of the node agent's pure logic (no cluster, no root)."""

from __future__ import annotations

import os

from .node.agent import node_fits
from .node.launcher import in_root
from .node.logserver import CRI_ENTRY_BYTES, tail_entries
from .node.runtime import missing_programs
from .node.volumes import expand

LABELS = {"kubernetes.io/hostname": "kf-source-node", "kubernetes.io/os": "linux"}


def _pod(**spec):
    return {"metadata": {"name": "p", "namespace": "n"}, "spec": spec}


def test_node_fits_selector_and_affinity():
    assert node_fits(_pod(), "kf-source-node", LABELS) is None
    assert (
        node_fits(_pod(nodeSelector={"kubernetes.io/os": "linux"}), "kf-source-node", LABELS)
        is None
    )
    assert "didn't match" in node_fits(
        _pod(nodeSelector={"kubernetes.io/hostname": "other"}), "kf-source-node", LABELS
    )

    def affinity(op, values, key="kubernetes.io/hostname"):
        term = {"matchExpressions": [{"key": key, "operator": op, "values": values}]}
        return _pod(
            affinity={
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}
                }
            }
        )

    assert node_fits(affinity("In", ["kf-source-node"]), "kf-source-node", LABELS) is None
    assert node_fits(affinity("In", ["kf-destination-node"]), "kf-source-node", LABELS)
    assert node_fits(affinity("NotIn", ["kf-source-node"]), "kf-source-node", LABELS)
    assert (
        node_fits(affinity("Exists", [], key="kubernetes.io/os"), "kf-source-node", LABELS) is None
    )
    assert node_fits(affinity("DoesNotExist", [], key="gpu"), "kf-source-node", LABELS) is None
    # What the collection uses to pin a pod to the node of its PVCs.
    pinned = affinity("In", ["kf-source-node"])
    term = pinned["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    term["nodeSelectorTerms"] = [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["kf-source-node"]}]}
    ]
    assert node_fits(pinned, "kf-source-node", LABELS) is None
    assert node_fits(pinned, "kf-destination-node", LABELS)


def test_expand_follows_kubernetes_rules():
    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)", env) == "1-two"
    assert expand("$(MISSING) $$(A) $(cat x)", env) == "$(MISSING) $(A) $(cat x)"


def test_in_root_resolves_symlinks_inside_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "run").mkdir(parents=True)
    (root / "var").mkdir()
    os.symlink("/run", root / "var" / "run")  # absolute, as on Debian
    os.symlink("../run", root / "var" / "rel")
    os.symlink("/../../..", root / "escape")
    assert in_root(str(root), "/var/run/secrets/x") == str(root / "run" / "secrets" / "x")
    assert in_root(str(root), "/var/rel/y") == str(root / "run" / "y")
    assert in_root(str(root), "/escape/etc") == str(root / "etc")
    assert in_root(str(root), "/../../etc") == str(root / "etc")


def test_an_image_tagged_without_a_program_lacks_it_in_every_path_directory():
    assert missing_programs("quay.io/backube/volsync:0.11.0") == []
    assert missing_programs("") == [] and missing_programs(None) == []
    absent = missing_programs("example.com/no-stunnel:kf-test-without-stunnel")
    assert "/usr/bin/stunnel" in absent and "/bin/stunnel" in absent
    assert {os.path.basename(path) for path in absent} == {"stunnel"}


def test_a_load_balancer_hostname_label_stays_a_valid_dns_label():
    from .network.services import lb_label

    assert lb_label("web", "shop") == "web-shop"
    long = lb_label(
        "kubeferry-e0eaf680-server", "kft-test-a-load-balancer-hostname-whose-dns-18be60"
    )
    assert len(long) <= 63 and long.startswith("kubeferry-e0eaf680-server-kft-test")
    assert long != lb_label(
        "kubeferry-e0eaf680-server", "kft-test-a-load-balancer-hostname-whose-dns-28be60"
    )


def test_route_timeout_annotations_become_backend_timeouts_as_in_openshift():
    from .network.services import route_timeouts

    assert route_timeouts({}) == []
    assert route_timeouts(
        {
            "haproxy.router.openshift.io/timeout": "24h",
            "haproxy.router.openshift.io/timeout-tunnel": "90s",
        }
    ) == ["  timeout server 24h", "  timeout tunnel 90s"]
    assert route_timeouts({"haproxy.router.openshift.io/timeout-tunnel": "soon"}) == []


def test_tail_lines_counts_log_entries_as_a_kubelet_on_containerd():
    # rsync's progress is one line of carriage-return updates: the kubelet serves its last
    # 16 KiB entries, not its last updates.
    progress = b"".join(b"\r%10d 50%%" % n for n in range(5000))  # 80,000 bytes, one line
    data = b"first\nsecond\n" + progress + b"\nstats\n"
    assert tail_entries(data, 1) == b"stats\n"
    assert tail_entries(data, 2) == progress[4 * CRI_ENTRY_BYTES :] + b"\nstats\n"
    assert tail_entries(data, 6) == progress + b"\nstats\n"
    assert tail_entries(data, 7) == b"second\n" + progress + b"\nstats\n"
    assert tail_entries(data, 100) == data
    assert tail_entries(b"no newline at the end", 1) == b"no newline at the end"
    assert tail_entries(data, 0) == b""
