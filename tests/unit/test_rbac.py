"""rbac/source.yml and rbac/destination.yml grant exactly what the collection calls.

What a run calls is read from the code, per side:

- the tasks the playbooks reach: roles/state_transfer/tasks/main.yml (playbooks/state_transfer.yml)
  and cleanup.yml (playbooks/cleanup.yml), followed through include_tasks and include_role
  (a role name with ``{{ ... }}`` stands for every role it can name). A task's side is the
  ``module_defaults`` of the action group kubeferry.state_transfer.k8s around it.
- per kubernetes.core task, its kind and state, as kubernetes.core 6 turns them into API
  calls (module_utils/k8s/service.py and runner.py): k8s_info with a name gets, without one
  lists; state present gets the object, then creates it or patches it (no ``apply``);
  state absent by label lists what matches, gets each object (delete_all), deletes it and
  lists again until it is gone. An object definition in a variable is followed to where it
  is made: the templates the side renders (their top-level ``kind:``), or the planner's
  Python (DEFINITIONS).
- for the collection's own modules, MODULE_CALLS below, checked against the reads of
  plugins/module_utils (``cluster.get/list/log``).

A task that starts to use a kind missing from KINDS, or a verb the manifests do not grant,
fails test_the_manifests_grant_every_call; a right granted that nothing calls fails
test_the_manifests_grant_nothing_else.
"""

import fnmatch
import functools
import os
import re
import shutil

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIDES = ("source", "destination")
PLACEHOLDER = "KUBEFERRY_NAMESPACE"
ACTION_GROUP = "group/kubeferry.state_transfer.k8s"
READ_VERBS = {"get", "list", "watch"}

# kind: (API group, resource, namespaced). A kind not here is a kind the manifests were not
# written for: add it here and grant what the test then asks for.
KINDS = {
    "Namespace": ("", "namespaces", False),
    "Node": ("", "nodes", False),
    "PersistentVolumeClaim": ("", "persistentvolumeclaims", True),
    "Pod": ("", "pods", True),
    "Service": ("", "services", True),
    "Secret": ("", "secrets", True),
    "ConfigMap": ("", "configmaps", True),
    "Route": ("route.openshift.io", "routes", True),
    "NetworkPolicy": ("networking.k8s.io", "networkpolicies", True),
}

# Which side's connection a module_defaults value is.
SIDE_OF_AUTH = {
    "{{ __state_transfer_source_auth }}": ("source",),
    "{{ __state_transfer_destination_auth }}": ("destination",),
    # cleanup_side.yml, looped over both sides.
    "{{ __state_transfer_cleanup_side.auth }}": SIDES,
}

# state: present tasks whose definition is a variable: where its objects come from.
# "rendered": the objects the side renders from the roles' templates (server_objects.yml,
# client_objects.yml); otherwise the kinds the planner builds in Python.
DEFINITIONS = {
    "__state_transfer_server_objects": "rendered",
    "__state_transfer_client_objects": "rendered",
    # __state_transfer_preflight.create_pvcs (plugins/plugin_utils/checks.py): the
    # destination PVCs to create (only missing ones).
    "__state_transfer_preflight": ("PersistentVolumeClaim",),
}

# Kinds made with state: present that are never patched, and why (the Role leaves patch out).
NO_PATCH = {
    # server.yml and client.yml delete the pods of an earlier run with the same id before
    # they create the new ones (test_pods_of_an_earlier_run_are_deleted_first).
    "Pod": "deleted first",
    # checks.py plans a PVC for creation only when the destination has none of that name.
    "PersistentVolumeClaim": "only missing ones are created",
}

CORE = ""
ROUTES = "route.openshift.io"

