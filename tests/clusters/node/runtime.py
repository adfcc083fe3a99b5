"""One Pod on the node: network namespace, volumes, container processes, probes and status.

Each PodRunner is a thread owning one pod from binding to deletion. Container processes are
started through ``launcher.py`` (see there for the namespaces it makes).
"""

import hashlib
import http.client
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

from kubernetes.client.exceptions import ApiException

from ..network import layout
from .kube import STRATEGIC, now_rfc3339
from .volumes import ConfigError, Materialiser, PodFailure, VolumeError, expand

log = logging.getLogger(__name__)

LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "launcher.py")
KILL_ANNOTATION = "kf.test/kill-container"
# Fault knob: an image tagged kf-test-without-<program> lacks that program (stands in for an
# image built without it); its container's root has no such file in any PATH directory.
WITHOUT_TAG = ":kf-test-without-"
PROGRAM_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


def missing_programs(image):
    """The paths an image of the kf-test-without-<program> knob does not have."""
    if WITHOUT_TAG not in (image or ""):
        return []
    program = image.rsplit(WITHOUT_TAG, 1)[1]
    return [os.path.join(directory, program) for directory in PROGRAM_DIRS]


MAX_TERM_MESSAGE = 4096
# One JSON line per ended container run, with start and end at the node clock's full
# resolution (the API's times are whole seconds, as from a real kubelet; a container
# runtime keeps nanoseconds). The benchmark reads it: tests/bench/timing.py.
CONTAINER_TIMES = os.path.join("logs", "container-times.jsonl")
# What containerd grants a non-privileged container by default.
RUNTIME_DEFAULT_CAPABILITIES = (
    "CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID SETFCAP SETPCAP "
    "NET_BIND_SERVICE SYS_CHROOT KILL AUDIT_WRITE"
).split()


def pod_key(pod):
    md = pod["metadata"]
    return f"{md['namespace']}/{md['name']}"


class IPAllocator:
    def __init__(self, cluster):
        self.free = layout.pod_addresses(cluster)
        self.lock = threading.Lock()
        self.used = set()
        self.next = 0

    def take(self):
        # Round robin: a just-released address is reused last, so no stale neighbour entry
        # in kf-world points a new pod's IP at a deleted pod's MAC.
        with self.lock:
            n = len(self.free)
            for i in range(n):
                ip = self.free[(self.next + i) % n]
                if ip not in self.used:
                    self.used.add(ip)
                    self.next = (self.next + i + 1) % n
                    return ip
        raise PodFailure("OutOfAddresses", "no free pod IP on this node")

    def release(self, ip):
        with self.lock:
            self.used.discard(ip)


class Container:
    def __init__(self, spec, init=False):
        self.spec = spec
        self.name = spec["name"]
        self.init = init
        self.proc = None
        self.restart_count = 0
        self.state = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state = {}
        self.ready = False
        self.started_at = None
        self.started_time = None  # time.time() of the start, for CONTAINER_TIMES
        self.backoff_until = 0.0
        self.result_file = None
        self.term_file = None
        self.init_pid_file = None
        self.uid = 0
        self.gid = 0
        self.probe_next = 0.0
        self.probe_ok = 0
        self.probe_fail = 0
        self.container_id = ""

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def terminated(self):
        return "terminated" in self.state

    def exit_code(self):
        return self.state.get("terminated", {}).get("exitCode")

    def init_pid(self):
        try:
            with open(self.init_pid_file) as fh:
                return int(fh.read().strip())
        except (OSError, ValueError, TypeError):
            return None


