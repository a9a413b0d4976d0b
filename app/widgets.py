"""Streamlit pieces several pages share: cached scene overviews and tiles, the AOI and zoom controls, the map."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import folium
import streamlit as st
from shapely.geometry.base import BaseGeometry
from streamlit_folium import st_folium

from app import maps, state
from pipelines.ingest.local import ingest_paths
from pipelines.ingest.plan import IngestSummary
from pipelines.services.export import feature, feature_collection, scene_name
from pipelines.services.map_view import library_view
from pipelines.services.overview import Overview, scene_overview
from pipelines.services.results import Bounds, pixel_map_footprint
from pipelines.services.tile_server import SceneTiles, TileServer, serve_tiles
from pipelines.services.uploads import Notice, ingest_notices
from remoteclip.errors import ExplorerError
from remoteclip.factory import LoadedModel
from tiles.aoi import aoi_from_geojson
from tiles.grid import ChipSpec
from tiles.index.chip_index import Chip, SceneSummary

#: what the map sends back to Python (panning and zooming do not rerun the page). Drawn shapes are read from
#: ``all_drawings``: ``last_active_drawing`` also changes when a result polygon is merely clicked.
MAP_RETURNS = ["last_object_clicked", "all_drawings"]
#: the "Zoom to" entry for the whole library (scene entries are scene ids)
LIBRARY = "library"

#: characters that markdown would act on in a message's file names (``*``, ``_``, ``[``, ``$``...)
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_\[\]<>#~$|])")


@st.cache_data(show_spinner=False, max_entries=128)
def overview(path: str) -> Overview | None:
    """The scene's map overview, computed once per file (None when the file cannot be read any more)."""
    try:
        return scene_overview(path)
    except ExplorerError:
        return None


@st.cache_resource(show_spinner=False)
def tile_server() -> TileServer:
    """The app's map tile server (:mod:`pipelines.services.tile_server`), started once per server process."""
    return serve_tiles(state.settings())


def scene_tiles(path: str) -> SceneTiles | None:
    """The scene's full-resolution map tiles (None, the reason shown once, when they cannot be served)."""
    try:
        return tile_server().register(path)
    except ExplorerError as exc:
        if st.session_state.get("tiles_error") != str(exc):
            st.session_state["tiles_error"] = str(exc)
            st.toast(f"Map tiles at full resolution are off: {exc}", icon=":material/warning:")
        return None


def imagery_layers(paths: Iterable[str]) -> list[maps.ImageLayer]:
    """Image layers of the georeferenced scenes among ``paths``: each overview, and its full-resolution tiles."""
    layers = []
    for path in dict.fromkeys(paths):
        found = overview(path)
        if found is not None and not found.pixel_space:
            layers.append(
                maps.ImageLayer(
                    name=scene_name(path),
                    image=found.image,
                    bounds=found.bounds,
                    mime=found.mime,
                    tiles=scene_tiles(path),
                )
            )
    return layers


def zoom_controls(
    scenes: Iterable[SceneSummary],
    key: str,
    *,
    default: Bounds | None = None,
    default_label: str | None = None,
) -> Bounds | None:
    """A sidebar "Zoom to" box: the page's own view (``default_label``), the whole library, or one scene.

    Returns the bounds to open the map on: ``default`` for the page's view (the whole library while that is
    None), else the choice (None only for a library with no georeferenced scene). The whole library fits its
    georeferenced scenes, or, when they lie far apart, its scene with the most chips (a caption says so).
    Streamlit keeps a choice by its label, so every label is unique and the page's own entry keeps its label.
    """
    located = {scene.scene_id: scene for scene in scenes if not scene.pixel_space}
    whole = library_view(list(located.values()))
    if whole is None:
        return default
    names = [scene_name(scene.scene_path) for scene in located.values()]
    labels: dict[str | None, str] = {
        scene_id: name if names.count(name) == 1 else scene.scene_path
        for (scene_id, scene), name in zip(located.items(), names)
    }
    labels[LIBRARY] = "whole library"
    if default_label is not None:
        labels[None] = default_label
    choice = st.sidebar.selectbox(
        "Zoom to",
        [*([None] if default_label is not None else []), LIBRARY, *located],
        format_func=labels.__getitem__,
        key=key,
        help="Open the map on one scene, or on the whole library.",
    )
    if choice is None and default is not None:
        return default
    if choice not in (None, LIBRARY):
        return located[choice].extent
    if whole.focus is not None:
        st.sidebar.caption(
            f"The library's scenes lie far apart: the map opens on {scene_name(whole.focus.scene_path)}, "
            "the one with the most chips. Pick another scene above."
        )
    return whole.bounds


