"""Library page: the scenes in the index on the map and in a table; ingest a folder; delete a scene."""


import streamlit as st

from app import maps, state, widgets
from pipelines.services.demo_library import DEMO_SPEC
from pipelines.services.export import scene_name
from pipelines.services.results import extent, scenes_geojson, scenes_table
from tiles.grid import ChipSpec

st.title("Library")
if "library_message" in st.session_state:
    done, failures = st.session_state.pop("library_message")
    st.success(done)
    for failure in failures:
        st.warning(failure)
index = state.get_index()
scenes = state.library_scenes()

first, second, third = st.columns(3)
first.metric("Scenes", len(scenes))
second.metric("Chips", sum(s.chips for s in scenes))
third.metric("Model", index.model_id or state.get_model().model_id)

located = {s.scene_id: s for s in scenes if not s.pixel_space}
focus = st.sidebar.selectbox(
    "Show on the map",
    [None, *located],
    format_func=lambda scene_id: (
        "all scenes" if scene_id is None else scene_name(located[scene_id].scene_path)
    ),
)
fmap = maps.offline_map(
    located[focus].extent if focus else extent(s.extent for s in located.values()),
    online_basemap=st.sidebar.toggle("Online basemap (needs internet)", value=False),
)
maps.add_image_layers(fmap, widgets.imagery_layers(s.scene_path for s in scenes))
extents = scenes_geojson(scenes)
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

st.subheader("Ingest a folder")
with st.form("ingest"):
    folder = st.text_input("Folder, file or glob on the server", placeholder="/data/imagery/*.tif")
    chip_px = st.select_slider("Chip size (px)", options=[128, 192, 256, 384, 512], value=DEMO_SPEC.chip_px)
    levels = st.multiselect("Scale levels", [1, 2, 4], default=list(DEMO_SPEC.levels))
    submitted = st.form_submit_button("Ingest", icon=":material/upload:")
if submitted and folder.strip():
    spec = ChipSpec(chip_px=chip_px, levels=tuple(sorted(levels)))
    if widgets.ingest_with_progress([folder.strip()], spec) is not None:
        st.rerun()

st.subheader("Delete a scene")
if scenes:
    names = {s.scene_id: f"{scene_name(s.scene_path)} ({s.chips} chips)" for s in scenes}
    doomed = st.selectbox("Scene", list(names), format_func=names.__getitem__)
    confirmed = st.checkbox("Yes, remove its chips from the index (the image file stays)")
    if st.button("Delete scene", type="primary", disabled=not confirmed, icon=":material/delete:"):
        deleted = index.delete_scene(doomed)
        st.session_state["library_message"] = (f"Deleted {names[doomed]}: {deleted} chips", [])
        st.rerun()
