"""Search page: type what to find; hits appear as footprints over the imagery and as a ranked list."""

import streamlit as st

from app import downloads, maps, state, widgets
from pipelines.services.export import ExportContext, hits_geojson, hits_table
from pipelines.services.results import focus_bounds, hit_at, merge_regions
from pipelines.services.search import EXAMPLE_QUERIES, search_like, search_text
from remoteclip.errors import ExplorerError

AOI_KEY = "search_aoi"
LIKE_KEY = "search_like"
COLUMNS = 4

st.title("Search imagery in plain English")
index, model = state.get_index(), state.get_model()

with st.sidebar:
    st.subheader("Results")
    k = st.slider("Top k", 1, 200, 24, help="How many chips to return.")
    threshold = st.slider(
        "Score threshold", 0.0, 1.0, 0.0, 0.01, help="Hide hits with a lower cosine score (0 shows all)."
    )
    show_regions = st.toggle("Merge neighbouring hits into regions", value=True)
    show_imagery = st.toggle("Show imagery", value=True)
    online = st.toggle("Online basemap (needs internet)", value=False)
aoi = widgets.aoi_controls(AOI_KEY)


def use_example(text: str) -> None:
    st.session_state["query"] = text
    st.session_state.pop(LIKE_KEY, None)


query = st.text_input(
    "What are you looking for?",
    key="query",
    placeholder="e.g. ships in a harbor",
    on_change=lambda: st.session_state.pop(LIKE_KEY, None),
)
example_cols = st.columns(len(EXAMPLE_QUERIES) // 2)
for i, example in enumerate(EXAMPLE_QUERIES):
    example_cols[i % len(example_cols)].button(
        example, key=f"example_{i}", on_click=use_example, args=(example,), width="stretch", type="tertiary"
    )

like = st.session_state.get(LIKE_KEY)
hits = []
try:
    if like:
        hits = search_like(index, like, k=k, aoi=aoi)
        st.info(f"Showing chips that look like chip `{like}`.")
        st.button("Back to the text search", on_click=lambda: st.session_state.pop(LIKE_KEY, None))
    elif query.strip():
        hits = search_text(index, model, query, k=k, aoi=aoi)
except ExplorerError as exc:
    st.error(str(exc))
if threshold > 0:
    hits = [hit for hit in hits if hit.score >= threshold]

if hits and all(hit.pixel_space for hit in hits):
    st.caption(
        f"None of these {len(hits)} hits is georeferenced (their images have no CRS): "
        "they are listed below the map, not drawn on it."
    )
bounds = focus_bounds(hits) or (aoi.bounds if aoi else None)
fmap = maps.offline_map(
    widgets.zoom_controls(
        state.library_scenes(), "search_zoom", default=bounds, default_label="the best hits or the AOI"
    ),
    online_basemap=online,
)
if show_imagery:
    scene_paths = [hit.scene_path for hit in hits] or [s.scene_path for s in state.library_scenes()]
    maps.add_image_layers(fmap, widgets.imagery_layers(scene_paths))
collection = hits_geojson(hits)
if show_regions and hits:
    maps.add_geojson_layer(
        fmap,
        merge_regions(hits),
        name="Regions",
        color=maps.REGION_COLOR,
        fill_opacity=0.05,
        tooltip_fields=("hits", "best_score"),
    )
maps.add_geojson_layer(fmap, collection, name="Hits", tooltip_fields=("rank", "score", "scene_path"))
widgets.aoi_layer(fmap, aoi)
maps.add_draw_control(fmap)
map_state = widgets.show_map(fmap, key="search_map")
widgets.take_drawn_aoi(map_state, AOI_KEY)

clicked = map_state.get("last_object_clicked")
if clicked and clicked != st.session_state.get("search_clicked"):
    st.session_state["search_clicked"] = clicked
    picked = hit_at(hits, clicked["lng"], clicked["lat"])
    if picked is not None:
        st.session_state[LIKE_KEY] = picked.chip_id
        st.rerun()

if not hits:
    st.caption("No hits yet: type a query or pick an example." if not (query or like) else "No hits.")
    st.stop()

asked = f"more like chip {like}" if like else query
downloads.download_buttons(
    hits_table(hits), ExportContext.now(asked, model.model_id, threshold=threshold, aoi=aoi), key="hits"
)
st.subheader(f"{len(hits)} hits")
for start in range(0, len(hits), COLUMNS):
    for column, (rank, hit) in zip(
        st.columns(COLUMNS), enumerate(hits[start : start + COLUMNS], start=start + 1)
    ):
        with column.container(border=True):
            st.image(hit.thumbnail, width="stretch")
            lon, lat = hit.footprint.centroid.x, hit.footprint.centroid.y
            where = "not georeferenced" if hit.pixel_space else f"{lat:.5f}, {lon:.5f}"
            st.markdown(f"**#{rank}** · score **{hit.score:.3f}**", help=hit.chip_id)
            # file names as plain text, never markdown
            st.text(f"{hit.scene_path.rsplit('/', 1)[-1]} · level {hit.level}\n{where}")
            st.button(
                "More like this",
                key=f"like_{hit.chip_id}",
                icon=":material/image_search:",
                on_click=st.session_state.__setitem__,
                args=(LIKE_KEY, hit.chip_id),
            )
