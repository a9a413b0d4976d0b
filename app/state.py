"""The app's settings, the one cached accessor each for the model, its object locator and the chip index.

The model is the one chosen in the sidebar (:data:`MODEL_KEY`, :func:`model_options`), by default the library's;
the chip index is that model's table of the library (``tiles.index.index_for_model``), and every cached result
is kept per model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import shapely
import streamlit as st

from pipelines.services.aoi_objects import AoiObjects, locate_in_aoi
from pipelines.services.change import ChangeReport, DatedScene, Direction, compare_dates, date_groups
from pipelines.services.classify import SceneClassification, classify_scene
from pipelines.services.count import AoiCount, count_in_aoi
from pipelines.services.detectors import list_detectors
from pipelines.services.label_layer import LabelLayer, label_library
from pipelines.services.locate import score_floor
from pipelines.services.search import LibraryScale, library_scale
from pipelines.services.settings import AppSettings
from remoteclip.calibration import Calibration, load_calibration
from remoteclip.errors import InputError, ModelNotFoundError, WeightsError
from remoteclip.factory import LoadedModel, load_model
from remoteclip.locator import ObjectLocator, load_locator
from remoteclip.pretrained import DEFAULT_MODEL, REGISTRY, cached_weights
from tiles.index.chip_index import ChipIndex, SceneSummary, index_for_model, library_models

#: the sidebar's model choice: a registry name, or :data:`STARTED_WITH` (the model the app was started with)
MODEL_KEY = "model_choice"
STARTED_WITH = "started-with"


def settings() -> AppSettings:
    """Settings passed by ``remoteclip-explorer app`` through the environment."""
    return AppSettings.from_env()


@dataclass(frozen=True)
class ModelOption:
    """One entry of the model picker: what ``load_model`` is given, and how the picker shows it."""

    key: str
    name: str | None
    weights: Path | None
    label: str
    #: its weights are here (shipped, cached, or given as a path), so choosing it loads without a download
    ready: bool = True


def model_options() -> list[ModelOption]:
    """The model the app was started with, then every registry model (shipped, cached or not cached)."""
    cfg = settings()
    started = cfg.model_name or DEFAULT_MODEL
    options = []
    if cfg.weights is not None or started not in REGISTRY:
        options.append(ModelOption(STARTED_WITH, cfg.model_name, cfg.weights, f"{Path(started).name} · started with"))
    for entry in REGISTRY.values():
        ready = cached_weights(entry) is not None
        availability = ("shipped" if isinstance(entry.source, str) else "cached") if ready else "not cached"
        options.append(ModelOption(entry.name, entry.name, None, f"{entry.name} · {availability}", ready))
    return options


def default_model_key(options: Sequence[ModelOption]) -> str:
    """The library's model when the picker offers it ready to load (shipped or cached), else the one started with."""
    ready = {option.key for option in options if option.ready}
    started = next((option.key for option in options if option.key == STARTED_WITH), None)
    for model_id in library_model_ids():
        name = model_id.rsplit("@", 1)[0]
        if name in ready and (started is None or name != settings().model_name):
            return name
    return started or (settings().model_name or DEFAULT_MODEL)


def chosen_option() -> ModelOption:
    """The picker's choice (before the picker has run: the default)."""
    options = model_options()
    key = st.session_state.get(MODEL_KEY) or default_model_key(options)
    return next((option for option in options if option.key == key), options[0])


def get_model() -> LoadedModel:
    """The chosen model, loaded once per server process."""
    option = chosen_option()
    return _model(option.name, None if option.weights is None else str(option.weights), settings().backend)


@st.cache_resource(show_spinner="Loading the model…")
def _model(name: str | None, weights: str | None, backend: str | None) -> LoadedModel:
    """``load_model`` cached under its arguments (``backend`` None: ``load_model``'s default)."""
    return load_model(name, weights=Path(weights) if weights else None, backend=backend)


