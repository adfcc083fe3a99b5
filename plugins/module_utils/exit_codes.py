# Copyright: kubeferry developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a transfer program's exit code means for the copy: success, warning or failed.

A partial copy is never a success: rsync 23 (some files or attributes were not transferred)
is a failure; only 24 (files vanished on a live source) is a warning.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

SUCCESS, WARNING, FAILED = "success", "warning", "failed"

# rsync(1), section EXIT VALUES.
RSYNC_EXIT_CODES = {
    0: "success",
    1: "syntax or usage error",
    2: "protocol incompatibility",
    3: "errors selecting input/output files, dirs",
    4: "requested action not supported (64-bit files on a platform that cannot handle "
    "them, or an option the server does not support)",
    5: "error starting client-server protocol",
    6: "daemon unable to append to log-file",
    10: "error in socket I/O",
    11: "error in file I/O",
    12: "error in rsync protocol data stream",
    13: "errors with program diagnostics",
    14: "error in IPC code",
    20: "received SIGUSR1 or SIGINT",
    21: "some error returned by waitpid()",
    22: "error allocating core memory buffers",
    23: "partial transfer due to error: some files or attributes were not transferred",
    24: "some files vanished before they could be transferred (the source changed during the copy)",
    25: "the --max-delete limit stopped deletions",
    30: "timeout in data send/receive",
    35: "timeout waiting for daemon connection",
}

# rclone docs, "Exit Code".
RCLONE_EXIT_CODES = {
    0: "success",
    1: "syntax or usage error",
    2: "error not otherwise categorised",
    3: "directory not found",
    4: "file not found",
    5: "temporary error (one that more retries might fix)",
    6: "less serious errors (like 461 errors from dropbox)",
    7: "fatal error (one that more retries will not fix, like account suspended)",
    8: "transfer exceeded - limit set by --max-transfer reached",
    9: "operation successful, but no files transferred (--error-on-no-transfer)",
    10: "duration exceeded - limit set by --max-duration reached",
}

# Exit codes the shell and the kubelet give a program that did not end on its own.
SHELL_EXIT_CODES = {
    126: "the program could not be executed (permission denied)",
    127: "the program was not found in the image",
    137: "killed (SIGKILL: out of memory, or the Pod was deleted)",
    143: "terminated (SIGTERM: the Pod was stopped)",
}


def exit_meaning(transfer, exit_code):
    """The documented meaning of ``exit_code`` for ``transfer`` (rsync or rclone)."""
    if exit_code is None:
        return "no exit code (the program did not finish)"
    table = RSYNC_EXIT_CODES if transfer == "rsync" else RCLONE_EXIT_CODES
    if exit_code in table:
        return table[exit_code]
    if exit_code in SHELL_EXIT_CODES:
        return SHELL_EXIT_CODES[exit_code]
    if exit_code > 128:
        return "killed by signal {0}".format(exit_code - 128)
    return "undocumented {0} exit code".format(transfer)


def classify_exit(transfer, exit_code):
    """(state, message) for a transfer program's exit code.

    rsync: 0 success, 24 warning, anything else failed. rclone: 0 success, anything else
    failed. The message carries the program, the code and its documented meaning.
    """
    meaning = exit_meaning(transfer, exit_code)
    if exit_code == 0:
        return SUCCESS, ""
    if transfer == "rsync" and exit_code == 24:
        state = WARNING
    else:
        state = FAILED
    if exit_code is None:
        return state, "{0}: {1}".format(transfer, meaning)
    return state, "{0} exit code {1}: {2}".format(transfer, exit_code, meaning)