# The collection's own modules (plugins/modules), by the module_utils they run: module ->
# {value of the module's kind option or None: {(group, resource, verb)}}. Kept in step with
# the code by test_the_module_table_is_what_module_utils_reads.
MODULE_CALLS = {
    # module_utils/pods.py: PodSet.read gets the named pods (lists them with a
    # label_selector); _log_tail reads the failing container's log for the message.
    "kubeferry.state_transfer.pod_wait": {
        None: {(CORE, "pods", "get"), (CORE, "pods", "list"), (CORE, "pods/log", "get")}
    },
    # module_utils/load_balancer.py execute: gets the Service until it has an ingress address.
    "kubeferry.state_transfer.load_balancer_address": {None: {(CORE, "services", "get")}},
    # module_utils/endpoint.py: _route gets the Route until it is admitted; _node_port gets
    # the Service, lists the pods it selects and lists the Nodes (their addresses).
    "kubeferry.state_transfer.endpoint_address": {
        "route": {(ROUTES, "routes", "get")},
        "node_port": {
            (CORE, "services", "get"),
            (CORE, "pods", "list"),
            (CORE, "nodes", "list"),
        },
    },
    # module_utils/progress.py: creates each client pod when a place is free (start_queued),
    # gets it and reads its container's log (snapshot), and between two reads watches the
    # namespace's pods from the revision a list gives (execute's wake).
    "kubeferry.state_transfer.transfer_progress": {
        None: {
            (CORE, "pods", "create"),
            (CORE, "pods", "get"),
            (CORE, "pods/log", "get"),
            (CORE, "pods", "list"),
            (CORE, "pods", "watch"),
        }
    },
    # module_utils/tls.py: the run's certificates, made on the controller; no API call.
    "kubeferry.state_transfer.tls_material": {None: set()},
    # plugins/action/write_report.py: the report, written on the controller; no API call.
    "kubeferry.state_transfer.write_report": {None: set()},
    # module_utils/objects.py reads what a task's queries name, as k8s_info would: its calls
    # come from the tasks (QUERY_MODULE in required_calls), not from this table.
    "kubeferry.state_transfer.objects_info": {None: set()},
}
QUERY_MODULE = "kubeferry.state_transfer.objects_info"


class UnknownCall(Exception):
    """A task whose API calls this test cannot tell: teach it (KINDS, DEFINITIONS, ...)."""


