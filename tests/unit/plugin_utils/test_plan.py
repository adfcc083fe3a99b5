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
