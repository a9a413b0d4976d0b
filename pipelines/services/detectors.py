"""Detectors that last: a refine probe saved under a name, applied to a whole library (or an AOI) later.

A detector is the :class:`~pipelines.services.refine.Probe` a refine fitted, with its query, marks, model and
a probability threshold, kept in the library's ``detectors`` table (:mod:`tiles.index.detector_table`).
Applying it needs no model: the chips' embeddings are stored. A chip at or above the threshold reaches
a score (:meth:`Probe.score_at`) that a chip found by none of the searches of the probe's direction and of its
exemplars cannot reach once their last cosines are low enough, so :func:`apply_detector` searches the index with
each of them for k = 256, 512, ... chips until then (:func:`pipelines.services.refine.search_probe`), and keeps
the chips whose probability reaches the threshold: a few ANN searches, never a scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime

import numpy as np
from shapely.geometry.base import BaseGeometry

from pipelines.services.export import ExportTable, chips_table
from pipelines.services.refine import Probe, search_probe
from remoteclip.errors import InputError
from tiles.index.chip_index import ChipIndex, Hit, sql_str
from tiles.index.detector_table import DetectorSummary, DetectorTable, StoredDetector
from tiles.index.errors import ChipIndexError

#: the probability a new detector's detections start at
DEFAULT_THRESHOLD = 0.5
#: chips fetched by the first search of :func:`apply_detector`, doubled until the threshold is passed
FIRST_K = 256


@dataclass(frozen=True, eq=False)  # eq=False: arrays do not compare to one bool
class Detector(StoredDetector):
    """A saved probe with what made it; :attr:`probe` scores chips."""

    @property
    def probe(self) -> Probe:
        """The probe: ``P(right) = sigmoid(scale * score(chip) + bias)`` (:class:`Probe`)."""
        return Probe(
            direction=self.direction,
            scale=self.scale,
            bias=self.bias,
            exemplars=self.exemplars,
            exemplar_weight=self.exemplar_weight,
        )


@dataclass(frozen=True)
class Detection:
    """A chip a detector found, and its probability of being right."""

    hit: Hit
    probability: float


def _threshold(value: float) -> float:
    value = float(value)
    if not 0.0 < value < 1.0:
        raise InputError(f"a detector's threshold is a probability between 0 and 1 (exclusive), not {value}")
    return value


def make_detector(
    name: str,
    query: str,
    probe: Probe,
    positive_ids: Sequence[str],
    negative_ids: Sequence[str],
    model_id: str,
    threshold: float = DEFAULT_THRESHOLD,
) -> Detector:
    """A detector named ``name`` from a fitted ``probe`` and the marks it was fitted on, made now."""
    name = name.strip()
    if not name or "\n" in name:
        raise InputError("a detector needs a name of one line, such as 'solar farms'")
    return Detector(
        name=name,
        query=query,
        positive_ids=tuple(positive_ids),
        negative_ids=tuple(negative_ids),
        direction=np.asarray(probe.direction, dtype=np.float32).reshape(-1),
        scale=float(probe.scale),
        bias=float(probe.bias),
        threshold=_threshold(threshold),
        model_id=model_id,
        created_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
        exemplars=np.asarray(probe.exemplars, dtype=np.float32),
        exemplar_weight=float(probe.exemplar_weight),
    )


def check_model(index: ChipIndex, detector: Detector) -> None:
    """Refuse a detector made on the embeddings of another model than the library's."""
    library = index.model_id
    if library is not None and library != detector.model_id:
        raise ChipIndexError(
            f"detector {detector.name!r} was made with model {detector.model_id!r}, but {index.uri} holds "
            f"vectors of model {library!r}; save it again from marks on this library"
        )


def save_detector(index: ChipIndex, detector: Detector) -> None:
    """Keep ``detector`` in the library of ``index`` (replacing one of the same name)."""
    check_model(index, detector)
    DetectorTable(index).save(detector)


def list_detectors(index: ChipIndex) -> list[DetectorSummary]:
    """The detectors saved in the library, by name."""
    return DetectorTable(index).list()


def get_detector(index: ChipIndex, name: str) -> Detector:
    """The detector saved as ``name``; a missing one raises :class:`ChipIndexError` naming the saved ones."""
    stored = DetectorTable(index).get(name)
    return Detector(**{f.name: getattr(stored, f.name) for f in fields(StoredDetector)})


def delete_detector(index: ChipIndex, name: str) -> None:
    """Delete the detector saved as ``name``."""
    DetectorTable(index).delete(name)


def apply_detector(
    index: ChipIndex,
    detector: Detector,
    aoi: BaseGeometry | None = None,
    threshold: float | None = None,
    scene_ids: Sequence[str] | None = None,
) -> list[Detection]:
    """Every chip of the library (touching ``aoi``, of the scenes ``scene_ids``, when given) whose probability is
    at least ``threshold`` (default: the detector's), most probable first."""
    check_model(index, detector)
    cut = detector.threshold if threshold is None else _threshold(threshold)
    probe = detector.probe
    if scene_ids is not None and not scene_ids:
        return []
    where = None if scene_ids is None else f"scene_id IN ({', '.join(sql_str(s) for s in scene_ids)})"
    hits = search_probe(index, probe, k=FIRST_K, aoi=aoi, where=where, min_score=probe.score_at(cut))
    scored = ((hit, float(probe.logistic(hit.score))) for hit in hits)
    return [Detection(hit, p) for hit, p in scored if p >= cut]


def scenes_since_saved(index: ChipIndex, detector: Detector) -> list[str]:
    """The scenes ingested into ``index`` after ``detector`` was saved (what ``apply --new`` runs over)."""
    return index.scenes_added_since(datetime.fromisoformat(detector.created_at))


def detections_table(detections: Sequence[Detection]) -> ExportTable:
    """Detections as an export of their footprints: rank and probability first, then where each chip is."""
    values = [{"rank": rank, "probability": round(d.probability, 6)} for rank, d in enumerate(detections, 1)]
    return chips_table("detections", [d.hit for d in detections], values, ("rank", "probability"))
