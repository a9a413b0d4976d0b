"""Streamlit pieces several pages share: cached scene overviews, the AOI controls and the map component."""

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
from pipelines.services.overview import Overview, scene_overview
from pipelines.services.uploads import Notice, ingest_notices
from remoteclip.errors import ExplorerError
from tiles.aoi import aoi_from_geojson
from tiles.grid import ChipSpec

#: what the map sends back to Python (panning and zooming do not rerun the page). Drawn shapes are read from
#: ``all_drawings``: ``last_active_drawing`` also changes when a result polygon is merely clicked.
MAP_RETURNS = ["last_object_clicked", "all_drawings"]

#: characters that markdown would act on in a message's file names (``*``, ``_``, ``[``, ``$``...)
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_\[\]<>#~$|])")


@st.cache_data(show_spinner=False, max_entries=128)
def overview(path: str) -> Overview | None:
    """The scene's map overview, computed once per file (None when the file cannot be read any more)."""
    try:
        return scene_overview(path)
    except ExplorerError:
        return None


def imagery_layers(paths: Iterable[str]) -> list[maps.ImageLayer]:
    """Overview image layers of the georeferenced scenes among ``paths``."""
    layers = []
    for path in dict.fromkeys(paths):
        found = overview(path)
        if found is not None and not found.pixel_space:
            layers.append(
                maps.ImageLayer(
                    name=scene_name(path), image=found.image, bounds=found.bounds, mime=found.mime
                )
            )
    return layers


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
        maps.add_geojson_layer(fmap, feature_collection([feature(aoi)]), name="AOI", color=maps.AOI_COLOR, fill_opacity=0.0)


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
