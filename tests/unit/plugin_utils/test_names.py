import re

import pytest

from ansible_collections.kubeferry.state_transfer.plugins.plugin_utils.names import (
    k8s_name,
    label_value,
)

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def test_valid_short_names_are_kept():
    assert k8s_name(["kubeferry-3f9c2a1b", "server", "rsync"]) == "kubeferry-3f9c2a1b-server-rsync"


def test_empty_parts_are_skipped():
    assert k8s_name(["kubeferry", "", None, "server"]) == "kubeferry-server"


@pytest.mark.parametrize(
    "parts",
    [
        ["kubeferry-3f9c2a1b", "a" * 63],
        ["kubeferry-3f9c2a1b", "Data.V1"],
        ["kubeferry", "data_with_underscores", "x" * 40],
        ["-leading-", "trailing-"],
    ],
)
def test_rewritten_names_are_valid_labels(parts):
    name = k8s_name(parts)
    assert len(name) <= 63
    assert DNS1123_LABEL.match(name), name


def test_distinct_inputs_that_clean_up_alike_stay_distinct():
    assert k8s_name(["kubeferry", "data.v1"]) != k8s_name(["kubeferry", "data-v1"])


def test_long_names_are_deterministic_and_distinct():
    first = k8s_name(["kubeferry-abc", "p" * 60 + "1"])
    assert first == k8s_name(["kubeferry-abc", "p" * 60 + "1"])
    assert first != k8s_name(["kubeferry-abc", "p" * 60 + "2"])


def test_max_length_is_honoured():
    assert len(k8s_name(["x" * 50], max_length=30)) == 30


def test_empty_name_is_an_error():
    with pytest.raises(ValueError):
        k8s_name(["", None])


@pytest.mark.parametrize("value", ["data", "Data.v1_x", "a" * 63])
def test_valid_label_values_are_kept(value):
    assert label_value(value) == value


@pytest.mark.parametrize("value", ["a" * 64, "-x-", "name with spaces", "ü" * 5])
def test_invalid_label_values_are_made_valid(value):
    result = label_value(value)
    assert len(result) <= 63
    assert LABEL_VALUE.match(result), result
    assert result


def test_a_trailing_newline_is_no_valid_name():
    # "$" would also match before a final newline; a name with one is not a name.
    from ansible_collections.kubeferry.state_transfer.plugins.plugin_utils.names import (
        is_dns1123_label,
        is_dns1123_subdomain,
    )

    assert is_dns1123_label("data") and not is_dns1123_label("data\n")
    assert is_dns1123_subdomain("a.b") and not is_dns1123_subdomain("a.b\n")
    assert k8s_name(["data\n"]) != "data\n"
