"""PDF pages rendered on the box: one image per page and width, made once, kept on disk.

Android Chrome has no PDF viewer, and shipping pdf.js to the tablets cost
~410 KB (gzip) per first visit and a lot of a cheap tablet's CPU. Instead the
box renders a page with PDFium (pypdfium2, what Chrome itself uses) to a WebP
image the first time someone asks for it, and the kiosk's viewer is a page
showing one image (``kiosk/templates/resource.html``).

- ``/pdf/<sha256>/<page>/<width>.webp``: page ``page`` (from 1) of a PDF an
  installed pack references, ``width`` pixels wide, one of :data:`WIDTHS`
  (the page's ``srcset`` lets the tablet choose). The URL names the file's
  content, so it is cached for a year, immutable.
- Cache: ``HOME/cache/pdf/<sha256>/<page>-<width>.webp``, written to a temp
  name and renamed (a power cut leaves no half image), bounded in total size
  (``PDF_CACHE_MAX_BYTES``): the files used longest ago are removed first.
- Thirty tablets opening the same page at once wait on one lock per image:
  the page is rendered once, and the others are served the file.
- PDFium is not thread-safe, and a hostile PDF can crash it or keep it busy.
  So it runs in one worker process (``python -m passerelle.server.packs.pdfpages``),
  started on first need, called by one request at a time (a module lock), its
  memory capped; if it crashes it is started again, if a page takes longer
  than ``PDF_RENDER_TIMEOUT`` seconds it is killed. A page that failed is
  remembered and refused at once until the server restarts. Pages are at most
  :data:`MAX_ASPECT` times taller than wide, and only the first
  :data:`MAX_PAGES` pages are shown.
"""

from __future__ import annotations

import atexit
import io
import json
import os
import select
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

WIDTHS = (800, 1200, 1600)
MAX_PAGES = 2000
MAX_ASPECT = 4  # a 1600 px wide page is at most 6400 px tall: 41 MB of pixels, not gigabytes
WEBP_QUALITY = 80  # text stays sharp
# libwebp effort: 2 makes files ~2% larger than 4 (the default) in half the time, and encoding
# is most of a page's rendering time (a 1600 px page: PDFium 12 ms, WebP 200 ms at effort 2).
WEBP_METHOD = 2
MEMORY_LIMIT = 1536 * 2**20  # the worker's address space: a bomb fails there, not in the server
DEFAULT_CACHE_MAX_BYTES = 512 * 2**20
DEFAULT_TIMEOUT = 30.0
STALE_TMP_SECONDS = 3600


class DocumentError(Exception):
    """The PDF (or this page of it) cannot be shown: damaged, hostile or too slow to draw."""


class PageNotFound(Exception):
    """No such page or width."""


# --- The worker process -------------------------------------------------------------------

# Serialises every call into PDFium (not thread-safe), and owns the one worker process.
_PDFIUM = threading.Lock()


class _Worker:
    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None

    def _start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "passerelle.server.packs.pdfpages"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, encoding="utf-8",
            close_fds=True)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def call(self, request: dict, timeout: float) -> dict:
        """One request, one answer; the caller holds ``_PDFIUM``.

        A worker that stopped is started again and asked once more: it may have died
        while idle (the OOM killer, a kill) through no fault of this document. Stopping
        twice on the same request is the document's doing.
        """
        for attempt in (1, 2):
            try:
                return self._once(request, timeout)
            except _Stopped as exc:
                if attempt == 2:
                    raise DocumentError(f"the renderer stopped ({exc})") from None
        raise AssertionError("unreachable")

    def _once(self, request: dict, timeout: float) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
        except OSError as exc:
            self.stop()
            raise _Stopped(str(exc)) from None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.stop()
            raise DocumentError(f"rendering took longer than {timeout:g} s")
        line = self.proc.stdout.readline()
        if not line:  # crashed, or ran out of memory
            code = self.proc.wait()
            self.proc = None
            raise _Stopped(f"exit status {code}")
        return json.loads(line)


class _Stopped(Exception):
    pass


_worker = _Worker()
atexit.register(_worker.stop)


