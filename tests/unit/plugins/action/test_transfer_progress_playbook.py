"""A real ansible-playbook run: module_defaults of the action group reach the modules.

The API server is a small fake on 127.0.0.1 that answers discovery, Pods and Pod logs and
refuses any request without the bearer token that only module_defaults carries.
"""

import gzip
import http.server
import json
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import urllib.parse

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[4]
# The checkout links itself into .collections (make venv); ansible-test runs the tests of a
# copy that is already at <path>/ansible_collections/kubeferry/state_transfer.
COLLECTIONS = (
    ROOT.parents[2] if ROOT.parents[1].name == "ansible_collections" else ROOT / ".collections"
)
FIXTURES = ROOT / "tests" / "unit" / "plugins" / "fixtures"
TOKEN = "kubeferry-test-token"

API_V1 = {
    "kind": "APIResourceList",
    "groupVersion": "v1",
    "resources": [
        {
            "name": "pods",
            "singularName": "pod",
            "namespaced": True,
            "kind": "Pod",
            "verbs": ["get", "list"],
        },
        {
            "name": "pods/log",
            "singularName": "",
            "namespaced": True,
            "kind": "Pod",
            "verbs": ["get"],
        },
        {
            "name": "services",
            "singularName": "service",
            "namespaced": True,
            "kind": "Service",
            "verbs": ["get", "list"],
        },
    ],
}


