"""Settings: one declarative table, four sources, every value knows its origin.

The table ``SETTINGS`` is the single place a setting is defined: it feeds the
resolver, ``passerelle config show``, the ``serve`` flags' help and
``docs/settings.md`` (a test keeps that page true to the table).

Sources, later ones winning: the defaults in the table, ``HOME/passerelle.toml``,
``PASSERELLE_<NAME>`` environment variables, command-line flags (or the
mapping given to ``create_app``). A name that is not in the table, or a value
of the wrong type, is a :class:`SettingsError` naming the setting and its
source, raised before the server starts.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "PASSERELLE_"
# Environment variables with the prefix that are not settings: they choose the
# data home or switch on tracebacks, before any setting can be read.
RESERVED_ENV = {"PASSERELLE_HOME", "PASSERELLE_DEBUG"}
LANGUAGES = ("fr", "nl", "en", "ar")


class SettingsError(Exception):
    """A setting is unknown, mistyped or out of range; the message names it and its source."""


@dataclass(frozen=True)
class Setting:
    name: str
    type: type
    default: Any
    help: str
    choices: tuple = ()
    minimum: int | None = None
    maximum: int | None = None
    words: tuple = ()  # words a whole-number setting also takes ("auto")

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.name.upper()

    def coerce(self, raw: Any, source: str) -> Any:
        """Turn ``raw`` (a TOML value, or a string from the environment) into a checked value."""
        where = f"setting {self.name!r} from {source}"
        value = self._convert(raw, where)
        items = value if isinstance(value, list) else [value]
        if self.choices:
            bad = [v for v in items if v not in self.choices]
            if bad:
                raise SettingsError(
                    f"{where}: {bad[0]!r} is not one of {', '.join(map(str, self.choices))}"
                )
        if isinstance(value, str) and value in self.words:
            return value
        if self.minimum is not None and value < self.minimum:
            raise SettingsError(f"{where}: {value} is below the minimum {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise SettingsError(f"{where}: {value} is above the maximum {self.maximum}")
        return value

    def _convert(self, raw: Any, where: str) -> Any:
        if self.type is bool:
            if isinstance(raw, bool):
                return raw
            if isinstance(raw, str) and raw.strip().lower() in _BOOL_WORDS:
                return _BOOL_WORDS[raw.strip().lower()]
            raise SettingsError(f"{where}: expected true or false, got {raw!r}")
        if self.type is int:
            if isinstance(raw, int) and not isinstance(raw, bool):
                return raw
            if isinstance(raw, str):
                if raw.strip().lower() in self.words:
                    return raw.strip().lower()
                try:
                    return int(raw.strip())
                except ValueError:
                    pass
            expected = " or ".join(("a whole number", *self.words))
            raise SettingsError(f"{where}: expected {expected}, got {raw!r}")
        if self.type is list:
            if isinstance(raw, str):
                raw = [part.strip() for part in raw.split(",") if part.strip()]
            if isinstance(raw, list) and all(isinstance(v, str) for v in raw):
                return list(raw)
            raise SettingsError(f"{where}: expected a list of words, got {raw!r}")
        if isinstance(raw, str):
            return raw
        raise SettingsError(f"{where}: expected text, got {raw!r}")


_BOOL_WORDS = {
    "1": True, "true": True, "yes": True, "on": True,
    "0": False, "false": False, "no": False, "off": False,
}

SETTINGS: tuple[Setting, ...] = (
    Setting("host", str, "0.0.0.0",
            "Address the server listens on; 0.0.0.0 serves every network of the box."),
    Setting("port", int, 8080, "TCP port the server listens on.", minimum=1, maximum=65535),
    Setting("threads", int, 8,
            "Worker threads serving requests; 8 keeps 30+ tablets fluid on a 4-core Pi.",
            minimum=1, maximum=128),
    Setting("search_workers", int, "auto",
            "Processes that run searches beside the server's threads, which otherwise share "
            "one core for every search and slow other pages during a burst of them; auto: "
            "one per core, at most 4; 0: search in the serving process (each worker costs "
            "~30 MB).",
            minimum=0, maximum=16, words=("auto",)),
    Setting("max_request_mb", int, 16,
            "Largest request body the server accepts, in MiB; larger ones get 413, refused "
            "from their headers before the body is read.",
            minimum=1, maximum=65536),
    Setting("max_upload_mb", int, 16384,
            "Largest upload from the browser, in MiB: a content pack sent by a signed-in "
            "coordinator, or a file for the organisation's own material sent by staff. It "
            "must also leave disk_reserve_mb free.",
            minimum=1, maximum=1048576),
    Setting("disk_warning_mb", int, 1024,
            "Below this much free space on the data home's disk, in MiB, health reports the "
            "disk as low and the staff home warns.",
            minimum=0, maximum=1048576),
    Setting("disk_reserve_mb", int, 256,
            "Free space kept for learners' progress, in MiB: below it the box stops optional "
            "writes (access log, routine log lines, PDF page cache, search indexing) and "
            "refuses request bodies it would have to write to disk, such as uploads.",
            minimum=0, maximum=1048576),
    Setting("usb_roots", list, ["/media", "/run/media", "/mnt"],
            "Folders where USB drives are mounted; the content page looks there for packs."),
    Setting("trusted_publisher_keys", list, [],
            "Publisher keys (ed25519:...) whose signed packs this box accepts.",),
    Setting("require_signed_packs", bool, False,
            "Refuse every pack that is not signed by one of trusted_publisher_keys."),
    Setting("session_lifetime_minutes", int, 480,
            "Signed-in sessions expire after this many minutes.", minimum=5, maximum=43200),
    Setting("idle_signout_minutes", int, 15,
            "Learners on shared tablets are signed out after this many idle minutes.",
            minimum=1, maximum=1440),
    Setting("default_language", str, "fr",
            "Interface language when neither the learner nor the browser chooses one.",
            choices=LANGUAGES),
    Setting("languages", list, list(LANGUAGES),
            "Interface languages offered on this box.", choices=LANGUAGES),
    Setting("access_log", bool, True,
            "Write one line per request to HOME/logs/access.log (rotated, 5 x 5 MiB)."),
    Setting("log_level", str, "info", "Detail of HOME/logs/passerelle.log.",
            choices=("debug", "info", "warning", "error")),
    Setting("db_busy_timeout_ms", int, 5000,
            "How long a database write waits for another writer before failing, in ms.",
            minimum=100, maximum=600000),
    Setting("network_requests", bool, False,
            "Offer the box's Wi-Fi name and passphrase on the setup page, written to "
            "HOME/requests/network.json for the Raspberry Pi image's root unit to apply "
            "(the service itself never changes the network)."),
    Setting("hub_mode", bool, False,
            "Run as the organisation's hub: accept many paired boxes, show them on the "
            "coordinator's sync page and report over all of them."),
    Setting("sync_interval_minutes", int, 15,
            "While serving, sync with every paired peer this often (0: only when asked); "
            "failures are retried sooner, backing off up to this interval.",
            minimum=0, maximum=1440),
    Setting("discovery", bool, True,
            "Announce this box on the LAN with mDNS so that boxes and hubs find each other."),
    Setting("sync_timeout_seconds", int, 30,
            "A sync gives up on a peer that sends nothing for this many seconds.",
            minimum=1, maximum=3600),
    Setting("captive_portal", str, "welcome",
            "How the box answers the internet checks of devices on its own Wi-Fi: welcome "
            "(a device that joins opens the welcome page by itself, then is told it is online "
            "once it opened a page), silent (always told it is online, no page opens), off "
            "(checks get 404, as on a school LAN).",
            choices=("welcome", "silent", "off")),
    Setting("sync_batch_ops", int, 5000,
            "Operations per batch sent to a peer over HTTP (each batch is applied whole).",
            minimum=10, maximum=50000),
    Setting("sync_log_days", int, 30,
            "Days of sync history (sync_log) kept: every export, import, sync and pairing.",
            minimum=1, maximum=3650),
    Setting("database_url", str, "",
            "Where the hub keeps its records: empty for SQLite in the data home (every box), or "
            "a postgresql://user@host/name URL for a hub on PostgreSQL (see docs/deployment.md). "
            "Packs and the search index stay in the data home either way."),
    Setting("reports_database_url", str, "",
            "A read replica of the hub's PostgreSQL database (postgresql://user@host/name) that "
            "the impact report and the large exports read, so a long report does not load the "
            "database that boxes sync with; empty: they read the records' database. Needs "
            "database_url on PostgreSQL (see docs/deployment.md)."),
    Setting("zim_index", bool, True,
            "Index the articles of ZIM files that carry no full-text index of their own into "
            "the box's search, in the background while serving (off: only those started from "
            "the content page or `passerelle index zim`)."),
    Setting("kolibri_video", str, "low",
            "Which of a Kolibri video's resolutions the box imports when a channel has both: "
            "low (about a third of the size, what a tablet's screen and a card hold best) or "
            "high. The content page's imports and `content import` use it (`--video` wins).",
            choices=("low", "high")),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
DEFAULT_HOME = "~/.passerelle"
TOML_NAME = "passerelle.toml"


@dataclass
class Settings:
    """Effective settings: ``values[name]`` and ``sources[name]`` (where each came from)."""

    home: Path
    home_source: str
    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def rows(self) -> list[tuple[str, Any, str]]:
        """(name, value, source) for the home and every setting, in table order."""
        rows = [("home", str(self.home), self.home_source)]
        rows += [(s.name, self.values[s.name], self.sources[s.name]) for s in SETTINGS]
        return rows


def resolve_home(flag: str | os.PathLike | None = None,
                 env: Mapping[str, str] | None = None) -> tuple[Path, str]:
    """The data home and where it was chosen: the flag, then PASSERELLE_HOME, then the default."""
    env = os.environ if env is None else env
    if flag:
        return Path(flag).expanduser().absolute(), "command line"
    if env.get("PASSERELLE_HOME"):
        return Path(env["PASSERELLE_HOME"]).expanduser().absolute(), "environment PASSERELLE_HOME"
    return Path(DEFAULT_HOME).expanduser().absolute(), "default"


def resolve(home: Path, home_source: str = "command line", *,
            env: Mapping[str, str] | None = None,
            flags: Mapping[str, Any] | None = None,
            flags_source: str = "command line") -> Settings:
    """Merge defaults, the home's TOML file, the environment and flags into :class:`Settings`."""
    env = os.environ if env is None else env
    settings = Settings(home=Path(home), home_source=home_source)
    for s in SETTINGS:
        settings.values[s.name] = s.default
        settings.sources[s.name] = "default"

    toml_path = Path(home) / TOML_NAME
    if toml_path.exists():
        source = str(toml_path)
        try:
            data = tomllib.loads(toml_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SettingsError(f"{source} is not valid TOML: {exc}") from None
        for name, raw in data.items():
            _apply(settings, _lookup(name, source), raw, source)

    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or var in RESERVED_ENV:
            continue
        source = f"environment {var}"
        name = var[len(ENV_PREFIX):].lower()
        _apply(settings, _lookup(name, source, env_var=var), env[var], source)

    for name, raw in (flags or {}).items():
        if raw is None:  # a flag that was not given
            continue
        _apply(settings, _lookup(name, flags_source), raw, flags_source)
    return settings


def _lookup(name: str, source: str, env_var: str | None = None) -> Setting:
    if name in BY_NAME:
        return BY_NAME[name]
    shown = env_var or name
    candidates = [s.env_var for s in SETTINGS] if env_var else list(BY_NAME)
    close = difflib.get_close_matches(shown, candidates, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise SettingsError(f"unknown setting {shown!r} in {source}{hint}")


def _apply(settings: Settings, setting: Setting, raw: Any, source: str) -> None:
    settings.values[setting.name] = setting.coerce(raw, source)
    settings.sources[setting.name] = source


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(value)
    return str(value)
