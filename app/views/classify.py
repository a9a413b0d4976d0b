"""Classify page, two modes: upload an image and see its label, a per-chip label layer, and add it to the
library; or label the library itself (or an AOI) from its stored embeddings with typed classes and saved
detectors: a categorical map, a legend, chips and km² per class, downloads."""

import streamlit as st

from app import downloads, maps, state, widgets
from pipelines.services.classify import (
    DEFAULT_LABELS,
    NONE_OF_THESE,
    parse_labels,
)
from pipelines.services.demo_library import DEMO_SPEC
from pipelines.services.detectors import list_detectors
from pipelines.services.label_layer import UNCERTAIN, LabelLayer, layer_classes
from pipelines.services.uploads import ACCEPTED, MAX_UPLOAD_BYTES, store_upload
from remoteclip.errors import ExplorerError

UPLOAD, LIBRARY = "Classify an upload", "Label the library"
LAYER_AOI_KEY = "label_aoi"
#: the classes and detectors of the last "Label" click (the layer is made only once asked for)
LAYER_REQUEST_KEY = "label_request"
DEFAULT_CLASSES = "forest, farmland, residential area, water, industrial area"
#: chips drawn on the map (the table, the areas and the files have them all)
MAX_MAP_CHIPS = 5000


def layer_summary(layer: LabelLayer) -> None:
    """Metrics and the notes a reader of the layer needs: calibration, chips without coordinates."""
    chips, covered, elsewhere = st.columns(3)
    chips.metric("Chips labelled", len(layer.chips))
    covered.metric("Ground covered", f"{layer.covered_km2:,.3f} km²", help="Each piece of ground counted once.")
    elsewhere.metric("Chips without coordinates", layer.pixel_space_chips, help="Labelled, but no km².")
    if layer.calibrated is False:
        st.caption(
            "This model has no calibration (`remoteclip-explorer evaluate calibration`): probabilities are its own "
            f"zero-shot softmax and no chip is cut off as “{UNCERTAIN}” for the typed classes."
        )
    elif layer.calibrated:
        st.caption(
            f"A chip whose best typed class fits it no better than unrelated text (relevance below "
            f"{layer.label_z:.2f}, calibrated on held-out imagery) is “{UNCERTAIN}”."
        )
    st.caption(
        "Saved detectors label first (a chip at or above a detector's threshold); where chips overlap, the "
        "finest one labels the ground, so the areas add up to the ground covered."
    )


def label_the_library(online: bool) -> None:
    """The library mode: classes and detectors in the sidebar, the layer on the map, its table and files."""
    st.title("Label the library")
    saved = [s.name for s in list_detectors(state.get_index())]
    show_imagery = st.sidebar.toggle("Show imagery under the labels", value=False, key="label_imagery")
    with st.sidebar.form("label_form", border=False):
        classes_text = st.text_area("Classes (comma or newline separated)", DEFAULT_CLASSES, height=120)
        picked = st.multiselect(
            "Saved detectors as classes",
            saved,
            help="Detectors saved on the Search page; each labels the chips at or above its threshold first.",
            placeholder="none saved yet" if not saved else "pick detectors",
        )
        if st.form_submit_button("Label the chips", type="primary", icon=":material/category:"):
            st.session_state[LAYER_REQUEST_KEY] = (classes_text, tuple(picked))
    aoi = widgets.aoi_controls(LAYER_AOI_KEY)
    request = st.session_state.get(LAYER_REQUEST_KEY)
    layer = None
    if request is None:
        st.info(
            "Type classes or pick saved detectors in the sidebar and press “Label the chips”: every chip of the "
            "library (or of an AOI drawn on the map) is labelled from its stored embedding, no image is read."
        )
    else:
        try:
            detectors = tuple(name for name in request[1] if name in saved)
            classes = layer_classes(request[0], detectors)
            with st.spinner("Labelling the library's chips…"):
                layer = state.label_layer(tuple(classes), detectors, aoi)
        except ExplorerError as exc:
            st.error(str(exc))
    colors: dict[str, str] = {}
    table = None
    if layer is not None:
        layer_summary(layer)
        names = [c.name for c in layer.classes if c.name != UNCERTAIN]
        colors = maps.label_colors(names) | {UNCERTAIN: maps.NO_MATCH_COLOR}
        table = layer.table()
    fmap = maps.offline_map(
        widgets.zoom_controls(
            state.library_scenes(),
            "label_zoom",
            default=aoi.bounds if aoi is not None else None,
            default_label="the AOI",
        ),
        online_basemap=online,
    )
    if layer is not None and table is not None:
        if show_imagery:
            scenes = dict.fromkeys(c.chip.scene_path for c in layer.chips if not c.chip.pixel_space)
            maps.add_image_layers(fmap, widgets.imagery_layers(scenes))
        collection = maps.drawable(table.geojson())
        drawn = collection["features"][:MAX_MAP_CHIPS]
        maps.add_geojson_layer(
            fmap,
            maps.with_fill({"features": drawn}, [colors[f["properties"]["label"]] for f in drawn]),
            name="Chip labels",
            color="#333333",
            fill_opacity=0.65,
            tooltip_fields=("label", "probability", "area_km2", "scene"),
        )
        if len(collection["features"]) > MAX_MAP_CHIPS:
            st.caption(f"The map shows {MAX_MAP_CHIPS} of {len(collection['features'])} chips; the files have all.")
    legend_column = widgets.aoi_map(fmap, aoi, key="label_map", aoi_key=LAYER_AOI_KEY)
    if layer is None or table is None:
        return
    legend_column.html(maps.legend_html([(c.name, colors[c.name]) for c in layer.classes], title="classes"))
    st.subheader("Classes")
    st.dataframe(
        layer.rows(),
        hide_index=True,
        width="stretch",
        column_config={
            "chips": st.column_config.NumberColumn("chips", help="Chips labelled with it, at every level."),
            "km2": st.column_config.NumberColumn("km²", format="%.4f", help="Ground it labels (geodesic)."),
            "share": st.column_config.ProgressColumn(
                "share of the ground", min_value=0.0, max_value=1.0, format="%.2f"
            ),
        },
    )
    downloads.download_buttons(table, layer.context(), key="label_layer")


