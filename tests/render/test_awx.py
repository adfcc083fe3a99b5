"""An AWX job of extensions/awx, without AWX and without a cluster.

The credential types are checked against the rules AWX applies when they are created, and
their injectors are rendered the way AWX renders them for a job: Jinja2's sandbox, each
`file` template written to a private file whose path is `tower.filename.<name>`, the
`extra_vars` written to a YAML file passed with `-e @file`. The survey spec is checked like
AWX checks it, and its answers become extra vars the way AWX merges them. Then
playbooks/state_transfer.yml runs in render mode with those extra vars, and the plan it
writes (plan.yaml) must show what the job asked for, converted from the strings.
"""

import json
import os
import re
import stat
import subprocess
import sys
import tempfile
import types

import pytest
import yaml
from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .conftest import ROOT, load_side

pytestmark = pytest.mark.render

AWX = os.path.join(ROOT, "extensions", "awx")
VARIABLE_NAME = re.compile(r"^[a-zA-Z_]+[a-zA-Z0-9_]*$")
FILE_LABEL = re.compile(r"^template(\.[a-zA-Z_]+[a-zA-Z0-9_]*)?$")
FIELD_KEYS = {"id", "label", "type", "format", "choices", "help_text", "multiline", "secret"}
FIELD_KEYS |= {"ask_at_runtime", "default"}
SURVEY_TYPES = {
    "text": str,
    "textarea": str,
    "password": str,
    "multiplechoice": str,
    "multiselect": str,
    "integer": int,
    "float": (float, int),
}
# What the credentials hold: a kubeconfig per cluster, with a token that must never show.
KUBECONFIGS = {
    side: "apiVersion: v1\nkind: Config\nusers: [{name: u, user: {token: %s}}]\n" % token
    for side, token in (("source", "SOURCE-TOKEN"), ("destination", "DESTINATION-TOKEN"))
}


def credential_type(side):
    with open(os.path.join(AWX, "credential_types", "kubeferry_{0}_cluster.yml".format(side))) as f:
        return yaml.safe_load(f)


def survey_spec():
    with open(os.path.join(AWX, "survey_spec.json")) as handle:
        return json.load(handle)


def check_credential_type(definition):
    """The rules AWX applies to a custom credential type it is given."""
    assert definition["kind"] in ("cloud", "net"), "custom types may only be cloud or net"
    inputs, injectors = definition["inputs"], definition["injectors"]
    assert set(inputs) <= {"fields", "required"}
    ids = [field["id"] for field in inputs["fields"]]
    assert len(ids) == len(set(ids)) and "tower" not in ids
    for field in inputs["fields"]:
        assert set(field) <= FIELD_KEYS and {"id", "label"} <= set(field), field
        assert VARIABLE_NAME.match(field["id"]) and field.get("type", "string") == "string"
    assert set(inputs.get("required", [])) <= set(ids)
    assert set(injectors) <= {"file", "env", "extra_vars"}
    labels = list(injectors.get("file", {}))
    assert all(FILE_LABEL.match(label) for label in labels)
    assert "template" not in labels or len(labels) == 1, "single- and multi-file syntax mixed"
    assert all(VARIABLE_NAME.match(name) for name in injectors.get("extra_vars", {}))
    # Every template renders with every field defined and nothing else.
    files = types.SimpleNamespace(**{label.split(".")[1]: "EXAMPLE" for label in labels})
    namespace = dict({name: "EXAMPLE" for name in ids}, tower=types.SimpleNamespace(filename=files))
    strict = ImmutableSandboxedEnvironment(undefined=StrictUndefined)
    for kind in ("file", "env", "extra_vars"):
        for template in injectors.get(kind, {}).values():
            assert isinstance(template, str)
            strict.from_string(template).render(namespace)


def inject(definition, credential_inputs, private_data_dir):
    """What AWX does with a credential of this type for a job: returns the -e arguments."""
    namespace = {"tower": types.SimpleNamespace(filename=types.SimpleNamespace())}
    # Only inputs with a value are defined: a missing one renders as "" (Jinja2's Undefined).
    namespace.update({key: value for key, value in credential_inputs.items() if value})
    sandbox = ImmutableSandboxedEnvironment()
    for label, template in definition["injectors"].get("file", {}).items():
        handle, path = tempfile.mkstemp(dir=os.path.join(private_data_dir, "env"))
        with os.fdopen(handle, "w") as out:
            out.write(sandbox.from_string(template).render(**namespace))
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        setattr(namespace["tower"].filename, label.split(".")[1], path)
    extra_vars = {
        name: sandbox.from_string(template).render(**namespace)
        for name, template in definition["injectors"].get("extra_vars", {}).items()
    }
    handle, path = tempfile.mkstemp(dir=os.path.join(private_data_dir, "env"))
    with os.fdopen(handle, "w") as out:
        out.write(yaml.safe_dump(extra_vars))
    return ["-e", "@" + path]


