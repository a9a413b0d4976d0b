"""What changed here: two dates of a place compared cell by cell on a common ground grid.

The scenes of each date (any CRS, any ground resolution, several scenes per date) are resampled onto one
:class:`tiles.ground_grid.GroundGrid` over where both dates have imagery (within an AOI if given), and each cell
is read from each date and embedded. A cell's change is the embedding distance ``1 - cos(before, after)``;
with a text query, the *directed* change ``sim(after, query) - sim(before, query)`` says how much more the cell
looks like the query after than before ("new buildings"), and its negative what disappeared ("destroyed
buildings" before, not after). Each score is also given as a robust z-score against the AOI's own cells
(median and MAD), so a 3 means "far out of the ordinary for this area", whatever the model's cosine range.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.warp import transform_bounds
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from pipelines.services.export import ExportContext, ExportRow, ExportTable
from remoteclip.encode import encode_images, encode_query
from remoteclip.errors import InputError
from remoteclip.factory import LoadedModel
from tiles.chips import empty_reason
from tiles.georef import WGS84, ChipGeoref, chip_georef
from tiles.grid import ChipWindow
from tiles.ground_grid import GridCell, GroundGrid, ground_grid, metric_crs
from tiles.reader import Scene, gdal_env, open_scene
from tiles.thumbnail import thumbnail_jpeg

#: side of a cell in grid pixels: the model's chip size
CELL_PX = 256
#: a cell is compared only where each date has imagery over at least this share of it
MIN_COVERAGE = 0.5
#: cells read and embedded together
BATCH_CELLS = 32
#: the MAD of a normal distribution is this share of its standard deviation
MAD_TO_SD = 1.4826
#: the least spread a z-score divides by, in cosine: resampling one scene onto another CRS's grid alone moves a
#: cell's embedding by 0.004-0.016 (1 - cos, explorer-small, the planted Joplin test pair)
LEAST_SPREAD = 0.01


class Direction(StrEnum):
    """Which change ranks first."""

    #: the most changed cells, of any kind (embedding distance)
    ANY = "any"
    #: with a query: where the query's kind of thing appeared (more like it after than before)
    APPEARED = "appeared"
    #: with a query: where it disappeared (more like it before than after)
    DISAPPEARED = "disappeared"


@dataclass(frozen=True)
class DatedScene:
    """A scene and its capture date, when the file says (a TIFF date tag or a date in its name)."""

    path: Path
    captured: date | None


@dataclass(frozen=True)
class ChangeCell:
    """One cell of the grid read from both dates, its change scores and its two thumbnails."""

    row: int
    col: int
    #: the cell's outline in EPSG:4326
    footprint: BaseGeometry
    #: ``1 - cos(before, after)``, and its robust z-score over the compared cells
    distance: float
    distance_z: float
    #: with a query: ``sim(after, query) - sim(before, query)`` and its z-score; None without one
    toward_query: float | None
    toward_query_z: float | None
    before_jpeg: bytes
    after_jpeg: bytes

    def score(self, direction: Direction) -> float:
        """The z-score that ranks this cell for ``direction``."""
        if direction is Direction.ANY:
            return self.distance_z
        if self.toward_query_z is None:
            raise InputError(f"ranking by what {direction.value} needs a query; type what to look for")
        return self.toward_query_z if direction is Direction.APPEARED else -self.toward_query_z


@dataclass(frozen=True)
class ChangeReport:
    """The compared cells, most changed first (by :attr:`direction`), and what was compared how."""

    cells: list[ChangeCell]
    before: list[Path]
    after: list[Path]
    query: str | None
    direction: Direction
    grid: GroundGrid
    #: cells of the overlap left out because one date has too little imagery there (or only fill)
    uncovered: int
    model_id: str

    @property
    def cell_m(self) -> float:
        """Side of a cell on the ground, in metres."""
        return self.grid.gsd_m * self.grid.cell_px

    def table(self) -> ExportTable:
        """The cells as rows for GeoJSON / CSV / GeoPackage export, in rank order."""
        columns = ("rank", "row", "col", "score", "distance", "distance_z", "toward_query", "toward_query_z")
        rows = tuple(
            ExportRow(
                values={
                    "rank": rank,
                    "row": cell.row,
                    "col": cell.col,
                    "score": round(cell.score(self.direction), 3),
                    "distance": round(cell.distance, 4),
                    "distance_z": round(cell.distance_z, 3),
                    "toward_query": None if cell.toward_query is None else round(cell.toward_query, 4),
                    "toward_query_z": None if cell.toward_query_z is None else round(cell.toward_query_z, 3),
                },
                geometry=cell.footprint,
                feature_id=f"r{cell.row}c{cell.col}",
            )
            for rank, cell in enumerate(self.cells, start=1)
        )
        return ExportTable(name="change", columns=columns, rows=rows, geometry_type="Polygon", wkt_column="wkt")

    def context(self, aoi: BaseGeometry | None = None) -> ExportContext:
        """What an export of this report records: the query (or "any change") and the direction."""
        asked = f"{self.direction.value}: {self.query}" if self.query else "any change"
        return ExportContext.now(asked, self.model_id, aoi=aoi)


def robust_z(values: np.ndarray, least_spread: float = LEAST_SPREAD) -> np.ndarray:
    """``(v - median) / (1.4826 * MAD)``: how far out each value is among ``values``, in normal SDs; the spread
    is at least ``least_spread`` (so cells that barely differ from each other do not make a small change huge)."""
    median = float(np.median(values))
    spread = max(MAD_TO_SD * float(np.median(np.abs(values - median))), least_spread)
    return (values - median) / spread


def compare_dates(
    before: Sequence[Path],
    after: Sequence[Path],
    model: LoadedModel,
    *,
    aoi: BaseGeometry | None = None,
    query: str | None = None,
    direction: Direction | None = None,
    gsd_m: float | None = None,
    cell_px: int = CELL_PX,
    batch_size: int = BATCH_CELLS,
    on_progress: Callable[[int, int], None] | None = None,
) -> ChangeReport:
    """Compare the scenes ``before`` with the scenes ``after`` over where both have imagery (within ``aoi``).

    The grid's pixels are ``gsd_m`` metres (default: the coarser of the two dates' finest GSDs, so neither date
    is magnified), in the first metric CRS among the scenes (else the area's UTM zone). ``direction`` defaults
    to APPEARED with a query and ANY without. ``on_progress(cells done, cells)`` is called after each batch.
    """
    query = query.strip() if query and query.strip() else None
    direction = direction or (Direction.APPEARED if query else Direction.ANY)
    if direction is not Direction.ANY and query is None:
        raise InputError(f"ranking by what {direction.value} needs a query; type what to look for")
    if not before or not after:
        raise InputError("change needs scenes of two dates: give at least one 'before' and one 'after' scene")
    with gdal_env(), ExitStack() as stack:
        places = {path: _place(path) for path in dict.fromkeys([*before, *after])}
        area = _overlap([places[p] for p in before], [places[p] for p in after], aoi)
        crs = metric_crs(area, next((p.crs for p in places.values() if p.crs is not None and p.crs.is_projected), None))
        pixel = {path: place.pixel_m(crs) for path, place in places.items()}
        gsd = gsd_m or max(min(pixel[p] for p in date_paths) for date_paths in (before, after))
        # a scene in the grid's CRS at the grid's pixel size lends the grid its pixel lattice: read unresampled
        lattice = next(
            (place.origin for path, place in places.items() if place.crs == crs and math.isclose(pixel[path], gsd)),
            None,
        )
        grid = ground_grid(area, gsd, cell_px, crs, align=lattice)
        cells = grid.cells(area)
        warped = {path: stack.enter_context(open_scene(path, onto=grid)) for path in places}
        bounds = {path: _pixel_bounds(place.georef.footprint, grid) for path, place in places.items()}
        text = encode_query(model, query) if query else None
        compared: list[tuple[GridCell, np.ndarray, np.ndarray, bytes, bytes]] = []
        done = 0
        for strip in _strips(cells, batch_size):
            region = _region(strip, grid.cell_px)
            before_region = _read_region(region, before, bounds, warped)
            after_region = _read_region(region, after, bounds, warped)
            pairs = [(cell, _pair(before_region, after_region, region, cell)) for cell in strip]
            kept = [(cell, *pair) for cell, pair in pairs if pair is not None]
            if kept:
                vectors = encode_images(model, [b for _, b, _ in kept] + [a for _, _, a in kept], batch_size)
                for i, (cell, b, a) in enumerate(kept):
                    compared.append(
                        (cell, vectors[i], vectors[len(kept) + i], thumbnail_jpeg(b), thumbnail_jpeg(a))
                    )
            done += len(strip)
            if on_progress is not None:
                on_progress(done, len(cells))
    if not compared:
        raise InputError(
            f"none of the {len(cells)} cells of the overlap has imagery from both dates over "
            f"{MIN_COVERAGE:.0%} of it; check that the scenes cover the same ground"
        )
    return ChangeReport(
        cells=_scored(compared, text, direction),
        before=list(before),
        after=list(after),
        query=query,
        direction=direction,
        grid=grid,
        uncovered=len(cells) - len(compared),
        model_id=model.model_id,
    )


def _scored(
    compared: list[tuple[GridCell, np.ndarray, np.ndarray, bytes, bytes]],
    text: np.ndarray | None,
    direction: Direction,
) -> list[ChangeCell]:
    """The compared cells with their scores, ranked for ``direction``."""
    before = np.stack([b for _, b, _, _, _ in compared])
    after = np.stack([a for _, _, a, _, _ in compared])
    distance = 1.0 - np.sum(before * after, axis=1)
    distance_z = robust_z(distance)
    toward = None if text is None else after @ text - before @ text
    toward_z = None if toward is None else robust_z(toward)
    cells = [
        ChangeCell(
            row=cell.row,
            col=cell.col,
            footprint=cell.georef.footprint,
            distance=float(distance[i]),
            distance_z=float(distance_z[i]),
            toward_query=None if toward is None else float(toward[i]),
            toward_query_z=None if toward_z is None else float(toward_z[i]),
            before_jpeg=before_jpeg,
            after_jpeg=after_jpeg,
        )
        for i, (cell, _, _, before_jpeg, after_jpeg) in enumerate(compared)
    ]
    return sorted(cells, key=lambda cell: -cell.score(direction))


@dataclass(frozen=True)
class _Place:
    """Where a scene lies and how fine it is, read once when the comparison opens it."""

    georef: ChipGeoref
    crs: rasterio.crs.CRS | None
    transform: Affine

    @property
    def origin(self) -> tuple[float, float]:
        """The scene's top-left corner in its CRS."""
        return self.transform.c, self.transform.f

    def pixel_m(self, grid_crs: rasterio.crs.CRS) -> float:
        """Metres per pixel: the scene's own pixel size when it is in ``grid_crs``, else geodesic."""
        if self.crs == grid_crs:
            return max(abs(self.transform.a), abs(self.transform.e))
        assert self.georef.gsd_m is not None  # georeferenced scenes only
        return self.georef.gsd_m


def _place(path: Path) -> _Place:
    """The footprint and GSD of the scene at ``path`` (which must be georeferenced)."""
    with open_scene(path) as scene:
        if not scene.georeferenced:
            raise InputError(
                f"{path} has no georeference, so it cannot be compared on the ground; use GeoTIFFs of both dates"
            )
        whole = ChipWindow(1, 0, 0, scene.width, scene.height, max(scene.width, scene.height))
        return _Place(chip_georef(whole, scene.transform, scene.crs), scene.crs, scene.transform)


def _overlap(before: Sequence[_Place], after: Sequence[_Place], aoi: BaseGeometry | None) -> BaseGeometry:
    """Where both dates have imagery, within ``aoi``."""
    area = unary_union([p.georef.footprint for p in before]).intersection(
        unary_union([p.georef.footprint for p in after])
    )
    if area.is_empty or area.area == 0:
        raise InputError("the 'before' and 'after' scenes do not overlap on the ground; pick scenes of one place")
    if aoi is not None:
        area = area.intersection(aoi)
        if area.is_empty or area.area == 0:
            raise InputError("the area of interest lies outside where the two dates overlap; draw it over both")
    return area


def _pixel_bounds(footprint: BaseGeometry, grid: GroundGrid) -> tuple[int, int, int, int]:
    """(col0, row0, col1, row1) of the grid pixels that ``footprint`` (EPSG:4326) covers, one pixel of margin."""
    minx, miny, maxx, maxy = transform_bounds(WGS84, grid.crs, *footprint.bounds, densify_pts=21)
    inverse = ~grid.transform
    cols, rows = zip(*(inverse @ xy for xy in ((minx, maxy), (maxx, miny))), strict=True)
    return (
        max(0, math.floor(min(cols)) - 1),
        max(0, math.floor(min(rows)) - 1),
        min(grid.width, math.ceil(max(cols)) + 1),
        min(grid.height, math.ceil(max(rows)) + 1),
    )


def _strips(cells: Sequence[GridCell], batch_cells: int) -> list[list[GridCell]]:
    """The (row-major) cells in strips of whole grid rows, about ``batch_cells`` cells a strip (at least a row)."""
    strips: list[list[GridCell]] = []
    for cell in cells:
        if strips and (len(strips[-1]) < batch_cells or cell.row == strips[-1][-1].row):
            strips[-1].append(cell)
        else:
            strips.append([cell])
    return strips


def _region(cells: Sequence[GridCell], cell_px: int) -> ChipWindow:
    """The window of grid pixels that holds all of ``cells``."""
    col0, row0 = min(c.window.col_off for c in cells), min(c.window.row_off for c in cells)
    col1 = max(c.window.col_off for c in cells) + cell_px
    row1 = max(c.window.row_off for c in cells) + cell_px
    return ChipWindow(1, col0, row0, col1 - col0, row1 - row0, max(col1 - col0, row1 - row0))


@dataclass(frozen=True, eq=False)
class _DateRegion:
    """One date's pixels over a region of the grid, which of them have data, and its scenes' fill colours."""

    pixels: np.ndarray
    filled: np.ndarray
    fill_colors: tuple[tuple[int, int, int], ...]


def _read_region(
    region: ChipWindow, paths: Sequence[Path], bounds: dict[Path, tuple[int, int, int, int]], warped: dict[Path, Scene]
) -> _DateRegion:
    """One date's pixels over ``region`` (grid pixels): scene after scene fills what the earlier ones left without
    data, each warping only the part of the region inside its ``bounds``, in one read."""
    pixels = np.zeros((region.height, region.width, 3), dtype=np.uint8)
    filled = np.zeros(pixels.shape[:2], dtype=bool)
    for path in paths:
        col0, row0, col1, row1 = bounds[path]
        col0, row0 = max(col0, region.col_off), max(row0, region.row_off)
        col1, row1 = min(col1, region.col_off + region.width), min(row1, region.row_off + region.height)
        if col0 >= col1 or row0 >= row1:
            continue
        part = ChipWindow(1, col0, row0, col1 - col0, row1 - row0, 1)
        read, valid = warped[path].read_pixels(part, 1)
        here = (slice(row0 - region.row_off, row1 - region.row_off), slice(col0 - region.col_off, col1 - region.col_off))
        new = ~filled[here] if valid is None else valid & ~filled[here]
        pixels[here][new] = read[new]
        filled[here] |= new
    return _DateRegion(pixels, filled, warped[paths[0]].fill_colors)


def _pair(
    before: _DateRegion, after: _DateRegion, region: ChipWindow, cell: GridCell
) -> tuple[np.ndarray, np.ndarray] | None:
    """The cell's pixels in each date, both blacked out wherever either date has no data (so neither is compared
    on ground the other does not show); None when less than :data:`MIN_COVERAGE` of the cell has data in both,
    or either is fill or flat (:func:`tiles.chips.empty_reason`)."""
    rows = slice(cell.window.row_off - region.row_off, cell.window.row_off - region.row_off + cell.window.height)
    cols = slice(cell.window.col_off - region.col_off, cell.window.col_off - region.col_off + cell.window.width)
    both = before.filled[rows, cols] & after.filled[rows, cols]
    if both.mean() < MIN_COVERAGE:
        return None
    pixels = []
    for date_region in (before, after):
        cut = date_region.pixels[rows, cols].copy()
        cut[~both] = 0
        if empty_reason(cut, MIN_COVERAGE, date_region.fill_colors) is not None:
            return None
        pixels.append(cut)
    return pixels[0], pixels[1]


#: dates in file names: 2011-05-22, 2011_05_22, 20110522
_NAME_DATE = re.compile(r"(?<!\d)(19|20)(\d{2})[-_]?(0[1-9]|1[0-2])[-_]?(0[1-9]|[12]\d|3[01])(?!\d)")
#: words in a folder or file name that mark the earlier and the later date of a pair
_BEFORE_WORDS = ("pre", "before", "t1", "old")
_AFTER_WORDS = ("post", "after", "t2", "new")


def capture_date(path: Path) -> date | None:
    """When the scene was captured: its TIFF date tag, else a date in its file name, else None."""
    try:
        with rasterio.open(path) as dataset:
            tags = dataset.tags()
    except rasterio.errors.RasterioError:
        tags = {}
    for key in ("ACQUISITIONDATETIME", "TIFFTAG_DATETIME", "DATE_ACQUIRED"):
        found = _NAME_DATE.search(tags.get(key, "").replace(":", "-"))
        if found:
            return _as_date(found)
    found = _NAME_DATE.search(path.stem)
    return _as_date(found) if found else None


def _as_date(found: re.Match[str]) -> date | None:
    century, year, month, day = found.groups()
    try:
        return date(int(century + year), int(month), int(day))
    except ValueError:
        return None


def date_groups(paths: Iterable[Path]) -> list[tuple[str, list[DatedScene]]]:
    """The scenes grouped into dates, earliest first: by capture date where every scene has one, else by folder
    (a folder named like "pre"/"before" first and "post"/"after" last, the rest by name)."""
    scenes = [DatedScene(path, capture_date(path)) for path in paths]
    groups: dict[str, list[DatedScene]] = {}
    if scenes and all(scene.captured is not None for scene in scenes):
        for scene in sorted(scenes, key=lambda s: (s.captured, str(s.path))):
            groups.setdefault(str(scene.captured), []).append(scene)
        return list(groups.items())
    for scene in sorted(scenes, key=lambda s: str(s.path)):
        groups.setdefault(scene.path.parent.name or str(scene.path.parent), []).append(scene)
    return sorted(groups.items(), key=lambda item: (_order_word(item[0]), item[0]))


def _order_word(name: str) -> int:
    """0 for a name that says "before", 2 for "after", 1 otherwise."""
    words = set(re.split(r"[^a-z0-9]+", name.lower()))
    if words & set(_BEFORE_WORDS):
        return 0
    if words & set(_AFTER_WORDS):
        return 2
    return 1
