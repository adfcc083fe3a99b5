"""Rendering: inputs are validated with messages that name the variable, never its value."""

import base64
import os

import pytest
import render


def run_render(workdir, extra_vars, check=False):
    try:
        _fragments, log = render.render(workdir, "inputs", extra_vars, check=check)
        return True, log
    except RuntimeError as error:
        return False, str(error)


@pytest.mark.parametrize("transfer", ["rsync", "rclone"])
def test_a_weak_password_is_refused_without_showing_it(workdir, tls, transfer):
    server, _clients = render.run_dicts(["data"])
    weak = "short:pw"
    ok, log = run_render(
        workdir,
        {
            "kf_transport": "null",
            "kf_transfer": transfer,
            "state_transfer_run": server,
            "transfer_{0}_password".format(transfer): weak,
        },
    )
    assert not ok
    assert "transfer_{0}_password has at least 16 letters and digits".format(transfer) in log
    assert weak not in log


def test_a_missing_input_is_named(workdir):
    server, _clients = render.run_dicts(["data"])
    ok, log = run_render(
        workdir, {"kf_transport": "null", "kf_transfer": "rsync", "state_transfer_run": server}
    )
    assert not ok
    assert "transfer_rsync_password" in log


def test_a_run_of_the_other_side_is_refused(workdir, tls):
    _server, clients = render.run_dicts(["data"])
    ok, log = run_render(
        workdir,
        {
            "kf_transport": "stunnel",
            "kf_transfer": "rsync",
            "kf_side": "server",
            "state_transfer_run": clients["data"],
            "transport_stunnel_tls": tls,
            "transfer_rsync_password": "a" * 20,
        },
    )
    assert not ok
    assert "transport_stunnel server needs state_transfer_run.side 'server'" in log


@pytest.mark.parametrize("transport", ["null", "stunnel"])
def test_rendering_works_in_check_mode(workdir, tls, transport):
    server, _clients = render.run_dicts(["data"])
    ok, log = run_render(
        workdir,
        {
            "kf_transport": transport,
            "kf_transfer": "rsync",
            "state_transfer_run": server,
            "transport_stunnel_tls": tls,
            "transfer_rsync_password": "b" * 20,
        },
        check=True,
    )
    assert ok, log
    assert os.path.exists(os.path.join(workdir, "fragments-inputs.json"))


@pytest.mark.parametrize("sni", ["", "kubeferry-abc.apps.example.test"])
def test_stunnel_client_sends_sni_only_when_there_is_one(workdir, tls, sni):
    _server, clients = render.run_dicts(["data"])
    fragments, _log = render.render(
        workdir,
        "sni",
        {
            "kf_transport": "stunnel",
            "kf_transfer": "rsync",
            "state_transfer_run": clients["data"],
            "transport_stunnel_tls": tls,
            "transfer_rsync_password": "c" * 20,
            "endpoint_address": {"host": "lb.example.test", "port": 443, "sni": sni},
        },
    )
    config = next(
        o["data"]["stunnel.conf"]
        for o in fragments["transport"]["objects"]
        if o["kind"] == "ConfigMap"
    )
    assert "connect = lb.example.test:443" in config
    assert "checkHost = kubeferry-server" in config
    assert ("sni = " + sni in config) if sni else ("sni =" not in config)


@pytest.mark.parametrize("host", ["fd00::1", "[fd00::1]"])
def test_ipv6_endpoints_are_written_as_each_program_wants_them(workdir, tls, host):
    _server, clients = render.run_dicts(["data"])
    common = {
        "state_transfer_run": clients["data"],
        "transport_stunnel_tls": tls,
        "transfer_rsync_password": "d" * 20,
        "transfer_rclone_password": "d" * 20,
        "endpoint_address": {"host": host, "port": 8873, "sni": ""},
    }
    rsync, _log = render.render(
        workdir, "v6-rsync", dict(common, kf_transport="null", kf_transfer="rsync")
    )
    assert "rsync://kubeferry@[fd00::1]:8873/data/" in rsync["transfer"]["containers"][0]["args"]
    rclone, _log = render.render(
        workdir, "v6-rclone", dict(common, kf_transport="null", kf_transfer="rclone")
    )
    secret = next(o for o in rclone["transfer"]["objects"] if o["kind"] == "Secret")
    assert (
        "url = http://[fd00::1]:8873/" in base64.b64decode(secret["data"]["rclone.conf"]).decode()
    )
    stunnel, _log = render.render(
        workdir, "v6-stunnel", dict(common, kf_transport="stunnel", kf_transfer="rsync")
    )
    config = next(o for o in stunnel["transport"]["objects"] if o["kind"] == "ConfigMap")
    assert "connect = fd00::1:8873" in config["data"]["stunnel.conf"]


@pytest.mark.parametrize(("transfer", "transport"), [("rsync", "stunnel"), ("rclone", "null")])
def test_clients_renders_each_pod_as_client_does(workdir, tls, transfer, transport):
    """The clients entry point (docs/contract.md): one fragment per run, in order, each the
    same as the client entry point renders for that run alone."""
    _server, clients = render.run_dicts(["data", "logs"])
    common = {
        "kf_transport": transport,
        "kf_transfer": transfer,
        "transfer_{0}_password".format(transfer): "A" * 24,
        "transport_stunnel_tls": tls,
        "endpoint_address": {"host": "198.18.0.10", "port": 6443, "sni": ""},
    }
    many, _log = render.render(
        workdir,
        "clients",
        dict(common, kf_side="clients", state_transfer_runs=[clients["data"], clients["logs"]]),
    )
    assert len(many["transport"]) == len(many["transfer"]) == 2
    for index, key in enumerate(["data", "logs"]):
        one, _log = render.render(
            workdir, "client-" + key, dict(common, state_transfer_run=clients[key])
        )
        assert many["transport"][index] == one["transport"], key
        assert many["transfer"][index] == one["transfer"], key
    names = [obj["metadata"]["name"] for obj in many["transfer"][1]["objects"]]
    assert all(name.startswith(clients["logs"]["pod_name"]) for name in names)
