# Copyright: kubeferry developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Several reads of one cluster in one module run (the objects_info module).

Each run of a module costs about a second (a new Python process, importing the kubernetes
client, API discovery); the preflight reads five or six lists, so it reads them together.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kubeferry.state_transfer.plugins.module_utils.common import (
    ModuleFailure,
    TransientError,
)


def describe(query):
    """'PersistentVolumeClaim objects in app' / 'Namespace app', for messages."""
    what = query["kind"]
    if query.get("name"):
        what += " " + query["name"]
    else:
        what += " objects"
    if query.get("namespace"):
        what += " in " + query["namespace"]
    if query.get("label_selectors"):
        what += " with labels " + ",".join(query["label_selectors"])
    return what


def without_managed_fields(obj):
    """The object without metadata.managedFields, as ``kubectl get`` shows it: the field
    bookkeeping of server-side apply, often half of an object, which no reader here needs."""
    metadata = obj.get("metadata")
    if isinstance(metadata, dict) and "managedFields" in metadata:
        obj = dict(obj, metadata=dict((k, v) for k, v in metadata.items() if k != "managedFields"))
    return obj


def read(cluster, query):
    """(objects, api_found) of one query: a named object is a list of one or none."""
    kind, api_version = query["kind"], query["api_version"]
    try:
        cluster.resource(kind, api_version)
    except ModuleFailure:
        if query["optional"]:
            return [], False
        raise
    try:
        if query.get("name"):
            found = cluster.get(kind, query["name"], query.get("namespace"), api_version)
            found = [found] if found is not None else []
        else:
            selector = ",".join(query.get("label_selectors") or []) or None
            found = cluster.list(kind, query.get("namespace"), selector, api_version)
        return [without_managed_fields(obj) for obj in found], True
    except TransientError as exc:
        raise ModuleFailure("Cannot read {0}: {1}".format(describe(query), exc)) from exc


def execute(cluster, params, check_mode):
    """The module: read every query (reading is the same in check mode)."""
    keys = [query["key"] for query in params["queries"]]
    twice = sorted({key for key in keys if keys.count(key) > 1})
    if twice:
        raise ModuleFailure("queries: each key must be used once; repeated: " + ", ".join(twice))
    resources, api_found = {}, {}
    for query in params["queries"]:
        if not query["skip"]:
            resources[query["key"]], api_found[query["key"]] = read(cluster, query)
    return dict(changed=False, resources=resources, api_found=api_found)