def aoi_controls(key: str) -> BaseGeometry | None:
    """Sidebar controls for the page's AOI (upload a GeoJSON, clear it); returns the current AOI."""
    st.sidebar.subheader("Area of interest")
    upload = st.sidebar.file_uploader(
        "Upload a GeoJSON (EPSG:4326)", type=["geojson", "json"], key=f"{key}_file"
    )
    if upload is not None and st.session_state.get(f"{key}_file_id") != upload.file_id:
        st.session_state[f"{key}_file_id"] = upload.file_id
        try:
            st.session_state[key] = aoi_from_geojson(json.loads(upload.getvalue()))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            st.sidebar.error(f"{upload.name} is not JSON ({exc}); upload a GeoJSON file")
        except ExplorerError as exc:
            st.sidebar.error(str(exc))
    aoi = st.session_state.get(key)
    if aoi is None:
        st.sidebar.caption(
            "Draw a rectangle or polygon on the map (tools at its top left), or upload a GeoJSON."
        )
    else:
        minx, miny, maxx, maxy = aoi.bounds
        st.sidebar.caption(f"AOI: {minx:.5f}, {miny:.5f} → {maxx:.5f}, {maxy:.5f}")
        if st.sidebar.button("Clear AOI", key=f"{key}_clear", icon=":material/close:"):
            del st.session_state[key]
            st.rerun()
    return aoi


def aoi_layer(fmap: folium.Map, aoi: BaseGeometry | None) -> None:
    """Outline the AOI on the map."""
    if aoi is not None:
        maps.add_geojson_layer(
            fmap, feature_collection([feature(aoi)]), name="AOI", color=maps.AOI_COLOR, fill_opacity=0.0
        )


def show_map(fmap: folium.Map, key: str, height: int = 560) -> Mapping[str, Any]:
    """Render the map; returns what the analyst did on it (clicks, drawings)."""
    return (
        st_folium(
            maps.finish_map(fmap),
            key=key,
            height=height,
            use_container_width=True,
            returned_objects=MAP_RETURNS,
        )
        or {}
    )


def aoi_map(fmap: folium.Map, aoi: BaseGeometry | None, *, key: str, aoi_key: str, caption: str = "") -> Any:
    """Show ``fmap`` with the AOI outlined and the draw tool, a narrow column beside it for a legend (returned);
    the shape last drawn becomes the AOI in ``st.session_state[aoi_key]``. ``caption`` goes under the map."""
    aoi_layer(fmap, aoi)
    maps.add_draw_control(fmap)
    map_column, legend_column = st.columns([6, 1])
    with map_column:
        map_state = show_map(fmap, key=key)
        if caption:
            st.caption(caption)
    take_drawn_aoi(map_state, aoi_key)
    return legend_column


def take_drawn_aoi(map_state: Mapping[str, Any], key: str) -> None:
    """Make the shape last drawn on the map the page's AOI (and rerun so results follow it)."""
    drawings = map_state.get("all_drawings")
    if not drawings or st.session_state.get(f"{key}_drawn") == drawings[-1]:
        return
    st.session_state[f"{key}_drawn"] = drawings[-1]
    try:
        st.session_state[key] = aoi_from_geojson(drawings[-1])
    except ExplorerError as exc:
        st.error(str(exc))
        return
    st.rerun()


