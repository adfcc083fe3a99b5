# Copyright: kubeferry developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Everything a state transfer refuses before it creates anything.

Each function returns a list of messages; every message names the variable to change and
how. The role fails with all of them at once, so a user fixes their input in one go.
"""

import ipaddress
import re

from ansible_collections.kubeferry.state_transfer.plugins.plugin_utils.inputs import (
    BOOLEANS,
    normalise,
)
from ansible_collections.kubeferry.state_transfer.plugins.plugin_utils.names import (
    is_dns1123_label,
    is_dns1123_subdomain,
)
from ansible_collections.kubeferry.state_transfer.plugins.plugin_utils.plan import (
    normalise_pairs,
)

TRANSFERS = ("rsync", "rclone")
TRANSPORTS = ("stunnel", "null")
ENDPOINTS = ("route", "load_balancer", "node_port")

# (transfer, transport, endpoint) -> why it cannot work and what to choose instead.
UNSUPPORTED = {
    ("rsync", "null", "route"): (
        "rsync over the null transport cannot go through a Route: a passthrough Route routes "
        "by TLS SNI, which plain rsync never sends. Set state_transfer_transport: stunnel "
        "(encrypted, works through the Route) or state_transfer_endpoint: load_balancer or "
        "node_port."
    ),
}

# rsync options a user may add. Everything else is refused: options that run programs
# (-e, --rsync-path), read or write files outside the volume (--files-from, --log-file,
# --backup-dir, --temp-dir, --*-dest, batches), change which side is which (--server,
# --daemon, --remove-source-files) or follow links out of the volume (--copy-links ...).
RSYNC_SAFE_FLAGS = frozenset(
    [
        "--checksum",
        "--inplace",
        "--append-verify",
        "--whole-file",
        "--no-whole-file",
        "--size-only",
        "--ignore-times",
        "--ignore-existing",
        "--existing",
        "--update",
        "--omit-dir-times",
        "--omit-link-times",
        "--no-perms",
        "--no-times",
        "--no-owner",
        "--no-group",
        "--no-acls",
        "--no-xattrs",
        "--no-hard-links",
        "--no-sparse",
        "--no-devices",
        "--no-specials",
        "--delete-excluded",
        "--delete-after",
        "--delete-delay",
        "--prune-empty-dirs",
        "--itemize-changes",
        "--verbose",
        "--human-readable",
        "--fuzzy",
        "--preallocate",
        "--one-file-system",
    ]
)
RSYNC_SAFE_VALUE_OPTIONS = {
    "--bwlimit": r"^[0-9]+(\.[0-9]+)?[KMGkmg]?$",
    "--timeout": r"^[0-9]+$",
    "--contimeout": r"^[0-9]+$",
    "--block-size": r"^[0-9]+[KMGkmg]?$",
    "--compress-level": r"^[0-9]$",
    "--max-size": r"^[0-9]+(\.[0-9]+)?[KMGTkmgt]?[Bb]?$",
    "--min-size": r"^[0-9]+(\.[0-9]+)?[KMGTkmgt]?[Bb]?$",
    "--modify-window": r"^-?[0-9]+$",
    "--chmod": r"^[DF]?[ugoa]*[-+=][rwxXst]*(,[DF]?[ugoa]*[-+=][rwxXst]*)*$",
    "--max-delete": r"^[0-9]+$",
    "--checksum-choice": r"^[a-z0-9,]+$",
}
BWLIMIT = re.compile(r"^[0-9]+(\.[0-9]+)?[KMGkmg]?\Z")
RUN_ID = re.compile(r"^[a-z0-9]([-a-z0-9]{0,18}[a-z0-9])?\Z")
# transport_stunnel_proxy: "host:port", the host a name, an IPv4 address or an IPv6 address
# in brackets. Matched whole (fullmatch): the value becomes lines of stunnel's configuration,
# so no space, newline or other character may come through.
_HOST_LABEL = r"[A-Za-z0-9](?:[-A-Za-z0-9]{0,61}[A-Za-z0-9])?"
PROXY = re.compile(
    r"(?P<host>{0}(?:\.{0})*|\[(?P<ipv6>[0-9A-Fa-f:.]+)\]):(?P<port>[0-9]{{1,5}})".format(
        _HOST_LABEL
    )
)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def rsync_extra_arg_errors(args, variable="state_transfer_rsync_extra_args"):
    errors = []
    for arg in args:
        if not isinstance(arg, str):
            errors.append("{0}: {1!r} is not a string.".format(variable, arg))
            continue
        option, has_value, value = arg.partition("=")
        if option in RSYNC_SAFE_FLAGS and not has_value:
            continue
        if option in RSYNC_SAFE_VALUE_OPTIONS and has_value:
            if re.match(RSYNC_SAFE_VALUE_OPTIONS[option], value):
                continue
            errors.append("{0}: {1!r} has an invalid value for {2}.".format(variable, arg, option))
            continue
        errors.append(
            "{0}: {1!r} is not allowed. Only long options from the documented allow list "
            "are accepted, written as one item ('--option' or '--option=value'): options "
            "that run programs, read or write outside the volume, or change the sides are "
            "refused. Use state_transfer_excludes, state_transfer_bwlimit, "
            "state_transfer_compress or state_transfer_mirror for those features.".format(
                variable, arg
            )
        )
    return errors


def source_range_errors(ranges, variable="state_transfer_network_policy_source_ranges"):
    """CIDRs for the server's NetworkPolicy (ipBlock.cidr): each a network address with its
    prefix length, IPv4 or IPv6, as the API server takes them."""
    if ranges in (None, ""):
        return []
    if not isinstance(ranges, list):
        return [
            "{0}: must be a list of CIDRs such as ['203.0.113.0/24'], got {1!r}.".format(
                variable, ranges
            )
        ]
    errors = []
    for cidr in ranges:
        try:
            network = ipaddress.ip_network(cidr, strict=False) if isinstance(cidr, str) else None
        except ValueError:
            network = None
        if network is None or "/" not in cidr:
            hint = ""
            if network is not None:
                hint = " Write {0!r} for that address alone.".format(str(network))
            errors.append(
                "{0}: {1!r} is not a CIDR; give an address block with its prefix length, "
                "such as '203.0.113.0/24'.{2}".format(variable, cidr, hint)
            )
        elif network.network_address != ipaddress.ip_address(cidr.split("/", 1)[0]):
            address = cidr.split("/", 1)[0]
            errors.append(
                "{0}: {1!r} has address bits set after the prefix length; write {2!r} for the "
                "whole block or {3!r} for that address.".format(
                    variable, cidr, str(network), "{0}/{1}".format(address, network.max_prefixlen)
                )
            )
    return errors


def exclude_errors(patterns, variable="state_transfer_excludes"):
    errors = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern.strip():
            errors.append("{0}: {1!r} is not a non-empty string.".format(variable, pattern))
            continue
        parts = pattern.strip("/").split("/")
        if ".." in parts:
            errors.append(
                "{0}: {1!r} contains '..'; patterns are relative to the volume and may not "
                "leave it.".format(variable, pattern)
            )
        elif pattern[:2] in ("+ ", "- ", ": ", ". ") or pattern[0] in "!-":
            errors.append(
                "{0}: {1!r} looks like a filter rule or an option; give plain patterns such "
                "as 'cache/' or '*.tmp'.".format(variable, pattern)
            )
        elif any(ord(char) < 32 for char in pattern):
            errors.append("{0}: {1!r} contains control characters.".format(variable, pattern))
    return errors


def proxy_errors(proxy, transport, variable="transport_stunnel_proxy"):
    """An HTTP proxy for the stunnel client: 'host:port' of an unauthenticated proxy that
    allows CONNECT. Empty means none. Only the stunnel transport can use one."""
    if proxy in (None, ""):
        return []
    errors = []
    if transport in TRANSPORTS and transport != "stunnel":
        errors.append(
            "{0}: only the stunnel transport can go through an HTTP proxy, and "
            "state_transfer_transport is {1!r}. Set state_transfer_transport: stunnel, or leave "
            "{0} empty to connect directly.".format(variable, transport)
        )
    if not isinstance(proxy, str):
        return errors + [
            "{0}: {1!r} is not a string; give 'host:port' of the proxy, e.g. "
            "'proxy.example.com:3128'.".format(variable, proxy)
        ]
    # Never repeat credentials given in the value.
    shown = re.sub(r"[^/@]*@", "***@", proxy)
    match = PROXY.fullmatch(proxy)
    host = match.group("host") if match else ""
    valid_host = bool(match) and len(host) <= 253
    if valid_host and match.group("ipv6"):
        try:
            valid_host = ipaddress.ip_address(match.group("ipv6")).version == 6
        except ValueError:
            valid_host = False
    elif valid_host and re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            valid_host = False
    if not valid_host:
        message = [
            "{0}: {1!r} is not 'host:port' of an HTTP proxy. Give a host name, an IPv4 "
            "address or an IPv6 address in brackets, then ':' and a port from 1 to 65535, "
            "e.g. 'proxy.example.com:3128' or '[2001:db8::1]:3128'.".format(variable, shown)
        ]
        if "://" in proxy:
            message.append("Leave out the scheme: write 'host:port', not a URL.")
        if "@" in proxy:
            message.append(
                "Proxies that need credentials are not supported: use one that allows "
                "CONNECT without them."
            )
        if any(char.isspace() or ord(char) < 32 for char in proxy):
            message.append("It contains spaces or control characters.")
        return errors + [" ".join(message)]
    port = int(match.group("port"))
    if not 0 < port < 65536:
        errors.append(
            "{0}: port {1} of {2!r} is out of range; give a port from 1 to 65535.".format(
                variable, port, proxy
            )
        )
    return errors


def _same_cluster(source, destination):
    keys = ("kubeconfig", "context", "host")
    return all(source.get(key) == destination.get(key) for key in keys)


def pvc_errors(pvcs, source, destination):
    if not pvcs:
        return ["state_transfer_pvcs: give at least one PVC, e.g. [{source: data}]."]
    errors = []
    for index, entry in enumerate(pvcs):
        where = "state_transfer_pvcs[{0}]".format(index)
        if isinstance(entry, str):
            entry = {"source": entry}
        if not isinstance(entry, dict) or not entry.get("source"):
            errors.append("{0}: needs 'source', the name of a source PVC.".format(where))
            continue
        unknown = set(entry) - {"source", "destination", "storage_class"}
        if unknown:
            errors.append(
                "{0}: unknown keys {1}; allowed are source, destination, storage_class.".format(
                    where, ", ".join(sorted(unknown))
                )
            )
        for key in ("source", "destination"):
            name = entry.get(key)
            if name is not None and not (isinstance(name, str) and is_dns1123_subdomain(name)):
                errors.append(
                    "{0}.{1}: {2!r} is not a valid PVC name (lowercase letters, digits, '-' "
                    "and '.', starting and ending with a letter or digit).{3}".format(
                        where,
                        key,
                        name,
                        " Write an item as 'source', 'source:destination' or "
                        "'source:destination:storage_class'."
                        if ":" in str(name)
                        else "",
                    )
                )
    if errors:
        return errors
    pairs = normalise_pairs(pvcs)
    for side in ("source", "destination"):
        names = [pair[side] for pair in pairs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            errors.append(
                "state_transfer_pvcs: {0} PVC(s) {1} appear more than once.".format(
                    side, ", ".join(duplicates)
                )
            )
    if _same_cluster(source, destination) and source.get("namespace") == destination.get(
        "namespace"
    ):
        same = [pair["source"] for pair in pairs if pair["source"] == pair["destination"]]
        if same:
            errors.append(
                "state_transfer_pvcs: {0} would be both source and destination (same cluster "
                "and namespace). Give a different destination name or "
                "state_transfer_destination.namespace.".format(", ".join(same))
            )
    return errors


def connection_errors(side, variable):
    if not isinstance(side, dict):
        return ["{0}: must be a dict with at least 'namespace'.".format(variable)]
    errors = []
    namespace = side.get("namespace")
    if not (isinstance(namespace, str) and is_dns1123_label(namespace)):
        errors.append(
            "{0}.namespace: {1!r} is not a valid namespace name (set it in {0} or as "
            "{0}_namespace).".format(variable, namespace)
        )
    return errors


def environment_errors(environment, sides):
    """K8S_AUTH_* variables of the controller that would silently fill a side's connection.

    kubernetes.core takes any connection option a task does not set from K8S_AUTH_*; with
    two clusters that can point a task of one side at the other cluster.
    """
    errors = []
    for option, value in sorted((environment or {}).items()):
        if not value:
            continue
        for variable, side in sides:
            if isinstance(side, dict) and not side.get(option):
                errors.append(
                    "{0}: K8S_AUTH_{1} is set in the controller's environment and {0} has no "
                    "{2!r}, so that task would use the environment's value. Set {0}.{2} "
                    "explicitly or unset K8S_AUTH_{1}.".format(variable, option.upper(), option)
                )
    return errors


def input_errors(given):
    """All problems with the role's inputs (a dict of state_transfer_* variables).

    given: the variables as the caller set them; they are checked as the tasks will read
    them, after inputs.normalise (strings converted, flat side variables merged).
    """
    inputs, errors = normalise(given)
    source = inputs.get("state_transfer_source") or {}
    destination = inputs.get("state_transfer_destination") or {}
    errors += connection_errors(source, "state_transfer_source")
    errors += connection_errors(destination, "state_transfer_destination")
    errors += environment_errors(
        inputs.get("k8s_auth_environment"),
        (("state_transfer_source", source), ("state_transfer_destination", destination)),
    )
    combination = (
        inputs.get("state_transfer_transfer"),
        inputs.get("state_transfer_transport"),
        inputs.get("state_transfer_endpoint"),
    )
    if combination in UNSUPPORTED:
        errors.append(UNSUPPORTED[combination])
    errors += pvc_errors(inputs.get("state_transfer_pvcs") or [], source, destination)
    run_id = inputs.get("state_transfer_run_id") or ""
    if run_id and not RUN_ID.match(str(run_id)):
        errors.append(
            "state_transfer_run_id: {0!r} must be 1-20 lowercase letters, digits or '-', "
            "starting and ending with a letter or digit.".format(run_id)
        )
    mode = inputs.get("state_transfer_mode")
    run_as_user = inputs.get("state_transfer_run_as_user")
    if mode == "restricted" and not (_is_int(run_as_user) and run_as_user > 0):
        errors.append(
            "state_transfer_run_as_user: restricted mode runs the pods as the workload's "
            "non-root uid; set it to that uid (an integer > 0), got {0!r}.".format(run_as_user)
        )
    for variable in (
        "state_transfer_parallel",
        "state_transfer_server_timeout",
        "state_transfer_endpoint_timeout",
        "state_transfer_transfer_timeout",
        "state_transfer_progress_interval",
    ):
        value = inputs.get(variable)
        if value is not None and not (_is_int(value) and value > 0):
            errors.append("{0}: must be a whole number > 0, got {1!r}.".format(variable, value))
    for variable in BOOLEANS:
        value = inputs.get(variable)
        if value is not None and not isinstance(value, bool):
            errors.append("{0}: must be true or false, got {1!r}.".format(variable, value))
    bwlimit = inputs.get("state_transfer_bwlimit")
    if bwlimit not in (None, "", 0) and not BWLIMIT.match(str(bwlimit)):
        errors.append(
            "state_transfer_bwlimit: {0!r} must be a rate like 1024 (KiB/s), 500K or 20M.".format(
                bwlimit
            )
        )
    errors += exclude_errors(inputs.get("state_transfer_excludes") or [])
    errors += source_range_errors(inputs.get("state_transfer_network_policy_source_ranges"))
    extra = inputs.get("state_transfer_rsync_extra_args") or []
    if extra and inputs.get("state_transfer_transfer") != "rsync":
        errors.append(
            "state_transfer_rsync_extra_args: only used with state_transfer_transfer: rsync; "
            "remove it or switch the transfer to rsync."
        )
    errors += rsync_extra_arg_errors(extra)
    errors += proxy_errors(
        inputs.get("transport_stunnel_proxy"), inputs.get("state_transfer_transport")
    )
    return errors


def _by_name(objects):
    return dict((obj["metadata"]["name"], obj) for obj in objects or [])


def _request(pvc):
    return ((pvc.get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage")


def source_pvc_errors(pairs, pvcs, namespace):
    """Source PVCs must exist and be Bound (an unbound PVC has no data to move)."""
    found = _by_name(pvcs)
    errors = []
    for pair in pairs:
        pvc = found.get(pair["source"])
        where = "state_transfer_pvcs[{0}].source".format(pair["index"])
        if pvc is None:
            errors.append(
                "{0}: PVC {1!r} not found in namespace {2!r} of the source cluster.".format(
                    where, pair["source"], namespace
                )
            )
        elif (pvc.get("status") or {}).get("phase") != "Bound":
            errors.append(
                "{0}: PVC {1!r} is {2}, not Bound; it holds no data yet.".format(
                    where, pair["source"], (pvc.get("status") or {}).get("phase", "not Bound")
                )
            )
    return errors


def _users(pods, claim):
    """Running pods of the namespace that mount claim, with their nodes."""
    users = []
    for pod in pods or []:
        if (pod.get("status") or {}).get("phase") not in ("Running", "Pending"):
            continue
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            if (volume.get("persistentVolumeClaim") or {}).get("claimName") == claim:
                users.append((pod["metadata"]["name"], (pod.get("spec") or {}).get("nodeName")))
    return users


def server_placement(pairs, pvcs, pods):
    """The node the server pod must run on, or why it cannot run anywhere.

    A ReadWriteOnce volume in use can only be mounted again on the node that has it; one
    server pod mounts every source PVC, so they must all sit on one node.
    """
    found = _by_name(pvcs)
    nodes, errors = {}, []
    for pair in pairs:
        pvc = found.get(pair["source"])
        if pvc is None:
            continue
        modes = (pvc.get("spec") or {}).get("accessModes") or []
        users = _users(pods, pair["source"])
        if "ReadWriteOncePod" in modes and users:
            errors.append(
                "state_transfer_pvcs[{0}].source: PVC {1!r} is ReadWriteOncePod and in use by "
                "pod {2}; stop the workload (scale it to 0) before the transfer.".format(
                    pair["index"], pair["source"], users[0][0]
                )
            )
        elif modes == ["ReadWriteOnce"] or ("ReadWriteOnce" in modes and len(modes) == 1):
            for pod_name, node in users:
                if node:
                    nodes.setdefault(node, []).append(
                        "{0} (pod {1})".format(pair["source"], pod_name)
                    )
    if len(nodes) > 1:
        errors.append(
            "state_transfer_pvcs: the ReadWriteOnce source PVCs are mounted on different nodes "
            "({0}); one server pod cannot mount them all. Transfer them in separate runs, one "
            "per node, or stop the workloads first.".format(
                "; ".join(
                    "{0}: {1}".format(node, ", ".join(v)) for node, v in sorted(nodes.items())
                )
            )
        )
    return {"node": next(iter(nodes)) if len(nodes) == 1 else "", "errors": errors}


def destination_pvcs(pairs, source_pvcs, existing, namespace, create, storage_class, labels):
    """Which destination PVCs to create (with the source's size and access modes).

    An existing destination PVC is used as it is, when it is large enough; the ones that
    are missing are created when state_transfer_create_destination_pvcs is true.
    """
    # Imported here, not at the top: the filters are imported again for every task, and
    # importing the kubernetes client takes about half a second each time.
    try:
        from kubernetes.utils.quantity import parse_quantity
    except ImportError:  # pragma: no cover - the kubernetes client is a documented requirement
        parse_quantity = None

    sources, found = _by_name(source_pvcs), _by_name(existing)
    to_create, errors = [], []
    for pair in pairs:
        source = sources.get(pair["source"])
        if source is None:
            continue
        where = "state_transfer_pvcs[{0}].destination".format(pair["index"])
        target = found.get(pair["destination"])
        if target is not None:
            need, have = _request(source), _request(target)
            if parse_quantity and need and have and parse_quantity(have) < parse_quantity(need):
                errors.append(
                    "{0}: destination PVC {1!r} requests {2}, smaller than the source PVC "
                    "{3!r} ({4}). Resize it or choose another destination.".format(
                        where, pair["destination"], have, pair["source"], need
                    )
                )
            continue
        if not create:
            errors.append(
                "{0}: PVC {1!r} does not exist in namespace {2!r} of the destination cluster; "
                "create it or set state_transfer_create_destination_pvcs: true.".format(
                    where, pair["destination"], namespace
                )
            )
            continue
        spec = source.get("spec") or {}
        new_spec = {
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "resources": {"requests": {"storage": _request(source)}},
            "volumeMode": spec.get("volumeMode") or "Filesystem",
        }
        chosen = pair.get("storage_class") or storage_class
        if chosen:
            new_spec["storageClassName"] = chosen
        to_create.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": pair["destination"], "namespace": namespace, "labels": labels},
                "spec": new_spec,
            }
        )
    return {"create": to_create, "errors": errors}


POD_SECURITY_LEVELS = ("privileged", "baseline", "restricted")


def pod_security_errors(namespace, mode, variable):
    """Pod Security admission that would reject the transfer pods of this mode."""
    labels = ((namespace or {}).get("metadata") or {}).get("labels") or {}
    level = labels.get("pod-security.kubernetes.io/enforce", "privileged")
    if mode == "preserve" and level == "restricted":
        return [
            "{0}.namespace: namespace {1!r} enforces the 'restricted' Pod Security level, which "
            "rejects the root pods that preserve ownership. Set state_transfer_mode: restricted "
            "(with state_transfer_run_as_user) or label the namespace "
            "pod-security.kubernetes.io/enforce=baseline for the transfer.".format(
                variable, namespace["metadata"]["name"]
            )
        ]
    return []


def cluster_preflight(inputs, plan, observed):
    """What the clusters say about this run: errors, the server's node, PVCs to create.

    observed: what the preflight read (lists of objects, route_api_found).
    """
    source = inputs["state_transfer_source"]
    destination = inputs["state_transfer_destination"]
    errors = []
    for side, variable in (
        (source, "state_transfer_source"),
        (destination, "state_transfer_destination"),
    ):
        key = "source_namespace" if variable == "state_transfer_source" else "destination_namespace"
        if not observed.get(key):
            errors.append(
                "{0}.namespace: namespace {1!r} does not exist on the {2} cluster.".format(
                    variable, side["namespace"], variable.rsplit("_", 1)[1]
                )
            )
        else:
            errors += pod_security_errors(
                observed[key][0], inputs.get("state_transfer_mode"), variable
            )
    if inputs.get("state_transfer_endpoint") == "route" and not observed.get(
        "route_api_found", True
    ):
        errors.append(
            "state_transfer_endpoint: route needs the OpenShift Route API (route.openshift.io/v1), "
            "which the source cluster does not serve. Use load_balancer or node_port."
        )
    pairs = plan["pairs"]
    errors += source_pvc_errors(pairs, observed.get("source_pvcs"), source["namespace"])
    placement = server_placement(pairs, observed.get("source_pvcs"), observed.get("source_pods"))
    errors += placement["errors"]
    wanted = destination_pvcs(
        pairs,
        observed.get("source_pvcs"),
        observed.get("destination_pvcs"),
        destination["namespace"],
        inputs.get("state_transfer_create_destination_pvcs", True),
        inputs.get("state_transfer_destination_storage_class") or "",
        plan["labels"],
    )
    errors += wanted["errors"]
    return {
        "errors": errors,
        "node": placement["node"],
        "create_pvcs": wanted["create"],
        "server_pod_left": server_pod_left(plan, observed.get("source_pods")),
        # client_pods: the run's client pods on the destination (read by label); unknown
        # means they must be looked for.
        "client_pods_left": bool(observed.get("client_pods", True)),
    }


def server_pod_left(plan, source_pods):
    """Whether the source namespace still has a server pod of this run (an earlier run with
    the same id was interrupted): it must go before the new one is created."""
    run = (plan.get("labels") or {}).get("kubeferry.io/run")
    for pod in source_pods or []:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if labels.get("kubeferry.io/run") == run and labels.get("kubeferry.io/side") == "server":
            return True
    return False
