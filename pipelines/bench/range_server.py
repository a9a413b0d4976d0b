"""A local HTTP server for remote-raster benchmarks and tests: files with Range requests, byte counts, faults.

:class:`RangeServer` serves the files of a folder on 127.0.0.1 (HEAD and GET, single ``Range: bytes=a-b``
requests, an ETag and Last-Modified like a static web server or an object store), counts the body bytes it
sends per path, and can be told to misbehave for one path: a status code, a dropped connection half-way
through a body, or no answer at all. ``routes`` answer other paths (a STAC API stub) from Python. It runs in a
child process on an ephemeral port. ``bench ingest --remote`` measures bytes fetched with it; ``tests/`` use it as the network.
"""

from __future__ import annotations

import email.utils
import json
import multiprocessing
import multiprocessing.process
import re
import threading
import urllib.request
import warnings
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

#: a route: (query parameters, JSON body or None) -> (status, content type, body)
Route = Callable[[dict[str, list[str]], Any], tuple[int, str, bytes]]
#: what a faulty path does: an HTTP status, "drop" (headers sent, then half the body, then the socket closed),
#: or "stall" (a HEAD is answered; a GET never is, until the server stops)
DROP = "drop"
STALL = "stall"


#: the path that answers this server's own figures (JSON), for the process that started it
STATS_PATH = "/__range_server_stats__"


class RangeServer:
    """Serves ``root`` at :attr:`url`; see the module docstring.

    It serves from a forked child process, not a thread of the caller's: GDAL holds the GIL through some of
    its requests (opening a file, its mask flags), which would stall a server thread of the same process until
    GDAL's time-out. Set :attr:`routes` and :attr:`faults` before :meth:`start`; the counts and the request
    log are asked of the child over HTTP (:data:`STATS_PATH`).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.routes: dict[str, Route] = {}
        #: path -> an HTTP status to answer GETs with, or :data:`DROP`
        self.faults: dict[str, int | str] = {}
        self._lock = threading.Lock()
        self._bytes: Counter[str] = Counter()
        self._gets: Counter[str] = Counter()
        self._log: list[dict[str, Any]] = []
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._child: multiprocessing.process.BaseProcess | None = None

    def start(self) -> RangeServer:
        """Serve from a child process (forked: it takes the routes and faults as they are now)."""
        self._child = multiprocessing.get_context("fork").Process(target=self._httpd.serve_forever, daemon=True)
        with warnings.catch_warnings():
            # the child only serves files: none of LanceDB's or Lance's state (their fork hooks warn) is used
            warnings.filterwarnings("ignore", "lancedb fork support", RuntimeWarning)
            warnings.filterwarnings("ignore", "lance is not fork-safe", UserWarning)
            self._child.start()
        return self

    def stop(self) -> None:
        """Stop the child and close the socket."""
        if self._child is not None:
            self._child.terminate()
            self._child.join()
        self._httpd.server_close()

    def bytes_sent(self, name: str) -> int:
        """Body bytes sent so far for the file ``name`` (relative to ``root``)."""
        return int(self._stats()["bytes"].get("/" + name, 0))

    def gets(self, name: str) -> int:
        """GET requests answered so far for ``name``."""
        return int(self._stats()["gets"].get("/" + name, 0))

    def requests(self, path: str) -> list[dict[str, Any]]:
        """The requests made of a route so far: each one's ``method``, ``query`` and JSON ``body``."""
        return [entry for entry in self._stats()["log"] if entry["path"] == path]

    def _stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + STATS_PATH, timeout=30) as response:
            stats: dict[str, Any] = json.loads(response.read())
        return stats

    def _count(self, path: str, sent: int, get: bool) -> None:
        """Count a body before it is sent: a client that has it always finds it counted."""
        with self._lock:
            self._bytes[path] += sent
            self._gets[path] += int(get)

    def _stats_body(self) -> bytes:
        with self._lock:
            return json.dumps({"bytes": self._bytes, "gets": self._gets, "log": self._log}).encode()

    def _record(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> None:
        with self._lock:
            self._log.append({"method": method, "path": path, "query": query, "body": body})


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
            if url.path == STATS_PATH:
                self._reply(200, "application/json", server._stats_body())
                return
            if url.path in server.routes:
                self._route(url, None)
                return
            file = server.root / url.path.lstrip("/")
            fault = server.faults.get(url.path)
            if not file.is_file() or isinstance(fault, int):
                self._plain(fault if isinstance(fault, int) else 404)
                return
            if fault == STALL and body:
                server._stopping.wait()  # the child is terminated first: the client gets no answer
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
                server._count(url.path, len(part) // 2, get=True)
                self.wfile.write(part[: len(part) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.close()
                return
            server._count(url.path, len(part), get=True)
            self.wfile.write(part)

        def _route(self, url: Any, payload: Any) -> None:
            route = server.routes.get(url.path)
            if route is None:
                self._plain(404)
                return
            server._record(self.command, url.path, parse_qs(url.query), payload)
            self._reply(*route(parse_qs(url.query), payload))

        def _reply(self, status: int, content_type: str, data: bytes) -> None:
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
