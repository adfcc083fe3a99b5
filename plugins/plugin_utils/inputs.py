# Copyright: kubeferry developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role's inputs as its tasks read them, whatever form the caller gave them in.

AWX/Tower surveys and `ansible-playbook -e key=value` pass answers as strings ("5",
"true", "data, logs:logs-copy"). Ansible's role argument validation accepts such strings
for int, bool and list options but does not convert the variables, and extra vars cannot be
overridden by the role, so the conversion happens here, once, for every task.

AWX credentials can only inject flat string extra vars, so a side's kubeconfig, context and
namespace may also come as state_transfer_<side>_<key> (docs/awx.md); they are merged into
state_transfer_source / state_transfer_destination here.

Values that do not convert are left as they are: checks.input_errors names them.
"""

import re

from ansible.module_utils.parsing.convert_bool import BOOLEANS_FALSE, BOOLEANS_TRUE

INTEGERS = (
    "state_transfer_parallel",
    "state_transfer_server_timeout",
    "state_transfer_endpoint_timeout",
    "state_transfer_transfer_timeout",
    "state_transfer_progress_interval",
    "state_transfer_run_as_user",
)
BOOLEANS = (
    "state_transfer_mirror",
    "state_transfer_compress",
    "state_transfer_create_destination_pvcs",
    "state_transfer_network_policy",
)
# Lists that may come as one string of items separated by commas, spaces or new lines.
STRING_LISTS = ("state_transfer_network_policy_source_ranges",)
SIDES = ("state_transfer_source", "state_transfer_destination")
# The keys of a side that have a flat variable (state_transfer_source_kubeconfig, ...).
FLAT_SIDE_KEYS = ("kubeconfig", "context", "namespace")
_INTEGER = re.compile(r"^\s*[-+]?[0-9]+\s*$")


def to_int(value):
    """Turn "5" into 5; leave anything else unchanged."""
    if isinstance(value, str) and _INTEGER.match(value):
        return int(value)
    return value


def to_bool(value):
    """Turn "true"/"yes"/"on"/"1" into True and "false"/"no"/"off"/"0" into False."""
    if isinstance(value, str):
        word = value.strip().lower()
        if word in BOOLEANS_TRUE:
            return True
        if word in BOOLEANS_FALSE:
            return False
    return value


def string_list(value):
    """Items of "203.0.113.0/24, 198.51.100.7/32" (commas, spaces or new lines between
    them: an AWX text answer) as a list; anything else unchanged."""
    if isinstance(value, str):
        return [item for item in re.split(r"[,\s]+", value) if item]
    return value


def pvc_entries(value):
    """PVC pairs from a list or from a string such as "data, logs:logs-copy".

    Items are separated by commas or new lines (an AWX textarea); an item is
    'source', 'source:destination' or 'source:destination:storage_class' (':' is never
    part of a Kubernetes name; an item with more parts stays as it is, and
    checks.pvc_errors names it).
    """
    if isinstance(value, str):
        value = [item.strip() for item in re.split(r"[,\n]", value)]
        value = [item for item in value if item]
    if not isinstance(value, list):
        return value
    entries = []
    for entry in value:
        if isinstance(entry, str) and 0 < entry.count(":") < 3:
            parts = [part.strip() for part in entry.split(":")]
            source, destination, storage_class = parts + [""] * (3 - len(parts))
            entry = {"source": source}
            if destination:
                entry["destination"] = destination
            if storage_class:
                entry["storage_class"] = storage_class
        entries.append(entry)
    return entries


def merge_side(side, given, variable):
    """A side's dict with its flat variables (state_transfer_source_namespace, ...) filled in.

    given: every input (the flat variables are read from it). Returns (side, errors); a
    flat variable that contradicts the dict is an error, not a silent choice.
    """
    if side is None:
        side = {}
    if not isinstance(side, dict):
        return side, []  # checks.connection_errors names it
    merged, errors = dict(side), []
    for key in FLAT_SIDE_KEYS:
        flat = "{0}_{1}".format(variable, key)
        value = given.get(flat)
        if value in (None, ""):
            continue  # an empty AWX credential field or survey answer means "not set"
        if merged.get(key) not in (None, "") and merged[key] != value:
            errors.append(
                "{0}: {1!r} contradicts {2}.{3}: {4!r}; set only one of them.".format(
                    flat, value, variable, key, merged[key]
                )
            )
            continue
        merged[key] = value
    return merged, errors


def _omitted(value):
    """Ansible's placeholder for `{{ x | default(omit) }}` used as a variable's value (in
    include_role vars): an object in ansible-core 2.19, a marked string before."""
    return type(value).__name__ == "_OmitType" or (
        isinstance(value, str) and value.startswith("__omit_place_holder__")
    )


def normalise(given):
    """(inputs with strings converted and flat side variables merged, errors)."""
    # An omitted variable is not set.
    inputs = dict((name, value) for name, value in given.items() if not _omitted(value))
    errors = []
    for variable in INTEGERS:
        if variable in inputs:
            inputs[variable] = to_int(inputs[variable])
    # A blank optional survey answer means "not set".
    if inputs.get("state_transfer_run_as_user") == "":
        inputs["state_transfer_run_as_user"] = None
    for variable in BOOLEANS:
        if variable in inputs:
            inputs[variable] = to_bool(inputs[variable])
    for variable in STRING_LISTS:
        if variable in inputs:
            inputs[variable] = string_list(inputs[variable])
    if "state_transfer_pvcs" in inputs:
        inputs["state_transfer_pvcs"] = pvc_entries(inputs["state_transfer_pvcs"])
    for variable in SIDES:
        inputs[variable], side_errors = merge_side(inputs.get(variable), inputs, variable)
        errors += side_errors
    return inputs, errors
