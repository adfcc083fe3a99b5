"""NetworkPolicy enforcement for the pods of one twin-cluster node: Ingress, TCP only.

Like a network plugin that enforces NetworkPolicy, the node agent isolates each running pod
that an Ingress policy of its namespace selects: in the pod's own network namespace, INPUT
jumps to the chain ``KF-NETPOL``, which accepts loopback, replies (ESTABLISHED,RELATED), the
TCP ports each ingress rule admits from the sources it names, and drops every other TCP
packet (new connections). A pod that no policy selects has an empty filter table. The rules
are rewritten (``iptables-restore``, the whole filter table of the pod's namespace at once)
when a policy, the pod's labels or a peer pod's address change, and before the containers
of a new pod start.

Sources as the pods see them here, which decides what an ipBlock matches:

- another pod of the cluster: its pod IP;
- everything that comes through the node (the LoadBalancer and NodePort proxies of
  ``network/services.py``, the HAProxy router, the test thread and the agent itself): the
  node's address on the pod bridge (the cluster's gateway, e.g. 198.18.1.1), never the
  client's. This is what a pod sees in a real cluster behind a LoadBalancer Service with
  ``externalTrafficPolicy: Cluster`` or a NodePort (SNAT to a node), and behind a router; an
  ipBlock of the clients' addresses drops such traffic here as it would there;
- the kubelet's readiness probes (tcpSocket, httpGet) also come from the node's address.
  Probes are not subject to NetworkPolicy, so the node's address may always reach the
  ports the pod's own readiness probes use (only those: proxied traffic to other ports is
  filtered like any other).

Supported: podSelector and peer pod/namespace selectors with matchLabels and matchExpressions
(In, NotIn, Exists, DoesNotExist); ipBlock with except (IPv4; IPv6 blocks match nothing, the
pods have IPv4 addresses only); ports by number, by name (the pod's container ports), with
endPort; policyTypes (absent: Ingress). Not enforced: Egress, UDP and SCTP (never filtered).
A policy the agent cannot read (an unknown selector operator) is logged as a warning and does
not isolate anything, so that a test sees the warning rather than a silent drop.
"""

import ipaddress
import logging
import subprocess
import threading

log = logging.getLogger(__name__)

CHAIN = "KF-NETPOL"
EXCEPT_CHAIN = "KF-NETPOL-X{0}"
TERMINAL = ("Succeeded", "Failed")


class Unsupported(ValueError):
    """A policy field this enforcement does not implement."""


# -- selectors -----------------------------------------------------------------------------------
def selector_matches(selector, labels):
    """A metav1.LabelSelector against labels; {} selects everything, None nothing."""
    if selector is None:
        return False
    labels = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In":
            ok = key in labels and labels[key] in values
        elif op == "NotIn":
            ok = key not in labels or labels[key] not in values
        elif op == "Exists":
            ok = key in labels
        elif op == "DoesNotExist":
            ok = key not in labels
        else:
            raise Unsupported(f"matchExpressions operator {op!r}")
        if not ok:
            return False
    return True


def _labels(obj):
    return (obj.get("metadata") or {}).get("labels") or {}


def _policy_name(policy):
    md = policy["metadata"]
    return f"{md.get('namespace')}/{md.get('name')}"


def ingress_policies(policies, pod):
    """(the Ingress policies that select pod, warnings about policies that were skipped)."""
    namespace = pod["metadata"]["namespace"]
    selected, warnings = [], []
    for policy in policies:
        if policy["metadata"].get("namespace") != namespace:
            continue
        spec = policy.get("spec") or {}
        types = spec.get("policyTypes") or ["Ingress"]
        if "Ingress" not in types:
            continue
        try:
            if selector_matches(spec.get("podSelector") or {}, _labels(pod)):
                selected.append(policy)
        except Unsupported as exc:
            warnings.append(
                f"NetworkPolicy {_policy_name(policy)}: {exc} is not supported; ignored"
            )
    return selected, warnings


# -- ports and sources ---------------------------------------------------------------------------
def _container_ports(pod, name):
    return [
        p["containerPort"]
        for c in (pod.get("spec") or {}).get("containers") or []
        for p in c.get("ports") or []
        if p.get("name") == name and p.get("protocol", "TCP") == "TCP"
    ]


