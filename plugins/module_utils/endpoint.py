# Copyright: kubeferry developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the other cluster dials for a Route or a NodePort Service: host, port and SNI."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kubeferry.state_transfer.plugins.module_utils.common import (
    ModuleFailure,
    TransientError,
    api_error_message,
    unreadable,
)
from ansible_collections.kubeferry.state_transfer.plugins.module_utils.load_balancer import (
    service_ref,
    service_type_problem,
)
from ansible_collections.kubeferry.state_transfer.plugins.module_utils.waiter import (
    WaitFailed,
    WaitTimeout,
    wait_for,
)

try:
    from kubernetes.dynamic.exceptions import ForbiddenError
except ImportError:
    ForbiddenError = None

ROUTE_API = "route.openshift.io/v1"
NODE_PORT_TYPES = ("NodePort", "LoadBalancer")


# Routes ------------------------------------------------------------------------------------


def _condition(entry, kind):
    for condition in entry.get("conditions") or []:
        if condition.get("type") == kind:
            return condition
    return None


def route_ingresses(route):
    return ((route or {}).get("status") or {}).get("ingress") or []


def admitted_ingresses(route):
    return [
        entry
        for entry in route_ingresses(route)
        if (_condition(entry, "Admitted") or {}).get("status") == "True"
    ]


def route_admitted(route):
    """Predicate: at least one router admitted the Route."""
    return bool(admitted_ingresses(route))


def route_problem(route, ref):
    """Why waiting for this Route is pointless ("" if it is not)."""
    if route is None:
        return "{0} not found".format(ref)
    for entry in route_ingresses(route):
        condition = _condition(entry, "Admitted") or {}
        if condition.get("status") == "False":
            return "{0} was rejected by router {1}: {2}: {3}".format(
                ref,
                entry.get("routerName") or "(unnamed)",
                condition.get("reason") or "no reason given",
                condition.get("message") or "no message",
            )
    return ""


def route_address(route):
    """Host (spec.host, else the admitting router's), port (443 with TLS, else 80) and SNI."""
    spec = route.get("spec") or {}
    admitted = admitted_ingresses(route)
    host = spec.get("host") or (admitted[0].get("host") if admitted else "") or ""
    tls = spec.get("tls") or {}
    passthrough = (tls.get("termination") or "").lower() == "passthrough"
    return dict(host=host, port=443 if tls else 80, sni=host if passthrough else "")


def _route(cluster, params, check_mode):
    name, namespace = params["name"], params["namespace"]
    ref = "Route {0}/{1}".format(namespace, name)

    def read():
        return cluster.get("Route", name, namespace, api_version=ROUTE_API)

    if check_mode:
        route = read()
        if not route_admitted(route):
            problem = route_problem(route, ref)
            if route is not None and problem:
                raise ModuleFailure(problem, route=route)
            return dict(
                changed=False,
                host="",
                port=None,
                sni="",
                route=route or {},
                msg="{0} is not admitted yet; would wait for a router to admit it".format(ref),
            )
        return dict(changed=False, route=route, **route_address(route))

    try:
        route, _elapsed = wait_for(
            read,
            route_admitted,
            params["wait_timeout"],
            params["wait_sleep"],
            failure=lambda value, _elapsed: route_problem(value, ref),
            retry_on=(TransientError,),
        )
    except WaitFailed as exc:
        raise ModuleFailure(exc.msg, route=exc.last or {}) from exc
    except WaitTimeout as exc:
        if unreadable(exc, ref):
            raise ModuleFailure(unreadable(exc, ref)) from exc
        raise ModuleFailure(
            "{0} was not admitted by any router after {1:.0f} s (status.ingress has no "
            "Admitted=True condition): is a router (ingress controller) running that "
            "selects this Route? A slow one needs a larger wait_timeout "
            "(state_transfer_endpoint_timeout, or endpoint_route_wait_timeout).".format(
                ref, exc.elapsed
            ),
            route=exc.last or {},
        ) from exc
    return dict(changed=False, route=route, **route_address(route))


# NodePorts ---------------------------------------------------------------------------------


def node_ready(node):
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def node_port_of(service, port):
    """(port entry, problem): the Service port named or numbered ``port`` that has a nodePort."""
    ports = (service.get("spec") or {}).get("ports") or []
    if port in (None, ""):
        entry = ports[0] if ports else None
    else:
        entry = next(
            (p for p in ports if str(port) in (str(p.get("name", "")), str(p.get("port")))),
            None,
        )
    if entry is None:
        known = ", ".join(str(p.get("name") or p.get("port")) for p in ports) or "none"
        return None, "has no port {0} (its ports: {1})".format(port or "at all", known)
    if not entry.get("nodePort"):
        return None, "port {0} has no nodePort".format(entry.get("name") or entry.get("port"))
    return entry, ""


def selector_string(service):
    selector = (service.get("spec") or {}).get("selector") or {}
    return ",".join("{0}={1}".format(k, v) for k, v in sorted(selector.items()))


def pod_nodes(pods):
    """Names of the nodes running the given pods, in order, without repeats."""
    names = []
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        phase = (pod.get("status") or {}).get("phase")
        if node and phase in ("Pending", "Running") and node not in names:
            names.append(node)
    return names