def read_yaml(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


# The code: tasks and their sides ------------------------------------------------------------


def _module_of(task):
    for key in task:
        if key.startswith(("kubernetes.core.", "kubeferry.state_transfer.")):
            return key
        if key in ("k8s", "k8s_info", "k8s_log", "k8s_exec"):
            raise UnknownCall("use the fully qualified name: " + key)
    return None


def _sides_of(task, sides, where):
    value = (task.get("module_defaults") or {}).get(ACTION_GROUP)
    if value is None:
        return sides
    if value not in SIDE_OF_AUTH:
        raise UnknownCall("{0}: module_defaults {1!r}: which side is that?".format(where, value))
    return SIDE_OF_AUTH[value]


def _include(task):
    """(kind, target, tasks_from) of an include/import task, or None."""
    for kind in ("include_tasks", "import_tasks"):
        for key in ("ansible.builtin." + kind, kind):
            if key in task:
                value = task[key]
                return "tasks", value["file"] if isinstance(value, dict) else value, None
    for kind in ("include_role", "import_role"):
        for key in ("ansible.builtin." + kind, kind):
            if key in task:
                return "role", task[key]["name"], task[key].get("tasks_from", "main")
    return None


def _roles_named(roles_dir, name):
    """The roles of the collection that a (templated) role name can stand for."""
    name = name.rsplit(".", 1)[-1] if name.startswith("kubeferry.state_transfer.") else name
    pattern = re.compile(
        "".join(
            "[a-z0-9_]+" if part.startswith("{{") else re.escape(part)
            for part in re.split(r"({{.*?}})", name)
        )
        + "$"
    )
    found = sorted(role for role in os.listdir(roles_dir) if pattern.match(role))
    if not found:
        raise UnknownCall("include_role {0!r}: no such role".format(name))
    return found


def walk(roles_dir, role, tasks_file, sides=(), stack=()):
    """Yield (role, tasks file, task, sides) of every task reached from one tasks file."""
    key = (role, tasks_file, sides)
    if key in stack:
        return
    stack = stack + (key,)
    path = os.path.join(roles_dir, role, "tasks", tasks_file)
    if not path.endswith(".yml"):
        path += ".yml"

    def visit(tasks, sides):
        for task in tasks or []:
            where = "{0}/tasks/{1}: {2}".format(role, tasks_file, task.get("name", "?"))
            task_sides = _sides_of(task, sides, where)
            if "block" in task:
                for part in ("block", "rescue", "always"):
                    yield from visit(task.get(part), task_sides)
                continue
            included = _include(task)
            if included and included[0] == "tasks":
                yield from walk(roles_dir, role, included[1], task_sides, stack)
            elif included:
                for other in _roles_named(roles_dir, included[1]):
                    yield from walk(roles_dir, other, included[2], task_sides, stack)
            yield role, os.path.basename(path), task, task_sides

    yield from visit(read_yaml(path), sides)


def reached_tasks(roles_dir):
    """Every task the two playbooks reach: the state_transfer role and its cleanup entry."""
    for entry in ("main.yml", "cleanup.yml"):
        yield from walk(roles_dir, "state_transfer", entry)


# From tasks to API calls ---------------------------------------------------------------------


def _kind(kind, api_version, where):
    if kind not in KINDS:
        raise UnknownCall("{0}: kind {1!r} is not in test_rbac.KINDS".format(where, kind))
    group = KINDS[kind][0]
    given = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
    if given != group:
        raise UnknownCall(
            "{0}: {1} in API group {2!r}, not {3!r}".format(where, kind, given, group)
        )
    return KINDS[kind]


def _call(group, resource, namespaced, verb):
    return ("namespace" if namespaced else "cluster", group, resource, verb)


def _read_call(args, where):
    """The call of a k8s_info task, or of one query of objects_info: with a name it gets,
    without one it lists."""
    kind = args["kind"]
    group, resource, namespaced = _kind(kind, args.get("api_version", "v1"), where)
    verb = "get" if args.get("name") else "list"
    # A side's namespace is read by name: the API server authorizes that GET as a request in
    # the namespace itself, so the Role grants it.
    own = kind == "Namespace" and verb == "get"
    return _call(group, resource, namespaced or own, verb)


def _namespaced(resource):
    return next(v[2] for v in KINDS.values() if v[1] == resource.split("/")[0])


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def rendered_kinds(roles_dir, role, task):
    """(kind, apiVersion, template text) of the object templates a task renders."""
    found = []
    names = [
        name
        for text in _strings(task)
        for name in re.findall(r"lookup\('kubeferry\.state_transfer\.manifest', '([^']+)'\)", text)
    ]
    for name in names:
        path = os.path.join(roles_dir, role, "templates", name)
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        kind = re.search(r"^kind: (\w+)$", text, re.MULTILINE)
        if kind:
            api_version = re.search(r"^apiVersion: (\S+)$", text, re.MULTILINE).group(1)
            found.append((kind.group(1), api_version, text))
    return found


def _variables_in(expression):
    return re.findall(r"\b(__state_transfer_[a-z_]+)\b", expression)


def _only_on_another_side(definition, variable, side):
    """Whether the definition adds the variable's kinds only on the other side:
    ``[variable] if __state_transfer_cleanup_side.name == 'source' ...`` (cleanup_side.yml)."""
    only = re.search(
        r"\[{0}\]\s+if\s+__state_transfer_cleanup_side\.name\s*==\s*'(\w+)'".format(variable),
        definition,
    )
    return bool(only) and only.group(1) != side


def _expand_task_vars(expression, task_vars):
    """The expression with the text of the task's own vars it uses appended (followed once
    more for vars that use vars), so that their variables are seen."""
    for _depth in range(2):
        expression += "".join(
            " " + str(task_vars[name]) for name in _variables_in(expression) if name in task_vars
        )
    return expression


def _definitions_of(args, roles_dir, where, rendered, side, task_vars=None):
    """[(kind, apiVersion)] that a kubernetes.core.k8s task acts on, on one side."""
    if args.get("kind"):
        return [(args["kind"], args.get("api_version", "v1"))]
    definition = args.get("definition")
    if isinstance(definition, dict):
        return [(definition["kind"], definition.get("apiVersion", "v1"))]
    if not isinstance(definition, str):
        raise UnknownCall("{0}: no kind and no definition".format(where))
    definition = _expand_task_vars(definition, task_vars or {})
    found = []
    state_vars = read_yaml(os.path.join(roles_dir, "state_transfer", "vars", "main.yml"))
    for variable in _variables_in(definition):
        source = DEFINITIONS.get(variable)
        if source == "rendered":
            found += [(kind, api_version) for kind, api_version, _text in rendered]
        elif source:
            for kind in source:
                group = KINDS[kind][0]
                found.append((kind, group + "/v1" if group else "v1"))
        elif variable in state_vars:  # a constant list of kinds (the cleanup's)
            if _only_on_another_side(definition, variable, side):
                continue
            value = state_vars[variable]
            for entry in value if isinstance(value, list) else [value]:
                if isinstance(entry, dict) and "kind" in entry:
                    found.append((entry["kind"], entry["apiVersion"]))
    if not found:
        raise UnknownCall("{0}: what does the definition {1!r} hold?".format(where, definition))
    return found


def required_calls(roles_dir):
    """{side: {(scope, group, resource, verb)}}: what the collection calls on each side."""
    tasks = list(reached_tasks(roles_dir))
    calls = {side: set() for side in SIDES}
    # What each side renders from templates, and what each side creates.
    rendered = {side: [] for side in SIDES}
    for role, _tasks_file, task, sides in tasks:
        for side in sides:
            rendered[side] += rendered_kinds(roles_dir, role, task)
    created = {side: set() for side in SIDES}
    absent = []
    for role, tasks_file, task, sides in tasks:
        module = _module_of(task)
        if module is None:
            continue
        where = "{0}/tasks/{1}: {2}".format(role, tasks_file, task.get("name", "?"))
        if module != QUERY_MODULE and not set().union(*MODULE_CALLS.get(module, {0: {1}}).values()):
            continue  # no API call (tls_material)
        if not sides:
            raise UnknownCall(where + ": a Kubernetes task outside any side's module_defaults")
        args = task[module] or {}
        for side in sides:
            if module in ("kubernetes.core.k8s_info", QUERY_MODULE):
                # objects_info: every query as k8s_info would read it (a query skipped at run
                # time is still counted: some runs read it).
                for query in args["queries"] if module == QUERY_MODULE else [args]:
                    calls[side].add(_read_call(query, where))
            elif module == "kubernetes.core.k8s":
                if args.get("apply") or args.get("server_side_apply") or args.get("force"):
                    raise UnknownCall(where + ": apply/force: teach test_rbac its verbs")
                definitions = _definitions_of(
                    args, roles_dir, where, rendered[side], side, task.get("vars")
                )
                state = args.get("state", "present")
                for kind, api_version in definitions:
                    group, resource, namespaced = _kind(kind, api_version, where)
                    if state == "absent":
                        absent.append((side, kind, group, resource, namespaced))
                        continue
                    if state != "present":
                        raise UnknownCall("{0}: state {1}".format(where, state))
                    created[side].add(kind)
                    verbs = {"get", "create"} | (set() if kind in NO_PATCH else {"patch"})
                    for verb in verbs:
                        calls[side].add(_call(group, resource, namespaced, verb))
            elif module in MODULE_CALLS:
                by_kind = MODULE_CALLS[module]
                option = args.get("kind")
                options = [option] if option in by_kind else list(by_kind)
                for option in options:
                    for group, resource, verb in by_kind[option]:
                        calls[side].add(_call(group, resource, _namespaced(resource), verb))
            else:
                raise UnknownCall(
                    "{0}: module {1} is not in test_rbac.MODULE_CALLS".format(where, module)
                )
    # Deleting by label lists what matches (and lists again while waiting); only where the
    # side creates that kind can anything match, so only there is it read and deleted.
    for side, kind, group, resource, namespaced in absent:
        calls[side].add(_call(group, resource, namespaced, "list"))
        if kind in created[side]:
            calls[side] |= {_call(group, resource, namespaced, v) for v in ("get", "delete")}
    # OpenShift: a Route that sets spec.host needs create on routes/custom-host.
    for side in SIDES:
        if any(
            kind == "Route" and re.search(r"^  host:", text, re.MULTILINE)
            for kind, _api_version, text in rendered[side]
        ):
            calls[side].add(("namespace", ROUTES, "routes/custom-host", "create"))
    return calls


# The manifests -------------------------------------------------------------------------------


def objects_of(text):
    """The objects of an rbac/ file: one List (a single YAML document, as ansible-test's
    yamllint wants every file of a collection)."""
    document = yaml.safe_load(text)
    assert document["kind"] == "List", "rbac/ files are one List"
    return document["items"]


def manifests(side, root=ROOT):
    with open(os.path.join(root, "rbac", side + ".yml"), encoding="utf-8") as handle:
        return objects_of(handle.read())


def of_kind(docs, kind):
    return [doc for doc in docs if doc["kind"] == kind]


def granted(side, root=ROOT):
    """{(scope, group, resource, verb)} the side's Role and ClusterRole grant."""
    found = set()
    docs = manifests(side, root)
    for kind, scope in (("Role", "namespace"), ("ClusterRole", "cluster")):
        for role in of_kind(docs, kind):
            for rule in role["rules"]:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        for verb in rule["verbs"]:
                            found.add((scope, group, resource, verb))
    return found


def show(calls):
    return "\n".join(
        "  {0}: {1} {2}{3}".format(scope, verb, resource, " (" + group + ")" if group else "")
        for scope, group, resource, verb in sorted(calls)
    )


@functools.cache
def required(side):
    return required_calls(os.path.join(ROOT, "roles"))[side]


@pytest.mark.parametrize("side", SIDES)
def test_the_manifests_grant_every_call(side):
    missing = required(side) - granted(side)
    assert not missing, "rbac/{0}.yml does not grant:\n{1}".format(side, show(missing))


@pytest.mark.parametrize("side", SIDES)
def test_the_manifests_grant_nothing_else(side):
    extra = granted(side) - required(side)
    assert not extra, "rbac/{0}.yml grants what nothing calls:\n{1}".format(side, show(extra))


def test_the_derivation_sees_what_a_run_does():
    """A few calls every reader of the roles expects, so a broken walker cannot pass."""
    source, destination = required("source"), required("destination")
    assert ("namespace", "", "namespaces", "get") in source & destination
    assert ("namespace", "", "pods", "create") in source & destination
    assert ("namespace", "", "secrets", "delete") in source & destination
    assert ("namespace", "", "persistentvolumeclaims", "create") in destination
    assert ("namespace", "", "persistentvolumeclaims", "create") not in source
    assert ("namespace", "", "services", "create") in source
    assert ("namespace", "", "services", "create") not in destination
    assert ("namespace", ROUTES, "routes", "create") in source
    assert ("namespace", ROUTES, "routes", "list") in destination  # playbooks/cleanup.yml
    assert ("namespace", ROUTES, "routes/custom-host", "create") in source
    assert ("cluster", "", "nodes", "list") in source
    # state_transfer_network_policy: made and removed on the source only.
    policies = ("namespace", "networking.k8s.io", "networkpolicies")
    assert {policies + (verb,) for verb in ("create", "list", "delete")} <= source
    assert not {call for call in destination if call[:3] == policies}
    assert {call for call in destination if call[0] == "cluster"} == set()


@pytest.mark.parametrize(
    "task, expected",
    [
        # A kind the manifests were not written for.
        ({"kubernetes.core.k8s_info": {"kind": "Event", "namespace": "x"}}, "Event"),
        # A known kind, verbs the source Role does not grant.
        (
            {
                "kubernetes.core.k8s": {
                    "state": "present",
                    "definition": {
                        "apiVersion": "v1",
                        "kind": "PersistentVolumeClaim",
                        "metadata": {"name": "x"},
                    },
                }
            },
            {
                ("namespace", "", "persistentvolumeclaims", "get"),
                ("namespace", "", "persistentvolumeclaims", "create"),
            },
        ),
        # A module that the table does not know.
        ({"kubernetes.core.k8s_exec": {"pod": "x", "command": "true"}}, "k8s_exec"),
    ],
    ids=["new-kind", "new-verb", "new-module"],
)
def test_a_new_call_in_a_task_is_noticed(tmp_path, task, expected):
    """The check itself: a task added to a copy of the roles shows as missing."""
    roles = tmp_path / "roles"
    shutil.copytree(os.path.join(ROOT, "roles"), str(roles))
    preflight = roles / "state_transfer" / "tasks" / "preflight.yml"
    tasks = yaml.safe_load(preflight.read_text())
    source_block = next(t for t in tasks if t.get("name") == "Check the source cluster")
    source_block["block"].append(dict(name="Something new", **task))
    preflight.write_text(yaml.safe_dump(tasks, sort_keys=False))
    if isinstance(expected, str):
        with pytest.raises(UnknownCall, match=expected):
            required_calls(str(roles))
        return
    missing = required_calls(str(roles))["source"] - granted("source")
    assert missing == expected


def test_every_kubernetes_task_is_reached():
    """No tasks file that talks to a cluster escapes the walk from the playbooks' entries."""
    roles_dir = os.path.join(ROOT, "roles")
    reached = {(role, tasks_file) for role, tasks_file, _t, _s in reached_tasks(roles_dir)}
    for role in sorted(os.listdir(roles_dir)):
        tasks_dir = os.path.join(roles_dir, role, "tasks")
        for tasks_file in sorted(os.listdir(tasks_dir)):
            with open(os.path.join(tasks_dir, tasks_file), encoding="utf-8") as handle:
                text = handle.read()
            if re.search(r"^\s+(kubernetes\.core|kubeferry\.state_transfer)\.\w+:", text, re.M):
                assert (role, tasks_file) in reached, "{0}/tasks/{1}".format(role, tasks_file)


def test_pods_of_an_earlier_run_are_deleted_first():
    """NO_PATCH's reason for Pods: on each side that creates pods, a task deletes the pods of
    the run's side by label (delete_all) in the same tasks file, before the create."""
    for role, tasks_file in (("state_transfer", "server.yml"), ("state_transfer", "client.yml")):
        tasks = [t for _r, _f, t, _s in walk(os.path.join(ROOT, "roles"), role, tasks_file)]
        deletes = [
            index
            for index, task in enumerate(tasks)
            if (task.get("kubernetes.core.k8s") or {}).get("kind") == "Pod"
            and task["kubernetes.core.k8s"].get("state") == "absent"
            and task["kubernetes.core.k8s"].get("delete_all")
        ]
        # The server pod comes with its objects (k8s); the client pods are started by
        # transfer_progress (their definitions come from the client objects).
        creates = [
            index
            for index, task in enumerate(tasks)
            if (task.get("kubernetes.core.k8s") or {}).get("state") == "present"
            and "objects" in str(task["kubernetes.core.k8s"].get("definition"))
            or "objects"
            in str((task.get("kubeferry.state_transfer.transfer_progress") or {}).get("pods"))
        ]
        assert deletes and creates and min(deletes) < min(creates), tasks_file


# The modules' table against module_utils ---------------------------------------------------


def _module_utils_calls(name):
    """{(group, resource, verb)} that plugins/module_utils/<name>.py calls through Cluster."""
    with open(os.path.join(ROOT, "plugins", "module_utils", name + ".py"), encoding="utf-8") as f:
        text = f.read()
    found = set()
    for verb, kind in re.findall(r"cluster\.(get|list|create)\(\s*\"(\w+)\"", text):
        group, resource, _namespaced = KINDS[kind]
        found.add((group, resource, verb))
    if re.search(r"cluster\.log\(", text):
        found.add((CORE, "pods/log", "get"))
    for kind in re.findall(r"cluster\.wait_for_change\(\s*\"(\w+)\"", text):
        group, resource, _namespaced = KINDS[kind]
        found |= {(group, resource, "list"), (group, resource, "watch")}
    return found


def test_the_module_table_is_what_module_utils_reads():
    modules_dir = os.path.join(ROOT, "plugins", "modules")
    names = sorted(
        n[:-3] for n in os.listdir(modules_dir) if n.endswith(".py") and n != "__init__.py"
    )
    assert sorted(m.rsplit(".", 1)[1] for m in MODULE_CALLS) == names, (
        "a module is not in MODULE_CALLS"
    )
    for name in names:
        with open(os.path.join(modules_dir, name + ".py"), encoding="utf-8") as handle:
            imported = set(
                re.findall(r"state_transfer\.plugins\.module_utils\.(\w+) import", handle.read())
            )
        calls = set()
        for util in sorted(imported - {"cluster"}):
            calls |= _module_utils_calls(util)
        table = set().union(*MODULE_CALLS["kubeferry.state_transfer." + name].values())
        assert calls == table, name


def test_module_utils_read_and_create_only():
    """Only cluster.py talks to the client: it reads (get, list, logs) and creates (the client
    Pods transfer_progress starts); nothing of module_utils patches, replaces or deletes."""
    utils = os.path.join(ROOT, "plugins", "module_utils")
    for name in sorted(os.listdir(utils)):
        if not name.endswith(".py"):
            continue
        with open(os.path.join(utils, name), encoding="utf-8") as handle:
            text = handle.read()
        if name == "cluster.py":
            assert set(re.findall(r"self\.client\.(\w+)", text)) == {"resource", "get", "create"}
            assert re.findall(r"\bpods\.(\w+)\.(\w+)", text) == [("log", "get")]
            # wait_for_change: the revision (a list of one item) and the watch from it.
            assert re.findall(r"\bresource\.(\w+)\b", text) == ["get", "watch"]
        else:
            assert not re.search(r"\bclient\.\w+\(", text), name


# The manifests themselves --------------------------------------------------------------------


@pytest.mark.parametrize("side", SIDES)
def test_no_wildcards_and_no_cluster_wide_writes(side):
    docs = manifests(side)
    for role in of_kind(docs, "Role") + of_kind(docs, "ClusterRole"):
        for rule in role["rules"]:
            assert set(rule) == {"apiGroups", "resources", "verbs"}, rule  # no nonResourceURLs
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field] and all("*" not in v for v in rule[field]), rule
            # watch shows nothing list does not, but only where it is used: pods, to see a
            # client pod end at once (transfer_progress).
            if "watch" in rule["verbs"]:
                assert rule["resources"] == ["pods"] and "list" in rule["verbs"], rule
            assert not {
                "deletecollection",
                "update",
                "escalate",
                "bind",
                "impersonate",
            } & set(rule["verbs"]), rule
    for scope, _group, resource, verb in granted(side):
        if scope == "cluster":
            assert verb in READ_VERBS, (resource, verb)
            cluster_scoped = {v[1] for v in KINDS.values() if not v[2]}
            assert resource in cluster_scoped, resource


