"""Unit tests of the node agent's NetworkPolicy rules (node/netpol.py): policy + pod ->
iptables-restore lines. No cluster, no root."""

from __future__ import annotations

import copy

import pytest

from .node.netpol import CHAIN, ingress_policies, ingress_rules, ruleset, selector_matches

NODE = "198.18.1.1"
DROP = f"-A {CHAIN} -p tcp -j DROP"


def _pod(name="server", namespace="shop", labels=None, ip="198.18.1.5", ports=(), probe=None):
    container = {"name": "main", "ports": [dict(p) for p in ports]}
    if probe:
        container["readinessProbe"] = probe
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {"containers": [container]},
        "status": {"phase": "Running", "podIP": ip},
    }


def _policy(ingress, selector=None, name="only-tls", namespace="shop", types=("Ingress",)):
    spec = {"podSelector": {"matchLabels": {"app": "server"}} if selector is None else selector}
    if types is not None:
        spec["policyTypes"] = list(types)
    if ingress is not None:
        spec["ingress"] = ingress
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}


SERVER = _pod(labels={"app": "server", "kubeferry.io/side": "server"})


def _accepts(lines):
    """The rules of the pod's chain between the fixed head and the final DROP."""
    body = [line for line in lines if line.startswith(f"-A {CHAIN} ")]
    assert body[:2] == [
        f"-A {CHAIN} -i lo -j ACCEPT",
        f"-A {CHAIN} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
    ]
    assert body[-1] == DROP
    return body[2:-1]


def test_an_unselected_pod_is_not_isolated():
    other_namespace = _policy([{"ports": [{"port": 6443}]}], namespace="elsewhere")
    other_labels = _policy([{"ports": [{"port": 6443}]}], selector={"matchLabels": {"app": "x"}})
    egress_only = _policy(None, types=("Egress",))
    for policies in ([], [other_namespace], [other_labels], [egress_only]):
        lines, warnings = ingress_rules(SERVER, policies, node_address=NODE)
        assert lines is None and warnings == []
    # The open table: every chain accepts, no KF-NETPOL (iptables-restore replaces the table).
    assert ruleset(None) == "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n" + (
        ":OUTPUT ACCEPT [0:0]\nCOMMIT\n"
    )


def test_one_tcp_port_from_anywhere_is_admitted_and_the_rest_dropped():
    lines, warnings = ingress_rules(
        SERVER, [_policy([{"ports": [{"protocol": "TCP", "port": 6443}]}])], node_address=NODE
    )
    assert warnings == []
    assert lines[0] == "*filter" and lines[-1] == "COMMIT"
    assert f":{CHAIN} - [0:0]" in lines
    assert f"-A INPUT -j {CHAIN}" in lines
    assert _accepts(lines) == [
        f"-A {CHAIN} -p tcp --dport 6443 -m comment --comment shop/only-tls -j ACCEPT"
    ]
    text = ruleset(lines)
    assert text.endswith("COMMIT\n") and text.count("COMMIT") == 1


def test_policy_types_default_to_ingress():
    lines, _warnings = ingress_rules(SERVER, [_policy([{"ports": [{"port": 8873}]}], types=None)])
    assert _accepts(lines) == [
        f"-A {CHAIN} -p tcp --dport 8873 -m comment --comment shop/only-tls -j ACCEPT"
    ]


def test_a_policy_without_rules_denies_every_new_tcp_connection():
    for ingress in (None, []):
        lines, _warnings = ingress_rules(SERVER, [_policy(ingress)], node_address=NODE)
        assert _accepts(lines) == []


def test_an_empty_rule_or_empty_ports_admit_every_port():
    lines, _warnings = ingress_rules(SERVER, [_policy([{}])])
    assert _accepts(lines) == [f"-A {CHAIN} -p tcp -m comment --comment shop/only-tls -j ACCEPT"]
    lines, _warnings = ingress_rules(SERVER, [_policy([{"ports": [{"protocol": "TCP"}]}])])
    assert _accepts(lines) == [f"-A {CHAIN} -p tcp -m comment --comment shop/only-tls -j ACCEPT"]


