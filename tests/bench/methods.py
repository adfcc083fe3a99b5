"""The yardsticks of `make bench`, run as Pods on the local clusters over the path our runs take.

Each method is a server Pod on the source cluster (the source PVC mounted read-only) exposed
by a LoadBalancer Service, and a client Pod on the destination cluster that copies into the
destination PVC: the same nodes, pod networks, load-balancer proxy and programs as a
kubeferry run, so the differences are the methods'.

- ``tcp``: the limit of the path: a tar stream over one plain TCP connection (socat).
- ``pv-migrate``: pv-migrate's method, rsync ``-avz`` over ssh to an sshd next to the data.
- ``volsync``: VolSync's rsync-tls mover, rsync ``-aAhHSxz`` through stunnel with a
  pre-shared key (TLS-PSK) to an rsync daemon. VolSync pushes from the source; here the
  client pulls, so that every method crosses the path in the same direction as ours.

A method's data time is its client container's run, from its start to its end as the node
reports them (the same clock as the summary of a kubeferry run).
"""

from __future__ import annotations

import base64
import datetime
import secrets
import subprocess
import tempfile
import time
from pathlib import Path

from clusters.node.testing import wait_for

from . import timing

LABEL = "kf-bench"
CONTAINER = "main"  # the one container of a method's pods
SERVER_PORT = 8000
POD_TIMEOUT = 900  # seconds a client may run (1 GiB over ssh with compression is slow)


def _ssh_keys() -> dict[str, str]:
    """A host key and a client key pair for the ssh method (made per run, never stored)."""
    with tempfile.TemporaryDirectory() as scratch:
        keys = {}
        for name in ("host", "client"):
            path = Path(scratch, name)
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True
            )
            keys[name] = path.read_text()
            keys[name + ".pub"] = Path(str(path) + ".pub").read_text()
    return {
        "host_key": keys["host"],
        "authorized_keys": keys["client.pub"],
        "client_key": keys["client"],
    }


def _psk() -> dict[str, str]:
    return {"psk.txt": "volsync:" + secrets.token_hex(32) + "\n"}


# The scripts read the secret files from /keys and copy them where the programs want them
# (ssh refuses keys that others can read).
TCP = {
    "secret": dict,
    "server": ("tar -C /mnt/source -cf - . | socat -u STDIN TCP-LISTEN:{port},reuseaddr"),
    # socat listens only once the tar stream is there: ready means listening.
    "ready": ["sh", "-c", "ss -Hltn 'sport = :{port}' | grep -q ."],
    "client": "socat -u TCP:{host}:{port} STDOUT | tar -C /mnt/destination -xf -",
}
PV_MIGRATE = {
    "secret": _ssh_keys,
    "server": (
        "mkdir -p /run/sshd /tmp/ssh && cp /keys/host_key /keys/authorized_keys /tmp/ssh/ && "
        "chmod 600 /tmp/ssh/* && exec /usr/sbin/sshd -D -e -p {port} -h /tmp/ssh/host_key "
        "-o AuthorizedKeysFile=/tmp/ssh/authorized_keys -o PermitRootLogin=prohibit-password "
        "-o PasswordAuthentication=no -o UsePAM=no -o StrictModes=no"
    ),
    "ready": None,
    "client": (
        "mkdir -p /tmp/ssh && cp /keys/client_key /tmp/ssh/ && chmod 600 /tmp/ssh/client_key && "
        "exec rsync -avz -e 'ssh -p {port} -i /tmp/ssh/client_key -o StrictHostKeyChecking=no "
        "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR' "
        "root@{host}:/mnt/source/ /mnt/destination/"
    ),
}
VOLSYNC = {
    "secret": _psk,
    "server": (
        "printf '%s\\n' 'port = 8873' 'address = 127.0.0.1' 'use chroot = no' '[data]' "
        "'path = /mnt/source' 'read only = true' 'uid = 0' 'gid = 0' > /tmp/rsyncd.conf && "
        "printf '%s\\n' 'foreground = no' 'pid = /tmp/stunnel.pid' 'syslog = no' '[rsync]' "
        "'ciphers = PSK' 'PSKsecrets = /keys/psk.txt' 'accept = {port}' "
        "'connect = 127.0.0.1:8873' > /tmp/stunnel.conf && stunnel /tmp/stunnel.conf && "
        "exec rsync --daemon --no-detach --config=/tmp/rsyncd.conf"
    ),
    "ready": None,
    "client": (
        "printf '%s\\n' 'foreground = no' 'pid = /tmp/stunnel.pid' 'syslog = no' '[rsync]' "
        "'client = yes' 'ciphers = PSK' 'PSKsecrets = /keys/psk.txt' 'accept = 127.0.0.1:9000' "
        "'connect = {host}:{port}' > /tmp/stunnel.conf && stunnel /tmp/stunnel.conf && "
        "exec rsync -aAhHSxz rsync://127.0.0.1:9000/data/ /mnt/destination/"
    ),
}
METHODS = {"tcp": TCP, "pv-migrate": PV_MIGRATE, "volsync": VOLSYNC}


