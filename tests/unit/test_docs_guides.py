"""The guides (docs/guide-*.md) and docs/troubleshooting.md say what the code does.

(a) Every ``state_transfer_*`` variable the pages name is an option of the state_transfer
    role (any entry point of its meta/argument_specs.yml) or a flat AWX variable of
    plugins/plugin_utils/inputs.py; every part-role variable they name (``endpoint_route_*``,
    ``transport_stunnel_*``, ``transfer_rsync_*``, ...) is an option of that role.

(b) Every message quoted in docs/troubleshooting.md is in the code. The convention of the
    page: each non-empty line of a fenced block whose info string is ``text`` is one message
    (or one part of a message) copied from the code, and ``<...>`` marks a placeholder, what
    the code fills in at run time. A quoted message is found when

    - a string constant of a Python file under plugins/ (docstrings and the modules'
      DOCUMENTATION, EXAMPLES and RETURN excepted), read as a format string whose ``{...}``
      fields may stand for anything, matches the whole message; the doc's placeholders
      must fall on the constant's fields, and doc text that a field stands for (the
      ``state_transfer_pvcs[`` of ``state_transfer_pvcs[<n>].source``, filled in by another
      format call) must be in a constant of the same file, and make up less than half of the
      message's fixed text; or
    - the fixed fragments between the placeholders appear, in this order, in one file under
      roles/ (tasks, templates, scripts; READMEs excepted), where Jinja concatenations of
      two literals (``'a ' ~ 'b'``) are read as one literal.

    Whitespace is compared collapsed. A message changed in the code no longer matches.

(c) Every ``yaml`` block of these pages is a vars file: it parses to a mapping whose keys
    are variables of the state_transfer role or user-facing variables of the part roles,
    it passes the roles' argument specs, and the collection's own input checks
    (plugin_utils/checks.input_errors) accept it.
"""

import ast
import functools
import glob
import os
import re
import shutil
import string

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.kubeferry.state_transfer.plugins.plugin_utils import checks, inputs
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCS = os.path.join(ROOT, "docs")
ROLES = os.path.join(ROOT, "roles")
TROUBLESHOOTING = os.path.join(DOCS, "troubleshooting.md")
GUIDES = sorted(glob.glob(os.path.join(DOCS, "guide-*.md")))
PAGES = GUIDES + [TROUBLESHOOTING]

FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
PLACEHOLDER = re.compile(r"<[^<>\n]+>")
HOLE = "\x00"  # a doc placeholder, once the message is turned into text to match
# Inputs of the part roles that the orchestrator passes; a user never sets them.
INTERNAL = {"state_transfer_run", "transport_fragment", "endpoint_address"}
SECRET = re.compile(r"_(password|tls)$")
MIN_FIXED_TEXT = 8


def read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def blocks(path, info):
    return [body for kind, body in FENCE.findall(read(path)) if kind == info]


def collapse(text):
    return re.sub(r"\s+", " ", text).strip()


def role_options():
    """{role: {variable: spec}} over every entry point of each role."""
    found = {}
    for role in sorted(os.listdir(ROLES)):
        specs = yaml.safe_load(read(os.path.join(ROLES, role, "meta", "argument_specs.yml")))
        options = {}
        for entry in specs["argument_specs"].values():
            options.update(entry.get("options") or {})
        found[role] = options
    return found


OPTIONS = role_options()
FLAT = {"{0}_{1}".format(side, key) for side in inputs.SIDES for key in inputs.FLAT_SIDE_KEYS}
STATE_TRANSFER_VARIABLES = set(OPTIONS["state_transfer"]) | FLAT
PART_ROLES = sorted(set(OPTIONS) - {"state_transfer"})
USER_PART_VARIABLES = {
    name: spec
    for role in PART_ROLES
    for name, spec in OPTIONS[role].items()
    if name.startswith(role + "_") and not SECRET.search(name) and name not in INTERNAL
}


def test_the_pages_exist():
    names = {os.path.basename(path) for path in GUIDES}
    assert {
        "guide-openshift-route.md",
        "guide-cloud-load-balancer.md",
        "guide-on-premises-node-port.md",
        "guide-namespace-move.md",
    } <= names
    assert os.path.exists(TROUBLESHOOTING)
    readme = read(os.path.join(ROOT, "README.md"))
    for path in PAGES:
        assert "docs/" + os.path.basename(path) in readme, "README does not link " + path


