"""Offline folium maps: vendored Leaflet assets, imagery overlays, footprint layers and the draw tool.

Every function takes plain data (GeoJSON dicts, image bytes, EPSG:4326 bounds) and returns folium objects, so
the pages stay free of map plumbing. No asset is fetched from a CDN: folium's asset lists are pointed at
``app/static/vendor`` (served by Streamlit at ``/app/static/vendor``).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import folium
from folium.plugins import Draw
from matplotlib import colormaps
from shapely.geometry import shape

from pipelines.services.export import feature, feature_collection
from pipelines.services.results import Bounds

#: Streamlit serves ``app/static/`` here when ``server.enableStaticServing`` is on.
VENDOR_URL = "/app/static/vendor"

OFFLINE_JS: list[tuple[str, str]] = [
    ("leaflet", f"{VENDOR_URL}/leaflet/leaflet.js"),
    ("jquery", f"{VENDOR_URL}/jquery/jquery.min.js"),
    ("bootstrap", f"{VENDOR_URL}/bootstrap/bootstrap.bundle.min.js"),
    ("awesome_markers", f"{VENDOR_URL}/awesome-markers/leaflet.awesome-markers.min.js"),
]
OFFLINE_CSS: list[tuple[str, str]] = [
    ("leaflet_css", f"{VENDOR_URL}/leaflet/leaflet.css"),
    ("bootstrap_css", f"{VENDOR_URL}/bootstrap/bootstrap.min.css"),
    ("awesome_markers_font_css", f"{VENDOR_URL}/fontawesome/css/all.min.css"),
    ("awesome_markers_css", f"{VENDOR_URL}/awesome-markers/leaflet.awesome-markers.css"),
]
DRAW_JS: list[tuple[str, str]] = [("leaflet_draw_js", f"{VENDOR_URL}/leaflet-draw/leaflet.draw.js")]
DRAW_CSS: list[tuple[str, str]] = [("leaflet_draw_css", f"{VENDOR_URL}/leaflet-draw/leaflet.draw.css")]

#: The one online layer, used only when the analyst asks for it.
ONLINE_BASEMAP = "OpenStreetMap"

#: (minx, miny, maxx, maxy) in EPSG:4326 degrees.

HIT_COLOR = "#ff7f0e"
REGION_COLOR = "#d62728"
AOI_COLOR = "#1f77b4"


@dataclass(frozen=True)
class ImageLayer:
    """An image (JPEG or PNG bytes) to lay over the map between EPSG:4326 bounds."""

    name: str
    image: bytes
    bounds: Bounds
    mime: str = "image/jpeg"


def offline_map(
    bounds: Bounds | None = None, *, online_basemap: bool = False, pixel_space: bool = False
) -> folium.Map:
    """A folium map that loads only vendored assets, fitted to ``bounds`` (no basemap unless asked).

    ``pixel_space`` maps show images without a georeference in a flat CRS, in (col, -row) coordinates.
    """
    fmap = folium.Map(
        tiles=ONLINE_BASEMAP if online_basemap and not pixel_space else None,
        location=[0.0, 0.0] if bounds is None else _centre(bounds),
        zoom_start=2 if not pixel_space else -2,
        crs="Simple" if pixel_space else "EPSG3857",
        min_zoom=-6 if pixel_space else 0,
        control_scale=not pixel_space,
        max_zoom=22,
    )
    fmap.default_js = OFFLINE_JS
    fmap.default_css = OFFLINE_CSS
    if bounds is not None:
        fmap.fit_bounds([[bounds[1], bounds[0]], [bounds[3], bounds[2]]])
    return fmap


def add_draw_control(fmap: folium.Map) -> Draw:
    """Add leaflet-draw (rectangle and polygon only) for drawing an AOI; its assets are vendored too."""
    draw = Draw(
        position="topleft",
        draw_options={
            "polyline": False,
            "circle": False,
            "marker": False,
            "circlemarker": False,
            "polygon": {"shapeOptions": {"color": AOI_COLOR}},
            "rectangle": {"shapeOptions": {"color": AOI_COLOR}},
        },
        edit_options={"edit": False},
    )
    draw.default_js = DRAW_JS
    draw.default_css = DRAW_CSS
    draw.add_to(fmap)
    return draw


def add_image_layers(fmap: folium.Map, layers: Iterable[ImageLayer], *, name: str = "Imagery") -> None:
    """Lay images (scene overviews or chip thumbnails) over the map in one toggleable group."""
    group = folium.FeatureGroup(name=html.escape(name), show=True)
    for layer in layers:
        minx, miny, maxx, maxy = layer.bounds
        url = f"data:{layer.mime};base64,{base64.b64encode(layer.image).decode('ascii')}"
        folium.raster_layers.ImageOverlay(
            image=url,
            bounds=[[miny, minx], [maxy, maxx]],
            name=html.escape(layer.name),
            interactive=False,
            zindex=1,
        ).add_to(group)
    group.add_to(fmap)


def add_geojson_layer(
    fmap: folium.Map,
    collection: Mapping[str, Any],
    *,
    name: str,
    color: str = HIT_COLOR,
    tooltip_fields: Sequence[str] = (),
    fill_opacity: float = 0.12,
) -> None:
    """Draw the features of ``collection`` that have a geometry; a ``fill`` property sets a fill colour.

    The layer name and property values shown in tooltips are HTML-escaped here, so user text (typed objects,
    file names) stays inert.
    """
    safe = drawable(collection, tooltip_fields)
    if not safe["features"]:
        return

    def style(item: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "color": color,
            "weight": 2,
            "fillColor": item["properties"].get("fill", color),
            "fillOpacity": fill_opacity,
        }

    tooltip = folium.GeoJsonTooltip(fields=list(tooltip_fields)) if tooltip_fields else None
    folium.GeoJson(
        safe,
        name=html.escape(name),
        style_function=style,
        tooltip=tooltip,
        highlight_function=lambda _: {"weight": 4},
    ).add_to(fmap)


def add_centre_markers(
    fmap: folium.Map, collection: Mapping[str, Any], *, name: str, tooltip_fields: Sequence[str] = ()
) -> None:
    """A dot at the centre of each feature, so small footprints stay visible at world zoom."""
    features = [
        feature(shape(f["geometry"]).centroid, **f["properties"])
        for f in drawable(collection, tooltip_fields)["features"]
    ]
    if not features:
        return
    tooltip = folium.GeoJsonTooltip(fields=list(tooltip_fields)) if tooltip_fields else None
    folium.GeoJson(
        feature_collection(features),
        name=html.escape(name),
        marker=folium.CircleMarker(radius=6, color=AOI_COLOR, fill=True, fill_opacity=0.8),
        tooltip=tooltip,
    ).add_to(fmap)


def drawable(collection: Mapping[str, Any], escape_fields: Iterable[str] = ()) -> dict[str, Any]:
    """The features of ``collection`` with a geometry; string properties in ``escape_fields`` HTML-escaped."""
    keys = set(escape_fields)
    features = []
    for item in collection.get("features", []):
        if not item.get("geometry"):
            continue
        props = {
            k: html.escape(v) if k in keys and isinstance(v, str) else v
            for k, v in item.get("properties", {}).items()
        }
        features.append({**item, "properties": props})
    return feature_collection(features)


def with_fill(collection: Mapping[str, Any], colors: Sequence[str]) -> dict[str, Any]:
    """Copy of ``collection`` whose i-th feature gets ``fill = colors[i]``."""
    return feature_collection(
        {**f, "properties": {**f["properties"], "fill": c}} for f, c in zip(collection["features"], colors)
    )


def value_colors(values: Sequence[float], vmax: float | None = None) -> list[str]:
    """Colours of a sequential yellow-to-red scale for ``values`` (0 .. ``vmax``, default their maximum)."""
    top = max([*values, 1e-9]) if vmax is None else max(vmax, 1e-9)
    scale = colormaps["YlOrRd"]
    return [_hex(scale(0.1 + 0.85 * min(max(v, 0.0) / top, 1.0))) for v in values]


def label_colors(labels: Sequence[str]) -> dict[str, str]:
    """A distinct colour per label (qualitative ``tab10``/``tab20`` palette), in the order given."""
    palette = colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {label: _hex(palette(i % palette.N)) for i, label in enumerate(labels)}


def _hex(rgba: tuple[float, ...]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(round(255 * c) for c in rgba[:3]))


def finish_map(fmap: folium.Map) -> folium.Map:
    """Add the layer switcher once every layer is on the map."""
    folium.LayerControl(collapsed=True).add_to(fmap)
    return fmap


def legend_html(entries: Sequence[tuple[str, str]], title: str = "") -> str:
    """A small HTML legend (colour swatch + escaped label per entry) to show next to the map."""
    rows = "".join(
        f'<div><span style="display:inline-block;width:12px;height:12px;background:{html.escape(colour)};'
        f'margin-right:6px;border:1px solid #555"></span>{html.escape(label)}</div>'
        for label, colour in entries
    )
    head = f"<b>{html.escape(title)}</b>" if title else ""
    return f'<div style="font-size:0.85rem;line-height:1.6">{head}{rows}</div>'


def _centre(bounds: Bounds) -> list[float]:
    return [(bounds[1] + bounds[3]) / 2, (bounds[0] + bounds[2]) / 2]
