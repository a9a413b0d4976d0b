"""Regenerate ``rgb_byte_demo.tif``: rasterio's CC0 ``RGB.byte.tif`` decimated 2x, JPEG-compressed, masked.

Run from the project root with the shared data present: ``.venv/bin/python pipelines/services/demo_data/data.py``.
"""

from pathlib import Path

import rasterio
from rasterio.enums import Resampling

SOURCE = Path(__file__).resolve().parents[4] / "shared" / "data" / "scenes" / "rasterio" / "RGB.byte.tif"
TARGET = Path(__file__).resolve().parent / "rgb_byte_demo.tif"
FACTOR = 2


def main() -> None:
    """Write the demo scene next to this script."""
    with rasterio.open(SOURCE) as src:
        rows, cols = src.height // FACTOR, src.width // FACTOR
        data = src.read(out_shape=(3, rows, cols), resampling=Resampling.average)
        mask = src.dataset_mask(out_shape=(rows, cols), resampling=Resampling.nearest)
        profile = src.profile | {
            "width": cols,
            "height": rows,
            "transform": src.transform * src.transform.scale(FACTOR, FACTOR),
            "compress": "jpeg",
            "photometric": "ycbcr",
            "jpeg_quality": 80,
            "tiled": True,
            "blockxsize": 128,
            "blockysize": 128,
            "nodata": None,
        }
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(TARGET, "w", **profile) as dst:
        dst.write(data)
        dst.write_mask(mask)
        dst.update_tags(
            source="rasterio/rasterio tests/data/RGB.byte.tif @ 9709d1fc (CC0)", decimation=FACTOR
        )


if __name__ == "__main__":
    main()
