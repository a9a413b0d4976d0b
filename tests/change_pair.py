"""Two dates of one place for change tests: a real Joplin tile, and a copy in EPSG:4326 with patches planted."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from rasterio.enums import Resampling
from rasterio.warp import calculate_default_transform, reproject, transform_geom
from rasterio.windows import Window
from shapely.geometry import Polygon, box

#: the before date: a real 0.6 m residential tile of Joplin (EPSG:26915), 1024 x 1024
BEFORE = "scenes/xview2_joplin/pre/tile_337-9136.tif"
#: (row, col) of the top-left corner of each 512 x 512 patch planted in the after date
HARBOR_AT = (64, 64)
FOREST_AT = (448, 512)
PATCH_PX = 512


@dataclass(frozen=True)
class PlantedPair:
    """The two dates and where (EPSG:4326) the planted harbor and forest lie."""

    before: Path
    after: Path
    harbor: Polygon
    forest: Polygon


def patch_outline(transform: rasterio.Affine, corner: tuple[int, int], crs: str) -> Polygon:
    """The EPSG:4326 outline of a ``PATCH_PX`` square at (row, col) ``corner`` of a scene."""
    row, col = corner
    x0, y0 = transform @ (col, row)
    x1, y1 = transform @ (col + PATCH_PX, row + PATCH_PX)
    return Polygon(transform_geom(crs, "EPSG:4326", box(x0, y1, x1, y0).__geo_interface__)["coordinates"][0])


def write_planted_pair(shared_data: Path, folder: Path) -> PlantedPair:
    """The Joplin tile, and a copy with a DOTA harbor and a drone forest pasted in, warped to EPSG:4326 and
    written to ``folder``."""
    harbor = np.asarray(Image.open(shared_data / "dota/dota_devkit/images/P0706.png").convert("RGB"))
    harbor = harbor[200 : 200 + PATCH_PX, 200 : 200 + PATCH_PX]
    with rasterio.open(shared_data / "scenes/deepforest/5dded5bc0140b80006d2e565_23.tif") as drone:
        forest = drone.read((1, 2, 3), window=Window(512, 512, 1024, 1024), out_shape=(3, PATCH_PX, PATCH_PX))
    before = shared_data / BEFORE
    with rasterio.open(before) as src:
        data = src.read()
        for (row, col), patch in ((HARBOR_AT, np.moveaxis(harbor, -1, 0)), (FOREST_AT, forest)):
            data[:, row : row + PATCH_PX, col : col + PATCH_PX] = patch
        transform, width, height = calculate_default_transform(
            src.crs, "EPSG:4326", src.width, src.height, *src.bounds
        )
        warped = np.zeros((3, height, width), dtype=np.uint8)
        reproject(data, warped, src_transform=src.transform, src_crs=src.crs, dst_transform=transform,
                  dst_crs="EPSG:4326", resampling=Resampling.bilinear)
        profile = dict(src.profile, crs="EPSG:4326", transform=transform, width=width, height=height)
        outlines = [patch_outline(src.transform, corner, src.crs) for corner in (HARBOR_AT, FOREST_AT)]
    after = folder / "after_4326.tif"
    with rasterio.open(after, "w", **profile) as dst:
        dst.write(warped)
    return PlantedPair(before, after, *outlines)


def planted_share(footprint: Polygon, patch: Polygon) -> float:
    """The share of ``footprint`` inside ``patch``."""
    return footprint.intersection(patch).area / footprint.area
