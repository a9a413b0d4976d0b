"""A GeoTIFF without a nodata flag whose black border and flat block ingest must leave out (tiles, CLI, app tests).

At any chip size ``chip_px`` it is 4 x 3 windows: the top row of windows is all black border, the left column
is black over 10/16 of its width (62.5 %: over the 50 % a chip may be), one window is flat grey, and the other
five hold random texture (never exactly black or white).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

#: (col, row) of the windows, in chips, that hold imagery ...
TEXTURED = [(1, 1), (2, 1), (3, 1), (1, 2), (2, 2)]
#: ... that are mostly black border ...
FILL = [(0, 0), (1, 0), (2, 0), (3, 0), (0, 1), (0, 2)]
#: ... and that are flat grey
FLAT = [(3, 2)]


def write_bordered_scene(path: Path, chip_px: int = 16, seed: int = 0) -> Path:
    """The scene, ``4 * chip_px`` x ``3 * chip_px`` px of 1 m in UTM 18N, as a 3-band uint8 GeoTIFF."""
    data = np.random.default_rng(seed).integers(1, 255, (3, 3 * chip_px, 4 * chip_px), dtype=np.uint8)
    data[:, :chip_px, :] = 0
    data[:, :, : chip_px * 10 // 16] = 0
    data[:, 2 * chip_px :, 3 * chip_px :] = 120
    profile = {
        "driver": "GTiff",
        "width": 4 * chip_px,
        "height": 3 * chip_px,
        "count": 3,
        "dtype": "uint8",
        "crs": "EPSG:32618",
        "transform": from_origin(300000.0, 2800000.0, 1.0, 1.0),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path
