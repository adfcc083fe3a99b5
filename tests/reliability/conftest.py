"""Reliability and security on the local twin clusters: faults, refused input, least privilege.

The tests run playbooks/state_transfer.yml as the end-to-end tests do (tests/e2e/playbook.py)
and break something on the way; each one checks that the source is unchanged, that the
destination is verified or the PVC reported as failed, and what the run left behind.
"""

from clusters.fixtures import clusters, namespace
from e2e.conftest import transfer

# Offered to every test under tests/reliability: pytest finds fixtures by name.
__all__ = ["clusters", "namespace", "transfer"]
