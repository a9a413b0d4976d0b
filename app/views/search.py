"""Search page: type what to find; hits appear as footprints over the imagery and as a ranked list.

Every text hit is rated strong / weak / no match on the library's own scale (pipelines.services.search), so a
query that matches nothing says so. Marks refine a query, and the refined probe can be saved as a detector and run
again later, over the library or the AOI. Hits in images without coordinates keep their rank: the map shows the
georeferenced ones, the page says how many of the top hits are elsewhere, and each can be seen in its image.
"""

from typing import Any

import streamlit as st

from app import downloads, maps, state, widgets
from pipelines.services.detectors import (
    Detection,
    Detector,
    apply_detector,
    detections_table,
    get_detector,
    list_detectors,
    make_detector,
    save_detector,
)
from pipelines.services.export import (
    ExportContext,
    chip_feature,
    feature_collection,
    hits_geojson,
    hits_table,
)
from pipelines.services.refine import near_misses, refine_search
from pipelines.services.results import chip_label, focus_bounds, hit_at, merge_regions
from pipelines.services.search import EXAMPLE_QUERIES, RatedHit, rate_hits, search_like, search_text
from remoteclip.calibration import NO_MATCH, STRONG, WEAK
from remoteclip.errors import ExplorerError
from tiles.index.chip_index import Hit

AOI_KEY = "search_aoi"
LIKE_KEY = "search_like"
SHOW_KEY = "search_show"
IMAGE_KEY = "search_image"
#: chip id -> (marked right?, how the page names the chip), for refining the current text query
MARKS_KEY = "search_marks"
#: the text query the marks refine, while refined results are shown
REFINED_KEY = "search_refined"
#: the chip ids ranked on the page when "Refine" was clicked: the previous round, for its near-misses
PREVIOUS_KEY = "search_previous"
#: the name of the saved detector whose detections are shown
DETECTOR_KEY = "search_detector"
#: every key of a query's results: a new query, an example or a detector run forgets them
QUERY_STATE = (LIKE_KEY, MARKS_KEY, REFINED_KEY, PREVIOUS_KEY, DETECTOR_KEY)
#: the hit clicked on the map, shown with its mark and "more like this" buttons
PICKED_KEY = "search_picked"
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
    accept_at = st.slider(
        "Accept at probability",
        0.05,
        0.95,
        0.5,
        0.05,
        help="After refining: the probability a chip needs for the detector to accept it (and to be saved with).",
    )
    show_regions = st.toggle("Merge neighbouring hits into regions", value=True)
    show_imagery = st.toggle("Show imagery", value=True)
    online = st.toggle("Online basemap (needs internet)", value=False)
aoi = widgets.aoi_controls(AOI_KEY)


def forget(*keys: str) -> None:
    """Drop these keys from the session (what a new query, "Clear the marks" and "Back" do)."""
    for key in keys:
        st.session_state.pop(key, None)


def use_example(text: str) -> None:
    st.session_state["query"] = text
    forget(*QUERY_STATE)


def run_detector(name: str) -> None:
    """Show the detections of the saved detector ``name`` instead of a query's hits."""
    forget(*QUERY_STATE)
    st.session_state[DETECTOR_KEY] = name


def unmark(chip_id: str) -> None:
    """Take a mark back."""
    st.session_state.get(MARKS_KEY, {}).pop(chip_id, None)


def mark(hit: Hit, right: bool, label: str) -> None:
    """Mark ``hit`` right or wrong for the query (the same mark again takes it back)."""
    marks = st.session_state.setdefault(MARKS_KEY, {})
    if marks.get(hit.chip_id, (None,))[0] == right:
        del marks[hit.chip_id]
    else:
        marks[hit.chip_id] = (right, label)


def more_like(hit: Hit, label: str) -> None:
    """Search for chips like ``hit``; ``label`` names it in the page's heading."""
    st.session_state[LIKE_KEY] = (hit.chip_id, label)


def hit_buttons(place: Any, hit: Hit, rank: int, markable: bool, key: str = "") -> None:
    """A hit's "More like this", its Right / Wrong marks (when ``markable``: a text query's hits) and, without
    coordinates, "In its image", in ``place`` (a column or ``st``); ``key`` tells a second set for a hit apart."""
    label = f"hit #{rank} ({chip_label(hit)})"
    left, right = place.columns(2)
    left.button(
        "More like this",
        key=f"{key}like_{hit.chip_id}",
        icon=":material/image_search:",
        on_click=more_like,
        args=(hit, label),
    )
    if markable:
        state_of = st.session_state.get(MARKS_KEY, {}).get(hit.chip_id, (None,))[0]
        for column, (verdict, icon, right_) in zip(
            place.columns(2), (("Right", "thumb_up", True), ("Wrong", "thumb_down", False)), strict=True
        ):
            column.button(
                verdict,
                key=f"{key}{verdict.lower()}_{hit.chip_id}",
                icon=f":material/{icon}:",
                type="primary" if state_of is right_ else "secondary",
                on_click=mark,
                args=(hit, right_, label),
            )
    if hit.pixel_space:
        right.button(
            "In its image",
            key=f"{key}image_{hit.chip_id}",
            icon=":material/image:",
            on_click=st.session_state.__setitem__,
            args=(IMAGE_KEY, hit.chip_id),
            help="This image has no coordinates: see the chip in the whole image.",
        )


