# Copyright: kubeferry developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the modules and the controller-side plugins share, without the kubernetes client.

The controller imports a collection's filter and action plugins again in the worker process
of every task; importing the kubernetes client there costs about half a second each time, so
what the controller needs lives here and ``cluster`` alone imports the client.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def unreadable(exc, ref):
    """The message for a wait that timed out because every read failed, or ""."""
    if exc.last is None and exc.last_error is not None:
        return "Could not read {0} for {1:.0f} s: {2}".format(ref, exc.elapsed, exc.last_error)
    return ""


def api_error_message(exc):
    """The API server's own words for a failed request."""
    summary = getattr(exc, "summary", None)
    if callable(summary):
        try:
            return summary()
        except Exception:  # the body may not be JSON (proxies, load balancers)
            pass
    return str(exc)


class TransientError(Exception):
    """An API read failed in a way worth retrying until the wait's timeout."""


def split_lines(text):
    """Every line and every redraw: rsync redraws its progress line with carriage returns."""
    return [line for line in text.replace("\r", "\n").split("\n") if line.strip()]


def screen_lines(text):
    """The lines as a terminal would show them: of each line only its last redraw."""
    shown = []
    for line in text.split("\n"):
        redraws = [part for part in line.split("\r") if part.strip()]
        if redraws:
            shown.append(redraws[-1])
    return shown


def tail(text, count):
    """The last ``count`` lines a terminal would show."""
    return screen_lines(text)[-count:] if count > 0 else []


class ModuleFailure(Exception):
    """Ends the module with ``failed``, a message and whatever was found so far."""

    def __init__(self, msg, **result):
        super().__init__(msg)
        self.msg = msg
        self.result = result
