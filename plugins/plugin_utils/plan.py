# Copyright: kubeferry developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan of a state transfer: run id, object names, labels and PVC pairs of both sides.

The plan is a pure function of the inputs, so the same inputs always name the same objects
(a re-run finds and replaces its own objects) and the whole run can be rendered offline.
Its `server` and `clients[]` entries are the `state_transfer_run` dicts that the part roles
take (docs/contract.md).
"""

import json
import os

import yaml

from ansible_collections.kubeferry.state_transfer.plugins.plugin_utils.names import (
    is_dns1123_label,
    k8s_name,
    label_value,
    short_hash,
)

MANAGED_BY = "kubeferry.state_transfer"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_RUN = "kubeferry.io/run"
LABEL_SIDE = "kubeferry.io/side"
LABEL_PVC = "kubeferry.io/pvc"
NAME_PREFIX = "kubeferry"
# Keys are rsync module names and parts of client Pod names; 30 characters leave room for
# "kubeferry-<run id>-" in front while staying within 63.
KEY_MAX = 30
SOURCE_MOUNT_ROOT = "/mnt/source"
DESTINATION_MOUNT = "/mnt/destination"


def api_server(side):
    """The URL of the API server a side connects to: its host, else the server of its context
    in its kubeconfig (a path or an inline dict); None when that cannot be read."""
    if side.get("host"):
        return side["host"]
    config = side.get("kubeconfig")
    if isinstance(config, str):
        try:
            with open(os.path.expanduser(config), encoding="utf-8") as handle:
                config = yaml.safe_load(handle)
        except (OSError, yaml.YAMLError):
            return None
    if not isinstance(config, dict):
        return None

    def named(key, field):
        entries = config.get(key) or []
        return {e.get("name"): e.get(field) or {} for e in entries if isinstance(e, dict)}

    context = named("contexts", "context").get(side.get("context") or config.get("current-context"))
    cluster = named("clusters", "cluster").get((context or {}).get("cluster"))
    return (cluster or {}).get("server") or None


def connection(side):
    """Where a side connects, for the plan a user reads; never its credentials."""
    kubeconfig = side.get("kubeconfig")
    return {
        "namespace": side.get("namespace"),
        "context": side.get("context"),
        "host": side.get("host"),
        "kubeconfig": kubeconfig if isinstance(kubeconfig, str) else None,
        "server": api_server(side),
    }


def _connection_identity(side):
    """The parts of a side's connection that tell clusters apart (never credentials).

    The API server's URL when it can be read: the same cluster then gives the same run id
    whatever file the kubeconfig is in (AWX writes a new file for every job). Otherwise the
    context and the kubeconfig's path.
    """
    where = connection(side)
    if where["server"]:
        return {"namespace": where["namespace"], "server": where["server"]}
    return {key: where[key] for key in ("namespace", "context", "kubeconfig")}


def derive_run_id(source, destination, pvcs):
    """A run id that stays the same for the same transfer, so re-runs are idempotent."""
    identity = {
        "source": _connection_identity(source),
        "destination": _connection_identity(destination),
        "pvcs": [[pair["source"], pair["destination"]] for pair in pvcs],
    }
    return short_hash(json.dumps(identity, sort_keys=True))


def normalise_pairs(pvcs):
    """PVC pairs as dicts with source and destination (destination defaults to source)."""
    pairs = []
    for entry in pvcs:
        if isinstance(entry, str):
            entry = {"source": entry}
        pair = dict(entry)
        pair["destination"] = pair.get("destination") or pair["source"]
        pairs.append(pair)
    return pairs


def _keys(pairs):
    keys, seen = [], set()
    for pair in pairs:
        key = pair["source"]
        if not is_dns1123_label(key) or len(key) > KEY_MAX:
            key = k8s_name([key], max_length=KEY_MAX)
        if key in seen:
            key = k8s_name([key, pair["destination"]], max_length=KEY_MAX)
        seen.add(key)
        keys.append(key)
    return keys


def build_plan(source, destination, pvcs, run_id="", mode="preserve", run_as_user=None):
    pairs = normalise_pairs(pvcs)
    run_id = run_id or derive_run_id(source, destination, pairs)
    name = "{0}-{1}".format(NAME_PREFIX, run_id)
    common_labels = {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_NAME: NAME_PREFIX,
        LABEL_RUN: label_value(run_id),
    }

    def side_run(side, namespace, pod_name, side_pvcs, extra_labels=None):
        labels = dict(common_labels, **{LABEL_SIDE: side})
        labels.update(extra_labels or {})
        return {
            "id": run_id,
            "name": name,
            "namespace": namespace,
            "side": side,
            "mode": mode,
            "run_as_user": run_as_user,
            "labels": labels,
            "pod_name": pod_name,
            "pvcs": side_pvcs,
        }

    planned = []
    for index, (pair, key) in enumerate(zip(pairs, _keys(pairs))):
        planned.append(
            dict(
                pair,
                key=key,
                label=label_value(pair["destination"]),
                index=index,
            )
        )

    server_pvcs = [
        dict(
            pair,
            volume="source-{0}".format(pair["index"]),
            mount_path="{0}/{1}".format(SOURCE_MOUNT_ROOT, pair["key"]),
        )
        for pair in planned
    ]
    server = side_run("server", source["namespace"], "{0}-server".format(name), server_pvcs)

    clients = []
    for pair in planned:
        client_pvc = dict(pair, volume="destination", mount_path=DESTINATION_MOUNT)
        clients.append(
            side_run(
                "client",
                destination["namespace"],
                k8s_name([name, pair["key"]]),
                [client_pvc],
                {LABEL_PVC: pair["label"]},
            )
        )

    return {
        "id": run_id,
        "name": name,
        "selector": "{0}={1}".format(LABEL_RUN, common_labels[LABEL_RUN]),
        "labels": common_labels,
        "pairs": planned,
        "server": server,
        "clients": clients,
    }


def plan_summary(inputs, plan):
    """What a run with these inputs would do, without secrets: render mode writes it as
    plan.yaml next to the manifests, for review and for tests of how inputs arrive."""
    return {
        "run_id": plan["id"],
        "transfer": inputs.get("state_transfer_transfer"),
        "transport": inputs.get("state_transfer_transport"),
        "endpoint": inputs.get("state_transfer_endpoint"),
        # Where each side connects; never its credentials (kubeconfig dicts, api_key, ...).
        "source": connection(inputs["state_transfer_source"]),
        "destination": connection(inputs["state_transfer_destination"]),
        "pvcs": [
            dict(
                (key, pair[key])
                for key in ("source", "destination", "storage_class")
                if pair.get(key)
            )
            for pair in plan["pairs"]
        ],
        "parallel": inputs.get("state_transfer_parallel"),
        # The order in which a real run starts the clients, `parallel` at a time (tasks/client.yml).
        "order": [client["pvcs"][0]["destination"] for client in plan["clients"]],
        "settings": dict(
            (name[len("state_transfer_") :], inputs.get(name))
            for name in (
                "state_transfer_mode",
                "state_transfer_run_as_user",
                "state_transfer_create_destination_pvcs",
                "state_transfer_destination_storage_class",
                "state_transfer_mirror",
                "state_transfer_compress",
                "state_transfer_bwlimit",
                "state_transfer_excludes",
                "state_transfer_rsync_extra_args",
                "state_transfer_server_timeout",
                "state_transfer_endpoint_timeout",
                "state_transfer_transfer_timeout",
                "state_transfer_progress_interval",
                "state_transfer_network_policy",
                "state_transfer_network_policy_source_ranges",
            )
        ),
    }
