#!/usr/bin/env bash
# `make release-check` (part of `make test`): what a release of the collection needs, offline,
# with nothing but the tools of requirements-dev.txt (.venv).
#
#   changelog  antsibull-changelog lint of the fragments and of changelogs/changelog.yaml
#   build      ansible-galaxy builds the tarball; no test or local file may be in it
#   install    the tarball is installed with --offline into a fresh collections path, its
#              dependency resolved (galaxy.yml's range for kubernetes.core must accept the one of
#              the pinned `ansible` package, installed from there); checksums verified
#   ansible-doc  every module, filter and role entry point of the installed copy has its docs
#   playbooks  every playbook of the installed copy passes --syntax-check
#   docs-lint  antsibull-docs lint-collection-docs --plugin-docs on the installed copy: schema,
#              markup and references of every plugin and role, rstcheck of the generated pages
#   release    a dry release of galaxy.yml's version in a scratch copy (the built collection and
#              galaxy.yml): CHANGELOG.rst is generated, lists every module, filter, role and
#              playbook, passes rstcheck, generates again unchanged, and the resulting
#              changelog.yaml lints. (Once the version is in changelog.yaml: no fragment may
#              wait, and CHANGELOG.rst must generate.)
#
# Every part runs and reports; a part whose input is missing (no tarball) is skipped. Nothing
# in the checkout is written. Exit status 1 if any part failed.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
VENV=${VENV:-.venv}
[ -d "$repo/$VENV/bin" ] && PATH=$repo/$VENV/bin:$PATH
started=$SECONDS
work=$(mktemp -d "${TMPDIR:-/tmp}/kubeferry-release-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/logs"

failed=()
# part NAME FUNCTION: runs FUNCTION with errexit in a subshell, its output in a log that is
# printed when it fails. FUNCTION may leave a one-line result in $work/note.
part() {
  local name=$1 start=$SECONDS log=$work/logs/$1.log
  shift
  : >"$work/note"
  (
    set -euo pipefail
    "$@"
  ) >"$log" 2>&1
  local status=$?
  if [ $status -eq 0 ]; then
    printf 'ok      %-12s %3d s  %s\n' "$name" $((SECONDS - start)) "$(cat "$work/note")"
  else
    printf 'FAILED  %-12s %3d s  %s\n' "$name" $((SECONDS - start)) "$(cat "$work/note")"
    sed 's/^/        | /' "$log"
    failed+=("$name")
  fi
  return $status
}
skip() {
  printf 'SKIPPED %-12s        %s\n' "$1" "$2"
  failed+=("$1")
}
note() { echo "$*" >"$work/note"; }
# fail MESSAGE: ends the part with MESSAGE as its result.
fail() {
  note "$*"
  echo "$*" >&2
  exit 1
}

for tool in ansible-galaxy ansible-doc ansible-playbook antsibull-docs antsibull-changelog rstcheck python; do
  command -v "$tool" >/dev/null || {
    echo "release check: $tool not found; run make venv (requirements-dev.txt)" >&2
    exit 1
  }
done
version=$(python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["version"])' galaxy.yml)

# The Ansible programs see nothing of the checkout: an empty configuration, a fresh collections
# path, and the scratch directory as working directory.
: >"$work/ansible.cfg"
export ANSIBLE_CONFIG=$work/ansible.cfg ANSIBLE_COLLECTIONS_PATH=$work/collections ANSIBLE_NOCOLOR=1
installed=$work/collections/ansible_collections/kubeferry/state_transfer
tarball=$work/kubeferry-state_transfer-$version.tar.gz

build() {
  ansible-galaxy collection build --force --output-path "$work" "$repo"
  [ -f "$tarball" ] || fail "no $(basename "$tarball") (galaxy.yml version $version)"
  local local_files
  local_files=$(tar -tzf "$tarball" | grep -E '^(tests|demo|\.[^/]+|[^/]*\.tar\.gz)(/|$)' || true)
  [ -z "$local_files" ] || fail "the tarball contains test or local files: $(echo "$local_files" | head -5 | tr '\n' ' ')"
  note "$(basename "$tarball"), $(tar -tzf "$tarball" | grep -vc '/$') files, $(du -k "$tarball" | cut -f1) KiB"
}

install() {
  # kubernetes.core of the pinned `ansible` package: the dependency, resolved without Galaxy.
  local kubernetes_core
  kubernetes_core=$(cd "$work" && ANSIBLE_COLLECTIONS_PATH=$work/none ansible-galaxy collection list kubernetes.core --format json |
    python -c 'import json, sys; print(next(p for p, c in json.load(sys.stdin).items() if "kubernetes.core" in c))')/kubernetes/core
  [ -f "$kubernetes_core/MANIFEST.json" ] || fail "no kubernetes.core next to ansible-core (the ansible package of requirements-dev.txt)"
  (cd "$work" && ansible-galaxy collection install --offline --force-with-deps -p "$work/collections" "$tarball" "$kubernetes_core")
  [ -f "$installed/MANIFEST.json" ] || fail "kubeferry.state_transfer was not installed"
  (cd "$work" && ansible-galaxy collection verify --offline kubeferry.state_transfer kubernetes.core)
  note "$(cd "$work" && ansible-galaxy collection list --format json |
    python -c 'import json, sys; print(", ".join(n + " " + c["version"] for n, c in json.load(sys.stdin)[sys.argv[1]].items()))' \
      "$work/collections/ansible_collections") in a fresh path, checksums verified"
}

