# Copyright: kubeferry developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one wait loop of the collection.

Like kubernetes.core's waiter, a wait is a *predicate*: a pure function of what was read
(a resource, a list of resources, a list of resolved addresses). A new kind of wait is a new
predicate, never a new loop. Next to the predicate a wait may have a *failure* function, also
pure, that returns the reason why waiting longer is pointless (an image that cannot be pulled,
a Route the router rejected) so that the wait ends at once instead of at the timeout.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time


class WaitError(Exception):
    """A wait ended without its predicate being true.

    ``last`` is the last value read, so that the caller can say what was missing.
    """

    def __init__(self, msg, last=None, elapsed=0.0, last_error=None):
        super().__init__(msg)
        self.msg = msg
        self.last = last
        self.elapsed = elapsed
        self.last_error = last_error


class WaitTimeout(WaitError):
    """The predicate never became true within the timeout."""


class WaitFailed(WaitError):
    """The failure function reported a state that will not get better by waiting."""


def wait_for(read, predicate, timeout, sleep, failure=None, retry_on=(), wake=None):
    """Read until ``predicate(value)`` is true; return ``(value, elapsed_seconds)``.

    ``read()`` returns the current value. Exceptions of the types in ``retry_on`` count as a
    read that saw nothing (transient API or DNS errors); the last one is kept in the timeout
    message. ``failure(value, elapsed)`` returns a non-empty reason to stop at once; it gets the
    elapsed time so that a state that is normal for a moment (a Pod unschedulable while its
    volume is provisioned) can be given a grace period. The predicate is checked first, so a
    value that is both done and failed counts as done. At least one read is always made.

    ``wake(seconds)``, when given, waits for up to ``seconds`` instead of a plain sleep and
    returns true as soon as what is read changed (a watch of the API server): the next read
    comes at once, not at the end of ``sleep``. When it returns false, the rest of the pause
    is slept, so a ``wake`` that cannot watch only costs what the plain sleep did.
    """
    start = time.monotonic()
    last_error = None
    value = None
    while True:
        elapsed = time.monotonic() - start
        try:
            value = read()
            last_error = None
        except retry_on as exc:
            value = None
            last_error = exc
        else:
            if predicate(value):
                return value, elapsed
            reason = failure(value, elapsed) if failure else ""
            if reason:
                raise WaitFailed(reason, last=value, elapsed=elapsed)
        if elapsed >= timeout:
            break
        pause = max(0.0, min(sleep, timeout - elapsed))
        until = time.monotonic() + pause
        if not (wake and pause and wake(pause)):
            time.sleep(max(0.0, until - time.monotonic()))
    msg = "timed out after {0:.0f} s".format(time.monotonic() - start)
    if last_error is not None:
        msg += " (last error: {0})".format(last_error)
    raise WaitTimeout(msg, last=value, elapsed=time.monotonic() - start, last_error=last_error)
