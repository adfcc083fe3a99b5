"""Self-tests of the process kubelet of the twin clusters (issue 3), against the real API servers.

Run as root from the repository root: ``pytest -m clusters tests/clusters/test_node.py``.
"""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys

import pytest

from . import pvcs
from .node.testing import pod_body, wait_for, wait_gone, wait_pod, wait_ready

pytestmark = pytest.mark.clusters

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))


def _core(clusters, cluster="source"):
    from kubernetes import client

    return client.CoreV1Api(clusters.client(cluster))


def _status(pod):
    return pod.status.container_statuses[0]


@pytest.mark.parametrize("cluster", ["source", "destination"])
def test_pod_exit_codes_and_logs_through_the_api(clusters, namespace, cluster):
    core = _core(clusters, cluster)
    core.create_namespaced_pod(namespace, pod_body("ok", "echo hello from $HOSTNAME; exit 0"))
    core.create_namespaced_pod(namespace, pod_body("bad", "echo about to fail >&2; exit 7"))
    ok = wait_pod(core, namespace, "ok")
    bad = wait_pod(core, namespace, "bad")
    assert ok.status.phase == "Succeeded"
    assert ok.spec.node_name == f"kf-{cluster}-node"
    assert _status(ok).state.terminated.exit_code == 0
    assert _status(ok).state.terminated.reason == "Completed"
    assert bad.status.phase == "Failed"
    assert _status(bad).state.terminated.exit_code == 7
    assert _status(bad).state.terminated.reason == "Error"
    # The API server fetches these from the node agent's kubelet port.
    assert core.read_namespaced_pod_log("ok", namespace) == "hello from ok\n"
    assert "about to fail" in core.read_namespaced_pod_log("bad", namespace, tail_lines=1)


def test_missing_program_is_a_start_error(clusters, namespace):
    core = _core(clusters)
    body = pod_body("nope", "")
    body["spec"]["containers"][0]["command"] = ["/no/such/program", "--flag"]
    core.create_namespaced_pod(namespace, body)
    pod = wait_pod(core, namespace, "nope")
    term = _status(pod).state.terminated
    assert pod.status.phase == "Failed"
    assert term.reason == "StartError"
    assert term.exit_code == 128
    assert "/no/such/program" in term.message


def test_termination_message_and_env_from_secret_and_configmap(clusters, namespace):
    core = _core(clusters)
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "cfg"}, "data": {"greeting": "hi"}}
    )
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "sec"}, "data": {"pw": base64.b64encode(b"s3").decode()}}
    )
    body = pod_body(
        "env",
        'cd . && echo "$GREETING $PW $PLAIN $(pwd)" > /dev/termination-log; exit 3',
        container={
            "workingDir": "/work/dir",
            "env": [
                {"name": "PLAIN", "value": "plain"},
                {
                    "name": "GREETING",
                    "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}},
                },
                {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "pw"}}},
            ],
        },
    )
    core.create_namespaced_pod(namespace, body)
    term = _status(wait_pod(core, namespace, "env")).state.terminated
    assert term.exit_code == 3
    assert term.message == "hi s3 plain /work/dir\n"


