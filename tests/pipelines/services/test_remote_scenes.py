"""The map's views of a remote scene (its overview and its tiles) from its URL, as of the same file on disk."""

from __future__ import annotations

import io
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from morecantile import tms
from PIL import Image

from pipelines.services.overview import scene_overview
from pipelines.services.tile_server import TileServer
from tests.remote_server import serving, write_cog

pytestmark = pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")


def test_overview_and_tiles_of_a_url_are_those_of_the_file(tmp_path: Path) -> None:
    cog = write_cog(tmp_path / "scene.tif", seed=3)
    with serving(tmp_path) as server, TileServer() as tiles:
        url = f"{server.url}/scene.tif"
        remote, local = scene_overview(url), scene_overview(cog)
        assert remote == local
        # the overview of a 1024 px scene is read from its 256 px tiles, not the whole file
        assert 0 < server.bytes_sent("scene.tif") < cog.stat().st_size
        remote_tiles, local_tiles = tiles.register(url), tiles.register(cog)
        assert remote_tiles.key != local_tiles.key and remote_tiles.bounds == local_tiles.bounds
        west, south, east, north = remote_tiles.bounds
        tile = tms.get("WebMercatorQuad").tile((west + east) / 2, (south + north) / 2, remote_tiles.native_zoom)
        images = []
        for registered in (remote_tiles, local_tiles):
            with urllib.request.urlopen(registered.url.format(z=tile.z, x=tile.x, y=tile.y), timeout=30) as got:
                images.append(np.asarray(Image.open(io.BytesIO(got.read()))))
        np.testing.assert_array_equal(images[0], images[1])
