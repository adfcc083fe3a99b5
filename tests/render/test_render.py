"""Every combination rendered without a cluster: valid objects, the security properties."""

import json
import os
import re

import jsonschema
import kubernetes_validate
import pytest
import yaml

from .conftest import PASSWORD, ROOT, SEVERAL_PVCS, combinations, load_side, render_runs

pytestmark = pytest.mark.render

KUBERNETES_VERSION = "1.33"
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
ROUTE_CRD = os.path.join(ROOT, "tests", "clusters", "manifests", "route-crd.yaml")
CASES = [combo + (n, "preserve") for combo in combinations() for n in (1, len(SEVERAL_PVCS))] + [
    (transfer, "stunnel", "load_balancer", 1, "restricted") for transfer in ("rsync", "rclone")
]


def case_id(case):
    return "-".join(str(part) for part in case)


def objects_of(rendered, case, side=None):
    sides = [side] if side else ["source", "destination"]
    return [obj for name in sides for obj in rendered[case][name]]


def pods(objects):
    return [obj for obj in objects if obj["kind"] == "Pod"]


def route_schema():
    with open(ROUTE_CRD) as handle:
        crd = yaml.safe_load(handle)
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_every_object_is_valid_for_kubernetes(rendered, case):
    for obj in objects_of(rendered, case):
        if obj["kind"] == "Route":
            jsonschema.validate(obj, route_schema())
        else:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_names_and_labels(rendered, case):
    run_ids = set()
    for obj in objects_of(rendered, case):
        name = obj["metadata"]["name"]
        assert len(name) <= 63 and DNS1123_LABEL.match(name), name
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "kubeferry.state_transfer"
        assert labels["kubeferry.io/side"] in ("server", "client")
        run_ids.add(labels["kubeferry.io/run"])
    assert len(run_ids) == 1


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_one_server_and_one_client_per_pvc(rendered, case):
    n_pvcs = case[3]
    [server] = pods(objects_of(rendered, case, "source"))
    clients = pods(objects_of(rendered, case, "destination"))
    assert len(clients) == n_pvcs
    claims = [
        v["persistentVolumeClaim"]
        for v in server["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert len(claims) == n_pvcs and all(claim["readOnly"] is True for claim in claims)
    pvc_volumes = {v["name"] for v in server["spec"]["volumes"] if "persistentVolumeClaim" in v}
    for container in server["spec"]["containers"]:
        for mount in container.get("volumeMounts", []):
            if mount["name"] in pvc_volumes:
                assert mount.get("readOnly") is True, (container["name"], mount)
    for client in clients:
        [claim] = [
            v["persistentVolumeClaim"]
            for v in client["spec"]["volumes"]
            if "persistentVolumeClaim" in v
        ]
        assert not claim.get("readOnly")
        assert client["metadata"]["labels"]["kubeferry.io/pvc"]
    destinations = {
        v["persistentVolumeClaim"]["claimName"]
        for c in clients
        for v in c["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert len(destinations) == n_pvcs


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_pods_have_no_api_access_and_no_secrets_in_their_spec(rendered, case):
    for pod in pods(objects_of(rendered, case)):
        spec = pod["spec"]
        assert spec["automountServiceAccountToken"] is False
        # The kubelet restarts a server whose daemon died; a client runs once.
        side = pod["metadata"]["labels"]["kubeferry.io/side"]
        assert spec["restartPolicy"] == {"server": "Always", "client": "Never"}[side]
        text = json.dumps(pod)
        assert PASSWORD not in text
        assert "PRIVATE KEY" not in text
        for container in spec["containers"]:
            for env in container.get("env", []):
                assert "secretKeyRef" not in json.dumps(env), (container["name"], env)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_no_secret_value_in_any_written_file_or_the_output(rendered, case):
    for obj in objects_of(rendered, case):
        text = json.dumps(obj)
        assert PASSWORD not in text
        if obj["kind"] != "Secret":
            assert "PRIVATE KEY" not in text, obj["metadata"]["name"]
        else:
            assert all(value == "<generated at run time>" for value in obj["stringData"].values())
    assert PASSWORD not in rendered["__stdout__"]


@pytest.mark.parametrize("case", [c for c in CASES if c[1] == "stunnel"], ids=case_id)
def test_stunnel_exposes_only_tls(rendered, case):
    source = objects_of(rendered, case, "source")
    [service] = [obj for obj in source if obj["kind"] == "Service"]
    [server] = pods(source)
    ports = {
        port["name"]: (container["name"], port["containerPort"])
        for container in server["spec"]["containers"]
        for port in container.get("ports", [])
    }
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in ports
        container, _container_port = ports[port["targetPort"]]
        assert container == "transport", "the Service must reach stunnel, not the transfer daemon"
    configs = " ".join(
        json.dumps(obj.get("data", {})) for obj in source if obj["kind"] == "ConfigMap"
    )
    configs += json.dumps(server["spec"]["containers"])
    assert "127.0.0.1" in configs


@pytest.mark.parametrize("case", [c for c in CASES if c[2] == "route"], ids=case_id)
def test_route_is_passthrough_exactly_when_tls(rendered, case):
    [route] = [obj for obj in objects_of(rendered, case, "source") if obj["kind"] == "Route"]
    if case[1] == "stunnel":
        assert route["spec"]["tls"]["termination"] == "passthrough"
    else:
        assert "tls" not in route["spec"]
    annotations = route["metadata"]["annotations"]
    # Both idle timeouts of the router, the tunnel one being what a passthrough Route gets.
    assert annotations["haproxy.router.openshift.io/timeout"] == "24h"
    assert annotations["haproxy.router.openshift.io/timeout-tunnel"] == "24h"


@pytest.mark.parametrize("case", [c for c in CASES if c[4] == "restricted"], ids=case_id)
def test_restricted_mode_runs_as_non_root_without_capabilities(rendered, case):
    for pod in pods(objects_of(rendered, case)):
        context = pod["spec"]["securityContext"]
        assert context["runAsNonRoot"] is True and context["runAsUser"] == 1000
        for container in pod["spec"]["containers"]:
            capabilities = container.get("securityContext", {}).get("capabilities", {})
            assert not capabilities.get("add"), container["name"]
            assert container["securityContext"].get("allowPrivilegeEscalation") is False


def test_unsupported_combination_is_refused_before_anything_is_written(tmp_path):
    render_dir = tmp_path / "out"
    spec = {
        "dir": str(render_dir),
        "source": {"namespace": "a"},
        "destination": {"namespace": "b"},
        "pvcs": [{"source": "data"}],
        "transfer": "rsync",
        "transport": "null",
        "endpoint": "route",
    }
    result = render_runs(tmp_path, [spec])
    assert result.returncode != 0
    assert "SNI" in result.stdout and "state_transfer_transport: stunnel" in result.stdout
    assert not render_dir.exists()


def stunnel_configs(objects):
    """{config name: [(option, value), ...]} of the stunnel.conf files among the objects."""
    configs = {}
    for obj in objects:
        if obj["kind"] == "ConfigMap" and "stunnel.conf" in obj.get("data", {}):
            lines = obj["data"]["stunnel.conf"].splitlines()
            options = [
                tuple(part.strip() for part in line.split("=", 1))
                for line in lines
                if "=" in line and not line.lstrip().startswith(";")
            ]
            configs[obj["metadata"]["name"]] = options
    return configs


def values_of(options, name):
    return [value for option, value in options if option == name]


@pytest.mark.parametrize("case", [c for c in CASES if c[1] == "stunnel"], ids=case_id)
def test_stunnel_client_dials_the_endpoint_directly_without_a_proxy(rendered, case):
    """transport_stunnel_proxy unset (the default): no CONNECT, the endpoint is dialled."""
    clients = stunnel_configs(objects_of(rendered, case, "destination"))
    assert len(clients) == case[3]
    for options in clients.values():
        assert values_of(options, "connect") == ["server-endpoint.invalid:443"]
        assert values_of(options, "protocol") == []
        assert values_of(options, "protocolHost") == []
    for options in stunnel_configs(objects_of(rendered, case, "source")).values():
        assert values_of(options, "protocol") == []


# (transport_stunnel_proxy, endpoint) -> what the client's stunnel dials.
PROXY_CASES = {
    ("proxy.example.com:3128", "load_balancer"): "proxy.example.com:3128",
    # IPv6: stunnel's connect splits at the last colon, without brackets.
    ("[2001:db8::1]:3128", "route"): "2001:db8::1:3128",
}


def test_stunnel_client_goes_through_the_proxy_when_set(tmp_path):
    specs = []
    for index, (proxy, endpoint) in enumerate(PROXY_CASES):
        specs.append(
            {
                "dir": str(tmp_path / "out-{0}".format(index)),
                "source": {"context": "source", "namespace": "shop"},
                "destination": {"context": "destination", "namespace": "shop-new"},
                "pvcs": SEVERAL_PVCS,
                "transfer": "rsync" if index == 0 else "rclone",
                "transport": "stunnel",
                "endpoint": endpoint,
                "host_vars": {"transport_stunnel_proxy": proxy},
            }
        )
    result = render_runs(tmp_path, specs)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    for spec, dialled in zip(specs, PROXY_CASES.values()):
        clients = stunnel_configs(load_side(spec["dir"], "destination"))
        assert len(clients) == len(SEVERAL_PVCS)
        for options in clients.values():
            assert values_of(options, "connect") == [dialled]
            assert values_of(options, "protocol") == ["connect"]
            # The proxy is asked for the endpoint's address and port.
            assert values_of(options, "protocolHost") == ["server-endpoint.invalid:443"]
            # TLS through the tunnel is checked exactly as without a proxy.
            assert values_of(options, "checkHost") == ["kubeferry-server"]
            assert values_of(options, "verifyChain") == ["yes"]
            for option in ("protocolUsername", "protocolPassword", "protocolAuthentication"):
                assert values_of(options, option) == []
        # The server side does not use the proxy.
        for options in stunnel_configs(load_side(spec["dir"], "source")).values():
            assert values_of(options, "protocol") == []
            assert not any("3128" in value for _option, value in options)


def test_a_bad_or_unusable_proxy_is_refused_before_anything_is_written(tmp_path):
    base = {
        "source": {"namespace": "a"},
        "destination": {"namespace": "b"},
        "pvcs": [{"source": "data"}],
        "transfer": "rsync",
        "endpoint": "load_balancer",
    }
    specs = [
        # A value that would add a line to stunnel's configuration.
        dict(
            base,
            dir=str(tmp_path / "injected"),
            transport="stunnel",
            host_vars={"transport_stunnel_proxy": "proxy:3128\nverifyChain = no"},
        ),
        dict(
            base,
            dir=str(tmp_path / "null"),
            transport="null",
            host_vars={"transport_stunnel_proxy": "proxy:3128"},
        ),
    ]
    result = render_runs(tmp_path, specs)
    assert result.returncode != 0
    assert "transport_stunnel_proxy" in result.stdout
    assert "is not 'host:port' of an HTTP proxy" in result.stdout, result.stdout[-4000:]
    assert "only the stunnel transport can go through an HTTP proxy" in result.stdout
    for spec in specs:
        assert not os.path.exists(spec["dir"]), spec["dir"]
