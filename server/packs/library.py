"""The content library of a data home: built here, and only here, for the web and the CLI."""

from __future__ import annotations

from collections.abc import Iterable

from passerelle import content as lib
from passerelle.server import disk
from passerelle.server.db import connect, target
from passerelle.server.home import Home
from passerelle.server.settings import Settings


def open_library(home: Home, settings: Settings, *, extra_keys: Iterable[str] = (),
                 require_signature: bool = False) -> lib.Library:
    """The library over ``home``'s database and storage, with the box's trust settings.

    ``extra_keys`` and ``require_signature`` tighten trust for one import (the CLI's
    ``--trust``/``--require-signature``); they never loosen the settings. Listeners
    (the search index) are attached by the callers that need them.
    """
    timeout = settings["db_busy_timeout_ms"]
    # On a hub on PostgreSQL the catalogue is there too, beside the records reports join it to.
    where = target(home, settings)
    return lib.Library(lambda: connect(where, timeout), home.storage, home.tmp,
                       trusted_keys=[*settings["trusted_publisher_keys"], *extra_keys],
                       require_signature=require_signature or settings["require_signed_packs"],
                       # An import leaves the disk's reserve to learners' progress.
                       space_margin=disk.import_margin(settings))
