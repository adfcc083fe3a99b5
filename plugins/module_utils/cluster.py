# Copyright: kubeferry developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Access to one cluster, on top of kubernetes.core's client: reads, and the creation of the
transfer Pods that transfer_progress starts as places free up.

Everything handed to the predicates is a plain dict (``ResourceInstance.to_dict()``), the
same shape as the YAML fixtures of the unit tests.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

from ansible_collections.kubeferry.state_transfer.plugins.module_utils.common import (
    ModuleFailure,
    TransientError,
    api_error_message,
)
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import (
    CoreException,
)

try:
    from kubernetes.dynamic.exceptions import (
        DynamicApiError,
        NotFoundError,
        ResourceNotFoundError,
    )
except ImportError:
    # Reported by AnsibleK8SModule (check_k8s) before anything here runs.
    DynamicApiError = NotFoundError = ResourceNotFoundError = None

try:
    from kubernetes.client.exceptions import ApiException
except ImportError:
    ApiException = None

try:
    from urllib3.exceptions import HTTPError
except ImportError:
    HTTPError = None

# Status codes after which the same request may well succeed a moment later.
TRANSIENT_STATUS = (429, 500, 502, 503, 504)


KIND_HINTS = {
    "Route": ": Routes exist on OpenShift only; elsewhere use endpoint load_balancer or node_port",
}


def argument_spec(**options):
    """kubernetes.core's connection options plus the module's own."""
    spec = copy.deepcopy(AUTH_ARG_SPEC)
    spec.update(options)
    return spec


class Cluster:
    """Gets, lists, reads logs and creates; a missing object is ``None``, not an exception."""

    def __init__(self, client):
        self.client = client
        self._resources = {}

    def resource(self, kind, api_version="v1"):
        key = (kind, api_version)
        if key not in self._resources:
            try:
                self._resources[key] = self._call(self.client.resource, kind, api_version)
            except ResourceNotFoundError as exc:
                raise ModuleFailure(
                    "The cluster does not serve {0} ({1}){2}".format(
                        kind, api_version, KIND_HINTS.get(kind, "")
                    )
                ) from exc
        return self._resources[key]

    def _call(self, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except NotFoundError:
            return None
        except DynamicApiError as exc:
            if exc.status in TRANSIENT_STATUS:
                raise TransientError(api_error_message(exc)) from exc
            raise
        except HTTPError as exc:
            raise TransientError(str(exc)) from exc

    def get(self, kind, name, namespace=None, api_version="v1"):
        found = self._call(
            self.client.get, self.resource(kind, api_version), name=name, namespace=namespace
        )
        return found.to_dict() if found is not None else None

    def list(self, kind, namespace=None, label_selector=None, api_version="v1"):
        params = {"namespace": namespace}
        if label_selector:
            params["label_selector"] = label_selector
        found = self._call(self.client.get, self.resource(kind, api_version), **params)
        if found is None:
            return []
        return found.to_dict().get("items") or []

    def create(self, kind, definition, namespace, api_version="v1"):
        """Creates the object, never replaces one: ``ModuleFailure`` says why the API server
        refused it (an object of that name exists, quota, admission...)."""
        try:
            created = self._call(
                self.client.create,
                self.resource(kind, api_version),
                definition,
                namespace=namespace,
            )
        except DynamicApiError as exc:
            raise ModuleFailure(api_error_message(exc)) from exc
        if created is None:  # 404: the namespace is gone
            raise ModuleFailure("namespace {0} not found".format(namespace))
        return created.to_dict()

    def wait_for_change(self, kind, namespace, names, seconds, api_version="v1"):
        """Waits up to ``seconds`` for one of the objects ``names`` in ``namespace`` to change
        (be created, updated or deleted); returns whether one did.

        A watch of the API server from the namespace's current revision, so that a waiting
        module reads again within a moment of the change instead of at its next poll. The
        revision is read when the watch starts: a change made between the caller's last read
        and that moment is seen at the next poll, as without a watch. Any error ends the wait
        early with ``False``: a watch is an aid to a poll, never a reason to fail.
        """
        seconds = int(seconds)
        if seconds < 1:  # the API server counts a watch's timeout in whole seconds
            return False
        names = set(names)
        try:
            resource = self.resource(kind, api_version)
            revision = self._call(resource.get, namespace=namespace, limit=1)
            revision = (revision.to_dict() if revision is not None else {}).get("metadata") or {}
            if not revision.get("resourceVersion"):
                return False
            for event in resource.watch(
                namespace=namespace, resource_version=revision["resourceVersion"], timeout=seconds
            ):
                if event.get("type") == "ERROR":  # e.g. 410 Gone: the revision was compacted
                    return False
                name = ((event.get("raw_object") or {}).get("metadata") or {}).get("name")
                if name in names:
                    return True
        except (TransientError, ModuleFailure, DynamicApiError, HTTPError, ApiException):
            pass
        return False

    def log(self, name, namespace, container=None, tail_lines=None, previous=False):
        """The container's log as text; "" when there is none yet (or no longer)."""
        query = []
        if container:
            query.append(("container", container))
        if tail_lines:
            query.append(("tailLines", int(tail_lines)))
        if previous:
            query.append(("previous", "true"))
        pods = self.resource("Pod", "v1")
        try:
            response = self._call(
                pods.log.get, name=name, namespace=namespace, serialize=False, query_params=query
            )
        except (TransientError, DynamicApiError):
            # A container that never started has no log (400 Bad Request); a log is an
            # aid to the message, never a reason to fail by itself.
            return ""
        if response is None:
            return ""
        data = getattr(response, "data", response)
        if isinstance(data, bytes):
            return data.decode("utf-8", errors="replace")
        return str(data)


def run_module(module, execute):
    """The body of every cluster-reading module: client, execute, exit or fail.

    ``execute(cluster, params, check_mode)`` returns the result dict or raises
    ``ModuleFailure``.
    """
    try:
        client = get_api_client(module=module)
        result = execute(Cluster(client), module.params, module.check_mode)
    except ModuleFailure as exc:
        module.fail_json(msg=exc.msg, **exc.result)
    except CoreException as exc:
        module.fail_from_exception(exc)
    except DynamicApiError as exc:
        module.fail_json(msg=api_error_message(exc), status=exc.status)
    else:
        module.exit_json(**result)
