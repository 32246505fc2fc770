"""The documentation stands alone and names the whole interface.

A user of the repository has README.md and docs/, nothing beside them: no link
may lead outside the repository's own files. And docs/reference.md must name
every setting in ``authsvc/config.py``, every command of the CLI and every
option of each command (in that command's section), and the README's settings
table every setting, so a new setting, command or option cannot ship
undocumented.
"""

import re
from pathlib import Path

import click
import pytest

from authsvc import config
from authsvc.cli import cli

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "reference.md"
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# Places only the project's authors have, never a user of the repository.
OUTSIDE_REFERENCES = ("../shared", "shared/", "CONTRACT.md")
# [text](target) in Markdown; the target ends at whitespace or the closing parenthesis.
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)")


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    """Yield every leaf command of the CLI as its words, e.g. ("keys", "rotate")."""
    for name, command in sorted(group.commands.items()):
        words = (*prefix, name)
        if isinstance(command, click.Group):
            yield from _commands(command, words)
        else:
            yield words


def test_the_reference_exists():
    assert REFERENCE.is_file(), "docs/reference.md is the interface reference the README links to"


@pytest.mark.parametrize("document", DOCUMENTS, ids=_name)
def test_documents_do_not_refer_outside_the_repository(document):
    text = document.read_text(encoding="utf-8")
    found = [needle for needle in OUTSIDE_REFERENCES if needle.lower() in text.lower()]
    assert not found, f"{_name(document)} refers to {found}, which users of the repository do not have"


@pytest.mark.parametrize("document", DOCUMENTS, ids=_name)
def test_relative_links_resolve_to_files_in_the_repository(document):
    broken = []
    for target in LINK.findall(document.read_text(encoding="utf-8")):
        path = target.split("#", 1)[0]
        if re.match(r"[a-z][a-z0-9+.-]*:", path):
            continue  # an absolute URL
        resolved = (document.parent / path).resolve() if path else document
        if not resolved.exists() or ROOT not in resolved.parents:
            broken.append(target)
        elif "#" in target and resolved.suffix == ".md":
            if target.split("#", 1)[1] not in _anchors(resolved):
                broken.append(target)
    assert not broken, f"{_name(document)} links to {broken}, which are not files or headings of the repository"


def _anchors(document: Path) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file."""
    anchors = set()
    for line in document.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"#{1,6} (.+)", line)
        if heading:
            text = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def test_reference_names_every_setting():
    reference = REFERENCE.read_text(encoding="utf-8")
    variables = ["AUTHSVC_" + name.upper() for name in config._ENV]
    assert "AUTHSVC_ISSUER" in variables  # the table is where this test thinks it is
    missing = [variable for variable in variables if f"`{variable}`" not in reference]
    assert not missing, f"docs/reference.md does not document {missing}"


def test_readme_settings_table_names_every_setting():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    variables = ["AUTHSVC_" + name.upper() for name in config._ENV] + ["AUTHSVC_WORKERS"]
    missing = [variable for variable in variables if f"| `{variable}` |" not in readme]
    assert not missing, f"the settings table of README.md does not list {missing}"


def test_reference_names_every_command():
    reference = REFERENCE.read_text(encoding="utf-8")
    commands = [" ".join(words) for words in _commands(cli)]
    assert "keys rotate" in commands and "serve" in commands  # the walk found the CLI
    missing = [command for command in commands if f"python -m authsvc {command}" not in reference]
    assert not missing, f"docs/reference.md does not document the command(s) {missing}"


def _section(reference: str, command: str) -> str:
    """The text of the reference's section on ``python -m authsvc <command>``, up to the next heading."""
    heading = f"### `python -m authsvc {command}`"
    start = reference.find(heading)
    if start < 0:
        return ""
    following = re.search(r"^#{1,3} ", reference[start + len(heading) :], re.MULTILINE)
    end = start + len(heading) + following.start() if following else len(reference)
    return reference[start:end]


@pytest.mark.parametrize("words", list(_commands(cli)), ids=" ".join)
def test_reference_names_every_option_of_a_command_in_its_section(words):
    command = cli
    for word in words:
        command = command.commands[word]
    section = _section(REFERENCE.read_text(encoding="utf-8"), " ".join(words))
    assert section, f"docs/reference.md has no section headed `python -m authsvc {' '.join(words)}`"
    options = [name for param in command.params for name in param.opts if name.startswith("--")]
    assert "--json" in options  # every command has it: the walk found the options
    missing = [option for option in options if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", section)]
    assert not missing, f"docs/reference.md does not document {missing} of `{' '.join(words)}` in its section"
