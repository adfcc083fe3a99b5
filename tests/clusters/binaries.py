"""Build-or-reuse the control-plane binaries of the local twin clusters.

The Go module in ``tests/clusters/build/`` pins k8s.io/kubernetes and etcd. Binaries are built
with the machine's Go (never a downloaded toolchain) and cached outside the repository in
``~/.cache/kubeferry/bin/<component>-<version>-<go.mod hash>/`` so later runs start in seconds.

The programs that pods run come from the host (a pod's root is an overlay of the host's /).
Where Debian's version is too old, a pinned release is built with ``go install module@version``
(the module's own go.mod and go.sum pin its dependencies) into the same cache and installed
where the pods' PATH finds it first: rclone, the version of the transfer_rclone role's default
image (Debian bookworm has 1.60, whose WebDAV client paces itself to 100 requests a second).

Usage: ``python -m tests.clusters.binaries [--print-paths]``, or
``python -m tests.clusters.binaries --install rclone /usr/local/bin/rclone``.
"""

from __future__ import annotations

import argparse
import fcntl
import filecmp
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BUILD_DIR = Path(__file__).resolve().parent / "build"
REPO_ROOT = BUILD_DIR.parents[2]
CACHE_ROOT = Path(
    os.environ.get("KUBEFERRY_BIN_CACHE", Path.home() / ".cache" / "kubeferry" / "bin")
)
VERSION_PKG = "k8s.io/component-base/version"


@dataclass(frozen=True)
class Component:
    name: str
    module: str
    package: str

    def version(self) -> str:
        match = re.search(
            rf"^\s*{re.escape(self.module)}\s+(v\S+)", _go_mod_text(), flags=re.MULTILINE
        )
        if not match:
            raise RuntimeError(f"{self.module} is not required in {BUILD_DIR / 'go.mod'}")
        return match.group(1)

    def ldflags(self) -> str:
        flags = ["-s", "-w"]
        if self.name == "kube-apiserver":
            # Without these the server reports v0.0.0-master to clients and version checks.
            version = self.version()
            major, minor = version.lstrip("v").split(".")[:2]
            flags += [
                f"-X {VERSION_PKG}.gitVersion={version}",
                f"-X {VERSION_PKG}.gitMajor={major}",
                f"-X {VERSION_PKG}.gitMinor={minor}",
                f"-X {VERSION_PKG}.gitTreeState=clean",
            ]
        return " ".join(flags)

    def cache_dir(self) -> Path:
        return CACHE_ROOT / f"{self.name}-{self.version()}-{_go_mod_hash()}"

    def path(self) -> Path:
        return self.cache_dir() / self.name


COMPONENTS = {
    "etcd": Component("etcd", "go.etcd.io/etcd/server/v3", "go.etcd.io/etcd/server/v3"),
    "kube-apiserver": Component(
        "kube-apiserver", "k8s.io/kubernetes", "k8s.io/kubernetes/cmd/kube-apiserver"
    ),
}


@dataclass(frozen=True)
class Program:
    """A program the pods run, built from its Go module at a pinned version."""

    name: str
    module: str
    version: str
    ldflags: str

    def cache_dir(self) -> Path:
        return CACHE_ROOT / f"{self.name}-{self.version}"

    def path(self) -> Path:
        return self.cache_dir() / self.name


RCLONE_VERSION = "v1.68.2"  # the tag of roles/transfer_rclone's default image
PROGRAMS = {
    "rclone": Program(
        "rclone",
        "github.com/rclone/rclone",
        RCLONE_VERSION,
        f"-s -w -X github.com/rclone/rclone/fs.Version={RCLONE_VERSION}",
    ),
}


def _go_mod_text() -> str:
    return (BUILD_DIR / "go.mod").read_text()


def _go_mod_hash() -> str:
    # go.mod only: go.sum may gain lines during a -mod=mod build, which must not change the key.
    return hashlib.sha256(_go_mod_text().encode()).hexdigest()[:12]


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env["GOTOOLCHAIN"] = "local"
    env["GOFLAGS"] = "-mod=mod"
    return env


