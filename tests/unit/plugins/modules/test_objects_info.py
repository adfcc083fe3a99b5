"""objects_info run as a module against a mocked client."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kubeferry.state_transfer.plugins.modules import objects_info

AUTH = dict(kubeconfig="/tmp/source.kubeconfig")
NAMESPACE = dict(key="namespace", kind="Namespace", name="shop")
PODS = dict(key="pods", kind="Pod", namespace="shop")
ROUTES = dict(
    key="routes",
    kind="Route",
    api_version="route.openshift.io/v1",
    namespace="shop",
    label_selectors=["kubeferry.io/run=3f9c2a1b", "kubeferry.io/side=server"],
    optional=True,
)


def run(kube, client, *queries, check_mode=False):
    return kube.run_module(objects_info, dict(AUTH, queries=list(queries)), client, check_mode)


def no_routes(kind, api_version):
    from kubernetes.dynamic.exceptions import ResourceNotFoundError

    if kind == "Route":
        raise ResourceNotFoundError("No matches found for {'kind': 'Route'}")
    return kind


def test_reads_every_query_in_one_run_by_key(kube):
    shop = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
    pod = kube.api_object("pods", "running_ready")
    client = kube.fake_client([kube.instance(shop), kube.listing("Pod", [pod])])
    result, failed = run(kube, client, NAMESPACE, PODS)
    assert not failed and result["changed"] is False
    assert result["resources"]["namespace"] == [shop]
    assert [p["metadata"]["name"] for p in result["resources"]["pods"]] == [pod["metadata"]["name"]]
    assert result["api_found"] == {"namespace": True, "pods": True}
    # A named object is a GET of that name; a kind in a namespace is a LIST there.
    first, second = client.get.call_args_list
    assert first.kwargs == dict(name="shop", namespace=None)
    assert second.kwargs == dict(namespace="shop")


def test_a_missing_named_object_is_an_empty_list(kube):
    result, failed = run(kube, kube.fake_client([kube.not_found()]), NAMESPACE)
    assert not failed
    assert result["resources"] == {"namespace": []}


def test_labels_select_what_is_listed(kube):
    routes = dict(ROUTES, optional=False)
    client = kube.fake_client([kube.listing("Route", [])])
    result, failed = run(kube, client, routes)
    assert not failed and result["resources"] == {"routes": []}
    client.resource.assert_called_with("Route", "route.openshift.io/v1")
    assert client.get.call_args.kwargs == dict(
        namespace="shop", label_selector="kubeferry.io/run=3f9c2a1b,kubeferry.io/side=server"
    )


def test_an_optional_kind_the_cluster_does_not_serve_is_not_found(kube):
    client = kube.fake_client([kube.listing("Pod", [])])
    client.resource.side_effect = no_routes
    result, failed = run(kube, client, ROUTES, PODS)
    assert not failed
    assert result["api_found"] == {"routes": False, "pods": True}
    assert result["resources"] == {"routes": [], "pods": []}


def test_a_required_kind_the_cluster_does_not_serve_fails(kube):
    client = kube.fake_client([])
    client.resource.side_effect = no_routes
    result, failed = run(kube, client, dict(ROUTES, optional=False))
    assert failed
    assert result["msg"].startswith("The cluster does not serve Route (route.openshift.io/v1)")


def test_a_skipped_query_is_not_read(kube):
    client = kube.fake_client([kube.listing("Pod", [])])
    result, failed = run(kube, client, dict(ROUTES, skip=True), PODS)
    assert not failed
    assert result["resources"] == {"pods": []} and result["api_found"] == {"pods": True}
    assert client.get.call_count == 1
    assert [c.args for c in client.resource.call_args_list] == [("Pod", "v1")]


def test_a_refused_request_fails_with_the_servers_words(kube):
    client = kube.fake_client([kube.api_error(403, "Forbidden")])
    result, failed = run(kube, client, PODS)
    assert failed and result["status"] == 403
    assert "Forbidden" in result["msg"]


def test_an_unreachable_server_names_what_was_read(kube):
    from urllib3.exceptions import MaxRetryError

    error = MaxRetryError(None, "/api/v1/namespaces/shop/pods", "Connection refused")
    result, failed = run(kube, kube.fake_client([error]), PODS)
    assert failed
    assert result["msg"].startswith("Cannot read Pod objects in shop: ")
    assert "Connection refused" in result["msg"]


def test_a_key_used_twice_is_refused(kube):
    result, failed = run(kube, kube.fake_client([]), PODS, dict(PODS, namespace="other"))
    assert failed
    assert result["msg"] == "queries: each key must be used once; repeated: pods"


def test_check_mode_reads_the_same(kube):
    client = kube.fake_client([kube.listing("Pod", [])])
    result, failed = run(kube, client, PODS, check_mode=True)
    assert not failed and result["resources"] == {"pods": []}


def test_managed_fields_are_left_out(kube):
    pod = kube.api_object("pods", "running_ready")
    pod["metadata"]["managedFields"] = [{"manager": "kubelet", "operation": "Update"}]
    client = kube.fake_client([kube.listing("Pod", [pod])])
    result, failed = run(kube, client, PODS)
    assert not failed
    [read] = result["resources"]["pods"]
    assert "managedFields" not in read["metadata"]
    assert read["metadata"]["name"] == pod["metadata"]["name"] and read["spec"] == pod["spec"]
