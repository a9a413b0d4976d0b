"""Offline folium maps: vendored Leaflet assets, a vendored world basemap, imagery, footprint layers, draw tool.

Every function takes plain data (GeoJSON dicts, image bytes, EPSG:4326 bounds) and returns folium objects, so
the pages stay free of map plumbing. No asset is fetched from a CDN: folium's asset lists are pointed at
``app/static/vendor`` (served by Streamlit at ``/app/static/vendor``), the world's countries come from there
too, and a scene's full-resolution tiles from the app's own tile server on localhost
(:mod:`pipelines.services.tile_server`).

Panes, bottom to top: the world basemap (150), online tiles (Leaflet's tile pane, 200), the imagery (250:
overviews, then a scene's tiles over its overview; a before/after map has one pane a date, 250 and 251), then
Leaflet's overlay pane (400) with hits and AOIs.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import folium
from branca.element import MacroElement
from folium.elements import JSCSSMixin
from folium.map import CustomPane
from folium.plugins import Draw
from jinja2 import Template
from matplotlib import colormaps
from shapely.geometry import shape

from pipelines.services.export import feature, feature_collection
from pipelines.services.results import Bounds
from pipelines.services.tile_server import SceneTiles

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
#: leaflet-side-by-side's divider and slider styles (its script is :class:`SwipeControl`'s own)
SWIPE_CSS: list[tuple[str, str]] = [
    ("leaflet_sbs_layout_css", f"{VENDOR_URL}/leaflet-side-by-side/layout.css"),
    ("leaflet_sbs_range_css", f"{VENDOR_URL}/leaflet-side-by-side/range.css"),
]

#: The one online layer, used only when the analyst asks for it.
ONLINE_BASEMAP = "OpenStreetMap"
#: Natural Earth 1:50m countries (public domain), vendored as GeoJSON; loaded by the browser, never embedded
WORLD_URL = f"{VENDOR_URL}/natural-earth/countries-50m.geojson"
#: the basemap's colours: sea (the map's background), land and borders
OCEAN_COLOR = "#cfe0ea"
LAND_COLOR = "#f3f0e8"
BORDER_COLOR = "#a9a59c"

BASEMAP_PANE = "basemap"
IMAGERY_PANE = "imagery"
#: the two dates of a before/after map, each in its own pane (the later over the earlier) for the swipe to clip
BEFORE_PANE = "imagery-before"
AFTER_PANE = "imagery-after"
#: deepest zoom of every map: deeper than a scene's native zoom only magnifies its pixels
MAX_ZOOM = 22

HIT_COLOR = "#ff7f0e"
REGION_COLOR = "#d62728"
AOI_COLOR = "#1f77b4"
#: chips that match none of the labels offered
NO_MATCH_COLOR = "#9e9e9e"
#: what the scenes' own map tiles are attributed to
IMAGERY_ATTRIBUTION = "your imagery, served from this machine"
#: chips the analyst marked right and wrong
RIGHT_COLOR = "#2ca02c"
WRONG_COLOR = "#d62728"


@dataclass(frozen=True)
class ImageLayer:
    """An image (JPEG or PNG bytes) to lay over the map between EPSG:4326 bounds.

    ``tiles``: the scene's full-resolution tiles, drawn over the image from the zooms where they are sharper.
    """

    name: str
    image: bytes
    bounds: Bounds
    mime: str = "image/jpeg"
    tiles: SceneTiles | None = None


class WorldBasemap(MacroElement):
    """Country polygons fetched by the browser from ``url`` and drawn under everything, on a sea-coloured map."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        {{ this._parent.get_name() }}.getContainer().style.background = {{ this.ocean|tojson }};
        fetch({{ this.url|tojson }})
            .then((response) => response.json())
            .then((world) => L.geoJSON(world, {
                pane: {{ this.pane|tojson }}, interactive: false, style: {{ this.style|tojson }}
            }).addTo({{ this._parent.get_name() }}));
        {% endmacro %}
        """
    )

    def __init__(self, url: str = WORLD_URL) -> None:
        super().__init__()
        self._name = "WorldBasemap"
        self.url = url
        self.pane = BASEMAP_PANE
        self.ocean = OCEAN_COLOR
        self.style = {"color": BORDER_COLOR, "weight": 0.8, "fillColor": LAND_COLOR, "fillOpacity": 1.0}


def offline_map(
    bounds: Bounds | None = None, *, online_basemap: bool = False, pixel_space: bool = False
) -> folium.Map:
    """A folium map that loads only vendored assets, fitted to ``bounds``, over the vendored world basemap.

    ``online_basemap`` puts OpenStreetMap there instead. ``pixel_space`` maps show images without a
    georeference in a flat CRS, in (col, -row) coordinates, with no basemap.
    """
    fmap = folium.Map(
        tiles=ONLINE_BASEMAP if online_basemap and not pixel_space else None,
        location=[0.0, 0.0] if bounds is None else _centre(bounds),
        zoom_start=2 if not pixel_space else -2,
        crs="Simple" if pixel_space else "EPSG3857",
        control_scale=not pixel_space,
        max_zoom=MAX_ZOOM,
    )
    # the map's own zoom range: folium gives min_zoom and max_zoom to its basemap tile layer only, and Leaflet
    # would otherwise take the range of the layers on the map (no zooming out past a scene's first tile zoom)
    fmap.options.update(min_zoom=-6 if pixel_space else 0, max_zoom=MAX_ZOOM)
    fmap.default_js = OFFLINE_JS
    fmap.default_css = OFFLINE_CSS
    CustomPane(BASEMAP_PANE, z_index=150).add_to(fmap)
    CustomPane(IMAGERY_PANE, z_index=250).add_to(fmap)
    if not (online_basemap or pixel_space):
        WorldBasemap().add_to(fmap)
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


def add_image_layers(
    fmap: folium.Map, layers: Iterable[ImageLayer], *, name: str = "Imagery", pane: str = IMAGERY_PANE
) -> None:
    """Lay images (scene overviews or chip thumbnails, and their scenes' tiles) over the map in one group."""
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
            pane=pane,
        ).add_to(group)
        if layer.tiles is not None:
            add_tile_layer(group, layer.tiles, name=layer.name, pane=pane)
    group.add_to(fmap)