def library_model_ids() -> list[str]:
    """The models whose vectors the library holds (the first table's first)."""
    return library_models(settings().db_dir)


def get_locator() -> ObjectLocator | None:
    """The object locator trained for the model, or None when it has none (pages then use RemoteCount)."""
    return _locator(get_model().model_id)[0]


def no_locator_reason() -> str | None:
    """Why the model has no object locator (None when it has one)."""
    return _locator(get_model().model_id)[1]


@st.cache_resource(show_spinner="Loading the object locator…")
def _locator(model_id: str) -> tuple[ObjectLocator | None, str | None]:
    """The model's shipped locator and None, or None and why it could not be loaded; once per model."""
    try:
        return load_locator(get_model()), None
    except (ModelNotFoundError, WeightsError) as exc:
        return None, str(exc)


def get_calibration() -> Calibration:
    """How to read the model's scores (fitted by ``evaluate calibration``, else defaults)."""
    return _calibration(get_model().model_id)


@st.cache_resource(show_spinner=False)
def _calibration(model_id: str) -> Calibration:
    """``load_calibration`` once per model."""
    return load_calibration(get_model())


def get_library_scale() -> LibraryScale:
    """Where weak and strong matches start in this library, measured again when its chip count changes."""
    index = get_index()
    return _library_scale(index.uri, index.table_name, index.count_rows())


@st.cache_data(show_spinner="Measuring how unrelated text scores in this library…", max_entries=4)
def _library_scale(db_uri: str, table: str, chips: int) -> LibraryScale:
    """``library_scale`` cached under the library location, the model's table and its chip count."""
    return library_scale(get_index(), get_model(), get_calibration())


def get_index() -> ChipIndex:
    """The chosen model's chip index of the library (its own table when another model embedded the library)."""
    return _index(str(settings().db_dir), get_model().model_id)


@st.cache_resource
def _index(db_dir: str, model_id: str) -> ChipIndex:
    """The index of ``model_id`` in the library, opened once per server process and model."""
    return index_for_model(Path(db_dir), model_id)


def library_scenes() -> list[SceneSummary]:
    """The scenes of the library (recomputed only when the number of chips changes)."""
    index = get_index()
    return _scenes(index.uri, index.table_name, index.count_rows())


@st.cache_data(show_spinner=False, max_entries=4)
def _scenes(db_uri: str, table: str, chips: int) -> list[SceneSummary]:
    """``get_index().scenes()``, cached under the library location, the model's table and its chip count."""
    return get_index().scenes()


def classification(path: str, labels: tuple[str, ...]) -> SceneClassification:
    """``classify_scene`` of a stored upload (its name is a content hash), computed once per labels and model.

    Without the cache, every rerun (a map click, a toggle) would label every chip of the image again.
    """
    return _classification(path, labels, get_model().model_id)


@st.cache_data(show_spinner=False, max_entries=8)
def _classification(path: str, labels: tuple[str, ...], model_id: str) -> SceneClassification:
    """Cached under the upload, the labels and the model (the arguments)."""
    return classify_scene(Path(path), get_model(), list(labels), calibration=get_calibration())


def aoi_count(object_name: str, aoi: shapely.Geometry, level: int) -> AoiCount:
    """``count_in_aoi`` on the library, computed again only when the library's chip count changes."""
    index = get_index()
    return _aoi_count(object_name, shapely.to_wkb(aoi), level, index.table_name, index.count_rows())


@st.cache_data(show_spinner=False, max_entries=8)
def _aoi_count(object_name: str, aoi_wkb: bytes, level: int, table: str, chips: int) -> AoiCount:
    """Cached under the object, the AOI, the level, the model's table and its chip count (the arguments)."""
    return count_in_aoi(get_index(), get_model(), object_name, shapely.from_wkb(aoi_wkb), level=level)


