"""A label layer over the library: every chip (of an AOI, or all) labelled from its stored embedding.

No pixel is read: the chips' embeddings are in the index. Two kinds of class can be asked for, and combine so:

1. **Saved detectors** (:mod:`pipelines.services.detectors`) come first: a chip is a detector's class when its
   probe probability reaches that detector's threshold; when several accept it, the most probable one wins.
2. **Typed classes** label the other chips by zero-shot, as an upload's chips are labelled
   (:func:`pipelines.services.classify.zero_shot_labels`): probabilities at the calibrated temperature, and a
   chip whose best class is no more relevant than unrelated text (below the calibration's ``label_z``) is
   :data:`UNCERTAIN`. A model without a fitted calibration cuts nothing off (the layer says so).
3. A chip no detector accepts, with no typed class to fall back on, is :data:`UNCERTAIN` too.

Areas are geodesic (WGS84) km² of each chip's footprint clipped to the AOI. Where chips overlap (the levels of
a scene, overlapping chips or scenes), each piece of ground counts once: it belongs to the finest chip over it
(smallest metres per pixel, then lower level, then chip id), whose label it takes; the coarser chip keeps only
the ground no finer chip covers. So the classes' areas add up to the area of the union of the chips'
footprints inside the AOI. Chips of images without a georeference are labelled but have no area.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import Geod
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.prepared import prep

from pipelines.services.classify import parse_labels, zero_shot_labels
from pipelines.services.detectors import Detector, check_model, get_detector
from pipelines.services.export import (
    ID_COLUMNS,
    PLACE_COLUMNS,
    ExportContext,
    ExportRow,
    ExportTable,
    chip_place,
)
from remoteclip.calibration import Calibration, load_calibration
from remoteclip.errors import InputError
from remoteclip.factory import LoadedModel
from remoteclip.vectors import l2_normalize
from remoteclip.zeroshot import build_classifier
from tiles.index.chip_index import SCAN_BATCH, Chip, ChipIndex

#: the class of a chip that no class is confident about
UNCERTAIN = "uncertain"
#: kinds of class, in the legend's order
TEXT, DETECTOR = "text", "detector"
#: a chip's left-over ground smaller than this share of its clipped footprint is rounding, not ground
SLIVER = 1e-6
#: columns of the export before where each chip is
VALUE_COLUMNS = ("label", "probability", "relevance", "area_km2")

GEOD = Geod(ellps="WGS84")


@dataclass(frozen=True)
class LayerClass:
    """One class of the layer (a legend entry): how many chips it labels and the ground it covers."""

    name: str
    #: :data:`TEXT`, :data:`DETECTOR` or :data:`UNCERTAIN`
    kind: str
    #: chips labelled with it, those without a georeference included
    chips: int
    area_km2: float


@dataclass(frozen=True)
class LabelledChip:
    """A chip, its label, and the ground it labels."""

    chip: Chip
    label: str
    #: the probability of its label; for an uncertain chip, of its closest class
    probability: float
    #: its best typed class's relevance against unrelated text (None without typed classes)
    relevance: float | None
    #: the ground it labels: its footprint in the AOI less finer chips' (None without a georeference, empty
    #: when finer chips cover it all)
    piece: MultiPolygon | None
    area_km2: float | None


@dataclass(frozen=True)
class LabelLayer:
    """Every chip of the library or an AOI labelled, and each class's chips and area."""

    #: the classes in the legend's order: typed, then detectors, then :data:`UNCERTAIN`
    classes: tuple[LayerClass, ...]
    chips: tuple[LabelledChip, ...]
    model_id: str
    #: whether typed classes were cut at a calibration fitted on held-out data (else nothing is uncertain
    #: for them); None without typed classes
    calibrated: bool | None
    label_z: float | None
    aoi: BaseGeometry | None = None

    @property
    def covered_km2(self) -> float:
        """The ground the layer labels: the union of the chips' footprints (in the AOI), in km²."""
        return sum(c.area_km2 for c in self.classes)

    @property
    def pixel_space_chips(self) -> int:
        """Chips of images without a georeference: labelled, but on no map and in no area."""
        return sum(1 for c in self.chips if c.chip.pixel_space)

    def rows(self) -> list[dict[str, object]]:
        """One row per class for a table: class, kind, chips, km² and share of the covered ground."""
        total = self.covered_km2
        return [
            {
                "class": c.name,
                "kind": c.kind,
                "chips": c.chips,
                "km2": round(c.area_km2, 6),
                "share": round(c.area_km2 / total, 4) if total > 0 else 0.0,
            }
            for c in self.classes
        ]

    def table(self) -> ExportTable:
        """The layer as an export: each chip that labels ground, geometry the ground it labels (EPSG:4326);
        chips without a georeference as rows without geometry."""
        kept = [c for c in self.chips if c.piece is None or not c.piece.is_empty]
        rows = tuple(
            ExportRow(
                {
                    "label": c.label,
                    "probability": round(c.probability, 6),
                    "relevance": None if c.relevance is None else round(c.relevance, 3),
                    "area_km2": None if c.area_km2 is None else round(c.area_km2, 9),
                    **chip_place(c.chip),
                },
                c.piece,
                c.chip.chip_id,
            )
            for c in kept
        )
        columns = (*VALUE_COLUMNS, *PLACE_COLUMNS, *ID_COLUMNS)
        return ExportTable("labels", columns, rows, geometry_type="MultiPolygon", wkt_column="footprint_wkt")

    def context(self) -> ExportContext:
        """What an export of the layer records: the classes asked, the model, the cut-off, the AOI."""
        names = ", ".join(c.name for c in self.classes if c.kind != UNCERTAIN)
        cut = self.label_z if self.calibrated else None
        return ExportContext.now(f"label layer: {names}", self.model_id, threshold=cut, aoi=self.aoi)


