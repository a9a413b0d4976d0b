"""Count objects in an area of interest over the chip index (RemoteCount per chip, summed over the AOI).

Each chip of one scale level that touches the AOI gets a RemoteCount estimate from its stored embedding
(:mod:`remoteclip.counting`); the total is the sum of the estimates weighted by the share of each chip inside
the AOI. Where chips overlap (an ingest with overlap, or two scenes of the same ground) each point of the
ground is counted once: the better-ranked chip claims the overlap, the other keeps only the rest of its area.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from pipelines.services.export import chip_feature, feature_collection, scene_name
from remoteclip.counting import aggregate_counts, build_count_captions, estimate_counts
from remoteclip.errors import InputError
from remoteclip.factory import LoadedModel
from tiles.index.chip_index import Chip, ChipIndex

#: objects offered in the app (any other noun can be typed)
COMMON_OBJECTS: tuple[str, ...] = ("airplanes", "ships", "cars", "storage tanks", "buildings", "trees")


@dataclass(frozen=True)
class ChipCount:
    """One chip's estimate: the best count, the expected count, and its share inside the AOI."""

    chip: Chip
    count: int
    expected: float
    inside: float

    @property
    def contribution(self) -> float:
        """What this chip adds to the AOI total."""
        return self.count * self.inside


@dataclass(frozen=True)
class AoiCount:
    """The total estimate for an AOI and the per-chip counts it is made of."""

    object_name: str
    level: int
    total: float
    chips: list[ChipCount]

    def geojson(self) -> dict[str, Any]:
        """Per-chip counts as a FeatureCollection (for a choropleth), georeferenced chips only."""
        return feature_collection(
            chip_feature(
                c.chip,
                count=c.count,
                expected=round(c.expected, 2),
                inside=round(c.inside, 3),
                contribution=round(c.contribution, 2),
            )
            for c in self.chips
            if not c.chip.pixel_space
        )

    def rows(self) -> list[dict[str, Any]]:
        """One display row per chip, largest contribution first."""
        ranked = sorted(self.chips, key=lambda c: -c.contribution)
        return [
            {
                "scene": scene_name(c.chip.scene_path),
                "chip_id": c.chip.chip_id,
                "count": c.count,
                "expected": round(c.expected, 2),
                "inside": round(c.inside, 3),
                "contribution": round(c.contribution, 2),
            }
            for c in ranked
        ]


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
        return AoiCount(noun, level, 0.0, [])
    estimates = estimate_counts(index.vectors([c.chip_id for c in chips]), captions, model.logit_scale)
    fractions = inside_fractions(chips, aoi)
    total = aggregate_counts([e.count for e in estimates], fractions)
    counted = [ChipCount(chip, e.count, e.expected, f) for chip, e, f in zip(chips, estimates, fractions)]
    return AoiCount(noun, level, total, [c for c in counted if c.inside > 0])
