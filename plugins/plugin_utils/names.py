# Copyright: kubeferry developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes-safe names and label values for the objects of a state transfer.

Names must stay DNS-1123 labels of at most 63 characters (Pods, Services, Routes) and be
derived deterministically, so that a re-run with the same run id finds its own objects.
When a name has to be shortened or rewritten, a hash of the original keeps distinct inputs
distinct ("data.v1" and "data-v1" must not collide).
"""

import hashlib
import re

DNS1123_LABEL_MAX = 63
LABEL_VALUE_MAX = 63
HASH_LENGTH = 8

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?\Z")


def short_hash(text, length=HASH_LENGTH):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def is_dns1123_label(name):
    return bool(name) and len(name) <= DNS1123_LABEL_MAX and bool(_DNS1123_LABEL.match(name))


def is_dns1123_subdomain(name):
    return bool(name) and len(name) <= 253 and bool(_DNS1123_SUBDOMAIN.match(name))


def _with_hash(base, original, max_length):
    keep = max_length - HASH_LENGTH - 1
    base = base[:keep].rstrip("-")
    return "{0}-{1}".format(base, short_hash(original)) if base else short_hash(original)


def k8s_name(parts, max_length=DNS1123_LABEL_MAX):
    """Join parts with '-' into a DNS-1123 label of at most max_length characters.

    A joined name that is already valid and short enough is returned unchanged; anything
    rewritten or shortened gets a hash suffix of the original so it stays unique.
    """
    if isinstance(parts, str):
        parts = [parts]
    if not 1 <= int(max_length) <= DNS1123_LABEL_MAX:
        raise ValueError("max_length must be between 1 and 63, got {0}".format(max_length))
    if int(max_length) <= HASH_LENGTH + 1:
        raise ValueError("max_length must leave room for the hash suffix")
    original = "-".join(str(part) for part in parts if part is not None and str(part) != "")
    if not original:
        raise ValueError("cannot make a name from empty parts")
    if len(original) <= max_length and _DNS1123_LABEL.match(original):
        return original
    cleaned = re.sub(r"[^a-z0-9-]+", "-", original.lower())
    cleaned = re.sub(r"-{2,}", "-", cleaned).strip("-")
    return _with_hash(cleaned, original, int(max_length))


def label_value(value, max_length=LABEL_VALUE_MAX):
    """A valid label value for value: unchanged when valid, else cleaned and hashed."""
    value = str(value)
    if len(value) <= max_length and _LABEL_VALUE.match(value):
        return value
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", value)
    cleaned = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", cleaned)
    result = _with_hash(cleaned, value, max_length)
    return result.lstrip("-_.")
