"""PVCs with content on the local clusters: create one, find the host directory behind it.

The harness's provisioner backs each PV with a directory under .clusters/volumes, so tests
and the demo fill a source PVC and verify a destination PVC on the host, as a storage
admin would look at the disks.
"""

from __future__ import annotations

import time


def create(api_client, namespace: str, name: str, size: str = "1Gi", modes=("ReadWriteOnce",)):
    from kubernetes import client as k8s

    body = {
        "metadata": {"name": name},
        "spec": {"accessModes": list(modes), "resources": {"requests": {"storage": size}}},
    }
    k8s.CoreV1Api(api_client).create_namespaced_persistent_volume_claim(namespace, body)
    return host_dir(api_client, namespace, name)


def host_dir(api_client, namespace: str, name: str, timeout: float = 60.0) -> str:
    """The host directory of a PVC once it is Bound (bounded wait)."""
    from kubernetes import client as k8s

    core = k8s.CoreV1Api(api_client)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pvc = core.read_namespaced_persistent_volume_claim(name, namespace)
        if pvc.status.phase == "Bound":
            return core.read_persistent_volume(pvc.spec.volume_name).spec.host_path.path
        time.sleep(0.5)
    raise TimeoutError(f"PVC {namespace}/{name} was not Bound within {timeout:.0f} s")
