"""End-to-end runs of playbooks/state_transfer.yml on the local twin clusters."""

import pytest
from clusters.fixtures import clusters, namespace

from .playbook import CLUSTERS, Transfer

# Offered to every test under tests/e2e: pytest finds fixtures by name.
__all__ = ["clusters", "namespace"]


@pytest.fixture
def transfer(clusters, namespace, tmp_path):  # noqa: F811
    """The test's namespace on both clusters, and the playbook run against it."""
    return Transfer(
        clients={name: clusters.client(name) for name in CLUSTERS},
        kubeconfig=clusters.kubeconfig,
        work_dir=tmp_path,
        namespaces={name: namespace for name in CLUSTERS},
    )