# (a) ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES, ids=os.path.basename)
def test_every_variable_named_exists(path):
    text = read(path)
    named = set(re.findall(r"\bstate_transfer_[a-z0-9_]*[a-z0-9]", text))
    assert named, "no variable named at all: is this the right file?"
    unknown = sorted(named - STATE_TRANSFER_VARIABLES)
    assert not unknown, "{0}: not a state_transfer variable: {1}".format(path, unknown)
    for role in PART_ROLES:
        for name in set(re.findall(r"\b{0}_[a-z0-9_]*[a-z0-9]".format(role), text)):
            assert name in OPTIONS[role], "{0}: {1} is no option of {2}".format(path, name, role)


# (b) ---------------------------------------------------------------------------------------


def quoted_messages():
    messages = []
    for body in blocks(TROUBLESHOOTING, "text"):
        messages += [collapse(line) for line in body.splitlines() if line.strip()]
    return messages


def fixed_text(message):
    return PLACEHOLDER.sub("", message)


def _is_doc_constant(node, parents):
    parent = parents.get(node)
    if isinstance(parent, ast.Expr):  # a docstring or a bare string statement
        return True
    return (
        isinstance(parent, ast.Assign)
        and len(parent.targets) == 1
        and isinstance(parent.targets[0], ast.Name)
        and parent.targets[0].id in ("DOCUMENTATION", "EXAMPLES", "RETURN")
    )


def format_parts(value):
    """A format string as [(literal, has_field_after)]: the texts between its fields."""
    try:
        parsed = list(string.Formatter().parse(value))
    except ValueError:
        return [(value, False)]
    return [(literal, field is not None) for literal, field, _spec, _conv in parsed]


@functools.cache
def python_strings(root):
    """{file: [parts of each string constant]} of the Python files under root/plugins."""
    found = {}
    for path in sorted(glob.glob(os.path.join(root, "plugins", "**", "*.py"), recursive=True)):
        tree = ast.parse(read(path))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        constants = []
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                parts = []
                for value in node.values:
                    if isinstance(value, ast.Constant):
                        parts.append((str(value.value), False))
                    else:
                        parts.append(("", True))
                constants.append(parts)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                if parents.get(node).__class__ is ast.JoinedStr:
                    continue
                if not _is_doc_constant(node, parents):
                    constants.append(format_parts(node.value))
        found[path] = constants
    return found


def _pattern(parts):
    """The regex of a format string: its literals as they are, each field a group."""
    regex = "".join(
        re.escape(re.sub(r"\s+", " ", literal)) + ("(.*?)" if field else "")
        for literal, field in parts
    )
    return re.compile(regex, re.DOTALL)


def _matches_python(message, constants):
    target = PLACEHOLDER.sub(HOLE, message)
    fixed = len(fixed_text(message))
    every_text = [collapse("".join(literal for literal, _kind in parts)) for parts in constants]
    for parts in constants:
        literals = [collapse(literal) for literal, _kind in parts if literal.strip()]
        if not literals or not all(literal in target for literal in literals):
            continue
        if len("".join(literals)) < MIN_FIXED_TEXT:
            continue
        match = _pattern(parts).fullmatch(target)
        if not match:
            continue
        absorbed = [
            chunk.strip()
            for group in match.groups()
            for chunk in (group or "").split(HOLE)
            if chunk.strip()
        ]
        if sum(len(chunk) for chunk in absorbed) * 2 >= fixed:
            continue
        if all(any(chunk in text for text in every_text) for chunk in absorbed):
            return True
    return False


@functools.cache
def role_texts(root):
    """{file: collapsed text} of every file under root/roles except the READMEs."""
    found = {}
    for path in sorted(glob.glob(os.path.join(root, "roles", "**", "*"), recursive=True)):
        if os.path.isdir(path) or path.endswith(".md"):
            continue
        text = read(path)
        text = re.sub(r"'\s*~\s*'", "", text)
        text = re.sub(r'"\s*~\s*"', "", text)
        found[path] = collapse(text)
    return found


def _matches_roles(message, texts):
    fragments = [collapse(part) for part in PLACEHOLDER.split(message) if part.strip()]
    for text in texts.values():
        position = 0
        for fragment in fragments:
            position = text.find(fragment, position)
            if position < 0:
                break
            position += len(fragment)
        else:
            return True
    return False


