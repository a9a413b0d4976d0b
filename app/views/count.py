"""Count page: choose an object, draw or upload an AOI; see the total, a per-chip choropleth and the chips."""

import streamlit as st

from app import maps, state, widgets
from pipelines.services.count import COMMON_OBJECTS
from pipelines.services.results import extent
from remoteclip.errors import ExplorerError

AOI_KEY = "count_aoi"
OTHER = "other (type it)"

st.title("Count objects in an area")
scenes = state.library_scenes()

with st.sidebar:
    st.subheader("Object")
    choice = st.selectbox("What to count", [*COMMON_OBJECTS, OTHER], key="count_choice")
    object_name = (
        st.text_input("Object", key="count_typed", placeholder="e.g. swimming pools")
        if choice == OTHER
        else choice
    )
    levels = sorted({level for scene in scenes for level in scene.levels}) or [1]
    level = st.selectbox(
        "Chip scale level", levels, help="Counts use the non-overlapping chips of one level."
    )
    online = st.toggle("Online basemap (needs internet)", value=False)
aoi = widgets.aoi_controls(AOI_KEY)

result = None
if aoi is not None and object_name.strip():
    try:
        with st.spinner(f"Counting {object_name}…"):
            result = state.aoi_count(object_name, aoi, level)
    except ExplorerError as exc:
        st.error(str(exc))

if result is None:
    st.info(
        "Draw a rectangle or polygon on the map (tools at its top left) or upload a GeoJSON to count "
        f"{object_name or 'objects'} inside it."
    )
else:
    total, chips, share = st.columns(3)
    total.metric(
        f"Estimated {result.object_name}",
        f"{result.total:.0f}",
        help="Sum over chips of the RemoteCount estimate × the chip's share inside the AOI.",
    )
    chips.metric("Chips in the AOI", len(result.chips))
    share.metric("Chips with any", sum(1 for c in result.chips if c.count > 0))

georeferenced = [s for s in scenes if not s.pixel_space]
fmap = maps.offline_map(
    aoi.bounds if aoi is not None else extent(s.extent for s in georeferenced), online_basemap=online
)
maps.add_image_layers(fmap, widgets.imagery_layers(s.scene_path for s in georeferenced))
if result is not None and result.chips:
    per_chip = result.geojson()
    counts = [feature["properties"]["count"] for feature in per_chip["features"]]
    colored = maps.with_fill(per_chip, maps.value_colors(counts))
    maps.add_geojson_layer(
        fmap,
        colored,
        name=f"{result.object_name} per chip",
        color="#444444",
        fill_opacity=0.55,
        tooltip_fields=("count", "inside", "contribution", "scene"),
    )
widgets.aoi_layer(fmap, aoi)
maps.add_draw_control(fmap)
map_column, legend_column = st.columns([6, 1])
with map_column:
    map_state = widgets.show_map(fmap, key="count_map")
widgets.take_drawn_aoi(map_state, AOI_KEY)

if result is not None and result.chips:
    top = max(c.count for c in result.chips)
    steps = sorted({0, top // 2, top})
    legend_column.html(
        maps.legend_html(
            [(str(n), color) for n, color in zip(steps, maps.value_colors(steps, vmax=top))],
            title="count per chip",
        )
    )
    st.subheader("Chips inside the AOI")
    st.dataframe(
        result.rows(),
        hide_index=True,
        width="stretch",
        column_config={
            "inside": st.column_config.ProgressColumn(
                "share inside", min_value=0.0, max_value=1.0, format="%.2f"
            )
        },
    )
