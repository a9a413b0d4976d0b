"""One scene -> chips: the loop that ingest, classify and count share, and the rule of which chips are empty.

:func:`iter_chips` walks the windows of an open :class:`~tiles.reader.Scene` (its whole ``ChipSpec`` grid, or
windows the caller picks), georeferences each one, reads it and yields a :class:`SceneChip` for every window
that is not empty by :func:`empty_reason` (no data, black/white fill, or flat). With an AOI, a window's
footprint is tested first, so windows wholly outside the AOI are never read. Nothing here imports model code,
so reader processes stay light.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from shapely.geometry.base import BaseGeometry

from remoteclip.errors import InputError
from tiles.georef import ChipGeoref, chip_georef
from tiles.grid import ChipSpec, ChipWindow, iter_windows
from tiles.reader import FILL_COLORS, Scene

#: a chip whose pixels (other than fill) vary less than this, in uint8 DN (the largest per-band standard
#: deviation), is flat. Measured on real imagery: the flattest 256 px level-1 chips of open sea
#: (ships-google-earth boat174, boat263, boat295) have 1.66-1.90 DN, level-2 ones >= 3.56 DN; the flattest chips of
#: ../shared/data/scenes (drone forest canopy of 5b90f92da0d7280005fab355_4310.tif) 4.58 DN, its darkest
#: (Landsat water of RGB.byte.tif, mean 40 DN) 31.6 DN. Only at 64 px chips does real water go lower: 84 of
#: 16,019 such crops of the ships and RSSCN7 river/lake images (0.5 %) are below 1.0 DN (the flattest 0.22).
FLAT_STD_DN = 1.0


class SkipReason(StrEnum):
    """Why a window gave no chip."""

    #: its share of valid pixels (not nodata, not transparent, not NaN) is below ``ChipSpec.min_valid``
    NODATA = "nodata"
    #: its share of pixels that are neither invalid nor exactly the scene's fill colour is below ``min_valid``
    FILL = "fill"
    #: what is left varies less than :data:`FLAT_STD_DN`: one colour, nothing to search for
    FLAT = "flat"


def empty_reason(
    pixels: np.ndarray, min_valid: float, fill_colors: Sequence[tuple[int, int, int]] = FILL_COLORS
) -> SkipReason | None:
    """Why the uint8 ``(rows, cols, 3)`` pixels of a window (not its padding) hold nothing to search for, or None.

    The rule: pixels exactly one of ``fill_colors`` (black or white in all three bands: the border of a scene
    without a nodata flag; invalid pixels are read as black) count as no data, so the chip is ``FILL`` when the
    other pixels are fewer than ``min_valid`` of the window, and ``FLAT`` when the other pixels vary by less than
    :data:`FLAT_STD_DN` in every band (or there are none). Which colours are fill is the scene's
    (:attr:`tiles.reader.Scene.fill_colors`). Measured with ``min_valid`` 0.5 at 256 px: the 12 black-border
    chips of 5b90f92da0d7280005fab355_4310.tif (0-49.7 % imagery) go and its 52 others (>= 65 %) stay; of
    12,517 chips of real image sets, only black paddings of Airbus images (24-37 % imagery) go, while
    saturated white roofs and clouds (up to 51 % pure white, in scenes whose corners are not white) stay.
    """
    flat = pixels.reshape(-1, 3)
    # one uint32 per pixel: a colour test is one comparison, not three and an all()
    packed = (flat[:, 0].astype(np.uint32) << 16) | (flat[:, 1].astype(np.uint32) << 8) | flat[:, 2]
    data = np.ones(len(flat), dtype=bool)
    for red, green, blue in fill_colors:
        data &= packed != ((red << 16) | (green << 8) | blue)
    kept = int(data.sum())
    if kept < min_valid * len(flat):
        return SkipReason.FILL
    if kept == 0:
        return SkipReason.FLAT
    kept_pixels = flat if kept == len(flat) else flat[data]
    # each band's standard deviation from its 256-bin histogram (a tenth of the time of std() on the pixels)
    levels = np.arange(256, dtype=np.float64)
    for band in range(3):
        counts = np.bincount(kept_pixels[:, band], minlength=256)
        mean = counts @ levels / kept
        if (counts @ (levels - mean) ** 2 / kept) ** 0.5 >= FLAT_STD_DN:
            return None
    return SkipReason.FLAT


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
    on_skip: Callable[[ChipWindow, SkipReason], None] | None = None,
) -> Iterator[SceneChip]:
    """The chips of ``windows`` (default: ``spec``'s whole grid over ``scene``), read at ``spec.chip_px``.

    A window is skipped, not yielded, when it is empty (:func:`empty_reason` with ``spec.min_valid``; then
    ``on_skip`` is called with it and the reason) or, with an ``aoi`` (EPSG:4326), when its footprint lies
    wholly outside it (then it is not read at all).
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
        if pixels is None:
            reason = SkipReason.NODATA
        else:
            rows, cols = window.out_shape(spec.chip_px)
            empty = empty_reason(pixels[:rows, :cols], spec.min_valid, scene.fill_colors)
            if empty is None:
                yield SceneChip(window, pixels, georef, inside)
                continue
            reason = empty
        if on_skip is not None:
            on_skip(window, reason)
