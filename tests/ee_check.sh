#!/usr/bin/env bash
# Writes the build context of the execution environment image (execution-environment.yml)
# to .ee/context with ansible-builder and checks it without building the image, which needs
# a container engine: the pinned packages are in it, the collection tarball installs from
# its Galaxy requirements, and ansible-builder's own introspection script finds the
# collection's Python requirements through meta/execution-environment.yml.
set -euo pipefail
cd "$(dirname "$0")/.."
context=.ee/context
fail() { echo "ee-context: $*" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

rm -rf "$context" .ee/collections
mkdir -p .ee/collections
ansible-galaxy collection build --force --output-path .ee/collections . >/dev/null
# A fixed name: execution-environment.yml cannot follow the version in galaxy.yml.
mv .ee/collections/kubeferry-state_transfer-*.tar.gz .ee/collections/kubeferry-state_transfer.tar.gz
ansible-builder create -f execution-environment.yml -c "$context" --output-filename Containerfile >/dev/null
echo "ansible-builder $(ansible-builder --version) wrote $context/Containerfile"

# The versions the collection is tested with (requirements-dev.txt) are the image's.
for package in ansible-core kubernetes; do
  pin=$(grep -E "^$package==" requirements-dev.txt)
  grep -qF "$pin" "$context/Containerfile" "$context/_build/requirements.txt" ||
    fail "$pin (requirements-dev.txt) is not in the build context"
done
grep -q '^FROM ' "$context/Containerfile" || fail "no FROM in the Containerfile"
grep -q 'ansible-galaxy collection install .*-r requirements.yml' "$context/Containerfile" ||
  fail "the Containerfile does not install the Galaxy requirements"

# The collection installs from the context as the image's Galaxy stage installs it (there,
# with kubernetes.core from Galaxy; here --no-deps, as there is no Galaxy to reach).
(cd "$context/_build" && ANSIBLE_COLLECTIONS_PATH="$work/collections" \
  ansible-galaxy collection install --force --no-deps -r requirements.yml -p "$work/collections" >/dev/null)
test -f "$work/collections/ansible_collections/kubeferry/state_transfer/MANIFEST.json" ||
  fail "kubeferry.state_transfer did not install from $context/_build/requirements.yml"

# What the image's builder stage computes: the collection's requirements plus the user's.
python "$context/_build/scripts/introspect.py" introspect \
  --user-pip="$context/_build/requirements.txt" "$work/collections" >"$work/introspect.txt"
grep -vE '^[[:space:]]*(#|$)' requirements.txt | while read -r requirement; do
  grep -qF "$requirement  # from collection kubeferry.state_transfer" "$work/introspect.txt" ||
    { cat "$work/introspect.txt" >&2; fail "introspection did not find $requirement of requirements.txt"; }
done
echo "build context checked: pinned ansible-core and kubernetes, the collection and its requirements"
