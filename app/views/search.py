"""Search page: type what to find; hits appear as footprints over the imagery and as a ranked list.

Every text hit is rated strong / weak / no match on the library's own scale (pipelines.services.search), so a
query that matches nothing says so. Hits in images without coordinates keep their rank: the map shows the
georeferenced ones, the page says how many of the top hits are elsewhere, and each can be seen in its image.
"""

import streamlit as st

from app import downloads, maps, state, widgets
from pipelines.services.export import ExportContext, hits_geojson, hits_table
from pipelines.services.results import chip_label, focus_bounds, hit_at, merge_regions
from pipelines.services.search import EXAMPLE_QUERIES, RatedHit, rate_hits, search_like, search_text
from remoteclip.calibration import NO_MATCH, STRONG, WEAK
from remoteclip.errors import ExplorerError
from tiles.index.chip_index import Hit

AOI_KEY = "search_aoi"
LIKE_KEY = "search_like"
SHOW_KEY = "search_show"
IMAGE_KEY = "search_image"
COLUMNS = 4
#: which rated hits the list and the map show
SHOW_MODES = {
    "good": "Strong and weak matches",
    "strong": "Strong matches only",
    "all": "The closest k, however weak",
}
BAND_BADGES = {
    STRONG: ":green-badge[strong match]",
    WEAK: ":orange-badge[weak match]",
    NO_MATCH: ":gray-badge[no match]",
}

st.title("Search imagery in plain English")
index, model = state.get_index(), state.get_model()

with st.sidebar:
    st.subheader("Results")
    k = st.slider("Top k", 1, 200, 24, help="How many of the closest chips to look at.")
    show = st.radio(
        "Show",
        list(SHOW_MODES),
        format_func=SHOW_MODES.__getitem__,
        key=SHOW_KEY,
        help="A strong match describes a chip far better than unrelated text does; a weak one somewhat better; "
        "below that, a chip matches the query no better than nonsense would.",
    )
    show_regions = st.toggle("Merge neighbouring hits into regions", value=True)
    show_imagery = st.toggle("Show imagery", value=True)
    online = st.toggle("Online basemap (needs internet)", value=False)
aoi = widgets.aoi_controls(AOI_KEY)


def use_example(text: str) -> None:
    st.session_state["query"] = text
    st.session_state.pop(LIKE_KEY, None)


def more_like(hit: Hit, label: str) -> None:
    """Search for chips like ``hit``; ``label`` names it in the page's heading."""
    st.session_state[LIKE_KEY] = (hit.chip_id, label)


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
closest: list[Hit] = []
rated: list[RatedHit] = []
try:
    if like:
        closest = search_like(index, like[0], k=k, aoi=aoi)
        st.info(f"Showing chips that look like {like[1]}.")
        st.button("Back to the text search", on_click=lambda: st.session_state.pop(LIKE_KEY, None))
    elif query.strip():
        closest = search_text(index, model, query, k=k, aoi=aoi)
        scale = state.get_library_scale()
        rated = rate_hits(index, model, query, closest, scale)
except ExplorerError as exc:
    st.error(str(exc))

if rated:
    wanted = {"good": (STRONG, WEAK), "strong": (STRONG,), "all": (STRONG, WEAK, NO_MATCH)}[show]
    shown = [r for r in rated if r.band in wanted]
    hits = [r.hit for r in shown]
    if not shown:
        best = max(rated, key=lambda r: r.relevance)
        st.warning(
            f"No {'strong' if show == 'strong' else 'good'} match for “{query.strip()}” in this library: its "
            f"closest chips match it no better than unrelated text would (best relevance {best.relevance:.1f}; "
            f"a weak match starts at {scale.weak_z:.1f} and a strong one at {scale.strong_z:.1f} here)."
        )
        st.button(
            "Show the closest chips anyway", on_click=st.session_state.__setitem__, args=(SHOW_KEY, "all")
        )
    relevance = {id(r.hit): r for r in shown}
    # the relevance the rows shown were kept at (recorded in the exports)
    kept_from = {"good": scale.weak_z, "strong": scale.strong_z, "all": None}[show]
else:
    hits = closest
    relevance = {}
    kept_from = None

# ranks are the hits' places in the list shown, whether or not they can be drawn on the map
elsewhere = [rank for rank, hit in enumerate(hits, start=1) if hit.pixel_space]
if elsewhere:
    ranks = ", ".join(f"#{rank}" for rank in elsewhere[:10]) + (" …" if len(elsewhere) > 10 else "")
    on_map = len(hits) - len(elsewhere)
    st.info(
        f"{len(elsewhere)} of these {len(hits)} hits ({ranks}) are in images without coordinates, so they are "
        f"not on the map: see them in the list below. "
        + (f"The map shows the other {on_map}, with their ranks." if on_map else "")
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
        tooltip_fields=("hits", "best_rank"),
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
        rank = hits.index(picked) + 1
        more_like(picked, f"hit #{rank} ({chip_label(picked)})")
        st.rerun()

if not hits:
    if not closest:
        st.caption("No hits yet: type a query or pick an example." if not (query or like) else "No hits.")
    st.stop()

asked = f"more like {like[1]}" if like else query
ratings = [(relevance[id(h)].relevance, relevance[id(h)].band) for h in hits] if relevance else None
downloads.download_buttons(
    hits_table(hits, ratings),
    ExportContext.now(asked, model.model_id, threshold=kept_from, aoi=aoi),
    key="hits",
)

pinned = st.session_state.get(IMAGE_KEY)
if pinned is not None and any(hit.chip_id == pinned for hit in hits):
    hit = next(hit for hit in hits if hit.chip_id == pinned)
    st.subheader(f"Hit #{hits.index(hit) + 1} in its image")
    widgets.chip_in_image(hit, key="search_image_map")
    st.button("Close the image", on_click=lambda: st.session_state.pop(IMAGE_KEY, None))

st.subheader(f"{len(hits)} hits")
for start in range(0, len(hits), COLUMNS):
    for column, (rank, hit) in zip(
        st.columns(COLUMNS), enumerate(hits[start : start + COLUMNS], start=start + 1)
    ):
        with column.container(border=True):
            st.image(hit.thumbnail, width="stretch")
            rating = relevance.get(id(hit))
            if rating is not None:
                st.markdown(
                    f"**#{rank}** {BAND_BADGES[rating.band]}",
                    help=f"relevance {rating.relevance:.1f} (weak from {scale.weak_z:.1f}, strong from "
                    f"{scale.strong_z:.1f} in this library) · cosine {hit.score:.3f}",
                )
            else:
                st.markdown(f"**#{rank}** · similarity **{hit.score:.3f}**", help="cosine of the two chips")
            # file names as plain text, never markdown
            st.text(chip_label(hit).replace(" · ", "\n", 1))
            left, right = st.columns(2)
            left.button(
                "More like this",
                key=f"like_{hit.chip_id}",
                icon=":material/image_search:",
                on_click=more_like,
                args=(hit, f"hit #{rank} ({chip_label(hit)})"),
            )
            if hit.pixel_space:
                right.button(
                    "In its image",
                    key=f"image_{hit.chip_id}",
                    icon=":material/image:",
                    on_click=st.session_state.__setitem__,
                    args=(IMAGE_KEY, hit.chip_id),
                    help="This image has no coordinates: see the chip in the whole image.",
                )