def _serve() -> None:
    """The worker's loop: JSON requests on stdin, one JSON answer per line on stdout."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    except (ImportError, ValueError, OSError):
        pass
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the answers
    import pypdfium2 as pdfium

    for line in sys.stdin:
        try:
            answer = _handle(pdfium, json.loads(line))
        except MemoryError:
            answer = {"ok": False, "error": "out of memory"}
        except Exception as exc:  # noqa: BLE001 - any failure is this document's, answered
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                      "disk": isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError),
                      "errno": getattr(exc, "errno", None)}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


def _handle(pdfium, request: dict) -> dict:
    doc = pdfium.PdfDocument(request["path"])
    try:
        count = len(doc)
        if request["op"] == "count":
            return {"ok": True, "pages": count}
        number, width = int(request["page"]), int(request["width"])
        # Filled-in form fields are part of what a worksheet shows. pypdfium2's PDFium is
        # built without V8 and XFA (pypdfium2.version.PDFIUM_INFO.flags is empty): a form
        # cannot run code.
        doc.init_forms()
        if not 1 <= number <= min(count, MAX_PAGES):
            return {"ok": False, "missing": True, "error": "no such page"}
        page = doc[number - 1]
        try:
            points_w, points_h = page.get_size()
            if not (points_w > 0 and points_h > 0):
                return {"ok": False, "error": "the page has no size"}
            scale = min(width / points_w, width * MAX_ASPECT / points_h)
            # rev_byteorder: PDFium writes RGB, so Pillow takes the pixels without a copy.
            bitmap = page.render(scale=scale, may_draw_forms=True, rev_byteorder=True)
            image = bitmap.to_pil()
            out = request["out"]
            with open(out, "xb") as f:
                image.save(f, "WEBP", quality=WEBP_QUALITY, method=WEBP_METHOD)
                f.flush()
                os.fsync(f.fileno())
            return {"ok": True, "width": image.width, "height": image.height}
        finally:
            page.close()
    finally:
        doc.close()


# --- The server's side --------------------------------------------------------------------

_keys_guard = threading.Lock()
_key_locks: dict[str, list] = {}


@contextmanager
def _one_at_a_time(key: str):
    """A lock per image: the first request renders, the others wait and find the file."""
    with _keys_guard:
        entry = _key_locks.setdefault(key, [threading.Lock(), 0])
        entry[1] += 1
    try:
        with entry[0]:
            yield
    finally:
        with _keys_guard:
            entry[1] -= 1
            if not entry[1]:
                del _key_locks[key]


class Renderer:
    """Page counts and page images of the PDFs of one data home, cached under ``cache_dir``."""

    def __init__(self, cache_dir: Path, max_bytes: int = DEFAULT_CACHE_MAX_BYTES,
                 timeout: float = DEFAULT_TIMEOUT, may_keep: Callable[[], bool] = lambda: True):
        self.dir = Path(cache_dir)
        self.max_bytes = max_bytes
        self.timeout = timeout
        # Asked before the cache grows: False when the disk is low (the cache is optional,
        # learners' progress is not); a page is then drawn, sent and not kept.
        self.may_keep = may_keep
        self.renders = 0  # images made by this renderer (tests and benchmarks read it)
        self._counts: dict[str, int] = {}
        self._failed: dict[str, str] = {}
        self._size: int | None = None
        self._size_lock = threading.Lock()

    def _ask(self, request: dict) -> dict:
        with _PDFIUM:
            return _worker.call(request, self.timeout)

    def page_count(self, sha256: str, source: Path) -> int:
        """Pages of the PDF (at most MAX_PAGES are shown); DocumentError if it cannot be read."""
        if sha256 in self._counts:
            return self._counts[sha256]
        if sha256 in self._failed:
            raise DocumentError(self._failed[sha256])
        saved = self.dir / sha256 / "pages"
        count = self._read_count(saved)
        if count is None:
            with _one_at_a_time(str(saved)):
                if sha256 in self._failed:  # found unreadable while this request waited
                    raise DocumentError(self._failed[sha256])
                count = self._read_count(saved) or self._count_now(sha256, source, saved)
        self._counts[sha256] = count
        return count

    @staticmethod
    def _read_count(saved: Path) -> int | None:
        try:
            return int(saved.read_text())
        except (OSError, ValueError):
            return None

    def _count_now(self, sha256: str, source: Path, saved: Path) -> int:
        try:
            answer = self._ask({"op": "count", "path": str(source)})
        except DocumentError as exc:
            self._failed[sha256] = str(exc)
            raise
        if not answer.get("ok") or int(answer["pages"]) < 1:
            self._failed[sha256] = answer.get("error", "the document has no pages")
            raise DocumentError(self._failed[sha256])
        count = int(answer["pages"])
        self._write_small(saved, str(count))
        return count

    def image(self, sha256: str, source: Path, number: int, width: int) -> Path | io.BytesIO:
        """The cached image of one page, rendered first if needed (in memory, not cached,
        when the disk is low)."""
        if width not in WIDTHS:
            raise PageNotFound(f"width {width} is not one of {WIDTHS}")
        if not 1 <= number <= min(self.page_count(sha256, source), MAX_PAGES):
            raise PageNotFound(f"no page {number}")
        final = self.dir / sha256 / f"{number}-{width}.webp"
        if self._fresh(final):
            return final
        key = str(final)
        with _one_at_a_time(key):
            if self._fresh(final):
                return final
            if key in self._failed:
                raise DocumentError(self._failed[key])
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
            try:
                try:
                    answer = self._ask({"op": "render", "path": str(source), "page": number,
                                        "width": width, "out": str(tmp)})
                except DocumentError as exc:
                    self._failed[key] = str(exc)
                    raise
                if answer.get("missing"):
                    raise PageNotFound(f"no page {number}")
                if not answer.get("ok"):
                    if answer.get("disk"):  # a full disk is the box's problem, not the document's
                        raise OSError(answer.get("errno"), answer["error"])
                    self._failed[key] = answer.get("error", "unreadable")
                    raise DocumentError(self._failed[key])
                self.renders += 1
                if not self.may_keep():
                    return io.BytesIO(tmp.read_bytes())
                os.replace(tmp, final)
            finally:
                tmp.unlink(missing_ok=True)
            self._account(final.stat().st_size)
        return final

    @staticmethod
    def _fresh(path: Path) -> bool:
        try:
            os.utime(path)  # "used recently": the cache removes the longest unused first
            return True
        except FileNotFoundError:
            return False
        except OSError:
            return path.is_file()

    def _write_small(self, path: Path, text: str) -> None:
        if not self.may_keep():
            return  # remembered in memory all the same
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            tmp.write_text(text)
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)  # only a cache: the count is asked again next time

    def _account(self, added: int) -> None:
        with self._size_lock:
            if self._size is None:
                self._size = sum(size for _, _, size in self._files())
            else:
                self._size += added
            if self._size > self.max_bytes:
                self._size = self._trim(int(self.max_bytes * 0.8))

    def _files(self):
        """(last use, path, size) of every cached image; leftover temp files are removed."""
        now = time.time()
        found = []
        for path in self.dir.glob("*/*"):
            try:
                st = path.stat()
            except OSError:
                continue
            if path.name.endswith(".tmp"):
                if now - st.st_mtime > STALE_TMP_SECONDS:  # left by a kill -9 or a power cut
                    path.unlink(missing_ok=True)
                continue
            if path.suffix == ".webp":
                found.append((st.st_mtime, path, st.st_size))
        return found

    def _trim(self, target: int) -> int:
        files = sorted(self._files())
        total = sum(size for _, _, size in files)
        for _, path, size in files:
            if total <= target:
                break
            path.unlink(missing_ok=True)
            total -= size
        return total


def renderer(app) -> Renderer:
    return app.extensions["passerelle.pdfpages"]


def init_app(app) -> None:
    from passerelle.server import disk

    home, settings = app.config["HOME"], app.config["SETTINGS"]
    app.extensions["passerelle.pdfpages"] = Renderer(
        Path(home.root) / "cache" / "pdf",
        max_bytes=int(app.config.get("PDF_CACHE_MAX_BYTES", DEFAULT_CACHE_MAX_BYTES)),
        timeout=float(app.config.get("PDF_RENDER_TIMEOUT", DEFAULT_TIMEOUT)),
        may_keep=lambda: disk.optional_writes_allowed(home.root, settings))


if __name__ == "__main__":
    _serve()