def answer_errors(question, value):
    """AWX's checks of one survey answer (or default)."""
    kind, errors = question["type"], []
    if not isinstance(value, SURVEY_TYPES[kind]):
        return ["{0}: {1!r} is not of type {2}".format(question["variable"], value, kind)]
    if kind in ("text", "textarea"):
        size = len(value)
    elif kind == "integer":
        size = value
    else:
        size = None
    if size is not None and size < question.get("min", size):
        errors.append("{0}: too small".format(question["variable"]))
    if size is not None and size > question.get("max", size):
        errors.append("{0}: too large".format(question["variable"]))
    if kind == "multiplechoice" and value not in question["choices"].splitlines():
        errors.append("{0}: {1!r} is not a choice".format(question["variable"], value))
    return errors


def check_survey_spec(spec):
    """The checks AWX makes when a survey spec is saved."""
    assert isinstance(spec["name"], str) and isinstance(spec["description"], str)
    assert spec["spec"], "a survey needs questions"
    variables = [question["variable"] for question in spec["spec"]]
    assert len(variables) == len(set(variables))
    for question in spec["spec"]:
        for key in ("type", "question_name", "variable"):
            assert isinstance(question[key], str)
        assert isinstance(question["required"], bool)
        assert question["type"] in SURVEY_TYPES
        if question.get("default", "") != "":
            assert isinstance(question["default"], SURVEY_TYPES[question["type"]]), question
        if question["type"] in ("multiplechoice", "multiselect"):
            assert question["choices"] and question.get("default") in question["choices"].split(
                "\n"
            )


def job_extra_vars(spec, template_extra_vars, answers):
    """A job's extra vars: the template's, then the survey defaults that pass, then answers."""
    extra_vars = dict(template_extra_vars)
    for question in spec["spec"]:
        if "default" in question and not answer_errors(question, question["default"]):
            extra_vars[question["variable"]] = question["default"]
    errors = []
    for question in spec["spec"]:
        if question["variable"] in answers:
            errors += answer_errors(question, answers[question["variable"]])
        elif question["required"] and question["variable"] not in extra_vars:
            errors.append("{0}: missing".format(question["variable"]))
    assert errors == [], errors
    extra_vars.update(answers)
    return extra_vars


@pytest.mark.parametrize("side", ["source", "destination"])
def test_credential_types_are_valid_for_awx(side):
    definition = credential_type(side)
    check_credential_type(definition)
    assert definition["name"] == "kubeferry {0} cluster".format(side)
    # Never the shared K8S_AUTH_* environment: it cannot tell two clusters apart.
    assert "env" not in definition["injectors"]
    assert set(definition["injectors"]["extra_vars"]) == {
        "state_transfer_{0}_kubeconfig".format(side),
        "state_transfer_{0}_context".format(side),
    }


def test_survey_spec_is_valid_for_awx_and_covers_the_choices():
    spec = survey_spec()
    check_survey_spec(spec)
    questions = {question["variable"]: question for question in spec["spec"]}
    argument_specs = os.path.join(ROOT, "roles", "state_transfer", "meta", "argument_specs.yml")
    with open(argument_specs) as handle:
        options = yaml.safe_load(handle)["argument_specs"]["main"]["options"]
    assert set(questions) <= set(options), "the survey asks for a variable the role lacks"
    for variable, question in questions.items():
        if question["type"] == "multiplechoice" and "choices" in options[variable]:
            assert question["choices"].split("\n") == options[variable]["choices"], variable
    assert {
        "state_transfer_source_namespace",
        "state_transfer_destination_namespace",
        "state_transfer_pvcs",
        "state_transfer_parallel",
    } <= set(questions)


def awx_job(tmp_path, answers, credential_inputs):
    """The ansible-playbook arguments of an AWX job of the example job template."""
    private_data_dir = tmp_path / "private"
    (private_data_dir / "env").mkdir(parents=True)
    arguments = []
    for side in ("source", "destination"):
        arguments += inject(credential_type(side), credential_inputs[side], str(private_data_dir))
    render_dir = tmp_path / "render"
    extra_vars = job_extra_vars(
        survey_spec(), {"state_transfer_render_dir": str(render_dir)}, answers
    )
    with open(private_data_dir / "env" / "extravars", "w") as handle:
        yaml.safe_dump(extra_vars, handle)
    arguments += ["-e", "@" + str(private_data_dir / "env" / "extravars")]
    return arguments, render_dir


def run_playbook(tmp_path, arguments):
    # The inventory of the docs: localhost, local connection, the job's own Python.
    inventory = tmp_path / "inventory.json"
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory.write_text(json.dumps({"all": {"hosts": {"localhost": host}}}))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    for name in [name for name in env if name.startswith("K8S_AUTH_")]:
        del env[name]
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook")]
    command += ["playbooks/state_transfer.yml", "-i", str(inventory)] + arguments
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )


ANSWERS = {
    "state_transfer_source_namespace": "shop",
    "state_transfer_destination_namespace": "shop-new",
    "state_transfer_pvcs": "data\nlogs:logs-copy:fast\n",
    "state_transfer_transfer": "rclone",
    "state_transfer_endpoint": "node_port",
    "state_transfer_mirror": "true",
    "state_transfer_create_destination_pvcs": "false",
}


def plan_of(render_dir):
    with open(render_dir / "plan.yaml") as handle:
        return yaml.safe_load(handle)