def test_ip_blocks_with_except_and_port_ranges():
    rule = {
        "ports": [{"port": 30000, "endPort": 30010}],
        "from": [
            {"ipBlock": {"cidr": "198.18.1.0/24", "except": ["198.18.1.1/32"]}},
            {"ipBlock": {"cidr": "203.0.113.0/24"}},
            {"ipBlock": {"cidr": "2001:db8::/32"}},  # the pods have IPv4 addresses only
        ],
    }
    lines, _warnings = ingress_rules(SERVER, [_policy([rule])])
    comment = "-m comment --comment shop/only-tls"
    assert _accepts(lines) == [
        f"-A {CHAIN} -p tcp -s 198.18.1.0/24 --dport 30000:30010 {comment} -j {CHAIN}-X0",
        f"-A {CHAIN} -p tcp -s 203.0.113.0/24 --dport 30000:30010 {comment} -j ACCEPT",
    ]
    # The except chain returns to the pod's chain (later rules may still admit), else accepts.
    assert lines.index(f":{CHAIN}-X0 - [0:0]") < lines.index(f"-A INPUT -j {CHAIN}")
    assert lines[-3:] == [
        f"-A {CHAIN}-X0 -s 198.18.1.1/32 -j RETURN",
        f"-A {CHAIN}-X0 -j ACCEPT",
        "COMMIT",
    ]


def test_named_ports_and_other_protocols():
    pod = _pod(
        labels={"app": "server"},
        ports=[{"name": "tls", "containerPort": 6443}, {"name": "dns", "containerPort": 53}],
    )
    pod["spec"]["containers"][0]["ports"][1]["protocol"] = "UDP"
    rules = [
        {"ports": [{"port": "tls"}, {"port": "missing"}]},
        # UDP is not filtered at all; a rule of UDP ports admits no TCP.
        {"ports": [{"port": "dns", "protocol": "UDP"}, {"port": 53, "protocol": "UDP"}]},
    ]
    lines, _warnings = ingress_rules(pod, [_policy(rules)])
    assert _accepts(lines) == [
        f"-A {CHAIN} -p tcp --dport 6443 -m comment --comment shop/only-tls -j ACCEPT"
    ]


