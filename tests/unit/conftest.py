"""Shared helpers of the unit tests: API fixtures, a fake clock, and running a module."""

import copy
import gzip
import json
import pathlib
from unittest import mock

import pytest
import yaml

FIXTURES = pathlib.Path(__file__).parent / "plugins" / "fixtures"

_CACHE = {}


def api_object(kind_file, case):
    """A deep copy of one object of fixtures/<kind_file>.yaml (real API shapes)."""
    if kind_file not in _CACHE:
        with open(FIXTURES / "{0}.yaml".format(kind_file), encoding="utf-8") as handle:
            _CACHE[kind_file] = yaml.safe_load(handle)
    return copy.deepcopy(_CACHE[kind_file][case])


def log_fixture(name):
    """A transfer program's real output, captured by running it (see fixtures/logs).

    Outputs with carriage returns (rsync's progress) are kept gzipped, byte for byte: a text
    file with a carriage return fails ansible-test's line-endings sanity test.
    """
    data = (FIXTURES / "logs" / name).read_bytes()
    return (gzip.decompress(data) if name.endswith(".gz") else data).decode("utf-8")


class FakeClock:
    """time.monotonic/time.sleep stand-in: sleeping advances the clock instantly."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds

    @property
    def elapsed(self):
        return self.now - 1000.0


@pytest.fixture
def clock(monkeypatch):
    """Replace the clock of the waiter and of the transfer_progress action plugin."""
    from ansible_collections.kubeferry.state_transfer.plugins.module_utils import waiter

    fake = FakeClock()
    monkeypatch.setattr(waiter, "time", fake)
    try:
        from ansible_collections.kubeferry.state_transfer.plugins.action import (
            transfer_progress as action,
        )
    except ImportError:  # pragma: no cover - the action plugin is optional for module tests
        action = None
    if action is not None:
        monkeypatch.setattr(action, "time", fake)
    return fake


def instance(obj):
    """What the dynamic client returns for an object: a ResourceInstance."""
    from kubernetes.dynamic.resource import ResourceInstance

    return ResourceInstance(None, obj)


def listing(kind, items):
    return instance({"apiVersion": "v1", "kind": kind + "List", "metadata": {}, "items": items})


def not_found():
    from kubernetes.client.exceptions import ApiException
    from kubernetes.dynamic.exceptions import NotFoundError

    return NotFoundError(ApiException(status=404, reason="Not Found"))


def api_error(status, reason):
    from kubernetes.client.exceptions import ApiException
    from kubernetes.dynamic.exceptions import api_exception

    return api_exception(ApiException(status=status, reason=reason))


def fake_client(reads, logs=None):
    """A K8SClient stand-in: ``get`` answers ``reads`` in order, pod logs answer ``logs``."""
    client = mock.MagicMock(name="K8SClient")
    client.get.side_effect = reads if not isinstance(reads, (list, tuple)) else list(reads)
    log_get = client.resource.return_value.log.get
    if isinstance(logs, (list, tuple)):
        log_get.side_effect = [mock.Mock(data=text.encode()) for text in logs]
    else:
        log_get.return_value = mock.Mock(data=(logs or "").encode())
    return client


def patch_module_args(args):
    """The arguments a module run in-process reads, as ansible-core's test helper sets them."""
    try:
        from ansible.module_utils.testing import patch_module_args as patch
    except ImportError:  # ansible-core < 2.19: modules read basic._ANSIBLE_ARGS
        from ansible.module_utils import basic

        data = json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode("utf-8")
        return mock.patch.object(basic, "_ANSIBLE_ARGS", data)
    return patch(args)


class ModuleExit(Exception):
    def __init__(self, result, failed):
        super().__init__(result.get("msg", ""))
        self.result = result
        self.failed = failed


def run_module(module, args, client=None, check_mode=False, factory=None):
    """Run ``module.main()`` with ``args`` and a mocked client; return (result, failed).

    ``factory`` replaces kubernetes.core's get_api_client (it gets ``module=``).
    """
    from ansible.module_utils import basic

    from ansible_collections.kubeferry.state_transfer.plugins.module_utils import cluster

    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True

    def exit_json(self, **kwargs):
        raise ModuleExit(kwargs, failed=False)

    def fail_json(self, msg, **kwargs):
        kwargs["msg"] = msg
        raise ModuleExit(kwargs, failed=True)

    with (
        patch_module_args(args),
        mock.patch.object(basic.AnsibleModule, "exit_json", exit_json),
        mock.patch.object(basic.AnsibleModule, "fail_json", fail_json),
        mock.patch.object(
            cluster, "get_api_client", side_effect=factory, return_value=client
        ) as get_api_client,
    ):
        with pytest.raises(ModuleExit) as info:
            module.main()
    if get_api_client.called:
        assert get_api_client.call_args.kwargs["module"] is not None
    json.dumps(info.value.result, default=str)  # a module result must serialise
    return info.value.result, info.value.failed


@pytest.fixture
def kube():
    """The helpers above, for tests (conftest modules cannot be imported by name reliably)."""
    import types

    return types.SimpleNamespace(
        api_object=api_object,
        log_fixture=log_fixture,
        instance=instance,
        listing=listing,
        not_found=not_found,
        api_error=api_error,
        fake_client=fake_client,
        run_module=run_module,
    )
