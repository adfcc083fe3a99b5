"""Exit codes of rsync and rclone: a partial copy is never a success."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.kubeferry.state_transfer.plugins.module_utils.exit_codes import (
    RSYNC_EXIT_CODES,
    classify_exit,
    exit_meaning,
)


def test_rsync_success():
    assert classify_exit("rsync", 0) == ("success", "")


def test_rsync_24_is_a_warning_about_a_live_source():
    state, message = classify_exit("rsync", 24)
    assert state == "warning"
    assert message == (
        "rsync exit code 24: some files vanished before they could be transferred "
        "(the source changed during the copy)"
    )


def test_rsync_23_partial_transfer_fails():
    state, message = classify_exit("rsync", 23)
    assert state == "failed"
    assert "partial transfer due to error" in message


@pytest.mark.parametrize(
    "code, meaning",
    [
        (1, "syntax or usage error"),
        (2, "protocol incompatibility"),
        (3, "errors selecting input/output files, dirs"),
        (5, "error starting client-server protocol"),
        (10, "error in socket I/O"),
        (11, "error in file I/O"),
        (12, "error in rsync protocol data stream"),
        (20, "received SIGUSR1 or SIGINT"),
        (25, "the --max-delete limit stopped deletions"),
        (30, "timeout in data send/receive"),
        (35, "timeout waiting for daemon connection"),
    ],
)
def test_rsync_documented_codes_fail_with_their_meaning(code, meaning):
    state, message = classify_exit("rsync", code)
    assert state == "failed"
    assert message == "rsync exit code {0}: {1}".format(code, meaning)


def test_every_documented_rsync_code_from_1_to_35_has_a_meaning():
    documented = {1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14, 20, 21, 22, 23, 24, 25, 30, 35}
    assert set(RSYNC_EXIT_CODES) - {0} == documented


def test_undocumented_and_signal_codes():
    assert classify_exit("rsync", 7) == (
        "failed",
        "rsync exit code 7: undocumented rsync exit code",
    )
    assert classify_exit("rsync", 137)[1].endswith("out of memory, or the Pod was deleted)")
    assert exit_meaning("rclone", 139) == "killed by signal 11"
    assert exit_meaning("rsync", 127) == "the program was not found in the image"


def test_rclone_zero_succeeds_everything_else_fails():
    assert classify_exit("rclone", 0) == ("success", "")
    assert classify_exit("rclone", 5) == (
        "failed",
        "rclone exit code 5: temporary error (one that more retries might fix)",
    )
    # rclone has no warning code: 24 means nothing special to it.
    assert classify_exit("rclone", 24)[0] == "failed"
    assert classify_exit("rclone", 9)[0] == "failed"


def test_no_exit_code_is_a_failure():
    assert classify_exit("rsync", None) == (
        "failed",
        "rsync: no exit code (the program did not finish)",
    )
