# Copyright: kubeferry developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The address of a LoadBalancer Service, once it has one that resolves."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import socket

from ansible_collections.kubeferry.state_transfer.plugins.module_utils.common import (
    ModuleFailure,
    TransientError,
    unreadable,
)
from ansible_collections.kubeferry.state_transfer.plugins.module_utils.waiter import (
    WaitFailed,
    WaitTimeout,
    wait_for,
)


def service_ref(namespace, name):
    return "Service {0}/{1}".format(namespace, name)


# How users of the roles set wait_timeout, for the error messages.
TIMEOUT_VARIABLES = "state_transfer_endpoint_timeout, or endpoint_load_balancer_timeout"


def ingresses(service):
    """The entries of status.loadBalancer.ingress that carry an address."""
    status = (service or {}).get("status") or {}
    found = (status.get("loadBalancer") or {}).get("ingress") or []
    return [entry for entry in found if entry.get("hostname") or entry.get("ip")]


def has_ingress(service):
    """Predicate: the load-balancer controller published an address."""
    return bool(ingresses(service))


def ingress_host(service):
    """The first ingress's hostname if it has one (what the cloud wants dialled), else its IP."""
    entries = ingresses(service)
    if not entries:
        return ""
    return entries[0].get("hostname") or entries[0].get("ip")


def service_type_problem(service, ref, wanted=("LoadBalancer",)):
    """Why this Service cannot be used, or "" if it can."""
    if service is None:
        return "{0} not found".format(ref)
    kind = (service.get("spec") or {}).get("type") or "ClusterIP"
    if kind not in wanted:
        return "{0} is of type {1}, not {2}".format(ref, kind, " or ".join(wanted))
    return ""


def service_port(service, port, ref):
    """The Service's port entry named or numbered ``port`` (the first one when empty)."""
    ports = (service.get("spec") or {}).get("ports") or []
    if not ports:
        raise ModuleFailure("{0} has no ports".format(ref))
    if port in (None, ""):
        return ports[0]
    wanted = str(port)
    for entry in ports:
        if wanted in (str(entry.get("name", "")), str(entry.get("port"))):
            return entry
    known = ", ".join(
        "{0} ({1})".format(entry.get("name"), entry.get("port"))
        if entry.get("name")
        else str(entry.get("port"))
        for entry in ports
    )
    raise ModuleFailure("{0} has no port {1}; its ports: {2}".format(ref, wanted, known))


def resolve(host, port=None):
    """The IP addresses ``host`` resolves to from here, sorted; [] when it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return sorted({info[4][0] for info in infos})


def _result(service, entry, addresses, **extra):
    result = dict(
        changed=False,
        host=ingress_host(service),
        port=entry.get("port"),
        addresses=addresses,
        service=service,
    )
    result.update(extra)
    return result


def execute(cluster, params, check_mode):
    name, namespace = params["name"], params["namespace"]
    ref = service_ref(namespace, name)
    timeout, sleep = params["wait_timeout"], params["wait_sleep"]

    def read():
        return cluster.get("Service", name, namespace)

    if check_mode:
        # Waiting only reads, but a --check run must not block on objects it did not create.
        service = read()
        if service is None:
            return dict(
                changed=False,
                host="",
                port=None,
                addresses=[],
                service={},
                msg="{0} does not exist yet; would wait for its load-balancer address".format(ref),
            )
        problem = service_type_problem(service, ref)
        if problem:
            raise ModuleFailure(problem, service=service)
        entry = service_port(service, params["port"], ref)
        if not has_ingress(service):
            return _result(
                service,
                entry,
                [],
                msg="{0} has no load-balancer address yet; would wait for it".format(ref),
            )
        host = ingress_host(service)
        return _result(service, entry, resolve(host) if params["resolve"] else [])

    try:
        service, elapsed = wait_for(
            read,
            has_ingress,
            timeout,
            sleep,
            failure=lambda svc, _elapsed: service_type_problem(svc, ref),
            retry_on=(TransientError,),
        )
    except WaitFailed as exc:
        raise ModuleFailure(exc.msg, service=exc.last or {}) from exc
    except WaitTimeout as exc:
        if unreadable(exc, ref):
            raise ModuleFailure(unreadable(exc, ref)) from exc
        raise ModuleFailure(
            "{0} got no load-balancer address (status.loadBalancer.ingress stayed empty) "
            "after {1:.0f} s: is a load-balancer controller running in this cluster? "
            "Without one, consider endpoint node_port (or route on OpenShift); a slow cloud "
            "load balancer needs a larger wait_timeout ({2}).".format(
                ref, exc.elapsed, TIMEOUT_VARIABLES
            ),
            service=exc.last or {},
        ) from exc

    entry = service_port(service, params["port"], ref)
    host = ingress_host(service)
    if not params["resolve"]:
        return _result(service, entry, [])

    try:
        addresses, _elapsed = wait_for(
            lambda: resolve(host, entry.get("port")),
            bool,
            max(0.0, timeout - elapsed),
            sleep,
        )
    except WaitTimeout:
        raise ModuleFailure(
            "{0} has the load-balancer address {1}, but {1} did not resolve from the "
            "controller within wait_timeout ({2} s). Cloud DNS can take minutes to "
            "propagate: raise wait_timeout ({3}), or set resolve=false if only the other "
            "cluster can resolve it.".format(ref, host, timeout, TIMEOUT_VARIABLES),
            host=host,
            service=service,
        ) from None
    return _result(service, entry, addresses)