def _pod(name, namespace, script, claim, mount, read_only, ready, restart="Never"):
    container = {
        "name": CONTAINER,
        "image": "kubeferry-bench",  # the local clusters run host programs: no image is pulled
        "command": ["/bin/sh", "-c", script],
        "volumeMounts": [
            {"name": "data", "mountPath": mount, "readOnly": read_only},
            {"name": "keys", "mountPath": "/keys", "readOnly": True},
        ],
    }
    if ready:
        container["readinessProbe"] = {"exec": {"command": ready}, "periodSeconds": 1}
    else:
        container["readinessProbe"] = {
            "tcpSocket": {"port": SERVER_PORT},
            "periodSeconds": 1,
        }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {LABEL: name}},
        "spec": {
            "restartPolicy": restart,
            "containers": [container],
            "volumes": [
                {
                    "name": "data",
                    "persistentVolumeClaim": {"claimName": claim, "readOnly": read_only},
                },
                {"name": "keys", "secret": {"secretName": name, "defaultMode": 0o400}},
            ],
        },
    }


def _rfc3339(value):
    """A time of the API (the client has already made it a datetime, or left the text)."""
    if isinstance(value, datetime.datetime):
        return value
    return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc
    )


class Method:
    """One run of a yardstick method between the two clusters."""

    def __init__(self, transfer, name):
        from kubernetes import client as k8s

        self.transfer = transfer
        self.name = name
        self.spec = METHODS[name]
        self.core = {side: k8s.CoreV1Api(transfer.clients[side]) for side in transfer.clients}

    def run(self, source_pvc, destination_pvc) -> dict:
        """Copy source_pvc into destination_pvc; returns seconds, exit code and log tail."""
        pod = f"bench-{self.name}"
        began = time.time()  # its containers start after it
        namespaces = self.transfer.namespaces
        data = self.spec["secret"]()
        try:
            for side in ("source", "destination"):
                self.core[side].create_namespaced_secret(
                    namespaces[side],
                    {
                        "metadata": {"name": pod, "labels": {LABEL: pod}},
                        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
                    },
                )
            ready = self.spec["ready"]
            ready = [part.format(port=SERVER_PORT) for part in ready] if ready else None
            self.core["source"].create_namespaced_pod(
                namespaces["source"],
                _pod(
                    pod,
                    namespaces["source"],
                    self.spec["server"].format(port=SERVER_PORT),
                    source_pvc,
                    "/mnt/source",
                    True,
                    ready,
                ),
            )
            self.core["source"].create_namespaced_service(
                namespaces["source"],
                {
                    "metadata": {"name": pod, "labels": {LABEL: pod}},
                    "spec": {
                        "type": "LoadBalancer",
                        "selector": {LABEL: pod},
                        "ports": [{"port": SERVER_PORT, "targetPort": SERVER_PORT}],
                    },
                },
            )
            wait_for(lambda: self._ready(pod), 120, 0.5, f"{pod} ready")
            host = wait_for(lambda: self._address(pod), 120, 0.5, f"an address for Service {pod}")
            client = _pod(
                pod,
                namespaces["destination"],
                self.spec["client"].format(host=host, port=SERVER_PORT),
                destination_pvc,
                "/mnt/destination",
                False,
                None,
            )
            del client["spec"]["containers"][0]["readinessProbe"]
            self.core["destination"].create_namespaced_pod(namespaces["destination"], client)
            state = wait_for(lambda: self._terminated(pod), POD_TIMEOUT, 1, f"{pod} finished")
            seconds = timing.seconds(
                "destination",
                pod,
                CONTAINER,
                began,
                (_rfc3339(state.finished_at) - _rfc3339(state.started_at)).total_seconds(),
            )
            log = self.core["destination"].read_namespaced_pod_log(
                pod, namespaces["destination"], tail_lines=5
            )
            return {"seconds": seconds, "exit_code": state.exit_code, "log_tail": log}
        finally:
            self.remove(pod)

    def _ready(self, pod):
        status = self.core["source"].read_namespaced_pod(pod, self.transfer.namespaces["source"])
        conditions = status.status.conditions or []
        return any(c.type == "Ready" and c.status == "True" for c in conditions)

    def _address(self, pod):
        service = self.core["source"].read_namespaced_service(
            pod, self.transfer.namespaces["source"]
        )
        ingress = (service.status.load_balancer.ingress or []) if service.status else []
        return ingress[0].ip if ingress and ingress[0].ip else None

    def _terminated(self, pod):
        status = self.core["destination"].read_namespaced_pod(
            pod, self.transfer.namespaces["destination"]
        )
        for container in status.status.container_statuses or []:
            if container.state and container.state.terminated:
                return container.state.terminated
        return None

    def remove(self, pod):
        """Delete the method's objects on both clusters and wait until its pods are gone."""
        from kubernetes.client.exceptions import ApiException

        for side, core in self.core.items():
            namespace = self.transfer.namespaces[side]
            for delete in (
                core.delete_namespaced_pod,
                core.delete_namespaced_service,
                core.delete_namespaced_secret,
            ):
                try:
                    delete(pod, namespace, grace_period_seconds=0)
                except ApiException as error:
                    if error.status != 404:
                        raise
        for side, core in self.core.items():
            namespace = self.transfer.namespaces[side]
            wait_for(
                lambda core=core, namespace=namespace: (
                    not core.list_namespaced_pod(namespace, label_selector=f"{LABEL}={pod}").items
                ),
                60,
                0.5,
                f"{pod} deleted on {side}",
            )
