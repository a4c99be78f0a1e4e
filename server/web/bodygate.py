"""Request bodies judged from their headers, before Waitress reads them.

Waitress reads a request's whole body before it calls the app, and spools any
body larger than ``inbuf_overflow`` (512 KiB) to a temporary file in HOME/tmp,
on the database's disk. A limit the app checks comes after that write: a 1 GiB
POST to the sign-in page wrote 1 GiB before its 413. So Waitress' request
parser asks here, as soon as a request's headers are parsed:

- **How large may this body be?** ``security.body_allowance``: ``max_request_mb``
  for every route; an upload route's own setting only for staff its access
  rule allows, judged from the session cookie (its session read, never written). A larger Content-Length
  is refused before a byte of the body is read (413). A chunked body, which
  announces no length, is counted as it arrives and cut off at the limit.
- **Can the disk take it?** A body that will be spooled must leave
  ``disk_reserve_mb`` free, counting what the other bodies being received may
  still write and the copies made of it (the form parser's spool, and for
  uploads the saved file): otherwise 507. Free space is looked at again every
  few MiB of a long body, since other writers share the disk.

A refused request reaches the app without its body, marked in the environ
(``security.BODY_REFUSED``), so it is answered in the app's own shape (the
JSON error for the API, a page otherwise); the connection is closed after
that answer, its unread body never read.

Waitress (3.x) has no hook between headers and body, and reading is the
event loop's job: so its parser, channel and task classes get small
subclasses, installed on the server made by ``create_server``. Waitress'
``Expect: 100-continue`` handling is kept: the ``100 Continue`` is sent only
after the gate has admitted the body.
"""

from __future__ import annotations

import threading

from flask import Flask
from passerelle.server import disk
from passerelle.server.web import security
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import BaseWSGIServer
from waitress.task import WSGITask

MiB = disk.MiB
# Copies a spooled body may take on the disk at once: Waitress' spool and the form
# parser's (Werkzeug spools file fields over 500 KB: the CSRF check parses every form);
# an upload is also saved as a file before the request ends.
BODY_COPIES = 2
UPLOAD_COPIES = 3
CHECK_EVERY = 8 * MiB  # free space is looked at again after this much more of a body


class BodyGate:
    """The decisions, and the account of what bodies being received may still write."""

    def __init__(self, app: Flask):
        self.app = app
        self.settings = app.config["SETTINGS"]
        self.spool = app.config["HOME"].tmp
        self._lock = threading.Lock()
        self._receiving: set[GatedParser] = set()

    def admit(self, parser: GatedParser) -> int | None:
        """None to read the body; else the HTTP status refusing it (413 or 507)."""
        limit, upload = security.body_allowance(self.app, parser.command, parser.path,
                                                parser.headers.get("COOKIE"))
        length = None if parser.chunked else parser.content_length
        if length is not None and length > limit:
            return 413
        parser.limit, parser.limit_status = limit, 413
        if length is not None and length <= parser.adj.inbuf_overflow:
            return None  # kept in memory, never spooled
        copies = UPLOAD_COPIES if upload else BODY_COPIES
        with self._lock:
            room = self._room()
            if length is None:  # chunked: as much as fits, up to the limit
                fits = room // copies
                if fits < limit:
                    parser.limit, parser.limit_status = fits, 507
                if parser.limit <= 0:
                    return 507
            elif length * copies > room:
                return 507
            parser.copies = copies
            self._receiving.add(parser)
        return None

    def still_room(self) -> bool:
        """Free space has not fallen below the reserve while a body was arriving."""
        try:
            return disk.free_bytes(self.spool) >= self.settings["disk_reserve_mb"] * MiB
        except OSError:
            return False

    def release(self, parser: GatedParser) -> None:
        with self._lock:
            self._receiving.discard(parser)

    def _room(self) -> int:
        """Bytes bodies may still use: free space, less the reserve and what is promised."""
        try:
            free = disk.free_bytes(self.spool)
        except OSError:
            return 0
        promised = sum(p.may_still_write() for p in self._receiving)
        return free - self.settings["disk_reserve_mb"] * MiB - promised


class GatedParser(HTTPRequestParser):
    """Waitress' request parser, asking the gate before it reads a body."""

    gate: BodyGate  # set on the subclass made for each server (see install)
    limit = 0  # bytes this request's body may take (raw bytes, for a chunked body)
    limit_status = 413  # answer when a chunked body passes the limit
    copies = 0  # 0: not counted in the gate's account (in memory, or refused)
    refused: int | None = None
    _checked_at = 0

    def received(self, data: bytes) -> int:
        if self.completed:
            return 0
        in_headers = self.body_rcv is None
        consumed = super().received(data)
        if self.error is not None:
            return consumed
        if in_headers:
            if self.body_rcv is not None and not self.completed:  # headers done, a body to come
                status = self.gate.admit(self)
                if status:
                    return self._refuse(status, data)
            return consumed
        if self.body_bytes_received > self.limit:  # a chunked body passed its limit
            return self._refuse(self.limit_status, data)
        if self.completed:
            return consumed
        if self.copies and self.body_bytes_received - self._checked_at >= CHECK_EVERY:
            self._checked_at = self.body_bytes_received
            if not self.gate.still_room():
                return self._refuse(507, data)
        return consumed

    def may_still_write(self) -> int:
        """Bytes of this body not yet on the disk: the rest of the spool, and its copies."""
        rest = max(0, self.limit - self.body_bytes_received)
        return rest + (self.copies - 1) * self.limit

    def _refuse(self, status: int, data: bytes) -> int:
        """End the request here, without its body; the app answers ``status``."""
        self.refused = status
        self.gate.release(self)
        self.copies = 0
        if self.body_rcv is not None:
            self.body_rcv.getbuf().close()  # a spooled part is freed now, not at collection
            self.body_rcv = None
        self.chunked = False
        self.content_length = 0
        self.headers["CONTENT_LENGTH"] = "0"
        # The rest of the body is never read: the connection closes after the answer.
        self.headers["CONNECTION"] = "close"
        # Else the channel would still send "100 Continue" and wait for the body.
        self.expect_continue = False
        self.completed = True
        return len(data)  # what is left of this read is body, not a next request

    def close(self) -> None:
        self.gate.release(self)
        super().close()


class GatedTask(WSGITask):
    """Waitress' WSGI task, telling the app when the gate refused the body."""

    def get_environment(self) -> dict:
        environ = super().get_environment()
        refused = getattr(self.request, "refused", None)
        if refused:
            environ[security.BODY_REFUSED] = refused
        return environ


class GatedChannel(HTTPChannel):
    task_class = GatedTask

    def handle_close(self) -> None:
        # A client leaving in the middle of a body: free its spool and its share of the
        # account now (Waitress leaves the unfinished request to the garbage collector).
        if self.request is not None:
            self.request.close()
        super().handle_close()


def install(server, app: Flask) -> BodyGate:
    """Make the server made by ``waitress.create_server`` read bodies through a gate."""
    gate = BodyGate(app)
    parser = type("GatedParser", (GatedParser,), {"gate": gate})
    channel = type("GatedChannel", (GatedChannel,), {"parser_class": parser})
    servers = getattr(server, "map", None)  # several listening sockets: a MultiSocketServer
    for one in (servers.values() if servers is not None else [server]):
        if isinstance(one, BaseWSGIServer):
            one.channel_class = channel
    return gate
