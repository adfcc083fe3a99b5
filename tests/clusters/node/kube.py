"""A small raw-JSON layer over the kubernetes client's ApiClient (auth from the kubeconfig).

The node agent works with plain dicts: the typed models of the kubernetes client are slow to
build and cannot represent every object it needs (Bindings, custom Routes, finalize calls).
"""

import json
import logging
import threading
import time

from kubernetes import config
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

log = logging.getLogger(__name__)

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


class Kube:
    def __init__(self, kubeconfig, context):
        self.kubeconfig = kubeconfig
        self.context = context
        self.api = config.new_client_from_config(config_file=kubeconfig, context=context)

    def request(self, method, path, body=None, query=None, content_type=None, timeout=30):
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        resp = self.api.call_api(
            path,
            method,
            query_params=list((query or {}).items()),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
            _request_timeout=timeout,
        )
        data = resp.data
        return json.loads(data) if data else {}

    def get(self, path, query=None):
        return self.request("GET", path, query=query)

    def get_or_none(self, path):
        try:
            return self.get(path)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def create(self, path, body):
        return self.request("POST", path, body=body)

    def patch(self, path, body, content_type=MERGE):
        return self.request("PATCH", path, body=body, content_type=content_type)

    def put(self, path, body):
        return self.request("PUT", path, body=body)

    def delete(self, path, body=None, query=None):
        try:
            return self.request("DELETE", path, body=body, query=query)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def ca_data(self):
        """PEM of the cluster CA from the kubeconfig (None if not embedded)."""
        cfg = self.api.configuration
        if cfg.ssl_ca_cert:
            with open(cfg.ssl_ca_cert) as fh:
                return fh.read()
        return None


class Informer(threading.Thread):
    """List+watch of one collection into a dict keyed by (namespace, name).

    Reconnects after errors with a bounded backoff; after `max_failures` consecutive failures
    it gives up and marks itself failed (the agent then exits with an error).
    """

    def __init__(self, kube, path, on_event, stop, max_failures=120):
        super().__init__(daemon=True, name=f"informer:{path}")
        self.kube = kube
        self.path = path
        self.on_event = on_event
        self.stop_event = stop
        self.max_failures = max_failures
        self.items = {}
        self.lock = threading.Lock()
        self.synced = threading.Event()
        self.failed = False
        self.missing = False

    @staticmethod
    def key(obj):
        md = obj["metadata"]
        return (md.get("namespace", ""), md["name"])

    def snapshot(self):
        with self.lock:
            return list(self.items.values())

    def get(self, namespace, name):
        with self.lock:
            return self.items.get((namespace, name))

    def _list(self):
        data = self.kube.get(self.path)
        with self.lock:
            self.items = {self.key(o): o for o in data.get("items", [])}
        self.synced.set()
        self.on_event("SYNC", None)
        return data["metadata"].get("resourceVersion", "")

    def _watch(self, rv):
        resp = self.kube.api.call_api(
            self.path,
            "GET",
            query_params=[
                ("watch", "1"),
                ("resourceVersion", rv),
                ("timeoutSeconds", "60"),
                ("allowWatchBookmarks", "true"),
            ],
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
            _request_timeout=(10, 90),
        )
        try:
            for line in iter_resp_lines(resp):
                if self.stop_event.is_set():
                    return rv
                ev = json.loads(line)
                typ, obj = ev.get("type"), ev.get("object", {})
                if typ == "ERROR":
                    if obj.get("code") == 410:
                        return None
                    raise RuntimeError(f"watch error: {obj.get('message')}")
                rv = obj.get("metadata", {}).get("resourceVersion", rv)
                if typ == "BOOKMARK":
                    continue
                with self.lock:
                    if typ == "DELETED":
                        self.items.pop(self.key(obj), None)
                    else:
                        self.items[self.key(obj)] = obj
                self.on_event(typ, obj)
        finally:
            resp.release_conn()
        return rv

    def run(self):
        failures = 0
        rv = None
        while not self.stop_event.is_set():
            try:
                if rv is None:
                    rv = self._list()
                rv = self._watch(rv)
                failures = 0
            except ApiException as exc:
                if exc.status == 404:
                    self.missing = True
                    self.synced.set()
                    if self.stop_event.wait(5):
                        return
                    continue
                failures += 1
                rv = None
                log.warning("%s: %s", self.path, exc.reason)
            except Exception as exc:  # noqa: BLE001 - reconnect on any transport error
                failures += 1
                rv = None
                log.warning("%s: %r", self.path, exc)
            if failures:
                if failures >= self.max_failures:
                    log.error("%s: giving up after %d failures", self.path, failures)
                    self.failed = True
                    return
                self.stop_event.wait(min(0.2 * 2 ** min(failures, 5), 5.0))


def now_rfc3339():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
