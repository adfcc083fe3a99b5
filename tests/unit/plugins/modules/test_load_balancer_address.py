"""load_balancer_address run as a module against a mocked client."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import itertools
import socket

import pytest

from ansible_collections.kubeferry.state_transfer.plugins.module_utils import load_balancer
from ansible_collections.kubeferry.state_transfer.plugins.modules import load_balancer_address

ARGS = dict(name="kubeferry-3f9c2a1b-server", namespace="app", kubeconfig="/tmp/source.kubeconfig")
HOSTNAME = "a1b2c3d4e5f6-123456789.eu-west-1.elb.amazonaws.com"


@pytest.fixture
def dns(monkeypatch):
    """getaddrinfo that fails ``misses`` times for the hostname, then answers."""
    state = dict(misses=0, calls=0)

    def getaddrinfo(host, port, *args, **kwargs):
        state["calls"] += 1
        if host == HOSTNAME:
            if state["calls"] <= state["misses"]:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("198.18.0.31", port or 0))]
        raise AssertionError("unexpected lookup of " + host)

    monkeypatch.setattr(load_balancer.socket, "getaddrinfo", getaddrinfo)
    return state


def run(kube, reads, check_mode=False, **args):
    client = kube.fake_client(reads)
    result, failed = kube.run_module(load_balancer_address, dict(ARGS, **args), client, check_mode)
    return result, failed, client


def test_waits_for_an_ip(kube, clock):
    pending, ready = kube.api_object("services", "lb_pending"), kube.api_object("services", "lb_ip")
    result, failed, client = run(kube, [kube.instance(pending)] * 2 + [kube.instance(ready)])
    assert not failed
    assert result["changed"] is False
    assert (result["host"], result["port"], result["addresses"]) == (
        "198.18.0.20",
        6443,
        ["198.18.0.20"],
    )
    assert result["service"]["status"]["loadBalancer"]["ingress"][0]["ip"] == "198.18.0.20"
    assert clock.sleeps == [5, 5]
    client.resource.assert_called_with("Service", "v1")
    assert client.get.call_args.kwargs == dict(name="kubeferry-3f9c2a1b-server", namespace="app")


def test_waits_until_the_hostname_resolves(kube, clock, dns):
    dns["misses"] = 3
    service = kube.api_object("services", "lb_hostname")
    result, failed, _client = run(kube, [kube.instance(service)], port="tls")
    assert not failed
    assert result["host"] == HOSTNAME
    assert result["addresses"] == ["198.18.0.31"]
    assert dns["calls"] == 4
    assert clock.elapsed == 15


def test_no_ingress_times_out_asking_for_a_load_balancer_controller(kube, clock):
    pending = kube.instance(kube.api_object("services", "lb_pending"))
    result, failed, _client = run(kube, itertools.repeat(pending), wait_timeout=60)
    assert failed
    assert result["msg"].startswith(
        "Service app/kubeferry-3f9c2a1b-server got no load-balancer address "
        "(status.loadBalancer.ingress stayed empty) after 60 s: is a load-balancer controller "
        "running in this cluster? Without one, consider endpoint node_port"
    )
    assert clock.elapsed == 60


def test_hostname_that_never_resolves_is_named(kube, clock, dns):
    dns["misses"] = 10**6
    pending = kube.instance(kube.api_object("services", "lb_pending"))
    ready = kube.instance(kube.api_object("services", "lb_hostname"))
    result, failed, _client = run(kube, [pending, ready], wait_timeout=100)
    assert failed
    assert result["msg"].startswith(
        "Service app/kubeferry-3f9c2a1b-server has the load-balancer address {0}, but {0} did "
        "not resolve from the controller".format(HOSTNAME)
    )
    assert result["host"] == HOSTNAME
    # The DNS wait gets what is left of the one timeout.
    assert clock.elapsed == 100


def test_resolve_false_skips_dns(kube, clock, dns):
    dns["misses"] = 10**6
    ready = kube.instance(kube.api_object("services", "lb_hostname"))
    result, failed, _client = run(kube, [ready], resolve=False)
    assert not failed
    assert (result["host"], result["addresses"]) == (HOSTNAME, [])
    assert dns["calls"] == 0


def test_missing_service_fails_at_once(kube, clock):
    result, failed, client = run(kube, [kube.not_found()])
    assert failed
    assert result["msg"] == "Service app/kubeferry-3f9c2a1b-server not found"
    assert client.get.call_count == 1
    assert clock.elapsed == 0


def test_wrong_service_type_fails_at_once(kube, clock):
    result, failed, _client = run(kube, [kube.instance(kube.api_object("services", "clusterip"))])
    assert failed
    assert (
        result["msg"]
        == "Service app/kubeferry-3f9c2a1b-server is of type ClusterIP, not LoadBalancer"
    )


def test_unknown_port_is_named(kube, clock):
    result, failed, _client = run(
        kube, [kube.instance(kube.api_object("services", "lb_ip"))], port="ssh"
    )
    assert failed
    assert (
        result["msg"]
        == "Service app/kubeferry-3f9c2a1b-server has no port ssh; its ports: tls (6443)"
    )


def test_transient_api_errors_are_retried(kube, clock):
    ready = kube.instance(kube.api_object("services", "lb_ip"))
    result, failed, _client = run(kube, [kube.api_error(503, "Service Unavailable"), ready])
    assert not failed
    assert result["host"] == "198.18.0.20"


def test_forbidden_is_reported_not_retried(kube, clock):
    result, failed, client = run(kube, [kube.api_error(403, "Forbidden")])
    assert failed
    assert result["status"] == 403
    assert client.get.call_count == 1


def test_check_mode_without_the_service(kube, clock):
    result, failed, client = run(kube, [kube.not_found()], check_mode=True)
    assert not failed
    assert result["changed"] is False
    assert result["host"] == ""
    assert result["msg"] == (
        "Service app/kubeferry-3f9c2a1b-server does not exist yet; "
        "would wait for its load-balancer address"
    )
    assert client.get.call_count == 1


def test_check_mode_does_not_wait(kube, clock):
    pending = kube.instance(kube.api_object("services", "lb_pending"))
    result, failed, _client = run(kube, [pending], check_mode=True)
    assert not failed
    assert result["host"] == ""
    assert "would wait" in result["msg"]
    assert clock.sleeps == []
    ready = kube.instance(kube.api_object("services", "lb_ip"))
    result, failed, _client = run(kube, [ready], check_mode=True)
    assert (result["host"], result["port"]) == ("198.18.0.20", 6443)


def test_connection_options_reach_the_client_factory(kube, clock):
    ready = kube.instance(kube.api_object("services", "lb_ip"))
    client = kube.fake_client([ready])
    seen = {}

    def factory(module):
        seen.update(module.params)
        return client

    result, failed = kube.run_module(
        load_balancer_address, dict(ARGS, context="source", api_key="sekret"), factory=factory
    )
    assert not failed
    assert (seen["kubeconfig"], seen["context"], seen["api_key"]) == (
        "/tmp/source.kubeconfig",
        "source",
        "sekret",
    )


def test_an_api_that_never_answers_is_not_blamed_on_the_load_balancer(kube, clock):
    errors = (kube.api_error(503, "Service Unavailable") for _attempt in iter(int, 1))
    result, failed, _client = run(kube, errors, wait_timeout=30)
    assert failed
    assert result["msg"].startswith(
        "Could not read Service app/kubeferry-3f9c2a1b-server for 30 s:"
    )
    assert "Service Unavailable" in result["msg"]
