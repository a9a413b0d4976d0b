"""Small real inputs for the app tests: a textured GeoTIFF scene, a library built from it, hand-made hits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box

from pipelines.ingest.local import ingest_paths
from remoteclip.factory import LoadedModel
from tiles.grid import ChipSpec
from tiles.index.chip_index import ChipIndex, Hit

#: 512 px at 10 m in UTM 18N: 16 level-1 chips of 128 px and 4 level-2 chips
SCENE_PX = 512
SPEC = ChipSpec(chip_px=128, levels=(1, 2))


def write_scene(path: Path, seed: int = 0, origin: tuple[float, float] = (300000.0, 2800000.0)) -> Path:
    """A 3-band uint8 GeoTIFF (EPSG:32618) of blocky random texture, so chips differ from each other."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 255, (3, SCENE_PX // 32, SCENE_PX // 32), dtype=np.uint8)
    data = blocks.repeat(32, axis=1).repeat(32, axis=2)
    profile = {
        "driver": "GTiff",
        "width": SCENE_PX,
        "height": SCENE_PX,
        "count": 3,
        "dtype": "uint8",
        "crs": "EPSG:32618",
        "transform": from_origin(*origin, 10, 10),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def build_library(db_dir: Path, model: LoadedModel, scenes: list[Path], spec: ChipSpec = SPEC) -> ChipIndex:
    """A chip index of ``scenes`` ingested with ``model``."""
    index = ChipIndex(db_dir)
    summary = ingest_paths(scenes, index, model, spec, progress=False)
    assert not summary.failed, summary.failed
    return index


def make_hit(
    minx: float, miny: float, size: float, score: float, *, pixel_space: bool = False, scene: str = "s1"
) -> Hit:
    footprint = box(minx, miny, minx + size, miny + size)
    return Hit(
        chip_id=f"{scene}-{minx}-{miny}",
        scene_id=scene,
        scene_path=f"/data/{scene}.tif",
        level=1,
        col_off=0,
        row_off=0,
        width=256,
        height=256,
        crs="EPSG:4326",
        bbox=footprint.bounds,
        footprint=footprint,
        gsd_m=None if pixel_space else 0.5,
        pixel_space=pixel_space,
        thumbnail=b"",
        model_id="tiny@0",
        score=score,
    )
