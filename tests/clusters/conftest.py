"""Fixtures of the local twin clusters for every test under tests/clusters."""

import pytest

from .fixtures import clusters, namespace

# Offered to every test under tests/clusters: pytest finds fixtures by name.
__all__ = ["clusters", "namespace"]

LAST = "clusters_last"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", f"{LAST}: runs after every other test (e.g. it takes the clusters down)"
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    # Tests that take the shared pair down must not pull it from under the tests after them.
    items.sort(key=lambda item: item.get_closest_marker(LAST) is not None)