ansible_doc() {
  cd "$work"
  local path type names
  declare -A plugins=()
  for path in "$installed"/plugins/modules/*.py; do
    [ "$(basename "$path")" = __init__.py ] || plugins[module]+=" kubeferry.state_transfer.$(basename "$path" .py)"
  done
  # Filters: every name that ansible's plugin loader finds in the filter plugins.
  plugins[filter]=$(ansible-doc -t filter -l kubeferry.state_transfer | awk '{print $1}' | tr '\n' ' ')
  for path in "$installed"/roles/*/; do
    plugins[role]+=" kubeferry.state_transfer.$(basename "$path")"
  done
  # As users read them (text) and as tools read them (JSON), one ansible-doc run per type.
  for type in module filter role; do
    read -r -a names <<<"${plugins[$type]}"
    [ ${#names[@]} -gt 0 ] || fail "ansible-doc: no ${type}s found in the installed collection"
    ansible-doc -t "$type" "${names[@]}" >"$work/doc-$type.txt" || fail "ansible-doc -t $type failed (above)"
    ansible-doc -t "$type" --json "${names[@]}" >"$work/doc-$type.json" || fail "ansible-doc -t $type --json failed (above)"
  done
  python - "$work" "$installed" <<'PY' || fail "ansible-doc: documentation missing (above)"
import ast, glob, json, os, re, sys

import yaml

work, installed = sys.argv[1:]
problems, count = [], 0
docs = {kind: json.load(open(os.path.join(work, "doc-%s.json" % kind))) for kind in ("module", "filter", "role")}
texts = {kind: open(os.path.join(work, "doc-%s.txt" % kind)).read() for kind in docs}
fqcn = "kubeferry.state_transfer.{0}".format

for path in sorted(glob.glob(os.path.join(installed, "plugins/modules/*.py"))):
    name = os.path.basename(path)[:-3]
    if name == "__init__":
        continue
    if not (docs["module"].get(fqcn(name)) or {}).get("doc"):
        problems.append("module %s: no documentation" % name)
    count += 1

# The names the filter plugins export, each must have its documentation (plugins/filter/<name>.yml).
exported = set()
for path in glob.glob(os.path.join(installed, "plugins/filter/*.py")):
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.FunctionDef) and node.name == "filters":
            for ret in ast.walk(node):
                if isinstance(ret, ast.Return) and isinstance(ret.value, ast.Dict):
                    exported |= {key.value for key in ret.value.keys}
for name in sorted(exported):
    if not (docs["filter"].get(fqcn(name)) or {}).get("doc"):
        problems.append("filter %s: no documentation (plugins/filter/%s.yml)" % (name, name))
    count += 1

for path in sorted(glob.glob(os.path.join(installed, "roles/*/"))):
    role = os.path.basename(path.rstrip("/"))
    specs_path = os.path.join(path, "meta", "argument_specs.yml")
    if not os.path.exists(specs_path):
        problems.append("role %s: no meta/argument_specs.yml" % role)
        continue
    entries = (docs["role"].get(fqcn(role)) or {}).get("entry_points") or {}
    for entry in yaml.safe_load(open(specs_path))["argument_specs"]:
        if not (entries.get(entry) or {}).get("short_description"):
            problems.append("role %s, entry point %s: no documentation" % (role, entry))
        elif not re.search(r"^ENTRY POINT: \*?%s\*? - " % re.escape(entry), texts["role"], re.M):
            problems.append("role %s, entry point %s: not shown by ansible-doc" % (role, entry))
        count += 1

for line in problems:
    print(line, file=sys.stderr)
with open(os.path.join(work, "note"), "w") as note:
    note.write("%d modules, filters and role entry points documented\n" % count)
sys.exit(1 if problems else 0)
PY
}

playbooks() {
  cd "$work"
  local path names=()
  for path in "$installed"/playbooks/*.yml; do
    names+=("$(basename "$path" .yml)")
    ansible-playbook --syntax-check "kubeferry.state_transfer.${names[-1]}" || fail "ansible-playbook --syntax-check: ${names[-1]}"
  done
  note "syntax ok: ${names[*]}"
}

docs_lint() {
  cd "$work"
  # --validate-collection-refs dependent: references to this collection, kubernetes.core and
  # ansible.builtin must resolve. References to other collections are not validated (the
  # kubernetes.core docs fragment names community.okd).
  # It copies each dependency from the first place `ansible-galaxy collection list` names,
  # and that list is sorted by path: the venv's copy of kubernetes.core (inside the checkout,
  # where its git copier finds no tracked file) comes first when the checkout's path sorts
  # before this scratch directory. Not scanning sys.path leaves the installed copy only.
  ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false \
    antsibull-docs lint-collection-docs --plugin-docs --validate-collection-refs dependent \
    --check-extra-docs-refs "$installed" || fail "antsibull-docs lint-collection-docs found problems (above)"
  note "antsibull-docs lint-collection-docs --plugin-docs: no problems"
}

changelog() {
  antsibull-changelog lint || fail "antsibull-changelog lint: changelogs/fragments"
  antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml || fail "antsibull-changelog lint-changelog-yaml: changelogs/changelog.yaml"
  note "$(find changelogs/fragments -name '*.yml' -o -name '*.yaml' | wc -l) fragments and changelog.yaml lint clean"
}

release() {
  # A scratch copy of the collection as released: the built tarball and galaxy.yml.
  local copy=$work/release/ansible_collections/kubeferry/state_transfer released
  mkdir -p "$copy"
  tar -xzf "$tarball" -C "$copy"
  cp galaxy.yml "$copy/"
  cd "$copy"
  released=$(python -c 'import sys, yaml; print(sys.argv[1] in (yaml.safe_load(open("changelogs/changelog.yaml")).get("releases") or {}))' "$version")
  if [ "$released" = True ]; then
    # Already released: then no fragment may wait, and the changelog must generate as it is.
    if find changelogs/fragments -name '*.y*ml' | grep -q .; then
      fail "version $version is already in changelogs/changelog.yaml but fragments are waiting: raise the version in galaxy.yml"
    fi
    antsibull-changelog generate || fail "antsibull-changelog generate"
  else
    antsibull-changelog release --version "$version" || fail "antsibull-changelog release --version $version"
    if find changelogs/fragments -name '*.y*ml' | grep -q .; then
      fail "the release left fragments behind: $(ls changelogs/fragments)"
    fi
  fi
  [ -f CHANGELOG.rst ] || fail "no CHANGELOG.rst generated"
  grep -qx "v$version" CHANGELOG.rst || fail "CHANGELOG.rst has no section v$version"
  antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml || fail "the released changelogs/changelog.yaml does not lint"
  rstcheck --report-level warning CHANGELOG.rst || fail "rstcheck: CHANGELOG.rst"
  # Generating again from changelog.yaml gives the same file (it is the source of truth).
  cp CHANGELOG.rst "$work/CHANGELOG.first.rst"
  antsibull-changelog generate || fail "antsibull-changelog generate"
  diff -u "$work/CHANGELOG.first.rst" CHANGELOG.rst || fail "antsibull-changelog generate changes the released CHANGELOG.rst"
  # Every module, filter, role and playbook of the collection is in the release's notes
  # (modules and filters by their version_added, roles and playbooks by 'add object.*' sections
  # of fragments).
  python - "$version" <<'PY' || fail "changelog.yaml of $version does not list everything the collection has (above)"
import glob, os, sys, yaml

release = yaml.safe_load(open("changelogs/changelog.yaml"))["releases"][sys.argv[1]]
listed = {
    "module": release.get("modules") or [],
    "filter": (release.get("plugins") or {}).get("filter") or [],
    "role": (release.get("objects") or {}).get("role") or [],
    "playbook": (release.get("objects") or {}).get("playbook") or [],
}
present = {
    "module": [p for p in glob.glob("plugins/modules/*.py") if not p.endswith("__init__.py")],
    "filter": glob.glob("plugins/filter/*.yml"),
    "role": glob.glob("roles/*/"),
    "playbook": glob.glob("playbooks/*.yml"),
}
missing = []
for kind, paths in present.items():
    names = {entry["name"] for entry in listed[kind]}
    for path in sorted(paths):
        name = os.path.splitext(os.path.basename(path.rstrip("/")))[0]
        if name not in names:
            missing.append("{0} {1} ({2})".format(kind, name, path))
for line in missing:
    print("not in the release notes:", line, file=sys.stderr)
sys.exit(1 if missing else 0)
PY
  if [ "$released" = True ]; then
    note "v$version already released; CHANGELOG.rst generates and lints"
  else
    note "dry release v$version: CHANGELOG.rst $(wc -l <CHANGELOG.rst) lines, rstcheck and lint-changelog-yaml clean"
  fi
}

echo "release check of kubeferry.state_transfer $version (scratch $work)"
part changelog changelog
if part build build; then
  if part install install; then
    part ansible-doc ansible_doc
    part playbooks playbooks
    part docs-lint docs_lint
  else
    skip ansible-doc "the collection is not installed"
    skip playbooks "the collection is not installed"
    skip docs-lint "the collection is not installed"
  fi
  part release release
else
  for name in install ansible-doc playbooks docs-lint release; do skip "$name" "no tarball"; done
fi

if [ ${#failed[@]} -gt 0 ]; then
  echo "release check FAILED ($((SECONDS - started)) s): ${failed[*]}" >&2
  exit 1
fi
echo "release check passed ($((SECONDS - started)) s)"
