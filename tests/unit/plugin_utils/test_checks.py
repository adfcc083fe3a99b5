import pytest

from ansible_collections.kubeferry.state_transfer.plugins.plugin_utils import checks
from ansible_collections.kubeferry.state_transfer.plugins.plugin_utils.plan import build_plan

SOURCE = {"kubeconfig": "k", "context": "source", "namespace": "shop"}
DESTINATION = {"kubeconfig": "k", "context": "destination", "namespace": "shop"}


def inputs(**overrides):
    values = {
        "state_transfer_source": SOURCE,
        "state_transfer_destination": DESTINATION,
        "state_transfer_pvcs": [{"source": "data"}],
        "state_transfer_transfer": "rsync",
        "state_transfer_transport": "stunnel",
        "state_transfer_endpoint": "load_balancer",
        "state_transfer_run_id": "",
        "state_transfer_mode": "preserve",
        "state_transfer_run_as_user": None,
        "state_transfer_parallel": 5,
        "state_transfer_server_timeout": 600,
        "state_transfer_endpoint_timeout": 600,
        "state_transfer_transfer_timeout": 86400,
        "state_transfer_progress_interval": 10,
        "state_transfer_bwlimit": "",
        "state_transfer_excludes": [],
        "state_transfer_rsync_extra_args": [],
        "state_transfer_create_destination_pvcs": True,
        "state_transfer_destination_storage_class": "",
    }
    values.update(overrides)
    return values


def test_valid_inputs_have_no_errors():
    assert checks.input_errors(inputs()) == []


# (overrides, the variable the message must name, a word of the fix)
INVALID = [
    (
        dict(state_transfer_transport="null", state_transfer_endpoint="route"),
        "state_transfer_transport",
        "stunnel",
    ),
    (dict(state_transfer_pvcs=[]), "state_transfer_pvcs", "at least one"),
    (dict(state_transfer_pvcs=[{"destination": "x"}]), "state_transfer_pvcs[0]", "source"),
    (
        dict(state_transfer_pvcs=[{"source": "Bad_Name"}]),
        "state_transfer_pvcs[0].source",
        "valid PVC name",
    ),
    (
        dict(state_transfer_pvcs=[{"source": "--rsh=sh"}]),
        "state_transfer_pvcs[0].source",
        "valid PVC name",
    ),
    (
        dict(state_transfer_pvcs=[{"source": "a", "size": "1Gi"}]),
        "state_transfer_pvcs[0]",
        "unknown keys",
    ),
    (dict(state_transfer_pvcs=["a", "a"]), "state_transfer_pvcs", "more than once"),
    (
        dict(
            state_transfer_pvcs=[
                {"source": "a", "destination": "c"},
                {"source": "b", "destination": "c"},
            ]
        ),
        "state_transfer_pvcs",
        "more than once",
    ),
    (
        dict(state_transfer_destination=dict(SOURCE)),
        "state_transfer_pvcs",
        "both source and destination",
    ),
    (dict(state_transfer_source={"context": "x"}), "state_transfer_source.namespace", "namespace"),
    (
        dict(state_transfer_destination={"namespace": "Not_Valid"}),
        "state_transfer_destination.namespace",
        "",
    ),
    (dict(state_transfer_run_id="Upper"), "state_transfer_run_id", "lowercase"),
    (dict(state_transfer_run_id="x" * 21), "state_transfer_run_id", "1-20"),
    (dict(state_transfer_mode="restricted"), "state_transfer_run_as_user", "uid"),
    (
        dict(state_transfer_mode="restricted", state_transfer_run_as_user=0),
        "state_transfer_run_as_user",
        "> 0",
    ),
    (dict(state_transfer_parallel=0), "state_transfer_parallel", "> 0"),
    (dict(state_transfer_transfer_timeout=-1), "state_transfer_transfer_timeout", "> 0"),
    (dict(state_transfer_bwlimit="fast"), "state_transfer_bwlimit", "20M"),
    (dict(state_transfer_excludes=["../etc"]), "state_transfer_excludes", ".."),
    (dict(state_transfer_excludes=["- secret"]), "state_transfer_excludes", "filter rule"),
    (dict(state_transfer_excludes=["--include=*"]), "state_transfer_excludes", "option"),
    (
        dict(state_transfer_rsync_extra_args=["-e", "sh -c id"]),
        "state_transfer_rsync_extra_args",
        "not allowed",
    ),
    (
        dict(state_transfer_rsync_extra_args=["--rsh=sh"]),
        "state_transfer_rsync_extra_args",
        "not allowed",
    ),
    (
        dict(state_transfer_rsync_extra_args=["--rsync-path=touch /x"]),
        "state_transfer_rsync_extra_args",
        "not allowed",
    ),
    (
        dict(state_transfer_rsync_extra_args=["--log-file=/etc/x"]),
        "state_transfer_rsync_extra_args",
        "not allowed",
    ),
    (
        dict(state_transfer_rsync_extra_args=["--temp-dir=/tmp"]),
        "state_transfer_rsync_extra_args",
        "not allowed",
    ),
    (
        dict(state_transfer_rsync_extra_args=["--link-dest=/"]),
        "state_transfer_rsync_extra_args",
        "not allowed",
    ),
    (
        dict(state_transfer_rsync_extra_args=["--copy-links"]),
        "state_transfer_rsync_extra_args",
        "not allowed",
    ),
    (
        dict(state_transfer_rsync_extra_args=["/other/path"]),
        "state_transfer_rsync_extra_args",
        "not allowed",
    ),
    (
        dict(state_transfer_rsync_extra_args=["--bwlimit=1;id"]),
        "state_transfer_rsync_extra_args",
        "invalid value",
    ),
    (
        dict(state_transfer_transfer="rclone", state_transfer_rsync_extra_args=["--checksum"]),
        "state_transfer_rsync_extra_args",
        "only used with",
    ),
]


