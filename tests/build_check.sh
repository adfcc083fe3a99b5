#!/usr/bin/env bash
# Builds the collection tarball, installs it into a fresh collections path next to
# kubernetes.core (from the pinned ansible package), and checks that ansible-doc shows every
# module and that the playbooks resolve from the installed copy.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

ansible-galaxy collection build --force --output-path "$work" . >/dev/null
tarball=$(ls "$work"/kubeferry-state_transfer-*.tar.gz)
echo "built $(basename "$tarball") ($(du -k "$tarball" | cut -f1) KiB)"
if tar -tzf "$tarball" | grep -E '^(tests|\.venv|\.collections|\.clusters)/' >/dev/null; then
  echo "the tarball contains test or local files" >&2
  exit 1
fi

# --no-deps: kubernetes.core is already installed (by the ansible package); no Galaxy here.
# --force: from the checkout, the linked copy in .collections counts as "already installed".
ansible-galaxy collection install --force --no-deps -p "$work/collections" "$tarball" >/dev/null
export ANSIBLE_COLLECTIONS_PATH="$work/collections"
repo=$(pwd)
# Away from the checkout, so that nothing but the installed copy can be found.
cd "$work"
# An empty config: nothing of the checkout (its collections path) may be used.
: >"$work/ansible.cfg"
export ANSIBLE_CONFIG="$work/ansible.cfg" ANSIBLE_NOCOLOR=1

modules=$(ls "$repo"/plugins/modules/*.py | xargs -n1 basename | sed 's/\.py$//' | grep -v '^__init__$')
for module in $modules; do
  ansible-doc "kubeferry.state_transfer.$module" >"$work/doc.txt" 2>"$work/doc.err" || { cat "$work/doc.err" >&2; exit 1; }
  grep -q "kubeferry.state_transfer.$module" "$work/doc.txt" || { echo "ansible-doc: no doc for $module" >&2; head -5 "$work/doc.txt" "$work/doc.err" >&2; exit 1; }
done
ansible-doc -t role kubeferry.state_transfer.state_transfer >/dev/null
listed=$(ansible-doc -l kubeferry.state_transfer | wc -l)
echo "ansible-doc lists $listed modules of the installed collection"
ansible-playbook --syntax-check kubeferry.state_transfer.state_transfer >/dev/null
ansible-playbook --syntax-check kubeferry.state_transfer.cleanup >/dev/null
echo "installed collection: playbooks resolve, every module documented"
