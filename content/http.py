"""Pulling a pack from another box or a hub over HTTP (stdlib ``urllib`` only).

Layout is the folder layout under a base URL: ``BASE/manifest.json``,
``BASE/signature.json`` (optional) and ``BASE/files/<sha256>``. The library reads
the manifest first and then asks only for the blobs this box lacks. Wi-Fi
between boxes drops: a blob whose connection breaks is resumed where it stopped
with a ``Range`` request (or by skipping what was already received, if the
server ignores ranges), a few times, before giving up with
:class:`SourceUnavailable`; everything already verified is kept for the retry.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import BinaryIO

from .errors import InvalidPack, PackNotFound, Problem, SourceUnavailable
from .manifest import DEFAULT_LIMITS, Limits
from .packio import PackSource

_NETWORK_ERRORS = (OSError, http.client.HTTPException, socket.timeout)


class HttpSource(PackSource):
    """``keep_alive``: requests go over one persistent HTTP/1.1 connection, opened again
    when it breaks. A channel is thousands of small files; a new TCP connection (and
    a new thread on the server) for each cost more than the file itself on a LAN.
    Redirects are followed by ``urllib``, as before; proxies are not used (a LAN)."""

    def __init__(self, base_url: str, *, timeout: float = 30.0, retries: int = 5,
                 retry_delay: float = 0.5, limits: Limits = DEFAULT_LIMITS, keep_alive: bool = False):
        self.base = base_url.rstrip("/")
        self.description = self.base
        self.timeout, self.retries, self.retry_delay = timeout, retries, retry_delay
        self.limits = limits
        self.problems: list[Problem] = []
        self.keep_alive = keep_alive
        self._conn: http.client.HTTPConnection | None = None

    def request(self, path: str, offset: int = 0):
        """GET ``BASE/path`` (from ``offset`` on, with ``Range``); a response like ``urllib``'s
        (``HTTPError`` for 4xx and 5xx)."""
        headers = {"User-Agent": "passerelle-content"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        url = f"{self.base}/{path}"
        if self.keep_alive:
            response = self._persistent(url, headers)
            if response is not None:
                return response
        request = urllib.request.Request(url, headers=headers)
        return urllib.request.urlopen(request, timeout=self.timeout)

    def _persistent(self, url: str, headers: dict):
        """The response over the kept connection; None for a redirect (left to ``urllib``)."""
        parts = urllib.parse.urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        for attempt in (1, 2):
            if self._conn is None:
                kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
                self._conn = kind(parts.netloc, timeout=self.timeout)
            try:
                self._conn.request("GET", target, headers=headers)
                response = self._conn.getresponse()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.CannotSendRequest, http.client.ResponseNotReady):
                # The server closed the idle connection between two files: once more, on a new one.
                self.close_connection()
                if attempt == 2:
                    raise
            except _NETWORK_ERRORS:
                self.close_connection()
                raise
        if response.status in (301, 302, 303, 307, 308):
            response.read(64 * 1024)
            if not response.isclosed():
                self.close_connection()
            return None
        if response.status >= 400:
            body = response.read(64 * 1024)
            if not response.isclosed():
                self.close_connection()
            raise urllib.error.HTTPError(url, response.status, response.reason, response.headers, io.BytesIO(body))
        return _KeptResponse(response, self)

    def close_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def close(self) -> None:
        self.close_connection()

    def get_small(self, path: str, limit: int, required: bool) -> bytes | None:
        """A small document, retried a few times; None if absent and not ``required``."""
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                with self.request(path) as response:
                    data = response.read(limit + 1)
                if len(data) > limit:
                    raise InvalidPack([Problem(path, f"larger than {limit} bytes")])
                return data
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    if required:
                        raise PackNotFound(f"{self.base}/{path}: not found (is this a pack URL?)") from None
                    return None
                last = exc
            except _NETWORK_ERRORS as exc:
                last = exc
            time.sleep(self.retry_delay * attempt)
        raise SourceUnavailable(f"{self.base}/{path}: {last}")

    def manifest_bytes(self) -> bytes:
        return self.get_small("manifest.json", self.limits.max_manifest_bytes, required=True)

    def signature_bytes(self) -> bytes | None:
        return self.get_small("signature.json", 64 * 1024, required=False)

    def blob_size(self, sha256: str):
        return ...  # unknown until downloaded; checked while copying

    def open_blob(self, sha256: str, size: int) -> BinaryIO:
        return ResumingStream(self, f"files/{sha256}", size)


class _KeptResponse:
    """A response on the kept connection. Closed before its end, it takes the connection
    with it: the unread rest of the body would otherwise be read as the next response."""

    def __init__(self, response: http.client.HTTPResponse, source: HttpSource):
        self._response = response
        self._source = source
        self.status, self.headers, self.reason = response.status, response.headers, response.reason

    def read(self, n: int = -1) -> bytes:
        return self._response.read(n if n is not None and n >= 0 else None)

    def readinto(self, b) -> int:
        return self._response.readinto(b)

    def close(self) -> None:
        if not self._response.isclosed():
            self._source.close_connection()
        self._response.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ResumingStream(io.RawIOBase):
    """A download that reconnects with ``Range`` after a dropped connection.

    ``size`` is what the caller expects (reading stops one byte past it, enough to
    notice an over-long file); None when unknown, then the server's
    ``Content-Length`` / ``Content-Range`` say where the file ends. ``offset``
    starts the download part-way (the rest of a partly fetched file).
    """

    def __init__(self, source: HttpSource, path: str, size: int | None, offset: int = 0):
        self.source, self.path, self.size = source, path, size
        self.offset = offset
        self.end = size           # where the file ends, once known
        self.response = None
        self.failures = 0
        self.resumed = 0

    def readable(self) -> bool:
        return True

    def _connect(self) -> None:
        path = self.path
        try:
            response = self.source.request(path, self.offset)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise InvalidPack([Problem(path, f"missing on {self.source.base}")]) from None
            if exc.code == 416:  # asked past the end: nothing more to read
                self.response = io.BytesIO(b"")
                if self.end is None:
                    self.end = self.offset
                return
            raise
        if self.end is None:
            self.end = _declared_end(response, self.offset)
        if self.offset and response.status != 206:
            # The server ignored Range: skip what we already have.
            left = self.offset
            while left:
                chunk = response.read(min(left, 1024 * 1024))
                if not chunk:
                    raise http.client.IncompleteRead(b"")
                left -= len(chunk)
        self.response = response

    def open(self) -> ResumingStream:
        """Connect now (a missing file is known before anything is written), retrying as reads do."""
        while self.response is None:
            try:
                self._connect()
            except (InvalidPack, PackNotFound):
                raise
            except _NETWORK_ERRORS as exc:
                self._failed(exc)
        return self

    def _failed(self, exc: Exception) -> None:
        self._drop()
        self.failures += 1
        if self.failures > self.source.retries:
            raise SourceUnavailable(
                f"{self.source.base}/{self.path}: connection lost after "
                f"{self.offset} of {self.end if self.end is not None else '?'} bytes ({exc}); "
                "run the import again to resume"
            ) from None
        self.resumed += 1
        time.sleep(self.source.retry_delay * (self.failures - 1))

    def readinto(self, b) -> int:
        # One byte beyond the declared size is enough to notice an over-long blob.
        if self.size is not None and self.offset > self.size:
            return 0
        while True:
            try:
                fresh = self.response is None
                if fresh:
                    self._connect()
                room = len(b) if self.size is None else min(len(b), self.size + 1 - self.offset)
                n = self.response.readinto(memoryview(b)[:room])
                if n == 0 and self.end is not None and self.offset < self.end and not fresh:
                    # http.client reports a connection closed before Content-Length as a
                    # quiet end of file: reconnect once; a fresh response that is empty
                    # too means the blob really is shorter (the copier reports that).
                    raise http.client.IncompleteRead(b"", self.end - self.offset)
                self.offset += n
                return n
            except (InvalidPack, PackNotFound):
                raise
            except _NETWORK_ERRORS as exc:
                self._failed(exc)

    def _drop(self) -> None:
        if self.response is not None:
            # A broken socket may fail to close; it is gone anyway.
            with contextlib.suppress(Exception):
                self.response.close()
        self.response = None

    def close(self) -> None:
        self._drop()
        super().close()


def _declared_end(response, offset: int) -> int | None:
    """Where the file ends, from ``Content-Range`` (a 206) or ``Content-Length`` (a 200)."""
    if response.status == 206:
        total = (response.headers.get("Content-Range") or "").rpartition("/")[2]
        if total.isdigit():
            return int(total)
    length = response.headers.get("Content-Length")
    if length and length.isdigit():
        return int(length) + (offset if response.status == 206 else 0)
    return None