@pytest.mark.parametrize("overrides, variable, fix", INVALID)
def test_invalid_inputs_are_refused_naming_the_variable(overrides, variable, fix):
    errors = checks.input_errors(inputs(**overrides))
    assert errors, overrides
    assert any(variable in error and fix in error for error in errors), errors


def test_k8s_auth_environment_must_not_fill_a_side():
    environment = {"kubeconfig": False, "context": True, "host": False, "api_key": False}
    errors = checks.input_errors(
        inputs(
            k8s_auth_environment=environment,
            state_transfer_source={"kubeconfig": "k", "namespace": "a"},
            state_transfer_destination={"kubeconfig": "k", "context": "d", "namespace": "b"},
        )
    )
    assert len(errors) == 1
    assert "K8S_AUTH_CONTEXT" in errors[0] and "state_transfer_source.context" in errors[0]


def test_all_errors_are_reported_at_once():
    errors = checks.input_errors(inputs(state_transfer_parallel=0, state_transfer_bwlimit="x"))
    assert len(errors) == 2


@pytest.mark.parametrize(
    "args", [["--checksum"], ["--bwlimit=10M", "--itemize-changes"], ["--chmod=Du+w,Fo-w"]]
)
def test_allowed_rsync_args(args):
    assert checks.rsync_extra_arg_errors(args) == []


def test_same_namespace_on_different_clusters_is_fine():
    assert checks.input_errors(inputs(state_transfer_destination=dict(DESTINATION))) == []


# transport_stunnel_proxy: "host:port" of an HTTP CONNECT proxy for the stunnel client.
@pytest.mark.parametrize(
    "proxy",
    [
        "",
        None,
        "proxy.example.com:3128",
        "Proxy.Corp.Example:8080",
        "squid:1",
        "squid:65535",
        "10.0.0.1:3128",
        "[2001:db8::1]:3128",
        "[::ffff:10.0.0.1]:3128",
    ],
)
def test_a_stunnel_proxy_host_and_port_is_accepted(proxy):
    assert checks.proxy_errors(proxy, "stunnel") == []
    assert checks.input_errors(inputs(transport_stunnel_proxy=proxy)) == []


# (value, a word of the fix the message must give)
BAD_PROXIES = [
    ("proxy.example.com", "host:port"),
    ("proxy:", "host:port"),
    (":3128", "host:port"),
    ("proxy:0", "out of range"),
    ("proxy:65536", "out of range"),
    ("proxy:99999", "out of range"),
    ("proxy:123456", "host:port"),
    ("http://proxy.example.com:3128", "Leave out the scheme"),
    ("proxy:3128/", "host:port"),
    ("2001:db8::1:3128", "IPv6 address in brackets"),
    ("[10.0.0.1]:3128", "IPv6 address in brackets"),
    ("[2001:db8::zz]:3128", "IPv6 address in brackets"),
    ("999.1.1.1:3128", "IPv4"),
    ("-proxy:3128", "host name"),
    ("proxy_1:3128", "host name"),
    # Anything that could add a line or an option to stunnel's configuration.
    ("proxy:3128\n", "control characters"),
    ("proxy:3128\nverifyChain = no", "control characters"),
    ("proxy:3128\r", "control characters"),
    ("proxy :3128", "spaces"),
    (" proxy:3128", "spaces"),
    ("proxy:3128 ", "spaces"),
    ("proxy:3128\tsni=x", "spaces"),
    ("proxy:3128;x", "host:port"),
    ("proxy:3128\x00", "control characters"),
]


