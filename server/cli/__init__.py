"""The ``passerelle`` command line.

Design
------
- ``base``: the click group, :class:`~.base.Env` (the box a command works on),
  the named exit codes and :func:`~.base.main`, the one place where failures
  become one stderr line and an exit code.
- One module per command group (``content``, ``reports``, ``search``, ``sync``,
  ``users``), each a thin wrapper over a service or a library.
"""

from passerelle.server.cli.base import main

__all__ = ["main"]
