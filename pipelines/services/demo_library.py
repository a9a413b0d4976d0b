"""The demo library the app opens on: a few scenes of ``../shared/data`` when present, else the bundled scene.

It is built once (on the first ``remoteclip-explorer app``); later starts find its chips and reuse them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipelines.ingest.local import ingest_paths
from pipelines.services.settings import AppSettings
from remoteclip.factory import load_model
from tiles.grid import ChipSpec
from tiles.index.chip_index import ChipIndex

#: where the shared data lives unless ``REMOTECLIP_SHARED_DATA`` says otherwise
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
#: scenes of the shared data the demo ingests: cars and a bridge, vegetation, a river town, Joplin houses,
#: farmland, an airport, a marina full of ships, and two CRS oddities (EPSG:3395, a Landsat scene)
DEMO_SCENES: tuple[str, ...] = (
    "scenes/deepforest/5b90f92da0d7280005fab355_4310.tif",
    "scenes/deepforest/5dded5bc0140b80006d2e565_23.tif",
    "scenes/deepforest/test_tiled.tif",
    "scenes/xview2_joplin/pre/tile_337-9136.tif",
    "scenes/xview2_joplin/pre/tile_337-10160.tif",
    "scenes/xview2_joplin/pre/tile_1361-9136.tif",
    "scenes/xview2_joplin/pre/tile_1361-10160.tif",
    "scenes/opengeos_naip/m_4709963_se_14_1_20200831.tif",
    "scenes/riotiler_hro/201404_13SED190110_201404_0x1500m_CL_1.tif",
    "scenes/riotiler_hro/pix4d_alpha_nodata.tif",
    "scenes/solaris_spacenet/sample_geotiff.tif",
    "scenes/rasterio/RGB.byte.tif",
    "dota/dota_devkit/images/P0706.png",
    "airbus-aircraft/extras/022f91f0-1434-401f-a11b-e315b7068100.jpg",
)
#: the openly licensed scene shipped with the project (see demo_data/README.md)
BUNDLED_SCENE = Path(__file__).resolve().parent / "demo_data" / "rgb_byte_demo.tif"
DEMO_SPEC = ChipSpec(chip_px=256, overlap_px=0, levels=(1, 2))


@dataclass(frozen=True)
class DemoLibrary:
    """What :func:`ensure_demo_library` found or built."""

    db_dir: Path
    built: bool
    chips: int
    scenes: int
    failed: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        """One line for the console."""
        verb = "built" if self.built else "reusing"
        text = f"Library {self.db_dir}: {verb} {self.scenes} scenes, {self.chips} chips"
        return text + (f" ({len(self.failed)} files failed)" if self.failed else "")


def shared_data_dir() -> Path:
    """``REMOTECLIP_SHARED_DATA`` or ``../shared/data`` next to the project."""
    return Path(os.environ.get("REMOTECLIP_SHARED_DATA", SHARED_DATA))


def demo_paths(shared_data: Path | None = None) -> list[Path]:
    """The demo scenes present under ``shared_data``; the bundled scene when none is."""
    root = shared_data_dir() if shared_data is None else shared_data
    present = [root / rel for rel in DEMO_SCENES if (root / rel).exists()]
    return present or [BUNDLED_SCENE]


def ensure_demo_library(
    settings: AppSettings, shared_data: Path | None = None, progress: bool = True
) -> DemoLibrary:
    """Reuse the library in ``settings.db_dir`` if it has chips, else ingest the demo scenes into it.

    A library holding only the demo scenes, embedded by another model (an older default, say), is rebuilt
    with this one; a library of the user's own scenes is never touched.
    """
    index = ChipIndex(settings.db_dir)
    model = load_model(settings.model_name, weights=settings.weights, backend=settings.backend)
    paths = demo_paths(shared_data)
    if index.count_rows():
        if index.model_id == model.model_id or not _holds_only(index, paths):
            chips, scenes = index.count_rows(), len(index.scenes())
            return DemoLibrary(settings.db_dir, built=False, chips=chips, scenes=scenes)
        index.drop()
    summary = ingest_paths(paths, index, model, DEMO_SPEC, progress=progress)
    return DemoLibrary(
        settings.db_dir, built=True, chips=summary.chips, scenes=summary.scenes, failed=tuple(summary.failed)
    )


def _holds_only(index: ChipIndex, paths: list[Path]) -> bool:
    """Whether every scene in ``index`` is one of ``paths``."""
    allowed = {path.resolve() for path in paths}
    return all(Path(scene.scene_path).resolve() in allowed for scene in index.scenes())
