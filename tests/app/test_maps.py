"""Map rendering helpers and app settings: vendored assets only, escaped user text, consistent config."""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlparse

import folium
import pytest

from app import maps
from pipelines.services.results import extent
from pipelines.services.settings import STREAMLIT_FLAGS, AppSettings, home_script, streamlit_command
from pipelines.services.tile_server import SceneTiles

STATIC = Path(maps.__file__).parent / "static"
REPO = Path(__file__).resolve().parents[2]


def full_map() -> folium.Map:
    fmap = maps.offline_map((-94.5, 37.06, -94.49, 37.07))
    maps.add_image_layers(
        fmap, [maps.ImageLayer("scene <script>", b"\xff\xd8\xff", (-94.5, 37.06, -94.49, 37.07))]
    )
    collection = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [-94.495, 37.065]},
                "properties": {"label": "<img src=x onerror=alert(1)>", "count": 3},
            },
            {"type": "Feature", "geometry": None, "properties": {"label": "no geometry"}},
        ],
    }
    maps.add_geojson_layer(fmap, collection, name="<b>typed</b>", tooltip_fields=("label", "count"))
    maps.add_draw_control(fmap)
    return maps.finish_map(fmap)


def test_map_loads_only_vendored_assets_that_exist() -> None:
    html = full_map().get_root().render()
    urls = set(re.findall(r'(?:src|href)="([^"]+)"', html))
    assert urls, "no assets referenced"
    for url in urls:
        if url.startswith("data:"):
            continue
        assert url.startswith(maps.VENDOR_URL), url
        assert (STATIC / url.removeprefix("/app/static/")).is_file(), url
    for _, url in [*maps.OFFLINE_JS, *maps.OFFLINE_CSS, *maps.DRAW_JS, *maps.DRAW_CSS]:
        assert url in urls


def test_css_assets_reference_only_vendored_files() -> None:
    for css in STATIC.rglob("*.css"):
        for ref in re.findall(r"url\(['\"]?([^'\")]+)", css.read_text()):
            if ref.startswith(("data:", "#")):  # inline images, IE's VML behaviour
                continue
            target = (css.parent / ref.split("?")[0].split("#")[0]).resolve()
            assert not ref.startswith(("http:", "https:", "//")), (css, ref)
            assert target.is_file() or target.suffix == ".ttf", (
                css,
                ref,
            )  # woff2 comes first; ttf never loads


def test_user_text_is_escaped_and_features_without_geometry_dropped() -> None:
    html = full_map().get_root().render()
    assert "<img src=x" not in html and "<b>typed</b>" not in html and "scene <script>" not in html
    assert "\\u0026lt;b\\u0026gt;typed" in html  # escaped, then JSON-encoded by folium
    safe = maps.drawable(
        {
            "features": [
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [0, 0]},
                    "properties": {"q": "<i>"},
                },
                {"type": "Feature", "geometry": None, "properties": {"q": "x"}},
            ]
        },
        ["q"],
    )
    assert [f["properties"]["q"] for f in safe["features"]] == ["&lt;i&gt;"]


def test_centre_markers_sit_at_feature_centroids() -> None:
    fmap = maps.offline_map()
    square = {"type": "Polygon", "coordinates": [[[0, 0], [2, 0], [2, 2], [0, 2], [0, 0]]]}
    collection = {"features": [{"type": "Feature", "geometry": square, "properties": {"scene": "<a>"}}]}
    maps.add_centre_markers(fmap, collection, name="Scenes", tooltip_fields=("scene",))
    html = fmap.get_root().render()
    assert "L.CircleMarker" in html and '"coordinates": [1.0, 1.0]' in html and "<a>" not in html


def test_online_basemap_only_when_asked() -> None:
    assert "tile.openstreetmap" not in maps.offline_map().get_root().render()
    assert "tile.openstreetmap" in maps.offline_map(online_basemap=True).get_root().render()


def test_pixel_space_map_uses_flat_crs() -> None:
    html = maps.offline_map((0, -400, 400, 0), pixel_space=True).get_root().render()
    assert "L.CRS.Simple" in html


def test_colours() -> None:
    ramp = maps.value_colors([0, 5, 10])
    assert len(set(ramp)) == 3 and all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in ramp)
    assert maps.value_colors([10], vmax=10) == ramp[2:]
    palette = maps.label_colors(["a", "b", "c"])
    assert list(palette) == ["a", "b", "c"] and len(set(palette.values())) == 3
    assert extent([(0, 0, 1, 1), (2, -1, 3, 0.5)]) == (0, -1, 3, 1) and extent([]) is None
    assert "&lt;x&gt;" in maps.legend_html([("<x>", "#fff")])


