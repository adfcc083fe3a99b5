"""The README's variable table, the role defaults and the argument specs say the same."""

import os
import re

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLE = os.path.join(ROOT, "roles", "state_transfer")


def load(*parts):
    with open(os.path.join(*parts)) as handle:
        return yaml.safe_load(handle) if parts[-1].endswith(".yml") else handle.read()


def test_every_option_is_in_the_readme_and_the_defaults():
    options = load(ROLE, "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
    defaults = load(ROLE, "defaults", "main.yml")
    readme = load(ROOT, "README.md")
    documented = set(re.findall(r"^\| `(state_transfer_[a-z_]+)` \|", readme, re.MULTILINE))
    assert documented == set(options), "README table and argument spec differ"
    assert set(defaults) == set(options), "defaults/main.yml and argument spec differ"
    for name, spec in options.items():
        if "default" in spec:
            assert defaults[name] == spec["default"], name


def test_every_part_role_documents_its_inputs():
    # state_transfer's variables are the collection README's table (test above).
    for role in sorted(set(os.listdir(os.path.join(ROOT, "roles"))) - {"state_transfer"}):
        specs = load(ROOT, "roles", role, "meta", "argument_specs.yml")["argument_specs"]
        readme = load(ROOT, "roles", role, "README.md")
        defaults_file = os.path.join(ROOT, "roles", role, "defaults", "main.yml")
        defaults = load(defaults_file) if os.path.exists(defaults_file) else {}
        for entry, spec in specs.items():
            for name in spec.get("options", {}):
                if name.startswith(role + "_"):
                    assert name in readme, "{0}: {1} ({2}) not in its README".format(
                        role, name, entry
                    )
        for name in defaults or {}:
            assert any(name in spec.get("options", {}) for spec in specs.values()), (role, name)


def test_the_readme_matrix_is_the_one_make_matrix_checks():
    """README's compatibility table and tests/matrix/expected.yml: same rows, same states;
    and a refused row is exactly what the preflight refuses."""
    from ansible_collections.kubeferry.state_transfer.plugins.plugin_utils import checks

    expected = load(ROOT, "tests", "matrix", "expected.yml")
    readme = load(ROOT, "README.md")
    section = readme.split("## Compatibility matrix", 1)[1].split("\n## ", 1)[0]
    section = section.strip().split("\n\n", 1)[0]  # the first table; make matrix's comes later
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("| rsync") or line.startswith("| rclone")
    ]
    header = next(line for line in section.splitlines() if line.startswith("| transfer"))
    endpoints = [cell.strip() for cell in header.strip("|").split("|")][2:]
    from_readme = {}
    for transfer, transport, *cells in rows:
        for endpoint, cell in zip(endpoints, cells):
            state = "refused" if cell.startswith("**refused**") else cell.split()[0].strip(",")
            from_readme[(transfer, transport, endpoint)] = state
    from_expected = {(r["transfer"], r["transport"], r["endpoint"]): r["state"] for r in expected}
    assert len(from_expected) == 12
    assert from_readme == from_expected
    refused = {key for key, state in from_expected.items() if state == "refused"}
    assert refused == set(checks.UNSUPPORTED)
    for row in expected:
        if row["state"] == "refused":
            key = (row["transfer"], row["transport"], row["endpoint"])
            assert row["refused_because"] in checks.UNSUPPORTED[key]
