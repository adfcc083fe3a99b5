"""The process kubelet of one twin cluster, plus the controllers a real cluster would run.

One NodeAgent per cluster, running in kf-world. It registers its Node and renews its Lease,
schedules pending Pods onto itself, runs them (runtime.PodRunner), provisions directory-backed
PVs for PVCs, removes the protection finalizers the storage controllers would, empties and
finalizes Terminating namespaces, creates `default` ServiceAccounts and the `kube-root-ca.crt`
ConfigMap in namespaces, serves container logs on the kubelet port, drives the Service
and Route networking (network.services) and enforces the Ingress NetworkPolicies of its pods
(netpol).
"""

import logging
import os
import shutil
import threading
import time

import urllib3
from kubernetes.client.exceptions import ApiException

from ..network import layout
from .kube import STRATEGIC, Informer, Kube, now_rfc3339
from .logserver import LogServer
from .netpol import Enforcer
from .runtime import IPAllocator, PodRunner

log = logging.getLogger(__name__)

STAY_PENDING = "kf.test/stay-pending"
PROVISIONER = "kf.test/local"
STORAGE_CLASS = "kf-local"
PVC_PROTECTION = "kubernetes.io/pvc-protection"
PV_PROTECTION = "kubernetes.io/pv-protection"
HEARTBEAT_SECONDS = 10


def _match_expr(expr, labels, fields):
    key, op, values = expr["key"], expr["operator"], expr.get("values") or []
    source = fields if fields is not None else labels
    present = key in source
    val = source.get(key)
    if op == "In":
        return present and val in values
    if op == "NotIn":
        return not present or val not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt") and present:
        try:
            a, b = int(val), int(values[0])
        except (ValueError, IndexError):
            return False
        return a > b if op == "Gt" else a < b
    return False


def node_fits(pod, node_name, labels):
    """None when the pod fits the node, else the scheduler's reason."""
    spec = pod["spec"]
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return "1 node(s) didn't match Pod's node affinity/selector"
    na = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if na:
        terms = na.get("nodeSelectorTerms") or []
        ok = False
        for t in terms:
            exprs = t.get("matchExpressions") or []
            fields = t.get("matchFields") or []
            if all(_match_expr(e, labels, None) for e in exprs) and all(
                _match_expr(f, labels, {"metadata.name": node_name}) for f in fields
            ):
                ok = True
                break
        if not ok:
            return "1 node(s) didn't match Pod's node affinity/selector"
    return None


