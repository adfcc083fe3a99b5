#!/usr/bin/env bash
# `make sanity`: ansible-test sanity and units on the oldest and the newest ansible-core the
# collection supports (meta/runtime.yml: requires_ansible >=2.16), with no ignore files.
#
# ansible-test only works on a collection at .../ansible_collections/<namespace>/<name> (a real
# directory), so the tracked and new files of the working tree (uncommitted changes included),
# the repository's test harness too, are copied to a scratch tree next to kubernetes.core (from
# the pinned `ansible` package in .venv, as in tests/release_check.sh: there is no Galaxy server
# here). Each ansible-core gets its own virtual environment outside the repository, created on
# first use with pinned versions.
#
#   tests/sanity.sh [ansible-core version ...]   (default: the versions below)
#   SANITY_TESTS="sanity units"                  (default; name one to run only that command)
#   SANITY_ARGS="--test pylint"                  (extra arguments of `ansible-test sanity`)
set -euo pipefail
cd "$(dirname "$0")/.."

VERSIONS=("$@")
[ ${#VERSIONS[@]} -gt 0 ] || VERSIONS=(2.16.19 2.19.14)
PYTHON=${PYTHON:-python3}
PYTHON_VERSION=3.11
# What `ansible-test units --local` needs next to ansible-core (its units.txt, pinned here)
# and what the collection's unit tests import.
UNIT_REQUIREMENTS=(pytest==9.2.0 pytest-xdist==3.8.0 pytest-mock==3.17.0 mock==5.2.0
  PyYAML==6.0.4 kubernetes==33.1.0)
CACHE=${KUBEFERRY_CACHE:-$HOME/.cache/kubeferry}
# One scratch tree per checkout (a hash of its path): a clean-clone CI run beside a working
# tree must not delete the other's tree while ansible-test runs in it. Removed at the end.
SCRATCH=$CACHE/sanity/$(pwd -P | sha256sum | cut -c1-12)
COLLECTION=$SCRATCH/ansible_collections/kubeferry/state_transfer
VENV=${VENV:-.venv}

# Sanity problems are fixed in the code, never listed as ignored.
if cat tests/sanity/ignore-*.txt 2>/dev/null | grep -q .; then
  echo "tests/sanity/ignore-*.txt must stay empty: fix the code instead" >&2
  exit 1
fi

# kubernetes.core, shipped by the `ansible` package of requirements-dev.txt (make venv).
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
kubernetes_core=$site/ansible_collections/kubernetes/core
[ -f "$kubernetes_core/MANIFEST.json" ] || { echo "no kubernetes.core in $VENV (make venv)" >&2; exit 1; }

# The scratch tree: all of this collection's tracked and new (not ignored) files, the code of
# the repository's own test harness included (demo, CI, the local clusters, data plane, render,
# e2e and matrix tests: sanity holds for the whole collection), and kubernetes.core. Files
# deleted in the working tree but still tracked are skipped.
rm -rf "$SCRATCH"
trap 'rm -rf "$SCRATCH"' EXIT
mkdir -p "$COLLECTION" "$SCRATCH/ansible_collections/kubernetes"
git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' file; do
    if [ -e "$file" ]; then printf '%s\0' "$file"; fi
  done |
  rsync -a --from0 --files-from=- ./ "$COLLECTION/"
rsync -a "$kubernetes_core/" "$SCRATCH/ansible_collections/kubernetes/core/"

# ansible-test keeps the virtual environments of its sanity tests (pinned requirements) under
# ~/.ansible/test: keep them here too, apart from any other use of ansible-test.
export HOME=$CACHE/sanity-home
# ansible-test puts pip into those environments with a get-pip script that it downloads from
# ci-files.testing.ansible.com, out of reach here, unless a copy is saved in its cache. This
# stand-in has the same effect: pip, then the pinned packages asked for, from PyPI.
mkdir -p "$HOME/.ansible/test/cache"
cat >"$CACHE/get_pip.py" <<'PY'
"""Stand-in for get-pip.py: ensurepip, then `pip install` of the arguments."""
import subprocess
import sys

options = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call(
    [sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"], stdout=subprocess.DEVNULL
)
subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", *options])
if "--no-setuptools" in sys.argv:  # ensurepip of Python < 3.12 installs setuptools
    subprocess.check_call([sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", "setuptools"])
PY

status=0
for version in "${VERSIONS[@]}"; do
  venv=$CACHE/sanity-venvs/$version
  if [ ! -f "$venv/.installed" ]; then
    echo "== creating $venv"
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
      "ansible-core==$version" "${UNIT_REQUIREMENTS[@]}"
    touch "$venv/.installed"
  fi
  # The cached bootstrap script is named after the pip version this ansible-test installs.
  pip_version=$("$venv/bin/python" -c '
from ansible_test._internal.host_configs import NativePythonConfig
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(NativePythonConfig(version="'"$PYTHON_VERSION"'"))["pip"])')
  cp "$CACHE/get_pip.py" "$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"

  for test in ${SANITY_TESTS:-sanity units}; do
    echo "== ansible-core $version: ansible-test $test"
    args=(--local --python "$PYTHON_VERSION" --color no)
    # shellcheck disable=SC2206 # SANITY_ARGS: words on purpose
    [ "$test" = sanity ] && args+=(${SANITY_ARGS:-})
    if ! (cd "$COLLECTION" && PATH=$venv/bin:$PATH ansible-test "$test" "${args[@]}"); then
      echo "== ansible-core $version: ansible-test $test FAILED" >&2
      status=1
    fi
  done
done
exit $status