def layer_classes(text: str, detector_names: Sequence[str] = ()) -> list[str]:
    """Typed classes from comma- or newline-separated ``text``: any number beside saved detectors (even
    one or none), else at least two."""
    return parse_labels(text, minimum=0 if detector_names else 2)


def label_library(
    index: ChipIndex,
    classes: Sequence[str] = (),
    detector_names: Sequence[str] = (),
    *,
    model: LoadedModel | None = None,
    calibration: Calibration | None = None,
    aoi: BaseGeometry | None = None,
    batch_size: int = SCAN_BATCH,
    on_progress: Callable[[int, int], None] | None = None,
) -> LabelLayer:
    """Label every chip of ``index`` (meeting ``aoi``, EPSG:4326) with ``classes`` (typed, zero-shot with
    ``model``) and the saved detectors ``detector_names``, as the module docstring says.

    Reads the chips and their embeddings ``batch_size`` at a time, calling ``on_progress(done, total)`` after
    each batch.
    """
    classes = [name.strip() for name in classes]
    detectors = [get_detector(index, name) for name in detector_names]
    names = [*classes, *(d.name for d in detectors)]
    if not names:
        raise InputError("type classes (e.g. 'forest, farmland, water') or pick saved detectors to label with")
    clash = {name for name in names if names.count(name) > 1 or name == UNCERTAIN}
    if clash:
        raise InputError(
            f"class names must differ from each other and from {UNCERTAIN!r}: {', '.join(sorted(clash))}"
        )
    for detector in detectors:
        check_model(index, detector)
    weights = None
    if classes:
        if model is None:
            raise InputError("typed classes need the model that encodes them; give a model")
        index.check_model(model.model_id)
        calibration = calibration or load_calibration(model)
        weights = build_classifier(model, classes)
    where = index.aoi_where(aoi.bounds) if aoi is not None else None
    total = index.count_rows(where)
    inside = prep(aoi) if aoi is not None else None
    labelled: list[tuple[Chip, int, float, float | None, BaseGeometry | None]] = []
    done = 0
    if total:
        for chips, vectors in index.scan(where, batch_size=batch_size):
            found = _label_batch(l2_normalize(vectors), len(classes), detectors, weights, model, calibration)
            for chip, (label, probability, z) in zip(chips, found, strict=True):
                clip = None if chip.pixel_space else chip.footprint
                if aoi is not None and inside is not None:
                    if not inside.intersects(chip.footprint):
                        continue
                    clip = chip.footprint.intersection(aoi)
                    if clip.area <= 0:  # touches the AOI's edge only
                        continue
                labelled.append((chip, label, probability, z, clip))
            done += len(chips)
            if on_progress is not None:
                on_progress(done, total)
    pieces = _ground_pieces([clip for *_, clip in labelled], [chip for chip, *_ in labelled])
    chips_out = tuple(
        LabelledChip(
            chip=chip,
            label=names[label] if label >= 0 else UNCERTAIN,
            probability=probability,
            relevance=z,
            piece=piece,
            area_km2=None if piece is None else geodesic_km2(piece),
        )
        for (chip, label, probability, z, _), piece in zip(labelled, pieces, strict=True)
    )
    kinds = [*([TEXT] * len(classes)), *([DETECTOR] * len(detectors)), UNCERTAIN]
    legend = tuple(
        LayerClass(
            name=name,
            kind=kind,
            chips=sum(1 for c in chips_out if c.label == name),
            area_km2=sum(c.area_km2 or 0.0 for c in chips_out if c.label == name),
        )
        for name, kind in zip([*names, UNCERTAIN], kinds, strict=True)
    )
    model_id = model.model_id if model is not None else detectors[0].model_id
    return LabelLayer(
        classes=legend,
        chips=chips_out,
        model_id=model_id,
        calibrated=calibration.fitted if calibration is not None and classes else None,
        label_z=calibration.label_z if calibration is not None and classes else None,
        aoi=aoi,
    )


