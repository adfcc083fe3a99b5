from ansible_collections.kubeferry.state_transfer.plugins.module_utils.progress import human_bytes
from ansible_collections.kubeferry.state_transfer.plugins.plugin_utils import pods, report
from ansible_collections.kubeferry.state_transfer.plugins.plugin_utils.plan import build_plan

PLAN = build_plan(
    {"namespace": "a"}, {"namespace": "b"}, ["data", {"source": "logs", "destination": "logs2"}]
)


def test_server_mounts_source_pvcs_read_only():
    volumes = pods.pvc_volumes(PLAN["server"])
    assert [v["persistentVolumeClaim"]["claimName"] for v in volumes] == ["data", "logs"]
    assert all(v["persistentVolumeClaim"]["readOnly"] is True for v in volumes)


def test_client_mounts_its_destination_pvc_writable():
    [volume] = pods.pvc_volumes(PLAN["clients"][1])
    assert volume == {"name": "destination", "persistentVolumeClaim": {"claimName": "logs2"}}


def test_add_mount_adds_once_and_does_not_change_the_input():
    containers = [
        {"name": "a"},
        {"name": "b", "volumeMounts": [{"name": "run", "mountPath": "/x"}]},
    ]
    result = pods.add_mount(containers, {"name": "run", "mountPath": "/run/kubeferry"})
    assert result[0]["volumeMounts"] == [{"name": "run", "mountPath": "/run/kubeferry"}]
    assert result[1]["volumeMounts"] == [{"name": "run", "mountPath": "/x"}]
    assert "volumeMounts" not in containers[0]


def test_redact_secrets_hides_every_value():
    objects = [
        {
            "kind": "Secret",
            "metadata": {"name": "s"},
            "data": {"password": "c2VjcmV0"},
            "stringData": {"k": "v"},
        },
        {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}},
    ]
    secret, config = pods.redact_secrets(objects)
    assert "data" not in secret and set(secret["stringData"]) == {"password", "k"}
    assert "c2VjcmV0" not in str(secret) and "v" not in secret["stringData"].values()
    assert config == objects[1]


def test_progress_pods():
    assert pods.progress_pods(PLAN["clients"], "rsync")[1] == {
        "name": PLAN["clients"][1]["pod_name"],
        "pvc": "logs2",
        "transfer": "rsync",
    }


def test_progress_pods_carry_their_pod_definitions():
    names = [client["pod_name"] for client in PLAN["clients"]]
    pod = {"kind": "Pod", "metadata": {"name": names[1]}, "spec": {"containers": []}}
    secret = {"kind": "Secret", "metadata": {"name": names[0]}}  # same name, not a Pod
    watched = pods.progress_pods(PLAN["clients"], "rclone", [secret, pod])
    assert "definition" not in watched[0]
    assert watched[1]["definition"] is pod
    assert watched[1]["transfer"] == "rclone"


def test_human_bytes():
    assert human_bytes(512) == "512 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(3 * 1024**3) == "3.0 GiB"


def test_summary_table_has_a_row_per_pvc_and_explains_failures():
    lines = report.summary_table(
        [
            {
                "pvc": "data",
                "state": "success",
                "bytes": 2048,
                "files": 3,
                "duration_seconds": 2,
                "rate_bytes_per_second": 1024,
                "exit_code": 0,
            },
            {
                "pvc": "logs",
                "state": "failed",
                "bytes": 0,
                "files": 0,
                "duration_seconds": 1,
                "exit_code": 23,
                "message": "partial transfer",
                # As transfer_progress returns it: a list of lines.
                "log_tail": ["line 1", "", "rsync: connection refused"],
            },
        ]
    )
    assert lines[0].split() == ["PVC", "STATE", "BYTES", "FILES", "SECONDS", "RATE", "EXIT"]
    assert lines[1].split()[:2] == ["data", "success"] and "2.0 KiB" in lines[1]
    assert lines[2].split()[:2] == ["logs", "failed"] and lines[2].split()[-1] == "23"
    assert lines[3] == "logs: partial transfer"
    assert lines[4:] == ["  | line 1", "  | rsync: connection refused"]


def test_htpasswd_sha1_matches_openssl(tmp_path):
    import subprocess

    from ansible_collections.kubeferry.state_transfer.plugins.plugin_utils.credentials import (
        htpasswd_sha1,
    )

    openssl = subprocess.run(
        "printf %s 'secret-Password-1' | openssl dgst -sha1 -binary | openssl base64",
        shell=True,
        capture_output=True,
        text=True,
        check=True,
    )
    assert htpasswd_sha1("secret-Password-1") == "{SHA}" + openssl.stdout.strip()


# kubernetes.core.k8s's message for a create the API server refused, as ansible shows it.
FORBIDDEN_CREATE = (
    'Failed to create object: b\'{"kind":"Status","apiVersion":"v1","metadata":{},'
    '"status":"Failure","message":"services is forbidden: User '
    '\\\\"system:serviceaccount:shop:kubeferry-state-transfer-source\\\\" cannot create '
    'resource \\\\"services\\\\" in API group \\\\"\\\\" in the namespace \\\\"shop\\\\"",'
    '"reason":"Forbidden","details":{"kind":"services"},"code":403}\\n\''
)


def test_a_refusal_of_the_api_server_is_cut_out_and_points_at_the_rights():
    explained = report.explain_failure(FORBIDDEN_CREATE)
    assert explained.startswith(
        'the API server refused a request: services is forbidden: User "system:serviceaccount:'
        'shop:kubeferry-state-transfer-source" cannot create resource "services" in API group "" '
        'in the namespace "shop". The identity needs the rights of rbac/source.yml'
    ), explained
    assert "Status" not in explained and "\\" not in explained
    # A refusal from the kubernetes client's own exception (a named object) too.
    plain = 'pods "kubeferry-1-server" is forbidden: User "alice" cannot delete resource "pods"'
    assert report.explain_failure(plain).startswith(
        "the API server refused a request: " + plain + ". The identity needs"
    )
    # Anything else is left as it is.
    assert report.explain_failure("Service x got no address") == "Service x got no address"
    assert report.explain_failure(None) == ""
