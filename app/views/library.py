"""Library page: the scenes in the index on the map and in a table; add imagery (uploaded or on the server);
delete a scene."""

from typing import Any

import streamlit as st

from app import maps, state, widgets
from pipelines.services.demo_library import DEMO_SPEC
from pipelines.services.detectors import delete_detector, list_detectors
from pipelines.services.export import scene_name
from pipelines.services.results import scenes_geojson, scenes_table
from pipelines.services.uploads import ACCEPTED, MAX_UPLOAD_BYTES, store_uploads
from tiles.grid import ChipSpec


@st.cache_data(show_spinner=False, max_entries=4)
def scene_outlines(db_uri: str, chips: int) -> dict[str, Any]:
    """The scenes' true footprints (``scenes_geojson``), read again only when the library's chip count changes."""
    return scenes_geojson(state.library_scenes(), state.get_index())


st.title("Library")
index = state.get_index()
scenes = state.library_scenes()

first, second, third = st.columns(3)
first.metric("Scenes", len(scenes))
second.metric("Chips", sum(s.chips for s in scenes))
model_id = index.model_id or state.get_model().model_id
third.metric("Model", model_id.split("@")[0], help=f"The library's vectors are made by {model_id}")
st.caption(f"Model `{model_id}`")

fmap = maps.offline_map(
    widgets.zoom_controls(scenes, "library_zoom"),
    online_basemap=st.sidebar.toggle("Online basemap (needs internet)", value=False),
)
maps.add_image_layers(fmap, widgets.imagery_layers(s.scene_path for s in scenes))
extents = scene_outlines(f"{index.uri}#{index.table_name}", index.count_rows())
maps.add_geojson_layer(
    fmap,
    extents,
    name="Scene extents",
    color=maps.AOI_COLOR,
    fill_opacity=0.0,
    tooltip_fields=("scene", "chips", "crs", "gsd_m"),
)
maps.add_centre_markers(fmap, extents, name="Scenes", tooltip_fields=("scene", "chips", "crs", "gsd_m"))
widgets.show_map(fmap, key="library_map", height=480)

st.dataframe(
    scenes_table(scenes),
    hide_index=True,
    width="stretch",
    column_config={
        "gsd_m": st.column_config.NumberColumn("GSD (m)", format="%.3f"),
        "path": None,
        "scene_id": None,
    },
)

st.subheader("Add imagery")
if "library_message" in st.session_state:
    finished, notices = st.session_state.pop("library_message")
    st.progress(1.0, text=finished)
    widgets.show_notices(notices)
upload_dir = state.settings().uploads
uploads_key = f"library_uploads_{st.session_state.setdefault('library_uploads', 0)}"
with st.form("ingest"):
    files = st.file_uploader(
        f"Upload images: {ACCEPTED}; one or many, up to {MAX_UPLOAD_BYTES // 2**20} MB each",
        accept_multiple_files=True,
        key=uploads_key,
    )
    folder = st.text_input("…or a folder, file or glob on the server", placeholder="/data/imagery/*.tif")
    chip_px = st.select_slider("Chip size (px)", options=[128, 192, 256, 384, 512], value=DEMO_SPEC.chip_px)
    levels = st.multiselect("Scale levels", [1, 2, 4], default=list(DEMO_SPEC.levels))
    submitted = st.form_submit_button("Ingest", icon=":material/upload:")
st.caption(
    f"Uploads are stored on the server in `{upload_dir}`, named by their content: the same file uploaded "
    "again is stored once and not ingested twice."
)
if submitted and not files and not folder.strip():
    st.warning("Choose files to upload or name a folder on the server, then press Ingest.")
elif submitted:
    stored = store_uploads(((file.name, file.getvalue()) for file in files or []), upload_dir)
    paths = [*stored.paths, *([folder.strip()] if folder.strip() else [])]
    spec = ChipSpec(chip_px=chip_px, levels=tuple(sorted(levels)))
    if widgets.ingest_with_progress(paths, spec, stored.names, stored.rejected) is not None:
        st.session_state["library_uploads"] += 1  # a new, empty uploader for the next files
        st.rerun()

st.subheader("Detectors")
detectors = list_detectors(index) if index.table is not None else []
if detectors:
    st.dataframe(
        [
            {
                "name": d.name,
                "query": d.query,
                "marks": f"{d.positives} right, {d.negatives} wrong",
                "accepts at": d.threshold,
                "saved": d.created_at,
            }
            for d in detectors
        ],
        hide_index=True,
        width="stretch",
    )
    left, right = st.columns([3, 1])
    doomed_detector = left.selectbox("Detector", [d.name for d in detectors], key="detector_to_delete")
    if right.button("Delete detector", icon=":material/delete:"):
        delete_detector(index, doomed_detector)
        st.rerun()
    st.caption(
        "Run one on the Search page (“Run a saved detector”), or from the command line: "
        "`remoteclip-explorer detector apply NAME --db … --format gpkg`."
    )
else:
    st.caption(
        "No detectors yet: on the Search page, mark hits right or wrong, refine, and save the result as a detector."
    )

st.subheader("Delete a scene")
if "library_deleted" in st.session_state:
    st.success(st.session_state.pop("library_deleted"))
if scenes:
    names = {s.scene_id: f"{scene_name(s.scene_path)} ({s.chips} chips)" for s in scenes}
    doomed = st.selectbox("Scene", list(names), format_func=names.__getitem__)
    confirmed = st.checkbox("Yes, remove its chips from the index (the image file stays)")
    if st.button("Delete scene", type="primary", disabled=not confirmed, icon=":material/delete:"):
        deleted = index.delete_scene(doomed)
        st.session_state["library_deleted"] = f"Deleted {names[doomed]}: {deleted} chips"
        st.rerun()