def test_pod_and_namespace_selector_peers_are_their_pods_addresses():
    client = _pod("client", labels={"role": "client"}, ip="198.18.1.9")
    done = copy.deepcopy(client)
    done["metadata"]["name"], done["status"] = "done", {"phase": "Succeeded", "podIP": "198.18.1.8"}
    stranger = _pod("stranger", labels={"role": "other"}, ip="198.18.1.10")
    elsewhere = _pod("elsewhere", namespace="tools", labels={"role": "client"}, ip="198.18.1.11")
    namespaces = [
        {"metadata": {"name": "shop", "labels": {"team": "shop"}}},
        {"metadata": {"name": "tools", "labels": {"team": "tools"}}},
    ]
    pods = [SERVER, client, done, stranger, elsewhere]
    same_namespace = {"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}
    lines, _warnings = ingress_rules(SERVER, [_policy([same_namespace])], pods, namespaces)
    assert _accepts(lines) == [
        f"-A {CHAIN} -p tcp -s 198.18.1.9/32 -m comment --comment shop/only-tls -j ACCEPT"
    ]
    both = {
        "from": [
            {
                "namespaceSelector": {"matchLabels": {"team": "tools"}},
                "podSelector": {"matchExpressions": [{"key": "role", "operator": "Exists"}]},
            }
        ]
    }
    lines, _warnings = ingress_rules(SERVER, [_policy([both])], pods, namespaces)
    assert _accepts(lines) == [
        f"-A {CHAIN} -p tcp -s 198.18.1.11/32 -m comment --comment shop/only-tls -j ACCEPT"
    ]
    # A selector that matches no pod admits nobody.
    nobody = {"from": [{"podSelector": {"matchLabels": {"role": "ghost"}}}]}
    lines, _warnings = ingress_rules(SERVER, [_policy([nobody])], pods, namespaces)
    assert _accepts(lines) == []


def test_policies_add_up():
    first = _policy([{"ports": [{"port": 6443}]}])
    second = _policy([{"ports": [{"port": 8873}]}], selector={}, name="all-pods")
    lines, _warnings = ingress_rules(SERVER, [first, second])
    assert _accepts(lines) == [
        f"-A {CHAIN} -p tcp --dport 6443 -m comment --comment shop/only-tls -j ACCEPT",
        f"-A {CHAIN} -p tcp --dport 8873 -m comment --comment shop/all-pods -j ACCEPT",
    ]


def test_the_node_reaches_the_readiness_probe_ports_only():
    pod = _pod(
        labels={"app": "server"},
        ports=[{"name": "tls", "containerPort": 6443}],
        probe={"tcpSocket": {"port": "tls"}},
    )
    pod["spec"]["containers"].append(
        {"name": "web", "readinessProbe": {"httpGet": {"port": 8080, "path": "/"}}}
    )
    pod["spec"]["containers"].append(
        {"name": "exec", "readinessProbe": {"exec": {"command": ["true"]}}}
    )
    lines, _warnings = ingress_rules(pod, [_policy([])], node_address=NODE)
    probe = "-m comment --comment kubelet-probe -j ACCEPT"
    assert _accepts(lines) == [
        f"-A {CHAIN} -p tcp -s {NODE}/32 --dport 6443 {probe}",
        f"-A {CHAIN} -p tcp -s {NODE}/32 --dport 8080 {probe}",
    ]
    lines, _warnings = ingress_rules(pod, [_policy([])])  # without the node's address: no exemption
    assert _accepts(lines) == []


def test_unsupported_selectors_warn_and_do_not_isolate():
    odd = {"matchExpressions": [{"key": "app", "operator": "Gt", "values": ["1"]}]}
    lines, warnings = ingress_rules(SERVER, [_policy([], selector=odd)])
    assert lines is None
    assert warnings == [
        "NetworkPolicy shop/only-tls: matchExpressions operator 'Gt' is not supported; ignored"
    ]
    bad_peer = _policy([{"from": [{"podSelector": odd}]}], name="bad-peer")
    good = _policy([{"ports": [{"port": 6443}]}])
    lines, warnings = ingress_rules(SERVER, [bad_peer, good], [SERVER])
    assert _accepts(lines) == [
        f"-A {CHAIN} -p tcp --dport 6443 -m comment --comment shop/only-tls -j ACCEPT"
    ]
    assert len(warnings) == 1 and warnings[0].startswith("NetworkPolicy shop/bad-peer:")


@pytest.mark.parametrize(
    "selector, labels, expected",
    [
        ({}, {"a": "1"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {"a": "1"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {}, True),
        (None, {"a": "1"}, False),
    ],
)
def test_label_selectors(selector, labels, expected):
    assert selector_matches(selector, labels) is expected


def test_the_product_policy_selects_only_the_server_pod():
    """The shape state_transfer renders: the server pod's labels, one TCP port, no from."""
    labels = {
        "app.kubernetes.io/managed-by": "kubeferry.state_transfer",
        "app.kubernetes.io/name": "kubeferry",
        "kubeferry.io/run": "3f9c2a1b",
        "kubeferry.io/side": "server",
    }
    policy = _policy(
        [{"ports": [{"protocol": "TCP", "port": 6443}]}],
        selector={"matchLabels": labels},
        name="kubeferry-3f9c2a1b-server",
    )
    server = _pod("kubeferry-3f9c2a1b-server", labels=labels)
    other_run = _pod("kubeferry-0000-server", labels=dict(labels, **{"kubeferry.io/run": "0000"}))
    assert ingress_policies([policy], server) == ([policy], [])
    assert ingress_policies([policy], other_run) == ([], [])


def test_a_policy_that_cannot_be_read_leaves_no_chain_behind():
    odd = {"matchExpressions": [{"key": "role", "operator": "Gt", "values": ["1"]}]}
    bad = _policy(
        [
            {"from": [{"ipBlock": {"cidr": "198.18.1.0/24", "except": ["198.18.1.1/32"]}}]},
            {"from": [{"podSelector": odd}]},
        ],
        name="bad",
    )
    good = _policy(
        [{"from": [{"ipBlock": {"cidr": "198.18.0.0/16", "except": ["198.18.0.1/32"]}}]}]
    )
    lines, warnings = ingress_rules(SERVER, [bad, good], [SERVER])
    assert [line for line in lines if line.startswith(":KF")] == [
        f":{CHAIN} - [0:0]",
        f":{CHAIN}-X0 - [0:0]",
    ]
    assert _accepts(lines) == [
        f"-A {CHAIN} -p tcp -s 198.18.0.0/16 -m comment --comment shop/only-tls -j {CHAIN}-X0"
    ]
    assert lines[-3:-1] == [f"-A {CHAIN}-X0 -s 198.18.0.1/32 -j RETURN", f"-A {CHAIN}-X0 -j ACCEPT"]
    assert len(warnings) == 1 and "shop/bad" in warnings[0]