def tcp_ports(ports, pod):
    """The --dport values a rule's ports admit for TCP: [None] for every port, [] for none."""
    if not ports:
        return [None]
    out = []
    for entry in ports:
        if entry.get("protocol", "TCP") != "TCP":
            continue
        port = entry.get("port")
        if port is None:
            return [None]
        if isinstance(port, int) or str(port).isdigit():
            end = entry.get("endPort")
            out.append(f"{int(port)}:{int(end)}" if end else str(int(port)))
        else:
            out += [str(number) for number in _container_ports(pod, port)]
    return list(dict.fromkeys(out))


def _pod_ips(pods, namespaces, policy_namespace, pod_selector, namespace_selector):
    if namespace_selector is None:
        allowed = {policy_namespace}
    else:
        allowed = {
            ns["metadata"]["name"]
            for ns in namespaces
            if selector_matches(namespace_selector, _labels(ns))
        }
    ips = []
    for pod in pods:
        status = pod.get("status") or {}
        if pod["metadata"].get("namespace") not in allowed or status.get("phase") in TERMINAL:
            continue
        if pod_selector is not None and not selector_matches(pod_selector, _labels(pod)):
            continue
        if status.get("podIP"):
            ips.append(status["podIP"])
    return sorted(set(ips))


def sources(peers, policy_namespace, pods=(), namespaces=()):
    """What a rule's `from` admits: [None] for any source, else (cidr, [except cidrs]) pairs."""
    if not peers:
        return [None]
    out = []
    for peer in peers:
        if "ipBlock" in peer:
            block = peer["ipBlock"]
            network = ipaddress.ip_network(block["cidr"], strict=False)
            if network.version != 4:
                continue
            excepts = [
                str(ipaddress.ip_network(cidr, strict=False)) for cidr in block.get("except") or []
            ]
            out.append((str(network), [cidr for cidr in excepts if ":" not in cidr]))
        elif "podSelector" in peer or "namespaceSelector" in peer:
            for ip in _pod_ips(
                pods,
                namespaces,
                policy_namespace,
                peer.get("podSelector"),
                peer.get("namespaceSelector"),
            ):
                out.append((f"{ip}/32", []))
        else:
            raise Unsupported(f"peer {sorted(peer)}")
    return list(dict.fromkeys((cidr, tuple(excepts)) for cidr, excepts in out))


def probe_ports(pod):
    """TCP ports of the pod's readiness probes (the only probes the node agent runs)."""
    ports = []
    for container in (pod.get("spec") or {}).get("containers") or []:
        probe = container.get("readinessProbe") or {}
        for kind in ("tcpSocket", "httpGet"):
            if kind not in probe:
                continue
            port = probe[kind].get("port")
            if isinstance(port, int) or str(port).isdigit():
                ports.append(str(int(port)))
            else:
                ports += [str(number) for number in _container_ports(pod, port)]
    return list(dict.fromkeys(ports))