def pick_node_address(nodes, pods, address_types, local_only=False):
    """The address another cluster should dial to reach a NodePort.

    Ready nodes only; the first address type of ``address_types`` that any candidate has wins
    (an ExternalIP anywhere beats an InternalIP, since kube-proxy forwards a NodePort from
    every node), and among nodes with that type the ones running the Service's pods come
    first (the shortest path). With externalTrafficPolicy Local only those nodes answer, so
    only they are candidates. Returns (node name, address) or ("", "").
    """
    preferred = pod_nodes(pods)
    candidates = [n for n in nodes if node_ready(n)]
    if local_only:
        candidates = [n for n in candidates if n["metadata"]["name"] in preferred]

    def rank(node):
        name = node["metadata"]["name"]
        return preferred.index(name) if name in preferred else len(preferred)

    candidates.sort(key=rank)
    for kind in address_types:
        for node in candidates:
            for address in (node.get("status") or {}).get("addresses") or []:
                if address.get("type") == kind and address.get("address"):
                    return node["metadata"]["name"], address["address"]
    return "", ""


def node_port_snapshot_address(snapshot, params):
    """(host, port entry, problem) for one read of the Service, its pods and the Nodes."""
    service = snapshot["service"]
    entry, problem = node_port_of(service, params["port"])
    if problem:
        return "", None, problem
    if params["address"]:
        return params["address"], entry, ""
    local = (service.get("spec") or {}).get("externalTrafficPolicy") == "Local"
    _node, host = pick_node_address(
        snapshot["nodes"], snapshot["pods"], params["address_types"], local_only=local
    )
    return host, entry, ""


def _node_port(cluster, params, check_mode):
    name, namespace = params["name"], params["namespace"]
    ref = service_ref(namespace, name)

    def read():
        service = cluster.get("Service", name, namespace)
        snapshot = dict(service=service, nodes=[], pods=[])
        if service is None or params["address"]:
            return snapshot
        selector = selector_string(service)
        if selector:
            snapshot["pods"] = cluster.list("Pod", namespace, label_selector=selector)
        snapshot["nodes"] = cluster.list("Node")
        return snapshot

    def done(snapshot):
        if service_type_problem(snapshot["service"], ref, NODE_PORT_TYPES):
            return False
        host, _entry, problem = node_port_snapshot_address(snapshot, params)
        return bool(host) and not problem

    def failure(snapshot, _elapsed):
        problem = service_type_problem(snapshot["service"], ref, NODE_PORT_TYPES)
        if problem:
            return problem
        _host, _entry, problem = node_port_snapshot_address(snapshot, params)
        return "{0} {1}".format(ref, problem) if problem else ""

    def result(snapshot, host, entry, **extra):
        out = dict(
            changed=False,
            host=host,
            port=entry.get("nodePort") if entry else None,
            sni="",
            service=snapshot["service"] or {},
        )
        out.update(extra)
        return out

    try:
        if check_mode:
            snapshot = read()
            if snapshot["service"] is None:
                return dict(
                    changed=False,
                    host="",
                    port=None,
                    sni="",
                    service={},
                    msg="{0} does not exist yet; would wait for its node port".format(ref),
                )
            problem = failure(snapshot, 0)
            if problem:
                raise ModuleFailure(problem, service=snapshot["service"])
            host, entry, _problem = node_port_snapshot_address(snapshot, params)
            return result(snapshot, host, entry)

        snapshot, _elapsed = wait_for(
            read,
            done,
            params["wait_timeout"],
            params["wait_sleep"],
            failure=failure,
            retry_on=(TransientError,),
        )
    except ForbiddenError as exc:
        raise ModuleFailure(
            "Cannot read what a node port needs ({0}); listing Nodes needs cluster-wide read "
            "access. Set address to the host the other cluster should dial.".format(
                api_error_message(exc)
            )
        ) from exc
    except WaitFailed as exc:
        raise ModuleFailure(exc.msg, service=(exc.last or {}).get("service") or {}) from exc
    except WaitTimeout as exc:
        if unreadable(exc, ref):
            raise ModuleFailure(unreadable(exc, ref)) from exc
        last = exc.last or {}
        local = ((last.get("service") or {}).get("spec") or {}).get(
            "externalTrafficPolicy"
        ) == "Local"
        missing = "no Ready node has an address of type {0}".format(
            " or ".join(params["address_types"])
        )
        if local:
            missing += " among the nodes running the Service's pods (externalTrafficPolicy Local)"
        raise ModuleFailure(
            "{0}: found no node address to dial after {1:.0f} s: {2}. Set address to the host "
            "the other cluster should dial, or change address_types. (The ClusterIP is never "
            "used: another cluster cannot reach it.)".format(ref, exc.elapsed, missing),
            service=last.get("service") or {},
        ) from exc
    host, entry, _problem = node_port_snapshot_address(snapshot, params)
    return result(snapshot, host, entry)


def execute(cluster, params, check_mode):
    if params["kind"] == "route":
        return _route(cluster, params, check_mode)
    return _node_port(cluster, params, check_mode)
