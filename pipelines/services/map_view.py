"""Where a map of the library opens: around all its georeferenced scenes, or on one when they lie far apart.

Fitting scenes on two continents would open on a world where every scene is a speck; such a library opens on
its scene with the most chips instead, and says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipelines.services.results import Bounds, extent
from tiles.index.chip_index import SceneSummary

#: scenes covering less than this share of the box around them all are too far apart to show together
MIN_COVERAGE = 0.01


@dataclass(frozen=True)
class LibraryView:
    """The bounds to open on; ``focus`` is the one scene they are narrowed to when the rest lie far away."""

    bounds: Bounds
    focus: SceneSummary | None = None


def library_view(scenes: Sequence[SceneSummary]) -> LibraryView | None:
    """The view of ``scenes``' georeferenced ones (None when there are none)."""
    located = [scene for scene in scenes if not scene.pixel_space]
    whole = extent(scene.extent for scene in located)
    if whole is None:
        return None
    covered = sum(_area(scene.extent) for scene in located)
    if len(located) == 1 or covered >= MIN_COVERAGE * _area(whole):
        return LibraryView(whole)
    biggest = max(located, key=lambda scene: scene.chips)
    return LibraryView(biggest.extent, focus=biggest)


def _area(bounds: Bounds) -> float:
    """Square degrees: a ratio of two of them is all that is needed."""
    return max(bounds[2] - bounds[0], 0.0) * max(bounds[3] - bounds[1], 0.0)
