"""Settings: one table, four sources in order, clear errors naming setting and source."""

import re
from pathlib import Path

import pytest
from passerelle.server.errors import ExitStatus
from passerelle.server.settings import SETTINGS, SettingsError, resolve

REPO = Path(__file__).resolve().parents[2]


def test_defaults_when_nothing_is_set(tmp_path):
    settings = resolve(tmp_path, env={})
    for s in SETTINGS:
        assert settings[s.name] == s.default
        assert settings.sources[s.name] == "default"


def test_sources_in_order_defaults_toml_environment_flags(tmp_path):
    (tmp_path / "passerelle.toml").write_text('port = 9000\nthreads = 3\nhost = "127.0.0.1"\n')
    env = {"PASSERELLE_THREADS": "5", "PASSERELLE_HOST": "10.0.0.1"}
    settings = resolve(tmp_path, env=env, flags={"host": "192.0.2.1", "port": None})
    assert (settings["port"], settings.sources["port"]) == (9000, str(tmp_path / "passerelle.toml"))
    assert (settings["threads"], settings.sources["threads"]) == (5, "environment PASSERELLE_THREADS")
    assert (settings["host"], settings.sources["host"]) == ("192.0.2.1", "command line")
    assert settings.sources["log_level"] == "default"


def test_environment_values_are_parsed_by_type(tmp_path):
    env = {"PASSERELLE_ACCESS_LOG": "off", "PASSERELLE_LANGUAGES": "fr, ar"}
    settings = resolve(tmp_path, env=env)
    assert settings["access_log"] is False
    assert settings["languages"] == ["fr", "ar"]


@pytest.mark.parametrize("toml, env, message", [
    ("prot = 80\n", {}, r"unknown setting 'prot' in .*passerelle.toml \(did you mean 'port'\?\)"),
    ("", {"PASSERELLE_PROT": "80"},
     r"unknown setting 'PASSERELLE_PROT' in environment PASSERELLE_PROT \(did you mean 'PASSERELLE_PORT'\?\)"),
    ('port = "eighty"\n', {}, r"setting 'port' from .*passerelle.toml: expected a whole number, got 'eighty'"),
    ("", {"PASSERELLE_PORT": "70000"}, r"setting 'port' from environment PASSERELLE_PORT: 70000 is above"),
    ("", {"PASSERELLE_ACCESS_LOG": "maybe"}, r"setting 'access_log' .*: expected true or false"),
    ("", {"PASSERELLE_LANGUAGES": "fr,xx"}, r"setting 'languages' .*'xx' is not one of fr, nl, en, ar"),
    ("port = [\n", {}, r"passerelle.toml is not valid TOML"),
])
def test_bad_settings_name_the_setting_and_the_source(tmp_path, toml, env, message):
    if toml:
        (tmp_path / "passerelle.toml").write_text(toml)
    with pytest.raises(SettingsError, match=message):
        resolve(tmp_path, env=env)


def test_config_show_prints_every_value_and_its_source(runner, home, monkeypatch):
    home.mkdir()
    (home / "passerelle.toml").write_text("threads = 2\n")
    monkeypatch.setenv("PASSERELLE_PORT", "9001")
    result = runner("config", "show")
    assert result.exit_code == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert set(lines) == {"home"} | {s.name for s in SETTINGS}
    assert re.search(r"port\s+9001\s+environment PASSERELLE_PORT", lines["port"])
    assert re.search(r"threads\s+2\s+.*passerelle.toml", lines["threads"])
    assert re.search(r"host\s+0.0.0.0\s+default", lines["host"])
    assert re.search(rf"home\s+{re.escape(str(home))}\s+command line", lines["home"])


def test_home_from_environment(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("PASSERELLE_HOME", str(tmp_path / "elsewhere"))
    result = runner("config", "show", "--json", home=False)
    assert '"source": "environment PASSERELLE_HOME"' in result.stdout


def test_a_bad_setting_stops_the_cli_with_one_line_and_the_config_exit_code(runner, home, monkeypatch):
    monkeypatch.setenv("PASSERELLE_THREADZ", "4")
    result = runner("serve")
    assert result.exit_code == ExitStatus.CONFIG
    assert result.stderr.strip().count("\n") == 0
    assert "unknown setting 'PASSERELLE_THREADZ'" in result.stderr
    assert "Traceback" not in result.stderr


def test_docs_list_every_setting():
    """docs/settings.md is generated from the table; regenerate with `make docs`."""
    from passerelle.server.docs import settings_markdown

    assert (REPO / "docs" / "settings.md").read_text(encoding="utf-8") == settings_markdown()
