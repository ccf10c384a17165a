"""The README, the CLI and the catalogs agree with the code."""

from __future__ import annotations

import subprocess
from pathlib import Path

import click
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from shelter.cli import main

from .conftest import ROOT, SHELTER

README = (ROOT / "README.md").read_text()


def commands(group: click.Group, prefix: str = "shelter"):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands(command, f"{prefix} {name}")
        else:
            yield f"{prefix} {name}", command


def test_every_cli_command_is_in_the_readme_and_in_help():
    help_text = subprocess.run([SHELTER, "--help"], capture_output=True, text=True,
                               check=True).stdout
    for name, command in commands(main):
        assert f"`{name}" in README, f"{name} missing from README"
        assert name.split()[1] in help_text
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert param.opts[0] in README, f"{name} {param.opts[0]} missing from README"


def test_the_readme_quick_start_is_two_commands_that_exist():
    block = README.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    lines = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert lines == ["./scripts/demo", "./scripts/test"]
    for line in lines:
        assert (ROOT / line).stat().st_mode & 0o111


def _messages() -> set[str]:
    found: set[str] = set()
    method_map = [("shelter/**.py", "python"), ("sync/**.py", "python"),
                  ("templates/**.html", "jinja2")]
    keywords = {"_": None, "gettext": None, "N_": None, "ngettext": (1, 2)}
    for _, _, message, _, _ in extract_from_dir(str(ROOT), method_map, keywords=keywords):
        found.update([message] if isinstance(message, str) else message)
    return found


def _catalog(locale: str) -> dict[str, str]:
    path = ROOT / "shelter" / "translations" / locale / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as f:
        return {m.id: m.string for m in read_po(f) if m.id}


def test_every_message_is_translated_into_japanese():
    ja = _catalog("ja")
    missing = sorted(m for m in _messages() if not ja.get(m))
    assert not missing, missing


def test_registration_pages_are_translated_into_all_five_languages():
    """Every message an evacuee can meet: kiosk pages, validation and API errors."""
    public: set[str] = set()
    method_map = [("shelter/domain/households.py", "python"),
                  ("shelter/domain/schemas/households.py", "python"),
                  ("shelter/domain/schemas/fields.py", "python"),
                  ("shelter/web/node/api.py", "python"),
                  ("shelter/app.py", "python"), ("shelter/web/base.py", "python"),
                  ("shelter/web/hooks.py", "python"),
                  ("shelter/web/errors.py", "python"), ("shelter/core/errors.py", "python"),
                  ("shelter/web/inputs.py", "python"),
                  ("templates/kiosk/**.html", "jinja2"), ("templates/base.html", "jinja2"),
                  ("templates/prepare/**.html", "jinja2"), ("shelter/web/prepare.py", "python"),
                  ("shelter/domain/household_code.py", "python"),
                  ("templates/error.html", "jinja2")]
    for _, _, message, _, _ in extract_from_dir(str(ROOT), method_map,
                                                keywords={"_": None, "gettext": None,
                                                          "N_": None}):
        public.add(message)
    assert "Register at the shelter" in public and "This date does not exist." in public
    for locale in ("zh_Hans", "ko", "vi"):
        catalog = _catalog(locale)
        missing = sorted(m for m in public if not catalog.get(m))
        assert not missing, (locale, missing)


def test_no_outside_hosts_in_what_the_node_serves():
    for folder in ("templates", "static"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in (".html", ".css", ".js"):
                text = path.read_text()
                assert "http://" not in text and "https://" not in text, path


def test_card_format_doc_matches_the_version_in_code():
    from shelter.domain.cards import VERSION
    assert f"# Card format {VERSION}" in Path(ROOT / "docs" / "card-format.md").read_text()


def test_household_code_doc_matches_the_version_in_code():
    from shelter.domain.household_code import VERSION
    assert f"# Household code format {VERSION}" in (ROOT / "docs" / "household-code.md").read_text()
