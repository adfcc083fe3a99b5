"""A very small "kubelet" for the data-plane tests: runs rendered containers for real.

Each pod gets its own network namespace (two pods are joined by a veth pair with addresses
from 198.18.0.0/15); each container runs its `command`/`args` with the host's programs in
its own mount namespace, where every volumeMount appears at its mountPath (ConfigMaps and
Secrets materialised as files with their modes, emptyDirs and "PVCs" as host directories,
`readOnly` honoured), as the user and with the capabilities of its securityContext.

Everything it creates is recorded and removed by `Cluster.cleanup()`: processes are stopped
by their own process group id, namespaces deleted by name.
"""

import base64
import os
import secrets
import shlex
import signal
import subprocess
import time

SETPRIV = "setpriv"
NSENTER = "nsenter"


def run(argv, check=True, **kwargs):
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    kwargs.setdefault("timeout", 60)
    result = subprocess.run(argv, check=False, **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError(
            "{0} failed ({1}): {2}".format(shlex.join(argv), result.returncode, result.stderr)
        )
    return result


class Pod:
    """A network namespace with an address, and the volumes of one pod."""

    def __init__(self, cluster, name, netns, address, fs_group=None):
        self.cluster = cluster
        self.name = name
        self.netns = netns
        self.address = address
        self.fs_group = fs_group
        self.volumes = {}
        self.containers = {}
        self.workdir = os.path.join(cluster.workdir, name)
        os.makedirs(self.workdir)

    # -- volumes -----------------------------------------------------------------------

    def add_volumes(self, volumes, objects, host_paths=None):
        """Materialise pod volumes: configMap/secret from objects, emptyDir, PVC host paths."""
        host_paths = host_paths or {}
        by_kind_name = dict(((o["kind"], o["metadata"]["name"]), o) for o in objects)
        for volume in volumes:
            name = volume["name"]
            if "persistentVolumeClaim" in volume:
                self.volumes[name] = host_paths[name]
            elif "emptyDir" in volume:
                path = os.path.join(self.workdir, "empty-" + name)
                os.makedirs(path)
                os.chmod(path, 0o777)
                self.volumes[name] = path
            elif "configMap" in volume:
                obj = by_kind_name[("ConfigMap", volume["configMap"]["name"])]
                files = dict((k, v.encode()) for k, v in (obj.get("data") or {}).items())
                mode = volume["configMap"].get("defaultMode", 0o644)
                self.volumes[name] = self._write_files(name, files, mode)
            elif "secret" in volume:
                obj = by_kind_name[("Secret", volume["secret"]["secretName"])]
                files = dict((k, base64.b64decode(v)) for k, v in (obj.get("data") or {}).items())
                files.update((k, v.encode()) for k, v in (obj.get("stringData") or {}).items())
                mode = volume["secret"].get("defaultMode", 0o644)
                self.volumes[name] = self._write_files(name, files, mode)
            else:
                raise ValueError("unsupported volume {0}".format(volume))

    def _write_files(self, name, files, mode):
        path = os.path.join(self.workdir, "vol-" + name)
        os.makedirs(path)
        os.chmod(path, 0o755)
        for key, content in files.items():
            file_path = os.path.join(path, key)
            with open(file_path, "wb") as handle:
                handle.write(content)
            # As the kubelet does: root-owned, group fsGroup when the pod has one.
            os.chown(file_path, 0, self.fs_group if self.fs_group is not None else 0)
            os.chmod(file_path, mode)
        return path

    # -- containers --------------------------------------------------------------------

    def start(self, container):
        proc = Container(self, container)
        self.containers[container["name"]] = proc
        self.cluster.processes.append(proc)
        proc.start()
        return proc


class Container:
    def __init__(self, pod, spec):
        self.pod = pod
        self.spec = spec
        self.name = spec["name"]
        self.popen = None
        self.log_path = os.path.join(pod.workdir, "log-" + self.name)

    def privileges(self):
        """setpriv options for the container's securityContext (as the runtime applies it)."""
        context = self.spec.get("securityContext") or {}
        uid = int(context.get("runAsUser", 0))
        gid = int(context.get("runAsGroup", uid))
        groups = [str(self.pod.fs_group)] if self.pod.fs_group is not None else []
        caps = context.get("capabilities") or {}
        assert caps.get("drop") == ["ALL"], "containers must drop all capabilities"
        added = ",".join("+" + cap.lower() for cap in caps.get("add") or [])
        bounding = "-all" + ("," + added if added else "")
        argv = [
            SETPRIV,
            "--reuid={0}".format(uid),
            "--regid={0}".format(gid),
            "--groups={0}".format(",".join(groups)) if groups else "--clear-groups",
            "--bounding-set={0}".format(bounding),
            "--inh-caps=-all",
        ]
        if context.get("allowPrivilegeEscalation") is False:
            argv.append("--no-new-privs")
        return argv

    def mount_script(self):
        """Shell lines that make every volumeMount appear at its mountPath."""
        lines = ["set -e"]
        overlaid = {}
        mounts = sorted(self.spec.get("volumeMounts") or [], key=lambda m: m["mountPath"])
        for index, mount in enumerate(mounts):
            target = mount["mountPath"]
            source = self.pod.volumes[mount["name"]]
            if not os.path.exists(target):
                ancestor = os.path.dirname(target)
                while not os.path.exists(ancestor):
                    ancestor = os.path.dirname(ancestor)
                assert ancestor != "/", "refusing to overlay / for {0}".format(target)
                if ancestor not in overlaid and not any(
                    ancestor.startswith(done + "/") for done in overlaid
                ):
                    # A writable view of the ancestor in this namespace only, so that
                    # mount points can be made without touching the host's directories.
                    layer = os.path.join(self.pod.workdir, "ovl-{0}-{1}".format(self.name, index))
                    os.makedirs(os.path.join(layer, "upper"))
                    os.makedirs(os.path.join(layer, "work"))
                    overlaid[ancestor] = layer
                    lines.append(
                        "mount -t overlay overlay -o lowerdir={0},upperdir={1}/upper,"
                        "workdir={1}/work {0}".format(shlex.quote(ancestor), shlex.quote(layer))
                    )
                lines.append("mkdir -p {0}".format(shlex.quote(target)))
            lines.append("mount --bind {0} {1}".format(shlex.quote(source), shlex.quote(target)))
            if mount.get("readOnly"):
                lines.append("mount -o remount,bind,ro {0}".format(shlex.quote(target)))
        lines.append('exec "$@"')
        return "\n".join(lines)

    def start(self):
        argv = list(self.spec.get("command") or []) + list(self.spec.get("args") or [])
        assert argv, "container {0} has no command".format(self.name)
        launcher = [
            "ip", "netns", "exec", self.pod.netns,
            "unshare", "--mount", "--propagation", "private", "--",
            "sh", "-c", self.mount_script(), "container",
        ]  # fmt: skip
        with open(self.log_path, "wb") as log:
            self.popen = subprocess.Popen(
                launcher + self.privileges() + ["--"] + argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                     "HOME": "/nonexistent"},
            )  # fmt: skip

    def log(self):
        with open(self.log_path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")

    def exec(self, argv, timeout=30, as_container=True):
        """Run argv inside this container's mount and network namespaces (like kubectl exec)."""
        prefix = [NSENTER, "-t", str(self.popen.pid), "-m", "-n", "--"]
        if as_container:
            prefix += self.privileges() + ["--"]
        return run(prefix + list(argv), check=False, timeout=timeout)

    def ready(self):
        probe = self.spec.get("readinessProbe")
        if not probe:
            return True
        if "exec" in probe:
            return self.exec(probe["exec"]["command"], timeout=10).returncode == 0
        if "tcpSocket" in probe:
            port = probe["tcpSocket"]["port"]
            if isinstance(port, str):
                port = next(p["containerPort"] for p in self.spec["ports"] if p["name"] == port)
            # The kubelet dials the pod IP, not 127.0.0.1.
            check = "exec 3<>/dev/tcp/{0}/{1}".format(self.pod.address, int(port))
            result = run(
                ["ip", "netns", "exec", self.pod.netns, "timeout", "3", "bash", "-c", check],
                check=False,
            )
            return result.returncode == 0
        raise ValueError("unsupported probe {0}".format(probe))

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(
                    "{0} exited with {1}:\n{2}".format(self.name, self.popen.returncode, self.log())
                )
            if self.ready():
                return
            time.sleep(0.3)
        raise TimeoutError("{0} not ready after {1}s:\n{2}".format(self.name, timeout, self.log()))

    def wait(self, timeout):
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(
                "{0} still running after {1}s:\n{2}".format(self.name, timeout, self.log())
            ) from None

    def stop(self):
        if self.popen is None or self.popen.poll() is not None:
            return
        for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.popen.wait(timeout=grace)
                return
            except subprocess.TimeoutExpired:
                continue


class Cluster:
    """Two pods (server, client) in their own network namespaces, joined by a veth pair."""

    def __init__(self, workdir, subnet=None):
        self.workdir = workdir
        self.processes = []
        self.netns = []
        tag = secrets.token_hex(3)
        subnet = secrets.randbelow(256) if subnet is None else subnet
        self.server_address = "198.18.{0}.1".format(subnet)
        self.client_address = "198.18.{0}.2".format(subnet)
        self.server_ns = "kfdp-{0}-s".format(tag)
        self.client_ns = "kfdp-{0}-c".format(tag)
        try:
            self._network(tag)
        except Exception:
            self.cleanup()
            raise

    def _network(self, tag):
        for name in (self.server_ns, self.client_ns):
            run(["ip", "netns", "add", name])
            self.netns.append(name)
            run(["ip", "-n", name, "link", "set", "lo", "up"])
        veth_s, veth_c = "kf{0}s".format(tag), "kf{0}c".format(tag)
        run(["ip", "link", "add", veth_s, "netns", self.server_ns,
             "type", "veth", "peer", "name", veth_c, "netns", self.client_ns])  # fmt: skip
        for ns, dev, address in (
            (self.server_ns, veth_s, self.server_address),
            (self.client_ns, veth_c, self.client_address),
        ):
            run(["ip", "-n", ns, "addr", "add", address + "/30", "dev", dev])
            run(["ip", "-n", ns, "link", "set", dev, "up"])

    def pod(self, side, name, fs_group=None):
        netns, address = (
            (self.server_ns, self.server_address)
            if side == "server"
            else (self.client_ns, self.client_address)
        )
        return Pod(self, name, netns, address, fs_group)

    def run_in_netns(self, side, argv, timeout=60):
        """A host program in one pod's network namespace (a foreign client, a probe)."""
        netns = self.server_ns if side == "server" else self.client_ns
        return run(["ip", "netns", "exec", netns] + list(argv), check=False, timeout=timeout)

    def cleanup(self):
        for proc in reversed(self.processes):
            proc.stop()
        for name in self.netns:
            run(["ip", "netns", "del", name], check=False)
        self.netns = []
