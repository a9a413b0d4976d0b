"""Count page: choose an object, draw or upload an AOI; see the objects found, per chip and one by one.

With the model's object locator every object found is a point on the map, counted at the slider's threshold;
a model without one (the tiny test model) gets the paper's RemoteCount estimate per chip instead.
"""

from typing import Any

import folium
import streamlit as st

from app import downloads, maps, state, widgets
from pipelines.services.aoi_objects import AoiObjects
from pipelines.services.count import COMMON_OBJECTS, AoiCount
from pipelines.services.export import ExportContext
from pipelines.services.locate import score_floor
from remoteclip.errors import ExplorerError

AOI_KEY = "count_aoi"
OTHER = "other (type it)"
#: the best-scored objects drawn as points (the table and the exports keep them all)
MAX_POINTS = 3000

st.title("Count objects in an area")
scenes = state.library_scenes()
locator = state.get_locator()

with st.sidebar:
    st.subheader("Object")
    choice = st.selectbox("What to count", [*COMMON_OBJECTS, OTHER], key="count_choice")
    object_name = (
        st.text_input("Object", key="count_typed", placeholder="e.g. swimming pools")
        if choice == OTHER
        else choice
    )
    threshold = 0.0
    if locator is not None:
        threshold = st.slider(
            "Score threshold",
            min_value=score_floor(locator),
            max_value=1.0,
            value=locator.threshold,
            step=0.01,
            key="count_threshold",
            help=f"Objects scoring at least this are counted. The default, {locator.threshold:.2f}, is the "
            "locator's threshold on its held-out validation images.",
        )
    levels = sorted({level for scene in scenes for level in scene.levels}) or [1]
    level = st.selectbox(
        "Chip scale level",
        levels,
        help="Counts use the non-overlapping chips of one level."
        if locator is None
        else "The map shades each chip of this level by the number of objects found in it.",
    )
    online = st.toggle("Online basemap (needs internet)", value=False)
aoi = widgets.aoi_controls(AOI_KEY)

found: AoiObjects | None = None
estimate: AoiCount | None = None
if aoi is not None and object_name.strip():
    try:
        with st.spinner(f"{'Finding' if locator is not None else 'Counting'} {object_name}…"):
            if locator is not None:
                found = state.aoi_objects(object_name, aoi)
            else:
                estimate = state.aoi_count(object_name, aoi, level)
    except ExplorerError as exc:
        st.error(str(exc))

per_chip: dict[str, Any] | None = None
if found is not None:
    if found.warning:
        st.warning(found.warning)
    for _path, reason in found.failed:
        st.warning(f"Not searched: {reason}")
    total, chips, scenes_column = st.columns(3)
    total.metric(
        f"Found {found.object_name}",
        found.total(threshold),
        help=f"Objects the locator found inside the AOI scoring at least {threshold:.2f}.",
    )
    counts = found.chip_counts(threshold, level)
    chips.metric(f"Level-{level} chips with any", f"{sum(1 for c in counts if c.count)} of {len(counts)}")
    scenes_column.metric("Scenes searched", len(found.scenes))
    per_chip = found.chips_table(threshold, level).geojson()
elif estimate is not None:
    total, chips, share = st.columns(3)
    total.metric(
        f"Estimated {estimate.object_name}",
        f"{estimate.total:.0f}",
        help="Sum over chips of the RemoteCount estimate × the chip's share inside the AOI.",
    )
    chips.metric("Chips in the AOI", len(estimate.chips))
    share.metric("Chips with any", sum(1 for c in estimate.chips if c.count > 0))
    per_chip = estimate.table().geojson() if estimate.chips else None
if locator is None:
    st.caption(
        "This model has no object locator, so the count is the paper's RemoteCount estimate (each chip "
        "ranked against captions of 0 to 10 objects), not objects found and placed on the map.",
        help=state.no_locator_reason(),
    )
if found is None and estimate is None:
    st.info(
        "Draw a rectangle or polygon on the map (tools at its top left) or upload a GeoJSON to count "
        f"{object_name or 'objects'} inside it."
    )