# -- rules ---------------------------------------------------------------------------------------
def ingress_rules(pod, policies, pods=(), namespaces=(), node_address=None):
    """(iptables-restore lines of the filter table, or None when no policy isolates the pod;
    warnings). Pure: everything it needs is in its arguments."""
    selected, warnings = ingress_policies(policies, pod)
    chain, extra_chains = [], []
    enforced = 0
    for policy in selected:
        name = _policy_name(policy)
        lines, subs = [], []  # kept only when the whole policy could be read
        try:
            for rule in (policy.get("spec") or {}).get("ingress") or []:
                admitted = sources(
                    rule.get("from"), policy["metadata"]["namespace"], pods, namespaces
                )
                for port in tcp_ports(rule.get("ports"), pod):
                    for source in admitted:
                        match = ["-p", "tcp"]
                        excepts = ()
                        if source is not None:
                            match += ["-s", source[0]]
                            excepts = source[1]
                        if port is not None:
                            match += ["--dport", port]
                        match += ["-m", "comment", "--comment", name]
                        if excepts:
                            sub = EXCEPT_CHAIN.format(len(extra_chains) + len(subs))
                            subs.append(
                                (sub, [f"-A {sub} -s {cidr} -j RETURN" for cidr in excepts])
                            )
                            lines.append(" ".join(["-A", CHAIN, *match, "-j", sub]))
                        else:
                            lines.append(" ".join(["-A", CHAIN, *match, "-j", "ACCEPT"]))
        except Unsupported as exc:
            warnings.append(f"NetworkPolicy {name}: {exc} is not supported; ignored")
            continue
        except (ValueError, KeyError, TypeError) as exc:
            warnings.append(f"NetworkPolicy {name}: cannot read it ({exc!r}); ignored")
            continue
        chain += lines
        extra_chains += subs
        enforced += 1
    if not enforced:
        return None, warnings
    head = [
        f"-A {CHAIN} -i lo -j ACCEPT",
        f"-A {CHAIN} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
    ]
    if node_address:
        head += [
            f"-A {CHAIN} -p tcp -s {node_address}/32 --dport {port} "
            "-m comment --comment kubelet-probe -j ACCEPT"
            for port in probe_ports(pod)
        ]
    lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    lines.append(f":{CHAIN} - [0:0]")
    lines += [f":{sub} - [0:0]" for sub, _rules in extra_chains]
    lines.append(f"-A INPUT -j {CHAIN}")
    lines += list(dict.fromkeys(head + chain))
    lines.append(f"-A {CHAIN} -p tcp -j DROP")
    for sub, rules in extra_chains:
        lines += rules + [f"-A {sub} -j ACCEPT"]
    lines.append("COMMIT")
    return lines, warnings


OPEN = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", "COMMIT"]


def ruleset(lines):
    """The iptables-restore input for lines (None: the empty filter table of an open pod)."""
    return "\n".join(lines if lines is not None else OPEN) + "\n"


# -- applying ------------------------------------------------------------------------------------
class Enforcer:
    """Keeps each running pod's filter table in line with the policies (node agent side)."""

    def __init__(self, agent, node_address):
        self.agent = agent
        self.node_address = node_address
        self.applied = {}  # pod uid -> ruleset text last applied ("" never applied: open)
        self.warned = set()
        self.lock = threading.Lock()

    def _inputs(self):
        informer = getattr(self.agent, "netpols", None)
        policies = informer.snapshot() if informer is not None else []
        return policies, self.agent.pods.snapshot(), self.agent.namespaces.snapshot()

    def enforce(self, runner, strict=False):
        """Bring runner's pod in line. strict: raise RuntimeError when the rules that would
        isolate the pod cannot be applied (a new pod must not start unprotected)."""
        with self.lock:
            if runner.ip is None:
                return
            policies, pods, namespaces = self._inputs()
            with runner.lock:
                pod = runner.pod
            lines, warnings = ingress_rules(pod, policies, pods, namespaces, self.node_address)
            for warning in warnings:
                if warning not in self.warned:
                    self.warned.add(warning)
                    log.warning("pod %s/%s: %s", runner.ns, runner.name, warning)
            text = ruleset(lines)
            if self.applied.get(runner.uid, ruleset(None)) == text:
                return
            try:
                proc = subprocess.run(
                    ["ip", "netns", "exec", runner.netns, "iptables-restore"],
                    input=text,
                    text=True,
                    capture_output=True,
                    timeout=30,
                    check=False,
                )
                error = proc.stderr.strip() if proc.returncode else None
            except (OSError, subprocess.SubprocessError) as exc:
                error = repr(exc)
            if error is not None:
                message = f"iptables-restore in {runner.netns} failed: {error}"
                if strict and lines is not None:
                    raise RuntimeError(message)
                log.warning("pod %s/%s: %s", runner.ns, runner.name, message)
                return
            self.applied[runner.uid] = text
            log.info(
                "pod %s/%s: %s",
                runner.ns,
                runner.name,
                "NetworkPolicy rules applied" if lines is not None else "no NetworkPolicy",
            )

    def sync(self, runners):
        """Every running pod (agent loop); forgets pods that are gone."""
        live = set()
        for runner in runners:
            live.add(runner.uid)
            if runner.ip is None or runner.done.is_set():
                continue
            self.enforce(runner)
        with self.lock:
            for uid in list(self.applied):
                if uid not in live:
                    del self.applied[uid]
