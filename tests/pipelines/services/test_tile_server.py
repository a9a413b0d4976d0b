"""The map tile server: full-resolution tiles of real GeoTIFFs over HTTP on 127.0.0.1, stretched like the chips."""

from __future__ import annotations

import io
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from morecantile import Tile
from PIL import Image

from pipelines.services.settings import AppSettings
from pipelines.services.tile_server import (
    SceneTiles,
    TileServer,
    native_zoom,
    serve_tiles,
    tile_min_zoom,
)
from remoteclip.errors import InputError
from tests.tile_data import WEB_MERCATOR, X0, Y0, ZOOM, pattern, write_aligned
from tiles.reader import open_scene

SCENE_PX = 4096


def fetch(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read(), response.headers.get("Cache-Control", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("Cache-Control", "")


def tile_url(tiles: SceneTiles, z: int, x: int, y: int) -> str:
    return tiles.url.format(z=z, x=x, y=y)


def decode(body: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGBA"))


@pytest.fixture
def server() -> Iterator[TileServer]:
    with TileServer() as running:
        yield running


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_aligned(tmp_path_factory.mktemp("tiles") / "pattern.tif", pattern(SCENE_PX, SCENE_PX))


def test_native_tile_is_the_source_window_pixel_for_pixel(server: TileServer, scene: Path) -> None:
    tiles = server.register(scene)
    assert server.base_url.startswith("http://127.0.0.1:")
    assert tiles.url.startswith(f"{server.base_url}/tiles/{tiles.key}/")
    assert tiles.native_zoom == ZOOM
    assert tiles.min_zoom == ZOOM - 1  # 4096 px is 4x the overview: from zoom 18 tiles are sharper
    status, body, cache = fetch(tile_url(tiles, ZOOM, X0 + 3, Y0 + 5))
    assert status == 200 and body.startswith(b"\x89PNG") and "max-age" in cache
    rgba = decode(body)
    assert rgba.shape == (256, 256, 4)
    window = pattern(SCENE_PX, SCENE_PX)[:, 5 * 256 : 6 * 256, 3 * 256 : 4 * 256]
    assert np.array_equal(rgba[..., :3], np.moveaxis(window, 0, -1))
    assert (rgba[..., 3] == 255).all()
    status, body, _ = fetch(tile_url(tiles, ZOOM, X0, Y0).replace(".png", ".webp"))
    assert status == 200 and body[8:12] == b"WEBP"


def test_tiles_are_transparent_outside_the_scene_and_404_beyond_it(server: TileServer, scene: Path) -> None:
    tiles = server.register(scene)
    west, _, _, north = WEB_MERCATOR.bounds(Tile(X0, Y0, ZOOM))
    last = SCENE_PX // 256 - 1
    _, south, east, _ = WEB_MERCATOR.bounds(Tile(X0 + last, Y0 + last, ZOOM))
    assert tiles.bounds == pytest.approx((west, south, east, north), abs=1e-9)
    status, body, _ = fetch(tile_url(tiles, ZOOM - 2, X0 // 4, Y0 // 4))  # the scene starts half way across
    assert status == 200
    alpha = decode(body)[..., 3]
    assert (alpha[:, :126] == 0).all() and (alpha[:, 130:] == 255).all()
    status, _, cache = fetch(tile_url(tiles, ZOOM, X0 - 1, Y0))
    assert status == 404 and cache == "no-store"


def test_uint16_scene_is_stretched_like_its_chips(server: TileServer, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.integers(200, 3000, (3, 512, 512)).astype(np.uint16)
    path = write_aligned(tmp_path / "sixteen.tif", data)
    with open_scene(path) as opened:
        assert opened.stretch is not None
        expected = opened.stretch.apply(data[:, 256:, :256])
    status, body, _ = fetch(tile_url(server.register(path), ZOOM, X0, Y0 + 1))
    assert status == 200
    rgb = np.moveaxis(decode(body)[..., :3], -1, 0).astype(int)
    assert np.abs(rgb - expected).max() <= 1
    assert rgb.min() == 0 and rgb.max() == 255  # stretched, not the raw values squeezed into 8 bits


def test_nodata_is_transparent(server: TileServer, tmp_path: Path) -> None:
    data = pattern(256, 256)
    data[:, :, :100] = 0
    data[0, :, 150] = 0  # red alone at nodata: still a pixel, as in the chips
    tiles = server.register(write_aligned(tmp_path / "nodata.tif", data, nodata=0))
    alpha = decode(fetch(tile_url(tiles, ZOOM, X0, Y0))[1])[..., 3]
    assert (alpha[:, :100] == 0).all() and (alpha[:, 150] == 255).all()
    assert (alpha[:, 100:] == 255).mean() > 0.99  # the pattern's own all-zero pixels are nodata too


def test_only_registered_keys_and_tile_paths_are_served(server: TileServer, scene: Path) -> None:
    tiles = server.register(scene)
    assert server.register(scene) == tiles  # once per version of the file
    native = tile_url(tiles, ZOOM, X0, Y0)
    unknown = native.replace(tiles.key, "0" * 16)
    assert fetch(unknown)[0] == 404
    base = server.base_url
    for escape in (
        f"{base}/tiles/{tiles.key}/../../../etc/passwd",
        f"{base}/tiles/%2e%2e/%2e%2e/{scene}",
        f"{base}/tiles/{scene}/{ZOOM}/{X0}/{Y0}.png",
        f"{base}/{scene.name}",
        f"{base}/tiles/{tiles.key}/{ZOOM}/{X0}/{Y0}.tif",
        f"{base}/tiles/{tiles.key}/25/{X0}/{Y0}.png",
    ):
        status, body, _ = fetch(escape)
        assert status == 404 and b"\x89PNG" not in body, escape


def test_ungeoreferenced_images_are_refused(server: TileServer, tmp_path: Path) -> None:
    path = tmp_path / "plain.png"
    Image.fromarray(np.moveaxis(pattern(64, 64), 0, -1)).save(path)
    with pytest.raises(InputError, match="no georeference"):
        server.register(path)


def test_settings_choose_the_address_and_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    settings = AppSettings.from_env(
        {"REMOTECLIP_TILE_HOST": "127.0.0.1", "REMOTECLIP_TILE_URL": "http://maps:9"}
    )
    with serve_tiles(settings) as first:
        assert first.base_url == "http://maps:9"
        taken = AppSettings(db_dir=tmp_path, tile_port=first.port)
        assert AppSettings.from_env(taken.to_env()).tile_port == first.port
        with pytest.raises(InputError, match="REMOTECLIP_TILE_PORT"):
            serve_tiles(taken)
    with pytest.raises(InputError, match="REMOTECLIP_TILE_PORT must be a port number"):
        AppSettings.from_env({"REMOTECLIP_TILE_PORT": "http"})


def test_zooms() -> None:
    assert native_zoom(0.2986, 0.0) == 19  # a zoom-19 pixel at the equator
    assert native_zoom(0.30, 0.0) == 19  # within the tolerance: not magnified to zoom 20
    assert native_zoom(0.30, 60.0) == 18  # at 60 degrees a zoom-18 pixel is 0.30 m on the ground
    assert native_zoom(10.0, 37.0) == 14 and native_zoom(1e-6, 0.0) == 24 and native_zoom(1e6, 0.0) == 0
    assert tile_min_zoom(19, 30_000) == 15 and tile_min_zoom(19, 2048) == 19 and tile_min_zoom(19, 512) == 19