def add_tile_layer(
    parent: folium.Map | folium.FeatureGroup, tiles: SceneTiles, *, name: str, pane: str = IMAGERY_PANE
) -> folium.TileLayer:
    """A scene's own tiles from the local tile server: requested from ``tiles.min_zoom`` to its native zoom
    inside its bounds only, magnified deeper; attributed as :data:`IMAGERY_ATTRIBUTION` (one line, however many
    scenes: Leaflet lists an attribution once)."""
    minx, miny, maxx, maxy = tiles.bounds
    layer = folium.TileLayer(
        tiles=tiles.url,
        attr=IMAGERY_ATTRIBUTION,
        name=html.escape(name),
        overlay=True,
        control=False,
        min_zoom=tiles.min_zoom,
        max_native_zoom=tiles.native_zoom,
        max_zoom=MAX_ZOOM,
        bounds=[[miny, minx], [maxy, maxx]],
        pane=pane,
        z_index=2,
    )
    layer.add_to(parent)
    return layer


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


class SwipeControl(JSCSSMixin, MacroElement):
    """A slider across the map: the pane ``left`` shows left of it, the pane ``right`` right of it.

    leaflet-side-by-side's control (its vendored styles), clipping two whole panes instead of one layer a side,
    so each date may hold several scenes, as overviews and tiles.
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function () {
            var map = {{ this._parent.get_name() }};
            var left = map.getPane({{ this.left|tojson }}), right = map.getPane({{ this.right|tojson }});
            var box = L.DomUtil.create("div", "leaflet-sbs", map._controlContainer);
            var divider = L.DomUtil.create("div", "leaflet-sbs-divider", box);
            var range = L.DomUtil.create("input", "leaflet-sbs-range", box);
            range.type = "range"; range.min = 0; range.max = 1; range.step = "any"; range.value = 0.5;
            range.setAttribute("aria-label", "Swipe between before and after");
            function clip() {
                var nw = map.containerPointToLayerPoint([0, 0]), se = map.containerPointToLayerPoint(map.getSize());
                var x = map.getSize().x * range.value + (0.5 - range.value) * {{ this.thumb_px }};
                divider.style.left = x + "px";
                left.style.clip = "rect(" + [nw.y, nw.x + x, se.y, nw.x].join("px,") + "px)";
                right.style.clip = "rect(" + [nw.y, se.x, se.y, nw.x + x].join("px,") + "px)";
            }
            map.on("move zoomend resize", clip);
            L.DomEvent.on(range, "input change", clip);
            L.DomEvent.on(range, "mousedown touchstart", function () { map.dragging.disable(); });
            L.DomEvent.on(range, "mouseup touchend", function () { map.dragging.enable(); });
            clip();
        })();
        {% endmacro %}
        """
    )
    default_css = SWIPE_CSS

    def __init__(self, left: str, right: str) -> None:
        super().__init__()
        self._name = "SwipeControl"
        self.left = left
        self.right = right
        #: the slider thumb's width in the vendored range.css, so the divider runs through its middle
        self.thumb_px = 42


def add_before_after(fmap: folium.Map, before: Iterable[ImageLayer], after: Iterable[ImageLayer]) -> None:
    """The imagery of two dates in panes of their own, ``after`` over ``before``, and a swipe between them."""
    CustomPane(BEFORE_PANE, z_index=250).add_to(fmap)
    CustomPane(AFTER_PANE, z_index=251).add_to(fmap)
    add_image_layers(fmap, before, name="Before", pane=BEFORE_PANE)
    add_image_layers(fmap, after, name="After", pane=AFTER_PANE)
    SwipeControl(BEFORE_PANE, AFTER_PANE).add_to(fmap)


def add_heat_layer(
    fmap: folium.Map,
    collection: Mapping[str, Any],
    values: Sequence[float],
    *,
    vmax: float,
    name: str,
    tooltip_fields: Sequence[str] = (),
) -> None:
    """Fill the i-th feature of ``collection`` by ``values[i]`` on :func:`value_colors`'s scale (0 .. ``vmax``),
    the more opaque the higher, so the imagery shows through where nothing stands out."""
    shares = [min(max(v, 0.0) / max(vmax, 1e-9), 1.0) for v in values]
    features = [
        {**f, "properties": {**f["properties"], "fill": c, "opacity": round(0.08 + 0.5 * t, 3)}}
        for f, c, t in zip(collection["features"], value_colors(values, vmax), shares)
    ]
    safe = drawable(feature_collection(features), tooltip_fields)
    if not safe["features"]:
        return

    def style(item: Mapping[str, Any]) -> dict[str, Any]:
        props = item["properties"]
        return {
            "color": props["fill"],
            "weight": 1,
            "fillColor": props["fill"],
            "fillOpacity": props["opacity"],
        }

    folium.GeoJson(
        safe,
        name=html.escape(name),
        style_function=style,
        tooltip=folium.GeoJsonTooltip(fields=list(tooltip_fields)) if tooltip_fields else None,
        highlight_function=lambda _: {"weight": 3},
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
