"""Classify page: upload an image; see its label, a per-chip label layer, and add it to the library."""

import streamlit as st

from app import maps, state, widgets
from pipelines.services.classify import (
    DEFAULT_LABELS,
    NONE_OF_THESE,
    parse_labels,
)
from pipelines.services.demo_library import DEMO_SPEC
from pipelines.services.uploads import ACCEPTED, MAX_UPLOAD_BYTES, store_upload
from remoteclip.errors import ExplorerError

st.title("Classify an image")

upload = st.file_uploader(
    f"GeoTIFF, JPEG or PNG; COG and JPEG 2000 too (up to {MAX_UPLOAD_BYTES // 2**20} MB)",
    key="classify_upload",
)
labels_text = st.sidebar.text_area(
    "Labels (comma or newline separated)", ", ".join(DEFAULT_LABELS), height=180
)
online = st.sidebar.toggle("Online basemap (needs internet)", value=False)
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
