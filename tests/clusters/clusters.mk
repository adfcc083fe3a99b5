# Targets of the local twin clusters (tests/clusters, issue 3). The top-level Makefile includes
# this file after it defines BIN and the venv/system-packages targets. All of them need root.
.PHONY: clusters-binaries clusters-up clusters-down clusters-status clusters-test

# Builds kube-apiserver and etcd with the machine's Go into ~/.cache/kubeferry/bin (or reuses them).
clusters-binaries: venv
	$(BIN)/python -m tests.clusters.binaries

clusters-up: venv system-packages
	$(BIN)/python -m tests.clusters.harness up

clusters-down: venv
	$(BIN)/python -m tests.clusters.harness down

clusters-status: venv
	$(BIN)/python -m tests.clusters.harness status

# Starts the pair once for the session (or reuses a running one) and takes it down at the end
# only if it started it.
clusters-test: venv system-packages
	$(BIN)/pytest tests/clusters
