#!/usr/bin/env python3
"""Write the tiny fixture rasters of tests/data/rasters (run from anywhere; output is deterministic).

Each raster is 40 x 24 pixels (so 16-pixel chips leave partial chips at the right and bottom edges) and
exercises one case of the reader: CRSs, dtypes, band layouts, masks, formats and a corrupt file.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import from_origin

HERE = Path(__file__).resolve().parent
WIDTH, HEIGHT = 40, 24


def _pattern(bands: int, dtype: str, scale: int) -> np.ndarray:
    """A smooth, band-dependent gradient so every chip differs from its neighbours."""
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    data = np.stack([(rows * 7 + cols * 3 + 50 * b) % 200 + 20 for b in range(bands)]) * scale
    return data.astype(dtype)


def _write(name: str, data: np.ndarray, **profile: object) -> Path:
    path = HERE / name
    base = {
        "driver": "GTiff",
        "width": WIDTH,
        "height": HEIGHT,
        "count": data.shape[0],
        "dtype": data.dtype.name,
        "compress": "deflate",
    }
    with rasterio.open(path, "w", **{**base, **profile}) as dst:
        dst.write(data)
        if data.shape[0] == 4 and profile.get("photometric") != "RGB":
            dst.colorinterp = [
                ColorInterp.gray,
                ColorInterp.undefined,
                ColorInterp.undefined,
                ColorInterp.undefined,
            ]
    return path


def main() -> None:
    # RGB in EPSG:4326, ~1.1 m pixels near Joplin MO
    _write(
        "rgb_4326.tif",
        _pattern(3, "uint8", 1),
        crs="EPSG:4326",
        transform=from_origin(-94.5, 37.07, 1e-5, 1e-5),
        photometric="RGB",
    )
    # panchromatic uint16 in UTM 16N, 0.5 m (values up to ~1000: needs a stretch)
    _write(
        "pan_uint16_32616.tif",
        _pattern(1, "uint16", 4),
        crs="EPSG:32616",
        transform=from_origin(741000.0, 3725000.0, 0.5, 0.5),
    )
    # RGB+NIR, colour interpretation undefined, World Mercator (metres are not ground metres)
    _write(
        "rgbn_3395.tif",
        _pattern(4, "uint8", 1),
        crs="EPSG:3395",
        transform=from_origin(13467000.0, 1631000.0, 0.1, 0.1),
    )
    # nodata 0 in the right half (chips there are skipped)
    data = _pattern(3, "uint8", 1)
    data[:, :, WIDTH // 2 :] = 0
    _write(
        "nodata_32618.tif",
        data,
        crs="EPSG:32618",
        transform=from_origin(101985.0, 2826915.0, 300.0, 300.0),
        nodata=0,
        photometric="RGB",
    )
    # RGBA, transparent except the top-left 16 x 16 pixels
    rgba = np.concatenate([_pattern(3, "uint8", 1), np.zeros((1, HEIGHT, WIDTH), dtype="uint8")])
    rgba[3, :16, :16] = 255
    path = _write(
        "alpha_32750.tif",
        rgba,
        crs="EPSG:32750",
        transform=from_origin(297463.3, 9050677.06, 0.35, 0.35),
        photometric="RGB",
        alpha="YES",
    )
    with rasterio.open(path, "r+") as dst:
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
    # a Cloud-Optimized GeoTIFF (with an overview) made from the RGB file, and a VRT pointing at it
    rasterio.shutil.copy(
        HERE / "rgb_4326.tif",
        HERE / "cog_4326.tif",
        driver="COG",
        blocksize=16,
        overview_resampling="average",
        overviews="AUTO",
    )
    rasterio.shutil.copy(HERE / "rgb_4326.tif", HERE / "rgb_4326.vrt", driver="VRT")
    vrt = HERE / "rgb_4326.vrt"
    vrt.write_text(vrt.read_text().replace(str(HERE) + "/", ""))  # relative source path
    # a plain PNG without any georeference
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(
            HERE / "plain.png", "w", driver="PNG", width=WIDTH, height=HEIGHT, count=3, dtype="uint8"
        ) as dst:
            dst.write(_pattern(3, "uint8", 1))
    # a truncated GeoTIFF: the header survives, the pixel data does not
    whole = (HERE / "rgb_4326.tif").read_bytes()
    (HERE / "corrupt.tif").write_bytes(whole[: len(whole) // 3])
    for aux in HERE.glob("*.aux.xml"):
        aux.unlink()


if __name__ == "__main__":
    main()
