"""GeoTIFFs laid exactly on the Web Mercator tile grid, so a tile can be compared with its source pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from morecantile import Tile, tms
from rasterio.transform import from_origin

WEB_MERCATOR = tms.get("WebMercatorQuad")
#: 0.3 m pixels: Web Mercator zoom 19 exactly, so a scene's pixel grid is the tile grid
ZOOM = 19
#: the scenes' top-left tile (near Metz, 49 N); x is 2 mod 4 so the zoom-17 tile above it is half outside
X0, Y0 = 272002, 180004


def pattern(rows: int, cols: int) -> np.ndarray:
    """(3, rows, cols) uint8 that changes from every pixel to the next: no overview can reproduce it."""
    row, col = np.mgrid[0:rows, 0:cols]
    return np.stack([(col * 37 + row * 11) % 256, (col ^ row) % 256, (col * row) % 256]).astype(np.uint8)


def write_aligned(path: Path, data: np.ndarray, **profile: object) -> Path:
    """A tiled GeoTIFF in EPSG:3857 whose pixels are exactly those of zoom-19 tiles, from tile (X0, Y0)."""
    corner = WEB_MERCATOR.xy_bounds(Tile(X0, Y0, ZOOM))
    res = (corner.right - corner.left) / 256
    bands, rows, cols = data.shape
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=cols,
        height=rows,
        count=bands,
        dtype=data.dtype,
        crs="EPSG:3857",
        transform=from_origin(corner.left, corner.top, res, res),
        tiled=True,
        compress="deflate",
        **profile,
    ) as dst:
        dst.write(data)
    return path