def load(kind_file, case):
    with open(FIXTURES / (kind_file + ".yaml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)[case]


class FakeApi(http.server.BaseHTTPRequestHandler):
    """Serves a client Pod that runs on the first read and has completed afterwards."""

    state = None

    def log_message(self, *args):
        pass

    def reply(self, status, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 - the name http.server calls
        state = self.state
        url = urllib.parse.urlparse(self.path)
        state["requests"].append((self.path, self.headers.get("Authorization")))
        if self.headers.get("Authorization") != "Bearer " + TOKEN:
            self.reply(
                401, {"kind": "Status", "status": "Failure", "reason": "Unauthorized", "code": 401}
            )
            return
        if url.path == "/version":
            self.reply(200, {"major": "1", "minor": "31", "gitVersion": "v1.31.0"})
        elif url.path == "/api":
            self.reply(200, {"kind": "APIVersions", "versions": ["v1"]})
        elif url.path == "/apis":
            self.reply(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
        elif url.path == "/api/v1":
            self.reply(200, API_V1)
        elif url.path == "/api/v1/namespaces/app/services/kubeferry-3f9c2a1b-server":
            self.reply(200, load("services", "lb_ip"))
        elif url.path == "/api/v1/namespaces/app/pods/kubeferry-3f9c2a1b-data-0":
            state["pod_reads"] += 1
            case = "transfer_running" if state["pod_reads"] == 1 else "completed_success"
            self.reply(200, load("pods", case))
        elif url.path == "/api/v1/namespaces/app/pods/kubeferry-3f9c2a1b-data-0/log":
            name = (
                "rsync_daemon_pull_running.log.gz"
                if state["pod_reads"] == 1
                else "rsync_progress2_stats_exit0.log.gz"
            )
            log = gzip.decompress((FIXTURES / "logs" / name).read_bytes())
            self.reply(200, log, "text/plain")
        else:
            self.reply(
                404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}
            )


def ansible_playbook():
    candidate = pathlib.Path(sys.executable).with_name("ansible-playbook")
    return str(candidate) if candidate.exists() else shutil.which("ansible-playbook")


@pytest.fixture
def api_server():
    state = {"requests": [], "pod_reads": 0}
    handler = type("Handler", (FakeApi,), {"state": state})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:{0}".format(server.server_address[1]), state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


PLAYBOOK = """
- name: Watch a transfer with connection options from module_defaults only
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{{{ ansible_playbook_python }}}}"
  module_defaults:
    group/kubeferry.state_transfer.k8s:
      host: {host}
      api_key: {token}
      validate_certs: false
  tasks:
    - name: Watch the transfer and write the report
      kubeferry.state_transfer.transfer_progress:
        namespace: app
        pods:
          - name: kubeferry-3f9c2a1b-data-0
            pvc: data-0
            transfer: rsync
        interval: 1
        wait_timeout: 60
        report_path: {report}
      register: watched

    - name: Wait until the client Pod has completed
      kubeferry.state_transfer.pod_wait:
        namespace: app
        names: [kubeferry-3f9c2a1b-data-0]
        state: completed
        wait_sleep: 1
        wait_timeout: 30
      register: waited

    - name: Read the load balancer's address
      kubeferry.state_transfer.load_balancer_address:
        name: kubeferry-3f9c2a1b-server
        namespace: app
      register: lb

    - name: Make TLS material (a module outside the group gets no connection options)
      kubeferry.state_transfer.tls_material:
        valid_days: 1
      register: tls
      no_log: true

    - name: Check what the tasks returned
      ansible.builtin.assert:
        that:
          - lb.host == '198.18.0.20'
          - lb.port == 6443
          - tls.server_key is match('-----BEGIN PRIVATE KEY-----')
          - waited.pods[0].phase == 'Succeeded'
          - watched.summary[0].state == 'success'
          - watched.summary[0].files == 240
"""


@pytest.mark.skipif(not COLLECTIONS.is_dir(), reason="needs the collection in a collections path")
@pytest.mark.skipif(not ansible_playbook(), reason="needs ansible-playbook")
def test_module_defaults_reach_the_module_behind_the_action_plugin(api_server, tmp_path):
    host, state = api_server
    report = tmp_path / "report.json"
    playbook = tmp_path / "watch.yml"
    playbook.write_text(PLAYBOOK.format(host=host, token=TOKEN, report=report))
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
        # The modules cache API discovery under the temp dir: keep it in the test's.
        TMPDIR=str(tmp_path),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_STDOUT_CALLBACK="default",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        HOME=str(tmp_path),
    )
    for variable in [v for v in env if v.startswith("K8S_AUTH_")]:
        del env[variable]
    run = subprocess.run(
        [ansible_playbook(), "-i", "localhost,", str(playbook)],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # The live line printed between two snapshots, and the final one.
    assert (
        "data-0: 100% 234.6 MiB of 234.6 MiB, 52.2 MiB/s, 240 files (finished, exit code 0)"
        in run.stdout
    )
    assert json.loads(report.read_text())["runs"][0]["state"] == "success"
    pod_requests = [auth for path, auth in state["requests"] if "/pods/" in path]
    assert pod_requests and set(pod_requests) == {"Bearer " + TOKEN}
    # Only the module behind the action plugin reads 50 log lines (pod_wait reads 20). It
    # watched the transfer to its end: one read, of the ended transfer's log.
    progress_logs = [auth for path, auth in state["requests"] if "tailLines=50" in path]
    assert progress_logs == ["Bearer " + TOKEN]
    assert TOKEN not in run.stdout
    assert "PRIVATE KEY" not in run.stdout
    service_requests = [auth for path, auth in state["requests"] if "/services/" in path]
    assert service_requests == ["Bearer " + TOKEN]


@pytest.mark.skipif(not COLLECTIONS.is_dir(), reason="needs the collection in a collections path")
@pytest.mark.skipif(not ansible_playbook(), reason="needs ansible-playbook")
def test_without_module_defaults_the_fake_api_refuses(api_server, tmp_path):
    """The check above can fail: the same play without the token is refused."""
    host, state = api_server
    playbook = tmp_path / "watch.yml"
    text = PLAYBOOK.format(host=host, token=TOKEN, report=tmp_path / "r.json")
    playbook.write_text(text.replace("api_key: " + TOKEN, "api_key: wrong-token"))
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_NOCOLOR="1",
        HOME=str(tmp_path),
    )
    for variable in [v for v in env if v.startswith("K8S_AUTH_")]:
        del env[variable]
    run = subprocess.run(
        [ansible_playbook(), "-i", "localhost,", str(playbook)],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode != 0
    assert "Unauthorized" in run.stdout or "401" in run.stdout
    assert state["pod_reads"] == 0
