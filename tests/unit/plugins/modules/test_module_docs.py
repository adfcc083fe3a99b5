"""Every module's DOCUMENTATION matches its argument spec; EXAMPLES and RETURN parse."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
import yaml

from ansible_collections.kubeferry.state_transfer.plugins.modules import (
    endpoint_address,
    load_balancer_address,
    pod_wait,
    tls_material,
    transfer_progress,
)
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC

FQCN = "kubeferry.state_transfer."


def tls_spec():
    captured = {}

    class Stop(Exception):
        pass

    def capture(**kwargs):
        captured.update(kwargs["argument_spec"])
        raise Stop

    tls_material.AnsibleModule, original = capture, tls_material.AnsibleModule
    try:
        with pytest.raises(Stop):
            tls_material.main()
    finally:
        tls_material.AnsibleModule = original
    return captured


CASES = {
    "load_balancer_address": (load_balancer_address, load_balancer_address.argspec),
    "endpoint_address": (endpoint_address, endpoint_address.argspec),
    "pod_wait": (pod_wait, pod_wait.argspec),
    "tls_material": (tls_material, tls_spec),
    "transfer_progress": (transfer_progress, transfer_progress.argspec),
}


def compare(doc_options, spec, where):
    assert set(doc_options) == set(spec), where
    for name, option in spec.items():
        doc = doc_options[name]
        assert doc.get("type", "str") == option.get("type", "str"), (where, name)
        assert doc.get("default") == option.get("default"), (where, name)
        assert doc.get("choices") == option.get("choices"), (where, name)
        assert bool(doc.get("required")) == bool(option.get("required")), (where, name)
        assert doc.get("elements") == option.get("elements"), (where, name)
        if option.get("options"):
            compare(doc["suboptions"], option["options"], "{0}.{1}".format(where, name))


@pytest.mark.parametrize("name", sorted(CASES))
def test_documented_options_match_the_argument_spec(name):
    module, argspec = CASES[name]
    doc = yaml.safe_load(module.DOCUMENTATION)
    assert doc["module"] == name
    spec = argspec()
    fragments = doc.get("extends_documentation_fragment") or []
    if name != "tls_material":
        assert fragments == ["kubernetes.core.k8s_auth_options"]
        for option in AUTH_ARG_SPEC:
            assert spec.pop(option) == AUTH_ARG_SPEC[option]
    else:
        assert fragments == []
    compare(doc["options"], spec, name)


@pytest.mark.parametrize("name", sorted(CASES))
def test_examples_use_fqcn_and_return_parses(name):
    module, _argspec = CASES[name]
    examples = yaml.safe_load(module.EXAMPLES)
    assert examples
    for task in examples:
        modules = [key for key in task if key.startswith(FQCN)]
        others = [key for key in task if "." in key and key not in modules]
        assert modules or all(key.startswith("ansible.builtin.") for key in others), task
    assert isinstance(yaml.safe_load(module.RETURN), dict)


def test_secrets_are_no_log():
    spec = load_balancer_address.argspec()
    assert spec["api_key"]["no_log"] and spec["kubeconfig"]["no_log"] and spec["password"]["no_log"]