class PodRunner(threading.Thread):
    def __init__(self, agent, pod):
        super().__init__(daemon=True, name=f"pod:{pod_key(pod)}")
        self.agent = agent
        self.kube = agent.kube
        self.pod = pod
        md = pod["metadata"]
        self.uid = md["uid"]
        self.ns, self.name = md["namespace"], md["name"]
        short = hashlib.sha256(self.uid.encode()).hexdigest()[:8]
        self.netns = f"{layout.POD_NETNS_PREFIX}{agent.cluster}-{short}"
        self.veth = f"kfv{short}"
        self.pod_dir = os.path.join(agent.state_dir, "node", agent.cluster, "pods", self.uid)
        self.run_dir = os.path.join(agent.state_dir, "run", "pods", agent.cluster)
        self.log_dir = os.path.join(
            agent.state_dir, "logs", "pods", f"{self.ns}_{self.name}_{self.uid}"
        )
        self.ip = None
        self.wake = threading.Event()
        self.lock = threading.Lock()
        self.stop_kind = None  # None | "agent" (stop, keep API object) | "delete"
        self.mounts = {}
        self.env_cache = {}
        self.start_time = now_rfc3339()
        self.started_mono = time.monotonic()
        self.runner_started = time.time()  # for CONTAINER_TIMES: when this node took the pod
        self.initialized = False
        self.phase = "Pending"
        self.pod_reason = None
        self.pod_message = None
        self.last_status = None
        self.pending_message = None
        self.killed_by_knob = set()
        self.done = threading.Event()
        spec = pod["spec"]
        self.restart_policy = spec.get("restartPolicy", "Always")
        self.init_containers = [Container(c, init=True) for c in spec.get("initContainers") or []]
        self.containers = [Container(c) for c in spec.get("containers") or []]

    # -- interface for the agent -------------------------------------------------------------
    def update(self, pod):
        with self.lock:
            self.pod = pod
        if pod["metadata"].get("deletionTimestamp") and self.stop_kind is None:
            self.stop_kind = "delete"
        self.wake.set()

    def stop(self):
        if self.stop_kind is None:
            self.stop_kind = "agent"
        self.wake.set()

    def container_pids(self):
        return {c.name: c.proc.pid for c in self.all_containers() if c.running}

    def all_containers(self):
        return self.init_containers + self.containers

    # -- thread body ---------------------------------------------------------------------------
    def run(self):
        try:
            self._run()
        except Exception:  # noqa: BLE001 - a crashing runner must not leave processes behind
            log.exception("pod %s: runner crashed", pod_key(self.pod))
            self._kill_all(grace=0)
            self._teardown_network()
        finally:
            self.done.set()

    def _run(self):
        os.makedirs(self.pod_dir, exist_ok=True)
        os.makedirs(self.run_dir, exist_ok=True)
        os.makedirs(self.log_dir, exist_ok=True)
        prepared = False
        while self.stop_kind is None:
            if not prepared:
                prepared = self._prepare()  # None: failed for good (phase Failed)
            if prepared:
                self._tick()
            self._publish()
            if prepared is None or self.phase in ("Succeeded", "Failed"):
                self._teardown_network()
                break
            self.wake.wait(0.25 if prepared else 1.0)
            self.wake.clear()
        while self.stop_kind is None:  # terminal: wait for deletion or agent stop
            self.wake.wait(5)
            self.wake.clear()
        if self.stop_kind == "delete":
            grace = self.pod["metadata"].get("deletionGracePeriodSeconds")
            self._kill_all(grace=30 if grace is None else grace)
            self._teardown_network()
            shutil.rmtree(self.pod_dir, ignore_errors=True)
            shutil.rmtree(self.log_dir, ignore_errors=True)
            try:
                self.kube.delete(
                    f"/api/v1/namespaces/{self.ns}/pods/{self.name}",
                    body={"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}},
                )
            except ApiException as exc:
                if exc.status not in (404, 409):
                    log.warning("pod %s: final delete failed: %s", pod_key(self.pod), exc.reason)
        else:
            self._kill_all(grace=2)
            self._teardown_network()

    # -- preparation -----------------------------------------------------------------------------
    def _prepare(self):
        """True when volumes and network are ready, False to retry, None when the pod failed."""
        try:
            mat = Materialiser(self.kube, self.pod, self.pod_dir)
            self.mounts = mat.prepare()
            self.materialiser = mat
        except VolumeError as exc:
            self._set_waiting_all("ContainerCreating", f"MountVolume.SetUp failed: {exc}")
            return False
        except PodFailure as exc:
            self._fail_pod(exc.reason, exc.message)
            return None
        try:
            self._setup_network()
            # The NetworkPolicies that select the pod, before any of its containers listens.
            enforcer = getattr(self.agent, "netpol", None)
            if enforcer is not None:
                enforcer.enforce(self, strict=True)
        except (RuntimeError, PodFailure) as exc:
            self._fail_pod("NetworkSetupFailed", str(exc))
            return None
        self.pending_message = None
        return True

    def _set_waiting_all(self, reason, message):
        self.pending_message = (reason, message)
        for c in self.all_containers():
            if not c.running and not c.terminated:
                c.state = {"waiting": {"reason": reason, "message": message}}

    def _fail_pod(self, reason, message):
        self.phase = "Failed"
        self.pod_reason, self.pod_message = reason, message
        for c in self.all_containers():
            if not c.terminated and not c.running:
                c.state = {"waiting": {"reason": reason, "message": message}}

    def _setup_network(self):
        cfg = layout.CLUSTERS[self.agent.cluster]
        self.ip = self.agent.ips.take()
        prefix = cfg["subnet"].split("/")[1]
        layout.run(["ip", "netns", "del", self.netns], check=False)
        layout.run(["ip", "link", "del", self.veth], check=False)
        layout.run(["ip", "netns", "add", self.netns])
        batch = "\n".join(
            [
                f"link add {self.veth} type veth peer name eth0 netns {self.netns}",
                f"link set {self.veth} master {cfg['bridge']} up",
            ]
        )
        subprocess.run(
            ["ip", "-batch", "-"], input=batch, text=True, check=True, capture_output=True
        )
        inner = "\n".join(
            [
                "link set lo up",
                f"addr add {self.ip}/{prefix} dev eth0",
                "link set eth0 up",
                f"route add default via {cfg['gateway']}",
            ]
        )
        proc = subprocess.run(
            ["ip", "-n", self.netns, "-batch", "-"],
            input=inner,
            text=True,
            capture_output=True,
            check=False,
        )
        if proc.returncode:
            raise RuntimeError(f"pod network setup failed: {proc.stderr.strip()}")

    def _teardown_network(self):
        if self.ip is None:
            return
        layout.run(["ip", "netns", "del", self.netns], check=False)
        layout.run(["ip", "link", "del", self.veth], check=False)
        bridge = layout.CLUSTERS[self.agent.cluster]["bridge"]
        layout.run(["ip", "neigh", "del", self.ip, "dev", bridge], check=False)
        self.agent.ips.release(self.ip)
        self.ip_released = self.ip
        self.ip = None

    # -- containers --------------------------------------------------------------------------
    def _ids(self, c):
        pod_sc = self.pod["spec"].get("securityContext") or {}
        sc = c.spec.get("securityContext") or {}
        uid = sc.get("runAsUser", pod_sc.get("runAsUser", 0))
        gid = sc.get("runAsGroup", pod_sc.get("runAsGroup", 0))
        groups = list(pod_sc.get("supplementalGroups") or [])
        if pod_sc.get("fsGroup") is not None:
            groups.append(pod_sc["fsGroup"])
        non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        if non_root and uid == 0:
            raise ConfigError("container has runAsNonRoot and image will run as root")
        return uid, gid, sorted(set(groups))

    @staticmethod
    def _capabilities(c):
        """Capability names the container keeps (None: privileged, all of them)."""
        sc = c.spec.get("securityContext") or {}
        if sc.get("privileged"):
            return None
        caps = set(RUNTIME_DEFAULT_CAPABILITIES)
        spec = sc.get("capabilities") or {}
        drops = {x.upper().removeprefix("CAP_") for x in spec.get("drop") or []}
        caps = set() if "ALL" in drops else caps - drops
        caps |= {x.upper().removeprefix("CAP_") for x in spec.get("add") or []}
        if "ALL" in caps:
            return None
        return sorted(caps)

    def _start(self, c):
        try:
            uid, gid, groups = self._ids(c)
            env = self.materialiser.env(c.spec)
        except ConfigError as exc:
            c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}}
            return False
        env.setdefault("HOSTNAME", self.name)
        env.setdefault("HOME", "/root" if uid == 0 else "/")
        command = [expand(x, env) for x in (c.spec.get("command") or [])]
        command += [expand(x, env) for x in (c.spec.get("args") or [])]
        n = c.restart_count
        base = os.path.join(self.pod_dir, "containers", f"{c.name}-{n}")
        os.makedirs(base, exist_ok=True)
        c.result_file = os.path.join(base, "result")
        c.term_file = os.path.join(base, "termination-log")
        c.init_pid_file = os.path.join(base, "init.pid")
        for f in (c.result_file, c.init_pid_file):
            if os.path.exists(f):
                os.unlink(f)
        with open(c.term_file, "w"):
            pass
        os.chown(c.term_file, uid, gid)
        os.chmod(c.term_file, 0o666)
        rootfs = os.path.join(self.agent.state_dir, "node", "rootfs")
        os.makedirs(rootfs, exist_ok=True)
        mounts = []
        for m in c.spec.get("volumeMounts") or []:
            if m["name"] not in self.mounts:
                c.state = {
                    "waiting": {
                        "reason": "CreateContainerConfigError",
                        "message": f"volume {m['name']} not found",
                    }
                }
                return False
            src, vol_ro = self.mounts[m["name"]]
            if m.get("subPath"):
                src = os.path.join(src, m["subPath"])
                if not os.path.exists(src):
                    os.makedirs(src, exist_ok=True)
            mounts.append(
                {
                    "source": src,
                    "target": m["mountPath"],
                    "readOnly": bool(m.get("readOnly")) or vol_ro,
                }
            )
        hosts = (
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            f"{self.ip}\t{self.name}\n"
        )
        spec = {
            "netns": f"/run/netns/{self.netns}",
            "hostname": self.name,
            "rootfs_dir": rootfs,
            "result": c.result_file,
            "init_pid_file": c.init_pid_file,
            "files": {
                "/etc/resolv.conf": (
                    f"search {self.ns}.svc.cluster.local svc.cluster.local cluster.local\n"
                    f"nameserver {layout.DNS_ADDRESS}\noptions ndots:1\n"
                ),
                "/etc/hosts": hosts,
                "/etc/hostname": self.name + "\n",
            },
            "termination_log": {
                "host": c.term_file,
                "target": c.spec.get("terminationMessagePath") or "/dev/termination-log",
            },
            "mounts": mounts,
            "absent": missing_programs(c.spec.get("image")),
            "command": command,
            "env": env,
            "workdir": c.spec.get("workingDir") or "/",
            "uid": uid,
            "gid": gid,
            "groups": groups,
            "capabilities": self._capabilities(c),
            "no_new_privs": (c.spec.get("securityContext") or {}).get("allowPrivilegeEscalation")
            is False,
        }
        spec_path = os.path.join(base, "spec.json")
        fd = os.open(spec_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(spec, fh)
        log_path = self.log_path(c.name)
        if n > 0 and os.path.exists(log_path):
            os.replace(log_path, self.log_path(c.name, previous=True))  # kubectl logs -p
        logf = open(log_path, "ab")
        try:
            c.proc = subprocess.Popen(
                [sys.executable, "-I", LAUNCHER, spec_path],
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=logf,
                close_fds=True,
                start_new_session=True,
            )
        finally:
            logf.close()
        with open(os.path.join(self.run_dir, f"{self.uid}-{c.name}.pid"), "w") as fh:
            fh.write(str(c.proc.pid))
        c.uid, c.gid = uid, gid
        c.started_at = now_rfc3339()
        c.started_time = time.time()
        c.container_id = f"kf://{self.uid[:8]}-{c.name}-{n}"
        c.state = {"running": {"startedAt": c.started_at}}
        c.ready = not c.spec.get("readinessProbe")
        probe = c.spec.get("readinessProbe") or {}
        c.probe_next = time.monotonic() + probe.get("initialDelaySeconds", 0)
        c.probe_ok = c.probe_fail = 0
        return True

    def _collect(self, c):
        """The container process exited: record its terminated state."""
        code = c.proc.returncode
        if code < 0:
            code = 128 - code
        result = {}
        try:
            with open(c.result_file) as fh:
                text = fh.read()
                result = json.loads(text) if text.strip() else {}
        except (OSError, ValueError):
            pass
        term = {
            "exitCode": code,
            "startedAt": c.started_at,
            "finishedAt": now_rfc3339(),
            "containerID": c.container_id,
        }
        if result:
            term.update(
                exitCode=128,
                reason=result.get("reason", "StartError"),
                message=result.get("message", ""),
            )
        else:
            term["reason"] = "Completed" if code == 0 else "Error"
            message = ""
            try:
                with open(c.term_file, "rb") as fh:
                    message = fh.read(MAX_TERM_MESSAGE).decode(errors="replace")
            except OSError:
                pass
            policy = c.spec.get("terminationMessagePolicy", "File")
            if not message and code != 0 and policy == "FallbackToLogsOnError":
                message = self.tail_log(c.name, 80)[-MAX_TERM_MESSAGE:]
            if message:
                term["message"] = message
        c.state = {"terminated": term}
        c.ready = False
        c.proc = None
        self._record_times(c, term["exitCode"])
        try:
            os.unlink(os.path.join(self.run_dir, f"{self.uid}-{c.name}.pid"))
        except FileNotFoundError:
            pass

    def _record_times(self, c, exit_code):
        line = {
            "cluster": self.agent.cluster,
            "namespace": self.ns,
            "pod": self.name,
            "uid": self.uid,
            "runner_started": self.runner_started,
            "container": c.name,
            "started": c.started_time,
            "finished": time.time(),
            "exit_code": exit_code,
        }
        # One write of one line in append mode: lines of the two nodes' agents stay whole.
        try:
            with open(os.path.join(self.agent.state_dir, CONTAINER_TIMES), "a") as fh:
                fh.write(json.dumps(line) + "\n")
        except OSError as exc:  # only the benchmark reads it: never fail a pod for it
            log.warning("cannot record container times: %s", exc)

    def _should_restart(self, c):
        if c.init:
            return self.restart_policy != "Never" and c.exit_code() != 0
        if self.restart_policy == "Always":
            return True
        return self.restart_policy == "OnFailure" and c.exit_code() != 0

    def _restart_logic(self, c, now):
        if c.backoff_until == 0.0:
            if not c.terminated or not self._should_restart(c):
                return
            delay = min(1.0 * 2**c.restart_count, 30.0)
            c.backoff_until = now + delay
            c.last_state = {"terminated": c.state["terminated"]}
            if c.restart_count >= 1:
                c.state = {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off {int(delay)}s restarting failed "
                        f"container={c.name} pod={self.name}",
                    }
                }
            return
        if now >= c.backoff_until:
            c.backoff_until = 0.0
            c.restart_count += 1
            self._start(c)

    def _tick(self):
        now = time.monotonic()
        self._kill_knob()
        deadline = self.pod["spec"].get("activeDeadlineSeconds")
        if deadline is not None and now - self.started_mono > deadline:
            self._kill_all(grace=self.pod["spec"].get("terminationGracePeriodSeconds", 30))
            self.phase = "Failed"
            self.pod_reason = "DeadlineExceeded"
            self.pod_message = "Pod was active on the node longer than the specified deadline"
            return
        if not self.initialized:
            for c in self.init_containers:
                if c.running:
                    return
                if c.proc is not None:
                    self._collect(c)
                if c.terminated and c.exit_code() == 0:
                    continue
                if c.terminated or c.last_state:
                    if c.backoff_until == 0.0 and not self._should_restart(c):
                        self.phase = "Failed"
                        return
                    self._restart_logic(c, now)
                    return
                self._start(c)
                return
            self.initialized = True
        for c in self.containers:
            if c.running:
                self._probe(c, now)
            elif c.proc is not None:
                self._collect(c)
            elif not c.terminated and not c.backoff_until and "waiting" in c.state:
                self._start(c)
            else:
                self._restart_logic(c, now)
        for c in self.containers:
            if c.proc is not None and c.proc.poll() is not None:
                self._collect(c)
        self.phase = self._compute_phase()

    def _compute_phase(self):
        cs = self.containers
        if any(c.running for c in cs):
            return "Running"
        if all(c.terminated for c in cs):
            ok = all(c.exit_code() == 0 for c in cs)
            if self.restart_policy == "Never" or (self.restart_policy == "OnFailure" and ok):
                return "Succeeded" if ok else "Failed"
            return "Running"
        if any(c.restart_count or c.last_state for c in cs):
            return "Running"
        return "Pending"

    def _kill_knob(self):
        ann = (self.pod["metadata"].get("annotations") or {}).get(KILL_ANNOTATION)
        if not ann or ann in self.killed_by_knob:
            return
        self.killed_by_knob.add(ann)
        for name in ann.split(","):
            for c in self.all_containers():
                if c.name == name.strip() and c.running:
                    self.kill_container(c, signal.SIGKILL)

    def kill_container(self, c, sig):
        pid = c.init_pid()
        try:
            if pid and sig == signal.SIGKILL:
                os.kill(pid, sig)  # the container's PID 1, as a runtime kill would
            elif c.proc is not None:
                c.proc.send_signal(sig)
        except ProcessLookupError:
            pass

    # -- probes ------------------------------------------------------------------------------
    def _probe(self, c, now):
        probe = c.spec.get("readinessProbe")
        if not probe or now < c.probe_next:
            return
        c.probe_next = now + probe.get("periodSeconds", 10)
        timeout = probe.get("timeoutSeconds", 1)
        try:
            ok = self._run_probe(c, probe, timeout)
        except Exception as exc:  # noqa: BLE001 - a broken probe is a failed probe
            log.debug("probe %s/%s: %r", self.name, c.name, exc)
            ok = False
        if ok:
            c.probe_ok += 1
            c.probe_fail = 0
            if c.probe_ok >= probe.get("successThreshold", 1):
                c.ready = True
        else:
            c.probe_fail += 1
            c.probe_ok = 0
            if c.probe_fail >= probe.get("failureThreshold", 3) or not c.ready:
                c.ready = False

    def _port(self, c, port):
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for other in self.containers:
            for p in other.spec.get("ports") or []:
                if p.get("name") == port:
                    return p["containerPort"]
        raise ValueError(f"unknown named port {port}")

    def _run_probe(self, c, probe, timeout):
        if "exec" in probe:
            pid = c.init_pid()
            if not pid:
                return False
            cmd = [
                "nsenter",
                "-t",
                str(pid),
                "-m",
                "-u",
                "-i",
                "-n",
                "-p",
                "-r",
                "-w",
                "-S",
                str(c.uid),
                "-G",
                str(c.gid),
                "--",
                *probe["exec"]["command"],
            ]
            try:
                proc = subprocess.run(cmd, capture_output=True, timeout=timeout + 1, check=False)
            except subprocess.TimeoutExpired:
                return False
            return proc.returncode == 0
        if "tcpSocket" in probe:
            port = self._port(c, probe["tcpSocket"]["port"])
            with socket.create_connection((self.ip, port), timeout=timeout):
                return True
        if "httpGet" in probe:
            hg = probe["httpGet"]
            conn = http.client.HTTPConnection(self.ip, self._port(c, hg["port"]), timeout=timeout)
            try:
                conn.request("GET", hg.get("path", "/"))
                return 200 <= conn.getresponse().status < 400
            finally:
                conn.close()
        return True

    # -- stopping ----------------------------------------------------------------------------
    def _kill_all(self, grace):
        procs = [c for c in self.all_containers() if c.proc is not None]
        for c in procs:
            if c.running:
                self.kill_container(c, signal.SIGTERM)
        deadline = time.monotonic() + max(0, grace)
        while time.monotonic() < deadline and any(c.running for c in procs):
            time.sleep(0.05)
        for c in procs:
            if c.running:
                try:
                    c.proc.kill()  # the shim; PDEATHSIG takes the container's PID 1 down
                except ProcessLookupError:
                    pass
        for c in procs:
            try:
                c.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                log.warning("pod %s: container %s did not exit", self.name, c.name)
            if c.proc is not None:
                self._collect(c)

    # -- logs --------------------------------------------------------------------------------
    def log_path(self, container, previous=False):
        suffix = ".previous.log" if previous else ".log"
        return os.path.join(self.log_dir, f"{container}{suffix}")

    def tail_log(self, container, lines):
        try:
            with open(self.log_path(container), "rb") as fh:
                data = fh.read()
        except OSError:
            return ""
        return b"\n".join(data.splitlines()[-lines:]).decode(errors="replace")

    # -- status ------------------------------------------------------------------------------
    def _container_status(self, c):
        st = {
            "name": c.name,
            "image": c.spec.get("image", ""),
            "imageID": "",
            "ready": bool(c.ready and c.running),
            "restartCount": c.restart_count,
            "started": c.running,
            "state": {k: c.state.get(k) for k in ("waiting", "running", "terminated")},
            "lastState": {k: c.last_state.get(k) for k in ("waiting", "running", "terminated")},
        }
        if c.container_id:
            st["containerID"] = c.container_id
        return st

    def _publish(self):
        now = now_rfc3339()
        ready = self.phase == "Running" and all(c.ready and c.running for c in self.containers)
        terminal = self.phase in ("Succeeded", "Failed")

        def cond(typ, ok, reason=None, message=None):
            d = {
                "type": typ,
                "status": "True" if ok else "False",
                "reason": reason,
                "message": message,
            }
            return d

        not_ready_reason = "PodCompleted" if terminal else "ContainersNotReady"
        unready = [c.name for c in self.containers if not (c.ready and c.running)]
        msg = None if ready or terminal else f"containers with unready status: {unready}"
        conditions = [
            cond("PodScheduled", True),
            cond(
                "Initialized",
                self.initialized or not self.init_containers,
                None
                if self.initialized or not self.init_containers
                else "ContainersNotInitialized",
            ),
            cond("ContainersReady", ready, None if ready else not_ready_reason, msg),
            cond("Ready", ready, None if ready else not_ready_reason, msg),
        ]
        status = {
            "phase": self.phase,
            "hostIP": self.agent.node_ip,
            "hostIPs": [{"ip": self.agent.node_ip}],
            "startTime": self.start_time,
            "conditions": conditions,
            "containerStatuses": [self._container_status(c) for c in self.containers],
            "reason": self.pod_reason,
            "message": self.pod_message,
        }
        if self.init_containers:
            status["initContainerStatuses"] = [
                self._container_status(c) for c in self.init_containers
            ]
        ip = self.ip or getattr(self, "ip_released", None)
        if ip:
            status["podIP"] = ip
            status["podIPs"] = [{"ip": ip}]
        key = json.dumps(status, sort_keys=True)
        if key == self.last_status:
            return
        # lastTransitionTime only matters to humans; set it when the status changes.
        for c in conditions:
            c["lastTransitionTime"] = now
            c["lastProbeTime"] = None
        try:
            self.kube.patch(
                f"/api/v1/namespaces/{self.ns}/pods/{self.name}/status",
                {"status": status},
                content_type=STRATEGIC,
            )
            self.last_status = key
        except ApiException as exc:
            if exc.status == 404:
                self.stop_kind = self.stop_kind or "agent"
            else:
                log.warning("pod %s: status update failed: %s", pod_key(self.pod), exc.reason)
