# Copyright: kubeferry developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pieces of the transfer Pods that the orchestrator adds to the part roles' fragments."""

REDACTED = "<generated at run time>"


def pvc_volumes(run):
    """The PVC volumes of one side: every source PVC read-only, or the destination PVC.

    The source is mounted read-only in the Pod spec itself (not only in the container), so
    nothing in the server Pod can change the data being migrated.
    """
    if run["side"] == "server":
        return [
            {
                "name": pvc["volume"],
                "persistentVolumeClaim": {"claimName": pvc["source"], "readOnly": True},
            }
            for pvc in run["pvcs"]
        ]
    return [
        {"name": pvc["volume"], "persistentVolumeClaim": {"claimName": pvc["destination"]}}
        for pvc in run["pvcs"]
    ]


def add_mount(containers, mount):
    """Containers with mount added to each one that does not mount that volume yet."""
    # New dicts and lists where something changes, not deep copies: under ansible-core 2.19
    # the containers are lazy templating containers, and a deep copy of one copies its whole
    # templating context (half a second a client pod).
    result = []
    for container in containers:
        mounts = list(container.get("volumeMounts") or [])
        if not any(existing.get("name") == mount["name"] for existing in mounts):
            mounts.append(dict(mount))
        result.append(dict(container, volumeMounts=mounts))
    return result


def redact_secrets(objects):
    """Objects with every Secret value replaced, for manifests written to disk for review."""
    result = []
    for obj in objects:
        if obj.get("kind") == "Secret":
            obj = dict(obj)  # not a deep copy: see add_mount
            keys = list((obj.pop("data", None) or {}).keys())
            keys += list((obj.get("stringData") or {}).keys())
            obj["stringData"] = dict((key, REDACTED) for key in keys)
        result.append(obj)
    return result


def progress_pods(client_runs, transfer, objects=None):
    """The client pods as the transfer_progress module takes them; with ``objects`` (the
    rendered client objects) each carries its Pod's ``definition``, for the module to start."""
    definitions = {
        obj["metadata"]["name"]: obj for obj in objects or [] if obj.get("kind") == "Pod"
    }
    pods = []
    for run in client_runs:
        pod = {"name": run["pod_name"], "pvc": run["pvcs"][0]["destination"], "transfer": transfer}
        if run["pod_name"] in definitions:
            pod["definition"] = definitions[run["pod_name"]]
        pods.append(pod)
    return pods
