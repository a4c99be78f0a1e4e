"""The ``passerelle`` command line.

Design
------
- ``base``: the click group, :class:`~.base.Env` (the box a command works on),
  the named exit codes and :func:`~.base.main`, the one place where failures
  become one stderr line and an exit code.
- One module per command group (``content``, ``reports``, ``search``, ``sync``,
  ``users``), each a thin wrapper over a service or a library.
"""

from passerelle.server.cli import box  # noqa: F401 - its commands register on the group
from passerelle.server.cli.base import cli, main
from passerelle.server.cli.content import content, pack
from passerelle.server.cli.database import database
from passerelle.server.cli.reports import report
from passerelle.server.cli.search import index, search
from passerelle.server.cli.sync import sync
from passerelle.server.cli.users import users

for _group in (content, pack, users, search, index, sync, report, database):
    cli.add_command(_group)

__all__ = ["main"]