def test_settings_round_trip_through_the_environment(tmp_path: Path) -> None:
    settings = AppSettings(db_dir=tmp_path / "db", model_name="tiny", weights=tmp_path / "w.pt")
    assert AppSettings.from_env(settings.to_env()) == AppSettings(
        db_dir=tmp_path / "db", model_name="tiny", weights=tmp_path / "w.pt", upload_dir=tmp_path / "uploads"
    )
    assert AppSettings.from_env({}).db_dir == Path("data/library")


def test_streamlit_command_matches_the_config_file() -> None:
    command = streamlit_command(8765)
    assert command[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert Path(command[4]) == home_script() and home_script().is_file()
    assert command[command.index("--server.port") + 1] == "8765"
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    flags = dict(zip(STREAMLIT_FLAGS[::2], STREAMLIT_FLAGS[1::2], strict=True))
    for flag, value in flags.items():
        section, key = flag.removeprefix("--").split(".")
        assert str(config[section][key]).lower() == value, flag


@pytest.mark.parametrize("page", ["search", "count", "classify", "change", "library"])
def test_every_page_exists(page: str) -> None:
    assert (home_script().parent / "views" / f"{page}.py").is_file()
    assert f'"views/{page}.py"' in home_script().read_text()


def test_world_basemap_is_fetched_from_the_vendored_geojson_under_the_imagery() -> None:
    html = maps.offline_map((-94.5, 37.06, -94.49, 37.07)).get_root().render()
    assert f'fetch("{maps.WORLD_URL}")' in html and '"basemap"' in html
    world = json.loads((STATIC / maps.WORLD_URL.removeprefix("/app/static/")).read_text())
    assert world["type"] == "FeatureCollection" and len(world["features"]) > 200
    names = {feature["properties"]["name"] for feature in world["features"]}
    assert {"France", "Brazil", "Japan"} <= names
    for other in (maps.offline_map(online_basemap=True), maps.offline_map(pixel_space=True)):
        assert maps.WORLD_URL not in other.get_root().render()


def test_tile_layer_names_the_local_tile_server_and_the_scene() -> None:
    tiles = SceneTiles(
        key="0123456789abcdef",
        url="http://127.0.0.1:8765/tiles/0123456789abcdef/{z}/{x}/{y}.png",
        bounds=(-94.5, 37.06, -94.49, 37.07),
        native_zoom=19,
        min_zoom=17,
    )
    fmap = maps.offline_map(tiles.bounds)
    layer = maps.ImageLayer("joplin <script>.tif", b"\xff\xd8\xff", tiles.bounds, tiles=tiles)
    maps.add_image_layers(fmap, [layer])
    html = maps.finish_map(fmap).get_root().render()
    assert f'L.tileLayer(\n                "{tiles.url}"' in html
    assert '"maxNativeZoom": 19' in html and '"minZoom": 17' in html and '"pane": "imagery"' in html
    assert maps.IMAGERY_ATTRIBUTION in html and "<script>.tif" not in html  # one attribution, names escaped
    hosts = {urlparse(url).hostname for url in re.findall(r"https?://[^\s\"'<>)]+", html)}
    assert hosts <= {"127.0.0.1", "localhost"}, hosts  # no CDN, no online basemap


def test_before_after_map_swipes_two_panes_and_shades_cells_with_vendored_styles_only() -> None:
    bounds = (-94.5, 37.06, -94.49, 37.07)
    fmap = maps.offline_map(bounds)
    maps.add_before_after(
        fmap,
        [maps.ImageLayer("pre <b>.tif", b"\xff\xd8\xff", bounds)],
        [maps.ImageLayer("post.tif", b"\xff\xd8\xff", bounds)],
    )
    square = {
        "type": "Polygon",
        "coordinates": [[[-94.5, 37.06], [-94.49, 37.06], [-94.49, 37.07], [-94.5, 37.06]]],
    }
    cells = {"features": [{"type": "Feature", "geometry": square, "properties": {"rank": r}} for r in (1, 2)]}
    maps.add_heat_layer(fmap, cells, [6.0, -1.0], vmax=4.0, name="Change", tooltip_fields=("rank",))
    html = maps.finish_map(fmap).get_root().render()
    assert '"pane": "imagery-before"' in html and '"pane": "imagery-after"' in html
    assert 'getPane("imagery-before")' in html and 'getPane("imagery-after")' in html
    assert "pre <b>" not in html
    urls = set(re.findall(r'(?:src|href)="([^"]+)"', html))
    for _, url in maps.SWIPE_CSS:
        assert url in urls and (STATIC / url.removeprefix("/app/static/")).is_file(), url
    assert not re.findall(r"https?://", html)  # no CDN: the swipe's script is inline, its styles vendored
    top, low = maps.value_colors([4.0, 0.0], vmax=4.0)
    assert f'"fill": "{top}", "opacity": 0.58' in html and f'"fill": "{low}", "opacity": 0.08' in html