# "awx": the job as AWX runs it (integer questions give numbers, the others strings).
# "strings": the same variables with every value a string, as `-e key=value` and AWX text
# answers or prompted extra vars give them.
@pytest.mark.parametrize("launch", ["awx", "strings"])
def test_an_awx_job_is_planned_as_asked(tmp_path, launch):
    credential_inputs = {
        "source": {"kubeconfig": KUBECONFIGS["source"], "context": "source-admin"},
        "destination": {"kubeconfig": KUBECONFIGS["destination"]},  # no context given
    }
    answers = dict(ANSWERS, state_transfer_parallel=5)
    arguments, render_dir = awx_job(tmp_path, answers, credential_inputs)
    if launch == "strings":
        # Every -e @file of the job, read back and passed again as key=value strings.
        values = {}
        for path in arguments[1::2]:
            with open(path[1:]) as handle:
                values.update(yaml.safe_load(handle))
        arguments = []
        for name, value in values.items():
            arguments += ["-e", "{0}={1}".format(name, value).replace("\n", ",")]
    result = run_playbook(tmp_path, arguments)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]

    plan = plan_of(render_dir)
    source, destination = plan["source"], plan["destination"]
    # Each side reads its own kubeconfig file, the one its credential wrote.
    assert source["kubeconfig"] != destination["kubeconfig"]
    for side, connection in (("source", source), ("destination", destination)):
        with open(connection["kubeconfig"]) as handle:
            assert handle.read() == KUBECONFIGS[side]
    assert (source["context"], destination["context"]) == ("source-admin", None)
    assert (source["namespace"], destination["namespace"]) == ("shop", "shop-new")
    assert plan["parallel"] == 5 and isinstance(plan["parallel"], int)  # 5, not 5.0
    assert plan["settings"]["mirror"] is True and plan["settings"]["compress"] is False
    assert plan["settings"]["create_destination_pvcs"] is False
    assert plan["settings"]["server_timeout"] == 600
    assert plan["pvcs"] == [
        {"source": "data", "destination": "data"},
        {"source": "logs", "destination": "logs-copy", "storage_class": "fast"},
    ]
    assert plan["order"] == ["data", "logs-copy"]
    assert (plan["transfer"], plan["transport"], plan["endpoint"]) == (
        "rclone",
        "stunnel",
        "node_port",
    )
    # The manifests follow the plan: rclone clients that mirror (sync), a NodePort Service.
    clients = [obj for obj in load_side(str(render_dir), "destination") if obj["kind"] == "Pod"]
    assert len(clients) == 2
    assert all(
        any("sync" in container.get("args", []) for container in pod["spec"]["containers"])
        for pod in clients
    )
    services = [obj for obj in load_side(str(render_dir), "source") if obj["kind"] == "Service"]
    assert [service["spec"]["type"] for service in services] == ["NodePort"]
    # The credentials' secrets stay in their files.
    written = "".join(open(render_dir / name).read() for name in os.listdir(render_dir))
    for text in (written, result.stdout):
        assert "SOURCE-TOKEN" not in text and "DESTINATION-TOKEN" not in text


def test_a_bad_answer_is_refused_naming_the_variable(tmp_path):
    credential_inputs = {side: {"kubeconfig": KUBECONFIGS[side]} for side in KUBECONFIGS}
    answers = dict(ANSWERS, state_transfer_pvcs="data, Logs, a:b:c:d")
    arguments, render_dir = awx_job(tmp_path, answers, credential_inputs)
    result = run_playbook(tmp_path, arguments)
    assert result.returncode != 0
    assert "state_transfer_pvcs[1].source: 'Logs' is not a valid PVC name" in result.stdout
    assert "state_transfer_pvcs[2].source: 'a:b:c:d' is not a valid PVC name" in result.stdout
    assert not render_dir.exists()


def test_two_jobs_of_one_transfer_get_the_same_run_id(tmp_path):
    # AWX writes the kubeconfigs to new files for every job; the run id follows the clusters'
    # API servers, so a second job finds (and replaces) what a cancelled first one left.
    def kubeconfig(server, token):
        return yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "main",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": token}}],
                "contexts": [{"name": "main", "context": {"cluster": "c", "user": "u"}}],
            }
        )

    def run_id(job, source_server):
        credential_inputs = {
            "source": {"kubeconfig": kubeconfig(source_server, "SOURCE-TOKEN")},
            "destination": {"kubeconfig": kubeconfig("https://198.18.0.2:6443", "DEST-TOKEN")},
        }
        (tmp_path / job).mkdir()
        arguments, render_dir = awx_job(tmp_path / job, ANSWERS, credential_inputs)
        result = run_playbook(tmp_path / job, arguments)
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
        plan = plan_of(render_dir)
        assert plan["source"]["server"] == source_server
        return plan["run_id"], plan["source"]["kubeconfig"]

    first, first_file = run_id("job-1", "https://198.18.0.1:6443")
    again, again_file = run_id("job-2", "https://198.18.0.1:6443")
    other, _other_file = run_id("job-3", "https://198.18.0.3:6443")
    assert first_file != again_file
    assert first == again != other
