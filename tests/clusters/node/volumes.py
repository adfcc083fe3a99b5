"""Materialise a Pod's volumes and environment on the host, as a kubelet's volume manager would."""

import base64
import os
import re
import shutil

from kubernetes.client.exceptions import ApiException


class VolumeError(Exception):
    """A volume cannot be set up yet (the pod stays ContainerCreating)."""


class ConfigError(Exception):
    """A container's configuration cannot be built (CreateContainerConfigError)."""


class PodFailure(Exception):
    """The pod cannot run on this node at all (phase Failed with reason)."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason
        self.message = message


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(value, env):
    """Kubernetes $(VAR) expansion; $$ escapes; unknown references stay as they are."""

    def repl(m):
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)

    return _VAR.sub(repl, value)


def field_ref(pod, path):
    md = pod["metadata"]
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if m:
        return (md.get(m.group(1)) or {}).get(m.group(2), "")
    simple = {
        "metadata.name": md.get("name", ""),
        "metadata.namespace": md.get("namespace", ""),
        "metadata.uid": md.get("uid", ""),
        "spec.nodeName": pod["spec"].get("nodeName", ""),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
        "status.podIP": (pod.get("status") or {}).get("podIP", ""),
        "status.hostIP": (pod.get("status") or {}).get("hostIP", ""),
    }
    if path in simple:
        return simple[path]
    if path in ("metadata.labels", "metadata.annotations"):
        d = md.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(d.items()))
    raise ConfigError(f"unsupported fieldRef {path}")


def _safe_join(base, rel):
    path = os.path.normpath(os.path.join(base, rel))
    if not (path == base or path.startswith(base + os.sep)):
        raise PodFailure("InvalidVolume", f"path {rel!r} escapes its volume")
    return path


class Materialiser:
    """Builds the host side of every volume of one pod under `pod_dir`/volumes."""

    def __init__(self, kube, pod, pod_dir, cluster_ca=None):
        self.kube = kube
        self.pod = pod
        self.ns = pod["metadata"]["namespace"]
        self.vol_dir = os.path.join(pod_dir, "volumes")
        self.cluster_ca = cluster_ca
        sc = pod["spec"].get("securityContext") or {}
        self.fs_group = sc.get("fsGroup")

    # -- object access -------------------------------------------------------------------
    def _get(self, kind, name, optional):
        path = f"/api/v1/namespaces/{self.ns}/{kind}/{name}"
        try:
            obj = self.kube.get_or_none(path)
        except ApiException as exc:
            raise VolumeError(f"cannot read {kind[:-1]} {name}: {exc.reason}") from exc
        if obj is None and not optional:
            raise VolumeError(f'{kind[:-1]} "{name}" not found')
        return obj

    def config_data(self, kind, name, optional=False):
        """Key -> bytes for a configmap or secret (None if optional and missing)."""
        obj = self._get(kind, name, optional)
        if obj is None:
            return None
        out = {}
        if kind == "secrets":
            for k, v in (obj.get("data") or {}).items():
                out[k] = base64.b64decode(v)
            for k, v in (obj.get("stringData") or {}).items():
                out[k] = v.encode()
        else:
            for k, v in (obj.get("data") or {}).items():
                out[k] = v.encode()
            for k, v in (obj.get("binaryData") or {}).items():
                out[k] = base64.b64decode(v)
        return out

    # -- writing -------------------------------------------------------------------------
    def _write_files(self, target, files, default_mode):
        """files: list of (relpath, bytes, mode or None)."""
        os.makedirs(target, exist_ok=True)
        for rel, data, mode in files:
            path = _safe_join(target, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as fh:
                fh.write(data)
            final = mode if mode is not None else default_mode
            if self.fs_group is not None:
                os.chown(path, -1, self.fs_group)
                final |= 0o440
            os.chmod(path, final)
        if self.fs_group is not None:
            for root, dirs, _files in os.walk(target):
                for d in [root, *(os.path.join(root, x) for x in dirs)]:
                    os.chown(d, -1, self.fs_group)
                    os.chmod(d, 0o2755)

    def _items(self, data, items, what, optional):
        if items:
            out = []
            for it in items:
                if it["key"] not in data:
                    if optional:
                        continue
                    raise VolumeError(f"{what}: key {it['key']!r} not found")
                out.append((it.get("path", it["key"]), data[it["key"]], it.get("mode")))
            return out
        return [(k, v, None) for k, v in sorted(data.items())]

    def _downward_files(self, items):
        out = []
        for it in items or []:
            if "fieldRef" in it:
                value = field_ref(self.pod, it["fieldRef"]["fieldPath"])
            elif "resourceFieldRef" in it:
                value = "0"
            else:
                continue
            out.append((it["path"], value.encode(), it.get("mode")))
        return out

    def _sa_token(self, src):
        sa = self.pod["spec"].get("serviceAccountName") or "default"
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": src.get("expirationSeconds", 3600),
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": self.pod["metadata"]["name"],
                    "uid": self.pod["metadata"]["uid"],
                },
            },
        }
        if src.get("audience"):
            body["spec"]["audiences"] = [src["audience"]]
        try:
            resp = self.kube.create(
                f"/api/v1/namespaces/{self.ns}/serviceaccounts/{sa}/token", body
            )
        except ApiException as exc:
            raise VolumeError(
                f"cannot request a token for serviceaccount {sa}: {exc.reason}"
            ) from exc
        return resp["status"]["token"].encode()

    def _projected(self, vol):
        files = []
        for src in vol.get("sources") or []:
            if "configMap" in src or "secret" in src:
                kind = "configmaps" if "configMap" in src else "secrets"
                ref = src.get("configMap") or src.get("secret")
                optional = bool(ref.get("optional"))
                data = self.config_data(kind, ref["name"], optional)
                if data is None:
                    continue
                files += self._items(data, ref.get("items"), f"{kind} {ref['name']}", optional)
            elif "downwardAPI" in src:
                files += self._downward_files(src["downwardAPI"].get("items"))
            elif "serviceAccountToken" in src:
                st = src["serviceAccountToken"]
                files.append((st["path"], self._sa_token(st), None))
            else:
                raise PodFailure(
                    "UnsupportedVolume",
                    f"projected volume {vol.get('name')}: source {sorted(src)} is not supported "
                    "by the kf test node agent",
                )
        return files

    def _pvc_dir(self, claim):
        pvc = self._get("persistentvolumeclaims", claim, False)
        if (pvc.get("status") or {}).get("phase") != "Bound" or not pvc["spec"].get("volumeName"):
            raise VolumeError(f'persistentvolumeclaim "{claim}" is not bound')
        pv = self.kube.get_or_none(f"/api/v1/persistentvolumes/{pvc['spec']['volumeName']}")
        if pv is None:
            raise VolumeError(f"persistentvolume {pvc['spec']['volumeName']} not found")
        spec = pv["spec"]
        path = (spec.get("hostPath") or spec.get("local") or {}).get("path")
        if not path:
            raise PodFailure(
                "UnsupportedVolume",
                f"persistentvolume {pv['metadata']['name']} has no hostPath/local path",
            )
        os.makedirs(path, exist_ok=True)
        return path

    def _apply_fs_group_tree(self, path):
        """What kubelet does to a writable volume with fsGroup: group-own it, g+rw, setgid dirs."""
        if self.fs_group is None:
            return
        sc = self.pod["spec"].get("securityContext") or {}
        if sc.get("fsGroupChangePolicy") == "OnRootMismatch":
            st = os.stat(path)
            if st.st_gid == self.fs_group and st.st_mode & 0o2070 == 0o2070:
                return  # kubelet skips the walk when the volume root already matches
        for root, dirs, files in os.walk(path):
            for name in [root, *(os.path.join(root, d) for d in dirs)]:
                st = os.lstat(name)
                os.lchown(name, -1, self.fs_group)
                os.chmod(name, (st.st_mode & 0o7777) | 0o2070)
            for f in files:
                p = os.path.join(root, f)
                st = os.lstat(p)
                if os.path.islink(p):
                    os.lchown(p, -1, self.fs_group)
                    continue
                os.lchown(p, -1, self.fs_group)
                os.chmod(p, (st.st_mode & 0o7777) | 0o060)

    def prepare(self):
        """Return {volume name: (host path, read_only)}; raises VolumeError/PodFailure."""
        out = {}
        os.makedirs(self.vol_dir, exist_ok=True)
        for vol in self.pod["spec"].get("volumes") or []:
            name = vol["name"]
            target = os.path.join(self.vol_dir, name)
            if "emptyDir" in vol:
                os.makedirs(target, exist_ok=True)
                os.chmod(target, 0o777)
                if self.fs_group is not None:
                    os.chown(target, -1, self.fs_group)
                    os.chmod(target, 0o2777)
                out[name] = (target, False)
            elif "configMap" in vol or "secret" in vol:
                kind = "configmaps" if "configMap" in vol else "secrets"
                ref = vol.get("configMap") or vol.get("secret")
                obj_name = ref.get("name") or ref.get("secretName")
                optional = bool(ref.get("optional"))
                data = self.config_data(kind, obj_name, optional) or {}
                files = self._items(data, ref.get("items"), f"{kind} {obj_name}", optional)
                if os.path.isdir(target):
                    shutil.rmtree(target)
                self._write_files(target, files, ref.get("defaultMode", 0o644))
                out[name] = (target, True)
            elif "projected" in vol:
                files = self._projected(vol["projected"])
                if os.path.isdir(target):
                    shutil.rmtree(target)
                self._write_files(target, files, vol["projected"].get("defaultMode", 0o644))
                out[name] = (target, True)
            elif "downwardAPI" in vol:
                files = self._downward_files(vol["downwardAPI"].get("items"))
                if os.path.isdir(target):
                    shutil.rmtree(target)
                self._write_files(target, files, vol["downwardAPI"].get("defaultMode", 0o644))
                out[name] = (target, True)
            elif "persistentVolumeClaim" in vol:
                src = vol["persistentVolumeClaim"]
                path = self._pvc_dir(src["claimName"])
                if not src.get("readOnly"):  # kubelet never changes a read-only volume
                    self._apply_fs_group_tree(path)
                out[name] = (path, bool(src.get("readOnly")))
            elif "hostPath" in vol:
                hp = vol["hostPath"]
                if hp.get("type") in ("DirectoryOrCreate",) and not os.path.exists(hp["path"]):
                    os.makedirs(hp["path"], exist_ok=True)
                if not os.path.exists(hp["path"]):
                    raise VolumeError(f"hostPath {hp['path']} does not exist")
                out[name] = (hp["path"], False)
            else:
                kinds = sorted(k for k in vol if k != "name")
                raise PodFailure(
                    "UnsupportedVolume",
                    f"volume {name}: type {kinds} is not supported by the kf test node agent",
                )
        return out

    # -- environment ---------------------------------------------------------------------
    def env(self, container):
        env = {}
        for src in container.get("envFrom") or []:
            prefix = src.get("prefix", "")
            ref = src.get("configMapRef") or src.get("secretRef")
            kind = "configmaps" if "configMapRef" in src else "secrets"
            try:
                data = self.config_data(kind, ref["name"], bool(ref.get("optional")))
            except VolumeError as exc:
                raise ConfigError(str(exc)) from exc
            for k, v in (data or {}).items():
                env[prefix + k] = v.decode(errors="replace")
        for item in container.get("env") or []:
            name = item["name"]
            if "valueFrom" not in item:
                env[name] = expand(item.get("value", ""), env)
                continue
            vf = item["valueFrom"]
            if "secretKeyRef" in vf or "configMapKeyRef" in vf:
                kind = "secrets" if "secretKeyRef" in vf else "configmaps"
                ref = vf.get("secretKeyRef") or vf.get("configMapKeyRef")
                optional = bool(ref.get("optional"))
                try:
                    data = self.config_data(kind, ref["name"], optional)
                except VolumeError as exc:
                    raise ConfigError(str(exc)) from exc
                if data is None or ref["key"] not in data:
                    if optional:
                        continue
                    raise ConfigError(
                        f"couldn't find key {ref['key']} in {kind[:-1]} {ref['name']}"
                    )
                env[name] = data[ref["key"]].decode(errors="replace")
            elif "fieldRef" in vf:
                env[name] = field_ref(self.pod, vf["fieldRef"]["fieldPath"])
            elif "resourceFieldRef" in vf:
                env[name] = "0"
        return env
