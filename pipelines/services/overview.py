"""Scene overviews for the map: a small image of a whole scene, warped so it lies exactly on a web map."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine
from PIL import Image
from rasterio.crs import CRS
from rasterio.warp import Resampling, calculate_default_transform, reproject, transform_bounds

from tiles.grid import ChipWindow
from tiles.reader import open_scene

#: Leaflet lays image overlays out linearly in Web Mercator, so overviews are warped to it.
WEB_MERCATOR = CRS.from_epsg(3857)
#: longest side of an overview, in pixels
OVERVIEW_PX = 1024
WEBP = "image/webp"
WEBP_QUALITY = 80


@dataclass(frozen=True)
class Overview:
    """A WebP image of the scene (transparent outside it) and its (minx, miny, maxx, maxy) bounds.

    Bounds are EPSG:4326 degrees, or pixel (col, -row) coordinates when the scene has no georeference.
    """

    image: bytes
    mime: str
    bounds: tuple[float, float, float, float]
    pixel_space: bool


def scene_overview(path: str | Path, max_px: int = OVERVIEW_PX) -> Overview:
    """Read ``path`` decimated to at most ``max_px`` a side and warp it to Web Mercator for the map."""
    with open_scene(path) as scene:
        span = max(scene.width, scene.height)
        whole = ChipWindow(
            level=1, col_off=0, row_off=0, width=scene.width, height=scene.height, span_px=span
        )
        out_px = min(max_px, span)
        rows, cols = whole.out_shape(out_px)
        chip = scene.read_chip(whole, out_px)
        assert chip is not None  # min_valid=0 keeps every chip
        rgb = chip[:rows, :cols]
        if not scene.georeferenced:
            return Overview(
                image=_webp(rgb),
                mime=WEBP,
                bounds=(0.0, -float(scene.height), float(scene.width), 0.0),
                pixel_space=True,
            )
        src_transform = scene.transform @ Affine.scale(scene.width / cols, scene.height / rows)
        return _warp_to_mercator(rgb, src_transform, scene.crs)


def _warp_to_mercator(rgb: np.ndarray, transform: Affine, crs: CRS) -> Overview:
    rows, cols = rgb.shape[:2]
    left, top = transform @ (0, 0)
    right, bottom = transform @ (cols, rows)
    bounds = (min(left, right), min(top, bottom), max(left, right), max(top, bottom))
    dst_transform, dst_cols, dst_rows = calculate_default_transform(crs, WEB_MERCATOR, cols, rows, *bounds)
    src = np.concatenate([np.moveaxis(rgb, -1, 0), np.full((1, rows, cols), 255, np.uint8)])
    dst = np.zeros((4, dst_rows, dst_cols), dtype=np.uint8)
    for band in range(4):
        reproject(
            src[band],
            dst[band],
            src_transform=transform,
            src_crs=crs,
            dst_transform=dst_transform,
            dst_crs=WEB_MERCATOR,
            resampling=Resampling.bilinear,
            dst_nodata=0,
        )
    dst[3][np.all(dst[:3] == 0, axis=0)] = 0  # nodata chips read as black: make them transparent
    merc_bounds = (
        dst_transform.c,
        dst_transform.f + dst_transform.e * dst_rows,
        dst_transform.c + dst_transform.a * dst_cols,
        dst_transform.f,
    )
    lonlat = transform_bounds(WEB_MERCATOR, "EPSG:4326", *merc_bounds)
    return Overview(image=_webp(np.moveaxis(dst, 0, -1)), mime=WEBP, bounds=lonlat, pixel_space=False)


def _webp(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="WEBP", quality=WEBP_QUALITY)
    return buffer.getvalue()
