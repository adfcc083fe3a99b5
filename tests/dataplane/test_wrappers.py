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
    # 1 try, 40 quick ones (every 0.05 s for 2 s: the sidecar may be starting; each pause is
    # time lost by every copy), then 2 retries.
    assert result.stdout.count("try") == 43
    assert time.monotonic() - started >= 8  # 2 s + 2 s + 4 s
    assert "retry 2 of 2 in 4s" in result.stderr
    result = sh([RSYNC_CLIENT, "5", done, "sh", "-c", "echo try; exit 23"])
    assert (result.returncode, result.stdout.count("try")) == (23, 1)


def test_rsync_wrapper_tries_again_at_once_while_the_transport_starts(tmp_path):
    # Refused once (the stunnel sidecar was not listening yet), then it works: the copy goes
    # on a twentieth of a second later, not after the 2 s of a retry.
    done, refused = str(tmp_path / "done"), tmp_path / "refused"
    script = "[ -e {0} ] && exit 0; touch {0}; exit 10".format(refused)
    started = time.monotonic()
    result = sh([RSYNC_CLIENT, "5", done, "sh", "-c", script])
    assert result.returncode == 0
    assert time.monotonic() - started < 1.5
    assert "retry" not in result.stderr


def test_rsync_wrapper_counts_a_connection_broken_mid_copy_as_a_retry(tmp_path):
    # Reset after data moved (exit code 12): a real retry at once, reported, and the total
    # as the last line for the run's summary; no quick tries, which are for a refused start.
    done, broken = str(tmp_path / "done"), tmp_path / "broken"
    script = "echo try; [ -e {0} ] && exit 0; touch {0}; exit 12".format(broken)
    result = sh([RSYNC_CLIENT, "5", done, "sh", "-c", script])
    assert result.returncode == 0
    assert result.stdout.count("try") == 2
    assert "retry 1 of 5 in 2s" in result.stderr
    assert result.stderr.splitlines()[-1] == "kubeferry: retries: 1"


def test_rclone_wrapper_keeps_the_exit_code_and_leaves_the_marker(tmp_path):
    done = str(tmp_path / "done")
    result = sh([RCLONE_CLIENT, done, "sh", "-c", "exit 7"])
    assert result.returncode == 7 and os.path.exists(done)


def test_rclone_wrapper_waits_for_the_transport_before_copying(tmp_path):
    # A stand-in rclone whose source can be listed from the second try on (the sidecar was
    # starting): the copy starts a twentieth of a second later, with the same config.
    log, ready = tmp_path / "calls", tmp_path / "ready"
    fake = tmp_path / "rclone"
    fake.write_text(
        "#!/bin/sh\n"
        'echo "$*" >> {0}\n'
        'if [ "$1" = lsf ]; then [ -e {1} ] && exit 0; touch {1}; exit 1; fi\n'.format(log, ready)
    )
    fake.chmod(0o755)
    started = time.monotonic()
    result = sh(
        [
            RCLONE_CLIENT,
            str(tmp_path / "done"),
            str(fake),
            "copy",
            "src:data/",
            "/mnt/d",
            "--config=/etc/rclone.conf",
            "--links",
        ]
    )
    assert result.returncode == 0
    assert time.monotonic() - started < 1.5
    calls = log.read_text().splitlines()
    assert len(calls) == 3 and calls[-1].startswith("copy src:data/ /mnt/d")
    assert calls[0].startswith("lsf ") and "--config=/etc/rclone.conf src:data/" in calls[0]


def test_rclone_wrapper_lists_every_twentieth_of_a_second_for_two_seconds_then_copies(tmp_path):
    # A source that never answers (the transport never came up): 40 listings, then the copy
    # itself runs (rclone's own retries and message), and its exit code is the wrapper's.
    log = tmp_path / "calls"
    fake = tmp_path / "rclone"
    fake.write_text('#!/bin/sh\necho "$1" >> {0}\n[ "$1" = lsf ] && exit 1\nexit 5\n'.format(log))
    fake.chmod(0o755)
    result = sh([RCLONE_CLIENT, str(tmp_path / "done"), str(fake), "copy", "src:d/", "/mnt/d"])
    assert result.returncode == 5
    assert log.read_text().splitlines() == ["lsf"] * 40 + ["copy"]


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