def add_points(fmap: folium.Map, result: AoiObjects, at: float) -> None:
    """Every object found (the best :data:`MAX_POINTS`) as a circle marker."""
    points = result.table(at).geojson()
    points["features"] = points["features"][:MAX_POINTS]
    maps.add_centre_markers(
        fmap, points, name=f"{result.object_name} found", tooltip_fields=("score", "scene")
    )


georeferenced = [s for s in scenes if not s.pixel_space]
fmap = maps.offline_map(
    widgets.zoom_controls(
        scenes, "count_zoom", default=aoi.bounds if aoi is not None else None, default_label="the AOI"
    ),
    online_basemap=online,
)
maps.add_image_layers(fmap, widgets.imagery_layers(s.scene_path for s in georeferenced))
chip_counts = [f["properties"]["count"] for f in per_chip["features"]] if per_chip else []
if per_chip and chip_counts:
    maps.add_geojson_layer(
        fmap,
        maps.with_fill(per_chip, maps.value_colors(chip_counts)),
        name=f"{object_name.strip()} per chip",
        color="#444444",
        fill_opacity=0.55 if found is None else 0.35,
        tooltip_fields=("count", "scene")
        if found is not None
        else ("count", "inside", "contribution", "scene"),
    )
if found is not None:
    add_points(fmap, found, threshold)
legend_column = widgets.aoi_map(fmap, aoi, key="count_map", aoi_key=AOI_KEY)

if chip_counts:
    top = max(chip_counts)
    steps = sorted({0, top // 2, top})
    legend_column.html(
        maps.legend_html(
            [(str(n), color) for n, color in zip(steps, maps.value_colors(steps, vmax=top))],
            title="objects per chip" if found is not None else "count per chip",
        )
    )

if found is not None:
    shown = found.total(threshold)
    if shown > MAX_POINTS:
        st.caption(
            f"The map shows the {MAX_POINTS} best-scored of {shown} objects; the table and exports have all."
        )
    st.subheader(f"Objects found: {shown}")
    context = ExportContext.now(found.object_name, found.model_id, threshold=threshold, aoi=aoi)
    downloads.download_buttons(found.table(threshold), context, key="objects")
    st.caption(f"Objects per level-{level} chip (the map's shading):")
    downloads.download_buttons(found.chips_table(threshold, level), context, key="object_chips")
    if shown:
        st.dataframe(
            found.rows(threshold),
            hide_index=True,
            width="stretch",
            column_config={
                "score": st.column_config.NumberColumn("score", format="%.3f"),
                "lon": st.column_config.NumberColumn("lon", format="%.6f"),
                "lat": st.column_config.NumberColumn("lat", format="%.6f"),
                "col": st.column_config.NumberColumn("col", help="Its column in its scene (pixels)."),
                "row": st.column_config.NumberColumn("row", help="Its row in its scene (pixels)."),
            },
        )
    else:
        st.caption(
            f"Nothing scores {threshold:.2f} or more in this AOI; a lower threshold shows weaker finds."
        )
elif estimate is not None and estimate.chips:
    st.subheader("Chips inside the AOI")
    context = ExportContext.now(estimate.object_name, estimate.model_id, aoi=aoi)
    downloads.download_buttons(estimate.table(), context, key="count_chips")
    st.dataframe(
        estimate.rows(),
        hide_index=True,
        width="stretch",
        column_config={
            "window": st.column_config.TextColumn(
                "window", help="The chip's window in its scene's pixels: top-left column and row, size."
            ),
            "count": st.column_config.NumberColumn(
                "count", help=f"The most likely number of {estimate.object_name} in the chip (0 to 10)."
            ),
            "expected_count": st.column_config.NumberColumn(
                "mean count",
                format="%.2f",
                help="RemoteCount's expected count: the mean of 0 to 10 objects weighted by how well each "
                "counting caption matches the chip. Smoother than the most likely count; not summed.",
            ),
            "inside": st.column_config.ProgressColumn(
                "share inside", min_value=0.0, max_value=1.0, format="%.2f"
            ),
            "contribution": st.column_config.NumberColumn(
                "contribution", help="count × share inside: what the chip adds to the total."
            ),
            "chip_id": st.column_config.TextColumn(
                "chip id", width="small", help="The chip's id in the library (for `search --like`)."
            ),
        },
    )