def _label_batch(
    vectors: np.ndarray,
    typed: int,
    detectors: Sequence[Detector],
    weights: np.ndarray | None,
    model: LoadedModel | None,
    calibration: Calibration | None,
) -> list[tuple[int, float, float | None]]:
    """(class index or -1 for uncertain, probability, relevance) of each chip: detectors first, then the
    typed classes by zero-shot (indexes ``0..typed-1`` typed, then the detectors)."""
    n = len(vectors)
    rows = np.arange(n)
    label = np.full(n, -1)
    probability = np.zeros(n)
    relevance: np.ndarray | None = None
    if detectors:
        p = np.stack([d.probe.probability(vectors) for d in detectors], axis=1)
        accepted = p >= np.array([d.threshold for d in detectors])
        best = np.where(accepted, p, -1.0).argmax(axis=1)
        hit = accepted.any(axis=1)
        label[hit] = typed + best[hit]
        probability = np.where(hit, p[rows, best], p.max(axis=1))
    if weights is not None and model is not None and calibration is not None:
        found = zero_shot_labels(vectors, weights, model, calibration)
        rest = label < 0
        label[rest & found.matched] = found.best[rest & found.matched]
        probability = np.where(rest, found.probabilities[rows, found.best], probability)
        relevance = found.relevance
    return [
        (int(label[i]), float(probability[i]), None if relevance is None else float(relevance[i]))
        for i in range(n)
    ]


def _ground_pieces(clips: Sequence[BaseGeometry | None], chips: Sequence[Chip]) -> list[MultiPolygon | None]:
    """Each chip's ``clip`` less the clips of the chips finer than it (see the module docstring): pieces of
    ground that cover the clips' union once. None stays None (no georeference)."""
    placed = [i for i, clip in enumerate(clips) if clip is not None]
    out: list[MultiPolygon | None] = [None] * len(clips)
    if not placed:
        return out
    geoms = np.array([clips[i] for i in placed], dtype=object)
    order = sorted(
        range(len(placed)),
        key=lambda j: (chips[placed[j]].gsd_m or np.inf, chips[placed[j]].level, chips[placed[j]].chip_id),
    )
    rank = np.empty(len(placed), dtype=int)
    rank[order] = np.arange(len(placed))
    later, earlier = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    keep = rank[earlier] < rank[later]
    later, earlier = later[keep], earlier[keep]
    # interiors meet (not only edges or corners)
    keep = shapely.relate_pattern(geoms[later], geoms[earlier], "T********")
    later, earlier = later[keep], earlier[keep]
    finer: dict[int, list[int]] = {}
    for j, k in zip(later.tolist(), earlier.tolist(), strict=True):
        finer.setdefault(j, []).append(k)
    for j, i in enumerate(placed):
        clip = geoms[j]
        piece = clip.difference(shapely.union_all(geoms[finer[j]])) if j in finer else clip
        parts = [p for p in _polygons(piece) if p.area > SLIVER * clip.area]
        out[i] = shapely.orient_polygons(MultiPolygon(parts))
    return out


def _polygons(geometry: BaseGeometry) -> list[Polygon]:
    """The polygons of any geometry (lines and points, what a difference may leave at edges, dropped)."""
    if isinstance(geometry, Polygon):
        return [] if geometry.is_empty else [geometry]
    return [p for part in getattr(geometry, "geoms", ()) for p in _polygons(part)]


def geodesic_km2(geometry: BaseGeometry) -> float:
    """The geodesic area on the WGS84 ellipsoid of a lon/lat (multi)polygon, exteriors counter-clockwise."""
    area, _ = GEOD.geometry_area_perimeter(geometry)
    return abs(area) / 1e6