class NodeAgent:
    def __init__(self, cluster, kubeconfig, state_dir, serve_logs=True, services=True):
        self.cluster = cluster
        self.state_dir = os.path.abspath(state_dir)
        self.kube = Kube(kubeconfig, cluster)
        self.node_name = f"kf-{cluster}-node"
        self.node_ip = layout.CLUSTERS[cluster]["node"]
        self.labels = {
            "kubernetes.io/hostname": self.node_name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "node-role.kubernetes.io/worker": "",
            "topology.kubernetes.io/zone": f"{cluster}-zone",
        }
        self.stop_event = threading.Event()
        self.wake = threading.Event()
        self.ips = IPAllocator(cluster)
        self.runners = {}
        self.runners_lock = threading.Lock()
        self.serve_logs = serve_logs
        self.with_services = services
        self.ns_done = set()
        self.ns_cleanup = {}
        self.resources = None
        self.cluster_ca = None
        self.last_heartbeat = 0.0
        self.services = None
        self.log_server = None

        def on_event(_typ, _obj):
            self.wake.set()

        self.pods = Informer(self.kube, "/api/v1/pods", on_event, self.stop_event)
        self.pvcs = Informer(self.kube, "/api/v1/persistentvolumeclaims", on_event, self.stop_event)
        self.pvs = Informer(self.kube, "/api/v1/persistentvolumes", on_event, self.stop_event)
        self.namespaces = Informer(self.kube, "/api/v1/namespaces", on_event, self.stop_event)
        self.netpols = Informer(
            self.kube, "/apis/networking.k8s.io/v1/networkpolicies", on_event, self.stop_event
        )
        self.informers = [self.pods, self.pvcs, self.pvs, self.namespaces, self.netpols]
        # NetworkPolicy (Ingress, TCP) in each pod's network namespace (netpol.py); the pods
        # see the node through its address on the pod bridge.
        self.netpol = Enforcer(self, layout.CLUSTERS[cluster]["gateway"])

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self):
        for d in ("run", "logs", os.path.join("node", self.cluster), "volumes"):
            os.makedirs(os.path.join(self.state_dir, d), exist_ok=True)
        try:
            self.cluster_ca = self.kube.ca_data()
        except OSError:
            self.cluster_ca = None
        self.register_node()
        self.ensure_storage_class()
        for inf in self.informers:
            inf.start()
        for inf in self.informers:
            inf.synced.wait(30)
        if self.serve_logs:
            self.log_server = LogServer(self)
            self.log_server.start()
        if self.with_services:
            from ..network.services import ServiceController

            self.services = ServiceController(self)
            self.services.start()

    def run_forever(self):
        while not self.stop_event.is_set():
            self.wake.wait(1.0)
            self.wake.clear()
            try:
                self.sync_once()
            except ApiException as exc:
                log.warning("sync: %s %s", exc.status, exc.reason)
            except (OSError, urllib3.exceptions.HTTPError) as exc:
                log.warning("sync: API server unreachable: %s", exc)
            except Exception:  # noqa: BLE001 - keep the node alive, log the bug
                log.exception("sync failed")
            if any(inf.failed for inf in self.informers):
                log.error("lost the API server; stopping")
                break
        self.shutdown()

    def sync_once(self):
        if time.monotonic() - self.last_heartbeat > HEARTBEAT_SECONDS:
            self.heartbeat()
        self.schedule()
        self.sync_runners()
        with self.runners_lock:
            runners = list(self.runners.values())
        self.netpol.sync(runners)
        self.provision()
        self.sync_namespaces()
        if self.services is not None:
            self.services.kick()

    def shutdown(self):
        self.stop_event.set()
        with self.runners_lock:
            runners = list(self.runners.values())
        for r in runners:
            r.stop()
        for r in runners:
            r.done.wait(15)
        if self.services is not None:
            self.services.stop()
        if self.log_server is not None:
            self.log_server.stop()

    # -- node ------------------------------------------------------------------------------------
    def _node_status(self):
        now = now_rfc3339()
        conds = [
            ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ("MemoryPressure", "False", "KubeletHasSufficientMemory", "sufficient memory"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", "no disk pressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID", "sufficient PID"),
        ]
        capacity = {"cpu": "8", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"}
        return {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [
                {
                    "type": t,
                    "status": s,
                    "reason": r,
                    "message": m,
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
                for t, s, r, m in conds
            ],
            "addresses": [
                {"type": "InternalIP", "address": self.node_ip},
                {"type": "ExternalIP", "address": self.node_ip},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": "kf",
                "systemUUID": "kf",
                "bootID": "kf",
                "kernelVersion": os.uname().release,
                "osImage": "kf twin cluster node",
                "containerRuntimeVersion": "kf-process://1",
                "kubeletVersion": "v1.0.0-kf",
                "kubeProxyVersion": "v1.0.0-kf",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }

    def register_node(self):
        node = self.kube.get_or_none(f"/api/v1/nodes/{self.node_name}")
        if node is None:
            body = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": self.node_name, "labels": self.labels},
                "spec": {"podCIDR": layout.CLUSTERS[self.cluster]["subnet"]},
            }
            try:
                self.kube.create("/api/v1/nodes", body)
            except ApiException as exc:
                if exc.status != 409:
                    raise
        else:
            self.kube.patch(
                f"/api/v1/nodes/{self.node_name}",
                {"metadata": {"labels": self.labels}, "spec": {"unschedulable": None}},
            )
        self.heartbeat()

    def heartbeat(self):
        self.kube.patch(f"/api/v1/nodes/{self.node_name}/status", {"status": self._node_status()})
        renew = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.node_name}"
        try:
            if self.kube.get_or_none(path) is None:
                self.kube.create(
                    "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                    {
                        "apiVersion": "coordination.k8s.io/v1",
                        "kind": "Lease",
                        "metadata": {"name": self.node_name},
                        "spec": {
                            "holderIdentity": self.node_name,
                            "leaseDurationSeconds": 40,
                            "renewTime": renew,
                        },
                    },
                )
            else:
                self.kube.patch(path, {"spec": {"renewTime": renew}})
        except ApiException as exc:
            log.debug("lease: %s", exc.reason)
        self.last_heartbeat = time.monotonic()

    def ensure_storage_class(self):
        classes = self.kube.get("/apis/storage.k8s.io/v1/storageclasses").get("items", [])
        if classes:
            return
        try:
            self.kube.create(
                "/apis/storage.k8s.io/v1/storageclasses",
                {
                    "apiVersion": "storage.k8s.io/v1",
                    "kind": "StorageClass",
                    "metadata": {
                        "name": STORAGE_CLASS,
                        "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                    },
                    "provisioner": PROVISIONER,
                    "reclaimPolicy": "Delete",
                    "volumeBindingMode": "Immediate",
                },
            )
        except ApiException as exc:
            if exc.status != 409:
                raise

    # -- scheduling ------------------------------------------------------------------------------
    def _pvc_problem(self, pod):
        ns = pod["metadata"]["namespace"]
        for vol in pod["spec"].get("volumes") or []:
            if "persistentVolumeClaim" not in vol:
                continue
            claim = vol["persistentVolumeClaim"]["claimName"]
            pvc = self.pvcs.get(ns, claim)
            if pvc is None:
                return f'persistentvolumeclaim "{claim}" not found'
            if pvc["metadata"].get("deletionTimestamp"):
                return f'persistentvolumeclaim "{claim}" is being deleted'
            if (pvc.get("status") or {}).get("phase") != "Bound":
                return "pod has unbound immediate PersistentVolumeClaims"
        return None

    def schedule(self):
        for pod in self.pods.snapshot():
            spec, md = pod["spec"], pod["metadata"]
            if spec.get("nodeName") or md.get("deletionTimestamp"):
                continue
            if spec.get("schedulerName", "default-scheduler") != "default-scheduler":
                continue
            problem = node_fits(pod, self.node_name, self.labels) or self._pvc_problem(pod)
            ns, name = md["namespace"], md["name"]
            if problem:
                message = f"0/1 nodes are available: {problem}."
                conds = (pod.get("status") or {}).get("conditions") or []
                if any(
                    c.get("type") == "PodScheduled" and c.get("message") == message for c in conds
                ):
                    continue
                try:
                    self.kube.patch(
                        f"/api/v1/namespaces/{ns}/pods/{name}/status",
                        {
                            "status": {
                                "phase": "Pending",
                                "conditions": [
                                    {
                                        "type": "PodScheduled",
                                        "status": "False",
                                        "reason": "Unschedulable",
                                        "message": message,
                                        "lastTransitionTime": now_rfc3339(),
                                        "lastProbeTime": None,
                                    }
                                ],
                            }
                        },
                        content_type=STRATEGIC,
                    )
                except ApiException as exc:
                    log.debug("unschedulable status %s/%s: %s", ns, name, exc.reason)
                continue
            try:
                self.kube.create(
                    f"/api/v1/namespaces/{ns}/pods/{name}/binding",
                    {
                        "apiVersion": "v1",
                        "kind": "Binding",
                        "metadata": {"name": name},
                        "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name},
                    },
                )
            except ApiException as exc:
                if exc.status not in (404, 409):
                    log.warning("bind %s/%s: %s", ns, name, exc.reason)

    # -- pods ------------------------------------------------------------------------------------
    def runner_for(self, namespace, name):
        with self.runners_lock:
            for r in self.runners.values():
                if r.ns == namespace and r.name == name:
                    return r
        return None

    def sync_runners(self):
        seen = set()
        for pod in self.pods.snapshot():
            if pod["spec"].get("nodeName") != self.node_name:
                continue
            md = pod["metadata"]
            uid = md["uid"]
            seen.add(uid)
            with self.runners_lock:
                runner = self.runners.get(uid)
            if runner is not None:
                runner.update(pod)
                continue
            status = pod.get("status") or {}
            if md.get("deletionTimestamp"):
                self.kube.delete(
                    f"/api/v1/namespaces/{md['namespace']}/pods/{md['name']}",
                    body={"gracePeriodSeconds": 0, "preconditions": {"uid": uid}},
                )
                continue
            if status.get("phase") in ("Succeeded", "Failed"):
                continue
            if status.get("containerStatuses"):
                # Ran under an earlier agent whose processes are gone: a node restart.
                self.kube.patch(
                    f"/api/v1/namespaces/{md['namespace']}/pods/{md['name']}/status",
                    {
                        "status": {
                            "phase": "Failed",
                            "reason": "NodeRestarted",
                            "message": "the node agent restarted; containers were lost",
                        }
                    },
                    content_type=STRATEGIC,
                )
                continue
            runner = PodRunner(self, pod)
            with self.runners_lock:
                self.runners[uid] = runner
            runner.start()
        with self.runners_lock:
            for uid, r in list(self.runners.items()):
                if uid not in seen:
                    r.stop()
                    if r.done.is_set():
                        del self.runners[uid]

    def pod_ready(self, pod):
        st = pod.get("status") or {}
        if st.get("phase") != "Running" or pod["metadata"].get("deletionTimestamp"):
            return False
        return any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in st.get("conditions") or []
        )

    # -- storage ---------------------------------------------------------------------------------
    def _claims_in_use(self):
        used = set()
        for pod in self.pods.snapshot():
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            for vol in pod["spec"].get("volumes") or []:
                if "persistentVolumeClaim" in vol:
                    used.add(
                        (pod["metadata"]["namespace"], vol["persistentVolumeClaim"]["claimName"])
                    )
        return used

    def _drop_finalizer(self, path, obj, finalizer):
        fins = obj["metadata"].get("finalizers") or []
        if finalizer not in fins:
            return
        keep = [f for f in fins if f != finalizer]
        try:
            self.kube.patch(
                path,
                {
                    "metadata": {
                        "finalizers": keep,
                        "resourceVersion": obj["metadata"]["resourceVersion"],
                    }
                },
            )
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

    def volume_dir(self, pv_name):
        return os.path.join(self.state_dir, "volumes", self.cluster, pv_name)

    def provision(self):
        in_use = self._claims_in_use()
        for pvc in self.pvcs.snapshot():
            md, spec = pvc["metadata"], pvc["spec"]
            ns, name = md["namespace"], md["name"]
            path = f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{name}"
            if md.get("deletionTimestamp"):
                if (ns, name) not in in_use:
                    self._drop_finalizer(path, pvc, PVC_PROTECTION)
                continue
            phase = (pvc.get("status") or {}).get("phase")
            if phase == "Bound":
                continue
            if (md.get("annotations") or {}).get(STAY_PENDING) == "true":
                continue
            sc = spec.get("storageClassName")
            if sc not in (None, "", STORAGE_CLASS) and not self._class_is_ours(sc):
                continue
            pv_name = spec.get("volumeName") or f"pvc-{md['uid']}"
            try:
                self._bind_pvc(pvc, pv_name)
            except ApiException as exc:
                if exc.status != 409:
                    log.warning("provision %s/%s: %s", ns, name, exc.reason)
        claims = {p["metadata"]["uid"] for p in self.pvcs.snapshot()}
        for pv in self.pvs.snapshot():
            md = pv["metadata"]
            if (md.get("annotations") or {}).get("pv.kubernetes.io/provisioned-by") != PROVISIONER:
                continue
            ref = pv["spec"].get("claimRef") or {}
            if md.get("deletionTimestamp"):
                self._drop_finalizer(f"/api/v1/persistentvolumes/{md['name']}", pv, PV_PROTECTION)
                continue
            if ref.get("uid") and ref["uid"] not in claims and self.pvcs.synced.is_set():
                if pv["spec"].get("persistentVolumeReclaimPolicy", "Delete") == "Delete":
                    self.kube.delete(f"/api/v1/persistentvolumes/{md['name']}")
                    shutil.rmtree(self.volume_dir(md["name"]), ignore_errors=True)
                elif (pv.get("status") or {}).get("phase") != "Released":
                    self.kube.patch(
                        f"/api/v1/persistentvolumes/{md['name']}/status",
                        {"status": {"phase": "Released"}},
                    )

    def _class_is_ours(self, name):
        sc = self.kube.get_or_none(f"/apis/storage.k8s.io/v1/storageclasses/{name}")
        return sc is not None and sc.get("provisioner") == PROVISIONER

    def _bind_pvc(self, pvc, pv_name):
        md, spec = pvc["metadata"], pvc["spec"]
        ns, name = md["namespace"], md["name"]
        size = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        modes = spec.get("accessModes") or ["ReadWriteOnce"]
        directory = self.volume_dir(pv_name)
        os.makedirs(directory, exist_ok=True)
        os.chmod(directory, 0o755)
        pv = self.kube.get_or_none(f"/api/v1/persistentvolumes/{pv_name}")
        if pv is None:
            self.kube.create(
                "/api/v1/persistentvolumes",
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolume",
                    "metadata": {
                        "name": pv_name,
                        "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
                        "labels": {"kf.test/cluster": self.cluster},
                    },
                    "spec": {
                        "capacity": {"storage": size},
                        "accessModes": modes,
                        "persistentVolumeReclaimPolicy": "Delete",
                        "storageClassName": spec.get("storageClassName") or "",
                        "volumeMode": spec.get("volumeMode", "Filesystem"),
                        "hostPath": {"path": directory, "type": "DirectoryOrCreate"},
                        "claimRef": {
                            "apiVersion": "v1",
                            "kind": "PersistentVolumeClaim",
                            "namespace": ns,
                            "name": name,
                            "uid": md["uid"],
                        },
                    },
                },
            )
        self.kube.patch(
            f"/api/v1/persistentvolumes/{pv_name}/status", {"status": {"phase": "Bound"}}
        )
        if not spec.get("volumeName"):
            self.kube.patch(
                f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{name}",
                {
                    "metadata": {
                        "annotations": {
                            "pv.kubernetes.io/bind-completed": "yes",
                            "pv.kubernetes.io/bound-by-controller": "yes",
                            "volume.kubernetes.io/storage-provisioner": PROVISIONER,
                        }
                    },
                    "spec": {"volumeName": pv_name},
                },
            )
        self.kube.patch(
            f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{name}/status",
            {"status": {"phase": "Bound", "accessModes": modes, "capacity": {"storage": size}}},
        )

    # -- namespaces ------------------------------------------------------------------------------
    def _discover(self):
        out = []
        core = self.kube.get("/api/v1")
        for r in core.get("resources", []):
            if r.get("namespaced") and "/" not in r["name"] and "deletecollection" in r["verbs"]:
                out.append(f"/api/v1/namespaces/{{ns}}/{r['name']}")
        for g in self.kube.get("/apis").get("groups", []):
            gv = g["preferredVersion"]["groupVersion"]
            try:
                res = self.kube.get(f"/apis/{gv}")
            except ApiException:
                continue
            for r in res.get("resources", []):
                if (
                    r.get("namespaced")
                    and "/" not in r["name"]
                    and ("deletecollection" in r["verbs"])
                ):
                    out.append(f"/apis/{gv}/namespaces/{{ns}}/{r['name']}")
        return out

    def sync_namespaces(self):
        for ns in self.namespaces.snapshot():
            md = ns["metadata"]
            name = md["name"]
            if md.get("deletionTimestamp"):
                self.ns_done.discard(name)
                self._finalize_namespace(ns)
                continue
            if name in self.ns_done:
                continue
            try:
                self._ensure_ns_defaults(name)
                self.ns_done.add(name)
            except ApiException as exc:
                log.debug("namespace defaults %s: %s", name, exc.reason)

    def _ensure_ns_defaults(self, ns):
        for path, body in (
            (
                f"/api/v1/namespaces/{ns}/serviceaccounts",
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}},
            ),
            (
                f"/api/v1/namespaces/{ns}/configmaps",
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "kube-root-ca.crt"},
                    "data": {"ca.crt": self.cluster_ca},
                }
                if self.cluster_ca
                else None,
            ),
        ):
            if body is None:
                continue
            try:
                self.kube.create(path, body)
            except ApiException as exc:
                if exc.status not in (409, 403):
                    raise

    def _finalize_namespace(self, ns):
        name = ns["metadata"]["name"]
        if "kubernetes" not in ((ns.get("spec") or {}).get("finalizers") or []):
            return
        state = self.ns_cleanup.setdefault(name, {"last": 0.0})
        now = time.monotonic()
        if now - state["last"] > 5:
            state["last"] = now
            if self.resources is None or now - state.get("discovered", 0) > 30:
                self.resources = self._discover()
                state["discovered"] = now
            for tmpl in self.resources:
                query = {"gracePeriodSeconds": "2"} if tmpl.endswith("/pods") else None
                try:
                    self.kube.delete(tmpl.format(ns=name), query=query)
                except ApiException as exc:
                    log.debug("delete %s: %s", tmpl.format(ns=name), exc.reason)
        if any(p["metadata"]["namespace"] == name for p in self.pods.snapshot()):
            return
        if any(p["metadata"]["namespace"] == name for p in self.pvcs.snapshot()):
            return
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name},
            "spec": {"finalizers": [f for f in ns["spec"]["finalizers"] if f != "kubernetes"]},
        }
        try:
            self.kube.put(f"/api/v1/namespaces/{name}/finalize", body)
            self.ns_cleanup.pop(name, None)
        except ApiException as exc:
            if exc.status not in (404, 409):
                log.warning("finalize namespace %s: %s", name, exc.reason)
