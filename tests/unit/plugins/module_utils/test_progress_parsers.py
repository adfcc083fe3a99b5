"""Progress parsed from output captured from real rsync 3.x and rclone 1.60 runs.

The logs under fixtures/logs were made by running, on a temporary tree of 240 files:
``rsync -a --info=progress2 --stats`` (locally and pulling from an rsync daemon on 127.0.0.1,
also with a missing source directory for exit 23 and files deleted mid-copy for exit 24) and
``rclone copy -v --stats 1s [--stats-one-line]`` (also against a refused HTTP remote).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

import pytest

from ansible_collections.kubeferry.state_transfer.plugins.module_utils.common import (
    screen_lines,
    split_lines,
)
from ansible_collections.kubeferry.state_transfer.plugins.module_utils.progress import (
    go_duration,
    parse_rclone,
    parse_rsync,
    pod_progress,
    progress_line,
    rsync_number,
    summarise,
)

MIB = 1024 * 1024


def test_log_tails_show_what_a_terminal_shows(kube):
    shown = screen_lines(kube.log_fixture("rsync_exit23.log.gz"))
    assert shown[0] == (
        'rsync: [sender] change_dir "/mnt/source/missing" failed: No such file or directory (2)'
    )
    assert shown[1].strip() == "692 100%   24.07kB/s    0:00:00 (xfr#200, to-chk=0/201)"
    assert shown[2] == "Number of files: 201 (reg: 200, dir: 1)"
    assert len(shown) == 18


def test_rsync_carriage_returns_are_line_breaks(kube):
    text = kube.log_fixture("rsync_daemon_pull_running.log.gz")
    assert "\r" in text and text.count("\n") < 3
    assert len(split_lines(text)) > 40


def test_rsync_running_with_incremental_recursion(kube):
    found = parse_rsync(kube.log_fixture("rsync_daemon_pull_running.log.gz"))
    assert found["complete"] is False
    assert found["files"] == 53  # xfr#53 of the last, partial-free progress line
    assert found["total_files"] == 1133  # ir-chk=.../1133
    assert found["bytes"] == 283
    assert found["rate"] == int(round(92.12 * 1024))
    assert found["percent"] == 0
    assert found["total_bytes"] is None  # 0 % says nothing about the total yet


def test_rsync_stats_block_gives_the_final_numbers(kube):
    found = parse_rsync(kube.log_fixture("rsync_progress2_stats_exit0.log.gz"))
    assert found["complete"] is True
    assert found["bytes"] == 246000692  # Total transferred file size
    assert found["total_bytes"] == 246000694  # Total file size
    assert found["files"] == 240  # Number of regular files transferred
    assert found["total_files"] == 244  # Number of files
    assert found["rate"] == 54684202  # sent ... bytes/sec
    assert (found["percent"], found["eta"]) == (100, 0)


def test_rsync_daemon_pull_done(kube):
    found = parse_rsync(kube.log_fixture("rsync_daemon_pull_done_tail.log.gz"))
    assert (found["files"], found["total_files"]) == (1201, 1322)
    assert found["bytes"] == found["total_bytes"] == 3006480


@pytest.mark.parametrize(
    "name, files, transferred",
    [("rsync_exit23.log.gz", 200, 692), ("rsync_exit24_vanished.log.gz", 30, 6000000)],
)
def test_rsync_failed_runs_still_report_their_stats(kube, name, files, transferred):
    found = parse_rsync(kube.log_fixture(name))
    assert found["files"] == files
    assert found["bytes"] == transferred


def test_rsync_progress_line_mid_file():
    line = "  1,234,567  45%   12.34MB/s    0:00:10 (xfr#3, ir-chk=1000/1200)"
    found = parse_rsync(line)
    assert found["bytes"] == 1234567
    assert found["percent"] == 45
    assert found["rate"] == int(round(12.34 * MIB))
    assert found["eta"] == 10
    assert (found["files"], found["total_files"]) == (3, 1200)
    assert found["total_bytes"] == int(1234567 * 100 / 45)


def test_rsync_progress_line_without_xfr_and_human_readable_numbers():
    found = parse_rsync("        3.01M  12%    1.50GB/s    1:02:03  ")
    assert found["bytes"] == rsync_number("3.01M") == int(round(3.01 * MIB))
    assert found["rate"] == int(round(1.5 * 1024**3))
    assert found["eta"] == 3723
    assert found["files"] is None


def test_rclone_one_line_running(kube):
    found = parse_rclone(kube.log_fixture("rclone_oneline_running.log"))
    # Last stats line: "180.339 MiB / 234.605 MiB, 77%, 61.412 MiB/s, ETA 0s (xfr#28/240)"
    assert found["bytes"] == int(round(180.339 * MIB))
    assert found["rate"] == int(round(61.412 * MIB))
    assert found["total_bytes"] == int(round(234.605 * MIB))
    assert found["percent"] == 77
    assert (found["files"], found["total_files"]) == (28, 240)


def test_rclone_one_line_done_counts_every_file(kube):
    found = parse_rclone(kube.log_fixture("rclone_oneline_done.log"))
    assert found["bytes"] == found["total_bytes"] == int(round(234.605 * MIB))
    assert found["percent"] == 100
    assert found["eta"] == 0
    # The last line has no "(xfr#n/m)": everything that was to be transferred was.
    assert (found["files"], found["total_files"]) == (240, 240)


def test_rclone_block_form(kube):
    running = parse_rclone(kube.log_fixture("rclone_multiline_running.log"))
    assert running["percent"] == 51
    assert running["eta"] == 1
    assert running["rate"] == int(round(60.503 * MIB))
    assert (running["files"], running["total_files"]) == (22, 240)
    done = parse_rclone(kube.log_fixture("rclone_multiline_done.log"))
    assert (done["files"], done["total_files"], done["percent"]) == (240, 240, 100)


def test_rclone_block_without_a_files_line_has_moved_none():
    # rclone 1.60, a copy that found nothing to do: no "Transferred: n / m" files line.
    found = parse_rclone(
        "2026/11/27 08:10:51 INFO  : There was nothing to transfer\n"
        "2026/11/27 08:10:51 INFO  : \n"
        "Transferred:   \t          0 B / 0 B, -, 0 B/s, ETA -\n"
        "Checks:                 3 / 3, 100%\n"
        "Elapsed time:         0.0s\n"
    )
    assert (found["files"], found["total_files"], found["bytes"]) == (0, 0, 0)
    # ... and one that copied a single small file in under a second.
    found = parse_rclone(
        "2026/11/27 08:10:16 INFO  : many/changed.txt: Copied (new)\n"
        "2026/11/27 08:10:16 INFO  : \n"
        "Transferred:   \t         49 B / 49 B, 100%, 0 B/s, ETA -\n"
        "Checks:               613 / 613, 100%\n"
        "Transferred:            1 / 1, 100%\n"
        "Elapsed time:         0.9s\n"
    )
    assert (found["files"], found["total_files"], found["bytes"]) == (1, 1, 49)


def test_rclone_example_lines_from_the_docs():
    found = parse_rclone(
        "Transferred:   \t   10.000 MiB / 20.000 MiB, 50%, 5.000 MiB/s, ETA 2s\n"
        "Transferred: 3 / 10, 30%\n"
    )
    assert found["bytes"] == 10 * MIB
    assert found["total_bytes"] == 20 * MIB
    assert found["rate"] == 5 * MIB
    assert (found["percent"], found["eta"]) == (50, 2)
    assert (found["files"], found["total_files"]) == (3, 10)


def test_rclone_nothing_known_yet(kube):
    found = parse_rclone(kube.log_fixture("rclone_exit5_connection_refused.log"))
    assert (found["bytes"], found["total_bytes"], found["percent"], found["eta"]) == (
        0,
        0,
        None,
        None,
    )


@pytest.mark.parametrize(
    "text, seconds",
    [("0s", 0), ("45s", 45), ("1m2s", 62), ("2h3m4s", 7384), ("1d2h", 93600), ("-", None)],
)
def test_go_durations(text, seconds):
    assert go_duration(text) == seconds


def spec(transfer="rsync"):
    return dict(
        name="kubeferry-3f9c2a1b-data-0", pvc="data-0", transfer=transfer, container="transfer"
    )


def test_pod_progress_while_running(kube):
    entry = pod_progress(
        kube.api_object("pods", "transfer_running"),
        spec(),
        kube.log_fixture("rsync_daemon_pull_running.log.gz"),
        5,
    )
    assert entry["phase"] == "Running"
    assert entry["finished"] is False
    assert entry["exit_code"] is None
    assert entry["started_at"] == "2024-05-01T10:00:05Z"
    assert entry["files"] == 53
    # A terminal shows only the last redraw of the progress line (here cut mid-line, as a
    # log read while rsync writes can be).
    assert entry["log_tail"] == ["            283   0%   92.12kB/s    0:00:00 (xfr#54, ir-chk"]
    assert entry["terminal_failure"] == ""


def test_pod_progress_finished_with_exit_23_is_not_a_terminal_failure(kube):
    entry = pod_progress(
        kube.api_object("pods", "completed_exit23"),
        spec(),
        kube.log_fixture("rsync_exit23.log.gz"),
        3,
    )
    assert entry["finished"] is True
    assert entry["exit_code"] == 23
    assert entry["terminal_failure"] == ""
    assert entry["log_tail"][-1].startswith("rsync error: some files/attrs were not transferred")


def test_pod_progress_terminal_failures(kube):
    entry = pod_progress(kube.api_object("pods", "image_pull_backoff"), spec(), "", 5)
    assert entry["terminal_reason"] == "ImagePullBackOff"
    assert entry["terminal_failure"].startswith("ImagePullBackOff: Back-off pulling image")
    gone = pod_progress(None, spec(), "", 5)
    assert gone["terminal_failure"] == "Pod kubeferry-3f9c2a1b-data-0 not found (deleted?)"


def test_progress_line_like_the_user_sees_it():
    entry = dict(
        pvc="data-0",
        bytes=int(1.2 * 1024**3),
        total_bytes=int(2.6 * 1024**3),
        percent=45,
        rate=int(12.3 * MIB),
        eta=114,
        files=3210,
    )
    assert (
        progress_line(entry)
        == "data-0: 45% 1.2 GiB of 2.6 GiB, 12.3 MiB/s, ETA 0:01:54, 3,210 files"
    )
    assert (
        progress_line(dict(pvc="data-0", bytes=None, phase="Pending"))
        == "data-0: waiting (Pending)"
    )
    assert (
        progress_line(dict(pvc="d", terminal_failure="OOMKilled: x")) == "d: failed: OOMKilled: x"
    )


NOW = datetime.datetime(2024, 5, 1, 10, 5, tzinfo=datetime.timezone.utc)


def test_summary_classifies_and_computes_rates(kube):
    ok = pod_progress(
        kube.api_object("pods", "completed_success"),
        spec(),
        kube.log_fixture("rsync_progress2_stats_exit0.log.gz"),
        2,
    )
    vanished = pod_progress(
        kube.api_object("pods", "completed_exit24"),
        spec(),
        kube.log_fixture("rsync_exit24_vanished.log.gz"),
        2,
    )
    partial = pod_progress(
        kube.api_object("pods", "completed_exit23"),
        spec(),
        kube.log_fixture("rsync_exit23.log.gz"),
        2,
    )
    rows = summarise([ok, vanished, partial], NOW)
    assert [row["state"] for row in rows] == ["success", "warning", "failed"]
    assert rows[0]["duration_seconds"] == 100.0  # 10:00:05 -> 10:01:45
    assert (rows[0]["started_at"], rows[0]["finished_at"]) == (
        "2024-05-01T10:00:05Z",
        "2024-05-01T10:01:45Z",
    )
    assert rows[0]["bytes"] == 246000692
    assert rows[0]["rate_bytes_per_second"] == 2460006.9
    assert rows[0]["files"] == 240
    assert rows[1]["message"].startswith("rsync exit code 24: some files vanished")
    assert rows[2]["message"].startswith("rsync exit code 23: partial transfer")
    assert rows[2]["log_tail"][-1].startswith("rsync error")


def test_summary_of_unfinished_and_failed_pods(kube):
    running = pod_progress(kube.api_object("pods", "transfer_running"), spec(), "", 2)
    broken = pod_progress(kube.api_object("pods", "oomkilled"), spec("rclone"), "", 2)
    rows = summarise(
        [running, broken], NOW, stopped_because="still running after wait_timeout (60 s)"
    )
    assert rows[0]["state"] == "failed"
    assert rows[0]["message"] == "did not finish: still running after wait_timeout (60 s)"
    assert rows[0]["duration_seconds"] == 295.0  # started 10:00:05, still running at 10:05
    assert rows[1]["state"] == "failed"
    assert rows[1]["message"].startswith("OOMKilled")


# A re-run that finds nothing to copy must leave the task "ok" (molecule's idempotence step),
# and one that copies, creates or deletes anything must report "changed". The logs: real
# rsync 3.x / rclone 1.60 runs over 3 files - again after a first copy, and after deleting a
# source file and adding a directory (rsync --delete, rclone sync).
@pytest.mark.parametrize(
    "name, transfer, files, created, deleted, changed",
    [
        ("rsync_progress2_stats_exit0.log.gz", "rsync", 240, 243, 0, True),
        ("rsync_no_change.log.gz", "rsync", 0, 0, 0, False),
        ("rsync_mirror_deleted.log.gz", "rsync", 0, 1, 1, True),
        ("rclone_multiline_done.log", "rclone", 240, None, None, True),
        ("rclone_no_change.log", "rclone", 0, None, None, False),
        ("rclone_sync_deleted.log", "rclone", 0, None, 1, True),
    ],
)
def test_summary_says_whether_the_destination_changed(
    kube, name, transfer, files, created, deleted, changed
):
    entry = pod_progress(
        kube.api_object("pods", "completed_success"),
        spec(transfer=transfer),
        kube.log_fixture(name),
        2,
    )
    row = summarise([entry], NOW)[0]
    assert (row["files"], row["created"], row["deleted"]) == (files, created, deleted)
    assert row["changed"] is changed


def test_a_transfer_without_stats_counts_as_changed(kube):
    # It failed before printing any count: whether it wrote something is unknown.
    entry = pod_progress(kube.api_object("pods", "completed_success"), spec(), "", 2)
    assert summarise([entry], NOW)[0]["changed"] is True


def test_retries_after_broken_connections_are_counted():
    # rsync-client.sh: a line per retry, then the total as its last line.
    rsync_log = (
        "rsync: connection unexpectedly closed (1203 bytes received so far) [receiver]\n"
        "kubeferry: rsync exit code 12 (connection); retry 1 of 5 in 2s\n"
        "kubeferry: rsync exit code 12 (connection); retry 2 of 5 in 4s\n"
        "Number of files: 3 (reg: 2, dir: 1)\n"
        "kubeferry: retries: 2\n"
    )
    assert parse_rsync(rsync_log)["retries"] == 2
    # Only the total survived the tail of the log.
    assert parse_rsync("Number of files: 3\nkubeferry: retries: 3\n")["retries"] == 3
    assert parse_rsync("Number of files: 3 (reg: 2, dir: 1)\n")["retries"] == 0
    # rclone's own --retries: the failed attempts that were followed by another one.
    failed_then_ok = (
        "2026/11/27 08:10:16 ERROR : Attempt 1/5 failed with 1 errors and: connection reset\n"
        "2026/11/27 08:10:26 ERROR : Attempt 2/5 succeeded\n"
    )
    assert parse_rclone(failed_then_ok)["retries"] == 1
    all_failed = "".join(
        "2026/11/27 08:10:16 ERROR : Attempt {0}/3 failed with 1 errors and: EOF\n".format(n)
        for n in (1, 2, 3)
    )
    assert parse_rclone(all_failed)["retries"] == 2
    assert parse_rclone("Transferred: 1 / 1, 100%\n")["retries"] == 0