@pytest.mark.parametrize("proxy, fix", BAD_PROXIES, ids=[repr(p) for p, _fix in BAD_PROXIES])
def test_a_bad_stunnel_proxy_is_refused_before_anything_is_created(proxy, fix):
    errors = checks.input_errors(inputs(transport_stunnel_proxy=proxy))
    assert len(errors) == 1, errors
    assert errors[0].startswith("transport_stunnel_proxy: "), errors
    assert fix in errors[0], errors
    # The message says what to write.
    assert "1 to 65535" in errors[0], errors


def test_a_stunnel_proxy_that_is_not_a_string_is_refused():
    errors = checks.input_errors(inputs(transport_stunnel_proxy=3128))
    assert errors == [
        "transport_stunnel_proxy: 3128 is not a string; give 'host:port' of the proxy, e.g. "
        "'proxy.example.com:3128'."
    ]


def test_proxy_credentials_are_refused_and_never_repeated():
    for proxy in ("user:s3cret@proxy:3128", "http://user:s3cret@proxy:3128"):
        [error] = checks.input_errors(inputs(transport_stunnel_proxy=proxy))
        assert "credentials are not supported" in error, error
        assert "s3cret" not in error and "user" not in error, error
        assert "***@proxy:3128" in error, error


def test_a_proxy_with_the_null_transport_is_refused():
    errors = checks.input_errors(
        inputs(state_transfer_transport="null", transport_stunnel_proxy="proxy:3128")
    )
    assert errors == [
        "transport_stunnel_proxy: only the stunnel transport can go through an HTTP proxy, and "
        "state_transfer_transport is 'null'. Set state_transfer_transport: stunnel, or leave "
        "transport_stunnel_proxy empty to connect directly."
    ]
    # Without a proxy the null transport is fine; a bad proxy is named as well.
    assert checks.input_errors(inputs(state_transfer_transport="null")) == []
    both = checks.input_errors(
        inputs(state_transfer_transport="null", transport_stunnel_proxy="proxy")
    )
    assert len(both) == 2 and all(e.startswith("transport_stunnel_proxy: ") for e in both)


def pvc(name, phase="Bound", modes=("ReadWriteOnce",), size="1Gi"):
    return {
        "metadata": {"name": name},
        "spec": {
            "accessModes": list(modes),
            "resources": {"requests": {"storage": size}},
            "volumeMode": "Filesystem",
        },
        "status": {"phase": phase},
    }


def pod(name, claim, node, phase="Running"):
    return {
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}],
        },
        "status": {"phase": phase},
    }


def namespace(name, enforce=None):
    labels = {"pod-security.kubernetes.io/enforce": enforce} if enforce else {}
    return {"metadata": {"name": name, "labels": labels}}


def observed(**overrides):
    values = {
        "source_namespace": [namespace("shop")],
        "source_pvcs": [pvc("data")],
        "source_pods": [],
        "route_api_found": True,
        "destination_namespace": [namespace("shop")],
        "destination_pvcs": [],
    }
    values.update(overrides)
    return values


def preflight(pvcs=("data",), input_overrides=None, **seen):
    values = inputs(state_transfer_pvcs=list(pvcs), **(input_overrides or {}))
    plan = build_plan(
        values["state_transfer_source"],
        values["state_transfer_destination"],
        values["state_transfer_pvcs"],
    )
    return checks.cluster_preflight(values, plan, observed(**seen))