def _go() -> str:
    # sudo and make may drop /usr/local/go/bin (where the machine's Go lives) from PATH.
    go = shutil.which("go") or shutil.which("go", path="/usr/local/go/bin")
    if go is None:
        raise RuntimeError("the 'go' command is needed to build kube-apiserver, etcd and rclone")
    return go


def _build(component: Component, log=print) -> Path:
    go = _go()
    target = component.path()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{component.name}.partial.{os.getpid()}")
    command = [
        "nice",
        "-n",
        "10",
        go,
        "build",
        "-p",
        "2",
        "-trimpath",
        "-ldflags",
        component.ldflags(),
        "-o",
        str(partial),
        component.package,
    ]
    log(
        f"binaries: building {component.name} {component.version()} from {BUILD_DIR} "
        f"(cold: about 5 minutes on 2 cores with an empty Go cache; warm: under a minute)"
    )
    log("binaries: $ " + " ".join(command))
    started = time.monotonic()
    try:
        subprocess.run(command, cwd=BUILD_DIR, env=_go_env(), check=True)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    log(f"binaries: built {target} in {time.monotonic() - started:.0f}s")
    return target


def _build_program(program: Program, log=print) -> Path:
    target = program.path()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".staging.{os.getpid()}"
    command = ["nice", "-n", "10", _go(), "install", "-trimpath", "-ldflags", program.ldflags]
    command.append(f"{program.module}@{program.version}")
    log(f"binaries: building {program.name} {program.version} (cold: about 2 minutes on 2 cores)")
    log("binaries: $ " + " ".join(command))
    started = time.monotonic()
    env = dict(_go_env(), GOBIN=str(staging), CGO_ENABLED="0")
    del env["GOFLAGS"]  # go install module@version builds with the module's own go.mod
    try:
        subprocess.run(command, cwd=CACHE_ROOT, env=env, check=True)
        os.replace(staging / program.name, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"binaries: built {target} in {time.monotonic() - started:.0f}s")
    return target


def install(name: str, destination: Path, log=print) -> Path:
    """Build (or reuse) the pinned program and put a copy at destination, unless the same
    file is there already; a copy, not a link, so that clearing the cache breaks nothing."""
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    program = PROGRAMS[name]
    with open(CACHE_ROOT / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built = program.path()
        if not (built.is_file() and os.access(built, os.X_OK)):
            built = _build_program(program, log=log)
    if destination.is_file() and filecmp.cmp(built, destination, shallow=False):
        log(f"binaries: {destination} is {name} {program.version}")
        return destination
    partial = destination.with_name(f".{destination.name}.partial.{os.getpid()}")
    try:
        shutil.copy2(built, partial)
        os.chmod(partial, 0o755)
        os.replace(partial, destination)
    finally:
        partial.unlink(missing_ok=True)
    log(f"binaries: installed {name} {program.version} as {destination}")
    return destination


def ensure(names: tuple[str, ...] = ("etcd", "kube-apiserver"), log=print) -> dict[str, Path]:
    """Return the path of each binary, building those not cached yet."""
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    # One build at a time: two harnesses starting together must not both spend the CPU.
    with open(CACHE_ROOT / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for name in names:
            component = COMPONENTS[name]
            path = component.path()
            if path.is_file() and os.access(path, os.X_OK):
                log(f"binaries: reusing {path}")
            else:
                path = _build(component, log=log)
            paths[name] = path
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--print-paths", action="store_true", help="print only the paths, one per line"
    )
    parser.add_argument(
        "--install",
        nargs=2,
        metavar=("PROGRAM", "PATH"),
        help="build or reuse a pinned program (" + ", ".join(PROGRAMS) + ") and install it",
    )
    args = parser.parse_args(argv)
    if args.install:
        install(args.install[0], Path(args.install[1]))
        return 0
    log = (lambda _msg: None) if args.print_paths else print
    paths = ensure(log=log)
    if args.print_paths:
        for path in paths.values():
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
