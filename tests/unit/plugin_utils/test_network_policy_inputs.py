"""state_transfer_network_policy and its source ranges: converted like survey answers,
refused before anything is created when they cannot become a valid NetworkPolicy."""

import pytest

from ansible_collections.kubeferry.state_transfer.plugins.plugin_utils import checks, inputs
from ansible_collections.kubeferry.state_transfer.plugins.plugin_utils.plan import (
    build_plan,
    plan_summary,
)

SOURCE = {"kubeconfig": "k", "context": "source", "namespace": "shop"}
DESTINATION = {"kubeconfig": "k", "context": "destination", "namespace": "shop"}
RANGES = "state_transfer_network_policy_source_ranges"


def given(**overrides):
    values = {
        "state_transfer_source": SOURCE,
        "state_transfer_destination": DESTINATION,
        "state_transfer_pvcs": [{"source": "data"}],
        "state_transfer_transfer": "rsync",
        "state_transfer_transport": "stunnel",
        "state_transfer_endpoint": "load_balancer",
        "state_transfer_mode": "preserve",
        "state_transfer_parallel": 5,
        "state_transfer_network_policy": True,
        RANGES: [],
    }
    values.update(overrides)
    return values


@pytest.mark.parametrize(
    "value, expected", [(True, True), ("true", True), ("no", False), ("False", False)]
)
def test_network_policy_is_a_boolean_also_as_a_string(value, expected):
    normalised, errors = inputs.normalise(given(state_transfer_network_policy=value))
    assert errors == [] and normalised["state_transfer_network_policy"] is expected
    assert checks.input_errors(given(state_transfer_network_policy=value)) == []


def test_network_policy_that_is_not_a_boolean_is_refused():
    errors = checks.input_errors(given(state_transfer_network_policy="maybe"))
    assert errors == ["state_transfer_network_policy: must be true or false, got 'maybe'."]


@pytest.mark.parametrize(
    "value, expected",
    [
        ([], []),
        (["203.0.113.0/24", "2001:db8::/32"], ["203.0.113.0/24", "2001:db8::/32"]),
        # An AWX text answer or -e key=value.
        ("203.0.113.0/24, 198.51.100.7/32\n2001:db8::/32", None),
        ("", []),
    ],
)
def test_source_ranges_are_valid_cidr_lists(value, expected):
    normalised, _errors = inputs.normalise(given(**{RANGES: value}))
    if expected is None:
        expected = ["203.0.113.0/24", "198.51.100.7/32", "2001:db8::/32"]
    assert normalised[RANGES] == expected
    assert checks.input_errors(given(**{RANGES: value})) == []


@pytest.mark.parametrize(
    "value, fix",
    [
        (["203.0.113.10"], "Write '203.0.113.10/32' for that address alone."),
        (["203.0.113.10/24"], "write '203.0.113.0/24' for the whole block or '203.0.113.10/32'"),
        (["2001:db8::1/64"], "write '2001:db8::/64' for the whole block or '2001:db8::1/128'"),
        (["everyone"], "give an address block with its prefix length"),
        (["10.0.0.0/33"], "give an address block with its prefix length"),
        ([24], "give an address block with its prefix length"),
        ({"cidr": "10.0.0.0/8"}, "must be a list of CIDRs"),
    ],
)
def test_bad_source_ranges_are_refused_naming_the_variable_and_the_fix(value, fix):
    errors = checks.input_errors(given(**{RANGES: value}))
    assert len(errors) == 1 and errors[0].startswith(RANGES + ": "), errors
    assert fix in errors[0]


def test_the_plan_shows_the_policy_settings():
    normalised, _errors = inputs.normalise(
        given(state_transfer_network_policy="false", **{RANGES: "203.0.113.0/24"})
    )
    plan = build_plan(SOURCE, DESTINATION, normalised["state_transfer_pvcs"], run_id="r1")
    settings = plan_summary(normalised, plan)["settings"]
    assert settings["network_policy"] is False
    assert settings["network_policy_source_ranges"] == ["203.0.113.0/24"]
