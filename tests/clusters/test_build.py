"""Static checks of the Go module that pins the clusters' binaries (no root, no network)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from . import binaries

GO_MOD = binaries.BUILD_DIR / "go.mod"


def _replaces() -> dict[str, tuple[str, str]]:
    block = re.search(r"^replace \((.*?)^\)", GO_MOD.read_text(), re.MULTILINE | re.DOTALL)
    assert block, "go.mod has no replace block"
    found = {}
    for line in block.group(1).strip().splitlines():
        old, new = (part.split() for part in line.split("=>"))
        found[old[0]] = (new[0], new[1])
    return found


def test_staging_modules_are_replaced_by_the_matching_published_version():
    kubernetes = binaries.COMPONENTS["kube-apiserver"].version()
    major, minor, patch = kubernetes.lstrip("v").split(".")
    assert major == "1"
    replaces = _replaces()
    assert len(replaces) >= 30
    for module, (target, version) in replaces.items():
        assert module.startswith("k8s.io/")
        assert target == module
        assert version == f"v0.{minor}.{patch}", module


def test_every_staging_module_of_the_pinned_kubernetes_is_replaced():
    version = binaries.COMPONENTS["kube-apiserver"].version()
    upstream = Path.home() / "go" / "pkg" / "mod" / "k8s.io" / f"kubernetes@{version}" / "go.mod"
    if not upstream.is_file():
        pytest.skip(f"k8s.io/kubernetes@{version} is not in the Go module cache")
    staging = set(re.findall(r"^\s*(k8s\.io/\S+) => \./staging/", upstream.read_text(), re.M))
    assert staging == set(_replaces())


def test_cache_key_changes_with_go_mod_and_is_outside_the_repository():
    path = binaries.COMPONENTS["etcd"].path()
    assert binaries.REPO_ROOT not in path.parents
    assert path.parent.name.startswith(f"etcd-{binaries.COMPONENTS['etcd'].version()}-")
    assert path.parent.name.endswith(binaries._go_mod_hash())


def test_the_built_rclone_is_the_version_of_the_roles_default_image():
    # The pods run the host's rclone: the tests must exercise the version users get.
    defaults = binaries.REPO_ROOT / "roles" / "transfer_rclone" / "defaults" / "main.yml"
    image = re.search(r"^transfer_rclone_image: \S+:(\S+)$", defaults.read_text(), re.MULTILINE)
    assert image, "no transfer_rclone_image with a tag in " + str(defaults)
    assert binaries.PROGRAMS["rclone"].version == "v" + image.group(1)
