"""Change page: two dates of a place compared cell by cell, optionally for what you type.

The cells that changed most (or where what you typed appeared or disappeared) are a heat layer over the two
dates' imagery, with a swipe between before and after; below, the ranked cells side by side and the exports.
"""

import shapely
import streamlit as st
from shapely import affinity
from shapely.geometry.base import BaseGeometry

from app import downloads, maps, state, widgets
from pipelines.services.change import ChangeReport, Direction
from pipelines.services.export import feature, feature_collection, scene_name
from pipelines.services.results import extent
from remoteclip.errors import ExplorerError

AOI_KEY = "change_aoi"
QUERY_KEY = "change_query"
EXAMPLE_KEY = "change_example"
#: the last comparison asked for with "Compare"
REQUEST_KEY = "change_request"
SHOWN_KEY = "change_shown"
#: the bounds of the cell last zoomed to (the map shows it and its neighbours)
FOCUS_KEY = "change_focus"
EXAMPLES = ("destroyed buildings", "new buildings", "flooded fields")
#: cells listed at first, and added by each "Show more"
PAGE_CELLS = 12
COLUMNS = 4
#: the heat layer's scale: robust z-scores from 0 (ordinary for the area) to this (far out of the ordinary)
Z_MAX = 4.0
#: (before, after, AOI, query, direction), as ``state.change_report`` takes them
Request = tuple[tuple[str, ...], tuple[str, ...], BaseGeometry | None, str | None, Direction | None]
DIRECTIONS = {
    Direction.APPEARED: "appeared (more like it after)",
    Direction.DISAPPEARED: "disappeared (more like it before)",
}

st.title("What changed between two dates")
scenes = [s for s in state.library_scenes() if not s.pixel_space]
if not scenes:
    st.info(
        "Change compares georeferenced scenes (GeoTIFFs) of two dates of one place, and the library has none: "
        "add them on the Library page."
    )
    st.stop()
paths = {s.scene_path: s for s in scenes}
groups = state.scene_dates(tuple(paths))
group_of = {str(dated.path): name for name, members in groups for dated in members}


def scene_label(path: str) -> str:
    return f"{scene_name(path)} · {group_of.get(path, '?')}"


def group_paths(index: int) -> list[str]:
    return [str(dated.path) for dated in groups[index][1] if str(dated.path) in paths]


def use_example() -> None:
    """Put the example picked into the query box, and unpick it."""
    st.session_state[QUERY_KEY] = st.session_state[EXAMPLE_KEY] or st.session_state.get(QUERY_KEY, "")
    st.session_state[EXAMPLE_KEY] = None


with st.sidebar:
    st.subheader("Dates")
    before = st.multiselect(
        "Before",
        list(paths),
        default=group_paths(0),
        format_func=scene_label,
        key="change_before",
        help="The scenes of the earlier date (by capture date, else by folder: pre/before first).",
    )
    after = st.multiselect(
        "After",
        list(paths),
        default=group_paths(-1) if len(groups) > 1 else [],
        format_func=scene_label,
        key="change_after",
        help="The scenes of the later date. Only the ground both dates cover is compared.",
    )
    st.subheader("What to look for")
    query = st.text_input(
        "What to look for (optional)",
        key=QUERY_KEY,
        placeholder="e.g. destroyed buildings",
        help="Without it, cells rank by how much they changed, of any kind.",
    )
    st.pills(
        "Examples",
        EXAMPLES,
        key=EXAMPLE_KEY,
        on_change=use_example,
        label_visibility="collapsed",
    )
    direction: Direction | None = None
    if query.strip():
        direction = st.radio(
            f"Rank first where “{query.strip()}”",
            list(DIRECTIONS),
            format_func=DIRECTIONS.__getitem__,
            key="change_direction",
        )
    else:
        st.caption("Ranking by any change.")
    online = st.toggle("Online basemap (needs internet)", value=False, key="change_online")
aoi = widgets.aoi_controls(AOI_KEY)
compare = st.sidebar.button("Compare", type="primary", icon=":material/compare:", key="change_compare")


def compared(wanted: Request, with_bar: bool) -> tuple[ChangeReport, float] | None:
    """The comparison ``wanted`` and the seconds it took (a progress bar while it runs, when ``with_bar``);
    None, the reason shown, when it cannot be made."""
    bar = st.progress(0.0, text="Comparing the two dates…") if with_bar else None

    def moved(done: int, total: int) -> None:
        if bar is not None:
            bar.progress(done / max(total, 1), text=f"{done} / {total} cells compared")

    try:
        return state.change_report(*wanted, on_progress=moved)
    except ExplorerError as exc:
        st.error(str(exc))
        return None
    finally:
        if bar is not None:
            bar.empty()


def same_request(one: Request, other: Request) -> bool:
    """Whether two requests are the same comparison."""
    wkb = [None if r[2] is None else shapely.to_wkb(r[2]) for r in (one, other)]
    return one[:2] == other[:2] and one[3:] == other[3:] and wkb[0] == wkb[1]


