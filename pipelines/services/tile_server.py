"""Map tiles at the scene's own resolution: XYZ (Web Mercator) tiles read from the GeoTIFF/COG itself.

One small HTTP server per app process (stdlib ``ThreadingHTTPServer`` in a daemon thread) answers
``/tiles/{key}/{z}/{x}/{y}.png`` (or ``.webp``) for the scenes :meth:`TileServer.register` was given, and only
those: the key is a hash that maps to a registered path, never a path taken from the URL. Tiles are read with
rio-tiler (windowed reads, overviews when the file has them, warped to Web Mercator) and turned into 8-bit RGB
the way :mod:`tiles.reader` turns chips: the same bands and the same per-band stretch, so tiles look like the
chips. Pixels outside the scene, nodata and transparent pixels are transparent.

It listens on 127.0.0.1 and a free port unless :class:`~pipelines.services.settings.AppSettings` says otherwise
(``REMOTECLIP_TILE_HOST``, ``REMOTECLIP_TILE_PORT``, ``REMOTECLIP_TILE_URL``): a browser on another machine (a
Docker deployment) needs the port published and, when it is not localhost, the URL it reaches it at.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

from rasterio.errors import RasterioError
from rio_tiler.errors import NoOverviewWarning, RioTilerError, TileOutsideBounds
from rio_tiler.io import Reader

from pipelines.services.overview import OVERVIEW_PX
from pipelines.services.settings import ENV_TILE_PORT, AppSettings
from remoteclip.errors import ExplorerError, InputError
from tiles.errors import RasterReadError
from tiles.georef import ground_sample_distance_m, pixels_to_lonlat, window_outline
from tiles.grid import ChipWindow
from tiles.reader import Stretch, gdal_env, open_scene
from tiles.remote import gdal_path, is_remote, stat_remote

#: (minx, miny, maxx, maxy) in EPSG:4326 degrees
Bounds = tuple[float, float, float, float]

DEFAULT_HOST = "127.0.0.1"
#: metres per pixel of Web Mercator zoom 0 at the equator (2 pi 6378137 / 256)
ZOOM0_M_PER_PX = 156543.03392804097
#: deepest zoom served (the WebMercatorQuad grid's last level)
MAX_ZOOM = 24
#: a scene within this share (in log2) of a zoom's resolution is native at that zoom, not the next one
ZOOM_TOLERANCE = 0.05
#: rio-tiler readers kept open at once (least recently used closed first)
MAX_OPEN_READERS = 16
#: how long browsers may keep a tile: a key names one version of one file, so its tiles never change
CACHE_SECONDS = 86400
FORMATS = {"png": "image/png", "webp": "image/webp"}
TILE_PATH = re.compile(
    r"/tiles/(?P<key>[0-9a-f]{16})/(?P<z>\d{1,2})/(?P<x>\d{1,8})/(?P<y>\d{1,8})\.(?P<fmt>png|webp)"
)

# rio-tiler warns about every large file without overviews; tiles of such scenes start at a deep zoom anyway
warnings.filterwarnings("ignore", category=NoOverviewWarning)


class TileNotFoundError(ExplorerError, LookupError):
    """No such tile: an unknown scene key, a zoom or index off the grid, or a tile outside the scene."""


@dataclass(frozen=True)
class SceneTiles:
    """Where a registered scene's tiles are and the zooms they are worth loading at."""

    key: str
    #: XYZ URL template with ``{z}``, ``{x}``, ``{y}``
    url: str
    bounds: Bounds
    #: the zoom whose pixels are as fine as the scene's (deeper zooms only magnify its tiles)
    native_zoom: int
    #: the first zoom where tiles beat the scene's overview image (shallower ones show the overview alone)
    min_zoom: int


@dataclass(frozen=True)
class _Source:
    """A registered scene: its file (or a remote raster's URL) and how its bands become RGB."""

    path: Path | str
    bands: tuple[int, ...]
    stretch: Stretch | None
    tiles: SceneTiles


def native_zoom(gsd_m: float, lat_deg: float) -> int:
    """The Web Mercator zoom whose ground pixel at ``lat_deg`` is about ``gsd_m`` metres, or finer."""
    ground_m_per_px = ZOOM0_M_PER_PX * math.cos(math.radians(lat_deg))
    zoom = math.ceil(math.log2(ground_m_per_px / gsd_m) - ZOOM_TOLERANCE)
    return min(max(zoom, 0), MAX_ZOOM)