@pytest.mark.parametrize("side", SIDES)
def test_the_bindings_name_the_identity(side):
    docs = manifests(side)
    name = "kubeferry-state-transfer-" + side
    account = of_kind(docs, "ServiceAccount")
    assert [(a["metadata"]["name"], a["metadata"]["namespace"]) for a in account] == [
        (name, PLACEHOLDER)
    ]
    subject = {"kind": "ServiceAccount", "name": name, "namespace": PLACEHOLDER}
    pairs = (("Role", "RoleBinding"), ("ClusterRole", "ClusterRoleBinding"))
    for role_kind, binding_kind in pairs:
        roles, bindings = of_kind(docs, role_kind), of_kind(docs, binding_kind)
        assert len(roles) == len(bindings) <= 1, (role_kind, binding_kind)
        for role, binding in zip(roles, bindings):
            assert role["metadata"]["name"] == name
            assert binding["roleRef"] == {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": role_kind,
                "name": name,
            }
            assert binding["subjects"] == [subject]
            if role_kind == "Role":
                assert role["metadata"]["namespace"] == binding["metadata"]["namespace"]
                assert role["metadata"]["namespace"] == PLACEHOLDER
            else:  # one ClusterRoleBinding per namespace
                assert binding["metadata"]["name"] == name + "-" + PLACEHOLDER
    # The destination needs nothing cluster-wide; the source only the Nodes.
    expected = {"source": [("", "nodes", "list")], "destination": []}[side]
    assert sorted((g, r, v) for s, g, r, v in granted(side) if s == "cluster") == expected


@pytest.mark.parametrize("side", SIDES)
def test_the_namespace_substitution_gives_valid_objects(side):
    with open(os.path.join(ROOT, "rbac", side + ".yml"), encoding="utf-8") as handle:
        text = handle.read().replace(PLACEHOLDER, "shop")
    docs = objects_of(text)
    assert PLACEHOLDER not in yaml.safe_dump_all(docs)
    dns = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    for doc in docs:
        assert dns.match(doc["metadata"]["name"]), doc["metadata"]["name"]
        if doc["kind"] in ("ServiceAccount", "Role", "RoleBinding"):
            assert doc["metadata"]["namespace"] == "shop"


def test_the_collection_tarball_ships_the_manifests():
    ignored = read_yaml(os.path.join(ROOT, "galaxy.yml"))["build_ignore"]
    for side in SIDES:
        path = "rbac/{0}.yml".format(side)
        for pattern in ignored:
            assert not fnmatch.fnmatch(path, pattern) and not fnmatch.fnmatch("rbac", pattern), (
                pattern
            )
