# Copyright: kubeferry developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The summary a user reads at the end of a run."""

import re

from ansible_collections.kubeferry.state_transfer.plugins.module_utils.progress import human_bytes

LOG_LINES = 8


def summary_table(summary):
    """A plain-text table, one row per PVC pair, for the play's output."""
    header = ("PVC", "STATE", "BYTES", "FILES", "SECONDS", "RATE", "EXIT")
    rows = [header]
    for entry in summary or []:
        rows.append(
            (
                str(entry.get("pvc", "")),
                str(entry.get("state", "")),
                human_bytes(entry.get("bytes")),
                str(entry.get("files") if entry.get("files") is not None else "-"),
                "{0:.1f}".format(float(entry.get("duration_seconds") or 0)),
                human_bytes(entry.get("rate_bytes_per_second")) + "/s",
                str(entry.get("exit_code") if entry.get("exit_code") is not None else "-"),
            )
        )
    widths = [max(len(row[col]) for row in rows) for col in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows
    ]
    for entry in summary or []:
        if entry.get("retries"):
            lines.append(
                "{0}: retried {1} time(s) after a broken connection".format(
                    entry.get("pvc"), entry["retries"]
                )
            )
        if entry.get("state") != "success" and entry.get("message"):
            lines.append("{0}: {1}".format(entry.get("pvc"), entry["message"]))
            # The program's own last words say why (DNS, refused, permission ...).
            # log_tail: a list of lines (transfer_progress), or one text.
            tail = entry.get("log_tail") or []
            if not isinstance(tail, list):
                tail = str(tail).splitlines()
            tail = [str(line) for line in tail if str(line).strip()]
            lines.extend("  | " + line for line in tail[-LOG_LINES:])
    return lines


# The API server's refusal inside a module's failure message (often a Status object printed as
# bytes, its quotes escaped): "services is forbidden: User \"system:...\" cannot create ...".
_FORBIDDEN = re.compile(r'([\w.-]+(?: "[^"]*")? is forbidden: User .+?)(?:",\s*"reason"|\'|$)')


def explain_failure(message):
    """A failure message as the user should read it: a refusal of the API server (RBAC) is
    cut out of the Status dump and followed by where the needed rights are listed."""
    text = str(message or "")
    match = _FORBIDDEN.search(text.replace("\\\\", "\\").replace('\\"', '"'))
    if not match:
        return text
    return (
        "the API server refused a request: {0}. The identity needs the rights of "
        "rbac/source.yml on the source cluster and rbac/destination.yml on the destination "
        "(docs/security.md)".format(match.group(1))
    )