def test_a_clean_cluster_pair_passes_and_plans_the_destination_pvc():
    result = preflight()
    assert result["errors"] == [] and result["node"] == ""
    [created] = result["create_pvcs"]
    assert created["metadata"]["name"] == "data" and created["metadata"]["namespace"] == "shop"
    assert created["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert created["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "storageClassName" not in created["spec"]


def test_a_server_pod_left_by_an_interrupted_run_is_noticed():
    values = inputs(state_transfer_pvcs=["data"])
    plan = build_plan(
        values["state_transfer_source"], values["state_transfer_destination"], ["data"]
    )
    run = plan["labels"]["kubeferry.io/run"]

    def pod(run_id, side):
        labels = {"kubeferry.io/run": run_id, "kubeferry.io/side": side}
        return {"metadata": {"name": "p", "labels": labels}}

    assert preflight()["server_pod_left"] is False
    # The server of another run, or a client of this one, is not this run's server.
    others = [pod("another", "server"), pod(run, "client"), {"metadata": {"name": "app"}}]
    assert preflight(source_pods=others)["server_pod_left"] is False
    assert preflight(source_pods=others + [pod(run, "server")])["server_pod_left"] is True


def test_client_pods_left_by_an_interrupted_run_are_noticed():
    """The destination's client pods of the run are read by label: any is a leftover, and
    when they were not read the run must look (and delete) before it creates its own."""
    assert preflight(client_pods=[])["client_pods_left"] is False
    assert preflight(client_pods=[{"metadata": {"name": "c"}}])["client_pods_left"] is True
    assert preflight()["client_pods_left"] is True  # not read


def test_storage_class_override_per_pair():
    values = inputs(state_transfer_pvcs=[{"source": "data", "storage_class": "fast"}])
    plan = build_plan(SOURCE, DESTINATION, values["state_transfer_pvcs"])
    result = checks.cluster_preflight(values, plan, observed())
    assert result["create_pvcs"][0]["spec"]["storageClassName"] == "fast"


def test_missing_namespaces_are_named():
    errors = preflight(source_namespace=[], destination_namespace=[])["errors"]
    assert any("state_transfer_source.namespace" in e for e in errors)
    assert any("state_transfer_destination.namespace" in e for e in errors)


def test_missing_and_unbound_source_pvcs():
    errors = preflight(pvcs=("data", "logs"), source_pvcs=[pvc("data", phase="Pending")])["errors"]
    assert any("'logs' not found" in e and "state_transfer_pvcs[1].source" in e for e in errors)
    assert any("'data' is Pending" in e for e in errors)


def test_rwo_pvcs_in_use_pin_the_server_to_their_node():
    result = preflight(source_pods=[pod("db-0", "data", "node-a")])
    assert result["errors"] == [] and result["node"] == "node-a"


def test_rwo_pvcs_on_different_nodes_are_refused_with_the_node_names():
    result = preflight(
        pvcs=("data", "logs"),
        source_pvcs=[pvc("data"), pvc("logs")],
        source_pods=[pod("db-0", "data", "node-a"), pod("log-0", "logs", "node-b")],
    )
    assert any("node-a" in e and "node-b" in e for e in result["errors"])


def test_rwx_pvcs_do_not_pin():
    result = preflight(
        source_pvcs=[pvc("data", modes=("ReadWriteMany",))], source_pods=[pod("a", "data", "n1")]
    )
    assert result["node"] == "" and result["errors"] == []


def test_finished_pods_do_not_pin():
    result = preflight(source_pods=[pod("job", "data", "n1", phase="Succeeded")])
    assert result["node"] == ""


def test_rwop_in_use_is_refused():
    result = preflight(
        source_pvcs=[pvc("data", modes=("ReadWriteOncePod",))],
        source_pods=[pod("db-0", "data", "n1")],
    )
    assert any("ReadWriteOncePod" in e and "db-0" in e for e in result["errors"])


def test_too_small_destination_is_refused():
    errors = preflight(
        source_pvcs=[pvc("data", size="2Gi")], destination_pvcs=[pvc("data", size="1Gi")]
    )["errors"]
    assert any("smaller" in e and "state_transfer_pvcs[0].destination" in e for e in errors)


def test_existing_destination_large_enough_is_used_not_created():
    result = preflight(
        source_pvcs=[pvc("data", size="1Gi")], destination_pvcs=[pvc("data", size="1024Mi")]
    )
    assert result["errors"] == [] and result["create_pvcs"] == []


def test_missing_destination_without_creation_is_refused():
    errors = preflight(input_overrides={"state_transfer_create_destination_pvcs": False})["errors"]
    assert any("state_transfer_create_destination_pvcs" in e for e in errors)


def test_route_without_route_api_is_refused():
    errors = preflight(input_overrides={"state_transfer_endpoint": "route"}, route_api_found=False)[
        "errors"
    ]
    assert any("route.openshift.io" in e for e in errors)


def test_restricted_pod_security_refuses_preserve_mode_only():
    errors = preflight(source_namespace=[namespace("shop", "restricted")])["errors"]
    assert any("state_transfer_mode: restricted" in e for e in errors)
    restricted = {"state_transfer_mode": "restricted", "state_transfer_run_as_user": 1000}
    assert (
        preflight(input_overrides=restricted, source_namespace=[namespace("shop", "restricted")])[
            "errors"
        ]
        == []
    )


def test_a_run_id_or_bandwidth_with_a_trailing_newline_is_refused():
    errors = checks.input_errors(inputs(state_transfer_run_id="abc\n"))
    assert any(e.startswith("state_transfer_run_id") for e in errors), errors
    errors = checks.input_errors(inputs(state_transfer_bwlimit="20M\n"))
    assert any(e.startswith("state_transfer_bwlimit") for e in errors), errors
