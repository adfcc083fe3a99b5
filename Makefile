# The commands of the README. `make test` runs everything; `make demo` runs the main job.
# Each target installs what it needs: Python packages into .venv, Debian packages with apt.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
PYTHON ?= python3
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(BIN):$(PATH)
# Debian programs the data-plane tests run for real (and the local clusters need).
DEBIAN_PACKAGES := rsync stunnel4 openssl iproute2 iptables acl attr haproxy dnsmasq-base python3 util-linux tinyproxy
# rclone is built at the version of the role's default image (Debian's 1.60 paces its WebDAV
# client to 100 requests a second) and installed where the pods' PATH finds it first.
RCLONE := /usr/local/bin/rclone

.PHONY: venv system-packages lint unit sanity molecule render dataplane e2e build-check ee-context test demo matrix reliability bench clean

venv: $(VENV)/.installed .collections/ansible_collections/kubeferry/state_transfer

$(VENV)/.installed: requirements-dev.txt requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt -r requirements.txt
	touch $@

# The checkout is the collection: link it where Ansible looks for kubeferry.state_transfer.
.collections/ansible_collections/kubeferry/state_transfer:
	mkdir -p .collections/ansible_collections/kubeferry
	ln -sfn ../../.. $@

system-packages:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@$(PYTHON) -m tests.clusters.binaries --install rclone $(RCLONE)

lint: venv
	$(BIN)/ruff check plugins tests
	$(BIN)/ruff format --check plugins tests
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint --profile production

unit: venv
	$(BIN)/pytest tests/unit

# ansible-test sanity (no ignore files) and units on the oldest and the newest supported
# ansible-core, each in a pinned venv under ~/.cache/kubeferry/sanity-venvs (one version:
# SANITY_VERSIONS=2.19.14). ansible-test needs the collection at
# .../ansible_collections/kubeferry/state_transfer, so it runs on a copy of the working tree
# there (tests/sanity.sh).
sanity: venv
	@$(MAKE) --no-print-directory system-packages DEBIAN_PACKAGES=shellcheck
	VENV=$(VENV) tests/sanity.sh $(SANITY_VERSIONS)

# The molecule scenario extensions/molecule/default: converge the state_transfer role against
# the local twin clusters (started for the run if down), idempotence, verify (tests/molecule.sh).
molecule: venv system-packages clusters-binaries
	tests/molecule.sh $(MOLECULE_ARGS)

render: venv
	$(BIN)/pytest tests/render

dataplane: venv system-packages
	$(BIN)/pytest tests/dataplane

# The main job on the local twin clusters: sample data, a real transfer, verification.
demo: venv system-packages clusters-binaries
	PYTHONPATH=tests $(BIN)/python -m demo

# Every transfer x transport x endpoint combination end to end on the full data set
# (256 MiB file, 10,000 small files), verified, as a table compared with tests/matrix/expected.yml.
matrix: venv system-packages clusters-binaries
	PYTHONPATH=tests $(BIN)/python -m matrix $(MATRIX_ARGS)

# The playbook end to end on the local twin clusters (started for the run if not up): the
# end-to-end stories, then every combination of the matrix on the small data set.
e2e: venv system-packages clusters-binaries
	$(BIN)/pytest tests/e2e
	PYTHONPATH=tests $(BIN)/python -m matrix --scale small

# What goes wrong in real clusters, on the local twin clusters (tests/reliability, started for
# the run if not up): faults made with the harness's knobs, refused input, least privilege,
# and the data-plane security checks (stunnel and daemon refusals); docs/reliability.md.
reliability: venv system-packages clusters-binaries
	$(BIN)/pytest tests/dataplane/test_security.py tests/reliability

# Offline release check (tests/release_check.sh): build, install with the dependency into a
# fresh path, ansible-doc of every module, filter and role entry point, playbook syntax,
# antsibull-docs lint, changelog lint and a dry release. build-check: the former name.
.PHONY: release-check
release-check: venv
	tests/release_check.sh

build-check: release-check

# Speed against the physical limit and the other tools' methods on the local clusters
# (tests/bench; about 40 minutes): tables on the screen, .bench/results.json and table.md.
# BENCH_ARGS="--runs 1 --only rsync-stunnel-load_balancer" measures one thing.
bench: venv system-packages clusters-binaries
	@$(MAKE) --no-print-directory system-packages DEBIAN_PACKAGES="socat openssh-server"
	PYTHONPATH=tests $(BIN)/python -m bench $(BENCH_ARGS)

# The build context of the execution environment image (execution-environment.yml) in
# .ee/context, checked; building the image needs podman or docker (docs/awx.md).
ee-context: venv
	tests/ee_check.sh

test: lint unit sanity render dataplane release-check ee-context clusters-test molecule e2e reliability

# The local twin clusters (tests/clusters): clusters-binaries, -up, -down, -status, -test.
include tests/clusters/clusters.mk

clean:
	rm -rf $(VENV) .collections .pytest_cache .ruff_cache .demo .matrix .bench .ee kubeferry-state_transfer-*.tar.gz
