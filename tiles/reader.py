"""Windowed reading of rasters into uint8 RGB chips.

:func:`open_scene` opens a GeoTIFF, COG, VRT or plain JPEG/PNG and decides once per scene how to turn its
bands into RGB (colour interpretation, palette, grey) and its values into uint8 (percentile stretch from a
decimated whole-scene read, which uses overviews when present). :meth:`Scene.read_chip` then reads one window
at a time, so memory does not grow with the scene. :func:`read_image` reads a whole plain image file as RGB
(what ``embed`` and ``classify`` give the model's own preprocessing).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from PIL import Image, UnidentifiedImageError
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.io import DatasetReader
from rasterio.transform import from_gcps
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from tiles.errors import RasterReadError
from tiles.grid import ChipWindow
from tiles.ground_grid import GroundGrid
from tiles.remote import gdal_path, is_remote, remote_failure, remote_gdal_options

#: file name endings that folder and glob expansion treat as rasters
RASTER_SUFFIXES: frozenset[str] = frozenset(
    {".tif", ".tiff", ".vrt", ".jpg", ".jpeg", ".png", ".jp2", ".img"}
)
#: longest side of the decimated read that percentile-stretch statistics come from
STATS_PX = 1024
#: scenes without overviews above this many pixels take their stretch from a grid of sample windows instead
STATS_FULL_READ_PX = 8192 * 8192
#: sample windows per side of that grid, and their side in pixels
STATS_GRID = 8
STATS_WINDOW_PX = 128
#: drivers of stream formats, where reading a window decodes everything before it
STREAM_DRIVERS = frozenset({"PNG", "JPEG", "GIF", "BMP"})
#: most pixels accepted in those formats: Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``)
MAX_STREAM_PIXELS = 89_478_485
#: lower and upper percentiles of the stretch to uint8
STRETCH_PERCENTILES = (2.0, 98.0)
#: GDAL block cache, in MB
GDAL_CACHE_MB = 64
#: the colours a border without a nodata flag is filled with (exactly, in all three bands of a chip)
BLACK = (0, 0, 0)
WHITE = (255, 255, 255)
FILL_COLORS = (BLACK, WHITE)


@dataclass(frozen=True)
class Stretch:
    """Per-band linear stretch: values ``lo`` -> 0 and ``hi`` -> 255."""

    lo: np.ndarray
    hi: np.ndarray

    def apply(self, data: np.ndarray) -> np.ndarray:
        """Map ``data`` (bands, rows, cols) to uint8."""
        lo, hi = self.lo[:, None, None], self.hi[:, None, None]
        scaled = (data.astype(np.float32) - lo) * (255.0 / np.maximum(hi - lo, 1e-12))
        return np.clip(np.nan_to_num(scaled), 0, 255).astype(np.uint8)


class Scene:
    """An open raster and the recipe for turning any window of it into a uint8 RGB chip."""

    def __init__(self, path: Path | str, dataset: DatasetReader | WarpedVRT) -> None:
        #: the file, or the URL of a remote raster
        self.path = path
        self._ds = dataset
        self.width: int = dataset.width
        self.height: int = dataset.height
        self.crs, self.transform = _georeference(dataset)
        #: 1-based band indexes read for R, G, B (or one grey / palette band)
        self.bands: tuple[int, ...] = _rgb_bands(dataset)
        self._palette = _palette_lut(dataset, self.bands[0])
        flags = {flag for band in self.bands for flag in dataset.mask_flag_enums[band - 1]}
        self._mask_band = bool(flags & {MaskFlags.alpha, MaskFlags.per_dataset})
        #: a warped view's own alpha band (1-based), read with the data in one warp instead of two
        self._warp_alpha = dataset.count if isinstance(dataset, WarpedVRT) and self._mask_band else None
        self._nodata = dataset.nodatavals[self.bands[0] - 1] if MaskFlags.nodata in flags else None
        self._float = np.issubdtype(np.dtype(dataset.dtypes[self.bands[0] - 1]), np.floating)
        self.stretch: Stretch | None = None
        if self._palette is None and dataset.dtypes[self.bands[0] - 1] != "uint8":
            self.stretch = self._stretch_from_overview()
        #: the RGB colours that mean "no imagery" in this scene's chips (see :func:`tiles.chips.empty_reason`)
        self.fill_colors: tuple[tuple[int, int, int], ...] = self._fill_colors()

    @property
    def georeferenced(self) -> bool:
        """False for plain images: footprints are then in pixel space."""
        return self.crs is not None

    def read_chip(self, window: ChipWindow, out_px: int, min_valid: float = 0.0) -> np.ndarray | None:
        """Read ``window`` as a uint8 ``(out_px, out_px, 3)`` array, or None when it is mostly empty.

        The window is resampled (bilinear) so that a full ``window.span_px`` window fills ``out_px``; a window
        clipped at the raster's edge fills the top-left part and the rest is black. Pixels that are nodata or
        transparent are black too; if their share of the window is above ``1 - min_valid``, the chip is
        skipped.
        """
        pixels, valid = self.read_pixels(window, out_px)
        if valid is not None and valid.mean() < min_valid:
            return None
        rows, cols = pixels.shape[:2]
        if rows == cols == out_px:
            return pixels
        chip = np.zeros((out_px, out_px, 3), np.uint8)
        chip[:rows, :cols] = pixels
        return chip

    def read_pixels(self, window: ChipWindow, out_px: int) -> tuple[np.ndarray, np.ndarray | None]:
        """``window`` resampled as :meth:`read_chip` does, without padding: uint8 ``(rows, cols, 3)`` pixels
        (black where there is no data) and a boolean ``(rows, cols)`` mask of the valid ones, None when the
        scene marks no pixel invalid."""
        rows, cols = window.out_shape(out_px)
        bands = self.bands if self._warp_alpha is None else (*self.bands, self._warp_alpha)
        try:
            data = self._ds.read(
                bands, window=window.window, out_shape=(len(bands), rows, cols), resampling=Resampling.bilinear
            )
            if self._warp_alpha is None:
                valid = self._valid_mask(data, window, rows, cols)
            else:
                data, valid = data[:-1], data[-1] > 0
        except RasterioError as exc:
            reason = f"cannot read window {window.window}: {_reason(exc)}"
            raise RasterReadError(f"{self.path}: {_remote_reason(self.path, reason)}") from exc
        pixels = np.empty((rows, cols, 3), dtype=np.uint8)
        planes = self._to_planes(data)
        for channel in range(3):  # band by band: much faster than one transposing copy
            pixels[:, :, channel] = planes[channel if len(planes) == 3 else 0]
        if valid is not None:
            pixels[~valid] = 0
        return pixels, valid

    def _fill_colors(self) -> tuple[tuple[int, int, int], ...]:
        """Black and/or white, where they stand for no imagery: black when the scene marks no data (its nodata
        and transparent pixels are read as black), and each of the two that a corner pixel of the scene is
        exactly (a black or white border without a nodata flag reaches the corners; a bright roof or a deep
        shadow inside a scene does not make white or black a fill colour).
        """
        last_col, last_row = self.width - 1, self.height - 1
        seen = set()
        for col, row in ((0, 0), (last_col, 0), (0, last_row), (last_col, last_row)):
            corner = self.read_chip(ChipWindow(1, col, row, 1, 1, 1), 1)
            assert corner is not None  # min_valid=0 keeps every chip
            seen.add(tuple(int(v) for v in corner[0, 0]))
        marks_nodata = self._mask_band or self._nodata is not None or self._float
        return tuple(
            color for color in FILL_COLORS if color in seen or (color == BLACK and marks_nodata)
        )

    def _valid_mask(self, data: np.ndarray, window: ChipWindow, rows: int, cols: int) -> np.ndarray | None:
        """Boolean (rows, cols) of pixels with data, or None when the scene has no nodata, alpha or mask."""
        valid = None
        if self._mask_band:
            mask = self._ds.read_masks(
                self.bands[0], window=window.window, out_shape=(rows, cols), resampling=Resampling.nearest
            )
            valid = mask > 0
        elif self._nodata is not None and not np.isnan(self._nodata):
            valid = ~np.all(data == self._nodata, axis=0)
        if self._float:
            finite = np.all(np.isfinite(data), axis=0)
            valid = finite if valid is None else valid & finite
        return valid

    def _to_planes(self, data: np.ndarray) -> np.ndarray:
        """(bands, rows, cols) source values -> (3 or 1 grey, rows, cols) uint8."""
        if self._palette is not None:
            return np.moveaxis(self._palette[data[0]], -1, 0)
        return self.stretch.apply(data) if self.stretch is not None else data

    def _stretch_from_overview(self) -> Stretch:
        """Percentile stretch from a decimated read of the whole scene (overviews are used when present)."""
        try:
            samples = self._stats_samples()
        except RasterioError as exc:
            raise RasterReadError(
                f"{self.path}: cannot read an overview for the stretch: {_reason(exc)}"
            ) from exc
        lo, hi = np.empty(len(self.bands)), np.empty(len(self.bands))
        for i in range(len(self.bands)):
            values = np.concatenate([sample[i].compressed() for sample in samples]).astype(np.float64)
            values = values[np.isfinite(values)]
            lo[i], hi[i] = np.percentile(values, STRETCH_PERCENTILES) if values.size else (0.0, 1.0)
        return Stretch(lo=lo, hi=hi)

    def _stats_samples(self) -> list[np.ma.MaskedArray]:
        """(bands, rows, cols) samples of the scene: one decimated read, or a grid of windows for a large scene
        without overviews (whose decimated read would decode every block, however many gigapixels)."""
        if self._ds.overviews(self.bands[0]) or self.width * self.height <= STATS_FULL_READ_PX:
            scale = min(1.0, STATS_PX / max(self.width, self.height))
            shape = (len(self.bands), max(1, round(self.height * scale)), max(1, round(self.width * scale)))
            return [self._ds.read(self.bands, out_shape=shape, masked=True, resampling=Resampling.nearest)]
        side = min(STATS_WINDOW_PX, self.width, self.height)
        cols = np.linspace(0, self.width - side, STATS_GRID).astype(int)
        rows = np.linspace(0, self.height - side, STATS_GRID).astype(int)
        return [self._ds.read(self.bands, window=Window(c, r, side, side), masked=True) for r in rows for c in cols]


def gdal_env() -> rasterio.Env:
    """GDAL settings for chip reading: a bounded block cache, so memory does not grow with the scene, and the
    settings of remote reads (:data:`tiles.remote.REMOTE_GDAL_OPTIONS`, those not set in the environment)."""
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB, **remote_gdal_options())


@contextmanager
def open_scene(path: str | Path, onto: GroundGrid | None = None) -> Iterator[Scene]:
    """Open a raster (a file, or an ``https://``, ``s3://`` or ``gs://`` URL: :mod:`tiles.remote`) for chip
    reading; any failure to open it becomes a :class:`RasterReadError`.

    With ``onto``, the scene is seen resampled (bilinear) onto that ground grid, through a GDAL warped VRT:
    windows are then in grid pixels, and where the grid lies beyond the scene the pixels are invalid. A URL is
    read within :func:`gdal_env`, entered here (inside a caller's own, it changes nothing).
    """
    with ExitStack() as stack:
        source: Path | str
        if is_remote(path):
            stack.enter_context(gdal_env())
            path, source = str(path), gdal_path(str(path))
        else:
            path = source = Path(path)
            if not path.is_file():
                raise RasterReadError(f"{path}: no such file")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                dataset = stack.enter_context(rasterio.open(source))
        except RasterioError as exc:
            reason = f"not a readable raster ({_reason(exc).replace(str(source), str(path))})"
            raise RasterReadError(f"{path}: {_remote_reason(path, reason)}") from exc
        if dataset.width < 1 or dataset.height < 1 or dataset.count < 1:
            raise RasterReadError(f"{path}: raster has no pixels or no bands")
        if dataset.driver in STREAM_DRIVERS and dataset.width * dataset.height > MAX_STREAM_PIXELS:
            raise RasterReadError(
                f"{path}: a {dataset.driver} of {dataset.width} x {dataset.height} pixels is over the "
                f"{MAX_STREAM_PIXELS:,}-pixel limit for untiled images (a decompression bomb?); convert it to a "
                "tiled GeoTIFF (gdal_translate -co TILED=YES) to ingest it"
            )
        if onto is None:
            yield Scene(path, dataset)
            return
        crs, transform = _georeference(dataset)
        if crs is None:
            raise RasterReadError(f"{path}: has no georeference, so it cannot be placed on a ground grid")
        with WarpedVRT(
            dataset,
            src_crs=crs,
            src_transform=transform,
            crs=onto.crs,
            transform=onto.transform,
            width=onto.width,
            height=onto.height,
            resampling=Resampling.bilinear,
            add_alpha=True,
        ) as warped:
            yield Scene(path, warped)


def _reason(exc: Exception) -> str:
    """GDAL's own message: rasterio often wraps it as the cause of a generic 'Read failed'."""
    return str(exc.__cause__ or exc)


def _remote_reason(path: Path | str, reason: str) -> str:
    """GDAL's ``reason`` for a failure, led by what the server of a remote raster says now (an HTTP status, a
    cut-short response), which GDAL's message lacks."""
    server = remote_failure(path) if isinstance(path, str) and is_remote(path) else None
    return f"{server}; {reason}" if server else reason


def _georeference(dataset: DatasetReader | WarpedVRT) -> tuple[CRS | None, Affine]:
    """The scene's CRS and pixel->CRS transform: geotransform, else GCPs, else (None, identity)."""
    if dataset.crs is not None and not dataset.transform.is_identity:
        return dataset.crs, dataset.transform
    gcps, gcp_crs = dataset.gcps
    if gcps and gcp_crs is not None:
        return gcp_crs, from_gcps(gcps)
    return None, Affine.identity()


def _rgb_bands(dataset: DatasetReader | WarpedVRT) -> tuple[int, ...]:
    """Bands to read: by colour interpretation, else the first three (RGB+NIR), else the first (grey)."""
    interp = list(dataset.colorinterp)
    wanted = (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
    if all(ci in interp for ci in wanted):
        return tuple(interp.index(ci) + 1 for ci in wanted)
    if interp[0] == ColorInterp.palette:
        return (1,)
    data_bands = [i + 1 for i, ci in enumerate(interp) if ci != ColorInterp.alpha]
    return tuple(data_bands[:3]) if len(data_bands) >= 3 else (data_bands[0] if data_bands else 1,)


def _palette_lut(dataset: DatasetReader | WarpedVRT, band: int) -> np.ndarray | None:
    """A (256, 3) uint8 lookup table for a paletted uint8 band, else None."""
    if dataset.colorinterp[band - 1] != ColorInterp.palette or dataset.dtypes[band - 1] != "uint8":
        return None
    lut = np.zeros((256, 3), dtype=np.uint8)
    for index, rgba in dataset.colormap(band).items():
        lut[index] = rgba[:3]
    return lut


def read_image(path: Path) -> Image.Image:
    """A whole image file as RGB (what ``embed`` and ``classify`` feed the model's preprocessing)."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise RasterReadError(
            f"{path}: not an image Pillow can read ({exc}); for multi-band or 16-bit rasters "
            f"use `remoteclip-explorer ingest`"
        ) from exc
