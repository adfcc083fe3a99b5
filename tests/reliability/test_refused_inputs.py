"""Bad input, end to end: playbooks/state_transfer.yml refuses it before it creates anything
on either cluster, with a message that names the variable to fix.

The planner's own table (tests/unit/plugin_utils/test_checks.py) tests each message in
detail; here each kind of mistake goes through the real playbook and the real clusters:
the role's argument spec (types, choices), the input checks, and the cluster checks.
"""

import pytest
from e2e.playbook import output_of

pytestmark = [pytest.mark.clusters, pytest.mark.e2e]

VALID = dict(
    state_transfer_pvcs=[{"source": "data"}],
    state_transfer_transfer="rsync",
    state_transfer_transport="stunnel",
    state_transfer_endpoint="load_balancer",
)

SOURCE_SIDE = "the source cluster and namespace"  # filled in by the test

# (id, variables that differ from VALID, text the error must contain: the variable's name)
REFUSED = [
    ("type-parallel", dict(state_transfer_parallel="many"), "state_transfer_parallel"),
    ("type-pvcs", dict(state_transfer_pvcs={"source": "data"}), "state_transfer_pvcs"),
    ("type-source", dict(state_transfer_source="source"), "state_transfer_source"),
    ("type-excludes", dict(state_transfer_excludes={"cache": True}), "state_transfer_excludes"),
    ("choice-transfer", dict(state_transfer_transfer="scp"), "state_transfer_transfer"),
    ("choice-transport", dict(state_transfer_transport="ssh"), "state_transfer_transport"),
    ("choice-endpoint", dict(state_transfer_endpoint="ingress"), "state_transfer_endpoint"),
    ("choice-mode", dict(state_transfer_mode="root"), "state_transfer_mode"),
    ("choice-cleanup", dict(state_transfer_cleanup="sometimes"), "state_transfer_cleanup"),
    (
        "unsupported-combination",
        dict(state_transfer_transport="null", state_transfer_endpoint="route"),
        "state_transfer_transport",
    ),
    ("pvc-name", dict(state_transfer_pvcs=[{"source": "Bad_Name"}]), "state_transfer_pvcs[0]"),
    (
        "pvc-name-like-an-option",
        dict(state_transfer_pvcs=[{"source": "--rsh=sh"}]),
        "state_transfer_pvcs[0].source",
    ),
    (
        "destination-like-an-option",
        dict(state_transfer_pvcs=[{"source": "data", "destination": "-e"}]),
        "state_transfer_pvcs[0].destination",
    ),
    (
        "pvc-unknown-key",
        dict(state_transfer_pvcs=[{"source": "data", "size": "1Gi"}]),
        "state_transfer_pvcs[0]",
    ),
    ("pvc-missing", dict(state_transfer_pvcs=[{"source": "nope"}]), "state_transfer_pvcs[0]"),
    (
        "same-destination-twice",
        dict(
            state_transfer_pvcs=[
                {"source": "data", "destination": "copy"},
                {"source": "logs", "destination": "copy"},
            ]
        ),
        "state_transfer_pvcs",
    ),
    (
        "same-pvc-as-source-and-destination",
        dict(state_transfer_destination=SOURCE_SIDE),
        "state_transfer_pvcs",
    ),
    ("run-id", dict(state_transfer_run_id="Upper_Case"), "state_transfer_run_id"),
    (
        "restricted-without-uid",
        dict(state_transfer_mode="restricted"),
        "state_transfer_run_as_user",
    ),
    (
        "restricted-as-root",
        dict(state_transfer_mode="restricted", state_transfer_run_as_user=0),
        "state_transfer_run_as_user",
    ),
    ("parallel-zero", dict(state_transfer_parallel=0), "state_transfer_parallel"),
    (
        "timeout-negative",
        dict(state_transfer_transfer_timeout=-5),
        "state_transfer_transfer_timeout",
    ),
    ("bwlimit-word", dict(state_transfer_bwlimit="fast"), "state_transfer_bwlimit"),
    ("exclude-escapes", dict(state_transfer_excludes=["../../etc"]), "state_transfer_excludes"),
    (
        "exclude-is-an-option",
        dict(state_transfer_excludes=["--include=*"]),
        "state_transfer_excludes",
    ),
    ("rsync-runs-a-shell", dict(state_transfer_rsync_extra_args=["-e", "sh -c id"]), "extra_args"),
    (
        "rsync-runs-another-program",
        dict(state_transfer_rsync_extra_args=["--rsync-path=touch /x; rsync"]),
        "state_transfer_rsync_extra_args",
    ),
    (
        "rsync-writes-a-log-outside",
        dict(state_transfer_rsync_extra_args=["--log-file=/etc/passwd"]),
        "state_transfer_rsync_extra_args",
    ),
    (
        "rsync-writes-backups-outside",
        dict(state_transfer_rsync_extra_args=["--backup-dir=/tmp/x"]),
        "state_transfer_rsync_extra_args",
    ),
    (
        "rsync-follows-links-out",
        dict(state_transfer_rsync_extra_args=["--copy-links"]),
        "state_transfer_rsync_extra_args",
    ),
    (
        "rsync-args-with-rclone",
        dict(state_transfer_transfer="rclone", state_transfer_rsync_extra_args=["--checksum"]),
        "state_transfer_rsync_extra_args",
    ),
]


CASES = [case[1:] for case in REFUSED]
IDS = [case[0] for case in REFUSED]


def test_there_are_at_least_25_cases():
    assert len(REFUSED) >= 25
    assert len({case[0] for case in REFUSED}) == len(REFUSED)


@pytest.fixture
def with_source_pvcs(transfer):
    transfer.create_pvc("source", "data")
    transfer.create_pvc("source", "logs")
    return transfer


@pytest.mark.parametrize(
    "overrides, variable", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_refused_before_anything_is_created(with_source_pvcs, overrides, variable):
    transfer = with_source_pvcs
    variables = dict(VALID, **overrides)
    if variables.get("state_transfer_destination") == SOURCE_SIDE:
        variables["state_transfer_destination"] = transfer.variables()["state_transfer_source"]
    result = transfer.playbook(**variables)
    output = output_of(result)
    assert result.returncode != 0, output
    assert variable in output, output
    assert transfer.leftovers() == []
    assert transfer.pvc_names("destination") == [], "a destination PVC was created"
