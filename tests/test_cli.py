"""The command line as a new user meets it: help that reads at 80 columns with every default shown, and
usage errors in one line (exit 2) from the installed entry point."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from vggts_cli.cli.app import app


def _commands(command, path=()):
    """(path, command) for every leaf command under `command` (a Click command tree)."""
    children = getattr(command, "commands", None)
    if not children:
        yield path, command
        return
    for name, child in children.items():
        yield from _commands(child, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(app)))


def _help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=80, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return result.output


def _entries(help_text: str) -> dict[str, str]:
    """Each option's help entry, by its first spelling: the text from its name to the next option."""
    entries: dict[str, str] = {}
    name = None
    for line in help_text.split("Options:", 1)[1].splitlines():
        if line.startswith("  -"):
            name = line.split()[0]
            entries[name] = line
        elif name:
            entries[name] += " " + line.strip()
    return entries


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_help_fits_80_columns_and_shows_every_default(path, command):
    text = _help(path)
    assert max(len(line) for line in text.splitlines()) <= 80
    entries = _entries(text)
    for param in command.params:
        if param.param_type_name != "option" or param.is_flag or param.name == "help":
            continue  # flags are off unless given; the rest must say what they are when not given
        entry = entries[param.opts[0]]
        assert "[default:" in entry or "[required]" in entry, entry


def test_train_help_names_its_extra():
    assert "pip install 'vggts[train]'" in " ".join(_help(("train",)).split())


def test_propagate_help_names_the_engine_it_defaults_to():
    from vggts_cli.engines.registry import default_engine

    assert f"[default: {default_engine()}," in " ".join(_help(("propagate",)).split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["propagate", "--src", "a.mp4"], "Missing option '--mask' (see 'vggts propagate --help')"),
        (["propagate", "--bogus"], "No such option: --bogus"),
        (["batch", "jobs.csv", "--out", "o", "--workers", "0"], "Invalid value for '--workers'"),
        (["nosuch"], "No such command 'nosuch' (see 'vggts --help')"),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(args, message):
    env = os.environ | {"COLUMNS": "80"}
    done = subprocess.run([sys.executable, "-m", "vggts_cli", *args], capture_output=True, text=True, env=env)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("vggts: error: ")
    assert message in done.stderr


def test_a_bare_command_prints_its_help():
    done = subprocess.run([sys.executable, "-m", "vggts_cli", "propagate"], capture_output=True, text=True)
    assert done.returncode == 2 and "Usage: vggts propagate [OPTIONS]" in done.stderr
    assert "--src VIDEO" in done.stderr
