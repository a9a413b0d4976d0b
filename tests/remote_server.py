"""A real HTTP server on 127.0.0.1 for remote-raster tests (files with Range requests, byte counts, faults),
and the small COGs they serve (:func:`write_cog`).

:class:`RangeServer` serves the files of a folder (HEAD and GET, single ``Range: bytes=a-b`` requests, an
ETag and Last-Modified like a static web server or an object store), counts the body bytes it sends per path,
and can be told to misbehave for one path: a status code, or a dropped connection half-way through a body.
``routes`` answer other paths (a STAC API stub) from Python. It runs in a daemon thread on an ephemeral port.
"""

from __future__ import annotations

import email.utils
import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import rasterio
from rasterio.transform import from_origin

#: side of the test COGs, in pixels
SIDE_PX = 1024
#: a route: (query parameters, JSON body or None) -> (status, content type, body)
Route = Callable[[dict[str, list[str]], Any], tuple[int, str, bytes]]
#: what a faulty path does: an HTTP status, or "drop" (headers sent, then half the body, then the socket closed)
DROP = "drop"


class RangeServer:
    """Serves ``root`` at :attr:`url`; see the module docstring."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.routes: dict[str, Route] = {}
        #: path -> an HTTP status to answer GETs with, or :data:`DROP`
        self.faults: dict[str, int | str] = {}
        self._lock = threading.Lock()
        self._bytes: Counter[str] = Counter()
        self._gets: Counter[str] = Counter()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def start(self) -> RangeServer:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()

    def bytes_sent(self, name: str) -> int:
        """Body bytes sent so far for the file ``name`` (relative to ``root``)."""
        with self._lock:
            return self._bytes["/" + name]

    def gets(self, name: str) -> int:
        """GET requests answered so far for ``name``."""
        with self._lock:
            return self._gets["/" + name]

    def _count(self, path: str, sent: int, get: bool) -> None:
        with self._lock:
            self._bytes[path] += sent
            self._gets[path] += int(get)


def _handler(server: RangeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            payload = json.loads(self.rfile.read(length) or b"null")
            self._route(urlsplit(self.path), payload)

        def _answer(self, body: bool) -> None:
            url = urlsplit(self.path)
            if url.path in server.routes:
                self._route(url, None)
                return
            file = server.root / url.path.lstrip("/")
            fault = server.faults.get(url.path)
            if not file.is_file() or isinstance(fault, int):
                self._plain(fault if isinstance(fault, int) else 404)
                return
            data = file.read_bytes()
            stat = file.stat()
            start, end, status = 0, len(data) - 1, 200
            found = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            if found:
                start = int(found.group(1))
                end = min(int(found.group(2) or len(data) - 1), len(data) - 1)
                status = 206
            part = data[start : end + 1]
            self.send_response(status)
            self.send_header("Content-Length", str(len(part)))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"')
            self.send_header("Last-Modified", email.utils.formatdate(stat.st_mtime, usegmt=True))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.end_headers()
            if not body:
                return
            if fault == DROP:
                self.wfile.write(part[: len(part) // 2])
                self.wfile.flush()
                server._count(url.path, len(part) // 2, get=True)
                self.close_connection = True
                self.connection.close()
                return
            self.wfile.write(part)
            server._count(url.path, len(part), get=True)

        def _route(self, url: Any, payload: Any) -> None:
            route = server.routes.get(url.path)
            if route is None:
                self._plain(404)
                return
            status, content_type, data = route(parse_qs(url.query), payload)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _plain(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


@contextmanager
def serving(root: Path) -> Iterator[RangeServer]:
    """A started :class:`RangeServer` over ``root``, stopped afterwards."""
    server = RangeServer(root).start()
    try:
        yield server
    finally:
        server.stop()


def write_cog(path: Path, seed: int, side_px: int = SIDE_PX, west: float = 500_000.0) -> Path:
    """A ``side_px``² RGB COG (256 px tiles, DEFLATE, overviews), EPSG:32633 0.5 m, textured by ``seed``."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:side_px, 0:side_px]
    data = np.stack([(cols * (3 + b) + rows * (5 + seed) + rng.integers(0, 40, cols.shape)) % 256 for b in range(3)])
    with rasterio.open(
        path, "w", driver="COG", width=side_px, height=side_px, count=3, dtype="uint8", crs="EPSG:32633",
        transform=from_origin(west, 5_000_000.0, 0.5, 0.5), blocksize=256, compress="deflate",
    ) as dst:
        dst.write(data.astype(np.uint8))
    return path
