"""Running the app under Waitress: access log, LAN addresses, clean shutdown."""

from __future__ import annotations

import ctypes
import fcntl
import logging
import resource
import signal
import socket
import struct
import sys
import tempfile
import time
from logging.handlers import RotatingFileHandler

from flask import Flask
from passerelle.server import db as dbmod
from passerelle.server import disk
from passerelle.server.search import pack_text, zim_index
from passerelle.server.search import service as search
from passerelle.server.settings import Settings
from passerelle.server.sync import schedule as sync_schedule
from passerelle.server.web import bodygate
from waitress.server import create_server

access_logger = logging.getLogger("passerelle.access")


class AccessLog:
    """WSGI middleware writing one Common Log Format line per request, with its duration."""

    def __init__(self, app, logger: logging.Logger):
        self.app = app
        self.logger = logger

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        status_holder: list[str] = []
        size = 0

        def recording_start_response(status, headers, exc_info=None):
            status_holder.append(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info)

        body = self.app(environ, recording_start_response)
        try:
            for chunk in body:
                size += len(chunk)
                yield chunk
        finally:
            if hasattr(body, "close"):
                body.close()
            path = environ.get("PATH_INFO", "")
            if environ.get("QUERY_STRING"):
                path += "?" + environ["QUERY_STRING"]
            self.logger.info(
                '%s - - [%s] "%s %s %s" %s %d %.1fms',
                environ.get("REMOTE_ADDR", "-"),
                time.strftime("%d/%b/%Y:%H:%M:%S %z"),
                environ.get("REQUEST_METHOD", "-"), path, environ.get("SERVER_PROTOCOL", "-"),
                status_holder[0] if status_holder else "-", size,
                (time.perf_counter() - started) * 1000,
            )


def lan_addresses() -> list[str]:
    """IPv4 addresses of this box's interfaces, read from the kernel (no packet is sent)."""
    addresses = []
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        return addresses
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for name in names:
            try:
                packed = fcntl.ioctl(s.fileno(), 0x8915,  # SIOCGIFADDR
                                     struct.pack("256s", name[:15].encode()))
            except OSError:
                continue
            address = socket.inet_ntoa(packed[20:24])
            if not address.startswith("127."):
                addresses.append(address)
    return addresses


def urls_for(host: str, port: int) -> list[str]:
    if host in ("0.0.0.0", "", "::"):
        hosts = lan_addresses() or ["127.0.0.1"]
    else:
        hosts = [host]
    return [f"http://{h}:{port}/" for h in hosts]


def build_wsgi(app: Flask, settings: Settings):
    if not settings["access_log"]:
        return app
    access_logger.setLevel(logging.INFO)
    access_logger.propagate = False
    if not access_logger.handlers:
        handler = RotatingFileHandler(app.config["HOME"].logs / "access.log",
                                      maxBytes=5 * 2**20, backupCount=5, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(message)s"))
        # An optional write: it stops before the disk's last space, kept for learners' progress.
        handler.addFilter(disk.SkipWhenLow(app.config["HOME"].root, settings))
        access_logger.addHandler(handler)
    return AccessLog(app, access_logger)


MALLOC_ARENAS = 2


def return_freed_memory() -> None:
    """Keep glibc from hoarding the memory of large, short-lived allocations.

    Each PIN or password check allocates 8-19 MiB (Argon2). glibc raises its
    mmap threshold after the first such block is freed, so later ones come from
    the heap and are never returned: 30 children signing in left the server
    at ~120 MB for good. Pinning the threshold at 1 MiB returns them at once
    (measured: 77 MB -> 13 MB after 96 parallel checks).

    glibc also gives each thread that allocates at the same time as another an arena of
    its own (up to 8 per core), and keeps each arena's freed pages apart: libzim's
    decompression of ZIM clusters, from whichever serving thread reads an article or a
    search hit's snippet, left pieces in every arena. Two arenas held a served 100,000-article
    ZIM's growth to +18 MB of heap instead of +50 MB, for the same CPU per request
    (bench/zim_search_memory.py); most of Python's own allocations are serialized by its
    lock anyway, so threads seldom wait for an arena.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, macOS): nothing to do
        return
    M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8
    libc.mallopt(M_MMAP_THRESHOLD, 1024 * 1024)
    libc.mallopt(M_ARENA_MAX, MALLOC_ARENAS)


# Waitress stops accepting at 100 open connections (the listening socket included). A
# tablet's browser keeps several keep-alive connections open for minutes, so 100 tablets
# would leave later ones waiting until idle connections time out (channel_timeout, 120 s).
CONNECTION_LIMIT = 1000


def allow_open_files(wanted: int) -> None:
    """Raise this process's soft limit of open files (often 1024) towards ``wanted``.

    Each connection is a file descriptor, and Waitress may add up to two more for
    large bodies.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):  # not allowed here: keep the limit we have
            pass


def run(app: Flask, settings: Settings) -> None:
    return_freed_memory()
    allow_open_files(4 * CONNECTION_LIMIT)
    # Waitress and Werkzeug spool large request bodies (pack uploads) to temporary
    # files: keep them in the data home, on the disk, not in a RAM-backed /tmp.
    tempfile.tempdir = str(app.config["HOME"].tmp)
    server = create_server(
        build_wsgi(app, settings),
        host=settings["host"],
        port=settings["port"],
        threads=settings["threads"],
        # Only a backstop: the gate installed below decides each request's limit from its
        # headers, before its body is read (server/web/bodygate.py).
        max_request_body_size=max(settings["max_request_mb"], settings["max_upload_mb"]) * 1024 * 1024 + 1,
        ident="passerelle",
        clear_untrusted_proxy_headers=True,
        connection_limit=CONNECTION_LIMIT,
        asyncore_use_poll=True,  # select() cannot watch descriptors above 1023
    )

    bodygate.install(server, app)

    def stop(signum, _frame):
        # Waitress' loop turns SystemExit into a graceful shutdown: requests in
        # flight finish (a learner's answer being saved is not cut off).
        print(f"passerelle: {signal.Signals(signum).name} received, stopping", file=sys.stderr,
              flush=True)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    port = server.effective_port
    print(f"Passerelle {app.config['HOME'].root} is serving. Tablets on the LAN can open:",
          flush=True)
    for url in urls_for(settings["host"], port):
        print(f"  {url}", flush=True)
    beside = sync_schedule.start_serving(app, port)  # background sync, LAN announcement
    search.service(app).warm_in_background()
    beside.append(zim_index.start_background(app))  # ZIMs without a full-text index
    beside.append(pack_text.start_background(app))  # the text of big packs' documents
    try:
        server.run()
    finally:
        sync_schedule.stop_serving(beside)
        server.close()
        search.service(app).close()  # the search worker processes
        dbmod.pool(app).close()  # the last connection to close merges the WAL into the database
        writer = app.extensions.get("passerelle.progress_writer")
        if writer is not None and writer.requests:
            app.logger.info("server stopped; progress: %d requests written in %d transactions",
                            writer.requests, writer.transactions)
        else:
            app.logger.info("server stopped")
        print("passerelle: stopped", file=sys.stderr, flush=True)