mode = st.sidebar.radio("Mode", [UPLOAD, LIBRARY], key="classify_mode")
online = st.sidebar.toggle("Online basemap (needs internet)", value=False)
if mode == LIBRARY:
    label_the_library(online)
    st.stop()

st.title("Classify an image")

upload = st.file_uploader(
    f"GeoTIFF, JPEG or PNG; COG and JPEG 2000 too (up to {MAX_UPLOAD_BYTES // 2**20} MB)",
    key="classify_upload",
)
labels_text = st.sidebar.text_area(
    "Labels (comma or newline separated)", ", ".join(DEFAULT_LABELS), height=180
)
if upload is None:
    st.info(f"Upload an image to label it: {ACCEPTED}.")
    st.stop()

try:
    labels = parse_labels(labels_text)
    path = store_upload(upload.getvalue(), upload.name, state.settings().uploads)
    with st.spinner("Labelling chips…"):
        result = state.classification(str(path), tuple(labels))
except ExplorerError as exc:
    st.error(str(exc))
    st.stop()
st.caption(f"Saved on the server as `{path}`; add it to the library below.")

best = result.best
st.subheader(f"Label: {best.label}")
st.caption(
    f"probability {best.probability:.2f} · {len(result.chips['features'])} chips labelled · "
    + (
        "probabilities calibrated on held-out imagery; a chip whose best label fits it no better than "
        f"unrelated text is “{NONE_OF_THESE}”"
        if result.calibrated
        else "this model has no calibration (`remoteclip-explorer evaluate calibration`): probabilities are its "
        "own zero-shot softmax and every chip gets one of the labels"
    )
)
colors = maps.label_colors(result.labels[:-1]) | {NONE_OF_THESE: maps.NO_MATCH_COLOR}
chart, legend = st.columns([3, 1])
chart.dataframe(
    [{"label": score.label, "probability": score.probability} for score in result.scene],
    hide_index=True,
    width="stretch",
    column_config={
        "probability": st.column_config.ProgressColumn(
            min_value=0.0,
            max_value=1.0,
            format="%.2f",
            help=f"The scene's share of each label: its chips' probabilities averaged, “{NONE_OF_THESE}” "
            "counting the chips that match no label.",
        )
    },
)
legend.html(maps.legend_html([(label, colors[label]) for label in result.labels], title="chip labels"))

layer = maps.with_fill(result.chips, [colors[f["properties"]["label"]] for f in result.chips["features"]])
found = widgets.overview(str(path))
fmap = maps.offline_map(
    (found.bounds if found else None)
    if result.pixel_space
    else widgets.zoom_controls(
        state.library_scenes(),
        "classify_zoom",
        default=found.bounds if found else None,
        default_label="the uploaded image",
    ),
    online_basemap=online and not result.pixel_space,
    pixel_space=result.pixel_space,
)
if found is not None:
    tiles = None if result.pixel_space else widgets.scene_tiles(str(path))
    maps.add_image_layers(
        fmap, [maps.ImageLayer(upload.name, found.image, found.bounds, found.mime, tiles=tiles)]
    )
maps.add_geojson_layer(
    fmap,
    layer,
    name="Chip labels",
    color="#333333",
    fill_opacity=0.45,
    tooltip_fields=("label", "probability", "relevance"),
)
widgets.show_map(fmap, key="classify_map", height=480)

st.subheader("Add to the library")
if st.button("Add this scene to the library", icon=":material/library_add:"):
    notices = widgets.ingest_with_progress([str(path)], DEMO_SPEC, names={str(path): upload.name})
    widgets.show_notices(notices or [])
