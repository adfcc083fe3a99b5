"""The client pods' POSIX sh wrappers, run with stand-in commands (no network needed)."""

import os
import subprocess
import time

import render

RSYNC_CLIENT = os.path.join(render.REPO, "roles", "transfer_rsync", "files", "rsync-client.sh")
STUNNEL_CLIENT = os.path.join(
    render.REPO, "roles", "transport_stunnel", "files", "stunnel-client.sh"
)
RCLONE_CLIENT = os.path.join(render.REPO, "roles", "transfer_rclone", "files", "rclone-client.sh")


def sh(argv, timeout=60):
    return subprocess.run(
        ["sh"] + argv, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_rsync_wrapper_passes_every_word_unchanged(tmp_path):
    done = str(tmp_path / "done")
    words = ["a b", "*", "$(id)", "", "-n", "'quoted'", "::kubeferry-then::", "x  y"]
    result = sh([RSYNC_CLIENT, "0", done, "printf", "[%s]\\n"] + words[:6])
    assert result.returncode == 0
    assert result.stdout.splitlines() == ["[{0}]".format(w) for w in words[:6]]
    # After the separator comes a second command that only runs if the first succeeded.
    result = sh([RSYNC_CLIENT, "0", done, "true", words[6], "printf", "<%s>", words[7]])
    assert result.stdout == "<x  y>"
    result = sh([RSYNC_CLIENT, "0", done, "sh", "-c", "exit 23", words[6], "echo", "ran"])
    assert result.returncode == 23 and "ran" not in result.stdout
    assert os.path.exists(done)


def test_rsync_wrapper_retries_only_connection_errors(tmp_path):
    done = str(tmp_path / "done")
    started = time.monotonic()
    result = sh([RSYNC_CLIENT, "2", done, "sh", "-c", "echo try; exit 10"])
    assert result.returncode == 10
    assert result.stdout.count("try") == 3
    assert time.monotonic() - started >= 6  # 2 s + 4 s
    assert "retry 2 of 2 in 4s" in result.stderr
    result = sh([RSYNC_CLIENT, "5", done, "sh", "-c", "echo try; exit 23"])
    assert (result.returncode, result.stdout.count("try")) == (23, 1)


def test_rclone_wrapper_keeps_the_exit_code_and_leaves_the_marker(tmp_path):
    done = str(tmp_path / "done")
    result = sh([RCLONE_CLIENT, done, "sh", "-c", "exit 7"])
    assert result.returncode == 7 and os.path.exists(done)


def test_stunnel_wrapper_stops_its_child_on_the_marker(tmp_path):
    done = tmp_path / "done"
    proc = subprocess.Popen(["sh", STUNNEL_CLIENT, str(done), "60", "sleep", "300"])
    time.sleep(1.5)
    assert proc.poll() is None
    done.touch()
    assert proc.wait(timeout=5) == 0


def test_stunnel_wrapper_reports_a_child_that_died(tmp_path):
    result = sh([STUNNEL_CLIENT, str(tmp_path / "done"), "60", "sh", "-c", "exit 3"])
    assert result.returncode == 3


def test_stunnel_wrapper_wait_is_bounded(tmp_path):
    started = time.monotonic()
    result = sh([STUNNEL_CLIENT, str(tmp_path / "done"), "2", "sleep", "300"], timeout=30)
    assert result.returncode == 1
    assert time.monotonic() - started < 10
    assert "did not finish within 2s" in result.stderr
