"""Fetching a channel's small files from a Kolibri-like server: a new connection per file vs one kept.

Usage:
  .venv/bin/python bench/http_reuse_bench.py [--files 2000] [--size 4096]

Serves ``content/storage/<a>/<b>/<md5>.<ext>`` from a temporary folder with the standard
library's threading HTTP/1.1 server on 127.0.0.1 (keep-alive and TCP_NODELAY, as Kolibri's
cheroot server does),
then reads every file through :class:`passerelle.content.kolibri_remote.RemoteFiles`
twice: with ``keep_alive`` off (``urllib``: one TCP connection per file) and on. Prints
requests per second and CPU seconds of this process for each.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import http.server
import os
import tempfile
import threading
import time
from pathlib import Path

from passerelle.content.http import HttpSource
from passerelle.content.kolibri_remote import RemoteFiles


class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # As Kolibri's server (cheroot) and Waitress do: without it, headers and body leave in two
    # segments and the second waits for the client's delayed ACK (40 ms per file).
    disable_nagle_algorithm = True

    def log_message(self, *args) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--size", type=int, default=4096)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        names = []
        for _i in range(args.files):
            data = os.urandom(args.size)
            md5 = hashlib.md5(data).hexdigest()
            path = Path(tmp, "content", "storage", md5[0], md5[1], f"{md5}.pdf")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            names.append(md5)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=tmp))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        buf = bytearray(1 << 16)
        for keep in (False, True):
            source = HttpSource(base, keep_alive=keep)
            files = RemoteFiles(source)
            t0, c0 = time.perf_counter(), time.process_time()
            for md5 in names:
                with files.opener(md5, "pdf")(0) as stream:
                    while stream.readinto(buf):
                        pass
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            source.close()
            print(f"keep_alive={keep!s:<5}  {len(names) / wall:8.0f} requests/s  {wall:6.2f} s  "
                  f"{cpu:5.2f} s CPU (client and server threads)")
        server.shutdown()


if __name__ == "__main__":
    main()