def tile_min_zoom(native: int, span_px: int, overview_px: int = OVERVIEW_PX) -> int:
    """The shallowest zoom at which a scene of ``span_px`` source pixels shows more than its overview has."""
    if span_px <= overview_px:
        return native
    return min(max(math.floor(native - math.log2(span_px / overview_px)) + 1, 0), native)


class _OpenReader:
    """One open rio-tiler reader; a rasterio dataset is not safe to read from two threads at once."""

    def __init__(self, path: Path | str) -> None:
        self.lock = threading.Lock()
        try:
            self.reader: Reader | None = Reader(gdal_path(path) if isinstance(path, str) else str(path))
        except RasterioError as exc:
            raise RasterReadError(f"{path}: cannot open it for map tiles ({exc})") from exc

    def close(self) -> None:
        with self.lock:
            if self.reader is not None:
                self.reader.close()
                self.reader = None


class _ReaderCache:
    """At most ``size`` open readers, least recently used closed first (after its tile in flight, if any)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._open: OrderedDict[Path | str, _OpenReader] = OrderedDict()
        self._lock = threading.Lock()

    @contextmanager
    def use(self, path: Path | str) -> Iterator[Reader]:
        """The open reader of ``path``, held by this thread until the block ends."""
        while True:
            handle = self._get(path)
            with handle.lock:
                if handle.reader is not None:  # else closed by an eviction since: open it again
                    yield handle.reader
                    return

    def _get(self, path: Path | str) -> _OpenReader:
        evicted = []
        with self._lock:
            handle = self._open.get(path)
            if handle is None:
                handle = self._open[path] = _OpenReader(path)
                while len(self._open) > self._size:
                    evicted.append(self._open.popitem(last=False)[1])
            self._open.move_to_end(path)
        for old in evicted:
            old.close()
        return handle

    def close(self) -> None:
        with self._lock:
            handles, self._open = list(self._open.values()), OrderedDict()
        for handle in handles:
            handle.close()


class TileServer:
    """Serves XYZ tiles of registered scenes over HTTP from a daemon thread; started by the constructor.

    ``port`` 0 picks a free one. ``public_url`` is the base URL browsers use (default ``http://HOST:PORT``,
    ``localhost`` for a wildcard address).
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = 0,
        *,
        public_url: str | None = None,
        max_open_readers: int = MAX_OPEN_READERS,
    ) -> None:
        self._sources: dict[str, _Source] = {}
        self._lock = threading.Lock()
        self._readers = _ReaderCache(max_open_readers)
        try:
            self._httpd = _TileHTTPServer((host, port), _TileHandler, self)
        except OSError as exc:
            raise InputError(
                f"cannot serve map tiles on {host}:{port} ({exc.strerror or exc}); set {ENV_TILE_PORT} to a "
                "free port, or to 0 for any"
            ) from exc
        self.port = int(self._httpd.server_address[1])
        browser_host = "localhost" if host in ("", "0.0.0.0", "::") else host
        self.base_url = (public_url or f"http://{browser_host}:{self.port}").rstrip("/")
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="tile-server", daemon=True)
        self._thread.start()

    def register(self, path: str | Path) -> SceneTiles:
        """Make ``path`` (a file, or a remote raster's URL) servable (once per version of the file); its tile URL
        template, bounds and zooms."""
        resolved: Path | str
        if is_remote(path):
            remote = stat_remote(str(path))  # one HEAD request: the version is the ETag and date
            resolved, version = remote.url, f"{remote.etag}\0{remote.mtime_ns}\0{remote.size}"
        else:
            resolved = Path(path).resolve()
            if not resolved.is_file():
                raise RasterReadError(f"{path}: no such file")
            stat = resolved.stat()
            version = f"{stat.st_mtime_ns}\0{stat.st_size}"
        key = hashlib.sha256(f"{resolved}\0{version}".encode()).hexdigest()[:16]
        with self._lock:
            known = self._sources.get(key)
        if known is not None:
            return known.tiles
        source = self._describe(resolved, key)
        with self._lock:
            self._sources[key] = source
        return source.tiles

    def _describe(self, path: Path | str, key: str) -> _Source:
        """Bands, stretch, EPSG:4326 bounds and zooms of the scene at ``path``, as the chips see it."""
        with open_scene(path) as scene:
            if scene.crs is None:
                raise InputError(
                    f"{path}: has no georeference, so it has no place on a web map; it is shown as its overview"
                )
            span = max(scene.width, scene.height)
            whole = ChipWindow(
                level=1, col_off=0, row_off=0, width=scene.width, height=scene.height, span_px=span
            )
            lon, lat = pixels_to_lonlat(*window_outline(whole), scene.transform, scene.crs)
            gsd_m = ground_sample_distance_m(scene.width / 2, scene.height / 2, scene.transform, scene.crs)
            bands, stretch = scene.bands, scene.stretch
        native = native_zoom(gsd_m, float(lat.mean()))
        tiles = SceneTiles(
            key=key,
            url=f"{self.base_url}/tiles/{key}/{{z}}/{{x}}/{{y}}.png",
            bounds=(float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())),
            native_zoom=native,
            min_zoom=tile_min_zoom(native, span),
        )
        return _Source(path=path, bands=bands, stretch=stretch, tiles=tiles)

    def tile(self, key: str, z: int, x: int, y: int, fmt: str = "png") -> bytes:
        """Tile (x, y) of zoom z of the scene registered as ``key``, as PNG or WebP bytes with transparency."""
        with self._lock:
            source = self._sources.get(key)
        if source is None:
            raise TileNotFoundError(f"no scene is registered as {key}")
        if fmt not in FORMATS or not (0 <= z <= MAX_ZOOM and 0 <= x < 2**z and 0 <= y < 2**z):
            raise TileNotFoundError(f"no tile {z}/{x}/{y}.{fmt} on the Web Mercator grid")
        try:
            with gdal_env(), self._readers.use(source.path) as reader:
                image = reader.tile(
                    x, y, z, indexes=source.bands, resampling_method="bilinear", reproject_method="bilinear"
                )
                colormap = reader.colormap if len(source.bands) == 1 and source.stretch is None else None
        except TileOutsideBounds as exc:
            raise TileNotFoundError(f"tile {z}/{x}/{y} is outside {Path(source.path).name}") from exc
        except (RasterioError, RioTilerError) as exc:
            raise RasterReadError(f"{source.path}: cannot read tile {z}/{x}/{y} ({exc})") from exc
        if source.stretch is not None:
            image.rescale(in_range=list(zip(source.stretch.lo.tolist(), source.stretch.hi.tolist())))
        if colormap:
            image = image.apply_colormap(colormap)
        return image.render(img_format=fmt.upper())

    def close(self) -> None:
        """Stop serving and close every open file."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()
        self._readers.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def serve_tiles(settings: AppSettings) -> TileServer:
    """A tile server where ``settings`` say (default: 127.0.0.1, a free port)."""
    return TileServer(
        settings.tile_host or DEFAULT_HOST, settings.tile_port or 0, public_url=settings.tile_url
    )


class _TileHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], tiles: TileServer
    ) -> None:
        self.tiles = tiles
        super().__init__(address, handler)


class _TileHandler(BaseHTTPRequestHandler):
    """GET ``/tiles/{key}/{z}/{x}/{y}.{png,webp}``; anything else is a 404."""

    server: _TileHTTPServer

    def do_GET(self) -> None:
        match = TILE_PATH.fullmatch(urlsplit(self.path).path)
        if match is None:
            self._reply(404, b"not a tile URL: /tiles/{key}/{z}/{x}/{y}.png", "text/plain")
            return
        fmt = match["fmt"]
        try:
            body = self.server.tiles.tile(
                match["key"], int(match["z"]), int(match["x"]), int(match["y"]), fmt
            )
        except TileNotFoundError as exc:
            self._reply(404, str(exc).encode(), "text/plain")
        except ExplorerError as exc:
            self._reply(500, str(exc).encode(), "text/plain")
        else:
            self._reply(200, body, FORMATS[fmt], cache=True)

    def _reply(self, status: int, body: bytes, mime: str, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", mime)
        self.send_header("Content-Length", str(len(body)))
        self.send_header(
            "Cache-Control", f"public, max-age={CACHE_SECONDS}, immutable" if cache else "no-store"
        )
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: a map asks for dozens of tiles a second."""