asked: Request = (tuple(before), tuple(after), aoi, query.strip() or None, direction)
if compare:
    st.session_state[REQUEST_KEY] = asked
    st.session_state[SHOWN_KEY] = PAGE_CELLS
    st.session_state.pop(FOCUS_KEY, None)
request: Request | None = st.session_state.get(REQUEST_KEY)
made = None if request is None else compared(request, with_bar=compare)
if request is not None and made is None:
    del st.session_state[REQUEST_KEY]
report, seconds = (None, 0.0) if made is None else made

if report is None:
    if request is None:
        st.info(
            "Pick the scenes of each date in the sidebar (defaults: the library's earliest and latest date), "
            "optionally type what to look for and draw an area on the map, then press **Compare**."
        )
elif request is not None:
    if not same_request(request, asked):
        st.caption(
            ":material/info: The choices in the sidebar changed since: press **Compare** to compare them."
        )
    cells, best, size, uncovered = st.columns(4)
    cells.metric("Cells compared", len(report.cells))
    best.metric(
        "Top score",
        f"{report.cells[0].score(report.direction):.1f}",
        help="Robust z-score among this area's cells: 3 or more is far out of the ordinary here.",
    )
    size.metric("Cell side", f"{report.cell_m:.0f} m")
    uncovered.metric(
        "Cells left out", report.uncovered, help="Cells of the overlap with too little imagery in one date."
    )
    st.caption(f"Compared in {seconds:.1f} s with {report.model_id}.")

focus = st.session_state.get(FOCUS_KEY)
area = (
    extent(cell.footprint.bounds for cell in report.cells)
    if report is not None
    else aoi.bounds
    if aoi is not None
    else extent(paths[p].extent for p in [*before, *after])
)
fmap = maps.offline_map(
    widgets.zoom_controls(
        scenes,
        "change_zoom",
        default=area if focus is None else affinity.scale(shapely.box(*focus), 3, 3).bounds,
        default_label="the compared area",
    ),
    online_basemap=online,
)
maps.add_before_after(fmap, widgets.imagery_layers(before), widgets.imagery_layers(after))
if report is not None:
    maps.add_heat_layer(
        fmap,
        report.table().geojson(),
        [cell.score(report.direction) for cell in report.cells],
        vmax=Z_MAX,
        name="Change",
        tooltip_fields=("rank", "score", "distance", *(("toward_query",) if report.query else ())),
    )
if focus is not None:
    maps.add_geojson_layer(
        fmap, feature_collection([feature(shapely.box(*focus))]), name="Zoomed to", fill_opacity=0.0
    )
legend_column = widgets.aoi_map(
    fmap,
    aoi,
    key="change_map",
    aoi_key=AOI_KEY,
    caption="Drag the round handle across the map: before on its left, after on its right.",
)
if report is not None:
    steps = [0.0, 1.0, 2.0, 3.0, Z_MAX]
    names = ["≤ 0 ordinary", "1", "2", "3", f"≥ {Z_MAX:g} far out"]
    legend_column.html(
        maps.legend_html(
            list(zip(names, maps.value_colors(steps, vmax=Z_MAX))),
            title=f"{report.direction.value}: {report.query} (z)" if report.query else "change (z)",
        )
    )

if report is None or request is None:
    st.stop()
title = f"Where “{report.query}” {report.direction.value}" if report.query else "The most changed cells"
st.subheader(title)
downloads.download_buttons(report.table(), report.context(request[2]), key="change")
shown = st.session_state.get(SHOWN_KEY, PAGE_CELLS)
listed = report.cells[:shown]
for start in range(0, len(listed), COLUMNS):
    for column, (rank, cell) in zip(
        st.columns(COLUMNS), enumerate(listed[start : start + COLUMNS], start=start + 1)
    ):
        with column.container(border=True):
            st.markdown(
                f"**#{rank}** · score **{cell.score(report.direction):.2f}**",
                help="Robust z-score among the compared cells (median 0; 3 or more is far out of the ordinary).",
            )
            before_image, after_image = st.columns(2)
            before_image.image(cell.before_jpeg, caption="before", width="stretch")
            after_image.image(cell.after_jpeg, caption="after", width="stretch")
            toward = "" if cell.toward_query is None else f" · toward the query {cell.toward_query:+.3f}"
            st.caption(f"distance {cell.distance:.3f}{toward}")
            st.button(
                "Zoom to",
                key=f"change_cell_{cell.row}_{cell.col}",
                icon=":material/zoom_in:",
                on_click=st.session_state.__setitem__,
                args=(FOCUS_KEY, cell.footprint.bounds),
            )
if shown < len(report.cells):
    st.button(
        f"Show {min(PAGE_CELLS, len(report.cells) - shown)} more",
        on_click=st.session_state.__setitem__,
        args=(SHOWN_KEY, shown + PAGE_CELLS),
    )
