import re

from ansible_collections.kubeferry.state_transfer.plugins.plugin_utils.plan import build_plan

SOURCE = {"context": "source", "namespace": "shop"}
DESTINATION = {"context": "destination", "namespace": "shop-new"}
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def test_run_id_is_stable_for_the_same_transfer():
    first = build_plan(SOURCE, DESTINATION, ["data"])
    again = build_plan(dict(SOURCE), dict(DESTINATION), [{"source": "data"}])
    assert first["id"] == again["id"]
    assert first["server"]["pod_name"] == again["server"]["pod_name"]


def test_run_id_changes_with_the_transfer():
    first = build_plan(SOURCE, DESTINATION, ["data"])
    assert first["id"] != build_plan(SOURCE, DESTINATION, ["logs"])["id"]
    assert first["id"] != build_plan(SOURCE, dict(DESTINATION, namespace="other"), ["data"])["id"]


def test_run_id_ignores_credentials():
    with_token = dict(SOURCE, api_key="secret-token")
    assert (
        build_plan(SOURCE, DESTINATION, ["data"])["id"]
        == build_plan(with_token, DESTINATION, ["data"])["id"]
    )


def kubeconfig(server, user="me", token="t0ken"):
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "main",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "main", "context": {"cluster": "c", "user": user}}],
    }


def test_run_id_follows_the_api_server_not_the_kubeconfig_file(tmp_path):
    # AWX writes each job's kubeconfig to a new temporary file: the same clusters must give
    # the same run id, so that a re-run finds what an interrupted one left.
    import yaml

    paths = {}
    for job, server in (
        ("job-1", "https://a:6443"),
        ("job-2", "https://a:6443"),
        ("x", "https://b:6443"),
    ):
        paths[job] = tmp_path / job
        paths[job].write_text(yaml.safe_dump(kubeconfig(server, token="token-of-" + job)))

    def run_id(path, destination=None):
        source = {"kubeconfig": str(path), "namespace": "shop"}
        return build_plan(
            source, destination or {"host": "https://d", "namespace": "shop"}, ["data"]
        )["id"]

    assert run_id(paths["job-1"]) == run_id(paths["job-2"])
    assert run_id(paths["job-1"]) != run_id(paths["x"])
    # An inline kubeconfig of the same cluster, or its host given directly, is the same side.
    inline = {"kubeconfig": kubeconfig("https://a:6443", user="other"), "namespace": "shop"}
    host = {"host": "https://a:6443", "namespace": "shop"}
    destination = {"host": "https://d", "namespace": "shop"}
    assert build_plan(inline, destination, ["data"])["id"] == run_id(paths["job-1"])
    assert build_plan(host, destination, ["data"])["id"] == run_id(paths["job-1"])


def test_run_id_of_an_unreadable_kubeconfig_uses_its_path(tmp_path):
    # Render mode may run where the kubeconfig does not exist: the path still tells sides apart.
    first = build_plan({"kubeconfig": str(tmp_path / "a"), "namespace": "n"}, DESTINATION, ["data"])
    second = build_plan(
        {"kubeconfig": str(tmp_path / "b"), "namespace": "n"}, DESTINATION, ["data"]
    )
    assert first["id"] != second["id"]


def test_given_run_id_is_used():
    plan = build_plan(SOURCE, DESTINATION, ["data"], run_id="move-1")
    assert plan["name"] == "kubeferry-move-1"
    assert plan["selector"] == "kubeferry.io/run=move-1"


def test_destination_defaults_to_source_name():
    plan = build_plan(
        SOURCE, DESTINATION, [{"source": "data"}, {"source": "a", "destination": "b"}]
    )
    assert [p["destination"] for p in plan["pairs"]] == ["data", "b"]


def test_server_mounts_every_source_pvc_and_clients_one_each():
    plan = build_plan(SOURCE, DESTINATION, ["data", "logs", "uploads"])
    server = plan["server"]
    assert server["namespace"] == "shop" and server["side"] == "server"
    assert [p["source"] for p in server["pvcs"]] == ["data", "logs", "uploads"]
    assert len({p["mount_path"] for p in server["pvcs"]}) == 3
    assert [c["namespace"] for c in plan["clients"]] == ["shop-new"] * 3
    assert all(len(c["pvcs"]) == 1 for c in plan["clients"])
    assert len({c["pod_name"] for c in plan["clients"]}) == 3


def test_labels_of_each_side():
    plan = build_plan(SOURCE, DESTINATION, ["data"])
    assert plan["server"]["labels"]["app.kubernetes.io/managed-by"] == "kubeferry.state_transfer"
    assert plan["server"]["labels"]["kubeferry.io/side"] == "server"
    client_labels = plan["clients"][0]["labels"]
    assert client_labels["kubeferry.io/side"] == "client"
    assert client_labels["kubeferry.io/pvc"] == "data"
    assert client_labels["kubeferry.io/run"] == plan["id"]


def test_63_character_pvc_names_give_valid_names():
    long_name = "a" * 63
    plan = build_plan(SOURCE, DESTINATION, [long_name, "a" * 62 + "b"])
    for client in plan["clients"]:
        assert len(client["pod_name"]) <= 63 and DNS1123_LABEL.match(client["pod_name"])
    keys = [pair["key"] for pair in plan["pairs"]]
    assert len(set(keys)) == 2
    assert all(len(key) <= 30 for key in keys)
    assert plan["clients"][0]["labels"]["kubeferry.io/pvc"] == long_name


def test_pvc_names_with_dots_keep_distinct_keys():
    plan = build_plan(SOURCE, DESTINATION, ["data.v1", "data-v1"])
    keys = [pair["key"] for pair in plan["pairs"]]
    assert len(set(keys)) == 2
    assert all(DNS1123_LABEL.match(key) for key in keys)