def test_volumes_modes_uids_and_read_only(clusters, namespace):
    core = _core(clusters)
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "conf"}, "data": {"app.conf": "key=value\n"}}
    )
    core.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "creds"},
            "data": {"password": base64.b64encode(b"hunter2").decode()},
        },
    )
    core.create_namespaced_persistent_volume_claim(
        namespace,
        {
            "metadata": {"name": "data"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )
    script = "; ".join(
        [
            "set -e",
            "id -u; id -g; id -G",
            "stat -c '%a %g' /etc/app/app.conf /etc/creds/password",
            "cat /etc/app/app.conf /etc/creds/password; echo",
            "echo written-by-pod > /data/out.txt",
            "if touch /etc/app/x 2>/dev/null; then echo cm-writable; fi",
            "if touch /ro/y 2>/dev/null; then echo ro-writable; fi",
            "cat /ro/out.txt",
        ]
    )
    body = pod_body(
        "vols",
        script,
        securityContext={"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000},
        volumes=[
            {"name": "conf", "configMap": {"name": "conf"}},
            {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
        ],
        container={
            "volumeMounts": [
                {"name": "conf", "mountPath": "/etc/app"},
                {"name": "creds", "mountPath": "/etc/creds"},
                {"name": "data", "mountPath": "/data"},
                {"name": "data", "mountPath": "/ro", "readOnly": True},
            ]
        },
    )
    core.create_namespaced_pod(namespace, body)
    pod = wait_pod(core, namespace, "vols")
    logs = core.read_namespaced_pod_log("vols", namespace)
    assert pod.status.phase == "Succeeded", logs
    lines = logs.splitlines()
    assert lines[:3] == ["1000", "3000", "3000 2000"]
    # The secret's 0400 plus the group read kubelet adds for fsGroup; group-owned by fsGroup.
    assert lines[3:5] == ["644 2000", "440 2000"]
    assert lines[5:7] == ["key=value", "hunter2"]
    assert "cm-writable" not in logs and "ro-writable" not in logs
    assert lines[-1] == "written-by-pod"
    pvc = core.read_namespaced_persistent_volume_claim("data", namespace)
    assert pvc.status.phase == "Bound"
    pv = core.read_persistent_volume(pvc.spec.volume_name)
    host_file = os.path.join(pv.spec.host_path.path, "out.txt")
    with open(host_file) as fh:
        assert fh.read() == "written-by-pod\n"
    st = os.stat(host_file)
    assert (st.st_uid, st.st_gid) == (1000, 2000)  # setgid directory from fsGroup
    assert stat.S_IMODE(os.stat(pv.spec.host_path.path).st_mode) & 0o2000


def test_fs_group_leaves_a_read_only_pvc_as_it_is(clusters, namespace):
    """Like kubelet (csi_mounter supportsFSGroup: not when read-only): no chown, no chmod."""
    core = _core(clusters)
    core.create_namespaced_persistent_volume_claim(
        namespace,
        {
            "metadata": {"name": "source"},
            "spec": {
                "accessModes": ["ReadOnlyMany"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )
    root = pvcs.host_dir(core.api_client, namespace, "source")
    private = os.path.join(root, "private.txt")
    with open(private, "w") as fh:
        fh.write("only root reads this\n")
    os.chmod(private, 0o600)
    os.chmod(root, 0o755)
    body = pod_body(
        "reader",
        "stat -c '%a %u %g' /source/private.txt",
        securityContext={"runAsUser": 0, "fsGroup": 2000},
        volumes=[
            {
                "name": "source",
                "persistentVolumeClaim": {"claimName": "source", "readOnly": True},
            }
        ],
        container={"volumeMounts": [{"name": "source", "mountPath": "/source", "readOnly": True}]},
    )
    core.create_namespaced_pod(namespace, body)
    pod = wait_pod(core, namespace, "reader")
    logs = core.read_namespaced_pod_log("reader", namespace)
    assert pod.status.phase == "Succeeded", logs
    assert logs.split() == ["600", "0", "0"]
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o755


def test_unbound_pvc_and_unmatched_selector_keep_pods_pending(clusters, namespace):
    core = _core(clusters)
    core.create_namespaced_persistent_volume_claim(
        namespace,
        {
            "metadata": {"name": "stuck", "annotations": {"kf.test/stay-pending": "true"}},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )
    core.create_namespaced_pod(
        namespace,
        pod_body(
            "needs-pvc",
            "true",
            volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "stuck"}}],
            container={"volumeMounts": [{"name": "d", "mountPath": "/d"}]},
        ),
    )
    core.create_namespaced_pod(
        namespace,
        pod_body("elsewhere", "true", nodeSelector={"kubernetes.io/hostname": "some-other-node"}),
    )

    def unschedulable(name):
        pod = core.read_namespaced_pod(name, namespace)
        conds = [c for c in pod.status.conditions or [] if c.type == "PodScheduled"]
        return pod if conds and conds[0].status == "False" else None

    pending = wait_for(lambda: unschedulable("needs-pvc"), 30, what="PodScheduled=False")
    assert pending.status.phase == "Pending"
    assert pending.spec.node_name is None
    cond = [c for c in pending.status.conditions if c.type == "PodScheduled"][0]
    assert cond.reason == "Unschedulable"
    assert "pod has unbound immediate PersistentVolumeClaims" in cond.message
    other = wait_for(lambda: unschedulable("elsewhere"), 30, what="PodScheduled=False")
    assert "didn't match Pod's node affinity/selector" in other.status.conditions[0].message
    assert core.read_namespaced_persistent_volume_claim("stuck", namespace).status.phase == (
        "Pending"
    )


def test_readiness_exec_probe(clusters, namespace):
    core = _core(clusters)
    body = pod_body(
        "probed",
        "sleep 2; touch /tmp/ready; exec sleep 300",
        container={
            "readinessProbe": {
                "exec": {"command": ["test", "-f", "/tmp/ready"]},
                "periodSeconds": 1,
                "failureThreshold": 1,
            }
        },
    )
    core.create_namespaced_pod(namespace, body)
    running = wait_pod(core, namespace, "probed", phases=("Running",))
    assert not any(c.type == "Ready" and c.status == "True" for c in running.status.conditions)
    ready = wait_ready(core, namespace, "probed", timeout=30)
    assert ready.status.container_statuses[0].ready
    core.delete_namespaced_pod("probed", namespace, grace_period_seconds=1)
    wait_gone(lambda: core.read_namespaced_pod("probed", namespace), 30, "pod probed")


def test_killed_container_restarts_on_failure(clusters, namespace):
    core = _core(clusters)
    core.create_namespaced_pod(namespace, pod_body("victim", "exec sleep 300", restart="OnFailure"))
    wait_pod(core, namespace, "victim", phases=("Running",))
    wait_for(
        lambda: _status(core.read_namespaced_pod("victim", namespace)).state.running,
        20,
        what="container running",
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.clusters.node.kill",
            "--state-dir",
            str(clusters.state_dir),
            namespace,
            "victim",
            "main",
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": REPO},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr

    def restarted():
        st = _status(core.read_namespaced_pod("victim", namespace))
        return st if st.restart_count >= 1 and st.state.running else None

    st = wait_for(restarted, 30, what="restart after kill")
    assert st.last_state.terminated.exit_code == 137
    # The annotation knob does the same.
    core.patch_namespaced_pod(
        "victim", namespace, {"metadata": {"annotations": {"kf.test/kill-container": "main"}}}
    )
    wait_for(
        lambda: _status(core.read_namespaced_pod("victim", namespace)).restart_count >= 2,
        30,
        what="second restart",
    )


def test_pod_and_namespace_deletion_complete(clusters):
    from kubernetes import client

    core = _core(clusters, "destination")
    name = f"kft-deletion-{os.getpid()}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_for(lambda: _has_default_sa(core, name), 30, what="default ServiceAccount")
    # PID 1 of a container ignores SIGTERM without a handler: the grace period then SIGKILLs.
    core.create_namespaced_pod(name, pod_body("sleeper", "exec sleep 300"))
    core.create_namespaced_pod(name, pod_body("other", "exec sleep 300"))
    core.create_namespaced_config_map(name, {"metadata": {"name": "c"}, "data": {"a": "b"}})
    wait_pod(core, name, "sleeper", phases=("Running",))
    core.delete_namespaced_pod("sleeper", name, grace_period_seconds=2)
    wait_gone(lambda: core.read_namespaced_pod("sleeper", name), 30, "pod sleeper")
    core.delete_namespace(name)
    wait_gone(lambda: core.read_namespace(name), 60, f"namespace {name}")


def _has_default_sa(core, namespace):
    from kubernetes.client.exceptions import ApiException

    try:
        core.read_namespaced_service_account("default", namespace)
        return True
    except ApiException:
        return False


def test_node_is_ready_with_addresses_and_kubelet_port(clusters):
    for cluster, address in (("source", "198.18.0.11"), ("destination", "198.18.0.21")):
        node = _core(clusters, cluster).read_node(f"kf-{cluster}-node")
        ready = [c for c in node.status.conditions if c.type == "Ready"][0]
        assert ready.status == "True"
        kinds = {(a.type, a.address) for a in node.status.addresses}
        assert {("InternalIP", address), ("ExternalIP", address)} <= kinds
        assert node.status.daemon_endpoints.kubelet_endpoint.port == 10250
        assert node.metadata.labels["kubernetes.io/hostname"] == f"kf-{cluster}-node"


def test_projected_service_account_volume(clusters, namespace):
    core = _core(clusters)
    wait_for(lambda: _has_default_sa(core, namespace), 30, what="default ServiceAccount")
    body = pod_body(
        "sa",
        "d=/var/run/secrets/kubernetes.io/serviceaccount; cat $d/namespace; echo; "
        "test -s $d/token && echo token-ok; grep -c 'BEGIN CERTIFICATE' $d/ca.crt",
    )
    body["spec"]["automountServiceAccountToken"] = True
    core.create_namespaced_pod(namespace, body)
    pod = wait_pod(core, namespace, "sa")
    logs = core.read_namespaced_pod_log("sa", namespace)
    assert pod.status.phase == "Succeeded", logs
    # The ServiceAccount admission plugin added the projected volume the agent materialised.
    assert any(v.projected for v in pod.spec.volumes)
    assert logs.splitlines()[:2] == [namespace, "token-ok"]


def test_init_containers_run_first_and_crash_loops_back_off(clusters, namespace):
    core = _core(clusters, "destination")
    body = pod_body(
        "init",
        "cat /shared/order; echo main >> /shared/order",
        volumes=[{"name": "shared", "emptyDir": {}}],
        container={"volumeMounts": [{"name": "shared", "mountPath": "/shared"}]},
    )
    body["spec"]["initContainers"] = [
        {
            "name": f"init{i}",
            "image": "any",
            "command": ["sh", "-c", f"echo init{i} >> /shared/order"],
            "volumeMounts": [{"name": "shared", "mountPath": "/shared"}],
        }
        for i in (1, 2)
    ]
    core.create_namespaced_pod(namespace, body)
    pod = wait_pod(core, namespace, "init")
    assert pod.status.phase == "Succeeded"
    assert core.read_namespaced_pod_log("init", namespace) == "init1\ninit2\n"
    assert [s.state.terminated.exit_code for s in pod.status.init_container_statuses] == [0, 0]

    core.create_namespaced_pod(
        namespace, pod_body("crashy", "echo run at $(date +%s%N); exit 2", restart="Always")
    )

    def backing_off():
        pod = core.read_namespaced_pod("crashy", namespace)
        if not pod.status.container_statuses:
            return None
        st = _status(pod)
        waiting = st.state.waiting
        return st if waiting and waiting.reason == "CrashLoopBackOff" else None

    st = wait_for(backing_off, 30, what="CrashLoopBackOff")
    assert st.restart_count >= 1
    assert st.last_state.terminated.exit_code == 2
    assert core.read_namespaced_pod("crashy", namespace).status.phase == "Running"

    # One run per log: the current (last started) and the previous one, as `kubectl logs -p`.
    def logs():
        previous = core.read_namespaced_pod_log("crashy", namespace, previous=True)
        current = core.read_namespaced_pod_log("crashy", namespace)
        return (previous, current) if current.count("run at") == 1 else None

    previous, current = wait_for(logs, 10, what="current log written")
    assert previous.count("run at") == 1
    assert previous != current


def test_missing_configmap_waits_and_unsupported_volume_fails(clusters, namespace):
    core = _core(clusters)
    core.create_namespaced_pod(
        namespace,
        pod_body(
            "waits",
            "cat /cfg/k",
            volumes=[{"name": "cfg", "configMap": {"name": "later"}}],
            container={"volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}]},
        ),
    )
    core.create_namespaced_pod(
        namespace,
        pod_body(
            "csi",
            "true",
            volumes=[{"name": "v", "csi": {"driver": "nope.example.com"}}],
            container={"volumeMounts": [{"name": "v", "mountPath": "/v"}]},
        ),
    )

    def creating():
        pod = core.read_namespaced_pod("waits", namespace)
        sts = pod.status.container_statuses or []
        waiting = sts[0].state.waiting if sts else None
        return waiting if waiting and waiting.reason == "ContainerCreating" else None

    waiting = wait_for(creating, 30, what="ContainerCreating")
    assert 'configmap "later" not found' in waiting.message
    failed = wait_pod(core, namespace, "csi")
    assert failed.status.phase == "Failed"
    assert failed.status.reason == "UnsupportedVolume"
    assert "csi" in failed.status.message
    # Once the ConfigMap exists the waiting pod starts.
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "later"}, "data": {"k": "v"}}
    )
    assert wait_pod(core, namespace, "waits").status.phase == "Succeeded"
    assert core.read_namespaced_pod_log("waits", namespace) == "v"


def test_capabilities_follow_the_security_context(clusters, namespace):
    core = _core(clusters)
    script = "touch /tmp/f && chown 4321 /tmp/f && echo chown-ok || echo chown-denied"
    cases = {
        "default": {},
        "dropped": {"capabilities": {"drop": ["ALL"]}},
        "added": {"capabilities": {"drop": ["ALL"], "add": ["CHOWN"]}},
        "nonroot": {"runAsUser": 1000},
    }
    for name, sc in cases.items():
        core.create_namespaced_pod(
            namespace, pod_body(name, script, container={"securityContext": sc})
        )
    results = {}
    for name in cases:
        wait_pod(core, namespace, name)
        results[name] = core.read_namespaced_pod_log(name, namespace).strip().splitlines()[-1]
    assert results == {
        "default": "chown-ok",
        "dropped": "chown-denied",
        "added": "chown-ok",
        "nonroot": "chown-denied",
    }


def test_active_deadline_fails_the_pod(clusters, namespace):
    core = _core(clusters)
    body = pod_body("late", "exec sleep 300", activeDeadlineSeconds=2)
    body["spec"]["terminationGracePeriodSeconds"] = 1
    core.create_namespaced_pod(namespace, body)
    pod = wait_pod(core, namespace, "late", timeout=30)
    assert (pod.status.phase, pod.status.reason) == ("Failed", "DeadlineExceeded")
    assert _status(pod).state.terminated.exit_code == 137  # sleep as PID 1 ignores SIGTERM