def aoi_objects(object_name: str, aoi: shapely.Geometry) -> AoiObjects:
    """``locate_in_aoi`` on the library, to the slider's floor; again only when its chip count changes."""
    index = get_index()
    return _aoi_objects(object_name, shapely.to_wkb(aoi), index.table_name, index.count_rows())


@st.cache_data(show_spinner=False, max_entries=8)
def _aoi_objects(object_name: str, aoi_wkb: bytes, table: str, chips: int) -> AoiObjects:
    """Cached under the object, the AOI, the model's table and its chip count (the arguments)."""
    locator = get_locator()
    if locator is None:
        raise InputError(f"the model has no object locator: {no_locator_reason()}")
    return locate_in_aoi(
        get_index(),
        get_model(),
        locator,
        object_name,
        shapely.from_wkb(aoi_wkb),
        min_score=score_floor(locator),
    )


def label_layer(classes: tuple[str, ...], detectors: tuple[str, ...], aoi: shapely.Geometry | None) -> LabelLayer:
    """``label_library`` on the library (or ``aoi``), computed again only when the library's chip count or a
    picked detector (saved again under its name) changes."""
    index = get_index()
    saved = {s.name: s.created_at for s in list_detectors(index)}
    return _label_layer(
        classes,
        detectors,
        None if aoi is None else shapely.to_wkb(aoi),
        index.table_name,
        index.count_rows(),
        tuple(saved.get(name, "") for name in detectors),
    )


# a resource, not data: a whole library's layer is not copied (pickled) on every rerun; it is frozen
@st.cache_resource(show_spinner=False, max_entries=4)
def _label_layer(
    classes: tuple[str, ...],
    detectors: tuple[str, ...],
    aoi_wkb: bytes | None,
    table: str,
    chips: int,
    detector_versions: tuple[str, ...],
) -> LabelLayer:
    """Cached under the classes, the detectors and when they were saved, the AOI, the model's table and its chip
    count."""
    return label_library(
        get_index(),
        list(classes),
        list(detectors),
        model=get_model() if classes else None,
        calibration=get_calibration() if classes else None,
        aoi=None if aoi_wkb is None else shapely.from_wkb(aoi_wkb),
    )


#: comparisons kept for reruns (each holds two thumbnails a cell)
CHANGE_REPORTS = 4
_ChangeKey = tuple[tuple[str, ...], tuple[str, ...], bytes | None, str | None, Direction | None, str]


@st.cache_data(show_spinner=False, max_entries=8)
def scene_dates(paths: tuple[str, ...]) -> list[tuple[str, list[DatedScene]]]:
    """``date_groups`` of the scenes at ``paths``, read once per set of scenes."""
    return date_groups(Path(path) for path in paths)


def change_report(
    before: Sequence[str],
    after: Sequence[str],
    aoi: shapely.Geometry | None,
    query: str | None,
    direction: Direction | None,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[ChangeReport, float]:
    """``compare_dates`` with the app's model and the seconds it took (not loading the model), kept for the last
    :data:`CHANGE_REPORTS` comparisons.

    Not ``st.cache_data``: it would replay the progress bar that ``on_progress`` moves on every later rerun.
    """
    key: _ChangeKey = (
        tuple(before),
        tuple(after),
        None if aoi is None else shapely.to_wkb(aoi),
        (query or "").strip() or None,
        direction,
        get_model().model_id,
    )
    reports = _change_reports()
    if key not in reports:
        model = get_model()  # loaded before the clock starts
        started = time.perf_counter()
        report = compare_dates(
            [Path(p) for p in before],
            [Path(p) for p in after],
            model,
            aoi=aoi,
            query=key[3],
            direction=direction,
            on_progress=on_progress,
        )
        reports[key] = (report, time.perf_counter() - started)
        while len(reports) > CHANGE_REPORTS:
            reports.pop(next(iter(reports)))
    return reports[key]


@st.cache_resource(show_spinner=False)
def _change_reports() -> dict[_ChangeKey, tuple[ChangeReport, float]]:
    """The comparisons made by this server process, oldest first."""
    return {}
