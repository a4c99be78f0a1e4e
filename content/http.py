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
import urllib.request
from typing import BinaryIO

from .errors import InvalidPack, PackNotFound, Problem, SourceUnavailable
from .manifest import DEFAULT_LIMITS, Limits
from .packio import PackSource

_NETWORK_ERRORS = (OSError, http.client.HTTPException, socket.timeout)


class HttpSource(PackSource):
    def __init__(self, base_url: str, *, timeout: float = 30.0, retries: int = 5,
                 retry_delay: float = 0.5, limits: Limits = DEFAULT_LIMITS):
        self.base = base_url.rstrip("/")
        self.description = self.base
        self.timeout, self.retries, self.retry_delay = timeout, retries, retry_delay
        self.limits = limits
        self.problems: list[Problem] = []

    def _open(self, path: str, offset: int = 0):
        headers = {"User-Agent": "passerelle-content"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        request = urllib.request.Request(f"{self.base}/{path}", headers=headers)
        return urllib.request.urlopen(request, timeout=self.timeout)

    def _get_small(self, path: str, limit: int, required: bool) -> bytes | None:
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                with self._open(path) as response:
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
        return self._get_small("manifest.json", self.limits.max_manifest_bytes, required=True)

    def signature_bytes(self) -> bytes | None:
        return self._get_small("signature.json", 64 * 1024, required=False)

    def blob_size(self, sha256: str):
        return ...  # unknown until downloaded; checked while copying

    def open_blob(self, sha256: str, size: int) -> BinaryIO:
        return _ResumingStream(self, sha256, size)


class _ResumingStream(io.RawIOBase):
    """A blob download that reconnects with ``Range`` after a dropped connection."""

    def __init__(self, source: HttpSource, sha256: str, size: int):
        self.source, self.sha256, self.size = source, sha256, size
        self.offset = 0
        self.response = None
        self.failures = 0
        self.resumed = 0

    def readable(self) -> bool:
        return True

    def _connect(self) -> None:
        path = f"files/{self.sha256}"
        try:
            response = self.source._open(path, self.offset)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise InvalidPack([Problem(path, f"missing on {self.source.base}")]) from None
            if exc.code == 416:  # asked past the end: the blob is longer than declared
                self.response = io.BytesIO(b"")
                return
            raise
        if self.offset and response.status != 206:
            # The server ignored Range: skip what we already have.
            left = self.offset
            while left:
                chunk = response.read(min(left, 1024 * 1024))
                if not chunk:
                    raise http.client.IncompleteRead(b"")
                left -= len(chunk)
        self.response = response

    def readinto(self, b) -> int:
        # One byte beyond the declared size is enough to notice an over-long blob.
        if self.offset > self.size:
            return 0
        while True:
            try:
                fresh = self.response is None
                if fresh:
                    self._connect()
                n = self.response.readinto(memoryview(b)[: min(len(b), self.size + 1 - self.offset)])
                if n == 0 and self.offset < self.size and not fresh:
                    # http.client reports a connection closed before Content-Length as a
                    # quiet end of file: reconnect once; a fresh response that is empty
                    # too means the blob really is shorter (the copier reports that).
                    raise http.client.IncompleteRead(b"", self.size - self.offset)
                self.offset += n
                return n
            except (InvalidPack, PackNotFound):
                raise
            except _NETWORK_ERRORS as exc:
                self._drop()
                self.failures += 1
                if self.failures > self.source.retries:
                    raise SourceUnavailable(
                        f"{self.source.base}/files/{self.sha256}: connection lost after "
                        f"{self.offset} of {self.size} bytes ({exc}); run the import again to resume"
                    ) from None
                self.resumed += 1
                time.sleep(self.source.retry_delay * (self.failures - 1))

    def _drop(self) -> None:
        if self.response is not None:
            # A broken socket may fail to close; it is gone anyway.
            with contextlib.suppress(Exception):
                self.response.close()
        self.response = None

    def close(self) -> None:
        self._drop()
        super().close()
