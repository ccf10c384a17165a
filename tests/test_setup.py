"""Set-up: quiet when all is well, loud when a step fails; and the package carries its data.

The fakes stand in for Python and pip so the failing paths run in a second, with no network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from .conftest import ROOT

SETUP_TIMEOUT = 600  # only reached when pyproject.toml changed since the last set-up


def sandbox(tmp_path: Path, fake_python: str | None = None) -> Path:
    """A checkout with only what scripts/setup reads, and a fake .venv/bin/python."""
    (tmp_path / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "setup", tmp_path / "scripts" / "setup")
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    if fake_python is not None:
        write_script(tmp_path / ".venv" / "bin" / "python", fake_python)
    return tmp_path


def write_script(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)


def run_setup(checkout: Path, path_first: Path | None = None,
              **env_vars: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CALLS": str(checkout / "calls"), **env_vars}
    if path_first is not None:
        env["PATH"] = f"{path_first}{os.pathsep}{env['PATH']}"
    return subprocess.run([str(checkout / "scripts" / "setup")], env=env, capture_output=True,
                          text=True, timeout=SETUP_TIMEOUT)


# pip as it speaks on this kind of machine: notices on both streams, whatever the outcome.
CHATTY_PIP = """echo "$*" >> "$CALLS"
echo "WARNING: Location 'file:///opt/nowhere/simple/flask/' is ignored"
echo "some backend notice" >&2
case " $* " in
  *" -e "*) [ -z "${FAIL_INSTALL:-}" ] || { echo "ERROR: no such package" >&2; exit 1; };;
esac
"""


def test_setup_says_nothing_when_it_works_and_does_nothing_the_second_time(tmp_path):
    checkout = sandbox(tmp_path, CHATTY_PIP)
    first = run_setup(checkout)
    assert (first.returncode, first.stdout, first.stderr) == (0, "", "")
    assert len((checkout / "calls").read_text().splitlines()) == 2  # pip upgraded, project
    assert len(list((checkout / ".venv").glob(".installed-*"))) == 1
    again = run_setup(checkout)
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
    assert len((checkout / "calls").read_text().splitlines()) == 2  # nothing ran


def test_a_failing_install_says_what_failed_shows_its_output_and_is_retried(tmp_path):
    checkout = sandbox(tmp_path, CHATTY_PIP)
    failed = run_setup(checkout, FAIL_INSTALL="1")
    assert failed.returncode == 1 and failed.stdout == ""
    assert "installing Shelter and its test tools into .venv/" in failed.stderr
    assert "ERROR: no such package" in failed.stderr and "is ignored" in failed.stderr
    assert "run scripts/setup again" in failed.stderr
    assert not list((checkout / ".venv").glob(".installed-*"))  # the next run tries again
    assert run_setup(checkout).returncode == 0


def test_too_old_a_python_is_named(tmp_path):
    checkout = sandbox(tmp_path)
    write_script(tmp_path / "bin" / "python3", """case "$1" in
  -c) exit 1;;
  --version) echo "Python 3.9.2";;
  *) echo "must not be reached" >&2; exit 3;;
esac
""")
    failed = run_setup(checkout, path_first=tmp_path / "bin")
    assert failed.returncode == 1
    assert "Python 3.11 or newer" in failed.stderr and "Python 3.9.2" in failed.stderr
    assert not (checkout / ".venv").exists()


def test_a_venv_that_cannot_be_made_is_not_left_half_made(tmp_path):
    checkout = sandbox(tmp_path)
    write_script(tmp_path / "bin" / "python3", """case "$1" in
  -c) exit 0;;
  -m) mkdir -p .venv/bin && printf '#!/bin/sh\\n' > .venv/bin/python \\
        && chmod +x .venv/bin/python
      echo "The virtual environment was not created: ensurepip is not available."; exit 1;;
esac
""")
    failed = run_setup(checkout, path_first=tmp_path / "bin")
    assert failed.returncode == 1
    assert "making .venv/" in failed.stderr and "ensurepip is not available" in failed.stderr
    assert "python3-venv" in failed.stderr
    assert not (checkout / ".venv").exists()


def test_the_real_setup_run_again_prints_nothing():
    """The README's commands run scripts/setup before everything: when nothing changed it
    must stay silent (and it is: it reinstalls only when pyproject.toml changed)."""
    for _ in range(2):
        result = run_setup(ROOT)
        assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_the_wheel_carries_every_module_and_the_data_the_code_reads(tmp_path):
    """Built from a copy, so the build's own folders (build/, *.egg-info) stay out of the
    checkout. Every file under shelter/ and sync/ must ship: a data file the code reads
    but [tool.setuptools.package-data] does not list would not."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for package in ("shelter", "sync"):
        shutil.copytree(ROOT / package, source / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.mo"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                            "--disable-pip-version-check", "-w", str(tmp_path / "wheel"),
                            str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp_path / "wheel").glob("shelter-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())

    expected = {path.relative_to(source).as_posix()
                for package in ("shelter", "sync") for path in (source / package).rglob("*")
                if path.is_file()}
    assert not expected - shipped, sorted(expected - shipped)
    assert "shelter/domain/common_passwords.txt" in shipped
    catalogs = {name for name in shipped if name.endswith("/LC_MESSAGES/messages.po")}
    assert {f"shelter/translations/{lang}/LC_MESSAGES/messages.po"
            for lang in ("ja", "en", "zh_Hans", "ko", "vi")} <= catalogs
    assert not {name for name in shipped if name.split("/")[0] in ("tests", "scripts")}
