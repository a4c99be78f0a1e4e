"""The command line: layout, examples in every help, named exit codes, one-line failures."""

import click
from passerelle.server import __version__
from passerelle.server.cli.base import cli
from passerelle.server.errors import ExitStatus


def all_commands(group=cli, prefix=()):
    for name, command in group.commands.items():
        yield prefix + (name,), command
        if isinstance(command, click.Group):
            yield from all_commands(command, prefix + (name,))


def test_version(runner):
    result = runner("--version", home=False)
    assert result.exit_code == 0
    assert result.stdout.strip() == f"passerelle, version {__version__}"


def test_help_shows_the_command_layout_and_exit_codes(runner):
    result = runner("--help", home=False)
    assert result.exit_code == 0
    out = result.stdout
    sections = out[out.index("Run the box:"):]
    assert sections.index("  serve ") < sections.index("Keep data safe:") < sections.index("  backup ")
    assert "Exit codes: 0 success" in out and "4 database" in out


def test_every_command_help_ends_with_an_example(runner):
    for path, _command in all_commands():
        result = runner(*path, "--help", home=False)
        assert result.exit_code == 0, path
        assert "Example: passerelle" in result.stdout or "Example: PASSERELLE_" in result.stdout, path


def test_a_failure_is_one_line_without_traceback_and_a_named_exit_code(runner, tmp_path):
    result = runner("restore", str(tmp_path / "missing.db"), "--yes")
    assert result.exit_code == ExitStatus.NOT_FOUND
    assert result.stderr == f"passerelle: error: {tmp_path / 'missing.db'} is not a file\n"


def test_debug_shows_the_traceback(runner, tmp_path):
    result = runner("--debug", "restore", str(tmp_path / "missing.db"), "--yes")
    assert result.exit_code == ExitStatus.NOT_FOUND
    assert "Traceback (most recent call last)" in result.stderr


def test_usage_errors_exit_with_the_usage_code(runner):
    result = runner("serve", "--port", "not-a-number")
    assert result.exit_code == ExitStatus.USAGE
    assert "Invalid value for '--port'" in result.stderr