def model_picker() -> LoadedModel | None:
    """The sidebar's model picker (the library's model pre-selected, the others marked cached / not cached) and,
    when the chosen model has no vectors in the library, what to run to embed it for that model.

    Returns the loaded model, or None (the reason shown) when it cannot be loaded.
    """
    options = {option.key: option for option in state.model_options()}
    st.sidebar.selectbox(
        "Model",
        list(options),
        index=list(options).index(state.default_model_key(list(options.values()))),
        format_func=lambda key: options[key].label,
        key=state.MODEL_KEY,
        help="The model that embeds queries, uploads and new imagery. A library is searched with the model that "
        "embedded it; another model needs the library embedded again (a table of its own beside the old).",
    )
    try:
        model = state.get_model()
    except ExplorerError as exc:
        st.sidebar.error(f"This model cannot be loaded: {exc}")
        return None
    library = state.library_model_ids()
    if library and model.model_id not in library:
        option = state.chosen_option()
        command = f"remoteclip-explorer ingest SCENES --db {state.settings().db_dir} --model {option.name or option.key}"
        if option.weights is not None:
            command += f" --weights {option.weights}"
        st.warning(
            f"This library was embedded by {', '.join(f'`{m}`' for m in library)}, not by `{model.model_id}`: "
            f"its chips cannot be searched with this model until the library is embedded again for it. Run "
            f"`{command}` (a new table beside the old one; both stay), or choose the library's model.",
            icon=":material/sync_problem:",
        )
    return model


def ingest_with_progress(
    paths: list[str],
    spec: ChipSpec,
    names: Mapping[str, str] | None = None,
    rejected: Sequence[str] = (),
) -> list[Notice] | None:
    """Ingest ``paths`` into the library with a progress bar; ``None`` (error shown) if it could not start.

    Returns what happened (:func:`~pipelines.services.uploads.ingest_notices`: ``names`` are the names stored
    uploads were uploaded as, ``rejected`` the refused uploads), also kept with the finished bar's text in
    ``st.session_state["library_message"]`` for the Library page to show after it reruns.
    """
    bar = st.progress(0.0, text="Reading chips…")
    try:
        summary = (
            ingest_paths(
                paths,
                state.get_index(),
                state.get_model(),
                spec,
                progress=False,
                on_progress=lambda done, total: _show_progress(bar, done, total),
            )
            if paths
            else IngestSummary()
        )
    except ExplorerError as exc:
        st.error(str(exc))
        return None
    finished = f"Ingest finished: {summary.scenes} scenes, {summary.chips} chips added"
    bar.progress(1.0, text=finished)
    notices = ingest_notices(summary, names, rejected)
    st.session_state["library_message"] = (finished, notices)
    return notices


def show_notices(notices: Iterable[Notice]) -> None:
    """Each notice as an ``st.success`` / ``st.info`` / ``st.warning`` / ``st.error``, its text not markdown."""
    show = {"success": st.success, "info": st.info, "warning": st.warning, "error": st.error}
    for notice in notices:
        show[notice.kind](_MARKDOWN_PUNCTUATION.sub(r"\\\1", notice.text))


def _show_progress(bar: Any, done: int, total: int) -> None:
    """Move an ``st.progress`` bar to ``done`` of ``total`` chips."""
    bar.progress(done / max(total, 1), text=f"{done} / {total} chips")


def chip_in_image(chip: Chip, key: str) -> None:
    """A map of a whole image without coordinates (pixel space) with ``chip``'s window outlined."""
    found = overview(chip.scene_path)
    if found is None:
        st.warning(f"{scene_name(chip.scene_path)} cannot be read any more, so it cannot be shown.")
        return
    fmap = maps.offline_map(found.bounds, pixel_space=True)
    maps.add_image_layers(
        fmap, [maps.ImageLayer(scene_name(chip.scene_path), found.image, found.bounds, found.mime)]
    )
    maps.add_geojson_layer(
        fmap,
        pixel_map_footprint(chip),
        name="Hit",
        color=maps.HIT_COLOR,
        fill_opacity=0.0,
        tooltip_fields=("chip",),
    )
    show_map(fmap, key=key, height=480)
