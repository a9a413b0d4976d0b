"""One scene -> chips: the loop that ingest, classify and count share.

:func:`iter_chips` walks the windows of an open :class:`~tiles.reader.Scene` (its whole ``ChipSpec`` grid, or
windows the caller picks), georeferences each one, reads it and yields a :class:`SceneChip` for every window
that has enough valid pixels. With an AOI, a window's footprint is tested first, so windows wholly outside the
AOI are never read. Nothing here imports model code, so reader processes stay light.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from shapely.geometry.base import BaseGeometry

from remoteclip.errors import InputError
from tiles.georef import ChipGeoref, chip_georef
from tiles.grid import ChipSpec, ChipWindow, iter_windows
from tiles.reader import Scene


@dataclass(frozen=True, eq=False)  # eq=False: arrays do not compare to one bool
class SceneChip:
    """One chip of a scene: its window, its pixels, where it lies and its share inside the AOI."""

    window: ChipWindow
    #: uint8 ``(chip_px, chip_px, 3)`` RGB, black where the window is clipped or has no data
    pixels: np.ndarray
    georef: ChipGeoref
    #: share of the footprint inside the AOI, in (0, 1]; 1.0 without an AOI
    inside: float


def iter_chips(
    scene: Scene,
    spec: ChipSpec,
    *,
    windows: Iterable[ChipWindow] | None = None,
    aoi: BaseGeometry | None = None,
) -> Iterator[SceneChip]:
    """The chips of ``windows`` (default: ``spec``'s whole grid over ``scene``), read at ``spec.chip_px``.

    A window is skipped, not yielded, when its share of valid pixels is below ``spec.min_valid`` or, with an
    ``aoi`` (EPSG:4326), when its footprint lies wholly outside it (then it is not read at all); a caller that
    reports skipped windows counts the windows it passed in minus the chips it got back.
    """
    if aoi is not None and not scene.georeferenced:
        raise InputError(
            f"{scene.path} has no georeference, so --aoi cannot be applied; drop --aoi or use a GeoTIFF"
        )
    if windows is None:
        windows = iter_windows(scene.width, scene.height, spec)
    for window in windows:
        georef = chip_georef(window, scene.transform, scene.crs)
        inside = 1.0
        if aoi is not None:
            inside = min(1.0, georef.footprint.intersection(aoi).area / georef.footprint.area)
            if inside == 0.0:
                continue
        pixels = scene.read_chip(window, spec.chip_px, spec.min_valid)
        if pixels is not None:
            yield SceneChip(window, pixels, georef, inside)
