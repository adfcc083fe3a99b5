#!/usr/bin/env bash
# `make molecule`: the molecule scenario extensions/molecule/default on the local twin
# clusters. Starts the pair if it is down (and takes it down again at the end), then runs
# `molecule test` inside kf-world, the clusters' network, as the e2e tests run the playbook.
#
#   tests/molecule.sh [molecule test arguments, e.g. --destroy never]
set -euo pipefail
cd "$(dirname "$0")/.."
harness=(python -m tests.clusters.harness)

started=false
if ! "${harness[@]}" status >/dev/null 2>&1; then
  "${harness[@]}" up
  started=true
fi
take_down() {
  if [ "$started" = true ]; then "${harness[@]}" down; fi
}
trap take_down EXIT

# molecule runs from the directory that holds molecule/ (extensions/), with this checkout's
# ansible.cfg (its collections path finds kubeferry.state_transfer in .collections).
"${harness[@]}" exec -- env ANSIBLE_CONFIG="$PWD/ansible.cfg" \
  bash -c 'cd extensions && exec molecule test "$@"' molecule "$@"
