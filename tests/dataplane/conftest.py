"""Fixtures of the data-plane tests: rendered fragments, network namespaces, test trees."""

import json
import os
import secrets
import shutil
import string
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), ".collections"))

import render  # noqa: E402
import runner  # noqa: E402

PROGRAMS = (
    "rsync", "rclone", "stunnel", "ip", "unshare", "nsenter", "setpriv", "setfacl",
    "iptables", "tinyproxy",
)  # fmt: skip


def pytest_collection_modifyitems(config, items):
    reason = None
    if os.geteuid() != 0:
        reason = "data-plane tests need root (network and mount namespaces, file owners)"
    else:
        missing = [p for p in PROGRAMS if shutil.which(p) is None]
        if missing:
            reason = "data-plane tests need these programs: " + ", ".join(missing)
    for item in items:
        if os.path.dirname(str(item.fspath)) == HERE:
            item.add_marker(pytest.mark.dataplane)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


def new_password():
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _index in range(40))


@pytest.fixture(scope="session")
def tls():
    """The run's TLS material, made by the collection's own code (tls_material's logic)."""
    from ansible_collections.kubeferry.state_transfer.plugins.module_utils import tls as tls_utils

    return tls_utils.generate("kubeferry-server", "kubeferry-client")


@pytest.fixture(scope="session")
def foreign_tls():
    """Material of another run: same names, another CA."""
    from ansible_collections.kubeferry.state_transfer.plugins.module_utils import tls as tls_utils

    return tls_utils.generate("kubeferry-server", "kubeferry-client")


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("dataplane")
    os.chmod(path, 0o755)
    return str(path)


class Combo:
    """The rendered server and client fragments of one transfer/transport/mode."""

    def __init__(self, transfer, transport, mode, server, client, password, logs, endpoint):
        self.transfer = transfer
        self.transport = transport
        self.mode = mode
        self.server_run = server[0]
        self.server = server[1]
        self.client_run = client[0]
        self.client = client[1]
        self.password = password
        self.logs = logs
        self.endpoint = endpoint


@pytest.fixture(scope="session")
def rendered(session_dir, tls):
    """render(transfer, transport, mode='preserve', **extra) -> Combo, cached per session.
    ``port``: the endpoint port the client connects to, when not the server's own (something
    between them listens there)."""
    cache = {}

    def _render(transfer, transport, mode="preserve", keys=("data",), port=None, **extra):
        cache_key = (transfer, transport, mode, keys, port, json.dumps(extra, sort_keys=True))
        if cache_key in cache:
            return cache[cache_key]
        label = "{0}-{1}-{2}-{3}".format(transfer, transport, mode, len(cache))
        run_as_user = 1000 if mode == "restricted" else None
        server_run, client_runs = render.run_dicts(list(keys), mode, run_as_user)
        client_run = client_runs[keys[0]]
        password = new_password()
        subnet = secrets.randbelow(256)
        endpoint = {
            "host": "198.18.{0}.1".format(subnet),
            "port": port or (6443 if transport == "stunnel" else 8873),
            "sni": "",
        }
        common = {
            "kf_transport": transport,
            "kf_transfer": transfer,
            "transfer_{0}_password".format(transfer): password,
            "transport_stunnel_tls": tls,
        }
        common.update(extra)
        server, server_log = render.render(
            session_dir, label + "-server", dict(common, state_transfer_run=server_run)
        )
        client, client_log = render.render(
            session_dir,
            label + "-client",
            dict(common, state_transfer_run=client_run, endpoint_address=endpoint),
        )
        combo = Combo(
            transfer,
            transport,
            mode,
            (server_run, server),
            (client_run, client),
            password,
            server_log + client_log,
            endpoint,
        )
        cache[cache_key] = combo
        return combo

    return _render


@pytest.fixture
def workdir(tmp_path):
    os.chmod(tmp_path, 0o755)
    return str(tmp_path)


@pytest.fixture
def cluster_for(workdir, request):
    """cluster_for(combo) -> a Cluster whose server address is the combo's endpoint host."""
    made = []

    def cleanup():
        for cluster in made:
            cluster.cleanup()

    request.addfinalizer(cleanup)

    def _cluster(combo):
        cluster = runner.Cluster(workdir, subnet=int(combo.endpoint["host"].split(".")[2]))
        made.append(cluster)
        return cluster

    return _cluster
