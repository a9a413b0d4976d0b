"""Remote rasters for tests: the Range-honouring HTTP server (:mod:`pipelines.bench.range_server`), started
for a test with :func:`serving`, and the small COGs it serves (:func:`write_cog`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from pipelines.bench.range_server import DROP, STALL, RangeServer

__all__ = ["DROP", "SIDE_PX", "STALL", "RangeServer", "serving", "started", "write_cog"]

#: side of the test COGs, in pixels
SIDE_PX = 1024


@contextmanager
def serving(root: Path, faults: dict[str, int | str] | None = None) -> Iterator[RangeServer]:
    """A :class:`RangeServer` over ``root`` (misbehaving as ``faults`` say), started, and stopped afterwards."""
    server = RangeServer(root)
    server.faults.update(faults or {})
    with started(server):
        yield server


@contextmanager
def started(server: RangeServer) -> Iterator[RangeServer]:
    """``server`` started (its routes and faults set), and stopped afterwards."""
    server.start()
    try:
        yield server
    finally:
        server.stop()


def write_cog(path: Path, seed: int, side_px: int = SIDE_PX, west: float = 500_000.0) -> Path:
    """A ``side_px``² RGB COG (256 px tiles, DEFLATE, overviews), EPSG:32633 0.5 m, textured by ``seed``."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:side_px, 0:side_px]
    data = np.stack([(cols * (3 + b) + rows * (5 + seed) + rng.integers(0, 40, cols.shape)) % 256 for b in range(3)])
    with rasterio.open(
        path, "w", driver="COG", width=side_px, height=side_px, count=3, dtype="uint8", crs="EPSG:32633",
        transform=from_origin(west, 5_000_000.0, 0.5, 0.5), blocksize=256, compress="deflate",
    ) as dst:
        dst.write(data.astype(np.uint8))
    return path