query = st.text_input(
    "What are you looking for?",
    key="query",
    placeholder="e.g. ships in a harbor",
    on_change=forget,
    args=QUERY_STATE,
)
example_cols = st.columns(len(EXAMPLE_QUERIES) // 2)
for i, example in enumerate(EXAMPLE_QUERIES):
    example_cols[i % len(example_cols)].button(
        example, key=f"example_{i}", on_click=use_example, args=(example,), width="stretch", type="tertiary"
    )

saved = [d.name for d in list_detectors(index)] if index.table is not None else []
if saved:
    with st.expander("Run a saved detector", icon=":material/manage_search:"):
        left, right = st.columns([3, 1], vertical_alignment="bottom")
        to_run = left.selectbox("Saved detector", saved, key="detector_to_run")
        right.button("Run", icon=":material/play_arrow:", on_click=run_detector, args=(to_run,))

running = st.session_state.get(DETECTOR_KEY)
like = st.session_state.get(LIKE_KEY)
marks: dict[str, tuple[bool, str]] = st.session_state.get(MARKS_KEY, {})
refining = bool(marks) and not like and st.session_state.get(REFINED_KEY) == query
closest: list[Hit] = []
rated: list[RatedHit] = []
probabilities: dict[int, float] = {}
detections: list[Detection] = []
try:
    if running:
        detector = get_detector(index, running)
        detections = apply_detector(index, detector, aoi=aoi)
        closest = [d.hit for d in detections[:k]]
        probabilities = {id(d.hit): d.probability for d in detections[:k]}
        st.info(
            f"Detector “{detector.name}” (“{detector.query}”, {len(detector.positive_ids)} right and "
            f"{len(detector.negative_ids)} wrong marks) accepts **{len(detections)} chips** at probability "
            f"{detector.threshold:.2f} " + ("inside the AOI" if aoi is not None else "in the library")
            + (f"; the map and the list show the first {k}, the downloads all of them." if len(detections) > k else ".")
        )
        st.button("Back to the text search", on_click=forget, args=(DETECTOR_KEY,))
    elif like:
        closest = search_like(index, like[0], k=k, aoi=aoi)
        st.info(f"Showing chips that look like {like[1]}.")
        st.button("Back to the text search", on_click=lambda: st.session_state.pop(LIKE_KEY, None))
    elif refining:
        right_ids = [chip for chip, (ok, _) in marks.items() if ok]
        wrong_ids = [chip for chip, (ok, _) in marks.items() if not ok]
        near = near_misses(st.session_state.get(PREVIOUS_KEY, []), right_ids, wrong_ids)
        probe, refined = refine_search(
            index, model, query, right_ids, wrong_ids, k=k, aoi=aoi, near_miss_ids=near
        )
        closest = [r.hit for r in refined]
        probabilities = {id(r.hit): r.probability for r in refined}
    elif query.strip():
        closest = search_text(index, model, query, k=k, aoi=aoi)
        scale = state.get_library_scale()
        rated = rate_hits(index, model, query, closest, scale)
except ExplorerError as exc:
    st.error(str(exc))

if marks and not (like or running):
    right_n = sum(ok for ok, _ in marks.values())
    with st.container(border=True):
        st.markdown(
            f"**Marks for “{query.strip()}”: {right_n} right, {len(marks) - right_n} wrong.** "
            + (
                "Hits are ranked by a probe fitted to the query and the marks (the probability that a chip is "
                "right)"
                + (
                    f", the {len(near)} hits above your lowest right mark in the last round taken as weakly wrong"
                    if near
                    else ""
                )
                + "; mark more and refine again."
                if refining
                else "Refine to re-rank the whole library from the query and the marks."
            )
        )
        for chip_id, (ok, label) in list(marks.items()):
            st.button(
                f"{'right' if ok else 'wrong'}: {label}",
                key=f"unmark_{chip_id}",
                icon=":material/close:",
                type="tertiary",
                help="Take this mark back.",
                on_click=unmark,
                args=(chip_id,),
            )
        left, right_col, _ = st.columns([1, 1, 3])
        left.button(
            f"Refine with {len(marks)} marks",
            type="primary",
            icon=":material/tune:",
            on_click=st.session_state.update,
            args=({REFINED_KEY: query, PREVIOUS_KEY: [hit.chip_id for hit in closest]},),
        )
        right_col.button(
            "Clear the marks",
            on_click=forget,
            args=(MARKS_KEY, REFINED_KEY, PREVIOUS_KEY),
        )
        if refining:

            def detector_named(name: str) -> Detector:
                """The current probe and marks as a detector called ``name``."""
                return make_detector(
                    name, query.strip(), probe, right_ids, wrong_ids, model.model_id, accept_at
                )

            accepted = apply_detector(index, detector_named("unsaved"), aoi=aoi)
            st.markdown(
                f"At probability {accept_at:.2f} this detector accepts **{len(accepted)} chips** "
                + ("inside the AOI." if aoi is not None else "in the library.")
            )
            with st.form("save_detector", border=False):
                name = st.text_input("Detector name", value=query.strip()[:60])
                if st.form_submit_button("Save as detector", icon=":material/save:"):
                    try:
                        save_detector(index, detector_named(name))
                        st.success(f"Saved detector “{name.strip()}”: the Library page lists it.")
                    except ExplorerError as exc:
                        st.error(str(exc))

if probabilities:
    hits = closest
    relevance = {}
    kept_from = None
elif rated:
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
if marks and not (like or running):
    marked = {chip.chip_id: chip for chip in index.get(list(marks))}
    for verdict, color in ((True, maps.RIGHT_COLOR), (False, maps.WRONG_COLOR)):
        chosen = [marked[chip_id] for chip_id, (ok, _) in marks.items() if ok is verdict]
        maps.add_geojson_layer(
            fmap,
            feature_collection(chip_feature(c, mark=f"marked {'right' if verdict else 'wrong'}") for c in chosen),
            name=f"Marked {'right' if verdict else 'wrong'}",
            color=color,
            fill_opacity=0.3,
            tooltip_fields=("mark", "scene"),
        )
widgets.aoi_layer(fmap, aoi)
maps.add_draw_control(fmap)
map_state = widgets.show_map(fmap, key="search_map")
widgets.take_drawn_aoi(map_state, AOI_KEY)

clicked = map_state.get("last_object_clicked")
if clicked and clicked != st.session_state.get("search_clicked"):
    st.session_state["search_clicked"] = clicked
    picked = hit_at(hits, clicked["lng"], clicked["lat"])
    if picked is not None:
        st.session_state[PICKED_KEY] = picked.chip_id

if not hits:
    if not closest:
        st.caption("No hits yet: type a query or pick an example." if not (query or like or running) else "No hits.")
    st.stop()

if running:
    downloads.download_buttons(
        detections_table(detections),
        ExportContext.now(f"detector {running}", model.model_id, threshold=detector.threshold, aoi=aoi),
        key="hits",
    )
else:
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

markable = not (like or running) and bool(query.strip())
picked_id = st.session_state.get(PICKED_KEY)
if picked_id is not None and any(hit.chip_id == picked_id for hit in hits):
    hit = next(hit for hit in hits if hit.chip_id == picked_id)
    rank = hits.index(hit) + 1
    with st.container(border=True):
        thumb, about = st.columns([1, 4])
        thumb.image(hit.thumbnail, width="stretch")
        about.markdown(f"**Hit #{rank} on the map**")
        about.text(chip_label(hit))
        hit_buttons(about, hit, rank, markable, key="picked")
        about.button("Close", key="picked_close", on_click=lambda: st.session_state.pop(PICKED_KEY, None))

st.subheader(f"{len(hits)} hits")
for start in range(0, len(hits), COLUMNS):
    for column, (rank, hit) in zip(
        st.columns(COLUMNS), enumerate(hits[start : start + COLUMNS], start=start + 1)
    ):
        with column.container(border=True):
            st.image(hit.thumbnail, width="stretch")
            rating = relevance.get(id(hit))
            if id(hit) in probabilities:
                made_from = f"detector “{running}”" if running else f"the query and {len(marks)} marks"
                st.markdown(
                    f"**#{rank}** · right with probability **{probabilities[id(hit)]:.2f}**",
                    help=f"the probe's probability, from {made_from} · probe score {hit.score:.3f}",
                )
            elif rating is not None:
                st.markdown(
                    f"**#{rank}** {BAND_BADGES[rating.band]}",
                    help=f"relevance {rating.relevance:.1f} (weak from {scale.weak_z:.1f}, strong from "
                    f"{scale.strong_z:.1f} in this library) · cosine {hit.score:.3f}",
                )
            else:
                st.markdown(f"**#{rank}** · similarity **{hit.score:.3f}**", help="cosine of the two chips")
            # file names as plain text, never markdown
            st.text(chip_label(hit).replace(" · ", "\n", 1))
            hit_buttons(st, hit, rank, markable)
