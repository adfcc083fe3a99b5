# Copyright: kubeferry developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Credential file formats the transfer programs read."""

import base64
import hashlib


def htpasswd_sha1(password):
    """The password field of an htpasswd line in the {SHA} scheme (rclone serve reads it).

    SHA-1 without salt is weak for human passwords; here it only ever hashes a random
    per-run password of 40 letters and digits, which no dictionary holds.
    """
    digest = hashlib.sha1(password.encode("utf-8")).digest()  # noqa: S324 (see docstring)
    return "{SHA}" + base64.b64encode(digest).decode("ascii")