def message_in_code(message, root=ROOT):
    """Where the quoted message is in the code under root: a file name, or None."""
    for path, constants in python_strings(root).items():
        if _matches_python(message, constants):
            return path
    for path, text in role_texts(root).items():
        if _matches_roles(message, {path: text}):
            return path
    return None


def test_the_troubleshooting_page_quotes_messages():
    messages = quoted_messages()
    assert len(messages) >= 40, "the text blocks of troubleshooting.md hold the quoted messages"
    for message in messages:
        assert len(fixed_text(message).strip()) >= MIN_FIXED_TEXT, message


@pytest.mark.parametrize("message", quoted_messages(), ids=lambda m: "-".join(m.split()[:5]))
def test_every_quoted_message_is_in_the_code(message):
    assert message_in_code(message), "not found under plugins/ or roles/: " + message


def test_a_changed_message_is_noticed(tmp_path):
    """The check itself: a message edited in a copy of the code is no longer found."""
    for part in ("plugins", "roles"):
        shutil.copytree(os.path.join(ROOT, part), str(tmp_path / part))
    python_message = next(m for m in quoted_messages() if m.startswith("state_transfer_endpoint:"))
    jinja_message = next(m for m in quoted_messages() if m.startswith("No run to clean up"))
    assert message_in_code(python_message, str(tmp_path))
    assert message_in_code(jinja_message, str(tmp_path))
    checks_py = tmp_path / "plugins" / "plugin_utils" / "checks.py"
    checks_py.write_text(checks_py.read_text().replace("which the source cluster does not", "the"))
    cleanup = tmp_path / "roles" / "state_transfer" / "tasks" / "cleanup.yml"
    cleanup.write_text(cleanup.read_text().replace("No run to clean up", "Nothing to clean up"))
    python_strings.cache_clear()
    role_texts.cache_clear()
    assert not message_in_code(python_message, str(tmp_path))
    assert not message_in_code(jinja_message, str(tmp_path))


# (c) ---------------------------------------------------------------------------------------


def vars_files():
    found = []
    for path in PAGES:
        for index, body in enumerate(blocks(path, "yaml")):
            found.append(pytest.param(body, id="{0}-{1}".format(os.path.basename(path), index)))
    return found


def test_every_guide_has_a_vars_file():
    for path in GUIDES:
        assert blocks(path, "yaml"), path
        assert "ansible-playbook kubeferry.state_transfer.state_transfer -e @" in read(path), path


@pytest.mark.parametrize("body", vars_files())
def test_every_vars_file_is_valid(body):
    given = yaml.safe_load(body)
    assert isinstance(given, dict)
    known = set(OPTIONS["state_transfer"]) | set(USER_PART_VARIABLES)
    assert not sorted(set(given) - known), "unknown variables"

    main = OPTIONS["state_transfer"]
    ours = {name: value for name, value in given.items() if name in main}
    result = ArgumentSpecValidator(main).validate(ours)
    assert not result.error_messages, result.error_messages

    parts = {name: value for name, value in given.items() if name in USER_PART_VARIABLES}
    spec = {
        name: {key: value for key, value in USER_PART_VARIABLES[name].items() if key != "required"}
        for name in parts
    }
    result = ArgumentSpecValidator(spec).validate(parts)
    assert not result.error_messages, result.error_messages

    defaults = yaml.safe_load(read(os.path.join(ROLES, "state_transfer", "defaults", "main.yml")))
    assert checks.input_errors(dict(defaults, **ours)) == []
    for side in ("state_transfer_source", "state_transfer_destination"):
        unknown = set(given.get(side) or {}) - set(AUTH_ARG_SPEC) - {"namespace"}
        assert not unknown, (side, unknown)


# Links between the pages ---------------------------------------------------------------------


def anchors(text):
    """GitHub's anchors of a page's headings."""
    found = set()
    for heading in re.findall(r"^#+ (.+)$", FENCE.sub("", text), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


@pytest.mark.parametrize("path", PAGES, ids=os.path.basename)
def test_links_between_the_pages_resolve(path):
    for target in re.findall(r"\]\(([^)\s]+)\)", read(path)):
        if re.match(r"[a-z]+:", target):
            continue
        page, _hash, anchor = target.partition("#")
        linked = os.path.normpath(os.path.join(os.path.dirname(path), page)) if page else path
        assert os.path.exists(linked), (path, target)
        if anchor and linked.endswith(".md"):
            assert anchor in anchors(read(linked)), (path, target)
