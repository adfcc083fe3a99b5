"""Inputs given as strings (AWX surveys, `-e key=value`) and as flat side variables."""

import pytest

from ansible_collections.kubeferry.state_transfer.plugins.plugin_utils import checks, inputs
from ansible_collections.kubeferry.state_transfer.plugins.plugin_utils.plan import (
    build_plan,
    plan_summary,
)

# Every input of the role with a valid value, as the tests of checks use them.
VALID = {
    "state_transfer_transfer": "rsync",
    "state_transfer_transport": "stunnel",
    "state_transfer_endpoint": "load_balancer",
    "state_transfer_run_id": "",
    "state_transfer_mode": "preserve",
    "state_transfer_endpoint_timeout": 600,
    "state_transfer_transfer_timeout": 86400,
    "state_transfer_progress_interval": 10,
    "state_transfer_bwlimit": "",
    "state_transfer_excludes": [],
    "state_transfer_rsync_extra_args": [],
    "state_transfer_destination_storage_class": "",
}


@pytest.mark.parametrize(
    "given, expected", [("5", 5), (" 12 ", 12), ("-1", -1), (7, 7), ("5x", "5x"), ("", "")]
)
def test_to_int(given, expected):
    assert inputs.to_int(given) == expected
    assert type(inputs.to_int(given)) is type(expected)


@pytest.mark.parametrize(
    "given, expected",
    [("true", True), ("True", True), ("yes", True), ("1", True), ("false", False)]
    + [("no", False), (" off ", False), (True, True), ("maybe", "maybe")],
)
def test_to_bool(given, expected):
    result = inputs.to_bool(given)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(
    "given",
    [
        "data, logs:logs-copy, media::fast",
        "data\nlogs:logs-copy\n\nmedia::fast\n",
        " data ,logs : logs-copy,media: :fast,",
        ["data", "logs:logs-copy", "media::fast"],
        ["data", {"source": "logs", "destination": "logs-copy"}, "media::fast"],
    ],
)
def test_pvcs_from_a_string_or_string_items(given):
    assert inputs.pvc_entries(given) == [
        "data",
        {"source": "logs", "destination": "logs-copy"},
        {"source": "media", "storage_class": "fast"},
    ]


def test_pvc_item_with_too_many_parts_is_refused_naming_it():
    assert inputs.pvc_entries("data, a:b:c:d") == ["data", "a:b:c:d"]
    errors = checks.input_errors(survey_answers(state_transfer_pvcs="data, a:b:c:d"))
    assert len(errors) == 1
    assert errors[0].startswith("state_transfer_pvcs[1].source: 'a:b:c:d' is not a valid")
    assert "'source:destination'" in errors[0]


def test_flat_side_variables_fill_the_sides():
    given = {
        "state_transfer_source": {},
        "state_transfer_source_kubeconfig": "/runner/env/tmp1",
        "state_transfer_source_context": "",
        "state_transfer_source_namespace": "shop",
        "state_transfer_destination": {"context": "dst", "validate_certs": False},
        "state_transfer_destination_kubeconfig": "/runner/env/tmp2",
        "state_transfer_destination_namespace": "shop",
    }
    normalised, errors = inputs.normalise(given)
    assert errors == []
    assert normalised["state_transfer_source"] == {
        "kubeconfig": "/runner/env/tmp1",
        "namespace": "shop",
    }
    assert normalised["state_transfer_destination"] == {
        "context": "dst",
        "validate_certs": False,
        "kubeconfig": "/runner/env/tmp2",
        "namespace": "shop",
    }


def test_a_flat_variable_may_not_contradict_the_dict():
    given = {
        "state_transfer_source": {"namespace": "shop", "kubeconfig": "/a"},
        "state_transfer_source_namespace": "shop",  # the same value: fine
        "state_transfer_source_kubeconfig": "/b",
    }
    errors = inputs.normalise(given)[1]
    assert len(errors) == 1
    assert "state_transfer_source_kubeconfig" in errors[0]
    assert "state_transfer_source.kubeconfig" in errors[0]


def survey_answers(**overrides):
    """What an AWX job passes: survey answers and credential extra vars, all strings."""
    values = dict(
        VALID,
        state_transfer_source={},
        state_transfer_destination={},
        state_transfer_source_kubeconfig="/runner/env/tmpa",
        state_transfer_source_namespace="shop",
        state_transfer_destination_kubeconfig="/runner/env/tmpb",
        state_transfer_destination_namespace="shop",
        state_transfer_pvcs="data, logs:logs-copy",
        state_transfer_parallel="5",
        state_transfer_server_timeout="600",
        state_transfer_mirror="true",
        state_transfer_compress="false",
        state_transfer_create_destination_pvcs="true",
        state_transfer_run_as_user="",
    )
    values.update(overrides)
    return values


def test_survey_strings_are_valid_inputs():
    assert checks.input_errors(survey_answers()) == []
    normalised = inputs.normalise(survey_answers())[0]
    assert normalised["state_transfer_parallel"] == 5
    assert normalised["state_transfer_mirror"] is True
    assert normalised["state_transfer_compress"] is False
    assert normalised["state_transfer_run_as_user"] is None


@pytest.mark.parametrize(
    "overrides, variable",
    [
        (dict(state_transfer_parallel="five"), "state_transfer_parallel: must be a whole number"),
        (dict(state_transfer_parallel="0"), "state_transfer_parallel: must be a whole number"),
        (dict(state_transfer_mirror="maybe"), "state_transfer_mirror: must be true or false"),
        (dict(state_transfer_pvcs=" , "), "state_transfer_pvcs: give at least one PVC"),
        (dict(state_transfer_pvcs="Data"), "state_transfer_pvcs[0].source"),
        (dict(state_transfer_source_namespace=""), "state_transfer_source_namespace"),
        (
            dict(state_transfer_mode="restricted", state_transfer_run_as_user=""),
            "state_transfer_run_as_user",
        ),
    ],
)
def test_bad_survey_strings_are_refused_naming_the_variable(overrides, variable):
    errors = checks.input_errors(survey_answers(**overrides))
    assert any(variable in error for error in errors), errors


def test_restricted_mode_takes_the_uid_as_a_string():
    given = survey_answers(state_transfer_mode="restricted", state_transfer_run_as_user="1000")
    assert checks.input_errors(given) == []


def test_plan_summary_order_and_no_credentials():
    normalised = inputs.normalise(
        survey_answers(
            state_transfer_source={"api_key": "secret-token", "host": "https://a:6443"},
            state_transfer_pvcs="a, b, c",
            state_transfer_parallel="2",
        )
    )[0]
    plan = build_plan(
        normalised["state_transfer_source"],
        normalised["state_transfer_destination"],
        normalised["state_transfer_pvcs"],
    )
    summary = plan_summary(normalised, plan)
    assert summary["parallel"] == 2
    assert summary["order"] == ["a", "b", "c"]
    assert summary["source"]["host"] == "https://a:6443"
    assert "secret-token" not in repr(summary)


def test_an_omitted_variable_is_not_set():
    # `state_transfer_run_as_user: "{{ uid | default(omit) }}"` in include_role vars.
    given = {
        "state_transfer_run_as_user": "__omit_place_holder__0123abcd",
        "state_transfer_pvcs": [],
    }
    assert "state_transfer_run_as_user" not in inputs.normalise(given)[0]
