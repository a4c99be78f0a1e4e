"""Passerelle's server: the edge that composes the libraries into a box.

Design
------
- ``create_app(config=None)`` (in :mod:`.app`) is the only way to build the
  Flask app. Importing any module here does nothing but define things: no
  database is opened, no file is written, no setting is read.
- Settings come from one declarative table (:mod:`.settings`), resolved in
  the order defaults < ``HOME/passerelle.toml`` < ``PASSERELLE_*``
  environment variables < command-line flags, each value remembering its
  source so ``passerelle config show`` can say where it came from.
- All state lives under one data home (:mod:`.home`). The database is SQLite
  in WAL mode through sqlite-utils; a request borrows a connection from a small
  pool (:mod:`.db`); the schema changes only by migrations (:mod:`.migrations`).
  Everything that syncs is an operation in the log (:mod:`.records`).
- One folder per concern: ``web`` (every request), ``people``, ``learning``,
  ``reports``, ``packs`` (installed content), ``search``, ``sync``, ``api``
  (the tablets' JSON API) and ``cli`` (one module per command group).
- The libraries ``passerelle.content`` and ``passerelle.search_index`` never
  import Flask or click; their exceptions are turned into the one JSON error
  shape (:mod:`.errors`) for the API and into one stderr line and a named exit
  code (:mod:`.cli`) for the command line, by the same translation.
"""

__version__ = "0.1.0"
