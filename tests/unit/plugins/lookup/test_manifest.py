"""The manifest lookup: ansible.builtin.template's result, without a deep copy of the variables."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

from ansible_collections.kubeferry.state_transfer.plugins.lookup import manifest


class NotToBeCopied:
    """A variable that fails a deep copy, as a large one would cost one."""

    def __deepcopy__(self, memo):
        raise AssertionError("a variable was deep-copied")


@pytest.fixture(autouse=True)
def builtin_by_short_name(monkeypatch):
    """Outside ansible-test there is no collection finder for ansible.builtin names: the
    lookup gets ansible-core's template lookup by its short name here."""
    get = manifest.lookup_loader.get

    def by_short_name(name, *args, **kwargs):
        return get(name.replace("ansible.builtin.", "", 1), *args, **kwargs)

    monkeypatch.setattr(manifest.lookup_loader, "get", by_short_name)


@pytest.fixture
def templates(tmp_path):
    directory = tmp_path / "templates"
    directory.mkdir()
    (directory / "pod.yaml.j2").write_text(
        "kind: Pod\nmetadata:\n  name: {{ name }}\n  labels: {{ labels | to_json }}\n"
    )
    return tmp_path


def render(templates, template, **variables):
    loader = DataLoader()
    variables = dict(variables, ansible_search_path=[str(templates)])
    templar = Templar(loader=loader, variables=variables)
    lookup = manifest.LookupModule(loader=loader, templar=templar)
    return lookup.run([template], variables=variables)


def test_renders_what_the_template_lookup_renders(templates):
    [text] = render(templates, "pod.yaml.j2", name="kubeferry-3f9c2a1b-server", labels={"a": "b"})
    assert text == (
        'kind: Pod\nmetadata:\n  name: kubeferry-3f9c2a1b-server\n  labels: {"a": "b"}\n'
    )


def test_the_variables_are_not_deep_copied(templates):
    variables = dict(name="x", labels={}, big=NotToBeCopied())
    [text] = render(templates, "pod.yaml.j2", **variables)
    assert "name: x" in text
    # The lookup's own variables (template_path, ...) went into a copy, not into the task's.
    assert set(variables) == {"name", "labels", "big"}


def test_a_missing_template_fails_as_the_template_lookup_does(templates):
    from ansible.errors import AnsibleError

    with pytest.raises(AnsibleError, match="missing.yaml.j2"):
        render(templates, "missing.yaml.j2", name="x", labels={})
