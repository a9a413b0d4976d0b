"""Count objects (RemoteCount per chip, summed over an AOI) in the chip index or in an image file.

:func:`count_in_aoi`: each chip of the index at one scale level that touches the AOI gets a RemoteCount
estimate from its stored embedding (:mod:`remoteclip.counting`); the total is the sum of the estimates
weighted by the share of each chip inside the AOI. Where chips overlap (an ingest with overlap, or two scenes
of the same ground) each point of the ground is counted once: the better-ranked chip claims the overlap, the
other keeps only the rest of its area.

:func:`count_image`: an image file is cut into non-overlapping chips (:func:`tiles.chips.iter_chips`), encoded
a batch at a time, and counted the same way; with an AOI, chips wholly outside it are not read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from pipelines.services.export import ExportTable, chips_table, scene_name, window_label
from remoteclip.counting import aggregate_counts, build_count_captions, estimate_counts
from remoteclip.encode import encode_images
from remoteclip.errors import InputError
from remoteclip.factory import LoadedModel
from tiles.chips import iter_chips
from tiles.grid import ChipSpec, ChipWindow
from tiles.index.chip_index import Chip, ChipIndex
from tiles.reader import open_scene

#: objects offered in the app (any other noun can be typed)
COMMON_OBJECTS: tuple[str, ...] = ("airplanes", "ships", "cars", "storage tanks", "buildings", "trees")

#: what a counted chip is: a chip of the index, or a window of an image file
C = TypeVar("C", Chip, ChipWindow)


@dataclass(frozen=True)
class ChipCount(Generic[C]):
    """One chip's estimate: the best count, the expected count, and its share inside the AOI."""

    chip: C
    #: the most likely count (the best-ranked caption of 0..10 objects)
    count: int
    #: RemoteCount's probability-weighted mean count over the captions of 0..10 objects
    expected: float
    inside: float

    @property
    def contribution(self) -> float:
        """What this chip adds to the AOI total."""
        return self.count * self.inside


#: the per-chip columns of an AOI count, first in its export and its table
COUNT_COLUMNS = ("count", "expected_count", "inside", "contribution")


@dataclass(frozen=True)
class AoiCount:
    """The total estimate for an AOI and the per-chip counts it is made of."""

    object_name: str
    model_id: str
    level: int
    total: float
    chips: list[ChipCount[Chip]]

    @property
    def ranked(self) -> list[ChipCount[Chip]]:
        """The chips, largest contribution first."""
        return sorted(self.chips, key=lambda c: -c.contribution)

    def table(self) -> ExportTable:
        """Per-chip counts as an export of chip footprints (also the map's choropleth), largest first."""
        ranked = self.ranked
        return chips_table(
            "chip_counts", [c.chip for c in ranked], [_values(c) for c in ranked], COUNT_COLUMNS
        )

    def rows(self) -> list[dict[str, Any]]:
        """One display row per chip, largest contribution first: where it is, its counts, its id last."""
        return [
            {
                "scene": scene_name(c.chip.scene_path),
                "level": c.chip.level,
                "window": window_label(c.chip),
                **_values(c),
                "chip_id": c.chip.chip_id,
            }
            for c in self.ranked
        ]


def _values(counted: ChipCount[Chip]) -> dict[str, Any]:
    """The :data:`COUNT_COLUMNS` of one chip."""
    return {
        "count": counted.count,
        "expected_count": round(counted.expected, 2),
        "inside": round(counted.inside, 3),
        "contribution": round(counted.contribution, 2),
    }


def inside_fractions(chips: Sequence[Chip], aoi: BaseGeometry) -> list[float]:
    """Share of each chip's footprint inside ``aoi``; each point counts once (earlier chips claim overlap)."""
    fractions = []
    claimed: BaseGeometry | None = None
    for chip in chips:
        footprint = chip.footprint
        own = footprint if claimed is None else footprint.difference(claimed)
        fractions.append(min(1.0, own.intersection(aoi).area / footprint.area) if footprint.area else 0.0)
        claimed = footprint if claimed is None else unary_union([claimed, footprint])
    return fractions


def count_in_aoi(
    index: ChipIndex, model: LoadedModel, object_name: str, aoi: BaseGeometry, level: int = 1
) -> AoiCount:
    """Estimate how many ``object_name`` lie in ``aoi`` from the level-``level`` chips of the index."""
    noun = object_name.strip()
    if not noun:
        raise InputError("the object to count is empty; choose one or type e.g. 'storage tanks'")
    index.check_model(model.model_id)
    captions = build_count_captions(model, noun)
    # every level-`level` chip in the AOI, nearest to "many objects" first, so the chips most likely to hold
    # the objects claim overlapping ground
    chips = index.search(captions[-1], k=None, aoi=aoi, where=f"level = {int(level)}")
    if not chips:
        return AoiCount(noun, model.model_id, level, 0.0, [])
    estimates = estimate_counts(index.vectors([c.chip_id for c in chips]), captions, model.logit_scale)
    fractions = inside_fractions(chips, aoi)
    total = aggregate_counts([e.count for e in estimates], fractions)
    counted = [ChipCount(chip, e.count, e.expected, f) for chip, e, f in zip(chips, estimates, fractions)]
    return AoiCount(noun, model.model_id, level, total, [c for c in counted if c.inside > 0])


@dataclass(frozen=True)
class ImageCount:
    """Counts in one image file: the total and each chip counted (shares to 1e-4, total to 0.01, as shown)."""

    path: Path
    total: float
    chips: list[ChipCount[ChipWindow]]

    def as_dict(self) -> dict[str, Any]:
        """This image in ``count``'s JSON output: path, total, each chip's window, count and share inside."""
        return {
            "path": str(self.path),
            "total": self.total,
            "chips": [
                {
                    "col_off": c.chip.col_off,
                    "row_off": c.chip.row_off,
                    "width": c.chip.width,
                    "height": c.chip.height,
                    "count": c.count,
                    "inside_fraction": c.inside,
                }
                for c in self.chips
            ],
        }


def count_image(
    model: LoadedModel,
    path: Path,
    caption_embeddings: np.ndarray,
    chip_px: int = 256,
    aoi: BaseGeometry | None = None,
    batch_size: int = 64,
) -> ImageCount:
    """Count objects in one image: RemoteCount per non-overlapping chip, summed with AOI weights.

    ``caption_embeddings`` come from :func:`remoteclip.counting.build_count_captions`. Chips are read and
    encoded ``batch_size`` at a time, so memory does not grow with the image.
    """
    counted: list[ChipCount[ChipWindow]] = []
    with open_scene(path) as scene:
        chips = iter_chips(scene, ChipSpec(chip_px=chip_px, overlap_px=0, levels=(1,)), aoi=aoi)
        while batch := list(islice(chips, batch_size)):
            embeddings = encode_images(model, [c.pixels for c in batch], batch_size=batch_size)
            estimates = estimate_counts(embeddings, caption_embeddings, model.logit_scale)
            counted += [
                ChipCount(c.window, e.count, e.expected, round(c.inside, 4)) for c, e in zip(batch, estimates)
            ]
    total = aggregate_counts([c.count for c in counted], [c.inside for c in counted])
    return ImageCount(path=path, total=round(total, 2), chips=counted)
